"""The ``predict`` API's request contract: validation, free of HTTP and I/O (numpy only).

Everything a request can get wrong is detected here and raised as
:class:`irt.errors.RequestError` naming the field (``responses[3].correct``) and the rule;
:mod:`irt.serving.plain` and :mod:`irt.serving.learning` answer the validated requests.

Contract (see ``docs/predict-openapi.yaml``):

* predict, one student: ``{"responses": [{"item_id": "Q1", "correct": true,
  "answered_at": "2026-11-28T10:00:00Z"}, ...], "items": ["Q7"], "method": "EAP"}``
* predict, a batch: ``{"students": [{"student_id": "...", "responses": [...],
  "items": [...]}, ...], "method": "EAP"}``
* next items: ``{"responses": [...], "k": 3, "strategy": "max_information",
  "target": 0.7, "candidates": ["Q7", ...]}``, with the adaptive controls ``exclude``,
  ``randomesque``, ``exposure``, ``seed``, ``skill_caps``, ``skill_shares`` and ``stop``
  (:func:`parse_next`)
* predict (single or batch) may name the skill of items the model has no parameters for:
  ``"item_skills": {"Q9": "fractions"}`` (:func:`item_skills`).

Answers: ``correct`` is a JSON boolean or the integer 0/1; ``answered_at`` is
optional (ISO-8601 string or epoch seconds).  If the same item is answered more
than once, the first attempt counts (earliest ``answered_at`` when given - at the
same time the incorrect one - else the first in the list), as in calibration.
Item ids are trimmed of surrounding whitespace (``' Q1 '`` is ``Q1``), as the
answer-log SQL and the preprocessing trim them; student ids are echoed as sent.
Ids may also be JSON integers (LMS databases keep INT64 ids): an integer id is read as
the answer-log SQL turns an INT64 id into text, ``CAST(id AS STRING)`` - its decimal digits,
a ``-`` when negative, no ``+``, no leading zeros - so ``7`` finds the item ``"7"`` the
model was trained on; beyond the INT64 range it is a 400.  An integer student id comes
back as that text.

Long histories: ``"truncate": "oldest"`` (or the server default, ``Limits.truncate``) keeps
the most recent ``max_responses`` answers of a student instead of a 413; the answer says
how many it dropped (``dropped_responses``, see :func:`truncate_mode`).
Unknown item ids, answered or requested, are listed in ``unknown_items``, never an
error; those the model knows only through their skill in ``provisional_items``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from irt.engine.selection import STRATEGIES
from irt.errors import RequestError


def invalid(message: str, field: str) -> RequestError:
    """A 400 ``invalid_request`` naming ``field``."""
    return RequestError(message, field, status=400, code="invalid_request")


def too_large(message: str, field: str) -> RequestError:
    """A 413 ``too_large`` naming ``field``."""
    return RequestError(message, field, status=413, code="too_large")


@dataclass(frozen=True)
class Limits:
    """Size caps; exceeding one is a 413.

    Attributes:
        max_responses: answers per student.
        max_items: requested items (or candidates) per student.
        max_students: students per batch.
        max_id_length: characters in an id.
        max_k: next items per request.
        max_probabilities: probabilities in one predict response, over all its students; a
            student without ``items`` asks for every item of the model (see
            :func:`check_probabilities`).
        truncate: the default of a request's ``truncate`` (``TRUNCATE_RESPONSES``):
            ``True`` keeps the most recent ``max_responses`` answers of a longer history
            instead of refusing it with a 413.
    """

    max_responses: int = 1000
    max_items: int = 5000
    max_students: int = 100
    max_id_length: int = 256
    max_k: int = 100
    #: 2**18: the most a 1 MiB body can ask for by listing items (4 bytes a shortest entry
    #: ``"a",``), so leaving ``items`` out never amplifies beyond what a request could name.
    max_probabilities: int = 1 << 18
    truncate: bool = False


@dataclass(frozen=True)
class Student:
    """One student's validated request (``item_skills``: the request's, shared by the
    students of a batch; ``dropped``: the oldest answers left out by ``truncate``)."""

    student_id: str | None
    item_ids: list[str]
    correct: list[int]
    items: list[str] | None
    item_skills: dict[str, str] | None = None
    dropped: int = 0


METHODS = ("EAP", "MAP")


def check_probabilities(wanted: Iterable[Sized | None], n_items: int, limits: Limits,
                        is_batch: bool) -> None:
    """Refuse a predict response of more than ``limits.max_probabilities`` probabilities.

    Args:
        wanted: each student's requested items (``items``), ``None`` for every item.
        n_items: items in the serving model (what a student without ``items`` asks for).
        limits: the caps.
        is_batch: names the field: ``students`` for a batch, ``items`` for one student.

    Raises:
        RequestError: 413 ``too_large``; without the cap a batch of students without
            ``items`` answered every item for every student (a 1.9 KB request, a 36 MB
            response).
    """
    total = sum(n_items if w is None else len(w) for w in wanted)
    if total > limits.max_probabilities:
        raise too_large(
            f"at most {limits.max_probabilities} probabilities per response (the sum over "
            f"students of the items requested; a student without 'items' requests all "
            f"{n_items} items of the model): list 'items', or send fewer students",
            "students" if is_batch else "items")


def _check_keys(obj: dict[str, Any], allowed: frozenset[str], path: str) -> None:
    for key in obj:
        if key not in allowed:
            name = f"{path}.{key}" if path else key
            err = invalid(f"unknown field; allowed: {', '.join(sorted(allowed))}", name)
            err.log_field = f"{path}.<unknown field>" if path else "<unknown field>"
            raise err


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid("must be a JSON object", path or "body")
    return value


#: The INT64 range of BigQuery ids: an integer id outside it cannot come from the answer log.
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def int_id(value: int, path: str) -> str:
    """An integer id as the answer-log SQL's ``CAST(id AS STRING)`` writes an INT64: decimal
    digits, ``-`` if negative (Python's ``str`` of an int is exactly that)."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise invalid("an integer id must be within the INT64 range", path)
    return str(value)


def _id(value: Any, path: str, limits: Limits) -> str:
    if value is None:
        raise invalid("is required", path)
    if type(value) is int:  # not bool: true is no id
        return int_id(value, path)
    if not isinstance(value, str) or not value.strip():
        raise invalid("must be a non-empty string or an integer", path)
    if len(value) > limits.max_id_length:
        raise invalid(f"must be at most {limits.max_id_length} characters", path)
    return value


def _item_id(value: Any, path: str, limits: Limits) -> str:
    """A valid item id, trimmed as the answer-log SQL trims them (``' Q1 '`` is ``Q1``);
    student ids (:func:`_id`) are echoed as sent."""
    return _id(value, path, limits).strip()


def _timestamp(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise invalid("must be an ISO-8601 string or epoch seconds", path)
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
        if not math.isfinite(seconds):
            raise invalid("must be a finite number of seconds", path)
        return seconds
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise invalid("must be an ISO-8601 date-time or epoch seconds", path) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    raise invalid("must be an ISO-8601 string or epoch seconds", path)


_ANSWER_KEYS = frozenset({"item_id", "correct", "answered_at"})


GET_ITEM_ID = itemgetter("item_id")
GET_CORRECT = itemgetter("correct")


def valid_ids(ids: list[Any], max_len: int) -> bool:
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
        ids = list(map(GET_ITEM_ID, value))
        ys = list(map(GET_CORRECT, value))
    except KeyError:
        return None
    if not valid_ids(ids, max_len) or not set(map(type, ys)) <= {bool, int} or not (
            set(ys) <= {0, 1}) or (unique and len(set(ids)) != len(ids)):
        return None
    return ids, ys  # bools are 0/1 ints already


def _plain_batch(raw: list[Any], limits: Limits) -> list[Student] | None:
    """A whole batch of plain students validated in a few C-speed passes over all answers.

    Plain: every student an object with ``responses`` (plain answers, no item repeated) and
    optionally a valid ``student_id`` and an ``items`` array of valid ids, within the caps.
    ``None`` sends the batch through the per-student checks (which name the field).
    """
    if set(map(type, raw)) != {dict} or not set().union(*map(dict.keys, raw)) <= STUDENT_KEYS:
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
    if not valid_ids([v for v in sids if v is not None], limits.max_id_length) or not (
            valid_ids([i for v in listed for i in v], limits.max_id_length)):
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


TRUNCATE_MODES = ("none", "oldest")


def truncate_mode(value: Any, limits: Limits) -> bool:
    """The request's ``truncate``: ``"oldest"`` keeps the most recent ``max_responses``
    answers of each student (by ``answered_at``, else the later in the list; after the
    first attempt per item is picked) and reports how many it dropped in
    ``dropped_responses``; ``"none"`` refuses a longer history with a 413; ``null`` or
    absent is the server's default (``limits.truncate``)."""
    if value is None:
        return limits.truncate
    if value not in TRUNCATE_MODES or type(value) is not str:
        raise invalid("must be 'oldest' or 'none'", "truncate")
    return value == "oldest"


def _responses(value: Any, path: str, limits: Limits, truncate: bool = False
               ) -> tuple[list[str], list[int], int]:
    """``(item ids, answers, dropped)``: one answer per item, earliest first; ``dropped``
    counts the oldest answers left out by ``truncate``."""
    if value is None:
        raise invalid("is required", path)
    if not isinstance(value, list):
        raise invalid("must be an array of answers", path)
    if len(value) > limits.max_responses:
        if not truncate:
            raise too_large(f"at most {limits.max_responses} answers per student (or send "
                            f"\"truncate\": \"oldest\")", path)
        ids, correct, _ = _responses(value, path, replace(limits, max_responses=len(value)))
        dropped = max(0, len(ids) - limits.max_responses)
        return ids[dropped:], correct[dropped:], dropped
    fast = _plain_answers(value, limits.max_id_length)
    if fast is not None:
        return (*fast, 0)
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
            raise invalid("must be an object with item_id and correct", here)
        _check_keys(answer, _ANSWER_KEYS, here)
        ids.append(_item_id(answer.get("item_id"), f"{here}.item_id", limits))
        y = answer.get("correct")
        if y is None and "correct" not in answer:
            raise invalid("is required", f"{here}.correct")
        if y is True or y is False:
            correct.append(int(y))
        elif type(y) is int and y in (0, 1):
            correct.append(y)
        else:
            raise invalid("must be true, false, 0 or 1", f"{here}.correct")
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
    return ids, correct, 0


def _item_list(value: Any, path: str, limits: Limits, *, required: bool = False
               ) -> list[str] | None:
    if value is None:
        if required:
            raise invalid("is required", path)
        return None
    if not isinstance(value, list):
        raise invalid("must be an array of item ids", path)
    if len(value) > limits.max_items:
        raise too_large(f"at most {limits.max_items} items", path)
    if valid_ids(value, limits.max_id_length):
        return value
    return [_item_id(v, f"{path}[{i}]", limits) for i, v in enumerate(value)]


def _method(value: Any) -> str:
    if value is None:
        return "EAP"
    if value not in METHODS:
        raise invalid("must be 'EAP' or 'MAP'", "method")
    return value


def item_skills(value: Any, limits: Limits) -> dict[str, str] | None:
    """The optional ``item_skills`` of a predict request: ``{item_id: skill_id}``, the skill
    of items the model may have no parameters for (new items).

    Rules: ``null`` or absent is none; else a JSON object of at most ``max_items`` entries
    (413), each value a skill id - a non-blank string of at most ``max_id_length``
    characters, trimmed (400 naming ``item_skills.<item_id>``).  Keys are item ids, trimmed
    as the others; a key that can name no item (blank, too long) matches no item and is
    ignored, as an unknown id is never an error.  Two keys naming the same item after
    trimming are a 400 when they name different skills.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid("must be an object {item_id: skill_id}", "item_skills")
    if len(value) > limits.max_items:
        raise too_large(f"at most {limits.max_items} items", "item_skills")
    out: dict[str, str] = {}
    for key, skill in value.items():
        path = f"item_skills.{key}"
        try:
            skill_id = _id(skill, path, limits).strip()
        except RequestError as err:
            err.log_field = "item_skills.<item_id>"
            raise
        item = key.strip()
        if not item or len(item) > limits.max_id_length:
            continue  # names no item: ignored, as an unknown id is
        if out.setdefault(item, skill_id) != skill_id:
            err = invalid("names an item already named with another skill (ids are trimmed)",
                          path)
            err.log_field = "item_skills.<item_id>"
            raise err
    return out


SINGLE_KEYS = frozenset({"responses", "items", "method", "item_skills", "truncate"})
BATCH_KEYS = frozenset({"students", "method", "item_skills", "truncate"})
STUDENT_KEYS = frozenset({"student_id", "responses", "items"})
_NEXT_KEYS = frozenset({"responses", "k", "strategy", "target", "candidates", "method",
                        "truncate", "exclude", "randomesque", "seed", "skill_caps",
                        "skill_shares", "stop", "exposure"})


def parse_predict(payload: Any, limits: Limits) -> tuple[list[Student], bool, str]:
    """Validate a predict request.

    Returns:
        ``(students, is_batch, method)``.

    Raises:
        RequestError: naming the first offending field.
    """
    body = _object(payload, "")
    if "students" in body:
        _check_keys(body, BATCH_KEYS, "")
        method = _method(body.get("method"))
        named = item_skills(body.get("item_skills"), limits)
        truncate = truncate_mode(body.get("truncate"), limits)
        raw = body["students"]
        if not isinstance(raw, list):
            raise invalid("must be an array of students", "students")
        if not raw:
            raise invalid("must hold at least one student", "students")
        if len(raw) > limits.max_students:
            raise too_large(f"at most {limits.max_students} students per request", "students")
        fast = _plain_batch(raw, limits)
        if fast is not None:
            if named is not None:
                fast = [replace(s, item_skills=named) for s in fast]
            return fast, True, method
        students = []
        for i, entry in enumerate(raw):
            path = f"students[{i}]"
            obj = _object(entry, path)
            _check_keys(obj, STUDENT_KEYS, path)
            sid = obj.get("student_id")
            if sid is not None:
                sid = _id(sid, f"{path}.student_id", limits)
            ids, correct, dropped = _responses(obj.get("responses"), f"{path}.responses",
                                               limits, truncate)
            items = _item_list(obj.get("items"), f"{path}.items", limits)
            students.append(Student(sid, ids, correct, items, named, dropped))
        return students, True, method
    _check_keys(body, SINGLE_KEYS, "")
    method = _method(body.get("method"))
    truncate = truncate_mode(body.get("truncate"), limits)
    ids, correct, dropped = _responses(body.get("responses"), "responses", limits, truncate)
    items = _item_list(body.get("items"), "items", limits)
    named = item_skills(body.get("item_skills"), limits)
    return [Student(None, ids, correct, items, named, dropped)], False, method


@dataclass(frozen=True)
class Stop:
    """A next-items request's stopping rule: recommend stopping once the ability's SE is at
    or below ``se`` or the student has answered ``max_items`` known items (either may be
    ``None``)."""

    se: float | None = None
    max_items: int | None = None


@dataclass(frozen=True)
class NextRequest:
    """A validated next-items request.

    Attributes:
        method: ``EAP`` or ``MAP``.
        item_ids, correct: the answers (first attempt per item, earliest first).
        k: how many items.
        strategy, target: the ranking (``target`` used by ``target_probability`` only).
        candidates: item ids to choose from (``None``: every item).
        dropped: the oldest answers left out by ``truncate``.
        exclude: item ids never to recommend (``None``: none).
        randomesque: pick each item at random among this many best remaining (1: the best).
        seed: the draws' seed (``None``: not reproducible).
        skill_caps: ``{skill_id: most items of the skill in the session}`` (``None``: none).
        skill_shares: ``{skill_id: weight}``, normalised to target shares (``None``: none).
        stop: the stopping rule (``None``: no recommendation asked).
        exposure: ``exposure.method``: ``"none"``, ``"sympson-hetter"`` (the model's
            Sympson-Hetter parameters, :mod:`irt.engine.exposure`), or ``None`` when the
            request has no ``exposure`` (the same as ``"none"``, and no ``exposure`` in the
            answer).
    """

    method: str
    item_ids: list[str]
    correct: list[int]
    k: int
    strategy: str
    target: float
    candidates: list[str] | None
    dropped: int
    exclude: list[str] | None = None
    randomesque: int = 1
    seed: int | None = None
    skill_caps: dict[str, int] | None = None
    skill_shares: dict[str, float] | None = None
    stop: Stop | None = None
    exposure: str | None = None


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(
        value)


def _skill_map(value: Any, field: str, limits: Limits, rule: str,
               check: Callable[[Any], bool]) -> dict[str, Any] | None:
    """``{skill_id: value}`` with values passing ``check`` (else a 400 naming
    ``field.<skill_id>``).  Skill ids are taken as sent: one the model does not know (blank,
    too long or simply not a skill of the model) matches no item, and the answer lists it in
    ``unknown_skills``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid("must be an object {skill_id: value}", field)
    if not value:
        raise invalid("must name at least one skill", field)
    if len(value) > limits.max_items:
        raise too_large(f"at most {limits.max_items} skills", field)
    for key, v in value.items():
        if not check(v):
            err = invalid(rule, f"{field}.{key}")
            err.log_field = f"{field}.<skill_id>"
            raise err
    return dict(value)


#: The largest weight of ``skill_shares`` (weights are normalised to shares).
MAX_WEIGHT = 1000.0
#: The largest seed: a JSON integer in the unsigned 64-bit range of numpy's generators.
MAX_SEED = (1 << 64) - 1
_STOP_KEYS = frozenset({"se", "max_items"})
_EXPOSURE_KEYS = frozenset({"method"})
#: ``exposure.method`` values (randomesque stays its own field, ``randomesque``).
EXPOSURE_METHODS = ("none", "sympson-hetter")


def _exposure(value: Any) -> str | None:
    if value is None:
        return None
    body = _object(value, "exposure")
    _check_keys(body, _EXPOSURE_KEYS, "exposure")
    method = body.get("method")
    if method not in EXPOSURE_METHODS:
        raise invalid(f"must be one of {', '.join(EXPOSURE_METHODS)}", "exposure.method")
    return str(method)


def _stop(value: Any) -> Stop | None:
    if value is None:
        return None
    body = _object(value, "stop")
    _check_keys(body, _STOP_KEYS, "stop")
    if not body:
        raise invalid("must give se, max_items or both", "stop")
    se = body.get("se")
    if "se" in body and (not _is_number(se) or se <= 0):
        raise invalid("must be a number above 0", "stop.se")
    most = body.get("max_items")
    if "max_items" in body and (type(most) is not int or most < 1):
        raise invalid("must be an integer of at least 1", "stop.max_items")
    return Stop(None if se is None else float(se), most)


def parse_next(payload: Any, limits: Limits) -> NextRequest:
    """Validate a next-items request (shared by the plain and learning-aware paths).

    Adaptive controls (all optional): ``exclude`` (item ids, as ``candidates``);
    ``randomesque`` (an integer from 1 to ``max_k``, more is a 413); ``exposure``
    (``{"method": "none" | "sympson-hetter"}``, required key ``method``); ``seed`` (an integer
    from 0 to 2**64 - 1); ``skill_caps`` (``{skill_id: integer >= 0}``); ``skill_shares``
    (``{skill_id: weight in [0, MAX_WEIGHT]}``, normalised to shares over the skills the model
    knows); ``stop`` (``{"se": number > 0, "max_items": integer >= 1}``, at least one).  Any
    request the OpenAPI schema allows is answered: a skill the model does not know (every
    skill, for a model without an item -> skill map) is listed, not refused.  See
    :mod:`irt.engine.selection`.

    Raises:
        RequestError: naming the field and the rule.
    """
    body = _object(payload, "")
    _check_keys(body, _NEXT_KEYS, "")
    method = _method(body.get("method"))
    truncate = truncate_mode(body.get("truncate"), limits)
    ids, correct, dropped = _responses(body.get("responses"), "responses", limits, truncate)
    k = body.get("k", 1)
    if type(k) is not int or k < 1:
        raise invalid("must be an integer of at least 1", "k")
    if k > limits.max_k:
        raise too_large(f"must be at most {limits.max_k}", "k")
    strategy = body.get("strategy", "max_information")
    if strategy not in STRATEGIES:
        raise invalid(f"must be one of {', '.join(STRATEGIES)}", "strategy")
    target = body.get("target", 0.7)
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not (
            0.0 < target < 1.0):
        raise invalid("must be a number strictly between 0 and 1", "target")
    if "target" in body and strategy != "target_probability":
        raise invalid("applies only to strategy 'target_probability'", "target")
    candidates = _item_list(body.get("candidates"), "candidates", limits)
    exclude = _item_list(body.get("exclude"), "exclude", limits)
    top = body.get("randomesque")
    if top is None:
        top = 1
    elif type(top) is not int or top < 1:
        raise invalid("must be an integer of at least 1", "randomesque")
    elif top > limits.max_k:
        raise too_large(f"must be at most {limits.max_k}", "randomesque")
    seed = body.get("seed")
    if seed is not None and (type(seed) is not int or not 0 <= seed <= MAX_SEED):
        raise invalid("must be an integer from 0 to 2**64 - 1", "seed")
    caps = _skill_map(body.get("skill_caps"), "skill_caps", limits,
                      "must be an integer of at least 0",
                      lambda v: type(v) is int and v >= 0)
    shares = _skill_map(body.get("skill_shares"), "skill_shares", limits,
                        f"must be a number from 0 to {MAX_WEIGHT:g}",
                        lambda v: _is_number(v) and 0 <= v <= MAX_WEIGHT)
    if shares is not None:
        shares = {s: float(v) for s, v in shares.items()}
    return NextRequest(method, ids, correct, k, strategy, float(target), candidates, dropped,
                       exclude, top, seed, caps, shares, _stop(body.get("stop")),
                       _exposure(body.get("exposure")))
