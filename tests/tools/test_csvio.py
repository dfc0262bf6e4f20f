"""Tests for irt.tools.csvio: answers CSV reading and scores CSV writing."""

from __future__ import annotations

import csv
import io
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irt.engine.preprocess import prepare_rows
from irt.errors import CSVFormatError
from irt.tools.csvio import Columns, read_answers_csv, write_scores_csv


def read(text: str, *, strict: bool = True) -> list[dict[str, str | None]]:
    return read_answers_csv(io.StringIO(text, newline=""), strict=strict)


def error_of(text: str) -> CSVFormatError:
    with pytest.raises(CSVFormatError) as info:
        read(text)
    return info.value


# --------------------------------------------------------------------------- reading


def test_read_basic() -> None:
    rows = read("student_id,item_id,correct\ns1,i1,1\ns2,i1,false\n")
    assert rows == [
        {"student_id": "s1", "item_id": "i1", "correct": "1"},
        {"student_id": "s2", "item_id": "i1", "correct": "false"},
    ]


def test_read_with_answered_at_extra_columns_and_any_column_order() -> None:
    text = (
        "session,answered_at,correct,item_id,student_id\n"
        "x,2024-01-01T00:00:00Z,1,i1,s1\n"
        "y,,0,i2,s1\n"
    )
    rows = read(text)
    assert rows == [
        {"student_id": "s1", "item_id": "i1", "correct": "1",
         "answered_at": "2024-01-01T00:00:00Z"},
        {"student_id": "s1", "item_id": "i2", "correct": "0", "answered_at": ""},
    ]


def test_header_bom_whitespace_and_case_are_tolerated() -> None:
    rows = read("\ufeffStudent_ID , item_id,CORRECT\r\ns1,i1,1\r\n")
    assert rows == [{"student_id": "s1", "item_id": "i1", "correct": "1"}]


def test_quoted_fields_and_unicode() -> None:
    rows = read('student_id,item_id,correct\n"Doe, Jane","q ""1""",yes\nZoë,日本,0\n')
    assert rows[0] == {"student_id": "Doe, Jane", "item_id": 'q "1"', "correct": "yes"}
    assert rows[1] == {"student_id": "Zoë", "item_id": "日本", "correct": "0"}


def test_blank_lines_are_skipped() -> None:
    rows = read("student_id,item_id,correct\n\ns1,i1,1\n\n\ns2,i1,0\n")
    assert [r["student_id"] for r in rows] == ["s1", "s2"]


def test_header_only_gives_no_rows() -> None:
    assert read("student_id,item_id,correct\n") == []


def test_rows_feed_prepare_rows() -> None:
    text = (
        "student_id,item_id,correct,answered_at\n"
        "s1,i1,1,2024-01-01T00:00:10Z\n"
        "s1,i1,0,2024-01-01T00:00:05Z\n"
        "s2,i1,true,\n"
    )
    out = prepare_rows(read(text))
    assert out.responses.correct.tolist() == [0, 1]
    assert out.responses.student_ids == ("s1", "s2")
    assert out.report.dropped["duplicate_attempt"] == 1


# --------------------------------------------------------------------------- header errors


@pytest.mark.parametrize(
    ("header", "column"),
    [("item_id,correct", "student_id"), ("student_id,correct", "item_id"),
     ("student_id,item_id,answered_at", "correct"), ("student_id;item_id;correct", "student_id")],
)
def test_missing_required_column(header: str, column: str) -> None:
    err = error_of(header + "\ns1,i1,1\n")
    assert err.line == 1
    assert f"missing required column '{column}'" in err.reason
    assert str(err).startswith("line 1: ")


def test_duplicate_required_column() -> None:
    err = error_of("student_id,item_id,correct,correct\ns,i,1,1\n")
    assert err.line == 1
    assert "duplicate column 'correct'" in err.reason


def test_empty_file() -> None:
    err = error_of("")
    assert err.line == 1
    assert "missing header" in err.reason


# --------------------------------------------------------------------------- row errors


def test_invalid_correct_message() -> None:
    text = "student_id,item_id,correct\n" + "s,i,1\n" * 5 + "s,i,maybe\n"
    err = error_of(text)
    reason = "correct must be one of 1/0, true/false, t/f, yes/no, in any case (got 'maybe')"
    assert str(err) == f"line 7: {reason}"
    assert err.line == 7
    assert err.reason == reason
    assert isinstance(err, ValueError)


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("s1,i1", "expected 3 fields, got 2"),
        ("s1,i1,1,extra", "expected 3 fields, got 4"),
        ("  ,i1,1", "student_id is empty"),
        ("s1,,1", "item_id is empty"),
        ("s1,i1,", "correct must be one of 1/0, true/false, t/f, yes/no, in any case (got '')"),
        ("s1,i1,2", "correct must be one of 1/0, true/false, t/f, yes/no, in any case (got '2')"),
        ("s" * 257 + ",i1,1", "student_id longer than 256 characters (257)"),
        ("s1, " + "i" * 300 + " ,1", "item_id longer than 256 characters (300)"),
    ],
)
def test_row_errors_name_line_and_reason(bad_line: str, reason: str) -> None:
    err = error_of(f"student_id,item_id,correct\ns0,i0,1\n{bad_line}\ns2,i2,0\n")
    assert (err.line, err.reason) == (3, reason)


def test_ids_of_the_longest_length_are_read() -> None:
    """256 characters (after stripping) is the most ``prepare_rows`` keeps, and reads."""
    rows = read(f"student_id,item_id,correct\n {'s' * 256} ,{'i' * 256},1\n")
    assert prepare_rows(rows).report.rows_out == 1


def test_invalid_answered_at() -> None:
    err = error_of("student_id,item_id,correct,answered_at\ns,i,1,\ns,i,1,tomorrow\n")
    assert err.line == 3
    assert err.reason == (
        "answered_at must be epoch seconds or an ISO-8601 date-time (got 'tomorrow')"
    )


def test_line_numbers_count_blank_lines_and_multiline_fields() -> None:
    text = 'student_id,item_id,correct\n\n"multi\nline id",i1,1\n\ns2,i1,bad\n'
    err = error_of(text)
    # header=1, blank=2, quoted row spans 3-4, blank=5, bad row=6
    assert err.line == 6
    rows = read(text, strict=False)
    assert rows[0]["student_id"] == "multi\nline id"


def test_multiline_bad_row_reports_its_first_line() -> None:
    text = 'student_id,item_id,correct\ns1,i1,1\n"a\nb\nc",i1,nope\n'
    assert error_of(text).line == 3


def test_malformed_quoting_is_reported_with_line() -> None:
    err = error_of('student_id,item_id,correct\ns1,i1,1\ns2,"i1"x,1\n')
    assert err.line == 3
    assert err.reason.startswith("malformed CSV: ")
    # Lenient mode keeps the row as the csv module reads it.
    rows = read('student_id,item_id,correct\ns1,i1,1\ns2,"i1"x,1\n', strict=False)
    assert rows[1] == {"student_id": "s2", "item_id": "i1x", "correct": "1"}


def test_unterminated_quote_is_reported_at_its_row() -> None:
    err = error_of('student_id,item_id,correct\ns1,i1,1\ns2,"i1,1\ns3,i1,0\n')
    assert err.line == 3
    assert "malformed CSV" in err.reason


def test_first_error_wins() -> None:
    err = error_of("student_id,item_id,correct\ns,i,x\ns,i\n")
    assert err.line == 2


# --------------------------------------------------------------------------- lenient mode


def test_non_strict_returns_bad_rows_for_prepare_rows_to_count() -> None:
    text = (
        "student_id,item_id,correct,answered_at\n"
        "s1,i1,1,\n"          # ok
        "s1,i2,maybe,\n"      # invalid correct
        ",i1,1,\n"            # null student
        "s2,,1,\n"            # null item
        "s2,i1,1,whenever\n"  # invalid answered_at
        "s3,i1\n"             # too few fields -> correct missing
        "s1,i1,0,\n"          # duplicate
    )
    rows = read(text, strict=False)
    assert len(rows) == 7
    assert rows[5] == {"student_id": "s3", "item_id": "i1", "correct": None,
                       "answered_at": None}
    out = prepare_rows(rows)
    assert out.report.rows_out == 1
    assert {k: v for k, v in out.report.dropped.items() if v} == {
        "invalid_correct": 2, "null_student_id": 1, "null_item_id": 1,
        "invalid_answered_at": 1, "duplicate_attempt": 1,
    }


def test_non_strict_ignores_extra_fields() -> None:
    rows = read("student_id,item_id,correct\ns1,i1,1,extra,more\n", strict=False)
    assert rows == [{"student_id": "s1", "item_id": "i1", "correct": "1"}]


def test_non_strict_still_rejects_bad_header() -> None:
    with pytest.raises(CSVFormatError):
        read("student,item,correct\ns,i,1\n", strict=False)


def test_error_pickles() -> None:
    err = CSVFormatError("student_id is empty", 4)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.line, copy.reason, str(copy)) == (4, "student_id is empty",
                                                   "line 4: student_id is empty")


# --------------------------------------------------------------------------- other names


def test_columns_read_other_names_under_the_standard_keys() -> None:
    text = "User,Problem,is_correct,SEQ,skill\nu1,p1,Yes,3,k1\nu1,p2,no,,k2\n"
    columns = Columns(student_id="user", item_id="problem", correct="IS_CORRECT",
                      answered_at="seq")
    rows = read_answers_csv(io.StringIO(text, newline=""), columns=columns,
                            extra_columns=("Skill",))
    assert rows == [
        {"student_id": "u1", "item_id": "p1", "correct": "Yes", "answered_at": "3",
         "skill": "k1"},
        {"student_id": "u1", "item_id": "p2", "correct": "no", "answered_at": "",
         "skill": "k2"},
    ]
    out = prepare_rows(rows)
    assert out.responses.correct.tolist() == [1, 0]


def test_columns_errors_name_the_columns_of_the_file() -> None:
    columns = Columns(student_id="user", correct="ok", answered_at="seq")
    with pytest.raises(CSVFormatError, match="missing required column 'user'"):
        read_answers_csv(io.StringIO("student_id,item_id,ok\ns,i,1\n"), columns=columns)
    text = "user,item_id,ok,seq\ns,i,1,1\ns,i,maybe,2\n"
    with pytest.raises(CSVFormatError) as err:
        read_answers_csv(io.StringIO(text), columns=columns)
    assert str(err.value) == ("line 3: ok must be one of 1/0, true/false, t/f, yes/no, in any "
                              "case (got 'maybe')")
    text = "user,item_id,ok,seq\ns,i,1,soon\n"
    with pytest.raises(CSVFormatError, match="seq must be epoch seconds or an ISO-8601"):
        read_answers_csv(io.StringIO(text), columns=columns)
    # the order column is optional unless required
    assert read_answers_csv(io.StringIO("user,item_id,ok\ns,i,1\n"), columns=columns)
    with pytest.raises(CSVFormatError, match="missing required column 'seq'"):
        read_answers_csv(io.StringIO("user,item_id,ok\ns,i,1\n"),
                         columns=Columns(student_id="user", correct="ok", answered_at="seq",
                                         answered_at_required=True))


def test_undecodable_text_is_an_error_at_its_line() -> None:
    raw = io.BytesIO("student_id,item_id,correct\ns1,i1,1\nZo\xeb,i1,1\n".encode("latin-1"))
    with pytest.raises(CSVFormatError) as err:
        read_answers_csv(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
    assert err.value.line >= 1 and "not UTF-8" in err.value.reason


def test_error_with_a_path_names_it_and_pickles() -> None:
    err = CSVFormatError("student_id is empty", 4, "answers.csv")
    assert str(err) == "answers.csv: line 4: student_id is empty"
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.path, copy.line, str(copy)) == ("answers.csv", 4, str(err))


# --------------------------------------------------------------------------- writing


def test_write_scores_csv_format() -> None:
    buf = io.StringIO()
    write_scores_csv(buf, ["s1", "Doe, Jane"], np.array([0.1234567, -1.0]),
                     [0.5, 0.25], np.array([3, 10]))
    assert buf.getvalue() == (
        "student_id,theta,se,n_answers\n"
        "s1,0.123457,0.500000,3\n"
        '"Doe, Jane",-1.000000,0.250000,10\n'
    )


def test_write_scores_csv_non_finite_and_negative_zero() -> None:
    buf = io.StringIO()
    write_scores_csv(buf, ["a", "b"], [-1e-9, float("nan")], [float("inf"), 1e-7], [0, 1])
    lines = buf.getvalue().splitlines()
    assert lines[1] == "a,0.000000,inf,0"
    assert lines[2] == "b,nan,0.000000,1"


def test_write_scores_csv_length_mismatch() -> None:
    with pytest.raises(ValueError, match="same length"):
        write_scores_csv(io.StringIO(), ["a", "b"], [0.0], [1.0, 1.0], [1, 1])


def test_write_scores_csv_quotes_carriage_returns() -> None:
    buf = io.StringIO(newline="")
    write_scores_csv(buf, ["a\rb", "c"], [1.0, 2.0], [0.1, 0.2], [1, 2])
    buf.seek(0)
    back = list(csv.reader(buf))
    assert back[1:] == [["a\rb", "1.000000", "0.100000", "1"], ["c", "2.000000", "0.200000", "2"]]


def test_write_scores_csv_empty() -> None:
    buf = io.StringIO()
    write_scores_csv(buf, [], [], [], [])
    assert buf.getvalue() == "student_id,theta,se,n_answers\n"


# --------------------------------------------------------------------------- round trips

id_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1, max_size=8,
).filter(lambda s: s.strip() != "")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(id_text, id_text, st.sampled_from(["0", "1", "true", "No"]),
                          st.sampled_from(["", "12", "2024-02-29T12:00:00Z"])),
                max_size=20))
def test_written_answers_read_back(rows: list[tuple[str, str, str, str]]) -> None:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(["student_id", "item_id", "correct", "answered_at"])
    writer.writerows(rows)
    buf.seek(0)
    got = read_answers_csv(buf)
    assert got == [
        {"student_id": s, "item_id": i, "correct": c, "answered_at": t} for s, i, c, t in rows
    ]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(id_text, st.floats(-10, 10), st.floats(0, 5), st.integers(0, 500)),
                max_size=20))
def test_scores_read_back(rows: list[tuple[str, float, float, int]]) -> None:
    buf = io.StringIO(newline="")
    write_scores_csv(buf, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                     [r[3] for r in rows])
    buf.seek(0)
    back = list(csv.reader(buf))
    assert back[0] == ["student_id", "theta", "se", "n_answers"]
    assert len(back) == len(rows) + 1
    for (sid, theta, se, n), line in zip(rows, back[1:], strict=True):
        assert line[0] == sid
        assert float(line[1]) == pytest.approx(theta, abs=5e-7)
        assert float(line[2]) == pytest.approx(se, abs=5e-7)
        assert len(line[1].split(".")[1]) == 6
        assert int(line[3]) == n
