"""Strict JSON for request bodies: no ``NaN``/``Infinity`` literals, no key twice in an object.

Two decoders: :func:`parse_json` (any JSON, to Python objects; orjson) and
:func:`decode_single` (the common ``predict`` request - one student's plain answers - straight
to checked objects; msgspec), which answers ``None`` for anything else.  Both are in
``predict``'s requirements; the HTTP side (content type, size caps) stays in
``functions/predict/main.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key[:60]!r}")
            seen.add(key)
    return out


#: Maps every digit to ``0`` and every other byte to a space: a run of 19 zeros in the
#: translation is a run of 19 digits in the text.
_DIGITS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_LONG_NUMBER = b"0" * 19


def parse_json(raw: bytes) -> Any:
    """Strict JSON: no ``NaN``/``Infinity`` literals, no key twice in an object.

    The fast path is orjson (C) with a check that no key was dropped: orjson keeps the last
    of duplicate keys, so the text's colons are counted against the colons of the parsed
    value written back.  Outside strings a colon ends a key, one per pair; inside strings
    colons survive the round trip unchanged as long as the text has no escape (a ``\\u003a``
    is a colon too), so equal counts mean no pair was dropped.  Texts with a backslash, with
    a run of 19+ digits (an integer orjson would turn into a float), or that orjson refuses
    (it also refuses lone surrogates and non-UTF-8 encodings, which the standard library
    accepts) go through the standard library with a duplicate-key hook, on the text decoded
    as strict UTF-8 (a lone surrogate written as a ``\\ud800`` escape is valid JSON text and
    kept; one encoded as bytes is invalid UTF-8 and refused).

    Args:
        raw: the request body.

    Raises:
        ValueError: not valid JSON (``json.JSONDecodeError``, ``UnicodeDecodeError`` or a
            duplicate key).
        RecursionError: nested too deeply.
    """
    if b"\\" not in raw and _LONG_NUMBER not in raw.translate(_DIGITS):
        try:
            value = orjson.loads(raw)
            if raw.count(b":") == orjson.dumps(value).count(b":"):
                return value
        except (orjson.JSONDecodeError, orjson.JSONEncodeError):
            pass  # the standard library decides, and names the error
    # decoded here, strictly: json.loads on bytes would decode UTF-8 with "surrogatepass",
    # accepting an encoded surrogate (ED A0 80), which is not UTF-8 (a leading byte-order
    # mark is allowed, as RFC 8259 section 8.1 permits)
    return json.loads(raw.decode("utf-8-sig"), parse_constant=_reject_constant,
                      object_pairs_hook=_no_duplicates)


def dumps(body: dict[str, Any]) -> bytes:
    """Compact JSON; orjson (10x faster), or ASCII-escaped stdlib JSON for strings orjson
    refuses (a lone surrogate the caller sent, echoed back)."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()


class Answer(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One plain answer of :class:`SingleBody`: exactly ``item_id`` (a string) and ``correct``
    (a JSON boolean)."""

    item_id: str
    correct: bool


class SingleBody(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The common ``predict`` request, decoded and type-checked by :func:`decode_single`.

    Attributes:
        responses: the answers, in answer order.
        items, method, truncate: as sent (``None`` for a JSON ``null``), ``msgspec.UNSET``
            when absent; their rules (known methods, caps, id rules) are the serving path's.
    """

    responses: list[Answer]
    items: list[str] | msgspec.UnsetType | None = msgspec.UNSET
    method: str | msgspec.UnsetType | None = msgspec.UNSET
    truncate: str | msgspec.UnsetType | None = msgspec.UNSET

    def keys_sent(self) -> int:
        """How many keys the body's objects hold: one per pair of the decoded text."""
        return 1 + 2 * len(self.responses) + sum(
            value is not msgspec.UNSET for value in (self.items, self.method, self.truncate))

    def options(self) -> tuple[list[str] | None, str | None, str | None]:
        """``(items, method, truncate)``, ``None`` for each one absent or ``null`` (the
        serving path treats both alike), without msgspec's ``UNSET``."""
        unset = msgspec.UNSET
        return tuple(None if v is unset else v  # type: ignore[return-value]
                     for v in (self.items, self.method, self.truncate))


_SINGLE = msgspec.json.Decoder(SingleBody)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A request body :func:`decode_single` decoded: ``body``, and the text it came from
    (``raw``) for :func:`parse_json` when the serving path declines the request (an unknown
    method, a repeated item, a cap exceeded: the general path names the error)."""

    body: SingleBody
    raw: bytes

    def parse(self) -> Any:
        """The body as :func:`parse_json` reads it (the same values: see
        :func:`decode_single`)."""
        return parse_json(self.raw)


def decode_single(raw: bytes) -> Decoded | None:
    """The body as a :class:`SingleBody` (in a :class:`Decoded`) when it is exactly the common
    request - a JSON object with ``responses`` (a list of ``{"item_id": string, "correct":
    boolean}``) and optionally ``items`` (a list of strings or ``null``), ``method`` and
    ``truncate`` (strings or ``null``) - in strict JSON; else ``None``, and :func:`parse_json`
    decides (and names the error, if any).

    One C pass (msgspec) decodes and type-checks the body, three times faster than
    :func:`parse_json` and with no Python objects left to walk for the checks.  The
    strictness is :func:`parse_json`'s: msgspec refuses ``NaN`` literals, control characters
    in strings, invalid UTF-8 (lone surrogates included) and trailing text, but keeps the
    last of duplicate keys, so a text whose colons outnumber the decoded keys (a duplicate
    key, or a colon inside a string) is left to :func:`parse_json`; so is any text with a
    backslash (an escape), as :func:`parse_json`'s own fast path leaves those to the standard
    library.  A body :func:`decode_single` accepts, :func:`parse_json` accepts with the same
    values (tests hold this on thousands of mutated texts).
    """
    if b"\\" in raw:
        return None
    try:
        body = _SINGLE.decode(raw)
    except msgspec.MsgspecError:  # DecodeError, ValidationError
        return None
    if raw.count(b":") != body.keys_sent():
        return None
    return Decoded(body, raw)
