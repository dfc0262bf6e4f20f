"""Adaptive practice benchmark: simulated students take adaptive sessions through predict's real
``/next-items`` code, side by side with catsim 0.21 on the same simulation.

Bank: a 2PL calibrated (``irt.engine.calibrate.fit``, defaults, no SEs) on the ASSISTments
2009 training log in ``../shared/datasets/assistments2009_lpp`` (then its ``--bank-items`` most
answered items), or, when that file is absent, a simulated 2PL bank (``a ~ LogNormal(0, 0.3)``,
``b ~ N(0, 1)``); the output says which.  Students: ``--students`` true abilities from the
bank's ability prior N(0, 1); every answer is decided by one uniform per (student, item) drawn
up front, shared by every run (common random numbers).

Each session asks ``/next-items`` for one item at a time (:func:`irt.serving.plain.recommend`
with ``k = 1``, EAP, ``stop: {se: 0.3, max_items: --max-items}``) and stops when the answer
recommends stopping.  Runs: no exposure control; ``randomesque: 5`` (seed varied per request);
Sympson-Hetter (``exposure: {method: sympson-hetter}``, one seed per session) with parameters
from :func:`irt.engine.exposure_fit.sympson_hetter` (``--r-max``, sessions of ``--max-items``).
catsim runs the same sessions with ``MaxInfoSelector``, ``RandomesqueSelector(5)`` and
``MaxInfoSelector(r_max)`` (its exposure control; it has no Sympson-Hetter), its
maximum-likelihood ``NumericalSearchEstimator``, and stops at its SE ``1 / sqrt(info) <= 0.3``.

Printed per run: items to reach SE 0.3 (median, p90, share of sessions reaching it within
``--max-items``), the largest item exposure rate, the ability RMSE at the end and the median
time per recommendation (ours: one ``recommend`` call, parsing to answer; catsim: one
``select`` plus one ``estimate``), then the ratio of ours to catsim's.

    PYTHONPATH=shared python benchmarks/bench_adaptive.py            # ~1-2 minutes
    PYTHONPATH=shared python benchmarks/bench_adaptive.py --students 200 --simulated
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))
sys.path.insert(0, str(ROOT / "tests" / "support"))
DATA = ROOT.parent / "shared" / "datasets" / "assistments2009_lpp"
TRAIN = DATA / "assistments2009_lpp_train.csv.gz"
STOP_SE = 0.3


def _real_bank(n_items: int):
    from irt.engine import defaults
    from irt.engine.calibrate import FitConfig, fit
    from irt.engine.model import ItemModel
    from irt.engine.preprocess import prepare_rows
    from irt.tools.cli import _read_log

    students, items, correct, order = _read_log(TRAIN, "user_id", "seq")
    prepared = prepare_rows(
        zip(students, items, correct.tolist(), order.tolist(), strict=True),
        min_answers_per_student=defaults.DEFAULTS.min_answers_per_student)
    model = fit(prepared.responses, FitConfig(model="2pl", compute_se=False)).model
    per_item = dict(zip(prepared.responses.item_ids,
                        np.asarray(prepared.responses.answers_per_item()).tolist(), strict=True))
    answered = np.array([per_item[q] for q in model.item_ids])
    keep = np.sort(np.argsort(-answered, kind="stable")[:n_items])
    nan = np.full(keep.size, np.nan)
    bank = ItemModel("2pl", [model.item_ids[j] for j in keep], model.a[keep], model.b[keep],
                     np.zeros(keep.size), nan, nan, nan)
    return bank, (f"2PL calibrated on ASSISTments 2009 train ({prepared.responses.n_answers:,} "
                  f"answers, {model.n_items:,} items), its {keep.size} most answered items "
                  f"(>= {int(answered[keep].min())} answers each)")


def _simulated_bank(n_items: int):
    from cat_sessions import bank

    return bank(n_items=n_items, seed=11), (f"simulated 2PL bank of {n_items} items "
                                             "(a ~ LogNormal(0, 0.3), b ~ N(0, 1), seed 11)")


def _row(name: str, run, theta: np.ndarray, max_items: int) -> dict[str, float | str]:
    from catsim_sessions import rmse

    reached = run.se <= STOP_SE + 1e-9
    lengths = run.length[reached] if reached.any() else run.length
    return {"run": name, "median": float(np.median(lengths)),
            "p90": float(np.percentile(lengths, 90)), "reached": float(reached.mean()),
            "max_exposure": float(run.exposure.max()), "rmse": rmse(run.estimate, theta),
            "us": 1e6 * float(np.median(run.seconds)), "mean_len": float(run.length.mean())}


def _print(rows: list[dict]) -> None:
    print(f"  {'run':<40}{'items to SE 0.3':>17}{'reached':>9}{'max exp.':>10}"
          f"{'RMSE':>8}{'us/rec':>9}")
    for r in rows:
        print(f"  {r['run']:<40}{r['median']:>8.0f} / p90 {r['p90']:<4.0f}{r['reached']:>9.1%}"
              f"{r['max_exposure']:>10.3f}{r['rmse']:>8.3f}{r['us']:>9.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--bank-items", type=int, default=300)
    parser.add_argument("--max-items", type=int, default=40)
    parser.add_argument("--r-max", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--simulated", action="store_true",
                        help="a simulated bank even when the ASSISTments log is present")
    parser.add_argument("--no-catsim", action="store_true", help="skip catsim's runs")
    args = parser.parse_args()

    from catsim_sessions import answers, catsim_sessions, serve_sessions

    from irt.engine.exposure_fit import exposure_section, sympson_hetter

    start = time.perf_counter()
    if TRAIN.exists() and not args.simulated:
        model, source = _real_bank(args.bank_items)
    else:
        if not args.simulated:
            print(f"note: {TRAIN} not found: simulated bank")
        model, source = _simulated_bank(args.bank_items)
    print(f"bank: {source} ({time.perf_counter() - start:.1f} s)")
    print(f"students: {args.students}, theta ~ N(0, 1), seed {args.seed}; stop at SE <= "
          f"{STOP_SE} or {args.max_items} items; load average {os.getloadavg()[0]:.2f}")

    start = time.perf_counter()
    result = sympson_hetter(model, r_max=args.r_max, test_length=args.max_items,
                            n_examinees=2000, seed=args.seed)
    print(f"Sympson-Hetter parameters: r_max {args.r_max}, sessions of {args.max_items} items, "
          f"{len(result.max_exposure)} iteration(s), largest simulated exposure "
          f"{result.max_exposure[0]:.3f} -> {result.max_exposure[-1]:.3f}, "
          f"{int((result.k < 1).sum())} items with K < 1 ({time.perf_counter() - start:.1f} s)")
    from dataclasses import replace

    sh_model = replace(model, exposure=exposure_section(
        model, result, r_max=args.r_max, test_length=args.max_items, n_examinees=2000,
        seed=args.seed), _cache={})

    theta, u = answers(model, args.students, args.seed)
    common = {"max_items": args.max_items, "stop_se": STOP_SE}
    ours = [
        _row("ours: max information", serve_sessions(model, theta, u, **common), theta,
             args.max_items),
        _row("ours: randomesque 5", serve_sessions(
            model, theta, u, extra={"randomesque": 5},
            seed_of=lambda i, n: args.seed * 1_000_003 + i * 1009 + n, **common),
            theta, args.max_items),
        _row(f"ours: Sympson-Hetter r_max {args.r_max}", serve_sessions(
            sh_model, theta, u, extra={"exposure": {"method": "sympson-hetter"}},
            seed_of=lambda i, n: args.seed * 1_000_003 + i, **common), theta, args.max_items),
    ]
    print("\nthrough predict's /next-items code (EAP):")
    _print(ours)
    if args.no_catsim:
        return 0
    theirs = [
        _row("catsim: MaxInfoSelector", catsim_sessions(model, theta, u, **common), theta,
             args.max_items),
        _row("catsim: RandomesqueSelector(5)", catsim_sessions(
            model, theta, u, bin_size=5, seed=args.seed, **common), theta, args.max_items),
        _row(f"catsim: MaxInfoSelector(r_max={args.r_max})", catsim_sessions(
            model, theta, u, r_max=args.r_max, **common), theta, args.max_items),
    ]
    print("\ncatsim 0.21 (maximum likelihood, Dodd's heuristic while all right/all wrong):")
    _print(theirs)
    print("\nratio ours / catsim (same control in each row; time: per recommendation):")
    for a, b in zip(ours, theirs, strict=True):
        print(f"  {a['run'][6:]:<34} items (median) {a['median'] / b['median']:.2f}  "
              f"max exposure {a['max_exposure'] / b['max_exposure']:.2f}  "
              f"RMSE {a['rmse'] / b['rmse']:.2f}  time {a['us'] / b['us']:.2f}")
    total = statistics.fmean([r["mean_len"] for r in ours])
    print(f"\n(mean session length over our runs: {total:.1f} items)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
