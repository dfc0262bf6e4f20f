"""``predict``'s answers for a plain IRT model (numpy only).

:mod:`irt.serving.api` hands a model without learning-aware options to :func:`predict` and
:func:`recommend`; requests are validated by :mod:`irt.serving.requests`.  Ability is the
EAP (or MAP) of :mod:`irt.engine.ability` on the model's grid, probabilities the item
response function of :mod:`irt.engine.model` at that ability.

Fast path: the common request - plain answers, valid ids, within the caps - is checked and
looked up in a few C-speed passes (``_fast_predict``; :func:`fast_decoded` for a body the
server decoded with :func:`irt.serving.body.decode_single`, whose types are checked already).
Anything else (an error to name, timed or repeated answers) goes through the detailed checks
of :func:`irt.serving.requests.parse_predict`, which give the same answer or the field-named
error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, islice, repeat
from operator import add, attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from irt.engine.ability import eap, eap_batch, eap_rows, map_batch, single_grid
from irt.engine.exposure import SYMPSON_HETTER
from irt.engine.exposure import parameters as exposure_parameters
from irt.engine.model import ItemModel, irf, logistic, skill_table
from irt.engine.selection import Controls, item_skills, next_items
from irt.serving.requests import (
    BATCH_KEYS,
    GET_CORRECT,
    GET_ITEM_ID,
    METHODS,
    SINGLE_KEYS,
    STUDENT_KEYS,
    TRUNCATE_MODES,
    Limits,
    NextRequest,
    Student,
    check_probabilities,
    parse_next,
    parse_predict,
    valid_ids,
)

if TYPE_CHECKING:  # the decoded body needs msgspec, which only predict installs
    from irt.serving.body import SingleBody


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


Lookup = Callable[[str], "int | None"]


def provisional_lookup(model: ItemModel, named: Mapping[str, str] | None) -> Lookup | None:
    """``item_id -> row`` of the model's skill table (:func:`irt.engine.model.skill_table`)
    for an item the model has no parameters for but knows the skill of: from the model's
    ``skills.provisional_items`` (items seen below the minimum answers), else from the
    request's ``item_skills`` when that skill is one of the model's.  ``None`` when nothing
    can be provisional (no skills section, or neither map)."""
    table = skill_table(model)
    if table is None or not (table.provisional or named):
        return None
    own, index = table.provisional, table.index
    if not named:
        return own.get

    def lookup(item: str) -> int | None:
        row = own.get(item)
        if row is None:
            skill = named.get(item)
            row = None if skill is None else index.get(skill)
        return row

    return lookup


def own_lookup(model: ItemModel) -> Lookup | None:
    """:func:`provisional_lookup` without a request map (cached: the fast paths' case)."""
    cached = model._cache.get("own_lookup")
    if cached is None:
        cached = model._cache["own_lookup"] = (  # type: ignore[assignment]
            provisional_lookup(model, None),)
    return cached[0]  # type: ignore[index]


def _provisional_probabilities(model: ItemModel, theta: float | np.ndarray,
                               rows: Sequence[int]) -> np.ndarray:
    """P(correct) at ``theta`` of items known only through their skill: the skill's typical
    parameters (rows of the skill table)."""
    table = skill_table(model)
    assert table is not None
    q = np.asarray(rows, dtype=np.intp)
    return irf(theta, table.a[q], table.b[q], table.c[q])


def _split_unknown(ids: Sequence[str], lookup: Lookup | None
                   ) -> tuple[list[str], list[str]]:
    """``(unknown, provisional)`` among ids the model has no parameters for."""
    if lookup is None:
        return list(ids), []
    unknown, provisional = [], []
    for item in ids:
        (unknown if lookup(item) is None else provisional).append(item)
    return unknown, provisional


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
    array aligned with ``pos``): :func:`irt.engine.model.irf` in fewer numpy calls.

    ``1 / (1 + exp(a b - a theta))`` has full relative precision in both tails, as
    :func:`irt.engine.model.logistic` has, unless ``exp`` overflows; where the exponent could
    reach 700 the stable :func:`~irt.engine.model.logistic` is used instead.
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


def _single(model: ItemModel, ids: list[str], correct: list[int] | np.ndarray,
            rows: list[int | None] | np.ndarray, items: list[str] | None,
            item_pos: list[int | None] | None, method: str,
            lookup: Lookup | None = None) -> dict[str, Any]:
    """One student's answer from looked-up ids.

    ``rows``: ``2 * position`` of each answered item (``None``: an id the model lacks; no
    item twice), or an integer array of them when the model knows every id (``correct`` then
    an array too); ``item_pos``: positions of ``items`` (``None`` likewise), or both ``None``
    for every item; ``lookup``: :func:`provisional_lookup` (``None``: no item is
    provisional).  Answers to items without parameters do not count; requested items known
    only through their skill get their skill's typical probability.
    """
    unknown: list[str] = []
    provisional: list[str] = []
    if isinstance(rows, np.ndarray):
        n = rows.shape[0]
        if method == "EAP" and n:
            theta, se = eap_rows(model, rows + correct)
        else:
            theta, se = _estimate(model, rows >> 1, np.asarray(correct, dtype=np.int8), method)
        return _single_answer(model, theta, se, n, unknown, provisional, items, item_pos,
                              method, lookup)
    if None in rows:
        unknown, provisional = _split_unknown(
            [item for item, r in zip(ids, rows, strict=True) if r is None], lookup)
        correct = [c for c, r in zip(correct, rows, strict=True) if r is not None]
        rows = [r for r in rows if r is not None]
    n = len(rows)
    if method == "EAP" and n:
        theta, se = eap_rows(model, np.fromiter(map(add, rows, correct), dtype=np.intp,
                                                count=n))  # type: ignore[arg-type]
    else:
        theta, se = _estimate(model, np.array(rows, dtype=np.int64) >> 1,
                              np.array(correct, dtype=np.int8), method)
    return _single_answer(model, theta, se, n, unknown, provisional, items, item_pos, method,
                          lookup)


def _single_answer(model: ItemModel, theta: float, se: float, n: int, unknown: list[str],
                   provisional: list[str], items: list[str] | None,
                   item_pos: list[int | None] | None, method: str, lookup: Lookup | None
                   ) -> dict[str, Any]:
    """:func:`_single`'s answer at the student's ability (``n`` known answers; ``unknown``
    and ``provisional`` the answered ids the model lacks, extended by the requested ones)."""
    if items is None:
        names: list[str] | tuple[str, ...] = model.item_ids
        probs = model.probability_by_position(theta)
    else:
        assert item_pos is not None
        if None in item_pos:
            names, sel, skill_rows, own = [], [], [], []
            for item, j in zip(items, item_pos, strict=True):
                if j is not None:
                    names.append(item)
                    sel.append(j)
                    own.append(True)
                    continue
                q = None if lookup is None else lookup(item)
                if q is None:
                    unknown.append(item)
                    continue
                names.append(item)
                skill_rows.append(q)
                own.append(False)
                provisional.append(item)
            # each id once, in first-seen order (a list scanned per id was quadratic: 5,000
            # unknown ids per student cost seconds)
            unknown[:] = dict.fromkeys(unknown)
            provisional[:] = dict.fromkeys(provisional)
            if skill_rows:
                mask = np.array(own)
                probs = np.empty(len(names))
                if sel:
                    probs[mask] = _probabilities(model, theta, sel)
                probs[~mask] = _provisional_probabilities(model, theta, skill_rows)
            else:
                probs = _probabilities(model, theta, sel) if sel else np.zeros(0)
        else:
            names, sel = items, item_pos
            # A repeated id gets the same value twice; the dict keeps its first place.
            probs = _probabilities(model, theta, sel) if sel else np.zeros(0)
    out = {
        "ability": _ability_json(theta, se, method, n),
        "probabilities": dict(zip(names, np.round(probs, 6).tolist(), strict=True)),
        "unknown_items": unknown,
    }
    if provisional:
        out["provisional_items"] = provisional
    return out


def predict_student(model: ItemModel, student: Student, method: str = "EAP") -> dict[str, Any]:
    """Ability and P(correct) for one validated student (``items=None``: every calibrated
    item); ``provisional_items`` when some items are known only through their skill."""
    items = student.items
    return _single(model, student.item_ids, student.correct,
                   list(map(_rows_index(model).get, student.item_ids)), items,
                   None if items is None else list(map(model.index.get, items)), method,
                   provisional_lookup(model, student.item_skills))


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
#: A single request's ``correct`` values: by exact type (all booleans: done), then, with
#: integers among them, by value (a float 1.0 or a bool subclass is neither type).
_BOOL_TYPE = {bool}
_BOOL_OR_INT = frozenset({bool, int})
_ZERO_ONE = frozenset({0, 1})


def warm(model: ItemModel, limits: Limits) -> None:
    """Compute, before a model serves, everything the first request would otherwise build:
    the EAP grid table, the per-model lookups of the fast paths and the skill table of the
    provisional items (all cached on it)."""
    single_grid(model, 61, 6.0)
    own_lookup(model)  # and the skill table it reads
    _rows_index(model)
    _item_params(model)
    _ids_are_valid(model, limits.max_id_length)


def _ids_are_valid(model: ItemModel, max_len: int) -> bool:
    """Whether every item id of the model passes the request's id rules (cached), so that a
    requested id the model knows needs no further check."""
    key = ("ids_valid", max_len)
    ok = model._cache.get(key)
    if ok is None:
        ok = model._cache[key] = valid_ids(list(model.item_ids), max_len)  # type: ignore
    return bool(ok)


def _fast_answers(value: list[Any], table: dict[str, int], max_len: int,
                  n_rows: int) -> tuple[list[str], list[int] | np.ndarray,
                                        list[int | None] | np.ndarray] | None:
    """Plain answers (exactly ``item_id`` and ``correct``, no item repeated), looked up:
    ``(ids, correct, [table.get(id) ...])`` (``None`` for an id the model lacks);
    when the model knows every id, ``correct`` (0/1, ``int8``) and the looked-up values
    (``intp``, each below ``n_rows``) come as arrays.  ``None`` if the answers are not all
    plain and valid."""
    if not value:
        return [], [], []
    try:  # len() of a non-container, or a getter on a non-object, is a TypeError
        if set(map(len, value)) != _PAIR:
            return None
        ids = list(map(GET_ITEM_ID, value))
        ys = list(map(GET_CORRECT, value))
        pos = _look_up(table, ids)  # an unhashable id is a TypeError
    except (TypeError, KeyError):
        return None
    kinds = set(map(type, ys))  # JSON booleans (the common case), or also 0/1 integers
    if kinds != _BOOL_TYPE and not (kinds <= _BOOL_OR_INT and set(ys) <= _ZERO_ONE):
        return None
    return _looked_up(ids, ys, pos, max_len, n_rows)


def _looked_up(ids: list[str], ys: list[int], pos: Sequence[int | None], max_len: int,
               n_rows: int) -> tuple[list[str], list[int] | np.ndarray,
                                     list[int | None] | np.ndarray] | None:
    """:func:`_fast_answers`' result from checked answers (``ys``: booleans or 0/1 integers)
    and their looked-up values ``pos``; ``None`` for a repeated item or an invalid unknown
    id."""
    n = len(pos)
    try:
        rows = np.fromiter(pos, dtype=np.intp, count=n)
    except TypeError:  # a None: unknown ids, which must be valid and not repeated
        if len(set(ids)) != len(ids) or not _unknown_valid(ids, pos, max_len):
            return None
        return ids, ys, list(pos)  # bools are 0/1 ints already
    seen = np.zeros(n_rows, dtype=np.bool_)
    seen[rows] = True
    if np.count_nonzero(seen) != n:  # a known item repeated
        return None
    # 0/1 as bytes (bools and ints alike, checked above): one C pass, read-only array
    return ids, np.frombuffer(bytes(ys), dtype=np.int8), rows


def _look_up(table: dict[str, int], ids: list[Any]) -> Sequence[int | None]:
    """``[table.get(i) for i in ids]``: with two ids or more, first as one
    :func:`operator.itemgetter` call (a fifth faster than ``map(table.get, ids)``), which
    stops at the first id the table lacks; then id by id.

    Raises:
        TypeError: for an unhashable id.
    """
    if len(ids) > 1:
        try:
            return itemgetter(*ids)(table)  # type: ignore[no-any-return]
        except KeyError:
            pass
    return list(map(table.get, ids))


def _fast_items(items: list[Any], get: Callable[[Any], int | None], max_len: int
                ) -> list[int | None] | None:
    try:
        pos = list(map(get, items))
    except TypeError:
        return None
    return pos if _unknown_valid(items, pos, max_len) else None


def _unknown_valid(ids: list[Any], pos: list[int | None], max_len: int) -> bool:
    """Whether the ids the model lacks (``None`` positions) pass :func:`valid_ids`."""
    return None not in pos or valid_ids(
        [i for i, j in zip(ids, pos, strict=True) if j is None], max_len)


def _fast_method(model: ItemModel, payload: Any, limits: Limits) -> str | None:
    """The method of a predict request the fast paths may answer, else ``None``: an object
    without ``item_skills``, with a valid ``method`` and ``truncate``, for a model whose ids
    all pass the request's id rules."""
    if type(payload) is not dict or "item_skills" in payload:  # (validated by the detailed path)
        return None
    return _method_of(model, payload.get("method"), payload.get("truncate"), limits)


def _method_of(model: ItemModel, method: Any, truncate: Any, limits: Limits) -> str | None:
    """:func:`_fast_method`'s checks of ``method`` and ``truncate`` as sent (``None``:
    absent), for a model whose ids must all pass the request's id rules."""
    if method is None:
        method = "EAP"
    elif method not in METHODS:
        return None
    # within the caps nothing is dropped either way
    if truncate is not None and truncate not in TRUNCATE_MODES:
        return None
    return method if _ids_are_valid(model, limits.max_id_length) else None


@dataclass(frozen=True)
class FastSingle:
    """A plain one-student predict request, checked and looked up by :func:`fast_single`.

    Attributes:
        method: ``EAP`` or ``MAP``.
        ids, correct: the answers, as sent (no item twice); ``correct`` an ``int8`` array
            when the model knows every id.
        rows: ``2 * position`` of each answered item (``None``: an id the model lacks), an
            ``intp`` array when the model knows every id.
        items: the requested ids (``None``: every item).
        item_pos: their positions (``None`` likewise), ``None`` with ``items``.
    """

    method: str
    ids: list[str]
    correct: list[int] | np.ndarray
    rows: list[int | None] | np.ndarray
    items: list[str] | None
    item_pos: list[int | None] | None


def fast_single(model: ItemModel, payload: Any, limits: Limits) -> FastSingle | None:
    """A one-student predict request checked and looked up in a few C-speed passes (one dict
    lookup per answer), or ``None`` for the detailed checks of
    :func:`irt.serving.requests.parse_predict` (a batch, an error to name, timed or repeated
    answers, ``item_skills``).  Shared by the plain and the learning-aware paths.

    Raises:
        RequestError: 413 when the response would hold too many probabilities.
    """
    method = _fast_method(model, payload, limits)
    if method is None or "students" in payload or not payload.keys() <= SINGLE_KEYS:
        return None
    answers = payload.get("responses")
    items = payload.get("items")
    if type(answers) is not list or len(answers) > limits.max_responses or (
            items is not None and (type(items) is not list or len(items) > limits.max_items)):
        return None
    looked = _fast_answers(answers, _rows_index(model), limits.max_id_length,
                           2 * model.n_items)
    return None if looked is None else _with_items(model, method, looked, items, limits)


def _with_items(model: ItemModel, method: str, looked: tuple[Any, ...], items: list[Any] | None,
                limits: Limits) -> FastSingle | None:
    """:func:`fast_single`'s (and :func:`fast_decoded`'s) request from its looked-up answers
    and the requested ids, looked up too (``None`` for an invalid unknown one).

    Raises:
        RequestError: 413 when the response would hold too many probabilities.
    """
    item_pos = None
    if items is not None:
        item_pos = _fast_items(items, model.index.get, limits.max_id_length)
        if item_pos is None:
            return None
    check_probabilities([items], model.n_items, limits, False)
    return FastSingle(method, *looked, items, item_pos)


_ITEM_ID = attrgetter("item_id")
_CORRECT = attrgetter("correct")


def fast_decoded(model: ItemModel, body: SingleBody, limits: Limits) -> FastSingle | None:
    """:func:`fast_single` for a body :func:`irt.serving.body.decode_single` decoded (its
    types checked already): the same request checked and looked up, or ``None`` for the
    general path (the same cases as :func:`fast_single`'s)."""
    items, method, truncate = body.options()
    method = _method_of(model, method, truncate, limits)
    answers = body.responses
    if method is None or len(answers) > limits.max_responses or (
            items is not None and len(items) > limits.max_items):
        return None
    looked: tuple[Any, ...] | None = ([], [], [])
    if answers:
        ids = list(map(_ITEM_ID, answers))
        looked = _looked_up(ids, list(map(_CORRECT, answers)), _look_up(_rows_index(model), ids),
                            limits.max_id_length, 2 * model.n_items)
        if looked is None:
            return None
    return _with_items(model, method, looked, items, limits)


def answer_fast(model: ItemModel, req: FastSingle) -> dict[str, Any]:
    """The answer to a request :func:`fast_single` or :func:`fast_decoded` checked."""
    return _single(model, req.ids, req.correct, req.rows, req.items, req.item_pos, req.method,
                   own_lookup(model))


def _fast_predict(model: ItemModel, payload: Any, limits: Limits) -> dict[str, Any] | None:
    """The answer to a plain predict request, or ``None`` for the detailed path."""
    method = _fast_method(model, payload, limits)
    if method is None:
        return None
    if "students" in payload:
        raw = payload["students"]
        if not payload.keys() <= BATCH_KEYS or type(raw) is not list or not raw or (
                len(raw) > limits.max_students):
            return None
        results = _fast_batch(model, raw, method, limits)
        return None if results is None else {"results": results}
    req = fast_single(model, payload, limits)
    return None if req is None else answer_fast(model, req)


def _fast_batch(model: ItemModel, raw: list[Any], method: str, limits: Limits
                ) -> list[dict[str, Any]] | None:
    """A batch of plain students checked and looked up in C-speed passes over all answers."""
    if set(map(type, raw)) != _DICT_TYPE or not set(chain.from_iterable(raw)) <= STUDENT_KEYS:
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
            listed and max(map(len, listed)) > limits.max_items) or not valid_ids(
            [v for v in sids if v is not None], max_len):
        return None
    flat = list(chain.from_iterable(answers))
    n = len(flat)
    get = model.index.get
    try:
        if n and set(map(len, flat)) != _PAIR:
            return None
        pos = np.fromiter(map(get, map(GET_ITEM_ID, flat), repeat(-1, n)), dtype=np.int64,
                          count=n)
        ys = list(map(GET_CORRECT, flat))
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
        if not valid_ids(unknown_ids, max_len) or len(pairs) != len(miss):
            return None
        key = owner[known] * model.n_items + pos[known]
    else:
        key = owner * model.n_items + pos
    key.sort()
    if (key[1:] == key[:-1]).any():
        return None
    req_miss = np.flatnonzero(req_pos < 0).tolist()
    if req_miss and not valid_ids([req_ids[k] for k in req_miss], max_len):
        return None
    check_probabilities(items, model.n_items, limits, True)
    return _score_batch(model, method, sids, counts, ids, pos, np.array(ys, dtype=np.int8),
                        owner, items, req_ids, req_pos, own_lookup(model))


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
                        model.positions(req_ids),
                        provisional_lookup(model, students[0].item_skills))


def _score_batch(model: ItemModel, method: str, sids: list[str | None], counts: list[int],
                 flat_ids: list[str] | dict[int, str], flat_pos: np.ndarray, flat_y: np.ndarray,
                 owner: np.ndarray, wanted: list[list[str] | None], req_ids: list[str],
                 req_pos: np.ndarray, lookup: Lookup | None = None) -> list[dict[str, Any]]:
    """Many students at once: one vectorised ability pass and one probability pass.

    Takes every student's answers as flat arrays (``owner``: the student of each answer,
    ``flat_pos`` ``-1`` for unknown items, whose ids ``flat_ids[k]`` gives; no item twice
    per student) and the requested items likewise (``wanted[i]`` ``None``: every item);
    ``lookup`` as :func:`_single`'s.  Gives the same answers as :func:`predict_student` per
    student (to rounding).
    """
    n = len(counts)
    known = flat_pos >= 0
    unknown: list[list[str]] = [[] for _ in range(n)]
    provisional: list[list[str]] = [[] for _ in range(n)]
    for k in np.flatnonzero(~known).tolist():
        item = flat_ids[k]
        kind = unknown if lookup is None or lookup(item) is None else provisional
        kind[owner[k]].append(item)
    args = (model, owner[known], flat_pos[known], flat_y[known], n)
    theta, se = eap_batch(*args) if method == "EAP" else map_batch(*args)
    used = np.bincount(owner[known], minlength=n).tolist()
    # Requested items (a repeated id just maps to the same value twice).
    req_owner = np.repeat(np.arange(n), [0 if w is None else len(w) for w in wanted])
    ok = req_pos >= 0
    shown = ok
    skill_row = None
    if not ok.all():
        skill_row = np.full(req_pos.shape[0], -1, dtype=np.intp)
        for k in np.flatnonzero(~ok).tolist():
            item = req_ids[k]
            q = None if lookup is None else lookup(item)
            miss = unknown[req_owner[k]] if q is None else provisional[req_owner[k]]
            if q is not None:
                skill_row[k] = q
            miss.append(item)
        for miss in (*unknown, *provisional):  # each id once, in first-seen order
            miss[:] = dict.fromkeys(miss)
        shown = ok | (skill_row >= 0)
    po = req_owner[shown]
    if skill_row is not None and (skill_row >= 0).any():
        values = np.empty(req_pos.shape[0])
        values[ok] = _probabilities(model, theta[req_owner[ok]], req_pos[ok])
        by_skill = skill_row >= 0
        values[by_skill] = _provisional_probabilities(model, theta[req_owner[by_skill]],
                                                      skill_row[by_skill])
        probs = np.round(values[shown], 6).tolist()
    else:
        probs = np.round(_probabilities(model, theta[po], req_pos[shown]), 6).tolist()
    names = [req_ids[k] for k in np.flatnonzero(shown).tolist()] if not shown.all() \
        else req_ids
    sizes = np.bincount(po, minlength=n).tolist()
    pairs = zip(names, probs, strict=True)  # consumed student by student, in order
    theta_r = np.round(theta, 6).tolist()
    se_r = np.round(se, 6).tolist()
    if None in wanted:  # every item for some students
        every = [None if w is not None else dict(zip(model.item_ids, np.round(
            model.probability_by_position(theta[i]), 6).tolist(), strict=True))
            for i, w in enumerate(wanted)]
        probabilities = [dict(islice(pairs, k)) if e is None else e
                         for e, k in zip(every, sizes, strict=True)]
    else:
        probabilities = [dict(islice(pairs, k)) for k in sizes]
    results = [{"student_id": sid, "ability": {"theta": t, "se": s, "method": method,
                                               "n_answers": u},
                "probabilities": p, "unknown_items": unk}
               for sid, t, s, u, p, unk in zip(sids, theta_r, se_r, used, probabilities,
                                               unknown, strict=True)]
    for result, prov in zip(results, provisional, strict=True):
        if prov:
            result["provisional_items"] = prov
    return results


def predict(model: ItemModel, payload: Any, limits: Limits) -> dict[str, Any]:
    """The answer to a predict request (single or batch) for a plain model, without
    ``model_version``.

    Raises:
        RequestError: for invalid input.
    """
    answer = _fast_predict(model, payload, limits)
    if answer is None:
        students, is_batch, method = parse_predict(payload, limits)
        check_probabilities([s.items for s in students], model.n_items, limits, is_batch)
        answer = ({"results": _predict_batch(model, students, method)} if is_batch
                  else predict_student(model, students[0], method))
        report_dropped(answer, students, is_batch)
    return answer


def report_dropped(answer: dict[str, Any], students: list[Student], is_batch: bool) -> None:
    """Add ``dropped_responses`` to the result of each student whose oldest answers
    ``truncate`` left out (only then: an untruncated answer keeps its shape)."""
    results = answer["results"] if is_batch else [answer]
    for result, student in zip(results, students, strict=True):
        if student.dropped:
            result["dropped_responses"] = student.dropped

def controls(model: ItemModel, request: NextRequest, answered: np.ndarray
             ) -> tuple[Controls, list[str]]:
    """The request's exposure-control (randomesque, Sympson-Hetter with the model's
    parameters when it has them) and content-balancing settings over the model's item ->
    skill map (:func:`irt.engine.selection.item_skills`), and the skills of ``skill_caps`` and
    ``skill_shares`` the model does not know (every one, for a model without a map; the
    answer lists them in ``unknown_skills``).  ``answered``: the positions of the student's
    known answers, counted against the caps and shares.  Caps on unknown skills do nothing;
    shares are normalised over the known skills, and ignored when none is known.
    """
    k = exposure_parameters(model) if request.exposure == SYMPSON_HETTER else None
    base = Controls(top=request.randomesque, seed=request.seed, exposure_k=k)
    named = {**(request.skill_caps or {}), **(request.skill_shares or {})}
    if not named:
        return base, []
    mapping = item_skills(model)
    skill_ids, skill_of = mapping if mapping is not None else ((), np.zeros(0, np.int64))
    known = set(skill_ids)
    unknown = [s for s in named if s not in known]
    caps = shares = None
    if request.skill_caps is not None:
        caps = np.array([min(request.skill_caps.get(s, np.inf), 1e18) for s in skill_ids],
                        dtype=float)
    if request.skill_shares is not None and any(s in request.skill_shares for s in skill_ids):
        weight = np.array([request.skill_shares.get(s, 0.0) for s in skill_ids], dtype=float)
        total = weight.sum()
        shares = weight / total if total > 0 else weight
    if mapping is None or (caps is None and shares is None):
        return base, unknown
    rows = skill_of[answered]
    seen = np.bincount(rows[rows >= 0], minlength=len(skill_ids)).astype(float)
    return Controls(top=request.randomesque, seed=request.seed, skill_of=skill_of, caps=caps,
                    shares=shares, seen=seen, exposure_k=k), unknown


def exposure_advice(model: ItemModel, request: NextRequest) -> dict[str, Any] | None:
    """The response's ``exposure`` (only when the request has ``exposure``):
    ``{"method": ..., "applied": bool}`` - ``applied`` is false when ``sympson-hetter`` was
    asked of a model without Sympson-Hetter parameters (no ``exposure`` section in its
    ``model.json``): the items are then picked without that filter, as the request is valid."""
    if request.exposure is None:
        return None
    if request.exposure == SYMPSON_HETTER:
        return {"method": SYMPSON_HETTER, "applied": exposure_parameters(model) is not None}
    return {"method": request.exposure, "applied": True}


def stop_advice(request: NextRequest, se: float, n_answers: int, n_items: int
                ) -> dict[str, Any] | None:
    """The response's ``stop`` (only when the request has a ``stop`` rule):
    ``{"recommended": bool, "reasons": [...]}``, the reasons among ``se`` (the ability's SE at
    or below ``stop.se``), ``max_items`` (``n_answers`` known answers at or above
    ``stop.max_items``) and ``no_items`` (nothing left to recommend)."""
    rule = request.stop
    if rule is None:
        return None
    reasons = []
    if rule.se is not None and se <= rule.se:
        reasons.append("se")
    if rule.max_items is not None and n_answers >= rule.max_items:
        reasons.append("max_items")
    if n_items == 0:
        reasons.append("no_items")
    return {"recommended": bool(reasons), "reasons": reasons}


def finish_next_items(answer: dict[str, Any], model: ItemModel, request: NextRequest, *,
                      se: float, n_answers: int, n_items: int,
                      unknown_skills: list[str]) -> dict[str, Any]:
    """Add the optional fields every next-items answer shares (plain and learning-aware):
    ``unknown_skills``, ``stop`` (:func:`stop_advice`), ``exposure``
    (:func:`exposure_advice`) and ``dropped_responses``, each only when it applies."""
    if unknown_skills:
        answer["unknown_skills"] = unknown_skills
    stop = stop_advice(request, se, n_answers, n_items)
    if stop is not None:
        answer["stop"] = stop
    exposure = exposure_advice(model, request)
    if exposure is not None:
        answer["exposure"] = exposure
    if request.dropped:
        answer["dropped_responses"] = request.dropped
    return answer


def recommend(model: ItemModel, payload: Any, limits: Limits) -> dict[str, Any]:
    """The answer to a next-items request for a plain model, without ``model_version``.

    Raises:
        RequestError: for invalid input.
    """
    req = parse_next(payload, limits)
    student = Student(None, req.item_ids, req.correct, req.candidates)
    theta, se, pos, unknown = _ability(model, student, req.method)
    cand_pos = None
    if req.candidates is not None:
        looked, missing = model.lookup(list(dict.fromkeys(req.candidates)))
        cand_pos = looked[looked >= 0]
        unknown = list(dict.fromkeys([*unknown, *missing]))
    never = pos
    if req.exclude is not None:
        looked, missing = model.lookup(list(dict.fromkeys(req.exclude)))
        never = np.concatenate([pos, looked[looked >= 0]])
        unknown = list(dict.fromkeys([*unknown, *missing]))
    settings, unknown_skills = controls(model, req, pos)
    chosen = next_items(model, theta, req.k, strategy=req.strategy, target=req.target,
                        exclude=never, candidates=cand_pos, controls=settings)
    probs = model.probability_by_position(theta, chosen)
    info = model.information_by_position(theta, chosen)
    answer: dict[str, Any] = {
        "ability": _ability_json(theta, se, req.method, int(pos.shape[0])),
        "strategy": req.strategy,
        "items": [{"item_id": model.item_ids[j], "probability": round(float(p), 6),
                   "information": round(float(i), 6)}
                  for j, p, i in zip(chosen.tolist(), probs, info, strict=True)],
        "unknown_items": unknown,
    }
    return finish_next_items(answer, model, req, se=se, n_answers=int(pos.shape[0]),
                             n_items=int(chosen.shape[0]), unknown_skills=unknown_skills)
