"""The answer-log query ``prepare`` runs, written once in BigQuery's dialect.

Text only: no client, no I/O.  :func:`build_queries` returns two statements -
the kept answers, and the number of rows each step dropped - so that BigQuery
(the distributed engine) does the heavy part of the preparation and ``prepare``
receives a bounded, already clean result.  The answers query is a chain of CTEs:

1. ``source``    - the time window ``[@window_start, @window_end)`` on the
   answered-at column (rows with no time are kept so they can be counted);
   ids cast to ``STRING`` and trimmed (empty = null); ``correct`` normalised
   from ``BOOL``/``INT64``/``FLOAT64``/``STRING`` (``1``/``0``/``true``/``false``)
   to 1/0, anything else null.
2. ``labelled``  - one drop reason per invalid row, checked in the order of
   :data:`irt.engine.preprocess.DROP_REASONS`: ``null_student_id``, ``null_item_id``,
   ``id_too_long`` (``> @max_id_length`` characters), ``invalid_correct``,
   ``invalid_answered_at`` (no time).
3. ``first_attempts`` - ``QUALIFY ROW_NUMBER() OVER (PARTITION BY student, item
   ORDER BY answered_at, correct) = 1``: the earliest attempt; a tie on the time
   goes to the incorrect answer (deterministic, and the conservative choice).
4. ``capped``    - at most ``@max_answers_per_item`` answers per item, chosen by
   a deterministic sample: the students with the smallest ``MD5(student_id)``
   (its first 60 bits as an ``INT64``, which sorts far faster than the hex
   text; ties, about one pair in 10^18, go to the smaller id).  The same
   students are chosen for every item, so the sample keeps whole answer
   patterns (what marginal maximum likelihood needs) and re-running the same
   window chooses the same rows.  ``MD5`` rather than ``FARM_FINGERPRINT``
   because DuckDB (the local path) has the same function, so both engines pick
   the same sample.
5. ``items_ok``  - items with at least ``@min_answers_per_item`` answers left.
6. ``kept``      - students with at least ``@min_answers_per_student`` answers left.

The counts query does not repeat that chain: the numbers it needs follow from
one pass over ``labelled`` (rows in, drops by reason, valid rows) and the number
of distinct students per item among the valid rows (first attempts; capped =
``LEAST(n, cap)`` per item; items ok = those with ``LEAST(n, cap) >=`` the
minimum).  So it needs no sort and no hash of ids - about a third of the
answers query's cost instead of all of it.  The last stage, ``kept``, is the
answers query's row count (:func:`irt.refresh.sources.fetch` adds it); :func:`stage_sql`
gives any stage's rows from the chain itself, which the tests compare with the
counts.

Steps 5-6 run once in SQL; :func:`irt.engine.preprocess.prepare_coded` then repeats
the whole validation on the result and takes the two minimum filters to their
fixed point (dropping an item can take a student below the minimum).

Every value goes in as a query parameter (``@name``); the only text formatted
into the SQL is the table and column identifiers, which are validated against
strict patterns first (:func:`parse_table`, :class:`SourceColumns`).
:func:`to_duckdb` transpiles the same text with sqlglot for the local path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

from irt.engine import defaults
from irt.engine.preprocess import INVALID_REASONS
from irt.errors import ConfigError
from irt.settings import shown

#: A column name: letters, digits, underscores, not starting with a digit.
COLUMN_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
#: A Google Cloud project id (6-30 characters).
PROJECT_PATTERN = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
#: A dataset or table name (the safe subset: letters, digits, underscores).
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")

#: Steps whose row counts :func:`drops_from_counts` needs, in order: all but the
#: last from :func:`build_queries`' counts query; ``kept`` is the answers' row count.
STAGES: tuple[str, ...] = ("rows_in", "valid", "first_attempts", "capped", "items_ok", "kept")
#: Drop reasons the SQL assigns to single invalid rows (step 2): preprocessing's.
ROW_REASONS: tuple[str, ...] = INVALID_REASONS




def parse_table(text: str, field: str = "BQ_TABLE") -> tuple[str, str, str]:
    """Split and validate ``project.dataset.table``.

    Args:
        text: the table reference.
        field: the configuration key, named in the error.

    Returns:
        ``(project, dataset, table)``.

    Raises:
        ConfigError: not three dot-separated parts, or a part outside its
            pattern (:data:`PROJECT_PATTERN`, :data:`NAME_PATTERN`).
    """
    parts = text.split(".")
    if len(parts) != 3:
        raise ConfigError(f"expected project.dataset.table, got {shown(text)}", field)
    project, dataset, table = parts
    if not PROJECT_PATTERN.fullmatch(project):
        raise ConfigError(f"project {shown(project)} is not a valid project id "
                                 f"(pattern {PROJECT_PATTERN.pattern})", field)
    for kind, name in (("dataset", dataset), ("table", table)):
        if not NAME_PATTERN.fullmatch(name):
            raise ConfigError(f"{kind} {shown(name)} must match {NAME_PATTERN.pattern}", field)
    return project, dataset, table


@dataclass(frozen=True)
class SourceColumns:
    """Column mapping of the answer-log table.

    Attributes:
        student: student id column (``STRING`` or ``INT64``).
        item: item (question) id column (``STRING`` or ``INT64``).
        correct: answer outcome (``BOOL``, ``INT64``, ``FLOAT64`` or ``STRING``).
        answered_at: when the answer was given (``TIMESTAMP`` or ``DATETIME``).
        skill: optional skill id column; passed through as ``skill_id``.
    """

    student: str = "student_id"
    item: str = "item_id"
    correct: str = "correct"
    answered_at: str = "answered_at"
    skill: str | None = None

    #: configuration key of each attribute (named in errors)
    ENV: ClassVar[dict[str, str]] = {
        "student": "COLUMN_STUDENT", "item": "COLUMN_ITEM", "correct": "COLUMN_CORRECT",
        "answered_at": "COLUMN_ANSWERED_AT", "skill": "COLUMN_SKILL"}

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name == "skill":
                continue
            key = self.ENV[f.name]
            if not isinstance(value, str) or not COLUMN_PATTERN.fullmatch(value):
                quoted = shown(value) if isinstance(value, str) else repr(value)
                raise ConfigError(f"{quoted} must match {COLUMN_PATTERN.pattern}", key)
            if value.lower() in seen:
                raise ConfigError(f"{value!r} is already used by {seen[value.lower()]}", key)
            seen[value.lower()] = key

    def required(self) -> dict[str, str]:
        """``{attribute: column}`` of every configured column."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class QueryParams:
    """The values bound to the query's parameters.

    Attributes:
        window_start: first instant of the time window (inclusive, UTC).
        window_end: end of the window (exclusive, UTC).
        max_answers_per_item: cap per item (deterministic sample, step 4).
        min_answers_per_item: minimum answers for an item to be kept.
        min_answers_per_student: minimum answers for a student to be kept.
        max_id_length: longest accepted id, in characters.
    """

    window_start: datetime
    window_end: datetime
    max_answers_per_item: int = 5000
    min_answers_per_item: int = field(
        default_factory=lambda: defaults.DEFAULTS.min_answers_per_item)
    min_answers_per_student: int = field(
        default_factory=lambda: defaults.DEFAULTS.min_answers_per_student)
    max_id_length: int = 256

    def __post_init__(self) -> None:
        if self.window_start.tzinfo is None or self.window_end.tzinfo is None:
            raise ConfigError("window bounds must be timezone-aware (UTC)", "window")
        if not self.window_start < self.window_end:
            raise ConfigError("window_start must be before window_end", "window")
        for name in ("max_answers_per_item", "min_answers_per_item",
                     "min_answers_per_student", "max_id_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"must be an integer >= 1, got {value!r}", name.upper())

    def values(self, sql: str | None = None, marker: str = "@") -> dict[str, Any]:
        """``{parameter name: value}``.

        Args:
            sql: when given, only the parameters this statement uses (DuckDB
                refuses unused ones).
            marker: the parameter prefix in ``sql`` (``@`` BigQuery, ``$`` DuckDB).
        """
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if sql is None:
            return out
        return {k: v for k, v in out.items()
                if re.search(re.escape(marker + k) + r"\b", sql)}

    @staticmethod
    def bigquery_type(name: str) -> str:
        """BigQuery type of a parameter."""
        return "TIMESTAMP" if name.startswith("window_") else "INT64"


def _quote(name: str) -> str:
    return f"`{name}`"


def _chain(table: str, columns: SourceColumns) -> tuple[str, str]:
    """The CTE chain (``WITH ... kept AS (...)``) and the output column list."""
    if table.count(".") == 2:
        parse_table(table)
    elif not NAME_PATTERN.fullmatch(table):
        raise ConfigError(f"{table!r} is not a valid table reference", "BQ_TABLE")
    s, i, c, t = (_quote(x) for x in (columns.student, columns.item, columns.correct,
                                       columns.answered_at))
    skill = f",\n    NULLIF(TRIM(CAST({_quote(columns.skill)} AS STRING)), '') AS skill_id" \
        if columns.skill else ""
    ctes = f"""WITH source AS (
  SELECT
    NULLIF(TRIM(CAST({s} AS STRING)), '') AS student_id,
    NULLIF(TRIM(CAST({i} AS STRING)), '') AS item_id,
    CASE LOWER(TRIM(CAST({c} AS STRING)))
      WHEN '1' THEN 1 WHEN 'true' THEN 1 WHEN '1.0' THEN 1
      WHEN '0' THEN 0 WHEN 'false' THEN 0 WHEN '0.0' THEN 0
    END AS correct,
    CAST({t} AS TIMESTAMP) AS answered_at{skill}
  FROM {_quote(table)}
  WHERE {t} IS NULL OR ({t} >= @window_start AND {t} < @window_end)
),
labelled AS (
  SELECT *,
    CASE
      WHEN student_id IS NULL THEN 'null_student_id'
      WHEN item_id IS NULL THEN 'null_item_id'
      WHEN CHAR_LENGTH(student_id) > @max_id_length
        OR CHAR_LENGTH(item_id) > @max_id_length THEN 'id_too_long'
      WHEN correct IS NULL THEN 'invalid_correct'
      WHEN answered_at IS NULL THEN 'invalid_answered_at'
    END AS drop_reason
  FROM source
),
first_attempts AS (
  SELECT * EXCEPT (drop_reason) FROM labelled
  WHERE drop_reason IS NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY student_id, item_id
                             ORDER BY answered_at, correct) = 1
),
capped AS (
  SELECT * FROM first_attempts
  QUALIFY ROW_NUMBER() OVER (
            PARTITION BY item_id
            ORDER BY CAST(CONCAT('0x', SUBSTR(TO_HEX(MD5(student_id)), 1, 15)) AS INT64),
                     student_id) <= @max_answers_per_item
),
items_ok AS (
  SELECT * FROM capped
  QUALIFY COUNT(*) OVER (PARTITION BY item_id) >= @min_answers_per_item
),
kept AS (
  SELECT * FROM items_ok
  QUALIFY COUNT(*) OVER (PARTITION BY student_id) >= @min_answers_per_student
)
"""
    return ctes, "student_id, item_id, correct, answered_at" + (", skill_id" if skill else "")


def build_queries(table: str, columns: SourceColumns) -> tuple[str, str]:
    """The answers query and the counts query, in BigQuery's dialect.

    Args:
        table: the table reference, already validated: ``project.dataset.table``
            (checked by :func:`parse_table`) or a bare name for the local path.
        columns: the validated column mapping.

    Returns:
        ``(answers_sql, counts_sql)``.  The first returns ``student_id``,
        ``item_id``, ``correct`` (INT64 0/1), ``answered_at`` (and ``skill_id``
        when mapped) of the kept answers, in no particular order.  The second
        returns ``(stage, n)`` rows: every name of :data:`STAGES` but ``kept``
        (the first query's row count) and each :data:`ROW_REASONS` entry that
        dropped at least one row.

    Raises:
        ConfigError: if ``table`` is neither a valid three-part reference nor a
            plain name.
    """
    ctes, out_cols = _chain(table, columns)
    answers = ctes + f"SELECT {out_cols} FROM kept\n"
    # Up to labelled, the same text; then aggregates only (see the module docstring).
    head = ctes[:ctes.index("first_attempts AS (")]
    counts = head + """reasons AS (
  SELECT drop_reason, COUNT(*) AS n FROM labelled GROUP BY drop_reason
),
per_item AS (
  SELECT LEAST(COUNT(DISTINCT student_id), @max_answers_per_item) AS capped,
         COUNT(DISTINCT student_id) AS first_attempts
  FROM labelled WHERE drop_reason IS NULL GROUP BY item_id
)
SELECT 'rows_in' AS stage, COALESCE(SUM(n), 0) AS n FROM reasons
UNION ALL SELECT drop_reason AS stage, n FROM reasons WHERE drop_reason IS NOT NULL
UNION ALL SELECT 'valid' AS stage, COALESCE(SUM(n), 0) AS n FROM reasons
  WHERE drop_reason IS NULL
UNION ALL SELECT 'first_attempts' AS stage, COALESCE(SUM(first_attempts), 0) AS n
  FROM per_item
UNION ALL SELECT 'capped' AS stage, COALESCE(SUM(capped), 0) AS n FROM per_item
UNION ALL SELECT 'items_ok' AS stage, COALESCE(SUM(capped), 0) AS n FROM per_item
  WHERE capped >= @min_answers_per_item
"""
    return answers, counts


def stage_sql(table: str, columns: SourceColumns, stage: str) -> str:
    """``SELECT COUNT(*) AS n`` over one step of the answers query's CTE chain.

    For tests and debugging: the counts query derives the same numbers from
    aggregates, and this is what they must equal.

    Args:
        table: as for :func:`build_queries`.
        columns: as for :func:`build_queries`.
        stage: one of :data:`STAGES`.

    Raises:
        ConfigError: an unknown stage, or an invalid table reference.
    """
    if stage not in STAGES:
        raise ConfigError(f"{stage!r} is not one of {', '.join(STAGES)}", "stage")
    ctes, _ = _chain(table, columns)
    source = {"rows_in": "labelled", "valid": "labelled WHERE drop_reason IS NULL"}
    return ctes + f"SELECT COUNT(*) AS n FROM {source.get(stage, stage)}\n"


def drops_from_counts(counts: dict[str, int]) -> dict[str, int]:
    """Rows dropped per reason by the SQL, from the counts query's ``(stage, n)``.

    Returns:
        ``{reason: rows}`` for the :data:`ROW_REASONS` and ``duplicate_attempt``,
        ``item_answer_cap``, ``item_below_min_answers``,
        ``student_below_min_answers``.

    Raises:
        ValueError: a stage of :data:`STAGES` is missing, or the counts do not
            add up (``rows_in`` != kept + every drop).
    """
    missing = [s for s in STAGES if s not in counts]
    if missing:
        raise ValueError(f"counts query did not return {', '.join(missing)}")
    drops = {r: int(counts.get(r, 0)) for r in ROW_REASONS}
    drops["duplicate_attempt"] = counts["valid"] - counts["first_attempts"]
    drops["item_answer_cap"] = counts["first_attempts"] - counts["capped"]
    drops["item_below_min_answers"] = counts["capped"] - counts["items_ok"]
    drops["student_below_min_answers"] = counts["items_ok"] - counts["kept"]
    if counts["rows_in"] != counts["kept"] + sum(drops.values()) or min(drops.values()) < 0:
        raise ValueError(f"inconsistent stage counts {counts}")
    return drops


def to_duckdb(sql: str) -> str:
    """Transpile a statement from BigQuery's dialect to DuckDB's (sqlglot).

    ``@name`` parameters become ``$name``; bind them with a dict.
    """
    import sqlglot  # local path only: not a dependency of the deployed function

    return sqlglot.transpile(sql, read="bigquery", write="duckdb")[0]
