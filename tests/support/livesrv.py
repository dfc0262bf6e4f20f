"""Run the REAL ``predict`` function over HTTP for tests: functions-framework as a subprocess.

Usage::

    with live_predict() as base_url:      # e.g. "http://127.0.0.1:40123"
        urllib.request.urlopen(f"{base_url}/healthz")

What it does:

* writes a model directory (``<tmp>/models/LATEST`` naming a fresh version such as
  ``v1-3fa2b1c0``, and ``<tmp>/models/<version>/model.json``) from a small simulated 2PL bank
  (items ``q0`` .. ``q49``), fitted once per process;
* picks a free port on 127.0.0.1 and starts predict as production does
  (``gunicorn -c functions/predict/gunicorn.conf.py server:app``: :func:`server_command`)
  with ``MODEL_DIR=<tmp>`` and ``PYTHONPATH=<repo>/shared``, in its own process group
  (``server="functions-framework"``: functions-framework's own command line, which Cloud
  Functions runs; ``main.py`` gives its gunicorn predict's settings, ``server.py``);
* waits (at most ``start_timeout`` seconds) until ``GET /healthz`` answers 200 with that
  version (so a foreign server that grabbed the port in the meantime is never mistaken for
  ours), else raises :class:`ServerStartError` with the tail of the server's output;
* on exit terminates the whole process group (gunicorn master and worker), SIGKILL if needed.

The server's stdout/stderr go to a temporary file (never a pipe, so a chatty server can't
block); :attr:`LiveServer.output` reads it, e.g. to show structured logs in a failure.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "functions" / "predict" / "main.py"
GUNICORN_CONF = REPO / "functions" / "predict" / "gunicorn.conf.py"
MODEL_VERSION_PREFIX = "v1"
N_ITEMS = 50


#: Server settings taken from ``env`` only, never inherited from the caller's environment.
_SCRUBBED_ENV = frozenset({
    "MODEL_BUCKET", "MODEL_PREFIX", "MODEL_REFRESH_SECONDS", "MODEL_RETRY_SECONDS",
    "MAX_BODY_BYTES", "MAX_RESPONSES", "MAX_ITEMS", "MAX_STUDENTS", "MAX_K",
    "MAX_PROBABILITIES", "MAX_MODEL_ITEMS", "MAX_MODEL_BYTES",
    "PORT", "HOST", "DEBUG", "WORKERS", "THREADS", "TRUNCATE_RESPONSES", "PROJECT_ID",
    "READ_HEADER_TIMEOUT_SECONDS", "READ_BODY_TIMEOUT_SECONDS", "GUNICORN_CMD_ARGS",
    "FUNCTION_TARGET", "FUNCTION_SOURCE",
})


class ServerStartError(RuntimeError):
    """The server did not become healthy in time (the message holds its output's tail)."""


@functools.cache
def model_json() -> str:
    """A small fitted model (2000 simulated students x 50 items), built once per process."""
    from irt.engine.calibrate import FitConfig, fit
    from irt.engine.simulate import simulate

    data = simulate(2000, N_ITEMS, 20, seed=1)
    return fit(data.responses, FitConfig()).model.to_json()


def write_model_dir(root: Path, version: str, text: str | None = None) -> Path:
    """``root/models/LATEST`` naming ``version`` and ``root/models/<version>/model.json``
    (``text``, or the small default model). The version is written first, then the pointer:
    called on a served directory, this is a publish."""
    models = root / "models"
    (models / version).mkdir(parents=True, exist_ok=True)
    (models / version / "model.json").write_text(text or model_json(), encoding="utf-8")
    tmp = models / f".LATEST.{uuid.uuid4().hex}"
    tmp.write_text(version + "\n", encoding="utf-8")
    tmp.replace(models / "LATEST")  # atomic, as a pointer move must be
    return root


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def functions_framework_bin() -> str:
    """The ``functions-framework`` script of the running interpreter's environment."""
    candidates = [Path(sys.executable).parent / "functions-framework",
                  REPO / ".venv" / "bin" / "functions-framework"]
    for path in candidates:
        if path.exists():
            return str(path)
    raise ServerStartError("functions-framework is not installed (looked in "
                           + ", ".join(str(p) for p in candidates) + ")")


def server_command(port: int, host: str = "127.0.0.1", server: str = "gunicorn"
                   ) -> tuple[list[str], dict[str, str]]:
    """``(command, environment additions)`` serving ``predict`` on ``host:port``.

    ``server="gunicorn"``: ``gunicorn -c gunicorn.conf.py server:app`` (the buildpack's
    ``GOOGLE_ENTRYPOINT`` where it applies); ``"functions-framework"``: functions-framework's
    command line, as Cloud Functions runs it (``main.py`` gives it predict's settings).
    """
    if server == "functions-framework":
        return ([functions_framework_bin(), "--target", "predict", "--source", str(SOURCE),
                 "--host", host, "--port", str(port)], {})
    if server != "gunicorn":
        raise ValueError(f"server must be gunicorn or functions-framework, not {server!r}")
    gunicorn = Path(functions_framework_bin()).with_name("gunicorn")
    return ([str(gunicorn), "-c", str(GUNICORN_CONF), "server:app"],
            {"HOST": host, "PORT": str(port)})


@dataclass
class LiveServer:
    """A running server: ``url`` (no trailing slash), its model version, process and output."""

    url: str
    model_version: str
    process: subprocess.Popen[bytes]
    log_path: Path
    #: ``MODEL_DIR`` of the server: :func:`write_model_dir` on it publishes a new version.
    model_root: Path | None = None

    def output(self, tail: int = 4000) -> str:
        """The last ``tail`` characters of the server's stdout and stderr."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return text[-tail:]


def group_rss_kib(pgid: int) -> dict[int, int]:
    """``{pid: VmRSS in KiB}`` of every live process in process group ``pgid`` (Linux /proc):
    for a :class:`LiveServer`, ``pgid = server.process.pid`` (gunicorn master and workers)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[int(entry.name)] = int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return out


def _die_with_parent() -> None:  # in the child, between fork and exec
    """Linux: SIGTERM to the server when the process that started it dies (a test run killed
    with SIGKILL or SIGTERM leaves no server behind)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)


def _healthy(url: str, version: str | None) -> bool:
    """``/healthz`` answers 200 with ``version`` (``None``: answers anything in JSON, a 200
    with any version or the 503 of a server that has no model yet)."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1.0) as resp:
            body = json.loads(resp.read())
            return resp.status == 200 and (version is None or
                                           body.get("model_version") == version)
    except urllib.error.HTTPError as err:
        if version is None:
            with contextlib.suppress(ValueError):
                return isinstance(json.loads(err.read()), dict)
        return False
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return False


def _stop(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    # The group may outlive its leader (a gunicorn worker): kill what is left.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)


@contextlib.contextmanager
def live_server(*, start_timeout: float = 20.0, env: dict[str, str] | None = None,
                model: str | None = None, wait_for_model: bool = True,
                server: str = "gunicorn") -> Iterator[LiveServer]:
    """Start the real ``predict`` server on a fresh model dir; yield a :class:`LiveServer`.

    Args:
        start_timeout: seconds to wait for ``GET /healthz`` to answer 200 with our version.
        env: extra environment variables for the server (e.g. ``MAX_K``; ``MODEL_BUCKET``
            makes it read Cloud Storage instead of the model dir).
        model: model JSON to serve instead of the small default bank.
        wait_for_model: ``False``: wait only until ``/healthz`` answers JSON at all (a
            server whose storage is down answers 503).
        server: ``"gunicorn"`` (production's command) or ``"functions-framework"``
            (:func:`server_command`).

    Raises:
        ServerStartError: the server exited or was not healthy within ``start_timeout``.
    """
    with tempfile.TemporaryDirectory(prefix="predict-live-") as tmp:
        version = f"{MODEL_VERSION_PREFIX}-{uuid.uuid4().hex[:8]}"
        root = write_model_dir(Path(tmp) / "store", version, model)
        log_path = Path(tmp) / "server.log"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # The caller's shell must not change what is tested (a bucket, other caps, a prefix).
        server_env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        server_env.update({"MODEL_DIR": str(root), "PYTHONPATH": str(REPO / "shared"),
                           "PYTHONUNBUFFERED": "1", **(env or {})})
        cmd, extra = server_command(port, server=server)
        server_env.update(extra)
        with open(log_path, "wb") as log:
            process = subprocess.Popen(cmd, cwd=REPO, env=server_env, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True, preexec_fn=_die_with_parent)
        server = LiveServer(url, version, process, log_path, root)
        try:
            deadline = time.monotonic() + start_timeout
            expected = version if wait_for_model else None
            while not _healthy(url, expected) or process.poll() is not None:
                if process.poll() is not None:
                    raise ServerStartError(
                        f"predict server exited with code {process.returncode} before it was "
                        f"healthy; output tail:\n{server.output()}")
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"predict server at {url} not healthy after {start_timeout:.0f} s; "
                        f"output tail:\n{server.output()}")
                time.sleep(0.1)
            yield server
        finally:
            _stop(process)


@contextlib.contextmanager
def live_predict(**kwargs: object) -> Iterator[str]:
    """:func:`live_server`, yielding only the base URL (``http://127.0.0.1:<port>``)."""
    with live_server(**kwargs) as server:  # type: ignore[arg-type]
        yield server.url
