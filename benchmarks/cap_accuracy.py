"""What the per-item answer cap (``MAX_ANSWERS_PER_ITEM``) costs in accuracy.

A simulated 2PL log with known item parameters goes through the real SQL (DuckDB path,
:mod:`irt.refresh.sql`) with several caps; each capped result is calibrated and its item
parameters compared with the truth (RMSE of a and b), and its calibration time reported.
The uncapped fit is the reference measured in the same run.

    PYTHONPATH=shared python benchmarks/cap_accuracy.py [--students 40000] [--items 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from irt.engine.calibrate import FitConfig, Priors, fit
from irt.engine.preprocess import prepare_coded
from irt.engine.simulate import simulate
from irt.refresh.sources import DuckDBSource, fetch
from irt.refresh.sql import QueryParams, SourceColumns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=40_000)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--per-student", type=int, default=50)
    args = parser.parse_args()
    sim = simulate(args.students, args.items, args.per_student, seed=3)
    r = sim.responses
    t = np.datetime64("2026-10-01T00:00:00", "us").astype(np.int64) + np.arange(r.n_answers)
    table = pa.table({
        "student_id": pa.array([f"s{k}" for k in r.student.tolist()]),
        "item_id": pa.array([f"q{k}" for k in r.item.tolist()]),
        "correct": pa.array(r.correct.astype(np.int64)),
        "answered_at": pa.array(t, pa.timestamp("us", tz="UTC")),
    })
    per_item = r.n_answers / r.n_items
    print(f"{r.n_answers:,} answers, {r.n_items} items ({per_item:,.0f} answers per item), "
          f"{r.n_students:,} students")
    print(f"{'cap':>8} {'answers':>10} {'rmse a':>8} {'rmse b':>8} {'fit s':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.parquet"
        pq.write_table(table, path)
        source = DuckDBSource(path)
        for cap in (10**9, 10_000, 5_000, 2_000, 1_000, 500):
            params = QueryParams(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC),
                                 cap, 10, 2, 256)
            answers, _ = fetch(source, SourceColumns(), params, source.table)
            s = answers.column("student_id").combine_chunks().dictionary_encode()
            i = answers.column("item_id").combine_chunks().dictionary_encode()
            prepared = prepare_coded(s.indices.to_numpy(), s.dictionary.to_pylist(),
                                     i.indices.to_numpy(), i.dictionary.to_pylist(),
                                     answers.column("correct").to_numpy().astype(float),
                                     min_answers_per_item=10, min_answers_per_student=2)
            t0 = time.perf_counter()
            model = fit(prepared.responses, FitConfig(
                priors=Priors(a_lognormal=(0, 0.5), b_normal=(0, 2)), compute_se=False)).model
            seconds = time.perf_counter() - t0
            truth = np.array([int(x[1:]) for x in model.item_ids])
            rmse_a = float(np.sqrt(np.mean((model.a - sim.a[truth]) ** 2)))
            rmse_b = float(np.sqrt(np.mean((model.b - sim.b[truth]) ** 2)))
            label = "none" if cap >= 10**9 else f"{cap:,}"
            print(f"{label:>8} {prepared.report.rows_out:>10,} {rmse_a:>8.4f} {rmse_b:>8.4f} "
                  f"{seconds:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
