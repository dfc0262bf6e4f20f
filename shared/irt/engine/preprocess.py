"""Turn raw answer rows into a clean :class:`~irt.engine.responses.Responses`.

Plain Python and numpy only; no I/O.  The pipeline of :func:`prepare_rows`:

1. **Validate each row.**  A row is dropped under the *first* matching reason,
   checked in this order: ``null_student_id``, ``null_item_id``, ``id_too_long``
   (student id, then item id), ``invalid_correct``, ``invalid_answered_at``.
2. **Keep the first attempt** of every (student, item) pair; later attempts are
   dropped as ``duplicate_attempt``.  "First" means the earliest ``answered_at``;
   attempts without a timestamp count as later than every timestamped attempt.
   Of attempts with equal timestamps the incorrect one counts (as the answer-log
   SQL orders them, ``ORDER BY answered_at, correct``, and as ``predict`` does);
   remaining ties (equal timestamp and outcome, or no timestamps at all) go to
   the attempt that comes first in the input.
3. **Minimum-answer filters**, repeated until nothing changes: every round first
   drops the answers of items with fewer than ``min_answers_per_item`` answers
   (``item_below_min_answers``), then those of students with fewer than
   ``min_answers_per_student`` answers (``student_below_min_answers``).  Each
   answer is counted once, under the filter that removed it.
4. **Index** students and items in order of first appearance among the kept
   answers.  Ids that end with no answer are not part of the result.

The kept answers stay in input order (they are *not* sorted by time).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from irt.engine.responses import Responses

#: The drop reasons of a single malformed row (the other reasons are filters: duplicates,
#: minimums): what the CLI's ``--lenient`` lets through, ``prepare``'s SQL assigns row by row
#: and its ``DATA_MAX_INVALID_SHARE`` bounds.
INVALID_REASONS: tuple[str, ...] = (
    "null_student_id",
    "null_item_id",
    "id_too_long",
    "invalid_correct",
    "invalid_answered_at",
)
#: Every drop reason reported by :func:`prepare_rows`, in pipeline order.
DROP_REASONS: tuple[str, ...] = (
    *INVALID_REASONS,
    "duplicate_attempt",
    "item_below_min_answers",
    "student_below_min_answers",
)

#: The longest student or item id, in characters after stripping (longer: ``id_too_long``;
#: ``MAX_ID_LENGTH`` of ``prepare``, the ids ``predict`` accepts).
MAX_ID_LENGTH = 256

CORRECT_STRINGS: dict[str, int] = {
    "0": 0, "1": 1,
    "false": 0, "true": 1,
    "f": 0, "t": 1,
    "no": 0, "yes": 1,
}

_NUMERIC_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class PrepareReport:
    """What :func:`prepare_rows` did to the input.

    Attributes:
        rows_in: number of input rows.
        rows_out: number of answers kept.
        dropped: number of dropped rows per reason; holds every key of
            :data:`DROP_REASONS` (zero when nothing was dropped for it), so
            ``rows_in == rows_out + sum(dropped.values())``.
        n_students: number of students with at least one kept answer.
        n_items: number of items with at least one kept answer.
    """

    rows_in: int
    rows_out: int
    dropped: dict[str, int]
    n_students: int
    n_items: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (plain ``int`` values, reasons in pipeline order)."""
        return {
            "rows_in": int(self.rows_in),
            "rows_out": int(self.rows_out),
            "dropped": {k: int(v) for k, v in self.dropped.items()},
            "n_students": int(self.n_students),
            "n_items": int(self.n_items),
        }


@dataclass(frozen=True)
class PreparedAnswers:
    """Output of :func:`prepare_rows`.

    Attributes:
        responses: the kept answers, in input order.
        report: counts of what was kept and dropped.
        answered_at: ``float64`` epoch seconds aligned with the answers of
            ``responses`` (``NaN`` where that answer had no timestamp), or
            ``None`` when no kept answer has a timestamp.
    """

    responses: Responses
    report: PrepareReport
    answered_at: np.ndarray | None


def parse_correct(value: Any) -> int | None:
    """Parse a ``correct`` value into 0 or 1.

    Accepted: ``bool``; integers 0 and 1 (including numpy integers); floats
    0.0 and 1.0; the strings ``0 1 true false t f yes no`` (case-insensitive,
    surrounding whitespace ignored).

    Args:
        value: the raw value.

    Returns:
        0 or 1, or ``None`` when the value is anything else (``2``, ``-1``,
        ``0.5``, ``"maybe"``, ``None``, ``NaN``, ``""``, ...).
    """
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value) if value in (0, 1) else None
    if isinstance(value, (float, np.floating)):
        # NaN compares unequal to everything, so it falls through to None.
        if value == 0.0:
            return 0
        if value == 1.0:
            return 1
        return None
    if isinstance(value, str):
        return CORRECT_STRINGS.get(value.strip().lower())
    return None


def parse_timestamp(value: Any) -> float | None:
    """Parse an ``answered_at`` value into epoch seconds.

    Accepted:

    * ``None`` and empty / whitespace-only strings: *absent*, returns ``None``.
    * ``int`` / ``float`` (numpy ones too, not ``bool``): epoch seconds; must be finite.
    * :class:`datetime.datetime`: a naive value is taken as UTC.
    * strings: a plain decimal number (``"1700000000"``, ``"1.7e9"``) is epoch
      seconds; anything else must be ISO-8601 as read by
      :meth:`datetime.datetime.fromisoformat`, a trailing ``Z`` meaning UTC and
      a missing offset meaning UTC.  A purely numeric string is always epoch
      seconds, never a compact date such as ``20240101``.

    Args:
        value: the raw value.

    Returns:
        Epoch seconds, or ``None`` when the value is absent.

    Raises:
        ValueError: the value is present but not a valid timestamp (``NaN``,
            ``inf``, ``True``, ``"yesterday"``, an unsupported type, ...).
    """
    if value is None:
        return None
    is_number = isinstance(value, (int, float, np.integer, np.floating))
    if is_number and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            raise ValueError(f"timestamp out of range: {value!r}") from None
        if not math.isfinite(seconds):
            raise ValueError(f"timestamp must be finite: {value!r}")
        return seconds
    if isinstance(value, datetime):
        return _datetime_seconds(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if _NUMERIC_RE.fullmatch(text):
            seconds = float(text)
            if not math.isfinite(seconds):
                raise ValueError(f"timestamp out of range: {value!r}")
            return seconds
        if text[-1] in "Zz":
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from None
        return _datetime_seconds(parsed)
    raise ValueError(f"unsupported timestamp type {type(value).__name__}: {value!r}")


_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH_NAIVE.replace(tzinfo=UTC)


def _datetime_seconds(value: datetime) -> float:
    """Epoch seconds of ``value``, a naive value being UTC."""
    try:
        if value.tzinfo is None or value.utcoffset() is None:
            return (value.replace(tzinfo=None) - _EPOCH_NAIVE).total_seconds()
        return (value - _EPOCH_UTC).total_seconds()
    except OverflowError:
        raise ValueError(f"timestamp out of range: {value!r}") from None


def timestamp_or_nan(value: Any) -> float | None:
    """Epoch seconds, ``NaN`` for absent, ``None`` for invalid."""
    tv = type(value)
    if tv is float:
        return value if math.isfinite(value) else None
    if tv is str and len(value) >= 10 and value[4] == "-":
        # Fast path for ISO-8601 date-times; anything unusual takes the full parser.
        try:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                return (parsed - _EPOCH_NAIVE).total_seconds()
            return (parsed - _EPOCH_UTC).total_seconds()  # fixed-offset tzinfo
        except (ValueError, OverflowError):
            pass
    try:
        seconds = parse_timestamp(value)
    except ValueError:
        return None
    return math.nan if seconds is None else seconds


def _first_appearance(index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Renumber ``index`` (values in ``[0, n)``) by order of first appearance.

    Returns:
        ``(new_index, old_of_new)``: the renumbered array and, for each new
        number, the old one.
    """
    if index.size == 0:
        return index.astype(np.int32), np.zeros(0, dtype=np.int64)
    # Fast path, O(n): already numbered by first appearance (e.g. codes from dictionary-
    # encoding a sorted column) - the running maximum starts at 0 and grows by steps of 1.
    running = np.maximum.accumulate(index)
    if running[0] == 0 and (np.diff(running) <= 1).all():
        return index.astype(np.int32), np.arange(int(running[-1]) + 1, dtype=np.int64)
    seen, first = np.unique(index, return_index=True)
    old_of_new = seen[np.argsort(first, kind="stable")]
    remap = np.full(n, -1, dtype=np.int64)
    remap[old_of_new] = np.arange(old_of_new.size)
    return remap[index].astype(np.int32), old_of_new


def prepare_rows(
    rows: Iterable[Mapping[str, Any] | Sequence[Any]],
    *,
    min_answers_per_item: int = 1,
    min_answers_per_student: int = 1,
    max_id_length: int = MAX_ID_LENGTH,
) -> PreparedAnswers:
    """Validate, deduplicate and filter raw answer rows.

    See the module docstring for the full pipeline and tie-break rules.

    Args:
        rows: mappings with keys ``student_id``, ``item_id``, ``correct`` and
            optionally ``answered_at`` (a missing key is the same as ``None``),
            or sequences ``(student_id, item_id, correct[, answered_at])``.
            Ids are converted with ``str()`` and stripped; ``None``, a float
            ``NaN`` or an empty string is a null id.  ``correct`` is read by
            :func:`parse_correct`, ``answered_at`` by :func:`parse_timestamp`
            (absent values are fine; present but unparseable ones drop the row).
        min_answers_per_item: items with fewer kept answers are dropped.
        min_answers_per_student: students with fewer kept answers are dropped.
        max_id_length: ids longer than this (in characters, after stripping)
            drop the row as ``id_too_long``.

    Returns:
        The kept answers, in input order, with a :class:`PrepareReport`.

    Raises:
        ValueError: a minimum is negative, ``max_id_length < 1``, or a sequence
            row does not have 3 or 4 fields.
        TypeError: a row is neither a mapping nor a sequence (strings and bytes
            are not accepted as rows).
    """
    for name, value in (("min_answers_per_item", min_answers_per_item),
                        ("min_answers_per_student", min_answers_per_student)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if max_id_length < 1:
        raise ValueError(f"max_id_length must be >= 1, got {max_id_length}")

    dropped = dict.fromkeys(DROP_REASONS, 0)
    n_null_student = n_null_item = n_too_long = n_bad_correct = n_bad_time = 0

    # Provisional interning (order of first appearance among valid rows).
    # ``*_raw`` caches str input -> index, or -1 (null) / -2 (too long).
    student_index: dict[str, int] = {}
    item_index: dict[str, int] = {}
    student_raw: dict[str, int] = {}
    item_raw: dict[str, int] = {}

    def intern(value: Any, raw: dict[str, int], index: dict[str, int]) -> int:
        if type(value) is str:
            cached = raw.get(value)
            if cached is not None:
                return cached
            text = value.strip()
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            return -1
        else:
            text = str(value).strip()
        if not text:
            code = -1
        else:
            code = index.get(text, -3)
            if code == -3:
                if len(text) > max_id_length:
                    code = -2
                else:
                    code = index[text] = len(index)
        if type(value) is str:
            raw[value] = code
        return code

    students: list[int] = []
    items: list[int] = []
    corrects: list[int] = []
    times: list[float] = []
    any_time = False
    rows_in = 0
    correct_strings = CORRECT_STRINGS

    for row in rows:
        rows_in += 1
        if type(row) is dict or isinstance(row, Mapping):
            sid = row.get("student_id")
            iid = row.get("item_id")
            cval = row.get("correct")
            tval = row.get("answered_at")
        else:
            if isinstance(row, (str, bytes, bytearray)) or not hasattr(row, "__len__"):
                raise TypeError(
                    f"row {rows_in}: expected a mapping or a sequence, got {type(row).__name__}"
                )
            n_fields = len(row)
            if n_fields == 3:
                sid, iid, cval = row
                tval = None
            elif n_fields == 4:
                sid, iid, cval, tval = row
            else:
                raise ValueError(f"row {rows_in}: expected 3 or 4 fields, got {n_fields}")

        # The cache lookups are inlined: this loop is the hot path.
        s = student_raw.get(sid) if type(sid) is str else None
        if s is None:
            s = intern(sid, student_raw, student_index)
        if s == -1:
            n_null_student += 1
            continue
        i = item_raw.get(iid) if type(iid) is str else None
        if i is None:
            i = intern(iid, item_raw, item_index)
        if i == -1:
            n_null_item += 1
            continue
        if s == -2 or i == -2:
            n_too_long += 1
            continue
        c = correct_strings.get(cval) if type(cval) is str else None
        if c is None:
            c = parse_correct(cval)
            if c is None:
                n_bad_correct += 1
                continue
        if tval is None:
            t = math.nan
        elif type(tval) is float and tval - tval == 0.0:  # finite float
            t = tval
            any_time = True
        else:
            t = timestamp_or_nan(tval)
            if t is None:
                n_bad_time += 1
                continue
            if not math.isnan(t):
                any_time = True
        students.append(s)
        items.append(i)
        corrects.append(c)
        times.append(t)

    dropped["null_student_id"] = n_null_student
    dropped["null_item_id"] = n_null_item
    dropped["id_too_long"] = n_too_long
    dropped["invalid_correct"] = n_bad_correct
    dropped["invalid_answered_at"] = n_bad_time

    student = np.array(students, dtype=np.int64)
    item = np.array(items, dtype=np.int64)
    correct = np.array(corrects, dtype=np.int8)
    del students, items, corrects
    time_arr = np.array(times, dtype=np.float64) if any_time else None
    return _finish(student, list(student_index), item, list(item_index), correct, time_arr,
                   rows_in, dropped, min_answers_per_item, min_answers_per_student)


def prepare_coded(
    student: np.ndarray,
    student_ids: Sequence[Any],
    item: np.ndarray,
    item_ids: Sequence[Any],
    correct: np.ndarray,
    answered_at: np.ndarray | None = None,
    *,
    min_answers_per_item: int = 1,
    min_answers_per_student: int = 1,
    max_id_length: int = MAX_ID_LENGTH,
) -> PreparedAnswers:
    """Columnar twin of :func:`prepare_rows` for dictionary-encoded input.

    Same pipeline, drop reasons, tie-breaks and output as :func:`prepare_rows`
    on the equivalent rows, vectorised: this is what ``prepare`` runs on the
    Arrow columns of a query result, where Python row objects would cost
    seconds per million answers.

    Args:
        student: integer code of each answer's student into ``student_ids``;
            ``-1`` is a null id.
        student_ids: the dictionary of student ids (``str()`` and stripped
            like :func:`prepare_rows`; ``None`` or an empty string is null).
        item: the same for items, codes into ``item_ids``.
        item_ids: the dictionary of item ids.
        correct: numeric array; ``0`` and ``1`` are valid, anything else
            (including ``NaN``) drops the answer as ``invalid_correct``.
        answered_at: ``float64`` epoch seconds, ``NaN`` where absent (an absent
            time is not an error; see the tie-break rules), or ``None``.
        min_answers_per_item: items with fewer kept answers are dropped.
        min_answers_per_student: students with fewer kept answers are dropped.
        max_id_length: longer ids drop the row as ``id_too_long``.

    Returns:
        The kept answers, in input order, with a :class:`PrepareReport`.

    Raises:
        ValueError: arrays of different lengths, a code outside its
            dictionary, a negative minimum or ``max_id_length < 1``.
    """
    for name, value in (("min_answers_per_item", min_answers_per_item),
                        ("min_answers_per_student", min_answers_per_student)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if max_id_length < 1:
        raise ValueError(f"max_id_length must be >= 1, got {max_id_length}")
    student = np.asarray(student).reshape(-1)
    item = np.asarray(item).reshape(-1)
    if not np.issubdtype(student.dtype, np.integer) or not np.issubdtype(item.dtype, np.integer):
        raise ValueError("student and item codes must be integers")
    correct_in = np.asarray(correct).reshape(-1)  # any numeric dtype; no copy
    n = student.shape[0]
    if item.shape[0] != n or correct_in.shape[0] != n or (
            answered_at is not None and np.shape(answered_at)[0] != n):
        raise ValueError("student, item, correct and answered_at must have the same length")

    def recode(codes: np.ndarray, ids: Sequence[Any], what: str) -> tuple[np.ndarray, list[str]]:
        # dictionary entry -> stripped-id index, or -1 (null) / -2 (too long)
        if codes.size and (codes.min() < -1 or codes.max() >= len(ids)):
            raise ValueError(f"{what} code outside its dictionary")
        lookup = np.empty(len(ids) + 1, dtype=np.int32 if len(ids) < 2**31 - 1 else np.int64)
        lookup[-1] = -1  # code -1 (null) indexes the last slot
        index: dict[str, int] = {}
        for k, value in enumerate(ids):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                lookup[k] = -1
                continue
            text = str(value).strip()
            if not text:
                lookup[k] = -1
            elif len(text) > max_id_length:
                lookup[k] = -2
            else:
                lookup[k] = index.setdefault(text, len(index))
        return lookup[codes], list(index)

    s, s_names = recode(student, student_ids, "student")
    i, i_names = recode(item, item_ids, "item")
    dropped = dict.fromkeys(DROP_REASONS, 0)
    null_s = s == -1
    null_i = ~null_s & (i == -1)
    too_long = ~null_s & ~null_i & ((s == -2) | (i == -2))
    bad = null_s | null_i | too_long
    bad_correct = ~bad & ~((correct_in == 0) | (correct_in == 1))
    dropped["null_student_id"] = int(null_s.sum())
    dropped["null_item_id"] = int(null_i.sum())
    dropped["id_too_long"] = int(too_long.sum())
    dropped["invalid_correct"] = int(bad_correct.sum())
    valid = ~(bad | bad_correct)
    times = None
    if answered_at is not None:
        times = np.asarray(answered_at, dtype=np.float64).reshape(-1)[valid]
        if np.isnan(times).all():
            times = None
    # Ids are indexed in order of first appearance among *valid* rows, as in prepare_rows.
    s_valid, i_valid = s[valid], i[valid]
    s_first, s_old = _first_appearance(s_valid, len(s_names))
    i_first, i_old = _first_appearance(i_valid, len(i_names))
    return _finish(s_first, [s_names[k] for k in s_old.tolist()],
                   i_first, [i_names[k] for k in i_old.tolist()],
                   correct_in[valid].astype(np.int8), times, n, dropped,
                   min_answers_per_item, min_answers_per_student)


def _finish(student: np.ndarray, student_names: list[str], item: np.ndarray,
            item_names: list[str], correct: np.ndarray, times: np.ndarray | None,
            rows_in: int, dropped: dict[str, int], min_answers_per_item: int,
            min_answers_per_student: int) -> PreparedAnswers:
    """First attempts, minimum-answer filters and final indexing (steps 2-4)."""
    any_time = times is not None
    n_valid = student.size
    n_student_prov = len(student_names)
    n_item_prov = len(item_names)

    # --- first attempt per (student, item) -----------------------------------
    keep = np.zeros(n_valid, dtype=bool)
    if n_valid:
        pair = student.astype(np.int64) * n_item_prov + item  # < rows_in**2: fits int64
        sorted_pair = np.sort(pair)
        if not (sorted_pair[1:] == sorted_pair[:-1]).any():
            keep[:] = True  # no pair repeats (the SQL path's usual case): nothing to choose
        elif any_time:
            untimed = np.isnan(times)
            sort_time = np.where(untimed, np.inf, times)  # absent = after every timestamp
            # at one timestamp the incorrect attempt first; untimed ones in input order
            outcome = np.where(untimed, 0, correct)
            order = np.lexsort((outcome, sort_time, pair))  # stable: ties keep input order
            sorted_pair = pair[order]
            is_first = np.empty(n_valid, dtype=bool)
            is_first[0] = True
            np.not_equal(sorted_pair[1:], sorted_pair[:-1], out=is_first[1:])
            keep[order[is_first]] = True
        else:
            _, first = np.unique(pair, return_index=True)
            keep[first] = True
    dropped["duplicate_attempt"] = int(n_valid - keep.sum())
    kept = np.flatnonzero(keep)  # positions into the valid rows, ascending

    # --- minimum-answer filters, to a fixed point ----------------------------
    n_item_drop = n_student_drop = 0
    while kept.size:
        changed = False
        if min_answers_per_item > 1:
            counts = np.bincount(item[kept], minlength=n_item_prov)
            ok = counts[item[kept]] >= min_answers_per_item
            if not ok.all():
                n_item_drop += int(kept.size - ok.sum())
                kept = kept[ok]
                changed = True
        if min_answers_per_student > 1 and kept.size:
            counts = np.bincount(student[kept], minlength=n_student_prov)
            ok = counts[student[kept]] >= min_answers_per_student
            if not ok.all():
                n_student_drop += int(kept.size - ok.sum())
                kept = kept[ok]
                changed = True
        if not changed:
            break
    dropped["item_below_min_answers"] = n_item_drop
    dropped["student_below_min_answers"] = n_student_drop

    # --- final indices ---------------------------------------------------------
    new_student, student_old = _first_appearance(student[kept], n_student_prov)
    new_item, item_old = _first_appearance(item[kept], n_item_prov)
    responses = Responses(
        new_student,
        new_item,
        correct[kept],
        tuple(student_names[k] for k in student_old.tolist()),
        tuple(item_names[k] for k in item_old.tolist()),
    )

    answered_at = None
    if any_time and kept.size:
        kept_time = times[kept]
        if not np.isnan(kept_time).all():
            answered_at = kept_time

    report = PrepareReport(
        rows_in=rows_in,
        rows_out=int(kept.size),
        dropped=dropped,
        n_students=responses.n_students,
        n_items=responses.n_items,
    )
    return PreparedAnswers(responses=responses, report=report, answered_at=answered_at)
