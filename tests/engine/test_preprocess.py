"""Tests for irt.engine.preprocess: row validation, first-attempt dedup, min-answer filters."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irt.engine.preprocess import (
    DROP_REASONS,
    PreparedAnswers,
    PrepareReport,
    parse_correct,
    parse_timestamp,
    prepare_rows,
)

# --------------------------------------------------------------------------- helpers


def answers(prepared: PreparedAnswers) -> list[tuple[str, str, int]]:
    """Kept answers as (student_id, item_id, correct), in output order."""
    r = prepared.responses
    return [
        (r.student_ids[s], r.item_ids[i], int(c))
        for s, i, c in zip(r.student.tolist(), r.item.tolist(), r.correct.tolist(), strict=True)
    ]


def nonzero_drops(prepared: PreparedAnswers) -> dict[str, int]:
    return {k: v for k, v in prepared.report.dropped.items() if v}


# --------------------------------------------------------------------------- parse_correct


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, 1), (False, 0), (1, 1), (0, 0), (1.0, 1), (0.0, 0), (-0.0, 0),
        (np.int64(1), 1), (np.int8(0), 0), (np.float32(1.0), 1), (np.bool_(True), 1),
        ("1", 1), ("0", 0), ("true", 1), ("FALSE", 0), (" True ", 1), ("t", 1), ("F", 0),
        ("yes", 1), ("No", 0), ("\tyes\n", 1),
    ],
)
def test_parse_correct_valid(value: object, expected: int) -> None:
    result = parse_correct(value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    "value",
    [2, -1, 0.5, 1.0000001, "maybe", "", " ", "2", "1.0", "y", "n", "on", None,
     float("nan"), float("inf"), np.nan, b"1", [1], {"a": 1}, 1 + 0j],
)
def test_parse_correct_invalid(value: object) -> None:
    assert parse_correct(value) is None


# --------------------------------------------------------------------------- parse_timestamp


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0.0), (1_700_000_000, 1_700_000_000.0), (1.5, 1.5), (-86400, -86400.0),
        (np.int64(42), 42.0), (np.float64(2.25), 2.25),
        ("1700000000", 1_700_000_000.0), (" 12.5 ", 12.5), ("-3", -3.0), ("1e3", 1000.0),
        ("20240101", 20_240_101.0),  # numeric strings are always epoch seconds
        ("1970-01-01T00:00:00Z", 0.0), ("1970-01-01T00:00:10z", 10.0),
        ("1970-01-01T00:00:10", 10.0),  # naive = UTC
        ("1970-01-01 00:01:00", 60.0),
        ("1970-01-01T01:00:00+01:00", 0.0),
        ("1970-01-02", 86400.0),
        ("2024-03-05T10:20:30.250Z", datetime(2024, 3, 5, 10, 20, 30, 250000, UTC).timestamp()),
        (datetime(1970, 1, 1, 0, 0, 5), 5.0),
        (datetime(1970, 1, 1, 2, 0, 5, tzinfo=timezone(timedelta(hours=2))), 5.0),
    ],
)
def test_parse_timestamp_valid(value: object, expected: float) -> None:
    result = parse_timestamp(value)
    assert isinstance(result, float)
    assert result == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("value", [None, "", "   ", "\t"])
def test_parse_timestamp_absent(value: object) -> None:
    assert parse_timestamp(value) is None


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), -float("inf"), "nan", "inf", "1e400", True, False,
     "yesterday", "2024-13-01", "2024-01-01T25:00", "12:00", "1_000", [1], object(),
     10**400],
)
def test_parse_timestamp_invalid(value: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(value)


def test_parse_timestamp_naive_and_utc_datetimes_agree() -> None:
    naive = datetime(2023, 6, 1, 12, 30)
    assert parse_timestamp(naive) == parse_timestamp(naive.replace(tzinfo=UTC))
    assert parse_timestamp(naive) == parse_timestamp("2023-06-01T12:30:00Z")


# --------------------------------------------------------------------------- prepare_rows: basics


def test_simple_rows_keep_input_order_and_first_appearance_indices() -> None:
    rows = [
        {"student_id": "s2", "item_id": "q1", "correct": 1},
        {"student_id": "s1", "item_id": "q2", "correct": 0},
        {"student_id": "s2", "item_id": "q2", "correct": "true"},
    ]
    out = prepare_rows(rows)
    r = out.responses
    assert r.student_ids == ("s2", "s1")
    assert r.item_ids == ("q1", "q2")
    assert r.student.tolist() == [0, 1, 0]
    assert r.item.tolist() == [0, 1, 1]
    assert r.correct.tolist() == [1, 0, 1]
    assert r.student.dtype == np.int32 and r.correct.dtype == np.int8
    assert out.answered_at is None
    assert out.report.rows_in == 3 and out.report.rows_out == 3
    assert out.report.n_students == 2 and out.report.n_items == 2
    assert sum(out.report.dropped.values()) == 0


def test_tuple_rows_with_and_without_timestamp() -> None:
    rows = [("a", "x", 1, 10), ("a", "x", 0, 5), ("b", "x", "0"), ["b", "y", True, None]]
    out = prepare_rows(rows)
    assert answers(out) == [("a", "x", 0), ("b", "x", 0), ("b", "y", 1)]
    assert out.answered_at is not None
    assert out.answered_at[0] == 5.0
    assert np.isnan(out.answered_at[1:]).all()


def test_generator_input_is_consumed_once() -> None:
    rows = ({"student_id": f"s{k % 3}", "item_id": f"i{k % 2}", "correct": k % 2}
            for k in range(6))
    out = prepare_rows(rows)
    assert out.report.rows_in == 6
    assert out.report.rows_out == 6


def test_empty_input() -> None:
    out = prepare_rows([])
    assert out.responses.n_answers == 0
    assert out.responses.student_ids == () and out.responses.item_ids == ()
    assert out.report.rows_in == 0 and out.report.rows_out == 0
    assert out.answered_at is None


def test_ids_are_str_converted_and_stripped() -> None:
    rows = [
        {"student_id": 7, "item_id": " q1 ", "correct": 1},
        {"student_id": "7", "item_id": "q1\t", "correct": 0},  # same pair -> duplicate
        {"student_id": "  7 ", "item_id": "q2", "correct": 0},
        {"student_id": "Zoë", "item_id": "日本", "correct": 1},
    ]
    out = prepare_rows(rows)
    assert out.responses.student_ids == ("7", "Zoë")
    assert out.responses.item_ids == ("q1", "q2", "日本")
    assert answers(out) == [("7", "q1", 1), ("7", "q2", 0), ("Zoë", "日本", 1)]
    assert nonzero_drops(out) == {"duplicate_attempt": 1}


def test_dropped_rows_do_not_take_indices() -> None:
    rows = [
        {"student_id": "ghost", "item_id": "phantom", "correct": "maybe"},
        {"student_id": "s1", "item_id": "i1", "correct": 1},
    ]
    out = prepare_rows(rows)
    assert out.responses.student_ids == ("s1",)
    assert out.responses.item_ids == ("i1",)
    assert out.responses.student.tolist() == [0]


def test_indices_follow_kept_rows_not_dropped_attempts() -> None:
    # s1's first row loses to its later, earlier-timestamped attempt, so s2 is seen first
    # among the kept answers and gets index 0.
    rows = [("s1", "q", 0, 10), ("s2", "q", 1), ("s1", "q", 1, 5)]
    out = prepare_rows(rows)
    assert out.responses.student_ids == ("s2", "s1")
    assert out.responses.student.tolist() == [0, 1]
    assert answers(out) == [("s2", "q", 1), ("s1", "q", 1)]


def test_bad_row_shapes_raise() -> None:
    with pytest.raises(ValueError, match="row 2: expected 3 or 4 fields, got 2"):
        prepare_rows([("a", "b", 1), ("a", "b")])
    with pytest.raises(ValueError, match="got 5"):
        prepare_rows([("a", "b", 1, None, "extra")])
    with pytest.raises(TypeError, match="row 1"):
        prepare_rows(["abc"])
    with pytest.raises(TypeError):
        prepare_rows([42])


@pytest.mark.parametrize(
    "kwargs",
    [{"min_answers_per_item": -1}, {"min_answers_per_student": -2}, {"max_id_length": 0}],
)
def test_invalid_arguments(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        prepare_rows([("a", "b", 1)], **kwargs)


# --------------------------------------------------------------------------- drop reasons


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        ({"student_id": None, "item_id": "i", "correct": 1}, "null_student_id"),
        ({"student_id": "   ", "item_id": "i", "correct": 1}, "null_student_id"),
        ({"student_id": float("nan"), "item_id": "i", "correct": 1}, "null_student_id"),
        ({"item_id": "i", "correct": 1}, "null_student_id"),
        ({"student_id": "s", "item_id": None, "correct": 1}, "null_item_id"),
        ({"student_id": "s", "item_id": "", "correct": 1}, "null_item_id"),
        ({"student_id": "s", "item_id": "i", "correct": 2}, "invalid_correct"),
        ({"student_id": "s", "item_id": "i", "correct": "maybe"}, "invalid_correct"),
        ({"student_id": "s", "item_id": "i", "correct": None}, "invalid_correct"),
        ({"student_id": "s", "item_id": "i"}, "invalid_correct"),
        ({"student_id": "s", "item_id": "i", "correct": 1, "answered_at": "soon"},
         "invalid_answered_at"),
        ({"student_id": "s", "item_id": "i", "correct": 1, "answered_at": float("nan")},
         "invalid_answered_at"),
        ({"student_id": "s" * 9, "item_id": "i", "correct": 1}, "id_too_long"),
        ({"student_id": "s", "item_id": "i" * 9, "correct": 1}, "id_too_long"),
    ],
)
def test_each_row_drop_reason(bad_row: dict[str, object], reason: str) -> None:
    good = {"student_id": "ok", "item_id": "ok", "correct": 1}
    out = prepare_rows([good, bad_row, good | {"item_id": "ok2"}], max_id_length=8)
    assert nonzero_drops(out) == {reason: 1}
    assert out.report.rows_out == 2
    assert answers(out) == [("ok", "ok", 1), ("ok", "ok2", 1)]


def test_drop_reason_priority() -> None:
    rows = [
        # null student wins over everything else
        {"student_id": None, "item_id": None, "correct": "x", "answered_at": "bad"},
        # null item wins over a too-long student id and a bad correct
        {"student_id": "s" * 20, "item_id": " ", "correct": "x"},
        # too long wins over invalid correct
        {"student_id": "s" * 20, "item_id": "i", "correct": "x"},
        # invalid correct wins over invalid answered_at
        {"student_id": "s", "item_id": "i", "correct": "x", "answered_at": "bad"},
    ]
    out = prepare_rows(rows, max_id_length=10)
    assert nonzero_drops(out) == {
        "null_student_id": 1, "null_item_id": 1, "id_too_long": 1, "invalid_correct": 1,
    }


def test_id_length_is_measured_after_strip() -> None:
    out = prepare_rows([{"student_id": "  abcd  ", "item_id": "i", "correct": 1}],
                       max_id_length=4)
    assert out.report.rows_out == 1
    assert out.responses.student_ids == ("abcd",)
    out = prepare_rows([{"student_id": "abcde", "item_id": "i", "correct": 1}], max_id_length=4)
    assert nonzero_drops(out) == {"id_too_long": 1}


def test_empty_answered_at_is_absent_not_invalid() -> None:
    rows = [
        {"student_id": "s", "item_id": "i", "correct": 1, "answered_at": ""},
        {"student_id": "s", "item_id": "j", "correct": 1, "answered_at": None},
        {"student_id": "s", "item_id": "k", "correct": 1, "answered_at": "  "},
    ]
    out = prepare_rows(rows)
    assert out.report.rows_out == 3
    assert out.answered_at is None


def test_report_dict_is_json_ready_and_complete() -> None:
    rows = [("a", "x", 1), ("a", "x", 0), (None, "x", 1), ("b", "x", "?")]
    out = prepare_rows(rows)
    d = out.report.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert list(d["dropped"]) == list(DROP_REASONS)
    assert d == {
        "rows_in": 4, "rows_out": 1,
        "dropped": dict.fromkeys(DROP_REASONS, 0) | {
            "duplicate_attempt": 1, "null_student_id": 1, "invalid_correct": 1,
        },
        "n_students": 1, "n_items": 1,
    }
    assert isinstance(out.report, PrepareReport)


# --------------------------------------------------------------------------- first attempt


def test_earliest_timestamp_wins_over_input_order() -> None:
    rows = [
        {"student_id": "s", "item_id": "i", "correct": 0, "answered_at": 300},
        {"student_id": "s", "item_id": "i", "correct": 1, "answered_at": "1970-01-01T00:01:40Z"},
        {"student_id": "s", "item_id": "i", "correct": 0, "answered_at": 200.0},
    ]
    out = prepare_rows(rows)
    assert answers(out) == [("s", "i", 1)]
    assert out.answered_at is not None and out.answered_at.tolist() == [100.0]
    assert nonzero_drops(out) == {"duplicate_attempt": 2}


def test_timestamp_ties_go_to_the_incorrect_attempt_then_input_order() -> None:
    """As the answer-log SQL (ORDER BY answered_at, correct) and predict break them."""
    rows = [
        ("s", "i", 1, 50), ("s", "i", 0, "1970-01-01T00:00:50+00:00"), ("s", "i", 1, 50.0),
        ("t", "i", 1, 50), ("t", "i", 1, 50.0, ), ("t", "j", 1), ("t", "j", 0),
    ]
    out = prepare_rows(rows)
    assert answers(out) == [("s", "i", 0), ("t", "i", 1), ("t", "j", 1)]
    assert out.report.dropped["duplicate_attempt"] == 4


def test_rows_without_timestamp_lose_to_timestamped_ones() -> None:
    rows = [("s", "i", 0), ("s", "i", 0, ""), ("s", "i", 1, 10**9), ("s", "i", 0, 2 * 10**9)]
    out = prepare_rows(rows)
    assert answers(out) == [("s", "i", 1)]
    assert out.answered_at is not None and out.answered_at.tolist() == [1e9]


def test_without_any_timestamp_first_in_input_wins() -> None:
    rows = [("s", "i", 1), ("t", "i", 0), ("s", "i", 0), ("t", "i", 1)]
    out = prepare_rows(rows)
    assert answers(out) == [("s", "i", 1), ("t", "i", 0)]


def test_invalid_first_attempt_does_not_count_as_attempt() -> None:
    rows = [("s", "i", "maybe"), ("s", "i", 0), ("s", "i", 1)]
    out = prepare_rows(rows)
    assert answers(out) == [("s", "i", 0)]
    assert nonzero_drops(out) == {"invalid_correct": 1, "duplicate_attempt": 1}


def test_output_stays_in_input_order_not_time_order() -> None:
    rows = [("a", "x", 1, 30), ("b", "x", 0, 10), ("c", "x", 1, 20)]
    out = prepare_rows(rows)
    assert [s for s, _, _ in answers(out)] == ["a", "b", "c"]
    assert out.answered_at is not None and out.answered_at.tolist() == [30.0, 10.0, 20.0]


def test_answered_at_aligned_with_nan_for_missing() -> None:
    rows = [("a", "x", 1, None), ("a", "y", 0, "1970-01-01T00:00:07Z"), ("b", "x", 1)]
    out = prepare_rows(rows)
    assert out.answered_at is not None
    assert out.answered_at.dtype == np.float64
    assert np.isnan(out.answered_at[0]) and np.isnan(out.answered_at[2])
    assert out.answered_at[1] == 7.0


def test_answered_at_none_when_only_dropped_rows_have_timestamps() -> None:
    rows = [("a", "x", 1), ("b", "x", "bad", 5)]
    out = prepare_rows(rows)
    assert out.answered_at is None
    assert out.report.rows_out == 1


# --------------------------------------------------------------------------- min filters


def test_item_minimum() -> None:
    rows = [("s1", "common", 1), ("s2", "common", 0), ("s1", "rare", 1)]
    out = prepare_rows(rows, min_answers_per_item=2)
    assert answers(out) == [("s1", "common", 1), ("s2", "common", 0)]
    assert out.responses.item_ids == ("common",)
    assert nonzero_drops(out) == {"item_below_min_answers": 1}


def test_student_minimum() -> None:
    rows = [("s1", "a", 1), ("s2", "a", 0), ("s1", "b", 1)]
    out = prepare_rows(rows, min_answers_per_student=2)
    assert answers(out) == [("s1", "a", 1), ("s1", "b", 1)]
    assert out.responses.student_ids == ("s1",)
    assert nonzero_drops(out) == {"student_below_min_answers": 1}


def test_min_filters_cascade_until_stable() -> None:
    # Item "c" has one answer -> dropped; then s3 has one answer left -> dropped; then
    # item "b" has one answer left -> dropped; then s2 has one answer left -> dropped;
    # then item "a" keeps s1 only -> dropped; and s1 ... everything unravels.
    rows = [
        ("s1", "a", 1), ("s2", "a", 1),
        ("s2", "b", 0), ("s3", "b", 0),
        ("s3", "c", 1),
    ]
    out = prepare_rows(rows, min_answers_per_item=2, min_answers_per_student=2)
    assert out.report.rows_out == 0
    assert out.responses.student_ids == () and out.responses.item_ids == ()
    d = out.report.dropped
    assert d["item_below_min_answers"] + d["student_below_min_answers"] == 5
    assert d["item_below_min_answers"] >= 1 and d["student_below_min_answers"] >= 1


def test_min_filters_partial_cascade() -> None:
    # Dense 3x3 block survives; a straggler student answering one block item and one
    # lone item goes away in round 2 after the lone item is dropped in round 1.
    block = [(f"s{k}", f"i{j}", (k + j) % 2) for k in range(3) for j in range(3)]
    rows = [*block, ("lone", "i0", 1), ("lone", "solo", 0)]
    out = prepare_rows(rows, min_answers_per_item=2, min_answers_per_student=2)
    assert answers(out) == [(s, i, c) for s, i, c in block]
    assert nonzero_drops(out) == {"item_below_min_answers": 1, "student_below_min_answers": 1}
    assert "lone" not in out.responses.student_ids
    assert "solo" not in out.responses.item_ids


@pytest.mark.parametrize("minimum", [0, 1])
def test_minimum_zero_or_one_keeps_everything(minimum: int) -> None:
    rows = [("a", "x", 1), ("b", "y", 0)]
    out = prepare_rows(rows, min_answers_per_item=minimum, min_answers_per_student=minimum)
    assert out.report.rows_out == 2


# --------------------------------------------------------------------------- properties

ID_VALUES = [
    "a", "b", " a ", "é", "日本", "ab", "abc", "abcd", "x\ty", "", "  ", None, 1, "1", 2.5,
]
CORRECT_VALUES = [
    0, 1, True, False, "1", "0", " TRUE ", "no", "Yes", 1.0, 0.0,
    2, -1, 0.5, "maybe", None, float("nan"), "",
]
TIME_VALUES = [
    None, "", 0, 1, 2, 3, 2.0, 3.5, "1970-01-01T00:00:03Z", "1970-01-01T00:00:01",
    datetime(1970, 1, 1, 0, 0, 2), "bad", float("nan"), "4",
]
MISSING = object()


@st.composite
def raw_rows(draw: st.DrawFn) -> list[object]:
    n = draw(st.integers(0, 40))
    rows: list[object] = []
    for _ in range(n):
        sid = draw(st.sampled_from(ID_VALUES))
        iid = draw(st.sampled_from(ID_VALUES))
        correct = draw(st.sampled_from(CORRECT_VALUES))
        when = draw(st.sampled_from([*TIME_VALUES, MISSING]))
        if draw(st.booleans()):
            row: dict[str, object] = {"student_id": sid, "item_id": iid, "correct": correct}
            if when is not MISSING:
                row["answered_at"] = when
            rows.append(row)
        elif when is MISSING:
            rows.append((sid, iid, correct))
        else:
            rows.append((sid, iid, correct, when))
    return rows


def norm_id(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def unpack(row: object) -> tuple[object, object, object, object]:
    if isinstance(row, dict):
        return (row.get("student_id"), row.get("item_id"), row.get("correct"),
                row.get("answered_at"))
    assert isinstance(row, tuple)
    return (*row, None) if len(row) == 3 else row  # type: ignore[return-value]


def reference(rows: list[object], min_item: int, min_student: int, max_len: int
              ) -> tuple[list[tuple[str, str, int, float | None]], Counter[str]]:
    """Naive pure-Python reimplementation of the documented pipeline."""
    drops: Counter[str] = Counter()
    valid = []
    for pos, row in enumerate(rows):
        sid_raw, iid_raw, c_raw, t_raw = unpack(row)
        sid, iid = norm_id(sid_raw), norm_id(iid_raw)
        if not sid:
            drops["null_student_id"] += 1
            continue
        if not iid:
            drops["null_item_id"] += 1
            continue
        if len(sid) > max_len or len(iid) > max_len:
            drops["id_too_long"] += 1
            continue
        c = parse_correct(c_raw)
        if c is None:
            drops["invalid_correct"] += 1
            continue
        try:
            t = parse_timestamp(t_raw)
        except ValueError:
            drops["invalid_answered_at"] += 1
            continue
        valid.append((pos, sid, iid, c, t))
    best: dict[tuple[str, str], tuple[int, str, str, int, float | None]] = {}
    for rec in valid:
        key = (rec[1], rec[2])
        cur = best.get(key)
        rank = (math.inf, 0, rec[0]) if rec[4] is None else (rec[4], rec[3], rec[0])
        if cur is None or rank < ((math.inf, 0, cur[0]) if cur[4] is None
                                  else (cur[4], cur[3], cur[0])):
            best[key] = rec
    drops["duplicate_attempt"] = len(valid) - len(best)
    kept = sorted(best.values())
    while True:
        changed = False
        per_item = Counter(rec[2] for rec in kept)
        survivors = [rec for rec in kept if per_item[rec[2]] >= min_item]
        if len(survivors) < len(kept):
            drops["item_below_min_answers"] += len(kept) - len(survivors)
            kept, changed = survivors, True
        per_student = Counter(rec[1] for rec in kept)
        survivors = [rec for rec in kept if per_student[rec[1]] >= min_student]
        if len(survivors) < len(kept):
            drops["student_below_min_answers"] += len(kept) - len(survivors)
            kept, changed = survivors, True
        if not changed:
            return [(s, i, c, t) for _, s, i, c, t in kept], drops


def maximal_subset(pairs: list[tuple[str, str]], min_item: int, min_student: int
                   ) -> list[tuple[str, str]]:
    """Largest subset meeting both minimums, found by removing students first."""
    kept = list(pairs)
    while True:
        per_student = Counter(s for s, _ in kept)
        nxt = [p for p in kept if per_student[p[0]] >= min_student]
        per_item = Counter(i for _, i in nxt)
        nxt = [p for p in nxt if per_item[p[1]] >= min_item]
        if len(nxt) == len(kept):
            return kept
        kept = nxt


@settings(max_examples=300, deadline=None)
@given(
    rows=raw_rows(),
    min_item=st.integers(0, 3),
    min_student=st.integers(0, 3),
    max_len=st.integers(1, 4),
)
def test_prepare_rows_properties(
    rows: list[object], min_item: int, min_student: int, max_len: int
) -> None:
    out = prepare_rows(rows, min_answers_per_item=min_item,
                       min_answers_per_student=min_student, max_id_length=max_len)
    r, rep = out.responses, out.report

    # Accounting.
    assert rep.rows_in == len(rows)
    assert rep.rows_in == rep.rows_out + sum(rep.dropped.values())
    assert set(rep.dropped) == set(DROP_REASONS)
    assert rep.rows_out == r.n_answers
    assert (rep.n_students, rep.n_items) == (r.n_students, r.n_items)

    # At most one answer per pair; minimums met; every listed id has answers.
    pairs = list(zip(r.student.tolist(), r.item.tolist(), strict=True))
    assert len(set(pairs)) == len(pairs)
    per_item, per_student = r.answers_per_item(), r.answers_per_student()
    assert (per_item >= max(min_item, 1)).all()
    assert (per_student >= max(min_student, 1)).all()

    # Indices in order of first appearance.
    for index in (r.student, r.item):
        _, first = np.unique(index, return_index=True)
        assert (np.diff(first) > 0).all()

    # Ids round trip and are normalised, non-empty, within the length limit.
    for name in r.student_ids + r.item_ids:
        assert name == name.strip() and 0 < len(name) <= max_len

    # Exact agreement with the naive reference (ids, order, correct, timestamps, counts).
    expected, drops = reference(rows, min_item, min_student, max_len)
    got = answers(out)
    assert got == [(s, i, c) for s, i, c, _ in expected]
    assert rep.dropped == {k: drops.get(k, 0) for k in DROP_REASONS}
    times = [t for *_, t in expected]
    if all(t is None for t in times):
        assert out.answered_at is None
    else:
        assert out.answered_at is not None
        assert [None if math.isnan(t) else t for t in out.answered_at.tolist()] == times

    # The kept set does not depend on the order the two filters are applied in.
    deduped, _ = reference(rows, 0, 0, max_len)
    alt = maximal_subset([(s, i) for s, i, _, _ in deduped], min_item, min_student)
    assert sorted(alt) == sorted((s, i) for s, i, _ in got)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["s1", "s2", "s3"]), st.sampled_from(["a", "b"]),
                          st.sampled_from([0, 1]),
                          st.one_of(st.none(), st.integers(0, 5))), max_size=30))
def test_kept_answer_is_earliest_valid_attempt(rows: list[tuple[str, str, int, int | None]]
                                               ) -> None:
    out = prepare_rows(rows)
    for k, (sid, iid, c) in enumerate(answers(out)):
        attempts = [(math.inf, 0, pos, cc) if t is None else (t, cc, pos, cc)
                    for pos, (s, i, cc, t) in enumerate(rows) if (s, i) == (sid, iid)]
        t_best, _, _, c_best = min(attempts)
        assert c == c_best
        got_t = None if out.answered_at is None else out.answered_at[k]
        if t_best == math.inf:
            assert got_t is None or math.isnan(got_t)
        else:
            assert got_t == t_best
    assert out.report.rows_out == len({(s, i) for s, i, _, _ in rows})


def test_large_input_smoke() -> None:
    rng = np.random.default_rng(0)
    n = 50_000
    s = rng.integers(0, 2_000, n)
    i = rng.integers(0, 100, n)
    c = rng.integers(0, 2, n)
    rows = [{"student_id": f"s{a}", "item_id": f"i{b}", "correct": int(x)}
            for a, b, x in zip(s.tolist(), i.tolist(), c.tolist(), strict=True)]
    out = prepare_rows(rows, min_answers_per_item=5, min_answers_per_student=5)
    assert out.report.rows_in == n
    assert out.report.dropped["duplicate_attempt"] == n - len(set(zip(s.tolist(), i.tolist(),
                                                                         strict=True)))
    assert (out.responses.answers_per_student() >= 5).all()
    assert (out.responses.answers_per_item() >= 5).all()


# --------------------------------------------------------------------------- prepare_coded
def _encode(values):
    """Dictionary-encode a list (None -> code -1), as Arrow's dictionary_encode does."""
    index: dict = {}
    codes = [-1 if v is None else index.setdefault(v, len(index)) for v in values]
    return np.array(codes, dtype=np.int64), list(index)


@pytest.mark.parametrize("seed", range(8))
def test_prepare_coded_equals_prepare_rows(seed):
    """The columnar path gives exactly the rows path's answers, ids, order and report."""
    from irt.engine.preprocess import prepare_coded

    rng = np.random.default_rng(seed)
    n = 400
    pool_s = [None, "", " s0", "s0", "s1 ", "s2", "s3", "x" * 40, *[f"s{k}" for k in range(4, 30)]]
    pool_i = [None, "q0", "q0 ", "q1", "q2", "y" * 40, *[f"q{k}" for k in range(3, 12)]]
    sids = [pool_s[k] for k in rng.integers(0, len(pool_s), n)]
    iids = [pool_i[k] for k in rng.integers(0, len(pool_i), n)]
    correct = rng.choice([0.0, 1.0, 1.0, 0.0, 2.0, np.nan], n)
    times = rng.integers(0, 50, n).astype(float)
    times[rng.random(n) < 0.1] = np.nan
    kwargs = dict(min_answers_per_item=int(rng.integers(1, 6)),
                  min_answers_per_student=int(rng.integers(1, 4)), max_id_length=30)
    rows = [(s, i, (None if np.isnan(c) else int(c) if c in (0, 1) else "maybe"),
             None if np.isnan(t) else t) for s, i, c, t in
             zip(sids, iids, correct, times, strict=True)]
    expected = prepare_rows(rows, **kwargs)
    s_codes, s_dict = _encode(sids)
    i_codes, i_dict = _encode(iids)
    got = prepare_coded(s_codes, s_dict, i_codes, i_dict, correct, times, **kwargs)
    assert got.report == expected.report
    assert got.responses.student_ids == expected.responses.student_ids
    assert got.responses.item_ids == expected.responses.item_ids
    np.testing.assert_array_equal(got.responses.student, expected.responses.student)
    np.testing.assert_array_equal(got.responses.item, expected.responses.item)
    np.testing.assert_array_equal(got.responses.correct, expected.responses.correct)
    if expected.answered_at is None:
        assert got.answered_at is None
    else:
        np.testing.assert_array_equal(got.answered_at, expected.answered_at)


def test_prepare_coded_rejects_bad_shapes_and_codes():
    from irt.engine.preprocess import prepare_coded

    with pytest.raises(ValueError, match="same length"):
        prepare_coded(np.array([0, 0]), ["a"], np.array([0]), ["q"], np.array([1]))
    with pytest.raises(ValueError, match="student code outside"):
        prepare_coded(np.array([1]), ["a"], np.array([0]), ["q"], np.array([1]))
    with pytest.raises(ValueError, match="min_answers_per_item"):
        prepare_coded(np.array([0]), ["a"], np.array([0]), ["q"], np.array([1]),
                      min_answers_per_item=-1)


@pytest.mark.parametrize("values", [[0, 0, 1, 2, 2, 3], [0, 1, 0, 2, 1], [2, 0, 1, 2], [0, 2, 1],
                                    [1, 1, 1], [0]])
def test_first_appearance_fast_path_matches_the_general_one(values):
    from irt.engine.preprocess import _first_appearance

    index = np.array(values)
    new, old = _first_appearance(index, 5)
    seen: dict[int, int] = {}
    expected_new = [seen.setdefault(v, len(seen)) for v in values]
    assert new.tolist() == expected_new
    assert old.tolist() == list(seen)


def test_prepare_coded_pairs_do_not_overflow_int32():
    """65,537 students x 65,536 items: (student 65536, item 0) and (student 0, item 0) have
    pair keys 2**32 apart - equal in int32 arithmetic, distinct in int64."""
    from irt.engine.preprocess import prepare_coded

    k = np.arange(65_537)
    got = prepare_coded(k.astype(np.int32), [f"s{j}" for j in k], (k % 65_536).astype(np.int32),
                        [f"q{j}" for j in range(65_536)], np.ones(k.size, dtype=np.int8),
                        k.astype(float))
    assert got.report.dropped["duplicate_attempt"] == 0
    assert got.report.rows_out == 65_537
