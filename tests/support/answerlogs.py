"""Answer-log fixtures for the ``prepare`` tests: the same rows into DuckDB (a CSV file)
and into BigQuery (the emulator), so both paths can be compared row for row."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from irt.engine.simulate import simulate

COLUMNS = ("student_id", "item_id", "correct", "answered_at", "skill_id")
T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
WINDOW = (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))


def ts(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")


def edge_rows() -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows with every fault the SQL must count, and the expected drops per reason."""
    rows = [
        # s1: a kept answer, a later retry (duplicate), another kept item
        ("s1", "q1", "1", ts(0)), ("s1", "q1", "0", ts(5)), ("s1", "q2", "true", ts(1)),
        # s2: two attempts at the same time: the incorrect one is kept
        ("s2", "q1", "1", ts(2)), ("s2", "q1", "0", ts(2)), ("s2", "q2", "FALSE", ts(3)),
        # ids are trimmed: " s3 " is s3
        (" s3 ", "q1", "0", ts(4)), ("s3", "q2", "1", ts(6)),
        (None, "q1", "1", ts(0)), ("   ", "q1", "1", ts(0)),          # null_student_id x2
        ("s4", None, "1", ts(0)),                                     # null_item_id
        ("x" * 300, "q1", "1", ts(0)),                                # id_too_long
        ("s5", "q1", "maybe", ts(0)), ("s5", "q2", None, ts(0)),      # invalid_correct x2
        ("s6", "q1", "1", None),                                      # invalid_answered_at
        ("s7", "q1", "1", "2020-01-01 00:00:00"),                     # outside the window
        ("s8", "q3", "1", ts(9)),                                     # q3: one answer only
        ("s9", "q1", "1", ts(7)),                                     # s9: one answer only
    ]
    expected = {"null_student_id": 2, "null_item_id": 1, "id_too_long": 1,
                "invalid_correct": 2, "invalid_answered_at": 1, "duplicate_attempt": 2,
                "item_answer_cap": 0, "item_below_min_answers": 1,
                "student_below_min_answers": 1}
    return [dict(zip(COLUMNS, (*r, "k1"), strict=True)) for r in rows], expected


def long_id_rows() -> list[dict[str, Any]]:
    """4 students x 3 items, every id a 30-digit number (exact text on both paths)."""
    students = [f"12345678901234567890123456789{k}" for k in range(4)]
    items = [f"90000000000000000000000000000{j}" for j in range(3)]
    return [{"student_id": s, "item_id": i, "correct": str((k + j) % 2),
             "answered_at": ts(k * 3 + j), "skill_id": "k1"}
            for k, s in enumerate(students) for j, i in enumerate(items)]


def simulated_rows(n_students: int = 400, n_items: int = 25, per_student: int | None = 15,
                   seed: int = 0, start: datetime = T0, student_prefix: str = "stu"
                   ) -> list[dict[str, Any]]:
    """A 2PL log with one timestamp per answer (a minute apart within a student)."""
    r = simulate(n_students, n_items, per_student, seed=seed).responses
    rng = np.random.default_rng(seed)
    day = rng.integers(0, 20, r.n_students)
    rows = []
    seen: dict[int, int] = {}
    for s, j, y in zip(r.student.tolist(), r.item.tolist(), r.correct.tolist(), strict=True):
        k = seen[s] = seen.get(s, -1) + 1
        t = start + timedelta(days=int(day[s]), minutes=k)
        rows.append({"student_id": f"{student_prefix}-{s:04d}", "item_id": f"Q{j:02d}",
                     "correct": str(y), "answered_at": t.strftime("%Y-%m-%d %H:%M:%S"),
                     "skill_id": f"k{j % 3}"})
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS})
    return path


def load_bigquery(client: Any, table_id: str, rows: list[dict[str, Any]]) -> str:
    """Create ``table_id`` (STRING ids and correct, TIMESTAMP answered_at) and insert rows."""
    from google.cloud import bigquery

    project, dataset, _ = table_id.split(".")
    client.create_dataset(f"{project}.{dataset}", exists_ok=True)
    schema = [bigquery.SchemaField("student_id", "STRING"),
              bigquery.SchemaField("item_id", "STRING"),
              bigquery.SchemaField("correct", "STRING"),
              bigquery.SchemaField("answered_at", "TIMESTAMP"),
              bigquery.SchemaField("skill_id", "STRING")]
    table = client.create_table(bigquery.Table(table_id, schema=schema))
    for k in range(0, len(rows), 1000):
        errors = client.insert_rows_json(table, rows[k:k + 1000])
        assert not errors, errors
    return table_id
