"""The ``predict`` API's request validation and answers, free of HTTP and I/O (numpy only).

``functions/predict/main.py`` maps HTTP onto these functions; everything a
request can get wrong is detected here and raised as :class:`RequestError`
naming the field (``responses[3].correct``) and the rule.

Contract (see ``docs/predict-openapi.yaml``):

* predict, one student: ``{"responses": [{"item_id": "Q1", "correct": true,
  "answered_at": "2026-11-28T10:00:00Z"}, ...], "items": ["Q7"], "method": "EAP"}``
* predict, a batch: ``{"students": [{"student_id": "...", "responses": [...],
  "items": [...]}, ...], "method": "EAP"}``
* next items: ``{"responses": [...], "k": 3, "strategy": "max_information",
  "target": 0.7, "candidates": ["Q7", ...]}``

Answers: ``correct`` is a JSON boolean or the integer 0/1; ``answered_at`` is
optional (ISO-8601 string or epoch seconds).  If the same item is answered more
than once, the first attempt counts (earliest ``answered_at`` when given - at the
same time the incorrect one - else the first in the list), as in calibration.
Item ids are trimmed of surrounding whitespace (``' Q1 '`` is ``Q1``), as the
answer-log SQL and the preprocessing trim them; student ids are echoed as sent.
Unknown item ids, answered or requested, are listed in ``unknown_items``, never an
error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, islice, repeat
from operator import add, itemgetter
from typing import Any

import numpy as np

from .ability import _single_grid, eap, eap_batch, eap_rows, map_batch
from .model import ItemModel, logistic
from .selection import STRATEGIES, next_items


class RequestError(Exception):
    """A request the API refuses.

    Attributes:
        status: HTTP status (400, 413, ...).
        code: machine-readable error code.
        message: human-readable rule that was broken.
        field: JSON path of the offending field, or ``None``.
    """

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 log_field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        #: ``field`` without caller-chosen text (an unknown key could be anything, even a
        #: student id): what may go into logs.
        self.log_field = log_field if log_field is not None else field

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


def invalid(field: str, message: str) -> RequestError:
    return RequestError(400, "invalid_request", message, field)


def too_large(field: str, message: str) -> RequestError:
    return RequestError(413, "too_large", message, field)


@dataclass(frozen=True)
class Limits:
    """Size caps; exceeding one is a 413.

    Attributes:
        max_responses: answers per student.
        max_items: requested items (or candidates) per student.
        max_students: students per batch.
        max_id_length: characters in an id.
        max_k: next items per request.
    """

    max_responses: int = 1000
    max_items: int = 5000
    max_students: int = 100
    max_id_length: int = 256
    max_k: int = 100


@dataclass(frozen=True)
class Student:
    """One student's validated request."""

    student_id: str | None
    item_ids: list[str]
    correct: list[int]
    items: list[str] | None


METHODS = ("EAP", "MAP")


def _check_keys(obj: dict[str, Any], allowed: frozenset[str], path: str) -> None:
    for key in obj:
        if key not in allowed:
            name = f"{path}.{key}" if path else key
            err = invalid(name, f"unknown field; allowed: {', '.join(sorted(allowed))}")
            err.log_field = f"{path}.<unknown field>" if path else "<unknown field>"
            raise err


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(path or "body", "must be a JSON object")
    return value


def _id(value: Any, path: str, limits: Limits) -> str:
    if value is None:
        raise invalid(path, "is required")
    if not isinstance(value, str) or not value.strip():
        raise invalid(path, "must be a non-empty string")
    if len(value) > limits.max_id_length:
        raise invalid(path, f"must be at most {limits.max_id_length} characters")
    return value


def _item_id(value: Any, path: str, limits: Limits) -> str:
    """A valid item id, trimmed as the answer-log SQL trims them (``' Q1 '`` is ``Q1``);
    student ids (:func:`_id`) are echoed as sent."""
    return _id(value, path, limits).strip()


def _timestamp(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise invalid(path, "must be an ISO-8601 string or epoch seconds")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
        if not math.isfinite(seconds):
            raise invalid(path, "must be a finite number of seconds")
        return seconds
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise invalid(path, "must be an ISO-8601 date-time or epoch seconds") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    raise invalid(path, "must be an ISO-8601 string or epoch seconds")


_ANSWER_KEYS = frozenset({"item_id", "correct", "answered_at"})


_GET_ITEM = itemgetter("item_id")
_GET_CORRECT = itemgetter("correct")


def _valid_ids(ids: list[Any], max_len: int) -> bool:
    """True if every id is a string of 1 to ``max_len`` characters with no whitespace around
    it (C-speed): what the fast paths take as is.  ``False`` sends the ids through the
    detailed checks, which name a blank or too long id and trim a padded one."""
    if not ids:
        return True
    try:
        unique = set(ids)  # one pass; the checks below run over the (few) distinct ids
    except TypeError:  # an unhashable value (object or array) is no id
        return False
    if set(map(type, unique)) != {str}:
        return False
    lengths = list(map(len, unique))
    # a stripped id never has whitespace around it: equal sets mean none had any
    return min(lengths) > 0 and max(lengths) <= max_len and set(map(str.strip, unique)) == unique


def _plain_answers(value: list[Any], max_len: int, *, unique: bool = True
                   ) -> tuple[list[str], list[int]] | None:
    """The common case at C speed: every answer exactly ``{"item_id", "correct"}``, valid,
    (with ``unique``) no item repeated.  ``None`` sends the list through the detailed checks."""
    if not value:
        return [], []
    if set(map(type, value)) != {dict} or set(map(len, value)) != {2}:
        return None
    try:
        ids = list(map(_GET_ITEM, value))
        ys = list(map(_GET_CORRECT, value))
    except KeyError:
        return None
    if not _valid_ids(ids, max_len) or not set(map(type, ys)) <= {bool, int} or not (
            set(ys) <= {0, 1}) or (unique and len(set(ids)) != len(ids)):
        return None
    return ids, ys  # bools are 0/1 ints already


def _plain_batch(raw: list[Any], limits: Limits) -> list[Student] | None:
    """A whole batch of plain students validated in a few C-speed passes over all answers.

    Plain: every student an object with ``responses`` (plain answers, no item repeated) and
    optionally a valid ``student_id`` and an ``items`` array of valid ids, within the caps.
    ``None`` sends the batch through the per-student checks (which name the field).
    """
    if set(map(type, raw)) != {dict} or not set().union(*map(dict.keys, raw)) <= _STUDENT_KEYS:
        return None
    answers = [e.get("responses") for e in raw]
    items = [e.get("items") for e in raw]
    sids = [e.get("student_id") for e in raw]
    if set(map(type, answers)) != {list} or not set(map(type, items)) <= {list, type(None)}:
        return None
    counts = list(map(len, answers))
    if max(counts) > limits.max_responses:
        return None
    listed = [v for v in items if v is not None]
    if listed and max(map(len, listed)) > limits.max_items:
        return None
    if not _valid_ids([v for v in sids if v is not None], limits.max_id_length) or not (
            _valid_ids([i for v in listed for i in v], limits.max_id_length)):
        return None
    flat = _plain_answers([a for v in answers for a in v], limits.max_id_length, unique=False)
    if flat is None:
        return None
    ids, correct = flat
    students = []
    start = 0
    for k, n in enumerate(counts):
        chunk = ids[start:start + n]
        if len(set(chunk)) != n:
            return None  # a repeated item: the detailed path keeps the first attempt
        students.append(Student(sids[k], chunk, correct[start:start + n], items[k]))
        start += n
    return students


def _responses(value: Any, path: str, limits: Limits) -> tuple[list[str], list[int]]:
    if value is None:
        raise invalid(path, "is required")
    if not isinstance(value, list):
        raise invalid(path, "must be an array of answers")
    if len(value) > limits.max_responses:
        raise too_large(path, f"at most {limits.max_responses} answers per student")
    fast = _plain_answers(value, limits.max_id_length)
    if fast is not None:
        return fast
    ids: list[str] = []
    correct: list[int] = []
    times: dict[int, float] = {}  # answer index -> answered_at, for timed answers only
    max_len = limits.max_id_length
    for i, answer in enumerate(value):
        # Fast path: exactly {"item_id": <valid id>, "correct": <bool or 0/1>}.
        if type(answer) is dict and len(answer) == 2:
            item = answer.get("item_id")
            y = answer.get("correct")
            if (type(item) is str and 0 < len(item) <= max_len and not item.isspace()
                    and (y is True or y is False or (type(y) is int and 0 <= y <= 1))):
                ids.append(item.strip())  # as _item_id trims it
                correct.append(int(y))
                continue
        here = f"{path}[{i}]"
        if not isinstance(answer, dict):
            raise invalid(here, "must be an object with item_id and correct")
        _check_keys(answer, _ANSWER_KEYS, here)
        ids.append(_item_id(answer.get("item_id"), f"{here}.item_id", limits))
        y = answer.get("correct")
        if y is None and "correct" not in answer:
            raise invalid(f"{here}.correct", "is required")
        if y is True or y is False:
            correct.append(int(y))
        elif type(y) is int and y in (0, 1):
            correct.append(y)
        else:
            raise invalid(f"{here}.correct", "must be true, false, 0 or 1")
        stamp = answer.get("answered_at")
        if stamp is not None:
            times[len(ids) - 1] = _timestamp(stamp, f"{here}.answered_at")
    rank = [math.inf] * len(ids)
    if times:  # earliest first; untimed attempts after the timed ones, in the given order
        order = sorted(range(len(ids)), key=lambda k: (times.get(k, math.inf), k))
        ids = [ids[k] for k in order]
        correct = [correct[k] for k in order]
        rank = [times.get(k, math.inf) for k in order]
    if len(set(ids)) != len(ids):
        # First attempt per item, as the answer-log SQL picks it (ORDER BY answered_at,
        # correct): the earliest; at the same time the incorrect one; else the first given.
        best: dict[str, tuple[float, int, int]] = {}
        for k, item in enumerate(ids):
            key = (rank[k], correct[k] if rank[k] != math.inf else 0, k)
            if item not in best or key < best[item]:
                best[item] = key
        keep = sorted(key[2] for key in best.values())
        ids = [ids[k] for k in keep]
        correct = [correct[k] for k in keep]
    return ids, correct


def _item_list(value: Any, path: str, limits: Limits, *, required: bool = False
               ) -> list[str] | None:
    if value is None:
        if required:
            raise invalid(path, "is required")
        return None
    if not isinstance(value, list):
        raise invalid(path, "must be an array of item ids")
    if len(value) > limits.max_items:
        raise too_large(path, f"at most {limits.max_items} items")
    if _valid_ids(value, limits.max_id_length):
        return value
    return [_item_id(v, f"{path}[{i}]", limits) for i, v in enumerate(value)]


def _method(value: Any) -> str:
    if value is None:
        return "EAP"
    if value not in METHODS:
        raise invalid("method", "must be 'EAP' or 'MAP'")
    return value


_SINGLE_KEYS = frozenset({"responses", "items", "method"})
_BATCH_KEYS = frozenset({"students", "method"})
_STUDENT_KEYS = frozenset({"student_id", "responses", "items"})
_NEXT_KEYS = frozenset({"responses", "k", "strategy", "target", "candidates", "method"})


def parse_predict(payload: Any, limits: Limits) -> tuple[list[Student], bool, str]:
    """Validate a predict request.

    Returns:
        ``(students, is_batch, method)``.

    Raises:
        RequestError: naming the first offending field.
    """
    body = _object(payload, "")
    if "students" in body:
        _check_keys(body, _BATCH_KEYS, "")
        method = _method(body.get("method"))
        raw = body["students"]
        if not isinstance(raw, list):
            raise invalid("students", "must be an array of students")
        if not raw:
            raise invalid("students", "must hold at least one student")
        if len(raw) > limits.max_students:
            raise too_large("students", f"at most {limits.max_students} students per request")
        fast = _plain_batch(raw, limits)
        if fast is not None:
            return fast, True, method
        students = []
        for i, entry in enumerate(raw):
            path = f"students[{i}]"
            obj = _object(entry, path)
            _check_keys(obj, _STUDENT_KEYS, path)
            sid = obj.get("student_id")
            if sid is not None:
                sid = _id(sid, f"{path}.student_id", limits)
            ids, correct = _responses(obj.get("responses"), f"{path}.responses", limits)
            items = _item_list(obj.get("items"), f"{path}.items", limits)
            students.append(Student(sid, ids, correct, items))
        return students, True, method
    _check_keys(body, _SINGLE_KEYS, "")
    method = _method(body.get("method"))
    ids, correct = _responses(body.get("responses"), "responses", limits)
    items = _item_list(body.get("items"), "items", limits)
    return [Student(None, ids, correct, items)], False, method


def _known(ids: list[str], correct: list[int], pos: list[int | None]
           ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Positions and answers of the known items, and the unknown ids (in order)."""
    if None not in pos:
        return np.array(pos, dtype=np.int64), np.array(correct, dtype=np.int8), []
    keep = [k for k, j in enumerate(pos) if j is not None]
    unknown = [item for item, j in zip(ids, pos, strict=True) if j is None]
    return (np.array([pos[k] for k in keep], dtype=np.int64),
            np.array([correct[k] for k in keep], dtype=np.int8), unknown)


def _estimate(model: ItemModel, pos: np.ndarray, y: np.ndarray, method: str
              ) -> tuple[float, float]:
    if method == "EAP":
        return eap(model, pos, y)
    t, s = map_batch(model, np.zeros(pos.shape[0], dtype=np.int64), pos, y, 1)
    return float(t[0]), float(s[0])


def _ability(model: ItemModel, student: Student, method: str
             ) -> tuple[float, float, np.ndarray, list[str]]:
    pos, y, unknown = _known(student.item_ids, student.correct,
                             list(map(model.index.get, student.item_ids)))
    theta, se = _estimate(model, pos, y, method)
    return theta, se, pos, unknown


def _ability_json(theta: float, se: float, method: str, n: int) -> dict[str, Any]:
    return {"theta": round(theta, 6), "se": round(se, 6), "method": method, "n_answers": n}


def _item_params(model: ItemModel) -> tuple[np.ndarray, int, float, float]:
    """``(records, width, max |a|, max |a b|)``, cached: each item's ``(a, a b)`` (and
    ``c`` if any ``c`` is not zero) as one record, so that gathering items is one 1-D
    fancy index (which, unlike ``take``, keeps the GIL)."""
    cached = model._cache.get("serving_items")
    if cached is None:
        ab = model.a * model.b
        cols = [model.a, ab] + ([model.c] if model.c.any() else [])
        params = np.ascontiguousarray(np.stack(cols, axis=1))
        records = params.view(np.dtype((np.void, params.itemsize * len(cols)))).reshape(-1)
        cached = (records, len(cols), float(np.abs(model.a).max(initial=0.0)),
                  float(np.abs(ab).max(initial=0.0)))
        model._cache["serving_items"] = cached  # type: ignore[assignment]
    return cached  # type: ignore[return-value]


def _probabilities(model: ItemModel, theta: float | np.ndarray,
                   pos: Sequence[int] | np.ndarray) -> np.ndarray:
    """P(correct) of the items at ``pos`` (a list or an array) at ``theta`` (a scalar, or an
    array aligned with ``pos``): :func:`irt.model.irf` in fewer numpy calls.

    ``1 / (1 + exp(a b - a theta))`` has full relative precision in both tails, as
    :func:`irt.model.logistic` has, unless ``exp`` overflows; where the exponent could
    reach 700 the stable :func:`~irt.model.logistic` is used instead.
    """
    records, width, a_max, ab_max = _item_params(model)
    if not isinstance(pos, np.ndarray):
        pos = np.fromiter(pos, dtype=np.intp, count=len(pos))
    params = records[pos].view(np.float64).reshape(-1, width)
    z = params[:, 0] * -theta
    z += params[:, 1]  # a (b - theta)
    top = abs(theta) if isinstance(theta, float) else float(np.abs(theta).max(initial=0.0))
    if ab_max + a_max * top < 700.0:
        np.exp(z, out=z)
        z += 1.0
        p = np.reciprocal(z, out=z)
    else:
        p = logistic(-z)
    if width == 3:
        c = params[:, 2]
        p = c + (1.0 - c) * p
    return p


def _rows_index(model: ItemModel) -> dict[str, int]:
    """``item_id -> 2 * position`` (cached): an answer's row in the EAP grid table is
    that plus ``correct``."""
    index = model._cache.get("rows_index")
    if index is None:
        index = model._cache["rows_index"] = {  # type: ignore[assignment]
            item: 2 * j for item, j in model.index.items()}
    return index  # type: ignore[return-value]


def _single(model: ItemModel, ids: list[str], correct: list[int], rows: list[int | None],
            items: list[str] | None, item_pos: list[int | None] | None, method: str
            ) -> dict[str, Any]:
    """One student's answer from looked-up ids.

    ``rows``: ``2 * position`` of each answered item (``None``: an id the model lacks; no
    item twice); ``item_pos``: positions of ``items`` (``None`` likewise), or both ``None``
    for every item.
    """
    unknown: list[str] = []
    if None in rows:
        unknown = [item for item, r in zip(ids, rows, strict=True) if r is None]
        correct = [c for c, r in zip(correct, rows, strict=True) if r is not None]
        rows = [r for r in rows if r is not None]
    n = len(rows)
    if method == "EAP" and n:
        theta, se = eap_rows(model, np.fromiter(map(add, rows, correct), dtype=np.intp,
                                                count=n))  # type: ignore[arg-type]
    else:
        theta, se = _estimate(model, np.array(rows, dtype=np.int64) >> 1,
                              np.array(correct, dtype=np.int8), method)
    if items is None:
        names: list[str] | tuple[str, ...] = model.item_ids
        probs = model.probability(theta)
    else:
        assert item_pos is not None
        if None in item_pos:
            names, sel = [], []
            for item, j in zip(items, item_pos, strict=True):
                if j is None:
                    if item not in unknown:
                        unknown.append(item)
                else:
                    names.append(item)
                    sel.append(j)
        else:
            names, sel = items, item_pos
        # A repeated id gets the same value twice; the dict keeps its first place.
        probs = _probabilities(model, theta, sel) if sel else np.zeros(0)
    return {
        "ability": _ability_json(theta, se, method, n),
        "probabilities": dict(zip(names, np.round(probs, 6).tolist(), strict=True)),
        "unknown_items": unknown,
    }


def predict_student(model: ItemModel, student: Student, method: str = "EAP") -> dict[str, Any]:
    """Ability and P(correct) for one validated student (``items=None``: every item)."""
    items = student.items
    return _single(model, student.item_ids, student.correct,
                   list(map(_rows_index(model).get, student.item_ids)), items,
                   None if items is None else list(map(model.index.get, items)), method)


# --------------------------------------------------------------------------- fast path
# The common request - plain answers, valid ids, within the caps - is checked and looked up
# in a few C-speed passes.  Anything else (an error to name, timed or repeated answers) goes
# through the detailed checks, which give the same answer or the field-named error.
_DICT_TYPE = {dict}
_LIST_TYPE = {list}
_LIST_OR_NONE = frozenset({list, type(None)})
_PAIR = {2}
#: ``correct`` values by identity: CPython's bools and small ints are singletons, so one
#: pass checks type and value (an equal value of another type, as 1.0, is not in it and
#: goes through the detailed checks, which refuse it).
_ANSWER_VALUES = frozenset(map(id, (True, False, 0, 1)))


def warm(model: ItemModel, limits: Limits) -> None:
    """Compute, before a model serves, everything the first request would otherwise build:
    the EAP grid table and the per-model lookups of the fast paths (all cached on it)."""
    _single_grid(model, 61, 6.0)
    _rows_index(model)
    _item_params(model)
    _ids_are_valid(model, limits.max_id_length)


def _ids_are_valid(model: ItemModel, max_len: int) -> bool:
    """Whether every item id of the model passes the request's id rules (cached), so that a
    requested id the model knows needs no further check."""
    key = ("ids_valid", max_len)
    ok = model._cache.get(key)
    if ok is None:
        ok = model._cache[key] = _valid_ids(list(model.item_ids), max_len)  # type: ignore
    return bool(ok)


def _fast_answers(value: list[Any], get: Callable[[Any], int | None], max_len: int
                  ) -> tuple[list[str], list[int], list[int | None]] | None:
    """Plain answers (exactly ``item_id`` and ``correct``, no item repeated), looked up:
    ``(ids, correct, [get(id) ...])`` (``get`` answers ``None`` for an id the model lacks);
    ``None`` if the answers are not all plain and valid."""
    if not value:
        return [], [], []
    try:  # len() of a non-container, or a getter on a non-object, is a TypeError
        if set(map(len, value)) != _PAIR:
            return None
        ids = list(map(_GET_ITEM, value))
        ys = list(map(_GET_CORRECT, value))
        pos = list(map(get, ids))  # an unhashable id is a TypeError
    except (TypeError, KeyError):
        return None
    if not set(map(id, ys)) <= _ANSWER_VALUES:
        return None
    if None in pos:  # unknown ids: valid ones, none repeated
        if len(set(ids)) != len(ids) or not _unknown_valid(ids, pos, max_len):
            return None
    elif len(set(pos)) != len(pos):  # a known item repeated
        return None
    return ids, ys, pos  # bools are 0/1 ints already


def _fast_items(items: list[Any], get: Callable[[Any], int | None], max_len: int
                ) -> list[int | None] | None:
    try:
        pos = list(map(get, items))
    except TypeError:
        return None
    return pos if _unknown_valid(items, pos, max_len) else None


def _unknown_valid(ids: list[Any], pos: list[int | None], max_len: int) -> bool:
    """Whether the ids the model lacks (``None`` positions) pass :func:`_valid_ids`."""
    return None not in pos or _valid_ids(
        [i for i, j in zip(ids, pos, strict=True) if j is None], max_len)


def _fast_predict(model: ItemModel, payload: Any, limits: Limits) -> dict[str, Any] | None:
    """The answer to a plain predict request, or ``None`` for the detailed path."""
    if type(payload) is not dict or not _ids_are_valid(model, limits.max_id_length):
        return None
    method = payload.get("method")
    if method is None:
        method = "EAP"
    elif method not in METHODS:
        return None
    if "students" in payload:
        raw = payload["students"]
        if not payload.keys() <= _BATCH_KEYS or type(raw) is not list or not raw or (
                len(raw) > limits.max_students):
            return None
        results = _fast_batch(model, raw, method, limits)
        return None if results is None else {"results": results}
    if not payload.keys() <= _SINGLE_KEYS:
        return None
    answers = payload.get("responses")
    items = payload.get("items")
    if type(answers) is not list or len(answers) > limits.max_responses or (
            items is not None and (type(items) is not list or len(items) > limits.max_items)):
        return None
    looked = _fast_answers(answers, _rows_index(model).get, limits.max_id_length)
    if looked is None:
        return None
    item_pos = None
    if items is not None:
        item_pos = _fast_items(items, model.index.get, limits.max_id_length)
        if item_pos is None:
            return None
    return _single(model, *looked, items, item_pos, method)


def _fast_batch(model: ItemModel, raw: list[Any], method: str, limits: Limits
                ) -> list[dict[str, Any]] | None:
    """A batch of plain students checked and looked up in C-speed passes over all answers."""
    if set(map(type, raw)) != _DICT_TYPE or not set(chain.from_iterable(raw)) <= _STUDENT_KEYS:
        return None
    answers = [e.get("responses") for e in raw]
    items = [e.get("items") for e in raw]
    sids = [e.get("student_id") for e in raw]
    if set(map(type, answers)) != _LIST_TYPE or not set(map(type, items)) <= _LIST_OR_NONE:
        return None
    counts = list(map(len, answers))
    listed = [v for v in items if v is not None]
    max_len = limits.max_id_length
    if max(counts) > limits.max_responses or (
            listed and max(map(len, listed)) > limits.max_items) or not _valid_ids(
            [v for v in sids if v is not None], max_len):
        return None
    flat = list(chain.from_iterable(answers))
    n = len(flat)
    get = model.index.get
    try:
        if n and set(map(len, flat)) != _PAIR:
            return None
        pos = np.fromiter(map(get, map(_GET_ITEM, flat), repeat(-1, n)), dtype=np.int64,
                          count=n)
        ys = list(map(_GET_CORRECT, flat))
        req_ids = list(chain.from_iterable(listed))
        m = len(req_ids)
        req_pos = np.fromiter(map(get, req_ids, repeat(-1, m)), dtype=np.int64, count=m)
    except (TypeError, KeyError):
        return None
    if not set(map(id, ys)) <= _ANSWER_VALUES:
        return None
    owner = np.repeat(np.arange(len(raw)), counts)
    # No item twice for a student (the detailed path keeps the first attempt): distinct
    # (student, position) keys among known items, distinct (student, id) among unknown ones.
    known = pos >= 0
    ids: dict[int, str] = {}  # the unknown ones, by answer
    if not known.all():
        miss = np.flatnonzero(~known).tolist()
        unknown_ids = [flat[k]["item_id"] for k in miss]
        ids = dict(zip(miss, unknown_ids, strict=True))
        pairs = set(zip(owner[miss].tolist(), unknown_ids, strict=True))
        if not _valid_ids(unknown_ids, max_len) or len(pairs) != len(miss):
            return None
        key = owner[known] * model.n_items + pos[known]
    else:
        key = owner * model.n_items + pos
    key.sort()
    if (key[1:] == key[:-1]).any():
        return None
    req_miss = np.flatnonzero(req_pos < 0).tolist()
    if req_miss and not _valid_ids([req_ids[k] for k in req_miss], max_len):
        return None
    return _score_batch(model, method, sids, counts, ids, pos, np.array(ys, dtype=np.int8),
                        owner, items, req_ids, req_pos)


def predict(model: ItemModel, payload: Any, limits: Limits, version: str) -> dict[str, Any]:
    """Answer a predict request (single or batch).

    Raises:
        RequestError: for invalid input.
    """
    if model.options.get("learning"):  # learning-aware model (irt.serving_learning)
        from .serving_learning import predict as learning_predict

        return {"model_version": version, **learning_predict(model, payload, limits)}
    answer = _fast_predict(model, payload, limits)
    if answer is None:
        students, is_batch, method = parse_predict(payload, limits)
        answer = ({"results": _predict_batch(model, students, method)} if is_batch
                  else predict_student(model, students[0], method))
    return {"model_version": version, **answer}


def _predict_batch(model: ItemModel, students: list[Student], method: str
                   ) -> list[dict[str, Any]]:
    """Many validated students at once (see :func:`_score_batch`)."""
    flat_ids = list(chain.from_iterable(s.item_ids for s in students))
    flat_y = np.array(list(chain.from_iterable(s.correct for s in students)), dtype=np.int8)
    counts = [len(s.item_ids) for s in students]
    wanted = [s.items for s in students]
    req_ids = list(chain.from_iterable(w for w in wanted if w))
    return _score_batch(model, method, [s.student_id for s in students], counts, flat_ids,
                        model.positions(flat_ids), flat_y,
                        np.repeat(np.arange(len(students)), counts), wanted, req_ids,
                        model.positions(req_ids))


def _score_batch(model: ItemModel, method: str, sids: list[str | None], counts: list[int],
                 flat_ids: list[str] | dict[int, str], flat_pos: np.ndarray, flat_y: np.ndarray,
                 owner: np.ndarray, wanted: list[list[str] | None], req_ids: list[str],
                 req_pos: np.ndarray) -> list[dict[str, Any]]:
    """Many students at once: one vectorised ability pass and one probability pass.

    Takes every student's answers as flat arrays (``owner``: the student of each answer,
    ``flat_pos`` ``-1`` for unknown items, whose ids ``flat_ids[k]`` gives; no item twice
    per student) and the requested items likewise (``wanted[i]`` ``None``: every item).
    Gives the same answers as :func:`predict_student` per student (to rounding).
    """
    n = len(counts)
    known = flat_pos >= 0
    unknown: list[list[str]] = [[] for _ in range(n)]
    for k in np.flatnonzero(~known).tolist():
        unknown[owner[k]].append(flat_ids[k])
    args = (model, owner[known], flat_pos[known], flat_y[known], n)
    theta, se = eap_batch(*args) if method == "EAP" else map_batch(*args)
    used = np.bincount(owner[known], minlength=n).tolist()
    # Requested items (a repeated id just maps to the same value twice).
    req_owner = np.repeat(np.arange(n), [0 if w is None else len(w) for w in wanted])
    ok = req_pos >= 0
    for k in np.flatnonzero(~ok).tolist():
        miss = unknown[req_owner[k]]
        if req_ids[k] not in miss:
            miss.append(req_ids[k])
    po, pp = req_owner[ok], req_pos[ok]
    probs = np.round(_probabilities(model, theta[po], pp), 6).tolist()
    names = [req_ids[k] for k in np.flatnonzero(ok).tolist()] if not ok.all() else req_ids
    sizes = np.bincount(po, minlength=n).tolist()
    pairs = zip(names, probs, strict=True)  # consumed student by student, in order
    theta_r = np.round(theta, 6).tolist()
    se_r = np.round(se, 6).tolist()
    if None in wanted:  # every item for some students
        every = [None if w is not None else dict(zip(model.item_ids, np.round(
            model.probability(theta[i]), 6).tolist(), strict=True))
            for i, w in enumerate(wanted)]
        probabilities = [dict(islice(pairs, k)) if e is None else e
                         for e, k in zip(every, sizes, strict=True)]
    else:
        probabilities = [dict(islice(pairs, k)) for k in sizes]
    return [{"student_id": sid, "ability": {"theta": t, "se": s, "method": method,
                                            "n_answers": u},
             "probabilities": p, "unknown_items": unk}
            for sid, t, s, u, p, unk in zip(sids, theta_r, se_r, used, probabilities, unknown,
                                            strict=True)]


def parse_next(payload: Any, limits: Limits) -> tuple[str, list[str], list[int], int, str,
                                                      float, list[str] | None]:
    """Validate a next-items request (shared by the plain and learning-aware paths).

    Returns:
        ``(method, answered ids, answers, k, strategy, target, candidates or None)``.

    Raises:
        RequestError: naming the field and the rule.
    """
    body = _object(payload, "")
    _check_keys(body, _NEXT_KEYS, "")
    method = _method(body.get("method"))
    ids, correct = _responses(body.get("responses"), "responses", limits)
    k = body.get("k", 1)
    if type(k) is not int or k < 1:
        raise invalid("k", "must be an integer of at least 1")
    if k > limits.max_k:
        raise too_large("k", f"must be at most {limits.max_k}")
    strategy = body.get("strategy", "max_information")
    if strategy not in STRATEGIES:
        raise invalid("strategy", f"must be one of {', '.join(STRATEGIES)}")
    target = body.get("target", 0.7)
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not (
            0.0 < target < 1.0):
        raise invalid("target", "must be a number strictly between 0 and 1")
    if "target" in body and strategy != "target_probability":
        raise invalid("target", "applies only to strategy 'target_probability'")
    candidates = _item_list(body.get("candidates"), "candidates", limits)
    return method, ids, correct, k, strategy, target, candidates


def recommend(model: ItemModel, payload: Any, limits: Limits, version: str) -> dict[str, Any]:
    """Answer a next-items request.

    Raises:
        RequestError: for invalid input.
    """
    if model.options.get("learning"):  # learning-aware model (irt.serving_learning)
        from .serving_learning import recommend as learning_recommend

        return {"model_version": version, **learning_recommend(model, payload, limits)}
    method, ids, correct, k, strategy, target, candidates = parse_next(payload, limits)
    student = Student(None, ids, correct, candidates)
    theta, se, pos, unknown = _ability(model, student, method)
    cand_pos = None
    if candidates is not None:
        looked, missing = model.lookup(list(dict.fromkeys(candidates)))
        cand_pos = looked[looked >= 0]
        unknown += [m for m in missing if m not in unknown]
    chosen = next_items(model, theta, k, strategy=strategy, target=float(target), exclude=pos,
                        candidates=cand_pos)
    probs = model.probability(theta, chosen)
    info = model.information(theta, chosen)
    return {
        "model_version": version,
        "ability": _ability_json(theta, se, method, int(pos.shape[0])),
        "strategy": strategy,
        "items": [{"item_id": model.item_ids[j], "probability": round(float(p), 6),
                   "information": round(float(i), 6)}
                  for j, p, i in zip(chosen.tolist(), probs, info, strict=True)],
        "unknown_items": unknown,
    }


def model_metadata(model: ItemModel, version: str) -> dict[str, Any]:
    """Serving model summary for ``GET /model``."""
    fit = model.fit
    return {
        "model_version": version,
        "model_type": model.model_type,
        "n_items": model.n_items,
        "created_at": model.created_at,
        "code_version": model.code_version,
        "population": {"mean": 0.0, "sd": model.population_sd},
        "fit": {k: fit[k] for k in ("method", "iterations", "converged", "log_likelihood",
                                    "aic", "bic", "se_method") if k in fit},
        "data_summary": {k: v for k, v in model.data_summary.items()
                         if isinstance(v, (int, float, str, bool))},
        "n_excluded_items": len(model.excluded_items),
    }
