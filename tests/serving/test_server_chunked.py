"""``functions/predict/server.py``'s read-ahead of chunked bodies (:func:`_chunked_end`): the
event loop hands a chunked request to a thread once its last chunk and trailer section are
in, and not before; a malformed chunk line hands it over at once (gunicorn's parser, in the
thread, refuses it). Live requests: ``test_predict_live.py``."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "functions" / "predict" / "server.py"
_SPEC = importlib.util.spec_from_file_location("predict_server_under_test", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
server = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(server)


def chunked(parts: list[bytes], last: bytes = b"0\r\n\r\n", ext: bytes = b"") -> bytes:
    return b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in parts) + last


def fed(body: bytes, steps: list[int]) -> list[bool]:
    """``done`` after each prefix ``body[:k]`` (k in ``steps``), resuming as the worker does."""
    at, out = 0, []
    for k in steps:
        done, at = server._chunked_end(body[:k], at)
        out.append(done)
    return out


@pytest.mark.parametrize("last", [b"0\r\n\r\n", b"0;a=b\r\n\r\n", b"000\r\n\r\n",
                                  b"0\r\nX-T: 1\r\n\r\n", b"0\r\nA: 1\r\nB: 2\r\n\r\n"])
def test_done_exactly_when_the_last_chunk_and_trailers_are_in(last: bytes) -> None:
    body = chunked([b'{"responses": ', b"[]", b"}"], last)
    assert fed(body, list(range(len(body) + 1))) == [False] * len(body) + [True]


def test_random_chunkings_arriving_in_random_pieces() -> None:
    rng = random.Random(7)
    for _ in range(300):
        doc = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        cuts = sorted(rng.sample(range(1, len(doc)), min(len(doc) - 1, rng.randrange(0, 6)))) \
            if len(doc) > 1 else []
        parts = [doc[i:j] for i, j in zip([0, *cuts], [*cuts, len(doc)], strict=True) if j > i]
        ext = rng.choice([b"", b";x=1", b" ; y"])
        body = chunked(parts, rng.choice([b"0\r\n\r\n", b"0;z\r\n\r\n", b"0\r\nT: v\r\n\r\n"]),
                       ext)
        steps = sorted({*rng.sample(range(len(body)), min(len(body), 8)), len(body)})
        got = fed(body, steps)
        assert got == [k == len(body) for k in steps], (parts, ext, body)
        # a request pipelined behind it does not hide the end
        assert server._chunked_end(body + b"GET / HTTP/1.1\r\n\r\n", 0)[0]


def test_resuming_skips_the_chunks_already_scanned() -> None:
    body = chunked([b"x"] * 1000)
    done, at = server._chunked_end(body[:3000], 0)
    assert not done and at > 2900  # the next chunk line, not the start
    assert server._chunked_end(body, at) == (True, at + (len(body) - at - 5))


@pytest.mark.parametrize("body", [b"zz\r\nab\r\n0\r\n\r\n", b"-5\r\nhello\r\n", b"0x5\r\nhello",
                                  b"+5\r\nhello\r\n", b"\r\n", b"5\r\nhelloXX0\r\n\r\n",
                                  b"1" * 20 + b"\r\n"])
def test_a_malformed_chunk_line_goes_to_the_parser_at_once(body: bytes) -> None:
    assert server._chunked_end(body, 0)[0]


def test_an_endless_chunk_line_goes_to_the_parser() -> None:
    assert not server._chunked_end(b"5" + b";" * 100, 0)[0]
    assert server._chunked_end(b"5" + b";" * server.MAX_CHUNK_LINE, 0)[0]


@pytest.mark.parametrize(("value", "chunked", "other"), [
    (b"chunked", True, False), (b" Chunked ", True, False), (b"gzip, chunked", True, True),
    (b"xchunked", False, True), (b"chunked, gzip", False, True), (b"identity", False, True)])
def test_transfer_codings_in_the_head(value: bytes, chunked: bool, other: bool) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + value
    _, got_chunked, _, got_other = server._head_facts(head)
    assert (got_chunked, got_other) == (chunked, other)
