"""Write the bundled sample answer log ``samples/answers.csv.gz`` (deterministic).

A simulated LMS export for the local runs (``make demo``): 1,500 students answer
20 of 150 items each under a 2PL model, between 2026-06-01 and 2026-10-31, with
the faults a real log has - repeated attempts, null ids, an unparseable
``correct``, an absurdly long id - so the run report has something to count.
Columns: ``student_id, item_id, correct, answered_at, skill_id``.

    python scripts/sample_log.py            # rewrites samples/answers.csv.gz
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))

from irt.engine.simulate import simulate  # noqa: E402

START = datetime(2026, 6, 1, tzinfo=UTC)
DAYS = 152


def rows() -> list[list[str]]:
    sim = simulate(1500, 150, 20, seed=7)
    r = sim.responses
    rng = np.random.default_rng(7)
    # each student works in one session-day; answers a minute apart
    day = rng.integers(0, DAYS, r.n_students)
    out: list[list[str]] = []
    order = np.lexsort((r.item, r.student))
    minute = 0
    prev = -1
    for k in order.tolist():
        s, j, y = int(r.student[k]), int(r.item[k]), int(r.correct[k])
        minute = minute + 1 if s == prev else 0
        prev = s
        t = START + timedelta(days=int(day[s]), hours=9, minutes=minute)
        out.append([f"stu-{s:05d}", f"Q{j:03d}", "1" if y else "0",
                    t.strftime("%Y-%m-%d %H:%M:%S"), f"skill-{j % 12:02d}"])
        if rng.random() < 0.03:  # a later second attempt (dropped as duplicate)
            later = t + timedelta(minutes=30)
            out.append([f"stu-{s:05d}", f"Q{j:03d}", "1", later.strftime("%Y-%m-%d %H:%M:%S"),
                        f"skill-{j % 12:02d}"])
    ts = (START + timedelta(days=110)).strftime("%Y-%m-%d %H:%M:%S")
    out += [["", "Q001", "1", ts, "skill-01"], ["stu-00001", "", "0", ts, "skill-01"],
            ["stu-00002", "Q002", "maybe", ts, "skill-02"], ["x" * 300, "Q003", "1", ts, ""]]
    return out


def main() -> int:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student_id", "item_id", "correct", "answered_at", "skill_id"])
    w.writerows(rows())
    path = ROOT / "samples" / "answers.csv.gz"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(gzip.compress(buf.getvalue().encode(), compresslevel=9, mtime=0))
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
