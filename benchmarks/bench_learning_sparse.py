"""Learning-aware calibration on the extremely sparse LMS-like log (issue #13): time per option
set, E-steps, convergence, accuracy.

The log is :func:`irt.engine.simulate.simulate_sparse` (100k answers on about 40,000 items,
over 80 % of them answered at most twice, Zipf exposure; 2PL truth, items grouped in 200
skills), with its ``item_skill`` as the skill map.  Each option set is calibrated as
``prepare`` calibrates it (:func:`irt.engine.learning_fit.fit_learning` with the defaults,
on top of the default 2PL fit).  Reported per option set: wall time (median of ``--repeat``),
E-steps, whether EM converged by its criterion, the offset SD ``tau``, the log-likelihood and
the RMSE of ``b`` against the truth on the items with at least 20 answers.

Reference, measured in the same run: the plain 2PL fit of the same log (the options start
from it); the ratio says what the options cost on top.  Target (#13): the plain fit
converges in <= 10 s, every option set in <= 60 s.  The simulated truth has no skill
offsets (``tau`` = 0) and no learning: the options should find ``tau`` near 0 and change
little.

    PYTHONPATH=shared python benchmarks/bench_learning_sparse.py [--repeat 1] [--options ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from irt.engine.calibrate import FitConfig, fit
from irt.engine.learning import learning_of, parse_options
from irt.engine.learning_fit import LearningConfig, fit_learning
from irt.engine.simulate import simulate_sparse

TARGET_PLAIN_SECONDS = 10.0
TARGET_OPTIONS_SECONDS = 60.0
OPTION_SETS = ("recency", "skills", "pfa", "skills,pfa", "recency,skills,pfa")


def _rmse_b(model, sim, min_count: int = 20) -> float:
    counts = np.bincount(sim.responses.item, minlength=len(sim.responses.item_ids))
    truth = {item: j for j, item in enumerate(sim.responses.item_ids)}
    rows = [(model.index[i], truth[i]) for i in model.item_ids if counts[truth[i]] >= min_count]
    got, want = np.array(rows).T
    return float(np.sqrt(np.mean((model.b[got] - sim.b[want]) ** 2)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="fits per case (median)")
    parser.add_argument("--options", nargs="*", default=list(OPTION_SETS),
                        help="option sets to time (default: %(default)s)")
    args = parser.parse_args()
    sim = simulate_sparse(seed=1)
    r = sim.responses
    counts = np.bincount(r.item)
    print(f"sparse log: {r.n_answers:,} answers, {counts.size:,} items "
          f"({np.mean(counts <= 2):.1%} answered at most twice), "
          f"{int(sim.item_skill.max()) + 1} skills", flush=True)
    skill_ids = [f"k{k}" for k in range(int(sim.item_skill.max()) + 1)]
    plain_runs = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = fit(r, FitConfig(compute_se=False))
        plain_runs.append(time.perf_counter() - start)
    plain = statistics.median(plain_runs)
    base = result.model
    status = "PASS" if plain <= TARGET_PLAIN_SECONDS and result.converged else "MISS"
    print(f"{'reference: plain 2PL fit':<28} {plain:7.2f} s  {result.iterations:4d} EM cycles  "
          f"converged={result.converged}  RMSE b {_rmse_b(base, sim):.3f}  "
          f"(target <= {TARGET_PLAIN_SECONDS:.0f} s: {status})", flush=True)
    worst = 0.0
    for text in args.options:
        options = parse_options(text)
        runs = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            out = fit_learning(base, r, None, sim.item_skill, skill_ids,
                               LearningConfig(options=options))
            runs.append(time.perf_counter() - start)
        seconds = statistics.median(runs)
        worst = max(worst, seconds)
        spec = learning_of(out.model)
        print(f"{'+'.join(options):<28} {seconds:7.2f} s  {out.iterations:4d} E-steps  "
              f"converged={out.converged}  x{seconds / plain:.1f} the plain fit  "
              f"tau {spec.skill_sd if spec else 0.0:.3f}  loglik {out.log_likelihood:.1f}  "
              f"RMSE b {_rmse_b(out.model, sim):.3f}", flush=True)
    status = "PASS" if worst <= TARGET_OPTIONS_SECONDS else "MISS"
    print(f"slowest option set {worst:.1f} s; target: every option set converges in "
          f"<= {TARGET_OPTIONS_SECONDS:.0f} s: {status} (see the converged flags above)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
