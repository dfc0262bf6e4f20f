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
than once, the first attempt counts (earliest ``answered_at`` when given, else
the first in the list), as in calibration.  Unknown item ids, answered or
requested, are listed in ``unknown_items``, never an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import numpy as np

from .ability import eap, eap_batch, map_batch
from .model import ItemModel, irf
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
    """True if every id is a non-blank string of at most ``max_len`` characters (C-speed)."""
    if not ids:
        return True
    try:
        unique = set(ids)  # one pass; the checks below run over the (few) distinct ids
    except TypeError:  # an unhashable value (object or array) is no id
        return False
    if set(map(type, unique)) != {str}:
        return False
    lengths = list(map(len, unique))
    return min(lengths) > 0 and max(lengths) <= max_len and not any(map(str.isspace, unique))


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
                ids.append(item)
                correct.append(int(y))
                continue
        here = f"{path}[{i}]"
        if not isinstance(answer, dict):
            raise invalid(here, "must be an object with item_id and correct")
        _check_keys(answer, _ANSWER_KEYS, here)
        ids.append(_id(answer.get("item_id"), f"{here}.item_id", limits))
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
    if times:  # untimed attempts rank after timed ones; ties keep the given order
        order = sorted(range(len(ids)), key=lambda k: (times.get(k, math.inf), k))
        ids = [ids[k] for k in order]
        correct = [correct[k] for k in order]
    if len(set(ids)) != len(ids):  # first attempt per item
        seen: set[str] = set()
        keep = [k for k, item in enumerate(ids) if not (item in seen or seen.add(item))]
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
    if not _valid_ids(value, limits.max_id_length):
        for i, v in enumerate(value):
            _id(v, f"{path}[{i}]", limits)  # raises the precise error
    return value


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


def _ability(model: ItemModel, student: Student, method: str
             ) -> tuple[float, float, np.ndarray, list[str]]:
    index = model.index
    pos: list[int] = []
    y: list[int] = []
    unknown: list[str] = []
    for item, c in zip(student.item_ids, student.correct, strict=True):
        j = index.get(item)
        if j is None:
            unknown.append(item)
        else:
            pos.append(j)
            y.append(c)
    p = np.asarray(pos, dtype=np.int64)
    ya = np.asarray(y, dtype=np.int8)
    if method == "EAP":
        theta, se = eap(model, p, ya)
    else:
        t, s = map_batch(model, np.zeros(p.shape[0], dtype=np.int64), p, ya, 1)
        theta, se = float(t[0]), float(s[0])
    return theta, se, p, unknown


def _ability_json(theta: float, se: float, method: str, n: int) -> dict[str, Any]:
    return {"theta": round(theta, 6), "se": round(se, 6), "method": method, "n_answers": n}


def predict_student(model: ItemModel, student: Student, method: str = "EAP") -> dict[str, Any]:
    """Ability and P(correct) for one validated student (``items=None``: every item)."""
    theta, se, pos, unknown = _ability(model, student, method)
    if student.items is None:
        ids: list[str] | tuple[str, ...] = model.item_ids
        probs = model.probability(theta)
    else:
        index = model.index
        wanted = []
        ids = []
        for item in dict.fromkeys(student.items):
            j = index.get(item)
            if j is None:
                if item not in unknown:
                    unknown.append(item)
            else:
                wanted.append(j)
                ids.append(item)
        probs = model.probability(theta, np.asarray(wanted, dtype=np.int64))
    out: dict[str, Any] = {
        "ability": _ability_json(theta, se, method, int(pos.shape[0])),
        "probabilities": dict(zip(ids, np.round(probs, 6).tolist(), strict=True)),
        "unknown_items": unknown,
    }
    return out


def predict(model: ItemModel, payload: Any, limits: Limits, version: str) -> dict[str, Any]:
    """Answer a predict request (single or batch).

    Raises:
        RequestError: for invalid input.
    """
    students, is_batch, method = parse_predict(payload, limits)
    if not is_batch:
        return {"model_version": version, **predict_student(model, students[0], method)}
    return {"model_version": version, "results": _predict_batch(model, students, method)}


def _predict_batch(model: ItemModel, students: list[Student], method: str
                   ) -> list[dict[str, Any]]:
    """Many students at once: one vectorised ability pass and one probability pass.

    Gives the same answers as :func:`predict_student` per student (to rounding).
    """
    n = len(students)
    # Answers of every student in one flat list: one lookup pass, one ability pass.
    counts = [len(s.item_ids) for s in students]
    flat_ids = [item for s in students for item in s.item_ids]
    flat_pos = model.positions(flat_ids)
    flat_y = np.array([c for s in students for c in s.correct], dtype=np.int8)
    owner = np.repeat(np.arange(n), counts)
    known = flat_pos >= 0
    unknown: list[list[str]] = [[] for _ in range(n)]
    for k in np.flatnonzero(~known).tolist():
        unknown[owner[k]].append(flat_ids[k])
    args = (model, owner[known], flat_pos[known], flat_y[known], n)
    theta, se = eap_batch(*args) if method == "EAP" else map_batch(*args)
    used = np.bincount(owner[known], minlength=n).tolist()
    # Requested items, likewise flat (a repeated id just maps to the same value twice).
    wanted = [s.items or () for s in students]
    req_counts = [len(w) for w in wanted]
    req_ids = [item for w in wanted for item in w]
    req_pos = model.positions(req_ids)
    req_owner = np.repeat(np.arange(n), req_counts)
    ok = req_pos >= 0
    for k in np.flatnonzero(~ok).tolist():
        miss = unknown[req_owner[k]]
        if req_ids[k] not in miss:
            miss.append(req_ids[k])
    po, pp = req_owner[ok], req_pos[ok]
    probs = np.round(irf(theta[po], model.a[pp], model.b[pp], model.c[pp]), 6).tolist()
    names = [req_ids[k] for k in np.flatnonzero(ok).tolist()] if not ok.all() else req_ids
    bounds = np.searchsorted(po, np.arange(n + 1)).tolist()
    theta_r = np.round(theta, 6).tolist()
    se_r = np.round(se, 6).tolist()
    results = []
    for s_i, student in enumerate(students):
        lo, hi = bounds[s_i], bounds[s_i + 1]
        if student.items is None:
            probabilities = dict(zip(model.item_ids, np.round(
                model.probability(theta[s_i]), 6).tolist(), strict=True))
        else:
            probabilities = dict(zip(names[lo:hi], probs[lo:hi], strict=True))
        results.append({
            "student_id": student.student_id,
            "ability": {"theta": theta_r[s_i], "se": se_r[s_i], "method": method,
                        "n_answers": used[s_i]},
            "probabilities": probabilities,
            "unknown_items": unknown[s_i],
        })
    return results


def recommend(model: ItemModel, payload: Any, limits: Limits, version: str) -> dict[str, Any]:
    """Answer a next-items request.

    Raises:
        RequestError: for invalid input.
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
