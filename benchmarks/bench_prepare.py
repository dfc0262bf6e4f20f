"""``prepare`` end to end through the DuckDB path: time and peak memory.

Each measured run is a fresh process (imports included) doing one whole refresh with
:func:`irt.refresh.pipeline.run_refresh`: DuckDB runs the BigQuery SQL over a Parquet log, Arrow
columns -> ``prepare_coded`` -> hold-out -> calibration (2PL) -> quality gate -> artifacts
(gzip CSV, model, metrics, report) -> pointer.  Peak memory is the child's ``ru_maxrss``;
the report page's time and size are the run's ``report_built`` log line's.

Reference, measured in the same run: the same process reading the same log with DuckDB
into Arrow and doing nothing else (the I/O floor); the ratio says what the pipeline costs
on top of reading its input.

Workloads:
  (a) ASSISTments 2009 (``../shared/datasets/assistments2009_lpp``, train + test, ~278k
      answers; ``seq`` becomes one second per answer from 2026-09-01) - target <= 10 s.
      Skipped if absent.
  (b) 10M simulated 2PL answers (200,000 students x 50 of 2,000 items), default
      configuration (``MAX_ANSWERS_PER_ITEM`` 5000) - target <= 60 s and <= 2 GB peak.

    PYTHONPATH=shared python benchmarks/bench_prepare.py [--repeat 3] [--only a|b]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from figures import record  # benchmarks/figures.py

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "build" / "bench"
ASSIST = ROOT.parent / "shared" / "datasets" / "assistments2009_lpp"

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {shared!r})
t0 = time.perf_counter()
mode, log, model_dir = sys.argv[1:4]
if mode == "read":
    import duckdb
    con = duckdb.connect()
    table = con.execute("SELECT * FROM read_parquet(?)", [log]).to_arrow_table()
    out = {{"rows": table.num_rows}}
else:
    from datetime import datetime, UTC
    from irt.refresh.pipeline import RefreshConfig, RunOptions, run_refresh
    from irt.refresh.sources import DuckDBSource
    from irt.store import LocalStore
    cfg = RefreshConfig.from_env({{"SOURCE_FILE": log, "MODEL_DIR": model_dir,
                                  "COLUMN_SKILL": "skill_id", "WINDOW_DAYS": "3650"}})
    report = {{}}  # the report_built line: the page's seconds and bytes
    def say(severity, message, **fields):
        if fields.get("event") == "report_built":
            report.update(fields)
    r = run_refresh(cfg, DuckDBSource(log), LocalStore(model_dir),
                    RunOptions.from_json({{"window_end": "2027-01-01T00:00:00Z"}}), log=say)
    assert r.status == 200, r.body
    out = {{"rows_in": r.body["data"]["rows_in"], "rows_out": r.body["data"]["rows_out"],
           "n_items": r.body["data"]["n_items"], "auc": r.body["gate"]["new"]["auc"],
           "report_seconds": report.get("seconds"),
           "report_bytes": report.get("report_html_bytes")}}
out["seconds"] = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
out["peak_mib"] = usage.ru_maxrss / 1024
out["cpu_seconds"] = usage.ru_utime + usage.ru_stime
print(json.dumps(out))
"""


def assistments_parquet() -> Path | None:
    if not (ASSIST / "assistments2009_lpp_train.csv.gz").exists():
        return None
    path = BENCH / "assistments2009.parquet"
    if path.exists():
        return path
    import duckdb

    BENCH.mkdir(parents=True, exist_ok=True)
    files = [str(ASSIST / f"assistments2009_lpp_{p}.csv.gz") for p in ("train", "test")]
    duckdb.execute(f"""COPY (
        SELECT 'u' || CAST(user_id AS VARCHAR) || '-' || split AS student_id,
               CAST(item_id AS VARCHAR) AS item_id, correct,
               TIMESTAMP '2026-09-01' + to_seconds(seq) AS answered_at,
               CAST(skill_id AS VARCHAR) AS skill_id
        FROM (SELECT *, 'train' AS split FROM read_csv_auto('{files[0]}')
              UNION ALL SELECT *, 'test' AS split FROM read_csv_auto('{files[1]}'))
        ) TO '{path}' (FORMAT parquet)""")
    return path


def simulated_parquet(n_students: int = 200_000, n_items: int = 2_000, per: int = 50) -> Path:
    path = BENCH / f"sim_{n_students * per // 1_000_000}m.parquet"
    if path.exists():
        return path
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(ROOT / "shared"))
    from irt.engine.simulate import simulate

    BENCH.mkdir(parents=True, exist_ok=True)
    r = simulate(n_students, n_items, per, seed=10).responses
    rng = np.random.default_rng(10)
    t = (np.datetime64("2026-01-01T00:00:00", "s").astype(np.int64)
         + rng.integers(0, 300 * 86400, r.n_answers)) * 1_000_000
    sid = pa.array([f"s{k:07d}" for k in range(r.n_students)], pa.string())
    iid = pa.array([f"item-{k:05d}" for k in range(r.n_items)], pa.string())
    table = pa.table({
        "student_id": pa.DictionaryArray.from_arrays(pa.array(r.student), sid).cast(pa.string()),
        "item_id": pa.DictionaryArray.from_arrays(pa.array(r.item), iid).cast(pa.string()),
        "correct": pa.array(r.correct.astype(np.int64)),
        "answered_at": pa.array(t, pa.timestamp("us", tz="UTC")),
        "skill_id": pa.DictionaryArray.from_arrays(
            pa.array((r.item % 50).astype(np.int32)),
            pa.array([f"k{k}" for k in range(50)])).cast(pa.string()),
    })
    pq.write_table(table, path)
    return path


def child(mode: str, log: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        script = CHILD.format(shared=str(ROOT / "shared"))
        proc = subprocess.run([sys.executable, "-c", script, mode, str(log), tmp],
                              capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    # The result is the last JSON object on stdout (DuckDB may draw its progress bar there
    # on a long query, on the same line).
    return json.loads(proc.stdout[proc.stdout.rindex('{"'):].strip())


def measure(name: str, log: Path, repeat: int, target_s: float, target_mib: float | None) -> None:
    runs = [child("refresh", log) for _ in range(repeat)]
    reads = [child("read", log) for _ in range(repeat)]
    sec = statistics.median(r["seconds"] for r in runs)
    mib = statistics.median(r["peak_mib"] for r in runs)
    ref = statistics.median(r["seconds"] for r in reads)
    ref_mib = statistics.median(r["peak_mib"] for r in reads)
    first = runs[0]
    print(f"\n({name}) {log.name}: {first['rows_in']:,} answers in, {first['rows_out']:,} kept, "
          f"{first['n_items']:,} items; hold-out AUC {first['auc']:.3f}")
    print(f"  refresh end to end: median {sec:.2f} s (runs: "
          f"{', '.join(format(r['seconds'], '.2f') for r in runs)}), peak {mib:,.0f} MiB")
    print(f"  reference (DuckDB read into Arrow only): median {ref:.2f} s, peak {ref_mib:,.0f} MiB"
          f"; ratio refresh/read {sec / ref:.1f}x")
    if all(r["report_seconds"] is not None for r in runs):  # the run's report_built line
        print(f"  report.html: median {statistics.median(r['report_seconds'] for r in runs):.2f} s "
              f"of the refresh, {first['report_bytes'] / 1e6:.2f} MB")
    # The regression check's figures (scripts/perf_regression.py): refresh time and peak
    # memory as ratios to DuckDB reading the same log in the same run.  The time is the
    # child's CPU time (user + system, all threads): on a shared machine the wall time of
    # the same run moves with the other jobs' load, its CPU time far less.
    cpu = statistics.median(r["cpu_seconds"] for r in runs)
    ref_cpu = statistics.median(r["cpu_seconds"] for r in reads)
    print(f"  CPU time: refresh {cpu:.2f} s, read {ref_cpu:.2f} s")
    record(f"prepare.{name}_cpu_seconds", cpu, unit="s (CPU)", better="lower",
           reference=ref_cpu, reference_name="DuckDB read into Arrow (CPU s)", noise=0.2)
    record(f"prepare.{name}_peak_mib", mib, unit="MiB", better="lower", reference=ref_mib,
           reference_name="DuckDB read into Arrow, peak (MiB)", noise=0.1)
    verdict = "PASS" if sec <= target_s else "MISS"
    line = f"  target <= {target_s:.0f} s: {verdict}"
    if target_mib:
        line += f"; <= {target_mib:,.0f} MiB: {'PASS' if mib <= target_mib else 'MISS'}"
    print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["a", "b"])
    args = parser.parse_args()
    if args.only in (None, "a"):
        path = assistments_parquet()
        if path is None:
            print(f"(a) skipped: {ASSIST} not found")
        else:
            measure("a", path, args.repeat, 10.0, None)
    if args.only in (None, "b"):
        measure("b", simulated_parquet(), args.repeat, 60.0, 2048.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
