"""Calibration on an extremely sparse LMS-like log (issue #13): time, convergence, accuracy.

The log is :func:`irt.engine.simulate.simulate_sparse` (100k answers; about 40,000 items
answered, over 80 % of them at most twice, Zipf exposure; 2PL truth; 200 skills).  It is
calibrated as ``prepare`` calibrates by default (2PL, priors ``PRIOR_A=0,0.5``,
``PRIOR_B=0,2``, every item kept: ``--min-answers`` 1), once without and once with the log's
item -> skill map (the skill prior, as with ``COLUMN_SKILL``), and, for comparison, without
priors.  Reported per fit: wall time, EM cycles, whether EM converged by its criterion, RMSE
of ``a`` and ``b`` against the truth on the items with at least 20 answers, and RMSE of ``b``
on the items answered at most twice.

Reference, measured in the same run: the same fit on a well-covered log of the same size
(``simulate(5000, 100, 20)``: 100k answers, 100 items); the ratio says what the sparsity
costs.  Target (#13): the sparse fit with the default priors converges in <= 10 s.

    PYTHONPATH=shared python benchmarks/bench_sparse.py [--repeat 1] [--min-answers 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np

from irt.engine.calibrate import FitConfig, Priors, fit
from irt.engine.simulate import simulate, simulate_sparse

TARGET_SECONDS = 10.0


def _fit(responses, priors: Priors | None, min_answers: int | None, skills: tuple = ()
         ) -> tuple[float, object]:
    start = time.perf_counter()
    config = FitConfig(priors=priors, compute_se=False)
    if min_answers is not None:
        config = replace(config, min_answers_per_item=min_answers)
    result = fit(responses, config, *skills)
    return time.perf_counter() - start, result


def _rmse(result, sim, ids: list[str], min_count: int = 20, max_count: int | None = None
          ) -> tuple[float, float, int]:
    model = result.model
    counts = np.bincount(sim.responses.item, minlength=len(ids))
    truth = {item: j for j, item in enumerate(ids)}
    rows = [(model.index[i], truth[i]) for i in model.item_ids if counts[truth[i]] >= min_count
            and (max_count is None or counts[truth[i]] <= max_count)]
    if not rows:
        return float("nan"), float("nan"), 0
    got, want = np.array(rows).T
    return (float(np.sqrt(np.mean((model.a[got] - sim.a[want]) ** 2))),
            float(np.sqrt(np.mean((model.b[got] - sim.b[want]) ** 2))), len(rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="fits per case (median)")
    parser.add_argument("--min-answers", type=int, default=None,
                        help="MIN_ANSWERS_PER_ITEM of the fits (default: the defaults', 1)")
    parser.add_argument("--skip-no-priors", action="store_true",
                        help="skip the fit without priors (it may run to the 500-cycle cap)")
    args = parser.parse_args()
    sparse = simulate_sparse(seed=1)
    counts = np.bincount(sparse.responses.item)
    print(f"sparse log: {sparse.responses.n_answers:,} answers, {counts.size:,} items, "
          f"{np.mean(counts <= 2):.1%} of them answered at most twice, "
          f"{int((counts >= 100).sum())} at least 100 times")
    dense = simulate(5000, 100, 20, seed=1)
    ids = list(sparse.responses.item_ids)
    skill_map = (sparse.item_skill, [f"k{k}" for k in range(sparse.skill_b.shape[0])])
    cases: list[tuple[str, object, Priors | None, tuple]] = [
        ("dense reference, priors", dense.responses, None, ()),
        ("sparse, priors (the defaults)", sparse.responses, None, ()),
        ("sparse, priors + skill prior", sparse.responses, None, skill_map)]
    if not args.skip_no_priors:
        cases.append(("sparse, no priors", sparse.responses, Priors(), ()))
    seconds: dict[str, float] = {}
    for name, responses, pri, skills in cases:
        runs = [_fit(responses, pri, args.min_answers, skills) for _ in range(args.repeat)]
        seconds[name] = statistics.median(t for t, _ in runs)
        result = runs[-1][1]
        line = (f"{name:<36} {seconds[name]:7.2f} s  {result.iterations:4d} EM cycles  "
                f"converged={result.converged}  items={result.model.n_items:,}")
        if responses is sparse.responses:
            ra, rb, n = _rmse(result, sparse, ids)
            _, rare_b, n_rare = _rmse(result, sparse, ids, 1, 2)
            line += (f"  RMSE a {ra:.3f}, b {rb:.3f} on the {n} items with >= 20 answers; "
                     f"b {rare_b:.3f} on the {n_rare} with <= 2")
        print(line, flush=True)
    ratio = seconds["sparse, priors (the defaults)"] / seconds["dense reference, priors"]
    print(f"sparse / dense time: {ratio:.1f}x")
    for main_case in ("sparse, priors (the defaults)", "sparse, priors + skill prior"):
        status = "PASS" if seconds[main_case] <= TARGET_SECONDS else "MISS"
        print(f"target: {main_case} converges in <= {TARGET_SECONDS:.0f} s: {status} "
              f"(see the converged flag above)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
