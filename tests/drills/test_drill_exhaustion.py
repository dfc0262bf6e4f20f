"""Drills: resource exhaustion of the live ``predict`` (issue 17, items 1-4), loopback only.

* **Bodies over the cap** (item 1): a body declared over ``MAX_BODY_BYTES`` is refused from its
  ``Content-Length`` before anything is read, the 413 arrives at once (not after the body), and
  the body is never buffered: the worker's RSS stays flat under a 64 MiB body, declared or
  chunked, and a ``Content-Length: 10^12`` sending 2 bytes gets its 413 at once and its
  connection closed within gunicorn's bounded drain (5 s, 64 KiB).
* **Response amplification** (item 3): a batch of students without ``items`` on a large bank is
  a 413 naming ``students`` (``MAX_PROBABILITIES``), not a response of every item for every
  student.

Each drill is bounded in time; a raw socket is used where a client library would hide what the
server does (when the answer arrives, whether the connection closes).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import requests
from livesrv import LiveServer, group_rss_kib, live_server

from irt.engine.model import ItemModel

pytestmark = pytest.mark.drills

MIB = 1 << 20


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    # One worker, so that "the worker's RSS" is one process.
    with live_server(env={"WORKERS": "1", "THREADS": "4"}) as server:
        yield server


def _connect(server: LiveServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _head(length: int | None) -> bytes:
    size = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"{size}\r\n\r\n").encode()


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, dict, bytes]:
    """Status, headers (lower-case names) and body of one response (``Content-Length``
    framed) read within ``timeout`` seconds."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {buf[:200]!r}")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, v in
                   (line.split(":", 1) for line in lines[1:]))
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body[:length]


def _worker_rss_kib(server: LiveServer) -> int:
    rss = group_rss_kib(server.process.pid)
    rss.pop(server.process.pid, None)  # the gunicorn master
    assert len(rss) == 1, rss
    return next(iter(rss.values()))


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection (EOF or reset) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except OSError:
            return True
    return False


def test_huge_declared_length_is_answered_at_once_and_closed(live: LiveServer) -> None:
    """``Content-Length: 10^12`` with 2 bytes sent: the 413 comes back before any more of the
    body (it used to wait for the whole body: no answer for 70 s), and the server closes the
    connection within its bounded drain instead of holding a thread."""
    with contextlib.closing(_connect(live)) as sock:
        start = time.monotonic()
        sock.sendall(_head(10**12) + b"{}")
        status, _, body = _read_response(sock, timeout=5)
        elapsed = time.monotonic() - start
        assert status == 413, body[:300]
        error = json.loads(body)["error"]
        assert (error["code"], error["field"]) == ("too_large", "body")
        assert str(1 << 20) in error["message"]  # names the limit
        assert elapsed < 1.0, f"413 after {elapsed:.2f} s"
        assert _closed_within(sock, 10.0), "connection still open 10 s after the 413"


def _send_body(sock: socket.socket, size: int, chunked: bool, stop: threading.Event) -> int:
    """Send ``size`` bytes of body (as fast as the server takes them) until done, the server
    closes, or ``stop``; the number of bytes sent."""
    piece = b" " * 65536
    sent = 0
    with contextlib.suppress(OSError):
        while sent < size and not stop.is_set():
            data = piece if not chunked else b"%x\r\n%s\r\n" % (len(piece), piece)
            sock.sendall(data)
            sent += len(piece)
        if chunked and not stop.is_set():
            sock.sendall(b"0\r\n\r\n")
    return sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_big_body_is_never_buffered(live: LiveServer, chunked: bool) -> None:
    """A 64 MiB body (declared, or chunked): a 413 naming the limit, and the worker's RSS
    grows by less than 8 MiB (the body used to be read whole after the 413: +300 MiB for a
    300 MiB body)."""
    size = 64 * MIB
    before = _worker_rss_kib(live)
    with contextlib.closing(_connect(live)) as sock:
        sock.settimeout(20)
        start = b'{"responses": [], "pad": "'
        sock.sendall(_head(None if chunked else size)
                     + (b"%x\r\n%s\r\n" % (len(start), start) if chunked else start))
        stop = threading.Event()
        sender = threading.Thread(target=_send_body, args=(sock, size, chunked, stop),
                                  daemon=True)
        sender.start()
        try:
            status, _, body = _read_response(sock, timeout=20)
        finally:
            stop.set()
        sender.join(timeout=20)
        growth_mib = (_worker_rss_kib(live) - before) / 1024
        assert status == 413, body[:300]
        assert json.loads(body)["error"]["field"] == "body"
        assert growth_mib < 8, f"worker RSS grew by {growth_mib:.1f} MiB"
        assert _closed_within(sock, 10.0), "connection still open 10 s after the 413"


def test_normal_requests_still_served(live: LiveServer) -> None:
    """After the drills above, the same worker answers a normal request."""
    with contextlib.closing(_connect(live)) as sock:
        body = json.dumps({"responses": [{"item_id": "q1", "correct": 1}],
                           "items": ["q2"]}).encode()
        sock.sendall(_head(len(body)) + body)
        status, _, out = _read_response(sock, timeout=5)
        assert status == 200, out[:300]
        assert json.loads(out)["model_version"] == live.model_version


# --------------------------------------------------------------------------- amplification
BIG_BANK = 20_000


def big_model_json(n_items: int) -> str:
    """A valid 2PL bank of ``n_items`` items ``i0`` ... (random parameters, no fit)."""
    rng = np.random.default_rng(17)
    nan = np.full(n_items, np.nan)
    return ItemModel(model_type="2pl", item_ids=tuple(f"i{j}" for j in range(n_items)),
                     a=rng.uniform(0.5, 2.0, n_items), b=rng.normal(0.0, 1.0, n_items),
                     c=np.zeros(n_items), se_a=nan, se_b=nan, se_c=nan,
                     quadrature={"n_points": 41, "bound": 6.0, "distribution": "normal"},
                     fit={"method": "MML-EM", "converged": True},
                     created_at="2026-01-01T00:00:00+00:00").to_json()


@pytest.fixture(scope="module")
def big_bank() -> Iterator[LiveServer]:
    with live_server(env={"WORKERS": "1", "THREADS": "4"}, model=big_model_json(BIG_BANK),
                     start_timeout=60) as server:
        yield server


def test_batch_without_items_is_not_amplified(big_bank: LiveServer) -> None:
    """100 students without ``items`` on a 20,000-item bank: a 413 naming ``students`` and
    ``MAX_PROBABILITIES`` (it was every item for every student: a 1.9 KB request, a 36 MB
    response); one student without ``items`` still gets the whole bank."""
    batch = {"students": [{"student_id": f"s{k}", "responses": []} for k in range(100)]}
    raw = json.dumps(batch).encode()
    r = requests.post(big_bank.url + "/predict", data=raw, timeout=30,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413, (len(raw), len(r.content))
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("too_large", "students")
    assert "262144" in error["message"] and str(BIG_BANK) in error["message"]
    assert len(r.content) < 1000
    r = requests.post(big_bank.url + "/predict", json={"responses": []}, timeout=30)
    assert r.status_code == 200 and len(r.json()["probabilities"]) == BIG_BANK
    r = requests.post(big_bank.url + "/predict", timeout=30,
                      json={"students": [{"responses": []}] * 13})  # 260,000 <= 262,144
    assert r.status_code == 200 and len(r.json()["results"]) == 13
