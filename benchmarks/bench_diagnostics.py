"""``irt.engine.diagnostics.diagnose`` on a sparse LMS log: ASSISTments 2009 (training file,
about 217k first attempts by 2,491 students on 17,339 items, 0.5 % of the cells answered).

The model is the 2PL calibrated on the same file with the project defaults (as ``prepare``
and ``irt fit`` calibrate).  Reference, measured in the same run: that calibration's wall time
(``calibrate.fit``, no SEs).  Reported: the median of ``--repeat`` diagnose runs, each part's
median (abilities, residual fit, grouped X2, global fit, local dependence, reliability), and
the ratio to the fit.  Target (issue #15): a sparse log is diagnosed in seconds (at most
``TARGET_SECONDS``).  For comparison, the complete SAT12 test (600 x 32, from
``tests/data``), where M2 and S-X2 also run, is timed the same way.  Skipped cleanly when
``../shared/datasets/assistments2009_lpp`` is absent.

    PYTHONPATH=shared .venv/bin/python benchmarks/bench_diagnostics.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "assistments2009_lpp"
TRAIN = DATA / "assistments2009_lpp_train.csv.gz"
SAT12 = ROOT / "tests" / "data" / "sat12_scored.csv"
TARGET_SECONDS = 10.0


def _timed_diagnose(model, responses, repeat: int) -> tuple[float, dict[str, float], object]:
    from irt.engine.diagnostics import diagnose

    totals, parts = [], []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = diagnose(model, responses)
        totals.append(time.perf_counter() - start)
        parts.append(result.seconds)
    medians = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
    return statistics.median(totals), medians, result


def _report(name: str, fit_s: float, total: float, parts: dict[str, float], result) -> None:
    design = result.design()
    print(f"\n{name}: {design['n_answers']} answers, {design['n_students']} students, "
          f"{design['n_items']} items, {'complete' if design['complete'] else 'incomplete'} "
          f"design ({100 * design['density']:.3g}% of cells)")
    print(f"  reference: calibrate.fit (2pl, defaults, no SEs)  {fit_s:8.3f} s")
    print(f"  diagnose (median)                                 {total:8.3f} s  "
          f"= {total / fit_s:.3f} x the fit")
    for k, v in parts.items():
        print(f"    {k:<20}{v:8.3f} s")
    g = result.global_fit
    m2 = (f"M2 {g.m2.m2:.1f} (df {g.m2.df}), RMSEA {g.m2.rmsea:.4f}" if g.m2 is not None
          else "M2 not computed (design too sparse); log-likelihood, AIC, BIC instead")
    print(f"  {m2}; empirical reliability {result.reliability.empirical:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="diagnose runs (median)")
    args = parser.parse_args()
    from irt.engine.calibrate import FitConfig, fit
    from irt.engine.preprocess import prepare_rows
    from irt.engine.responses import Responses

    rows = []
    if SAT12.exists():
        X = np.loadtxt(SAT12, delimiter=",", skiprows=1)
        sat12 = Responses.from_dense(X)
        start = time.perf_counter()
        model = fit(sat12, FitConfig(compute_se=False)).model
        fit_s = time.perf_counter() - start
        rows.append(("SAT12 (complete test)", fit_s, *_timed_diagnose(model, sat12, args.repeat)))
    if not TRAIN.exists():
        print(f"skipped ASSISTments 2009: {TRAIN} not found")
    else:
        from irt.engine import defaults
        from irt.tools.cli import _read_log

        students, items, correct, order = _read_log(TRAIN, "user_id", "seq")
        prepared = prepare_rows(
            zip(students, items, correct.tolist(), order.tolist(), strict=True),
            min_answers_per_student=defaults.DEFAULTS.min_answers_per_student)
        train = prepared.responses
        start = time.perf_counter()
        model = fit(train, FitConfig(compute_se=False)).model
        fit_s = time.perf_counter() - start
        rows.append(("ASSISTments 2009 train (sparse log)", fit_s,
                     *_timed_diagnose(model, train, args.repeat)))
    for row in rows:
        _report(*row)
    sparse = [r for r in rows if not r[4].data.complete]
    if sparse:
        total = sparse[0][2]
        verdict = "met" if total <= TARGET_SECONDS else "MISSED"
        print(f"\ntarget: a sparse log diagnosed in <= {TARGET_SECONDS:.0f} s: {verdict} "
              f"({total:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
