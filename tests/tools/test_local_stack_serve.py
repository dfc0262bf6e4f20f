"""``make serve`` (``scripts/local_stack.py serve``): the port from ``PORT`` (or ``--port``),
the request log lines on the terminal, and a clear failure - not a false success - when the
port is already taken by another server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from livesrv import free_port, write_model_dir

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "local_stack.py"


def test_a_taken_port_fails_clearly(tmp_path: Path) -> None:
    root = write_model_dir(tmp_path / "store", "v1-local")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run([sys.executable, str(SCRIPT), "serve", "--port", str(port),
                              "--model-dir", str(root)], capture_output=True, text=True,
                             timeout=60)
    assert out.returncode == 2, out
    assert f"port {port} is already in use" in out.stderr and f"PORT={port + 1}" in out.stderr
    assert "serving" not in out.stdout + out.stderr


def test_a_bad_port_setting_fails_naming_it(tmp_path: Path) -> None:
    """PORT is read as the deployed server reads it (1-65535, ASCII digits): it was int(),
    a traceback for 'abc' and a silent 10 for '1_0'."""
    for raw in ("abc", "1_0", "70000", "0"):
        out = subprocess.run([sys.executable, str(SCRIPT), "serve"], capture_output=True,
                             text=True, timeout=60, env={**os.environ, "PORT": raw})
        assert out.returncode == 2 and "PORT: must be" in out.stderr, (raw, out)
        assert "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, str(SCRIPT), "serve", "--port", "70000"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--port: must be at most 65535" in out.stderr


def test_serve_uses_port_and_shows_request_logs(tmp_path: Path) -> None:
    root = write_model_dir(tmp_path / "store", "v1-local")
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:
        # an inherited FUNCTION_TARGET/FUNCTION_SOURCE (a shell's, or one a test's
        # functions_framework.create_app wrote) must not change what is served
        env = {**os.environ, "PORT": str(port), "FUNCTION_TARGET": "prepare",
               "FUNCTION_SOURCE": str(REPO / "functions" / "prepare" / "main.py")}
        proc = subprocess.Popen([sys.executable, str(SCRIPT), "serve", "--model-dir", str(root)],
                                env=env, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "predict is serving" not in log.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert f"http://127.0.0.1:{port} (model v1-local)" in log.read_text()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict", method="POST",
            data=b'{"responses": [{"item_id": "q1", "correct": true}]}',
            headers={"Content-Type": "application/json", "X-Request-Id": "serve-test-1"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200 and resp.headers["X-Request-Id"] == "serve-test-1"
        deadline = time.monotonic() + 10
        while '"serve-test-1"' not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        line = next(json.loads(x) for x in log.read_text().splitlines()
                    if '"serve-test-1"' in x)
        assert (line["path"], line["status"]) == ("/predict", 200)
        # Served as deployed (gunicorn.conf.py, server.py): a request line over 8190 bytes is
        # the server's JSON 414 (functions-framework's command line has no such limit).
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz?" + "a" * 9000, timeout=10)
            raise AssertionError("a 9 KB request line was accepted")
        except urllib.error.HTTPError as err:
            assert err.code == 414
            assert json.loads(err.read())["error"]["field"] == "request line"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
