"""Answers CSV in, student scores CSV out.

The package opens no files: callers (the CLI) pass already-open *text* streams.
Open input streams with ``newline=""`` as the :mod:`csv` module asks, so that
quoted fields holding line breaks are read correctly.

Answers CSV: a header naming at least ``student_id``, ``item_id`` and
``correct``, optionally ``answered_at``; other columns are ignored.  A file
whose columns are named otherwise (``user_id``, ``problem_id``, ``seq``) is
read with :class:`Columns`.  Header names are matched after stripping
whitespace (and a UTF-8 byte-order mark) and lower-casing.  Blank lines are
skipped.  Line numbers in errors are physical lines of the file, the header
being line 1; a row whose quoted field spans lines is reported at the line
where the row starts.
"""

from __future__ import annotations

import csv
import gzip
import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from irt.engine.preprocess import (
    CORRECT_STRINGS,
    MAX_ID_LENGTH,
    parse_correct,
    timestamp_or_nan,
)
from irt.errors import CSVFormatError

REQUIRED_COLUMNS: tuple[str, ...] = ("student_id", "item_id", "correct")
OPTIONAL_COLUMNS: tuple[str, ...] = ("answered_at",)
SCORES_HEADER: tuple[str, ...] = ("student_id", "theta", "se", "n_answers")


@dataclass(frozen=True)
class Columns:
    """The header names of an answers file's columns (matched as the header is: stripped,
    case-insensitive).  Rows are returned under the standard keys whatever the names.

    Attributes:
        student_id, item_id, correct: the three required columns.
        answered_at: the order column: epoch seconds or ISO-8601 date-times (or any
            number giving the order, e.g. ASSISTments' ``seq``).
        answered_at_required: whether a header without ``answered_at`` is an error
            (``False``: the file order is the answer order).
    """

    student_id: str = "student_id"
    item_id: str = "item_id"
    correct: str = "correct"
    answered_at: str = "answered_at"
    answered_at_required: bool = False

    def names(self) -> dict[str, str]:
        """``standard key -> header name`` (normalised) of every column."""
        return {key: _normalise(getattr(self, key))
                for key in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}


def _normalise(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


def _header_positions(header: list[str], columns: Columns,
                      extra: tuple[str, ...] = ()) -> dict[str, int]:
    """``standard key (or extra column name) -> field position``."""
    names = [_normalise(name) for name in header]
    wanted = {**columns.names(), **{c: c for c in extra}}
    required = REQUIRED_COLUMNS + extra + (
        ("answered_at",) if columns.answered_at_required else ())
    positions: dict[str, int] = {}
    for key, column in wanted.items():
        found = [k for k, name in enumerate(names) if name == column]
        if len(found) > 1:
            raise CSVFormatError(f"duplicate column {column!r} in header", 1)
        if found:
            positions[key] = found[0]
    missing = [wanted[c] for c in required if c not in positions]
    if missing:
        raise CSVFormatError(
            f"missing required column {missing[0]!r} in header (got {', '.join(header)})", 1
        )
    return positions


def _row_problem(fields: list[str], n_columns: int, positions: dict[str, int],
                 names: dict[str, str]) -> str | None:
    """Why a data row is bad, or ``None`` when it is fine (``names``: the header names)."""
    if len(fields) != n_columns:
        return f"expected {n_columns} fields, got {len(fields)}"
    for column in ("student_id", "item_id"):
        value = fields[positions[column]].strip()
        if not value:
            return f"{names[column]} is empty"
        if len(value) > MAX_ID_LENGTH:
            return f"{names[column]} longer than {MAX_ID_LENGTH} characters ({len(value)})"
    value = fields[positions["correct"]]
    if value not in CORRECT_STRINGS and parse_correct(value) is None:
        return (f"{names['correct']} must be one of 1/0, true/false, t/f, yes/no, in any case "
                f"(got {value!r})")
    if "answered_at" in positions:
        value = fields[positions["answered_at"]]
        if value and timestamp_or_nan(value) is None:  # same rules as parse_timestamp
            return (
                f"{names['answered_at']} must be epoch seconds or an ISO-8601 date-time "
                f"(got {value!r})"
            )
    return None


#: What reading a text stream of a bad file raises: bytes that are not UTF-8, a damaged or
#: truncated gzip stream.
_UNREADABLE = (UnicodeDecodeError, EOFError, zlib.error, gzip.BadGzipFile)


def _unreadable(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc.reason}: byte {exc.object[exc.start:exc.start + 1]!r})"
    return f"damaged gzip data ({exc})"


def read_answers_csv(stream: TextIO, *, strict: bool = True, columns: Columns | None = None,
                     extra_columns: tuple[str, ...] = ()) -> list[dict[str, str | None]]:
    """Read an answers CSV into rows for :func:`irt.engine.preprocess.prepare_rows`.

    Args:
        stream: an open text stream positioned at the header.
        strict: when true, the first bad row raises :class:`CSVFormatError`
            (wrong number of fields, empty ``student_id`` / ``item_id`` or one
            longer than :data:`~irt.engine.preprocess.MAX_ID_LENGTH` characters,
            invalid ``correct``, invalid non-empty ``answered_at``) and
            quoting is checked strictly (``csv`` ``strict=True``: a stray
            character after a closing quote or an unterminated quote at the
            end of the file is an error).  When false, the CSV is parsed
            leniently and every row is returned as read, for ``prepare_rows`` to drop
            and count: a row with too few fields gets ``None`` for the missing
            columns, extra fields of a row with too many are ignored (as
            :class:`csv.DictReader` does).
        columns: the header names of the columns (default: the standard ones).
        extra_columns: more columns to return (required in the header, matched as the
            others, any value allowed), e.g. a skill column.

    Returns:
        One dict per non-blank data row, in file order, with the keys
        ``student_id``, ``item_id``, ``correct`` (whatever ``columns`` names them)
        and, when the header has the column, ``answered_at``, and the
        ``extra_columns`` (lower-cased); values are the raw (unstripped) strings.
        Under ``strict=False`` nothing is checked here: ``prepare_rows`` drops
        and counts the bad rows (an id too long as ``id_too_long``).

    Raises:
        CSVFormatError: no header, a required column missing or repeated
            (line 1), a bad row in strict mode, a malformed CSV line, or text that
            cannot be decoded (not UTF-8, damaged gzip data).
    """
    reader = csv.reader(stream, strict=strict)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CSVFormatError(f"malformed CSV: {exc}", 1) from None
    except _UNREADABLE as exc:
        raise CSVFormatError(_unreadable(exc), 1) from None
    if header is None:
        raise CSVFormatError("empty file: missing header", 1)
    columns = columns or Columns()
    names = columns.names()
    extra = tuple(dict.fromkeys(_normalise(c) for c in extra_columns))
    positions = _header_positions(header, columns, extra)
    n_columns = len(header)
    keys = [c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS + extra if c in positions]
    wanted = [(c, positions[c]) for c in keys]

    rows: list[dict[str, str | None]] = []
    append = rows.append
    line_end = reader.line_num
    while True:
        line_start = line_end + 1
        try:
            fields = next(reader, None)
        except csv.Error as exc:
            raise CSVFormatError(f"malformed CSV: {exc}", line_start) from None
        except _UNREADABLE as exc:
            raise CSVFormatError(_unreadable(exc), line_start) from None
        if fields is None:
            break
        line_end = reader.line_num
        if not fields:  # blank line
            continue
        if strict:
            problem = _row_problem(fields, n_columns, positions, names)
            if problem is not None:
                raise CSVFormatError(problem, line_start)
        n_fields = len(fields)
        append({c: (fields[k] if k < n_fields else None) for c, k in wanted})
    return rows


def _format_float(value: float) -> str:
    value = float(value)
    if not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf"
    return f"{round(value, 6) + 0.0:.6f}"  # + 0.0 turns -0.0 into 0.0


def write_scores_csv(
    stream: TextIO,
    student_ids: Iterable[str],
    theta: Iterable[float],
    se: Iterable[float],
    n_answers: Iterable[int],
) -> None:
    """Write ``student_id,theta,se,n_answers``, one row per student.

    ``theta`` and ``se`` are written with 6 decimals (``nan`` / ``inf`` as
    such); lines end with ``\\n``; ids are quoted by :mod:`csv` when needed.

    Args:
        stream: an open text stream (open files with ``newline=""``).
        student_ids: external student ids.
        theta: ability estimates, aligned with ``student_ids``.
        se: standard errors, aligned with ``student_ids``.
        n_answers: number of answers of each student.

    Raises:
        ValueError: the four sequences differ in length.
    """
    ids = list(student_ids)
    columns = [list(theta), list(se), list(n_answers)]
    lengths = [len(ids)] + [len(c) for c in columns]
    if len(set(lengths)) != 1:
        raise ValueError(
            "student_ids, theta, se and n_answers must have the same length, got "
            + ", ".join(str(n) for n in lengths)
        )
    writer = csv.writer(stream, lineterminator="\n")
    # With a "\n" terminator, csv does not quote a lone "\r"; quote such rows fully.
    quote_all = csv.writer(stream, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(SCORES_HEADER)
    for sid, t, s, n in zip(ids, *columns, strict=True):
        row = (sid, _format_float(t), _format_float(s), str(int(n)))
        (quote_all if "\r" in str(sid) else writer).writerow(row)
