"""Drill: slow and idle clients against the live ``predict`` (issue 17, item 2), loopback only.

The server runs as production runs it (``gunicorn -c gunicorn.conf.py server:app``, the
production settings ``WORKERS=2 THREADS=4``, the default read deadlines: head 5 s, body 10 s).
Each scenario opens its attack connections, then sends 8 normal requests on new connections
(each with a 3 s client timeout) while the attack goes on, and checks:

* **trickled heads**: 16 connections sending one header byte every 2 s (which held every
  thread of functions-framework's server: 8 of 8 normal requests failed for 40 s);
* **slow bodies**: 16 connections sending a 200-byte body one byte every 2 s, one of them
  with ``Expect: 100-continue`` (so the application itself reads it: ``main.py``'s 408), one
  chunked;
* **idle connections**: 200 connections that never send a byte.

Pass: every normal request is answered 200 (none waits for the attack), each attack
connection is closed by the server within its deadline (+ the event loop's 1 s tick and a
margin for a loaded machine), a trickled head or slow body with a JSON 408 naming
``headers`` / ``body``. Figures go to ``build/drills/slow_clients.json`` under ``make drills``.
``python tests/drills/test_drill_slow_clients.py [functions-framework]`` prints the figures
for either command (both serve predict's worker now; the "before" figures were measured with
functions-framework's plain server, main at 9b42071).
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
import drillreport
from livesrv import LiveServer, live_server

pytestmark = pytest.mark.drills

PRODUCTION = {"WORKERS": "2", "THREADS": "4"}
HEADER_TIMEOUT, BODY_TIMEOUT = 5.0, 10.0  # server.py's defaults
MARGIN = 3.0  # the event loop checks deadlines every second; a loaded machine adds some
NORMAL_REQUESTS = 8
BODY = json.dumps({"responses": [{"item_id": "q1", "correct": 1}], "items": ["q2"]}).encode()


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    with live_server(env=PRODUCTION) as server:
        yield server


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


class Attacker(threading.Thread):
    """One attack connection: sends ``opening`` then ``trickle`` one byte every ``every``
    seconds until the server closes it or ``stop``; records when and with what it closed."""

    def __init__(self, url: str, opening: bytes, trickle: bytes, every: float,
                 stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.sock = _connect(url)
        self.opening, self.trickle, self.every, self.stop = opening, trickle, every, stop
        self.started = time.monotonic()
        self.closed_after: float | None = None
        self.answer = b""

    def run(self) -> None:
        sock = self.sock
        with contextlib.suppress(OSError):
            if self.opening:
                sock.sendall(self.opening)
            sent = 0
            while not self.stop.is_set():
                sock.settimeout(self.every)
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    data = None
                if data == b"":
                    break
                if data:
                    self.answer += data
                    continue
                if self.trickle:
                    sock.sendall(self.trickle[sent % len(self.trickle):][:1])
                    sent += 1
        if not self.stop.is_set():
            self.closed_after = time.monotonic() - self.started
        with contextlib.suppress(OSError):
            sock.close()

    def final(self) -> tuple[int | None, dict[str, Any] | None]:
        """Status and JSON body of the last response received (``100 Continue`` skipped)."""
        parts = [p for p in self.answer.split(b"HTTP/1.1 ") if p]
        if not parts:
            return None, None
        last = parts[-1]
        status = int(last[:3])
        _, _, body = last.partition(b"\r\n\r\n")
        with contextlib.suppress(ValueError):
            return status, json.loads(body)
        return status, None


def normal_requests(url: str, n: int = NORMAL_REQUESTS) -> list[tuple[int | str, float]]:
    """``n`` normal POSTs, one after another, each on a new connection with a 3 s timeout:
    ``[(status or error name, seconds)]``."""
    out: list[tuple[int | str, float]] = []
    for _ in range(n):
        start = time.monotonic()
        try:
            r = requests.post(f"{url}/predict", data=BODY, timeout=3,
                              headers={"Content-Type": "application/json",
                                       "Connection": "close"})
            out.append((r.status_code, time.monotonic() - start))
        except requests.RequestException as exc:
            out.append((type(exc).__name__, time.monotonic() - start))
    return out


def attack(url: str, kind: str, hold: float) -> dict[str, Any]:
    """Run one scenario for at most ``hold`` seconds; its figures."""
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    stop = threading.Event()
    if kind == "trickled heads":
        attackers = [Attacker(url, b"POST /predict HTTP/1.1\r\n", b"X-Slow: " + b"a" * 60
                              + b"\r\n", 2.0, stop) for _ in range(16)]
    elif kind == "slow bodies":
        attackers = [Attacker(url, head + b"Content-Length: 200\r\n\r\n", b" " * 200, 2.0, stop)
                     for _ in range(14)]
        attackers.append(Attacker(url, head + b"Content-Length: 200\r\nExpect: 100-continue"
                                  b"\r\n\r\n", b" " * 200, 2.0, stop))
        attackers.append(Attacker(url, head + b"Transfer-Encoding: chunked\r\n\r\n",
                                  b"1\r\n \r\n" * 100, 2.0, stop))
    elif kind == "idle connections":
        attackers = [Attacker(url, b"", b"", 1.0, stop) for _ in range(200)]
    else:
        raise ValueError(kind)
    for a in attackers:
        a.start()
    time.sleep(1.0)  # the attack is in place
    t0 = time.monotonic()
    normal = normal_requests(url)
    normal_seconds = time.monotonic() - t0
    deadline = time.monotonic() + max(0.0, hold - (time.monotonic() - attackers[0].started))
    for a in attackers:
        a.join(max(0.0, deadline - time.monotonic()))
    stop.set()
    for a in attackers:
        a.join(5)
    finals = [a.final() for a in attackers]
    closed = [a.closed_after for a in attackers if a.closed_after is not None]
    return {
        "kind": kind, "attack_connections": len(attackers),
        "normal_ok": sum(s == 200 for s, _ in normal), "normal_sent": len(normal),
        "normal_statuses": sorted({str(s) for s, _ in normal}),
        "normal_max_s": round(max(t for _, t in normal), 3),
        "normal_all_s": round(normal_seconds, 2),
        "closed_by_server": len(closed), "closed_max_s": round(max(closed), 2) if closed else None,
        "final_statuses": sorted({str(s) for s, _ in finals}),
        "final_fields": sorted({str((b or {}).get("error", {}).get("field")) for s, b in finals
                                if s is not None}),
    }


SCENARIOS = {"trickled heads": HEADER_TIMEOUT, "slow bodies": HEADER_TIMEOUT + BODY_TIMEOUT,
             "idle connections": HEADER_TIMEOUT}
FIGURES: dict[str, Any] = {}


@pytest.mark.parametrize("kind", list(SCENARIOS))
def test_slow_clients_do_not_starve_the_server(live: LiveServer, kind: str) -> None:
    bound = SCENARIOS[kind] + MARGIN
    fig = attack(live.url, kind, hold=bound + 2)
    FIGURES[kind] = fig
    drillreport.record("slow_clients", {"server": "gunicorn.conf.py (production)",
                                        **PRODUCTION, "scenarios": FIGURES})
    assert fig["normal_ok"] == fig["normal_sent"], fig
    assert fig["normal_max_s"] < 2.0, fig
    assert fig["closed_by_server"] == fig["attack_connections"], fig
    assert fig["closed_max_s"] <= bound, fig
    if kind == "idle connections":
        assert fig["final_statuses"] == ["None"], fig  # closed without a word
    else:
        assert fig["final_statuses"] == ["408"], fig
        assert fig["final_fields"] == (["headers"] if kind == "trickled heads" else ["body"]), fig


def test_functions_framework_command_is_bounded_too() -> None:
    """Cloud Functions runs functions-framework's command (``main.py`` gives its gunicorn
    predict's worker): trickled heads do not starve it either."""
    with live_server(env=PRODUCTION, server="functions-framework") as server:
        fig = attack(server.url, "trickled heads", hold=HEADER_TIMEOUT + MARGIN + 2)
    assert fig["normal_ok"] == fig["normal_sent"] and fig["normal_max_s"] < 2.0, fig
    assert fig["closed_by_server"] == fig["attack_connections"], fig
    assert fig["final_statuses"] == ["408"], fig


def test_server_still_serves_after_the_attacks(live: LiveServer) -> None:
    """After the scenarios, kept-alive requests on one connection are answered."""
    with requests.Session() as session:
        for _ in range(20):
            r = session.post(f"{live.url}/predict", data=BODY, timeout=3,
                             headers={"Content-Type": "application/json"})
            assert r.status_code == 200 and r.json()["model_version"] == live.model_version


if __name__ == "__main__":  # before/after figures: the server named on the command line
    which = sys.argv[1] if len(sys.argv) > 1 else "gunicorn"
    with live_server(env=PRODUCTION, server=which) as server:
        for name, seconds in SCENARIOS.items():
            print(json.dumps(attack(server.url, name, hold=seconds + MARGIN + 2)), flush=True)
