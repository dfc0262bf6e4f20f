"""The local path's CSV read (``SOURCE_FILE``): declared types against the sniffed read it replaced.

:class:`irt.refresh.sources.DuckDBSource` reads a CSV with declared types: every column as
text, the answered-at column ``TRY_CAST`` to a time in the view (issue 17 item 14).  The
reference, measured in the same run on the same file, is the reader it replaced:
``read_csv(header = true, sample_size = -1)``, whose types DuckDB detects by scanning the
whole file first.  Each measurement is :func:`irt.refresh.sources.fetch` (the counts query
and the answers query, the SQL every refresh runs) on a fresh source.

Workload: N simulated answers (default 1,000,000: 50,000 students x 20 of 400 items, a
timestamp each, one in 10,000 with an answered_at that is not a time - which the sniffed read
cannot run at all, so the reference file has none).

    PYTHONPATH=shared python benchmarks/bench_local_csv.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from irt.refresh.sources import DuckDBSource, fetch
from irt.refresh.sql import QueryParams, SourceColumns

WINDOW = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


class SniffedSource(DuckDBSource):
    """The reader before issue 17 item 14: types detected over the whole file."""

    def _open(self) -> None:  # the view, created on first use as DuckDBSource's is
        if not self._opened:
            literal = "'" + str(self.path).replace("'", "''") + "'"
            self.con.execute("CREATE OR REPLACE VIEW answers AS SELECT * FROM "
                             f"read_csv({literal}, header = true, sample_size = -1)")
            self._opened = True


def write_log(path: Path, rows: int, bad_every: int) -> None:
    """``rows`` answers as CSV, written by DuckDB (``bad_every`` 0: no bad time)."""
    bad = f"WHEN i % {bad_every} = 7 THEN 'yesterday'" if bad_every else "WHEN false THEN ''"
    duckdb.sql(f"""
        COPY (
          SELECT 'stu-' || (i // 20) AS student_id, 'Q' || ((i * 7919) % 400) AS item_id,
                 CAST((hash(i) % 2) AS VARCHAR) AS correct,
                 CASE {bad} ELSE strftime(TIMESTAMP '2026-03-01' + to_seconds(i * 37 % 20000000),
                                          '%Y-%m-%d %H:%M:%S') END AS answered_at
          FROM range({rows}) t(i)
        ) TO '{path}' (HEADER, DELIMITER ',')""")


def fetch_once(make, path: Path) -> tuple[float, dict[str, int]]:
    """Seconds for a fresh source's :func:`fetch`, and its counts."""
    params = QueryParams(*WINDOW, max_answers_per_item=5000, min_answers_per_item=5,
                         min_answers_per_student=5)
    t0 = time.perf_counter()
    source = make(path)
    _, counts = fetch(source, SourceColumns(), params, source.table)
    return time.perf_counter() - t0, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clean, dirty = Path(tmp) / "clean.csv", Path(tmp) / "dirty.csv"
        write_log(clean, args.rows, 0)
        write_log(dirty, args.rows, 10_000)
        cases = {"ref": (SniffedSource, clean), "new": (DuckDBSource, clean),
                 "bad": (DuckDBSource, dirty)}
        times: dict[str, list[float]] = {k: [] for k in cases}
        counts: dict[str, dict[str, int]] = {}
        for _ in range(args.repeat):  # interleaved, so load changes hit all three alike
            for key, (make, path) in cases.items():
                seconds, counts[key] = fetch_once(make, path)
                times[key].append(seconds)
    ref, new, bad = (statistics.median(times[k]) for k in ("ref", "new", "bad"))
    ref_counts, new_counts, bad_counts = counts["ref"], counts["new"], counts["bad"]
    assert new_counts == ref_counts, (new_counts, ref_counts)
    print(f"{args.rows:,} answers, fetch() = counts + answers queries, median of {args.repeat}")
    print(f"  sniffed types (reference, before)   {ref:7.2f} s")
    print(f"  declared types (now)                {new:7.2f} s   ratio {new / ref:.2f}")
    print(f"  declared types, 1 bad time in 10k   {bad:7.2f} s   ratio {bad / ref:.2f}   "
          f"invalid_answered_at {bad_counts.get('invalid_answered_at', 0):,} "
          "(the sniffed read refuses this file: invalid_schema)")


if __name__ == "__main__":
    main()
