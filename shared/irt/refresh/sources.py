"""Where ``prepare`` reads the answer log: BigQuery, or DuckDB over a local file.

Both run the same SQL (:mod:`irt.refresh.sql`, BigQuery's dialect; DuckDB gets it
transpiled by sqlglot) with the same parameters and return Arrow tables - read
in bulk, never as Python row objects.  Clients and engines are imported only by
the source that needs them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from irt.errors import ConfigError, SourceError
from irt.refresh.sql import QueryParams, SourceColumns, build_queries, to_duckdb

#: Column types each mapped column accepts, by family, for both engines.
TYPE_FAMILIES: dict[str, set[str]] = {
    "id": {"STRING", "INT64", "INTEGER", "VARCHAR", "BIGINT", "INT", "INT32", "HUGEINT",
           "UBIGINT", "SMALLINT"},
    "correct": {"BOOL", "BOOLEAN", "INT64", "INTEGER", "FLOAT64", "FLOAT", "STRING", "VARCHAR",
                "BIGINT", "INT", "DOUBLE", "SMALLINT", "TINYINT"},
    "time": {"TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMP_NS",
             "TIMESTAMP_MS", "TIMESTAMP_S"},
}
_FAMILY = {"student": "id", "item": "id", "correct": "correct", "answered_at": "time",
           "skill": "id"}




class AnswerSource(Protocol):
    """A queryable answer log."""

    description: str

    def schema(self) -> dict[str, str]:
        """``{column name: type name}`` of the table."""

    def query(self, sql: str, params: QueryParams) -> Any:
        """Run BigQuery-dialect ``sql`` with ``params``; return a ``pyarrow.Table``."""


def check_schema(schema: dict[str, str], columns: SourceColumns) -> list[str]:
    """Problems with the table's schema for the column mapping (empty = fine).

    Each names the configuration key, the column and the rule broken.
    """
    lower = {k.lower(): v.upper() for k, v in schema.items()}
    out = []
    for attr, column in columns.required().items():
        key = SourceColumns.ENV[attr]
        kind = lower.get(column.lower())
        if kind is None:
            out.append(f"{key}: column {column!r} is not in the table "
                       f"(columns: {', '.join(sorted(schema)) or 'none'})")
        elif kind not in TYPE_FAMILIES[_FAMILY[attr]]:
            allowed = ", ".join(sorted(TYPE_FAMILIES[_FAMILY[attr]]))
            out.append(f"{key}: column {column!r} has type {kind}; expected one of {allowed}")
    return out


def fetch(source: AnswerSource, columns: SourceColumns, params: QueryParams,
          table: str) -> tuple[Any, dict[str, int]]:
    """Run the counts and answers queries.

    Returns:
        ``(answers as a pyarrow.Table, {stage: rows})``; ``kept`` is the
        answers' row count (see :mod:`irt.refresh.sql`).
    """
    answers_sql, counts_sql = build_queries(table, columns)
    counts_table = source.query(counts_sql, params)
    counts = {str(s): int(n) for s, n in zip(counts_table.column("stage").to_pylist(),
                                            counts_table.column("n").to_pylist(), strict=True)}
    answers = source.query(answers_sql, params)
    counts["kept"] = answers.num_rows  # the last stage is the answers themselves
    return answers, counts


class BigQuerySource:
    """The answer log in BigQuery (``BQ_TABLE``).

    Args:
        table: ``project.dataset.table`` (validated).
        client: a ``google.cloud.bigquery.Client``; created from the environment
            when omitted (the function's service account) - or, when
            ``BIGQUERY_EMULATOR_HOST`` is set (``http://host:port``, local tests
            only), bound to that emulator with anonymous credentials.
        location: job location (``BQ_LOCATION``), or ``None`` for the default.
        timeout: seconds to wait for a query.
        storage_api: download results through the Storage Read API (``BQ_STORAGE_API``;
            never on an emulator).
    """

    def __init__(self, table: str, client: Any = None, location: str | None = None,
                 timeout: float = 600.0, storage_api: bool = True) -> None:
        from google.cloud import bigquery

        self._bq = bigquery
        self.table = table
        if client is None and os.environ.get("BIGQUERY_EMULATOR_HOST"):
            from google.api_core.client_options import ClientOptions
            from google.auth.credentials import AnonymousCredentials

            client = bigquery.Client(
                project=table.split(".")[0], credentials=AnonymousCredentials(),
                client_options=ClientOptions(api_endpoint=os.environ["BIGQUERY_EMULATOR_HOST"]))
        self.client = client or bigquery.Client()
        self.location = location
        self.timeout = timeout
        self.storage_api = storage_api
        self.description = f"bigquery:{table}"

    def schema(self) -> dict[str, str]:
        try:
            table = self.client.get_table(self.table, timeout=60)
        except Exception as exc:
            raise SourceError(f"cannot read the schema of {self.table}: {exc}") from exc
        return {f.name: f.field_type for f in table.schema}

    def query(self, sql: str, params: QueryParams) -> Any:
        qp = [self._bq.ScalarQueryParameter(k, QueryParams.bigquery_type(k), v)
              for k, v in params.values(sql).items()]
        config = self._bq.QueryJobConfig(query_parameters=qp)
        try:
            job = self.client.query(sql, job_config=config, location=self.location)
            return job.result(timeout=self.timeout).to_arrow(
                create_bqstorage_client=self.storage_api and _on_google(self.client))
        except Exception as exc:
            raise SourceError(f"query on {self.table} failed: {exc}") from exc


def _on_google(client: Any) -> bool:
    """Whether the client talks to Google's BigQuery (not an emulator, which has no Storage
    Read API)."""
    endpoint = getattr(getattr(client, "_connection", None), "API_BASE_URL", "") or ""
    return "googleapis.com" in endpoint


class DuckDBSource:
    """The answer log in a local CSV or Parquet file (the embedded default).

    The file is exposed to DuckDB as a view named ``answers``; the BigQuery SQL
    is transpiled with sqlglot.  Time zone: UTC.

    A CSV file is read with declared types, never sniffed ones: every column as
    text (``VARCHAR``: ids stay exact, so a 30-digit numeric id is the text
    written, not a ``DOUBLE``), and the answered-at column as
    ``TRY_CAST(... AS TIMESTAMPTZ)``, as BigQuery's ``SAFE_CAST`` would: a value
    that is not a time (``yesterday``) becomes NULL, and the SQL counts its row
    as ``invalid_answered_at`` instead of the whole file failing the schema
    check.  Accepted times: ``YYYY-MM-DD[ HH:MM:SS[.ffffff]][+HH[:MM]]`` (``T``
    or a space; ``Z``; no offset = UTC).  A header-only CSV is a table with no
    rows (``no_data``), not a schema problem.  Parquet carries its own types
    and is read as written.

    Args:
        path: a ``.csv``, ``.csv.gz`` or ``.parquet`` file.
        columns: the column mapping (``COLUMN_*``); its answered-at column is
            the one a CSV's text is cast to a time.  Default: the default names.
        memory_limit: DuckDB's ``memory_limit``; beyond it the window functions
            spill to a temporary directory.  1 GB keeps a 10M-answer log's
            query under 1 GB of memory for ~7 % more time (default DuckDB: 80 %
            of the machine's memory, ~1.9 GB on that log).
    """

    table = "answers"

    def __init__(self, path: str | os.PathLike[str], columns: SourceColumns | None = None,
                 memory_limit: str = "1GB") -> None:
        import duckdb

        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"{self.path} is not a file", "SOURCE_FILE")
        self.description = f"duckdb:{self.path}"
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET enable_progress_bar = false")
        self.con.execute("SET memory_limit = ?", [memory_limit])
        self.con.execute("SET temp_directory = ?",
                         [os.path.join(tempfile.gettempdir(), f"duckdb-{os.getpid()}")])
        self._time_column = (columns or SourceColumns()).answered_at.lower()
        self._opened = False

    def _open(self) -> None:
        """Create the ``answers`` view on first use, not at construction: a file DuckDB cannot
        read (a ragged CSV, not UTF-8) is then a :class:`SourceError` of the request that
        reads it (503 ``source_unavailable``, its first line of DuckDB's message), and a
        fixed file is read by the next request, where an error at construction stuck to the
        instance as ``misconfigured``."""
        if self._opened:
            return
        # DDL takes no parameters: the path is a quoted literal (quotes doubled).
        literal = "'" + str(self.path).replace("'", "''") + "'"
        try:
            if self.path.name.lower().endswith(".parquet"):
                self.con.execute("CREATE OR REPLACE VIEW answers AS SELECT * FROM "
                                 f"read_parquet({literal})")
            else:
                self.con.execute(f"CREATE OR REPLACE VIEW raw_answers AS SELECT * FROM "
                                 f"read_csv({literal}, header = true, all_varchar = true)")
                present = [r[0] for r in self.con.execute("DESCRIBE raw_answers").fetchall()]
                cast = [c for c in present if c.lower() == self._time_column]
                # the column name comes from the file: quoted as an identifier (quotes
                # doubled)
                replace = "".join(f" REPLACE (TRY_CAST({_ident(c)} AS TIMESTAMPTZ) AS "
                                  f"{_ident(c)})" for c in cast)
                self.con.execute(f"CREATE OR REPLACE VIEW answers AS SELECT *{replace} "
                                 "FROM raw_answers")
            self.con.execute("DESCRIBE answers").fetchall()  # the file is read here
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SourceError(f"cannot read {self.path.name}: {first}"[:300]) from exc
        self._opened = True

    def schema(self) -> dict[str, str]:
        self._open()
        rows = self.con.execute("DESCRIBE answers").fetchall()
        return {r[0]: str(r[1]) for r in rows}

    def query(self, sql: str, params: QueryParams) -> Any:
        self._open()
        try:
            text = to_duckdb(sql)
            return self.con.execute(text, params.values(text, "$")).to_arrow_table()
        except Exception as exc:
            raise SourceError(f"query on {self.path} failed: {exc}") from exc


def _ident(name: str) -> str:
    """``name`` as a quoted DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'
