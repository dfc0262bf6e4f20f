"""``--options auto`` on synthetic logs of deliberately varied shapes: issue #13's "never
loses" promise stress-tested on logs nobody tuned for.

Each shape is a TRAIN and a TEST answer log (disjoint students, CSV files in a temporary
folder) drawn from the learning-aware model of :mod:`irt.engine.learning` with known truth::

    logit P = a_j (theta_st + delta_sk - b_j) + beta . x_t + gamma_k . z_t

(the covariates from their definition, as ``tests/support/learning_sim.py`` draws them).
Fourteen shapes: no learning at all (plain 2PL truth), a strong practice effect, odd covariate
signs with per-skill coefficients, large skill offsets, a partly wrong skill column, repeated
attempts at items that are their own skill, few students, a long-tail item bank, random
answers, an ability that drifts answer by answer (outside the model); then four probes of the
rule's edges (a Spanish-like log, a weak effect on few students, learning on the long-tail
bank, random answers on a 2PL truth).  Each log is evaluated as ``make evaluate`` evaluates
the public logs: ``python -m irt evaluate TRAIN TEST --student-column user_id --order-column
seq --skill-column skill_id --table --json`` (the plain 2PL, every option set and ``auto``,
in one run).  Reported per shape: the TEST AUC and ECE of each, of the truth's own
probabilities ("oracle": a ceiling, it knows every student's ability), auto's choice with its
validation table, and issue #13's three targets for ``auto``::

    T1: AUC >= the best option set's AUC - 0.005   (the best of the five option-set rows)
    T2: AUC >= plain's AUC - 0.002
    T3: ECE <= plain's ECE + 0.01

``--seeds N`` draws each shape N times (seeds s, s + 1000, ...), ``--scale F`` multiplies its
students.  Exit status 1 when a target is missed on some log (a finding, not a crash).  On
the shared 2-core machine: about 70 s for the fourteen shapes, 3.5 min with ``--seeds 3``,
7.5 min with ``--seeds 3 --scale 3``.

    PYTHONPATH=shared .venv/bin/python benchmarks/auto_sweep.py [--shapes plain,repeats]
        [--seeds 3] [--scale 3] [--keep DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from irt.engine.defaults import DEFAULTS  # run with PYTHONPATH=shared (docstring)
from irt.engine.learning import FEATURES, SKILL_FEATURES

ROOT = Path(__file__).resolve().parents[1]
AUC_BELOW_BEST = 0.005
AUC_BELOW_PLAIN = 0.002
ECE_OVER_PLAIN = 0.01
#: The learning-aware covariates (irt.engine.learning.FEATURES) and the per-skill ones' columns.
N_FEATURES = len(FEATURES)
SKILL_COLUMNS = tuple(FEATURES.index(f) for f in SKILL_FEATURES)
WINDOW = DEFAULTS.pfa_window  # the covariates' window the fits use
#: the covariate coefficients of tests/engine/test_auto.py's learning log
BETA = (0.3, -0.2, 0.2, -0.2, 0.3)


@dataclass(frozen=True)
class Shape:
    """One synthetic log: ``n_train`` + ``n_test`` students, each working through ``blocks``
    skills (a block: ``per_block`` distinct items of one skill, each answered ``attempts``
    times, the attempts in random order within the block), items ``j`` of skill
    ``j % n_skills``."""

    name: str
    why: str
    n_train: int
    n_test: int
    n_items: int
    n_skills: int
    blocks: int
    per_block: int
    tau: float = 0.0                 # SD of the per-skill offsets delta
    beta: tuple[float, ...] = (0.0,) * N_FEATURES
    gamma_sd: float = 0.0            # SD of the per-skill coefficients gamma
    b_within_sd: float = 0.5         # SD of the difficulties around their skill's mean
    attempts: int = 1                # answers per item within its block (repeated practice)
    zipf: float = 0.0                # > 0: items within a skill served with Zipf exposure
    mistag: float = 0.0              # share of items whose skill column names a wrong skill
    guess: float = 0.0               # share of answers that are coin flips
    drift_sd: float = 0.0            # random-walk step of theta after every answer
    seed: int = 0


SHAPES: tuple[Shape, ...] = (
    Shape("plain", "2PL truth, skills only pool difficulties: no option set should win",
          1000, 400, 40, 5, 3, 8, seed=101),
    Shape("practice", "strong positive practice effect (pfa, beta > 0), no offsets",
          1000, 400, 40, 5, 3, 8, beta=(0.6, 0.4, 0.3, 0.0, 0.3), seed=102),
    Shape("odd", "successes lower and failures raise later success; per-skill gamma SD 0.6",
          1000, 400, 40, 5, 3, 8, tau=0.3, beta=(-0.3, 0.5, -0.3, 0.4, -0.4), gamma_sd=0.6,
          seed=103),
    Shape("offsets", "large per-skill offsets (tau 1.5), no covariate effects",
          1000, 400, 64, 8, 4, 8, tau=1.5, seed=104),
    Shape("mistagged", "40 skills of 3 items, 30 % of the items tagged with a wrong skill",
          1000, 400, 120, 40, 8, 3, tau=0.8, beta=BETA, mistag=0.3, seed=105),
    Shape("repeats", "items = skills, each answered 5 times in a row (practice effect)",
          1000, 400, 30, 30, 6, 1, tau=0.8, beta=(0.4, 0.2, 0.1, -0.1, 0.3), attempts=5,
          seed=106),
    Shape("few", "40 training students with 100 answers each",
          40, 16, 100, 10, 10, 10, tau=0.8, beta=BETA, seed=107),
    Shape("sparse", "a bank of 20,000 items (200 per skill) served with Zipf exposure",
          1500, 500, 20_000, 100, 4, 5, tau=0.5, beta=(0.2, -0.1, 0.1, -0.1, 0.2), zipf=1.0,
          seed=108),
    Shape("guessing", "learning truth, 25 % of the answers coin flips",
          1000, 400, 40, 5, 3, 8, tau=0.8, beta=BETA, guess=0.25, seed=109),
    Shape("drift", "no learning covariates; ability drifts (random walk 0.2 per answer)",
          1000, 400, 40, 5, 3, 10, drift_sd=0.2, seed=110),
    # probes of the rule's edges: a Spanish-like log (few students, repeated attempts), a weak
    # effect that few validation students can hardly see, learning on a long-tail bank (the
    # calibration fitted on validation, served on a model refitted on every student), and
    # random answers on a 2PL truth (a set can gain log-likelihood by its calibration alone)
    Shape("spanish", "30 training students, 400 items in 100 skills, each answered 3 times",
          30, 8, 400, 100, 40, 4, tau=0.8, beta=BETA, attempts=3, seed=111),
    Shape("few-weak", "40 training students, a weak effect (tau 0.4, half the covariates)",
          40, 16, 100, 10, 10, 10, tau=0.4, beta=tuple(x / 2 for x in BETA), seed=112),
    Shape("sparse-learning", "the long-tail bank of 'sparse' with learning (tau 1)",
          1500, 500, 20_000, 100, 4, 5, tau=1.0, beta=BETA, zipf=1.0, seed=113),
    Shape("guess-plain", "2PL truth, 25 % of the answers coin flips, 2,000 students",
          2000, 500, 40, 5, 3, 8, guess=0.25, seed=114),
)


@dataclass
class Log:
    """A simulated log: per answer its student, item, 0/1 answer, the truth's probability and
    its order within the student, and the covariates ``x`` of :data:`N_FEATURES` the truth
    used (``irt.engine.learning.history_features`` of the true skills; a test holds them
    equal); ``tag`` the skill column of each item."""

    student: np.ndarray
    item: np.ndarray
    correct: np.ndarray
    p_true: np.ndarray
    step: np.ndarray
    tag: np.ndarray
    x: np.ndarray


def _items(shape: Shape) -> tuple:
    rng = np.random.default_rng([shape.seed, 0])
    item_skill = np.arange(shape.n_items) % shape.n_skills
    mu = rng.normal(0.0, 1.0, shape.n_skills)
    a = np.exp(rng.normal(0.0, 0.25, shape.n_items))
    b = mu[item_skill] + rng.normal(0.0, shape.b_within_sd, shape.n_items)
    gamma = rng.normal(0.0, shape.gamma_sd, (shape.n_skills, len(SKILL_COLUMNS))) \
        if shape.gamma_sd else np.zeros((shape.n_skills, len(SKILL_COLUMNS)))
    tag = item_skill.copy()
    wrong = np.flatnonzero(rng.random(shape.n_items) < shape.mistag)
    tag[wrong] = (item_skill[wrong] + rng.integers(1, shape.n_skills, wrong.size)) \
        % shape.n_skills  # another skill, never the true one
    # Zipf exposure within each skill: the item of rank r drawn with probability oc r^-zipf
    rank = np.empty(shape.n_items)
    for k in range(shape.n_skills):
        pool = np.flatnonzero(item_skill == k)
        rank[rng.permutation(pool)] = np.arange(1, pool.size + 1)
    return item_skill, a, b, gamma, tag, rank


def simulate(shape: Shape, n_students: int, part: int) -> Log:
    """``n_students`` students of ``shape`` (``part`` seeds them: 0 TRAIN, 1 TEST); every
    student answers the same number of items, so the answers are drawn step by step for all
    students at once."""
    item_skill, a, b, gamma, tag, rank = _items(shape)
    rng = np.random.default_rng([shape.seed, 1 + part])
    beta = np.asarray(shape.beta, dtype=float)
    n_k = shape.n_skills
    per = min(shape.per_block, int(np.bincount(item_skill).min()))
    length = min(shape.blocks, n_k) * per * shape.attempts
    seq = np.empty((n_students, length), dtype=np.int64)
    pools = [np.flatnonzero(item_skill == k) for k in range(n_k)]
    for s in range(n_students):
        row: list[int] = []
        for k in rng.choice(n_k, size=min(shape.blocks, n_k), replace=False):
            w = rank[pools[k]] ** -shape.zipf
            block = rng.choice(pools[k], size=per, replace=False, p=w / w.sum())
            if shape.attempts > 1:
                block = rng.permutation(np.repeat(block, shape.attempts))
            row += block.tolist()
        seq[s] = row
    theta = rng.standard_normal(n_students)
    delta = rng.normal(0.0, shape.tau, (n_students, n_k))
    right = np.zeros((n_students, n_k))
    wrong = np.zeros((n_students, n_k))
    last = np.zeros((n_students, n_k))
    ys = np.zeros((n_students, length))
    ps = np.zeros((n_students, length))
    xs = np.zeros((n_students, length, N_FEATURES))
    idx = np.arange(n_students)
    for t in range(length):
        j = seq[:, t]
        k = item_skill[j]
        recent = ys[:, max(0, t - WINDOW):t]
        n_recent = recent.shape[1]
        x = np.stack([np.log1p(right[idx, k]), np.log1p(wrong[idx, k]),
                      np.log1p(recent.sum(1)), np.log1p(n_recent - recent.sum(1)),
                      last[idx, k]], axis=1)
        z = a[j] * (theta + delta[idx, k] - b[j]) + x @ beta \
            + np.sum(x[:, SKILL_COLUMNS] * gamma[k], axis=1)
        p = shape.guess * 0.5 + (1.0 - shape.guess) / (1.0 + np.exp(-z))
        y = (rng.random(n_students) < p).astype(float)
        ys[:, t], ps[:, t], xs[:, t] = y, p, x
        right[idx, k] += y
        wrong[idx, k] += 1 - y
        last[idx, k] = 2 * y - 1
        if shape.drift_sd:
            theta = theta + rng.normal(0.0, shape.drift_sd, n_students)
    return Log(np.repeat(idx, length), seq.reshape(-1), ys.reshape(-1).astype(np.int8),
               ps.reshape(-1), np.tile(np.arange(length), n_students), tag,
               xs.reshape(-1, N_FEATURES))


def write_csv(log: Log, path: Path, prefix: str) -> None:
    """``user_id,item_id,correct,skill_id,seq`` (the layout of ``make evaluate``'s logs)."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("user_id", "item_id", "correct", "skill_id", "seq"))
        for s, j, y, t in zip(log.student.tolist(), log.item.tolist(), log.correct.tolist(),
                              log.step.tolist(), strict=True):
            w.writerow((f"{prefix}{s}", f"q{j}", y, f"k{log.tag[j]}", t))


def oracle(log: Log) -> tuple[float, float]:
    """AUC and ECE of the truth's probabilities (every student's true ability known)."""
    from irt.engine.evaluate import metrics

    m = metrics(log.correct, log.p_true)
    return m["auc"], m["ece"]


def run_shape(shape: Shape, folder: Path) -> dict:
    train, test = simulate(shape, shape.n_train, 0), simulate(shape, shape.n_test, 1)
    stem = shape.name.replace("#", "_s")
    train_csv, test_csv = folder / f"{stem}_train.csv", folder / f"{stem}_test.csv"
    write_csv(train, train_csv, "a")
    write_csv(test, test_csv, "b")
    counts = np.bincount(np.unique(train.student * shape.n_items + train.item) % shape.n_items,
                         minlength=shape.n_items)
    answered = counts[counts > 0]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "shared")}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "irt", "evaluate", str(train_csv), str(test_csv),
         "--student-column", "user_id", "--order-column", "seq", "--skill-column", "skill_id",
         "--table", "--json", "-q"], capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{shape.name}: irt evaluate exited {done.returncode}:\n"
                           f"{done.stderr[-3000:]}")
    rows = json.loads(done.stdout)
    o_auc, o_ece = oracle(test)
    return {"shape": shape.name, "why": shape.why, "seconds": round(seconds, 1),
            "train_answers": int(train.correct.size), "test_answers": int(test.correct.size),
            "train_students": shape.n_train, "items_answered": int(answered.size),
            "items_le_2_answers": int(np.count_nonzero(answered <= 2)),
            "oracle_auc": o_auc, "oracle_ece": o_ece, "rows": rows, "stderr": done.stderr}


def _name(row: dict) -> str:
    return "+".join(row["options"]) or "plain"


def judge(result: dict) -> dict:
    """Issue #13's three targets for ``auto`` on one shape."""
    rows = result["rows"]
    plain = rows[0]
    sets = [r for r in rows[1:] if r["options"] != ["auto"]]
    auto = next(r for r in rows if r["options"] == ["auto"])
    best = max(sets, key=lambda r: r["auc"])
    checks = {
        "auc_vs_best": auto["auc"] >= best["auc"] - AUC_BELOW_BEST,
        "auc_vs_plain": auto["auc"] >= plain["auc"] - AUC_BELOW_PLAIN,
        "ece_vs_plain": auto["ece"] <= plain["ece"] + ECE_OVER_PLAIN,
    }
    return {"plain": plain, "best": best, "auto": auto, "checks": checks}


def report(result: dict, verdict: dict) -> None:
    print(f"== {result['shape']}: {result['why']}")
    print(f"   train {result['train_students']} students, {result['train_answers']:,} answers "
          f"({result['items_answered']:,} items answered, {result['items_le_2_answers']:,} of "
          f"them by at most 2 students); test {result['test_answers']:,} answers; "
          f"evaluate {result['seconds']:.0f} s")
    print(f"   {'model':<24}{'AUC':>8}{'ECE':>8}{'log-loss':>10}  converged")
    print(f"   {'oracle (true p)':<24}{result['oracle_auc']:8.4f}{result['oracle_ece']:8.4f}")
    for r in result["rows"]:
        name = _name(r) if r["options"] != ["auto"] else \
            "auto -> " + ("+".join(r["chosen"]) or "plain")
        print(f"   {name:<24}{r['auc']:8.4f}{r['ece']:8.4f}{r['log_loss']:10.4f}  "
              f"{'yes' if r['converged'] else 'NO'}")
    sel = verdict["auto"]["option_selection"]
    print(f"   auto's validation: {sel['n_validation_students']} students, "
          f"{sel['n_validation_answers']:,} answers, factor {sel['noise_factor']}")
    for row in sel["table"]:
        auc = "-" if row.get("auc") is None else f"{row['auc']:.4f}"
        ece = "-" if row.get("ece") is None else f"{row['ece']:.4f}"
        gain = "" if row.get("gain") is None else \
            f" gain {row['gain']:+.5f} noise {row['noise']:.5f}"
        print(f"     {_name(row):<20} AUC {auc} ECE {ece}{gain}: {row['verdict']}")
    c = verdict["checks"]
    a, p, b = verdict["auto"], verdict["plain"], verdict["best"]
    print(f"   targets: AUC {a['auc']:.4f} >= best ({_name(b)}) {b['auc']:.4f} - "
          f"{AUC_BELOW_BEST:g}: {'PASS' if c['auc_vs_best'] else 'FAIL'}; AUC >= plain "
          f"{p['auc']:.4f} - {AUC_BELOW_PLAIN:g}: {'PASS' if c['auc_vs_plain'] else 'FAIL'}; "
          f"ECE {a['ece']:.4f} <= plain {p['ece']:.4f} + {ECE_OVER_PLAIN:g}: "
          f"{'PASS' if c['ece_vs_plain'] else 'FAIL'}", flush=True)


def summary(results: list[tuple[dict, dict]]) -> None:
    print(f"\n{'shape':<18}{'oracle':>7}  {'plain AUC/ECE':<15}  {'best set AUC/ECE':<34}"
          f"{'auto -> chosen AUC/ECE':<35}T1    T2    T3")
    for result, v in results:
        p, b, a, c = v["plain"], v["best"], v["auto"], v["checks"]
        chosen = "+".join(a["chosen"]) or "plain"
        print(f"{result['shape']:<18}{result['oracle_auc']:7.4f}  "
              f"{p['auc']:.4f}/{p['ece']:.4f}  {_name(b):<20}{b['auc']:.4f}/{b['ece']:.4f}  "
              f"{chosen:<20}{a['auc']:.4f}/{a['ece']:.4f}  "
              + "  ".join("ok  " if c[k] else "FAIL" for k in
                          ("auc_vs_best", "auc_vs_plain", "ece_vs_plain")))
    print(f"T1: auto AUC >= best option set's - {AUC_BELOW_BEST:g}; T2: auto AUC >= plain's - "
          f"{AUC_BELOW_PLAIN:g}; T3: auto ECE <= plain's + {ECE_OVER_PLAIN:g} (issue #13)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(s.name for s in SHAPES),
                        help="comma-separated shapes (default: all)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="draws of each shape (seed, seed + 1000, ...; default 1)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every shape's training and test students (default 1)")
    parser.add_argument("--keep", type=Path, help="write the CSV files here and keep them")
    parser.add_argument("--json", type=Path, help="write every shape's figures here")
    args = parser.parse_args()
    try:
        import scipy  # noqa: F401  (auto's noise factor needs it)
    except ImportError:
        print("skipped: scipy is not installed (irt.engine.auto needs it)")
        return 0
    by_name = {s.name: s for s in SHAPES}
    names = [n.strip() for n in args.shapes.split(",") if n.strip()]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        parser.error(f"unknown shape {unknown[0]!r}; known: {', '.join(by_name)}")
    shapes = [replace(by_name[n], name=n if r == 0 else f"{n}#{r + 1}",
                      seed=by_name[n].seed + 1000 * r,
                      n_train=max(2, round(by_name[n].n_train * args.scale)),
                      n_test=max(1, round(by_name[n].n_test * args.scale)))
              for n in names for r in range(args.seeds)]
    results = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for shape in shapes:
            result = run_shape(shape, folder)
            verdict = judge(result)
            report(result, verdict)
            results.append((result, verdict))
    summary(results)
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(
            [{**r, "checks": v["checks"]} for r, v in results], indent=1, default=float))
    failed = [r["shape"] for r, v in results if not all(v["checks"].values())]
    if failed:
        print(f"targets missed on: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
