"""Strict JSON for request bodies: no ``NaN``/``Infinity`` literals, no key twice in an object.

Imports orjson (``predict``'s requirements); the HTTP side (content type, size caps) stays in
``functions/predict/main.py``.
"""

from __future__ import annotations

import json
from typing import Any

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
    accepts) go through the standard library with a duplicate-key hook.

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
    return json.loads(raw, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)


def dumps(body: dict[str, Any]) -> bytes:
    """Compact JSON; orjson (10x faster), or ASCII-escaped stdlib JSON for strings orjson
    refuses (a lone surrogate the caller sent, echoed back)."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
