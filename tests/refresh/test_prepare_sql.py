"""The answer-log SQL (irt.refresh.sql) on DuckDB and on the BigQuery emulator, with the real
``google-cloud-bigquery`` client: same rows, same counts, every bad row counted."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from answerlogs import (
    WINDOW,
    edge_rows,
    load_bigquery,
    long_id_rows,
    simulated_rows,
    ts,
    write_csv,
)

from irt.errors import ConfigError
from irt.refresh.sources import BigQuerySource, DuckDBSource, check_schema, fetch
from irt.refresh.sql import (
    ROW_REASONS,
    STAGES,
    QueryParams,
    SourceColumns,
    build_queries,
    drops_from_counts,
    parse_table,
    stage_sql,
)

COLS = SourceColumns(skill="skill_id")
PARAMS = QueryParams(*WINDOW, max_answers_per_item=1000, min_answers_per_item=2,
                     min_answers_per_student=2, max_id_length=256)


def _rows(table) -> list[tuple]:
    d = table.to_pydict()
    out = zip(d["student_id"], d["item_id"], d["correct"],
              [t.isoformat() for t in d["answered_at"]], d["skill_id"], strict=True)
    return sorted(out)


# --------------------------------------------------------------------------- identifiers
@pytest.mark.parametrize("bad", [
    "p.d", "a.b.c.d", "Proj.d.t", "p.d.t", "my-project.d.t`; DROP TABLE x; --",
    "my-project.d-s.t", "my-project.ds.t x", "my-project.ds.", "my-project..t",
])
def test_table_reference_is_validated(bad):
    with pytest.raises(ConfigError) as err:
        parse_table(bad)
    assert err.value.field == "BQ_TABLE"


def test_valid_table_reference_splits():
    assert parse_table("my-project.lms_logs.answers_2026") == (
        "my-project", "lms_logs", "answers_2026")


@pytest.mark.parametrize(("attr", "value"), [
    ("student", "student_id`, (SELECT 1) AS x, `y"), ("item", "1item"), ("correct", ""),
    ("answered_at", "a b"), ("skill", "skill;--"), ("item", "student_id"),
])
def test_column_names_are_validated(attr, value):
    with pytest.raises(ConfigError) as err:
        SourceColumns(**{attr: value})
    assert err.value.field == SourceColumns.ENV[attr]


def test_values_only_ever_go_in_as_parameters():
    """The SQL text holds parameter names, never a window or threshold value."""
    answers, counts = build_queries("my-project.lms.answers", COLS)
    for name in PARAMS.values():
        assert f"@{name}" in answers
    # the counts query stops before the per-student minimum (kept = the answers' rows)
    assert set(PARAMS.values(counts)) == set(PARAMS.values()) - {"min_answers_per_student"}
    for sql in (answers, counts):
        assert "2026" not in sql and "1000" not in sql


def test_only_the_parameters_a_statement_uses_are_bound():
    sql = "SELECT @max_answers_per_item, @max_id_length_x"
    assert PARAMS.values(sql) == {"max_answers_per_item": 1000}
    assert PARAMS.values("SELECT $window_start", "$") == {"window_start": WINDOW[0]}


@pytest.mark.parametrize(("field", "kwargs"), [
    ("MAX_ANSWERS_PER_ITEM", {"max_answers_per_item": 0}),
    ("MIN_ANSWERS_PER_ITEM", {"min_answers_per_item": True}),
    ("window", {"window_start": WINDOW[1]}),
])
def test_query_params_are_validated(field, kwargs):
    with pytest.raises(ConfigError) as err:
        replace(PARAMS, **kwargs)
    assert err.value.field == field


def test_counts_must_add_up():
    with pytest.raises(ValueError, match=r"did not return valid, .*kept"):
        drops_from_counts({"rows_in": 1})
    with pytest.raises(ValueError, match="inconsistent"):
        drops_from_counts({"rows_in": 10, "valid": 9, "first_attempts": 9, "capped": 9,
                           "items_ok": 9, "kept": 9})


# --------------------------------------------------------------------------- DuckDB
def test_duckdb_counts_every_bad_row(tmp_path):
    rows, expected = edge_rows()
    source = DuckDBSource(write_csv(rows, tmp_path / "log.csv"))
    assert check_schema(source.schema(), COLS) == []
    table, counts = fetch(source, COLS, PARAMS, source.table)
    assert drops_from_counts(counts) == expected
    assert counts["rows_in"] == len(rows) - 1  # the out-of-window row is not counted
    got = _rows(table)
    assert [(r[0], r[1], r[2]) for r in got] == [
        ("s1", "q1", 1), ("s1", "q2", 1), ("s2", "q1", 0), ("s2", "q2", 0),
        ("s3", "q1", 0), ("s3", "q2", 1)]


def _stage_counts(source, table: str, params: QueryParams) -> dict[str, int]:
    """Each stage counted on the answers query's own CTE chain (irt.refresh.sql.stage_sql)."""
    out = {}
    for stage in STAGES:
        n = source.query(stage_sql(table, COLS, stage), params).column("n").to_pylist()
        out[stage] = int(n[0])
    return out


@pytest.mark.parametrize("cap", [1000, 7, 3])
def test_counts_query_equals_the_chain_it_summarises(tmp_path, cap):
    """The counts query derives first attempts, cap and item minimum from aggregates;
    they must equal the rows of the CTE chain itself, with and without the cap
    binding and with items dropped by the minimum after the cap (cap 3 < minimum 4)."""
    rows, _ = edge_rows()
    rows += simulated_rows(40, 6, 4, seed=2)
    source = DuckDBSource(write_csv(rows, tmp_path / "log.csv"))
    params = replace(PARAMS, max_answers_per_item=cap, min_answers_per_item=4)
    _, counts = fetch(source, COLS, params, source.table)
    reasons = {k: v for k, v in counts.items() if k not in STAGES}
    assert {k: counts[k] for k in STAGES} == _stage_counts(source, source.table, params)
    assert reasons and set(reasons) <= set(ROW_REASONS)
    drops = drops_from_counts(counts)
    assert (drops["item_answer_cap"] > 0) == (cap < 1000)
    assert drops["item_below_min_answers"] > 0
    assert (counts["kept"] == 0) == (cap == 3)  # every item capped below the minimum


def test_stage_sql_refuses_an_unknown_stage():
    with pytest.raises(ConfigError, match="stage"):
        stage_sql("answers", COLS, "capped; DROP TABLE answers")


def test_cap_is_a_deterministic_sample_of_whole_students(tmp_path):
    rows = simulated_rows(300, 10, None, seed=3)  # every student answers every item
    source = DuckDBSource(write_csv(rows, tmp_path / "log.csv"))
    params = replace(PARAMS, max_answers_per_item=50)
    table, counts = fetch(source, COLS, params, source.table)
    d = table.to_pydict()
    per_item: dict[str, set[str]] = {}
    for s, i in zip(d["student_id"], d["item_id"], strict=True):
        per_item.setdefault(i, set()).add(s)
    assert {len(v) for v in per_item.values()} == {50}
    # the same 50 students for every item: answer patterns stay whole
    assert len(set.union(*per_item.values())) == 50
    assert drops_from_counts(counts)["item_answer_cap"] == 10 * 250
    again, _ = fetch(source, COLS, params, source.table)
    assert _rows(again) == _rows(table)


def test_schema_problems_name_the_setting(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("student,item_id,correct,answered_at\ns1,q1,1,2026-10-01 00:00:00\n")
    problems = check_schema(DuckDBSource(path).schema(), SourceColumns())
    assert len(problems) == 1 and problems[0].startswith("COLUMN_STUDENT: column 'student_id'")
    # Parquet declares its own types: a text answered_at there is a schema problem
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "log.parquet"
    pq.write_table(pa.table({"student_id": ["s1"], "item_id": ["q1"], "correct": [1],
                             "answered_at": ["yesterday"]}), parquet)
    problems = check_schema(DuckDBSource(parquet).schema(), SourceColumns())
    assert problems and problems[0].startswith("COLUMN_ANSWERED_AT")


# Issue 17 item 14: a CSV is read with declared types (text, and TRY_CAST to a time for the
# answered-at column), never sniffed ones.
def test_one_bad_time_in_30k_rows_is_one_counted_row_not_a_schema_error(tmp_path):
    rows = simulated_rows(2000, 25, 15, seed=1)
    assert len(rows) == 30000
    rows[20000]["answered_at"] = "yesterday"
    rows[29999]["answered_at"] = "2026-13-45 99:00:00"
    source = DuckDBSource(write_csv(rows, tmp_path / "log.csv"))
    assert check_schema(source.schema(), COLS) == []
    _, counts = fetch(source, COLS, PARAMS, source.table)
    assert counts["rows_in"] == 30000
    assert drops_from_counts(counts)["invalid_answered_at"] == 2


def test_header_only_csv_is_an_empty_table(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("student_id,item_id,correct,answered_at,skill_id\n")
    source = DuckDBSource(path)
    assert check_schema(source.schema(), COLS) == []
    answers, counts = fetch(source, COLS, PARAMS, source.table)
    assert answers.num_rows == 0 and counts["rows_in"] == 0 and counts["kept"] == 0


def test_numeric_ids_stay_exact_text(tmp_path):
    """30-digit numeric ids stay the text written: sniffed, they were a ``DOUBLE``, which the
    schema check refused (and which cannot tell ids apart past the 16th digit)."""
    rows = long_id_rows()
    source = DuckDBSource(write_csv(rows, tmp_path / "log.csv"))
    assert check_schema(source.schema(), COLS) == []
    table, counts = fetch(source, COLS, PARAMS, source.table)
    assert counts["rows_in"] == table.num_rows == 12
    assert sorted(set(table.column("student_id").to_pylist())) == sorted(
        {r["student_id"] for r in rows})
    assert sorted(set(table.column("item_id").to_pylist())) == sorted(
        {r["item_id"] for r in rows})


def test_time_column_is_the_mapped_one(tmp_path):
    """The column cast to a time is ``COLUMN_ANSWERED_AT``'s, matched case-insensitively."""
    path = tmp_path / "log.csv"
    path.write_text("student_id,item_id,correct,When_Answered,skill_id\n"
                    f"s1,q1,1,{ts(0)},k1\ns2,q1,0,not a time,k1\n")
    cols = SourceColumns(answered_at="when_answered", skill="skill_id")
    source = DuckDBSource(path, cols)
    assert check_schema(source.schema(), cols) == []
    _, counts = fetch(source, cols, PARAMS, source.table)
    assert counts["rows_in"] == 2 and counts["invalid_answered_at"] == 1
    # with the default mapping that column stays text, and the schema check names it
    assert check_schema(DuckDBSource(path).schema(), SourceColumns(answered_at="When_Answered"))


# --------------------------------------------------------------------------- BigQuery
@pytest.fixture
def bq_table(bq_emulator):
    client = bq_emulator.client()
    return client, f"{bq_emulator.project}.lms_{uuid.uuid4().hex[:8]}.answers"


def test_bigquery_and_duckdb_prepare_the_same_rows(bq_table, tmp_path):
    client, table_id = bq_table
    rows, expected = edge_rows()
    rows += simulated_rows(60, 8, 5, seed=1) + long_id_rows()
    load_bigquery(client, table_id, rows)
    bq = BigQuerySource(table_id, client=client)
    assert check_schema(bq.schema(), COLS) == []
    bq_answers, bq_counts = fetch(bq, COLS, PARAMS, table_id)
    duck = DuckDBSource(write_csv(rows, tmp_path / "log.csv"))
    duck_answers, duck_counts = fetch(duck, COLS, PARAMS, duck.table)
    assert bq_counts == duck_counts
    assert drops_from_counts(bq_counts)["null_student_id"] == expected["null_student_id"]
    assert _rows(bq_answers) == _rows(duck_answers)
    assert len(_rows(bq_answers)) == bq_counts["kept"] > 200
    # 30-digit numeric ids: the same exact text from both engines (issue 17 item 14)
    long_ids = {r["student_id"] for r in long_id_rows()}
    assert long_ids <= set(duck_answers.column("student_id").to_pylist())


def test_bigquery_cap_matches_duckdb(bq_table, tmp_path):
    client, table_id = bq_table
    rows = simulated_rows(120, 6, None, seed=5)
    load_bigquery(client, table_id, rows)
    params = replace(PARAMS, max_answers_per_item=40)
    bq = BigQuerySource(table_id, client=client)
    bq_answers, bq_counts = fetch(bq, COLS, params, table_id)
    duck = DuckDBSource(write_csv(rows, tmp_path / "log.csv"))
    duck_answers, duck_counts = fetch(duck, COLS, params, duck.table)
    assert bq_counts == duck_counts
    assert bq_counts == _stage_counts(bq, table_id, params)
    assert drops_from_counts(bq_counts)["item_answer_cap"] == 6 * 80
    assert _rows(bq_answers) == _rows(duck_answers)


def test_bigquery_missing_table_is_a_source_error(bq_emulator):
    from irt.errors import SourceError

    src = BigQuerySource(f"{bq_emulator.project}.nope.answers", client=bq_emulator.client())
    with pytest.raises(SourceError, match=r"nope\.answers"):
        src.schema()
