"""Do offline metrics predict what the LMS gets? A simulated study (ML Test Score, model 2).

The refresh judges a model offline: AUC and log-loss of held-out answers, each predicted from
the student's earlier answers.  What the LMS cares about is different: ``predict``'s
``/next-items`` should give each learner practice inside the target success band, and
practice there should bring the learner to mastery in fewer answers.  This study measures
both, for models of deliberately varied quality, and reports how the offline figures
correlate with the online outcome.

The world (one per seed): a bank of ``n_items`` 2PL items, ``a ~ lognormal(0, 0.3)``,
``b ~ N(0, 1)``.  The models, each an :class:`~irt.engine.model.ItemModel` over the same
items:

* ``true``: the true parameters;
* ``calibrated``: :func:`irt.engine.calibrate.fit` (the project's defaults) on a static log
  of ``n_calibration`` students answering ``calibration_answers`` random items each;
* ``noise s``: the true parameters with ``b + N(0, s^2)`` and ``log a + N(0, (s/2)^2)``, for
  each ``s`` of ``noise_levels``;
* ``shuffled``: the true parameters given to the wrong items (a permutation): a model that
  knows the bank's distribution but nothing about any item.

Offline: each model's AUC and log-loss on a static log of ``n_offline`` *other* students
(``offline_answers`` random items each), online protocol (:func:`irt.engine.evaluate.evaluate`).

Online (the simulated LMS): ``n_learners`` learners, ``theta_0 ~ N(0, 1)``, practise
``steps`` items each.  At every step the LMS sends the learner's answers so far to
``predict``'s next-items code (:func:`irt.serving.recommend`, ``strategy`` =
``target_probability``, ``target``, ``k`` = 1: the real serving path) and the learner answers
the item it returns, right with the *true* probability at the learner's *current* ability.
Known learning dynamics: each answer raises the ability by ``gain_in_band`` when the item's
true success probability was inside ``band`` and by ``gain_outside`` otherwise (practice at
the right difficulty teaches most).  Outcomes per model: the share of recommended items whose
true probability was inside the band, the mean distance of that probability from the target,
and the answers a learner needed to reach mastery (``theta_0 + mastery_gain``; ``steps + 1``
when not reached).  Learners, their starting abilities and the uniform draws that decide
their answers are the same for every model of a seed (common random numbers), so models are
compared on the same learners.

Correlation: Spearman's rank correlation across models between the offline figure (AUC; minus
log-loss) and the outcome, per seed and pooled over seeds, with the one-sided 1 % critical
value of a permutation test (:func:`permutation_critical`), so that "they correlate" is a
claim that could fail.

    PYTHONPATH=shared python -m irt.tools.online_study [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from irt.engine.calibrate import FitConfig, fit
from irt.engine.evaluate import evaluate
from irt.engine.model import ItemModel, irf
from irt.engine.simulate import simulate
from irt.serving import Limits, recommend
from irt.tools.common import int_in


@dataclass(frozen=True)
class StudyConfig:
    """Sizes and dynamics of the study (defaults: the benchmark's full run).

    Attributes:
        n_items: items in the bank.
        n_calibration: students of the calibration log (the ``calibrated`` model).
        calibration_answers: random items answered by each of them.
        n_offline: students of the offline evaluation log.
        offline_answers: random items answered by each of them.
        n_learners: learners in the simulated LMS, per model and seed.
        steps: practice answers per learner.
        target: success probability ``/next-items`` aims at.
        band: the target band ``(low, high)`` of true success probability.
        gain_in_band: ability gained per answer to an item inside the band (logits).
        gain_outside: ability gained per answer to an item outside it.
        mastery_gain: a learner reaches mastery ``mastery_gain`` logits above the start.
        noise_levels: SDs of the noise added to the true difficulties (half of it to log
            slopes), one model each.
        seeds: one world (bank, calibration, offline log, learners) per seed.
    """

    n_items: int = 200
    n_calibration: int = 1000
    calibration_answers: int = 20
    n_offline: int = 600
    offline_answers: int = 20
    n_learners: int = 200
    steps: int = 30
    target: float = 0.7
    band: tuple[float, float] = (0.6, 0.8)
    gain_in_band: float = 0.08
    gain_outside: float = 0.02
    mastery_gain: float = 0.8
    noise_levels: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    seeds: tuple[int, ...] = (1, 2, 3)


#: The test's size: a few seconds on a 2-core machine.
QUICK = StudyConfig(n_items=80, n_calibration=600, n_offline=300, n_learners=60, steps=20,
                    seeds=(1, 2))


def _model(ids: Sequence[str], a: np.ndarray, b: np.ndarray) -> ItemModel:
    n = len(ids)
    return ItemModel(model_type="2pl", item_ids=tuple(ids), a=np.asarray(a, dtype=float),
                     b=np.asarray(b, dtype=float), c=np.zeros(n), se_a=np.full(n, np.nan),
                     se_b=np.full(n, np.nan), se_c=np.full(n, np.nan))


def models_of_varied_quality(seed: int, config: StudyConfig) -> tuple[dict[str, ItemModel],
                                                                     np.ndarray, np.ndarray]:
    """The world of ``seed``: ``(models by name, true a, true b)``."""
    world = simulate(config.n_calibration, config.n_items, config.calibration_answers,
                     seed=seed)
    a, b = world.a, world.b
    ids = world.responses.item_ids
    rng = np.random.default_rng([seed, 7])
    models = {"true": _model(ids, a, b)}
    calibrated = fit(world.responses, FitConfig(compute_se=False)).model
    positions = calibrated.positions(list(ids))
    if (positions < 0).any():  # an item left out of the fit: the prior's typical item
        ca = np.where(positions >= 0, calibrated.a[positions], 1.0)
        cb = np.where(positions >= 0, calibrated.b[positions], 0.0)
        calibrated = _model(ids, ca, cb)
    models["calibrated"] = calibrated
    for s in config.noise_levels:
        models[f"noise {s:g}"] = _model(ids, a * np.exp(rng.normal(0, s / 2, a.size)),
                                        b + rng.normal(0, s, b.size))
    perm = rng.permutation(a.size)
    models["shuffled"] = _model(ids, a[perm], b[perm])
    return models, a, b


def offline_metrics(models: dict[str, ItemModel], a: np.ndarray, b: np.ndarray, seed: int,
                    config: StudyConfig) -> dict[str, dict[str, float]]:
    """AUC and log-loss of each model on the same static log of new students (online
    protocol: each answer predicted from the student's earlier answers)."""
    rng = np.random.default_rng([seed, 11])
    n, k = config.n_offline, config.offline_answers
    theta = rng.standard_normal(n)
    item = np.argsort(rng.random((n, a.size)), axis=1)[:, :k].reshape(-1)
    student = np.repeat(np.arange(n), k)
    correct = (rng.random(item.size) < irf(theta[student], a[item], b[item],
                                          np.zeros(item.size))).astype(np.int8)
    ids = np.array([f"q{j}" for j in range(a.size)], dtype=object)[item]
    out = {}
    for name, model in models.items():
        ev, _ = evaluate(model, student, ids, correct)
        out[name] = {"auc": ev.auc, "log_loss": ev.log_loss}
    return out


def run_lms(model: ItemModel, a: np.ndarray, b: np.ndarray, seed: int,
            config: StudyConfig) -> dict[str, float]:
    """The simulated LMS with ``model`` serving ``/next-items``: the outcomes (module
    docstring) and their standard errors over learners."""
    rng = np.random.default_rng([seed, 13])
    theta0 = rng.standard_normal(config.n_learners)
    draws = rng.random((config.n_learners, config.steps))
    limits = Limits()
    lo, hi = config.band
    in_band = np.zeros((config.n_learners, config.steps), dtype=bool)
    distance = np.zeros((config.n_learners, config.steps))
    to_mastery = np.full(config.n_learners, config.steps + 1, dtype=float)
    for s in range(config.n_learners):
        theta = float(theta0[s])
        answers: list[dict[str, Any]] = []
        for t in range(config.steps):
            chosen = recommend(model, {"responses": answers, "k": 1,
                                       "strategy": "target_probability",
                                       "target": config.target}, limits, "study")["items"]
            item_id = chosen[0]["item_id"]
            j = int(item_id[1:])
            p = 1.0 / (1.0 + math.exp(-a[j] * (theta - b[j])))
            in_band[s, t] = lo <= p <= hi
            distance[s, t] = abs(p - config.target)
            answers.append({"item_id": item_id, "correct": bool(draws[s, t] < p)})
            theta += config.gain_in_band if in_band[s, t] else config.gain_outside
            if theta >= theta0[s] + config.mastery_gain and to_mastery[s] > config.steps:
                to_mastery[s] = t + 1
    share = in_band.mean(axis=1)
    n = config.n_learners
    return {"share_in_band": float(share.mean()),
            "share_in_band_se": float(share.std(ddof=1) / math.sqrt(n)),
            "mean_distance_from_target": float(distance.mean()),
            "answers_to_mastery": float(to_mastery.mean()),
            "answers_to_mastery_se": float(to_mastery.std(ddof=1) / math.sqrt(n)),
            "mastered": float((to_mastery <= config.steps).mean())}


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def permutation_critical(n: int, level: float = 0.01, draws: int = 20_000,
                         seed: int = 0) -> float:
    """The one-sided ``level`` critical value of Spearman's rho for ``n`` untied pairs under
    no association: the ``1 - level`` quantile of rho over random permutations."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(n, dtype=float)
    perms = np.argsort(rng.random((draws, n)), axis=1).astype(float)
    d2 = ((perms - ranks) ** 2).sum(axis=1)
    rho = 1.0 - 6.0 * d2 / (n * (n * n - 1))
    return float(np.quantile(rho, 1.0 - level))


def study(config: StudyConfig = StudyConfig()) -> dict[str, Any]:
    """Run the study: one row per (seed, model) and the correlations.

    Returns:
        ``{"config", "rows": [{seed, model, auc, log_loss, share_in_band, ...}],
        "correlation": {"per_seed": {seed: {...}}, "pooled": {...}}, "seconds"}``; each
        correlation block has ``auc_vs_share_in_band``, ``neg_log_loss_vs_share_in_band``,
        ``auc_vs_fewer_answers_to_mastery`` and the 1 % ``critical`` value for its size.
    """
    t0 = time.perf_counter()
    rows = []
    for seed in config.seeds:
        models, a, b = models_of_varied_quality(seed, config)
        offline = offline_metrics(models, a, b, seed, config)
        for name, model in models.items():
            rows.append({"seed": seed, "model": name, **offline[name],
                         **run_lms(model, a, b, seed, config)})

    def block(part: list[dict[str, Any]]) -> dict[str, float]:
        auc = [r["auc"] for r in part]
        return {"n": len(part),
                "auc_vs_share_in_band": spearman(auc, [r["share_in_band"] for r in part]),
                "neg_log_loss_vs_share_in_band": spearman([-r["log_loss"] for r in part],
                                                          [r["share_in_band"] for r in part]),
                "auc_vs_fewer_answers_to_mastery": spearman(
                    auc, [-r["answers_to_mastery"] for r in part]),
                "critical": permutation_critical(len(part))}

    per_seed = {str(s): block([r for r in rows if r["seed"] == s]) for s in config.seeds}
    pooled = block(rows)
    return {"config": asdict(config), "rows": rows,
            "correlation": {"per_seed": per_seed, "pooled": pooled},
            "seconds": round(time.perf_counter() - t0, 2)}


def table(result: dict[str, Any]) -> str:
    """The rows and correlations as Markdown."""
    lines = ["| seed | model | AUC | log-loss | share in band | distance from target | "
             "answers to mastery | mastered |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['seed']} | {r['model']} | {r['auc']:.4f} | {r['log_loss']:.4f} | "
                     f"{r['share_in_band']:.3f} ± {r['share_in_band_se']:.3f} | "
                     f"{r['mean_distance_from_target']:.3f} | "
                     f"{r['answers_to_mastery']:.1f} ± {r['answers_to_mastery_se']:.1f} | "
                     f"{r['mastered']:.2f} |")
    lines += ["", "| Spearman over models | n | AUC vs share in band | -log-loss vs share in "
              "band | AUC vs fewer answers to mastery | 1 % critical |",
              "|---|---|---|---|---|---|"]
    corr = result["correlation"]
    for label, c in [*((f"seed {k}", v) for k, v in corr["per_seed"].items()),
                     ("pooled", corr["pooled"])]:
        lines.append(f"| {label} | {c['n']} | {c['auc_vs_share_in_band']:.3f} | "
                     f"{c['neg_log_loss_vs_share_in_band']:.3f} | "
                     f"{c['auc_vs_fewer_answers_to_mastery']:.3f} | {c['critical']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the test's smaller size")
    parser.add_argument("--seeds", type=int_in(0), nargs="*", help="seeds (default 1 2 3)")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else StudyConfig()
    if args.seeds:
        config = replace(config, seeds=tuple(args.seeds))
    result = study(config)
    print(table(result))
    print(f"\n{len(result['rows'])} (seed, model) runs in {result['seconds']} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
