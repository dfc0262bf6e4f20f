"""Training/serving skew on raw answers: the same LMS answers, once through ``prepare``'s path
(the answer-log SQL on DuckDB, ``prepare_coded``, as ``irt.refresh.pipeline`` runs them) and once as
the JSON the LMS sends to ``predict`` (``irt.serving.predict``), must give each student the
same answers counted - first attempt per item, by time - and the same ability.

Hypothesis writes the logs: retries of the same item (the first counts), answers out of time
order, unknown items, ``correct`` spelt 1/0/true/false, several students. The two differences
the tests below pin were found here and fixed: ids with surrounding blanks (both paths trim
them now) and two attempts at the same item with the same timestamp (both keep the incorrect
one). The refresh's own skew check (``irt.refresh.monitoring.skew_check``) compares the two on the
prepared answers of every run.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irt.engine.ability import eap
from irt.engine.calibrate import FitConfig, fit
from irt.engine.preprocess import prepare_coded
from irt.engine.simulate import simulate
from irt.refresh.columns import encode
from irt.refresh.sources import DuckDBSource, fetch
from irt.refresh.sql import QueryParams, SourceColumns
from irt.serving import Limits, predict

T0 = datetime(2026, 10, 1, tzinfo=UTC)
WINDOW = QueryParams(T0 - timedelta(days=1), T0 + timedelta(days=30), 10**6, 1, 1, 256)


@pytest.fixture(scope="module")
def model():
    return fit(simulate(1000, 12, 8, seed=8).responses, FitConfig(compute_se=False)).model


def training_answers(rows: list[dict[str, Any]], folder: Path) -> dict[str, list[tuple]]:
    """``{student: [(item, correct), ...]}`` as prepare keeps them (the refresh's steps 3-4)."""
    path = folder / "log.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["student_id", "item_id", "correct", "answered_at"])
        w.writeheader()
        w.writerows(rows)
    table, _ = fetch(DuckDBSource(path), SourceColumns(), WINDOW, "answers")
    s_codes, s_dict = encode(table.column("student_id"))
    i_codes, i_dict = encode(table.column("item_id"))
    correct = pc.fill_null(table.column("correct").cast(pa.float64()), float("nan")).to_numpy()
    us = table.column("answered_at").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    seconds = pc.fill_null(us.cast(pa.float64()), float("nan")).to_numpy() / 1e6
    order = np.lexsort((i_codes, seconds, s_codes))
    prepared = prepare_coded(s_codes[order], s_dict, i_codes[order], i_dict, correct[order],
                             seconds[order])
    r = prepared.responses
    out: dict[str, list[tuple]] = {}
    for s, j, y in zip(r.student.tolist(), r.item.tolist(), r.correct.tolist(), strict=True):
        out.setdefault(r.student_ids[s], []).append((r.item_ids[j], int(y)))
    return out


def serving_request(rows: list[dict[str, Any]], student: str) -> dict[str, Any]:
    """What the LMS sends predict for one student: the same answers, as JSON."""
    answers = [{"item_id": r["item_id"], "correct": r["correct"] in ("1", "true", "TRUE"),
                "answered_at": r["answered_at"].replace(" ", "T") + "Z"}
               for r in rows if r["student_id"] == student]
    return {"responses": answers}


def compare(model, rows: list[dict[str, Any]], folder: Path) -> list[str]:
    kept = training_answers(rows, folder)
    problems = []
    for student in sorted({r["student_id"] for r in rows}):
        served = predict(model, serving_request(rows, student), Limits(), "skew")
        known = [(i, y) for i, y in kept.get(student.strip(), []) if i in model.index]
        pos = np.array([model.index[i] for i, _ in known], dtype=np.int64)
        theta, se = eap(model, pos, np.array([y for _, y in known], dtype=np.int8))
        ability = served["ability"]
        if ability["n_answers"] != len(known) or abs(ability["theta"] - theta) > 2e-6 or abs(
                ability["se"] - se) > 2e-6:
            problems.append(f"{student!r}: training kept {known}, predict counted "
                            f"{ability['n_answers']} answers: theta {ability['theta']} vs "
                            f"{theta}")
    return problems


@st.composite
def logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = []
    for s in range(draw(st.integers(1, 4))):
        minutes = draw(st.lists(st.integers(0, 40), min_size=1, max_size=12))
        for minute in minutes:  # ties on the time too, retries of one item at the same time
            item = draw(st.sampled_from([f"q{j}" for j in range(12)] + ["new-item"]))
            item = draw(st.sampled_from(["", " ", "\t"])) + item + draw(  # padded ids too
                st.sampled_from(["", " ", "  "]))
            rows.append({"student_id": f"s{s}", "item_id": item,
                         "correct": draw(st.sampled_from(["1", "0", "true", "false"])),
                         "answered_at": (T0 + timedelta(minutes=minute)).strftime(
                             "%Y-%m-%d %H:%M:%S")})
    return draw(st.permutations(rows))  # the log's row order is not the time order


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=logs())
def test_prepare_and_predict_count_the_same_answers(model, tmp_path_factory, rows) -> None:
    assert not compare(model, rows, tmp_path_factory.mktemp("skew"))
    # the SQL trims ids, so predict must too: the same answers with padded ids are the same
    # answers to the same items (not unknown items)
    for student in sorted({r["student_id"] for r in rows}):
        plain = serving_request([{**r, "item_id": r["item_id"].strip()} for r in rows], student)
        padded = {"responses": [{**a, "item_id": f" {a['item_id']}\t"}
                                for a in plain["responses"]]}
        one, two = (predict(model, body, Limits(), "skew") for body in (plain, padded))
        assert two["ability"] == one["ability"] and two["unknown_items"] == one["unknown_items"]


def _row(student: str, item: str, correct: str, minute: int) -> dict[str, Any]:
    return {"student_id": student, "item_id": item, "correct": correct,
            "answered_at": (T0 + timedelta(minutes=minute)).strftime("%Y-%m-%d %H:%M:%S")}


def test_retries_and_order_agree(model, tmp_path) -> None:
    rows = [_row("s1", "q1", "0", 5), _row("s1", "q1", "1", 1), _row("s1", "q2", "1", 3),
            _row("s1", "q2", "0", 9), _row("s1", "q3", "true", 2)]
    assert not compare(model, rows, tmp_path)


def test_padded_ids_agree(model, tmp_path) -> None:
    """Both paths trim ids: ' q1 ' is q1 (and a retry of it as 'q1' is a second attempt)."""
    rows = [_row("s1", " q1 ", "1", 1), _row("s1", "q2", "0", 2)]
    assert not compare(model, rows, tmp_path)
    rows += [_row("s1", "q1", "0", 3), _row("s1", "\tq3", "1", 4)]
    assert not compare(model, rows, tmp_path)


def test_simultaneous_attempts_agree(model, tmp_path) -> None:
    """Two attempts at one item with the same timestamp: both paths keep the incorrect one
    (the SQL by ORDER BY answered_at, correct; predict likewise), in either order sent."""
    rows = [_row("s1", "q1", "1", 1), _row("s1", "q1", "0", 1), _row("s1", "q2", "0", 2)]
    assert not compare(model, rows, tmp_path)
    assert not compare(model, [rows[1], rows[0], rows[2]], tmp_path)
