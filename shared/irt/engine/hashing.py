"""Stable hashes of ids (standard library only).

Every deterministic sample of students - the quality gate's hold-out, the monitoring samples,
``auto``'s validation students, the learning-aware options' answer cap - orders ids by the
first 8 bytes of their MD5, big-endian: the same on every run and machine, unlike Python's
salted ``hash``.
"""

from __future__ import annotations

import hashlib


def id_hash(text: str) -> int:
    """The first 8 bytes of the MD5 of ``text`` (UTF-8), as a big-endian unsigned integer."""
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "big")


def unit_hash(text: str) -> float:
    """A stable number in [0, 1) from a string: :func:`id_hash` / 2^64."""
    return id_hash(text) / 2.0 ** 64
