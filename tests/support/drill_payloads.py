"""Hostile requests for the bad-input drill (``tests/drills/test_drill_bad_input.py``), each with
the
answer the contract (``docs/predict-openapi.yaml``, README "predict") requires of it.

Every strategy here yields a :class:`Case`: the raw HTTP request (method, path, bytes, content
type) plus the statuses and error fields the server may answer with. The expectations are
written from the contract, not read from the code: one valid request is built, then exactly one
thing is broken in it, so the offending field is known in advance.

Kinds (the ``kind`` of each case):

* ``wrong_type``   a value of the wrong JSON type (or out of range) at one field -> 400 there
* ``missing``      a required field removed -> 400 naming it
* ``unknown_key``  an extra key at any object level, any unicode -> 400 naming ``path.key``
* ``huge``         arrays over the caps, ``k`` over ``MAX_K``, bodies over 1 MiB (with a
                   Content-Length or chunked), ids over 256 characters -> 413 / 400
* ``deep``         arrays and objects nested 2 .. 100,000 deep -> 400 (``body`` once too deep)
* ``unicode``      ids and student ids of any code point (lone surrogates, NUL, RTL marks,
                   emoji, combining marks) -> 200 with the id echoed (a student id exactly,
                   an item id trimmed of surrounding whitespace), or 400 if blank
* ``nonfinite``    ``NaN``/``Infinity`` literals -> 400 ``body``; ``1e999`` -> 400 at the field
* ``dup_key``      a key twice in one object, at any level -> 400 ``body``
* ``empty``        empty, blank or non-object bodies, garbage bytes, truncated JSON, invalid
                   UTF-8 -> 400 ``body`` (a surrogate encoded in UTF-8 is read leniently, as
                   Python's json reads it, as the lone surrogate: then 200 or a named 400)
* ``encoding``     the same valid body in UTF-8 with BOM -> 200; in UTF-16 or UTF-32 -> 400
                   ``body`` (RFC 8259: UTF-8 only, issue 17 item 15)
* ``content_type`` every kind of wrong media type (or none) -> 415 ``Content-Type``;
                   ``application/json`` with parameters or in capitals -> 200
* ``method_path``  wrong methods (405 with ``Allow``; HEAD has no body), unknown paths -> 404
* ``student_id``   a student id (``SID-...``) placed anywhere a caller could put it; the drill
                   then checks that it reached no log line

Paths Flask's router cannot match (``ROUTER_404``): a path with a newline (``%0A``) never
reaches ``predict()`` - functions-framework's ``<path:path>`` rule does not match a newline -
and Flask answers 404 itself; predict's 404 error handler makes that the same JSON error and
log line (it was Flask's HTML page until 2026-11-28). Out of scope, answered by the HTTP
server in front of the function (gunicorn here, Google's front end on Cloud Run) before the
function runs, with that server's own non-JSON pages: header fields over 8 KiB (431). Long
request lines are *not* out of scope: functions-framework runs gunicorn with
``limit_request_line=0`` (no limit), so a 2 MB request line reaches the app (checked
2026-12-06 against functions-framework's gunicorn; ``docs/ml-test-score.md``).
"""

from __future__ import annotations

import json
import math
import string
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

from hypothesis import strategies as st

#: The model the live server serves (``tests/support/livesrv.py``: items q0 .. q49).
N_ITEMS = 50
MODEL_ITEMS = tuple(f"q{j}" for j in range(N_ITEMS))
MAX_RESPONSES, MAX_ITEMS, MAX_STUDENTS, MAX_K, MAX_ID = 1000, 5000, 100, 100, 256
MAX_BODY = 1 << 20
#: Each path and the methods it answers, as its 405's ``Allow`` header names them.
ROUTES = {"/": "POST", "/predict": "POST", "/next-items": "POST", "/model": "GET, HEAD",
          "/healthz": "GET, HEAD"}
#: Every key the API knows, at any level: never generated as an "unknown" key.
KNOWN_KEYS = frozenset({"responses", "items", "method", "students", "student_id", "item_id",
                        "correct", "answered_at", "k", "strategy", "target", "candidates"})
STRATEGIES = ("max_information", "target_probability")
#: Prefix of every student id the drill sends; no log line may contain it.
SID_MARK = "SID-"

ANY = None  # an expected field of "any non-empty name"


@dataclass(frozen=True)
class Case:
    """One request and what the contract allows as its answer.

    Attributes:
        kind: the family of hostility (module docstring).
        method, path: the HTTP request line (``path`` already percent-encoded).
        body: the raw body (``None``: no body).
        content_type: the header's value (``None``: no header).
        chunked: send the body with ``Transfer-Encoding: chunked`` (no Content-Length).
        statuses: the statuses allowed.
        fields: the ``error.field`` values allowed on a 4xx (``None``: any non-empty string).
        echo: on a 200, strings that must come back exactly: ``("unknown", id)`` in
            ``unknown_items`` (item ids trimmed), ``("student", index, id)`` as that
            result's ``student_id``.
        student_ids: student ids the request carries anywhere (for the log scan).
    """

    kind: str
    method: str
    path: str
    body: bytes | None
    content_type: str | None = "application/json"
    chunked: bool = False
    statuses: frozenset[int] = frozenset({400})
    fields: frozenset[str] | None = None
    echo: tuple[tuple[Any, ...], ...] = ()
    student_ids: tuple[str, ...] = ()

    def describe(self) -> str:
        body = self.body if self.body is None or len(self.body) <= 300 else (
            self.body[:300] + b"...(%d bytes)" % len(self.body))
        return (f"[{self.kind}] {self.method} {self.path[:200]} content-type="
                f"{self.content_type!r} chunked={self.chunked} body={body!r} -> expected "
                f"{sorted(self.statuses)} field in {sorted(self.fields) if self.fields else 'any'}")


# --------------------------------------------------------------------------- JSON values
def dumps(value: Any) -> bytes:
    """Compact JSON, ASCII-escaped (lone surrogates travel as ``\\udXXX`` escapes)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()


JSON_LEAF = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70)
             | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                          max_leaves=10)

#: Characters a hostile id is made of: every plane, and the usual troublemakers.
TROUBLE = ["\ud800", "\udfff", "\ud83d", "\x00", "\u202e", "\u200b", "\ufeff", "\u0301",
           "\U0001f600", "\U0010ffff", "\u2028", "\\", '"', "/", "%", "'", "\n", "\t", " ",
           "\u00a0", "\u3000", "\u0130", "\u00df", "\u1e9e", "\ufffd"]
HOSTILE_CHAR = st.characters(codec=None) | st.sampled_from(TROUBLE)
HOSTILE_TEXT = st.text(HOSTILE_CHAR, min_size=0, max_size=40) | st.text(
    HOSTILE_CHAR, min_size=250, max_size=300)


def as_sent(text: str) -> str:
    """The string the server reads from ``text`` sent as JSON: a high and a low surrogate
    side by side (two code points here) are one escaped pair in JSON, one character there."""
    return json.loads(json.dumps(text))


def valid_id(value: Any) -> bool:
    """The contract's id: a string of 1..256 characters, not all whitespace."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID and not value.isspace()


def iso_ok(text: str) -> bool:
    """An ``answered_at`` string the contract accepts (ISO-8601 / RFC 3339)."""
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(t)
        moment.timestamp() if moment.tzinfo else None
    except (ValueError, OverflowError):
        return False
    return True


def is_correct(value: Any) -> bool:
    return isinstance(value, bool) or (type(value) is int and value in (0, 1))


# --------------------------------------------------------------------------- valid requests
# A request is built as a JSON-ready value plus its "slots": where one thing can be broken.
# A slot is (json path as a tuple of keys/indexes, field name as the API reports it, kind).
@dataclass
class Request:
    path: str
    body: Any
    slots: list[tuple[tuple[Any, ...], str, str]] = field(default_factory=list)
    objects: list[tuple[tuple[Any, ...], str]] = field(default_factory=list)  # (path, prefix)


item_ids = st.sampled_from(MODEL_ITEMS) | st.from_regex(r"\Au-[a-z0-9]{1,8}\Z")
timestamps = st.one_of(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)).map(
        lambda d: d.isoformat() + "Z"),
    st.integers(946684800, 1893456000),
    st.floats(946684800, 1893456000))


@st.composite
def answers(draw: st.DrawFn, prefix: str, path: tuple[Any, ...], req: Request,
            max_size: int = 6) -> list[dict[str, Any]]:
    out = []
    timed = draw(st.booleans())
    for i in range(draw(st.integers(0, max_size))):
        answer: dict[str, Any] = {"item_id": draw(item_ids),
                                  "correct": draw(st.sampled_from([True, False, 0, 1]))}
        if timed:
            answer["answered_at"] = draw(timestamps)
        here = (*path, i)
        name = f"{prefix}[{i}]"
        req.slots += [(here, name, "object"), ((*here, "item_id"), f"{name}.item_id", "id"),
                      ((*here, "correct"), f"{name}.correct", "correct")]
        if timed:
            req.slots.append(((*here, "answered_at"), f"{name}.answered_at", "answered_at"))
        req.objects.append((here, name + "."))
        out.append(answer)
    return out


def _item_list(draw: st.DrawFn, req: Request, path: tuple[Any, ...], name: str) -> list[str]:
    ids = draw(st.lists(item_ids, max_size=4))
    req.slots.append((path, name, "id_list"))
    req.slots += [((*path, i), f"{name}[{i}]", "id") for i in range(len(ids))]
    return ids


@st.composite
def single_request(draw: st.DrawFn) -> Request:
    req = Request(draw(st.sampled_from(["/", "/predict"])), {})
    body = req.body
    body["responses"] = draw(answers("responses", ("responses",), req))
    req.slots.append((("responses",), "responses", "list"))
    if draw(st.booleans()):
        body["items"] = _item_list(draw, req, ("items",), "items")
    if draw(st.booleans()):
        body["method"] = draw(st.sampled_from(["EAP", "MAP", None]))
        req.slots.append((("method",), "method", "method"))
    req.objects.append(((), ""))
    return req


@st.composite
def batch_request(draw: st.DrawFn) -> Request:
    req = Request(draw(st.sampled_from(["/", "/predict"])), {})
    students = []
    for i in range(draw(st.integers(1, 3))):
        student: dict[str, Any] = {}
        name = f"students[{i}]"
        if draw(st.booleans()):
            student["student_id"] = SID_MARK + draw(st.from_regex(r"\A[a-z0-9]{1,10}\Z"))
            req.slots.append((("students", i, "student_id"), f"{name}.student_id", "sid"))
        student["responses"] = draw(answers(f"{name}.responses", ("students", i, "responses"),
                                            req))
        req.slots.append((("students", i, "responses"), f"{name}.responses", "list"))
        if draw(st.booleans()):
            student["items"] = _item_list(draw, req, ("students", i, "items"), f"{name}.items")
        req.slots.append((("students", i), name, "object"))
        req.objects.append((("students", i), name + "."))
        students.append(student)
    req.body["students"] = students
    req.slots.append((("students",), "students", "nonempty_list"))
    if draw(st.booleans()):
        req.body["method"] = draw(st.sampled_from(["EAP", "MAP", None]))
        req.slots.append((("method",), "method", "method"))
    req.objects.append(((), ""))
    return req


@st.composite
def next_items_request(draw: st.DrawFn) -> Request:
    req = Request("/next-items", {})
    body = req.body
    body["responses"] = draw(answers("responses", ("responses",), req))
    req.slots.append((("responses",), "responses", "list"))
    if draw(st.booleans()):
        body["k"] = draw(st.integers(1, 5))
        req.slots.append((("k",), "k", "k"))
    strategy = draw(st.sampled_from([None, *STRATEGIES]))
    if strategy is not None:
        body["strategy"] = strategy
        req.slots.append((("strategy",), "strategy", "strategy"))
    if strategy == "target_probability" and draw(st.booleans()):
        body["target"] = draw(st.floats(0.05, 0.95))
        req.slots.append((("target",), "target", "target"))
    if draw(st.booleans()):
        body["candidates"] = _item_list(draw, req, ("candidates",), "candidates")
    if draw(st.booleans()):
        body["method"] = draw(st.sampled_from(["EAP", "MAP", None]))
        req.slots.append((("method",), "method", "method"))
    req.objects.append(((), ""))
    return req


valid_requests = st.one_of(single_request(), batch_request(), next_items_request())


def student_ids_in(value: Any) -> tuple[str, ...]:
    """Every string in the value (keys too) that carries the student-id mark."""
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            if SID_MARK in v:
                found.append(v)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(k)
                walk(x)

    walk(value)
    return tuple(found)


def _get(body: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        body = body[key]
    return body


def _set(body: Any, path: tuple[Any, ...], value: Any) -> None:
    _get(body, path[:-1])[path[-1]] = value


def _echoes(req: Request) -> tuple[tuple[Any, ...], ...]:
    """What a 200 must carry back: unknown ids in ``unknown_items``, student ids in order."""
    out: list[tuple[Any, ...]] = []
    body = req.body
    if "students" in body:
        for i, student in enumerate(body["students"]):
            out.append(("student", i, student.get("student_id")))
            for answer in student["responses"]:
                item = answer["item_id"].strip()  # predict trims item ids, as training does
                if item not in MODEL_ITEMS:
                    out.append(("unknown", i, item))
    else:
        for answer in body["responses"]:
            item = answer["item_id"].strip()
            if item not in MODEL_ITEMS:
                out.append(("unknown", None, item))
    return tuple(out)


def ok_case(kind: str, req: Request, raw: bytes | None = None, **kw: Any) -> Case:
    return Case(kind, "POST", req.path, dumps(req.body) if raw is None else raw,
                statuses=frozenset({200}), echo=_echoes(req),
                student_ids=student_ids_in(req.body), **kw)


def error_case(kind: str, req: Request, status: int, fields: set[str] | None,
               raw: bytes | None = None, **kw: Any) -> Case:
    body = dumps(req.body) if raw is None else raw
    return Case(kind, "POST", req.path, body, statuses=frozenset({status}),
                fields=None if fields is None else frozenset(fields),
                student_ids=student_ids_in(req.body), **kw)


# --------------------------------------------------------------------------- wrong values
def _not(pred: Any) -> Any:
    return lambda v: not pred(v)


def _int64_id(v: Any) -> bool:
    """An integer id predict accepts (issue #16: read as the SQL's CAST(id AS STRING))."""
    return type(v) is int and -(1 << 63) <= v <= (1 << 63) - 1


WRONG: dict[str, Any] = {
    "list": JSON_VALUE.filter(lambda v: not isinstance(v, list)),
    "nonempty_list": JSON_VALUE.filter(lambda v: not isinstance(v, list)) | st.just([]),
    "id_list": JSON_VALUE.filter(lambda v: v is not None and not isinstance(v, list)),
    "object": JSON_VALUE.filter(lambda v: not isinstance(v, dict)),
    "id": (JSON_VALUE.filter(lambda v: not isinstance(v, str) and not _int64_id(v))
           | st.text(" \t\n\r\u00a0\u2028\u3000", max_size=5)
           | st.text(string.ascii_letters, min_size=MAX_ID + 1, max_size=MAX_ID + 40)),
    "sid": (JSON_VALUE.filter(lambda v: v is not None and not isinstance(v, str)
                              and not _int64_id(v))
            | st.text(" \t\n", max_size=4)
            | st.text(string.ascii_letters, min_size=MAX_ID + 1, max_size=MAX_ID + 40).map(
                lambda s: SID_MARK + s)),
    "correct": JSON_VALUE.filter(_not(is_correct)),
    "answered_at": (JSON_VALUE.filter(lambda v: not (
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
        or (isinstance(v, str) and iso_ok(v))))
        | st.sampled_from(["yesterday", "2026-13-01T00:00:00Z", "2026-02-30", "", "NaN",
                           "1e9", "12:00", "2026-11-28T25:00:00Z"])),
    "method": JSON_VALUE.filter(lambda v: v is not None and v not in ("EAP", "MAP"))
    | st.sampled_from(["eap", "Map", "EAP ", "MLE"]),
    "k": JSON_VALUE.filter(lambda v: not (type(v) is int and v >= 1)),
    "strategy": JSON_VALUE.filter(lambda v: v not in STRATEGIES)
    | st.sampled_from(["MAX_INFORMATION", "random", "target probability"]),
    "target": JSON_VALUE.filter(lambda v: isinstance(v, bool) or not isinstance(
        v, (int, float)) or not 0 < v < 1) | st.sampled_from([0, 1, 0.0, 1.0, -0.5, 2]),
}


@st.composite
def wrong_type_cases(draw: st.DrawFn) -> Case:
    req = draw(valid_requests)
    slots = [s for s in req.slots if s[2] in WRONG]
    where, name, kind = draw(st.sampled_from(slots))
    value = draw(WRONG[kind])
    _set(req.body, where, value)
    return error_case("wrong_type", req, 400, {name})


@st.composite
def missing_cases(draw: st.DrawFn) -> Case:
    req = draw(valid_requests)
    required = [s for s in req.slots if s[0][-1] in ("item_id", "correct", "responses")]
    if not required:
        return ok_case("missing", req)  # nothing required to remove: the request stays valid
    where, name, _ = draw(st.sampled_from(required))
    del _get(req.body, where[:-1])[where[-1]]
    return error_case("missing", req, 400, {name})


unknown_keys = st.text(HOSTILE_CHAR, max_size=30).filter(lambda k: k not in KNOWN_KEYS)


@st.composite
def unknown_key_cases(draw: st.DrawFn) -> Case:
    req = draw(valid_requests)
    where, prefix = draw(st.sampled_from(req.objects))
    key = as_sent(draw(unknown_keys | st.just("") | st.from_regex(
        r"\A" + SID_MARK + r"[0-9]{4}\Z")))
    obj = _get(req.body, where)
    if key in obj:
        key += "_"
    obj[key] = draw(JSON_VALUE)
    return error_case("unknown_key", req, 400, {prefix + key})


# --------------------------------------------------------------------------- huge
@st.composite
def huge_cases(draw: st.DrawFn) -> Case:
    req = draw(valid_requests)
    choice = draw(st.sampled_from(["responses", "items", "students", "k", "body", "chunked",
                                   "long_id"]))
    body = req.body
    if choice == "responses":
        lists = [s for s in req.slots if s[2] == "list"]
        where, name, _ = draw(st.sampled_from(lists))
        n = draw(st.integers(MAX_RESPONSES + 1, MAX_RESPONSES + 300))
        _set(body, where, [{"item_id": f"q{i % N_ITEMS}", "correct": 1} for i in range(n)])
        return error_case("huge", req, 413, {name})
    if choice == "items":
        where, name = ("items",), "items"
        if "students" in body:
            where, name = ("students", 0, "items"), "students[0].items"
        elif req.path == "/next-items":
            where, name = ("candidates",), "candidates"
        n = draw(st.integers(MAX_ITEMS + 1, MAX_ITEMS + 500))
        _set(body, where, [f"q{i % N_ITEMS}" for i in range(n)])
        return error_case("huge", req, 413, {name})
    if choice == "students":
        n = draw(st.integers(MAX_STUDENTS + 1, MAX_STUDENTS + 100))
        req.path = draw(st.sampled_from(["/", "/predict"]))
        req.body = {"students": [{"responses": []} for _ in range(n)]}
        return error_case("huge", req, 413, {"students"})
    if choice == "k":
        req.path = "/next-items"
        req.body = {"responses": [], "k": draw(st.integers(MAX_K + 1, 2 ** 80))}
        return error_case("huge", req, 413, {"k"})
    if choice == "long_id":
        req.path = "/predict"
        size = draw(st.integers(MAX_ID + 1, 200_000))
        req.body = {"responses": [{"item_id": "x" * size, "correct": 1}]}
        return error_case("huge", req, 400, {"responses[0].item_id"})
    # Over MAX_BODY_BYTES: padding inside a string (rejected before it is parsed).
    size = draw(st.integers(MAX_BODY + 1, MAX_BODY + 300_000))
    raw = b'{"responses": [], "items": ["' + b"x" * size + b'"]}'
    return error_case("huge", req, 413, {"body"}, raw=raw, chunked=choice == "chunked")


# --------------------------------------------------------------------------- deep nesting
@st.composite
def deep_cases(draw: st.DrawFn) -> Case:
    req = draw(valid_requests)
    depth = draw(st.integers(2, 3000) | st.integers(3000, 100_000))
    nest_objects = draw(st.booleans())
    inner = (b'{"a":' * depth + b"1" + b"}" * depth) if nest_objects else (
        b"[" * depth + b"]" * depth)
    where, name, kind = draw(st.sampled_from(
        [s for s in req.slots if s[2] in ("list", "id_list", "object", "id")]))
    _set(req.body, where, "\x00DEEP\x00")
    raw = dumps(req.body).replace(b'"\\u0000DEEP\\u0000"', inner)
    # Parsed (not too deep): the slot is the wrong type; for a list slot its first element
    # is; an object slot holds the unknown key "a".
    if kind in ("list", "id_list") and not nest_objects:
        name = f"{name}[0]"
    elif kind == "object" and nest_objects:
        name = f"{name}.a"
    return error_case("deep", req, 400, {name, "body"}, raw=raw)


# --------------------------------------------------------------------------- unicode
@st.composite
def unicode_cases(draw: st.DrawFn) -> Case:
    req = draw(valid_requests)
    slots = [s for s in req.slots if s[2] in ("id", "sid")]
    if not slots:
        return ok_case("unicode", req)
    where, name, kind = draw(st.sampled_from(slots))
    text = as_sent(draw(HOSTILE_TEXT))
    if kind == "sid":
        text = SID_MARK + text
    if where[-1] == "item_id":  # the same item may not be answered twice (first one counts)
        others = [a["item_id"] for a in _get(req.body, where[:-2])]
        if text in others:
            text += "~"
    _set(req.body, where, text)
    if not valid_id(text):
        return error_case("unicode", req, 400, {name})
    return ok_case("unicode", req)


# --------------------------------------------------------------------------- literals
@st.composite
def nonfinite_cases(draw: st.DrawFn) -> Case:
    req = draw(valid_requests)
    where, name, _ = draw(st.sampled_from(req.slots))
    literal = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf",
                                    b"+Infinity", b"1e999", b"-1e999", b"1E400"]))
    _set(req.body, where, "\x00NUM\x00")
    raw = dumps(req.body).replace(b'"\\u0000NUM\\u0000"', literal)
    if literal in (b"1e999", b"-1e999", b"1E400"):  # valid JSON: an infinite float, which
        return error_case("nonfinite", req, 400, {name}, raw=raw)  # no field accepts
    return error_case("nonfinite", req, 400, {"body"}, raw=raw)


def _dumps_dup(value: Any, target: tuple[Any, ...], here: tuple[Any, ...] = ()) -> str:
    """JSON text of ``value`` with the first key of the object at ``target`` written twice."""
    if isinstance(value, dict):
        parts = [json.dumps(k) + ":" + _dumps_dup(v, target, (*here, k))
                 for k, v in value.items()]
        if here == target:
            k, v = next(iter(value.items())) if value else ("x", 1)
            parts.append(json.dumps(k) + ":" + json.dumps(v))
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dumps_dup(v, target, (*here, i))
                              for i, v in enumerate(value)) + "]"
    return json.dumps(value)


@st.composite
def dup_key_cases(draw: st.DrawFn) -> Case:
    req = draw(valid_requests)
    candidates = [w for w, _ in req.objects if _get(req.body, w)]
    where = draw(st.sampled_from(candidates))
    raw = _dumps_dup(req.body, where).encode()
    return error_case("dup_key", req, 400, {"body"}, raw=raw)


# --------------------------------------------------------------------------- bodies
@st.composite
def empty_cases(draw: st.DrawFn) -> Case:
    req = draw(valid_requests)
    text = dumps(req.body)
    choice = draw(st.sampled_from(["blank", "scalar", "garbage", "truncated", "bad_utf8",
                                   "utf8_surrogate"]))
    if choice == "blank":
        raw = draw(st.sampled_from([b"", b" ", b"\n", b"\r\n\t  ", b"\xef\xbb\xbf"]))
    elif choice == "scalar":
        raw = dumps(draw(JSON_VALUE.filter(lambda v: not isinstance(v, dict))))
    elif choice == "garbage":
        raw = draw(st.binary(min_size=1, max_size=200).filter(_not_an_object))
    elif choice == "truncated":
        raw = text[:draw(st.integers(0, len(text) - 1))]
    elif choice == "bad_utf8":
        cut = draw(st.integers(0, len(text)))
        raw = text[:cut] + draw(st.sampled_from([b"\xff", b"\xc0\x80", b"\xfe\xfe",
                                                 b"\xf8\x88\x80\x80\x80"])) + text[cut:]
    else:
        # A surrogate encoded as UTF-8 (invalid UTF-8): Python's json reads it as the lone
        # surrogate it encodes (surrogatepass), i.e. like the escape "\ud800". Lenient, and
        # then judged like any other body: a 200, or a 400 naming what is wrong.
        cut = draw(st.integers(0, len(text)))
        raw = text[:cut] + b"\xed\xa0\x80" + text[cut:]
        return Case("empty", "POST", req.path, raw, statuses=frozenset({200, 400}),
                    student_ids=student_ids_in(req.body))
    return error_case("empty", req, 400, {"body"}, raw=raw)


def _not_an_object(raw: bytes) -> bool:
    try:
        return not isinstance(json.loads(raw), dict)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return True


@st.composite
def encoding_cases(draw: st.DrawFn) -> Case:
    req = draw(valid_requests)
    text = json.dumps(req.body, ensure_ascii=False)
    encoding = draw(st.sampled_from(["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be",
                                     "utf-32", "utf-32-le", "utf-32-be"]))
    try:
        raw = text.encode(encoding)
    except UnicodeEncodeError:  # a lone surrogate: not encodable, send escaped UTF-8
        return ok_case("encoding", req, raw=dumps(req.body))
    if encoding == "utf-8-sig":
        return ok_case("encoding", req, raw=raw)
    # RFC 8259 section 8.1: JSON between systems is UTF-8 (issue 17, item 15).
    return error_case("encoding", req, 400, {"body"}, raw=raw)


MEDIA_OK = ["application/json; charset=utf-8", "APPLICATION/JSON", "Application/Json",
            "application/json;charset=UTF-8", "application/json; foo=bar"]
MEDIA_BAD = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
             "application/xml", "text/json", "application/jsonp", "application/json-patch+json",
             "application/ld+json", "application/javascript", "*/*", "json", "", "text/html",
             "application/octet-stream", "application/problem+json", "application/json5"]


def _media(ct: str | None) -> str:
    return "" if ct is None else ct.split(";", 1)[0].strip().lower()


@st.composite
def content_type_cases(draw: st.DrawFn) -> Case:
    req = draw(valid_requests)
    ct = draw(st.sampled_from([None, *MEDIA_BAD, *MEDIA_OK])
              | st.from_regex(r"\A[a-z]{1,12}/[a-z0-9.+-]{1,16}\Z"))
    if _media(ct) == "application/json":
        return ok_case("content_type", req, content_type=ct)
    return error_case("content_type", req, 415, {"Content-Type"}, content_type=ct)


path_segment = st.text(string.ascii_letters + string.digits + "-_~", min_size=1, max_size=30) | (
    st.text(HOSTILE_CHAR.filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF), min_size=1,
            max_size=20).map(lambda s: quote(s, safe="")))


@st.composite
def method_path_cases(draw: st.DrawFn) -> Case:
    if draw(st.booleans()):  # a known path, the wrong method
        path = draw(st.sampled_from(sorted(ROUTES)))
        allowed = ROUTES[path]
        method = draw(st.sampled_from([m for m in ("GET", "POST", "PUT", "PATCH", "DELETE",
                                                   "OPTIONS", "HEAD")
                                             if m not in allowed.split(", ")]))
        body = dumps({"responses": []}) if draw(st.booleans()) else None
        return Case("method_path", method, path, body, statuses=frozenset({405}),
                    fields=frozenset({"method"}))
    segments = draw(st.lists(path_segment, min_size=1, max_size=4))
    path = "/" + "/".join(segments)
    decoded = unquote(path)
    if len(path) > 3000 or (decoded.rstrip("/") or "/") in ROUTES or any(
            s in (".", "..") for s in decoded.split("/")):
        path = "/no-such-path"
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    return Case("method_path", method, path, dumps({"responses": []}),
                statuses=frozenset({404}), fields=frozenset({"path"}))


# --------------------------------------------------------------------------- student ids
@st.composite
def student_id_cases(draw: st.DrawFn) -> Case:
    """A student id put where a careless or hostile caller might put one."""
    req = draw(valid_requests)
    sid = as_sent(SID_MARK + draw(st.text(HOSTILE_CHAR, min_size=1, max_size=12)))
    where = draw(st.sampled_from(["value", "key"]))
    if where == "key":
        path, prefix = draw(st.sampled_from(req.objects))
        _get(req.body, path)[sid] = 1
        return error_case("student_id", req, 400, {prefix + sid})
    slots = [s for s in req.slots if s[2] in ("id", "answered_at", "method", "strategy",
                                              "correct", "k")]
    if not slots:
        req.body.setdefault("responses", []).append({"item_id": sid, "correct": 1})
        if "students" in req.body:
            return error_case("student_id", req, 400, {"responses"})
        return ok_case("student_id", req)
    place, name, kind = draw(st.sampled_from(slots))
    if kind == "id" and place[-1] == "item_id":
        others = [a["item_id"] for a in _get(req.body, place[:-2])]
        if sid in others:
            sid += "~"
    _set(req.body, place, sid)
    if kind == "id" and valid_id(sid):
        return ok_case("student_id", req)
    return error_case("student_id", req, 400, {name})


@st.composite
def valid_cases(draw: st.DrawFn) -> Case:
    return ok_case("valid", draw(valid_requests))


#: Requests the function never sees, so it cannot answer them with its JSON errors (module
#: docstring); ``tests/drills/test_drill_bad_input.py`` pins them with a strict xfail.
ROUTER_404 = {"newline-in-path": ("GET", "/0/%0A"), "newline-post": ("POST", "/a%0Ab")}

#: Strategy and share of the campaign for each kind (shares sum to 1).
KINDS: dict[str, tuple[Any, float]] = {
    "wrong_type": (wrong_type_cases(), 0.22),
    "missing": (missing_cases(), 0.04),
    "unknown_key": (unknown_key_cases(), 0.10),
    "huge": (huge_cases(), 0.04),
    "deep": (deep_cases(), 0.05),
    "unicode": (unicode_cases(), 0.12),
    "nonfinite": (nonfinite_cases(), 0.08),
    "dup_key": (dup_key_cases(), 0.06),
    "empty": (empty_cases(), 0.07),
    "encoding": (encoding_cases(), 0.04),
    "content_type": (content_type_cases(), 0.07),
    "method_path": (method_path_cases(), 0.05),
    "student_id": (student_id_cases(), 0.06),
}
assert math.isclose(sum(share for _, share in KINDS.values()), 1.0)
