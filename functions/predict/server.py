"""How ``predict`` is served: gunicorn's threaded worker, bounded against slow clients, with
JSON errors at the HTTP layer and each worker listening on its own ``SO_REUSEPORT`` socket.

Production starts it with the buildpack's ``GOOGLE_ENTRYPOINT``
(``gunicorn -c gunicorn.conf.py server:app``, set by Terraform), and so do ``make serve``,
the drills, the live tests and ``benchmarks/bench_predict.py``: :data:`app` is the
functions-framework app of ``main.py`` (``functions_framework.create_app``), the same Flask
app functions-framework's own command line serves; only the server around it differs.

What :class:`BoundedThreadWorker` changes in gunicorn's ``gthread`` worker (gunicorn 27):

* **No thread for a request that has not arrived.**  gunicorn hands a new connection to a
  thread at once and the thread blocks reading its head: 16 connections trickling one header
  byte every 2 s, or 16 slow bodies, held every thread of an instance (8 of 8 normal requests
  failed), and 200 idle connections queued 5 s each in front of every real request.  Here a
  connection waits in the worker's event loop, which reads without blocking, until its whole
  head - and a body declared with ``Content-Length`` up to ``MAX_BODY_BYTES``, or a chunked
  body up to its last chunk and trailer section (:func:`_chunked_end`) - has arrived; only
  then does a thread take it.
* **Deadlines for reading.**  The head must be complete ``READ_HEADER_TIMEOUT_SECONDS``
  (default 5) after the connection is accepted or, on a kept-alive connection, after its
  next request's first byte; the body ``READ_BODY_TIMEOUT_SECONDS`` (default 10) after the
  head.  A head late is a JSON 408 (``field: "headers"``) and the connection closed; a body
  read by the application past its deadline raises :class:`ReadTimeout`, which ``main.py``
  answers as a 408 naming ``body``.  Idle kept-alive connections close after gunicorn's
  ``keepalive`` (2 s).
* **Bounded heads.**  ``limit_request_line`` 8190 bytes (functions-framework sets 0:
  unlimited, so a 2 MB request line reached the application) and ``limit_request_fields`` /
  ``limit_request_field_size`` at gunicorn's defaults (100 fields of 8190 bytes); a head
  beyond :data:`MAX_HEAD_BYTES` is refused before it is parsed.
* **JSON errors.**  What gunicorn refuses before the application sees it (a bad request line,
  a request line or header over its limit, ``Transfer-Encoding: xchunked``, a bad chunk) is
  answered in the API's error format ``{"error": {"code", "message", "field"}}`` with the
  same status gunicorn chose (400, 414, 431, 501...), not gunicorn's HTML page, and logged as
  one JSON line.
* **Transfer codings.**  A ``Transfer-Encoding`` with any coding but ``chunked`` (``gzip,
  chunked``, which gunicorn passed on undecoded; ``xchunked``) is a JSON 501 from the event
  loop; a malformed chunked body is a 400 naming ``body`` (``main.py``).
* **Refusals that reach the client.**  A refusal from the event loop (414, 431, 408, 501) is sent,
  then the connection is half-closed (``shutdown(SHUT_WR)``: the client reads the answer and
  the end of the stream) and whatever the client is still sending is read and dropped - at
  most :data:`LINGER_BYTES`, for at most :data:`LINGER_SECONDS` - before it is closed: closed
  at once, with the rest of a 2 MB request line unread, the kernel answered the client's next
  bytes with a reset, which could reach it before it had read the 414 (the client saw
  "connection reset" instead).
* **Each worker its own listening socket**: ``reuse_port`` (:data:`SETTINGS`), with which
  gunicorn 27's arbiter opens no shared socket and each worker binds its own with
  ``SO_REUSEPORT`` (``arbiter.py``, ``spawn_worker``), so the kernel spreads connections over
  the workers by their address hash: with one shared socket, whichever worker woke first
  accepted every connection of a burst, and keep-alive clients (wrk, a front end's
  connection pool) stayed pinned to it (1,211-1,224 req/s instead of 3,267-3,442 at
  concurrency 16 with 2 workers).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import selectors
import socket
import sys
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import ThreadWorker

from irt.errors import ConfigError  # vendored beside this file, as main.py's package
from irt.settings import env_float, env_int

HERE = Path(__file__).resolve().parent

#: The longest request head (request line and header fields) read before parsing; gunicorn's
#: own limits (``limit_request_line``, ``limit_request_fields``, ``limit_request_field_size``)
#: then apply field by field.
MAX_HEAD_BYTES = 64 * 1024
RECV_BYTES = 256 * 1024
#: Bodies read ahead by one worker's event loop, all connections together, at most this
#: much: past it, a request whose head is in goes to a thread at once, which reads the rest
#: under the body deadline (so 1,000 connections each sending 1 MiB slowly cannot hold
#: 1 GiB). Heads are bounded apart: ``MAX_HEAD_BYTES`` x ``worker_connections``.
READ_AHEAD_BUDGET = 64 * 1024 * 1024
#: After a refusal, what the client still sends is read and dropped, at most this much and
#: for at most this long, before the connection closes (see the module docstring).
LINGER_BYTES = 4 * 1024 * 1024
LINGER_SECONDS = 2.0


def read_env(read: Callable[..., Any], name: str, default: Any, lo: Any, hi: Any) -> Any:
    """``name`` from the environment by ``read`` (:func:`irt.settings.env_float` or
    ``env_int``: written strictly, in ``[lo, hi]``, ``default`` when unset); otherwise the
    server does not start, and says which variable and why."""
    try:
        return read(os.environ, name, default, lo, hi)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


#: Deadlines for a request's head and body, seconds in [0.001, 600].
READ_HEADER_TIMEOUT = read_env(env_float, "READ_HEADER_TIMEOUT_SECONDS", 5.0, 1e-3, 600.0)
READ_BODY_TIMEOUT = read_env(env_float, "READ_BODY_TIMEOUT_SECONDS", 10.0, 1e-3, 600.0)
#: Bodies up to this size are read by the event loop before a thread takes the request
#: (``MAX_BODY_BYTES`` of ``main.py``, same variable and default; ``main.py`` checks its
#: upper bound, :class:`irt.serving.config.PredictConfig`).
BUFFER_BODY_BYTES = read_env(env_int, "MAX_BODY_BYTES", 1 << 20, 1, 1 << 62)


class ReadTimeout(http_errors.NoMoreData):
    """The request's head or body did not arrive by its deadline (an ``OSError``: gunicorn
    closes the connection quietly, ``main.py`` answers 408)."""

    def __str__(self) -> str:
        return "the request was not received in time"


def _log_line(**fields: Any) -> None:
    """One JSON log line on stdout, like ``main.py``'s request lines."""
    try:
        sys.stdout.write(json.dumps({"logger": "predict.server", **fields}) + "\n")
        sys.stdout.flush()
    except Exception:  # logging must never fail a connection
        pass


def error_response(status: int, reason: str, code: str, message: str, field: str,
                   request_id: str) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 response carrying the API's JSON error and
    ``X-Request-Id`` (a refused head is not read for the caller's own: a new random id, also
    in the refusal's log line)."""
    body = json.dumps({"error": {"code": code, "message": message, "field": field}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"X-Request-Id: {request_id}\r\n\r\n")
    return head.encode("latin-1") + body


def _send_nonblocking(sock: socket.socket, data: bytes) -> None:
    """Best effort: as much of ``data`` as the socket takes now (an error page must never
    block the event loop)."""
    try:
        sock.setblocking(False)
        sock.send(data)
    except OSError:
        pass


#: gunicorn's refusals before the application: (status, reason, code, field) by error class.
_REFUSALS: tuple[tuple[type[Exception], int, str, str, str], ...] = (
    (http_errors.LimitRequestLine, 414, "URI Too Long", "too_large", "request line"),
    (http_errors.LimitRequestHeaders, 431, "Request Header Fields Too Large", "too_large",
     "headers"),
    (http_errors.UnsupportedTransferCoding, 501, "Not Implemented",
     "unsupported_transfer_encoding", "Transfer-Encoding"),
    (http_errors.ExpectationFailed, 417, "Expectation Failed", "invalid_request", "Expect"),
    (http_errors.InvalidRequestLine, 400, "Bad Request", "invalid_request", "request line"),
    (http_errors.InvalidRequestMethod, 400, "Bad Request", "invalid_request", "method"),
    (http_errors.InvalidHTTPVersion, 400, "Bad Request", "invalid_request", "request line"),
    (http_errors.InvalidChunkSize, 400, "Bad Request", "invalid_request", "body"),
    (http_errors.ChunkMissingTerminator, 400, "Bad Request", "invalid_request", "body"),
    (http_errors.InvalidChunkExtension, 400, "Bad Request", "invalid_request", "body"),
    (http_errors.InvalidHeader, 400, "Bad Request", "invalid_request", "headers"),
    (http_errors.InvalidHeaderName, 400, "Bad Request", "invalid_request", "headers"),
    (http_errors.ObsoleteFolding, 400, "Bad Request", "invalid_request", "headers"),
    (http_errors.InvalidSchemeHeaders, 400, "Bad Request", "invalid_request", "headers"),
)


def _head_facts(head: bytes) -> tuple[int | None, bool, bool, bool]:
    """``(Content-Length or None, chunked, expects 100-continue, another transfer coding)``
    of a raw request head, for deciding how much to read ahead; gunicorn's parser still
    validates the head itself.  ``chunked`` when the last coding is (RFC 9112 section 6.3);
    another coding (``gzip, chunked``, ``xchunked``), which gunicorn would pass through
    undecoded or refuse, is refused here."""
    length, chunked, expect, other = None, False, False, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            value = value.strip()
            length = int(value) if value.isdigit() and len(value) < 19 else None
        elif name == b"transfer-encoding":
            codings = [c.strip() for c in value.lower().split(b",")]
            chunked = codings[-1] == b"chunked"
            other = other or any(c != b"chunked" for c in codings)
        elif name == b"expect":
            expect = True
    return length, chunked, expect, other


_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
#: A chunk-size line (size and extensions) or a trailer line longer than this ends the read
#: ahead: gunicorn's parser, reading on in a thread, decides.
MAX_CHUNK_LINE = 8192


def _chunked_end(buf: bytes | bytearray, at: int) -> tuple[bool, int]:
    """Whether a chunked body whose next chunk-size line starts at ``at`` of ``buf`` is all
    here - the last chunk (size 0, extensions allowed) and the trailer section up to its
    empty line - and where to resume: ``(done, at)``.  A line that is not a chunk size
    counts as done: the request goes to a thread, where gunicorn's parser refuses it (400).
    Resumed chunk by chunk, so a body of many small chunks is scanned once."""
    n = len(buf)
    while True:
        eol = buf.find(b"\r\n", at, at + MAX_CHUNK_LINE)
        if eol < 0:
            return n - at >= MAX_CHUNK_LINE, at
        size = bytes(buf[at:eol]).split(b";", 1)[0].strip(b" \t")
        if _CHUNK_SIZE.fullmatch(size) is None:
            return True, at
        length = int(size, 16)
        if length == 0:  # the last chunk: then trailer lines, up to an empty one
            line = eol + 2
            while True:
                end = buf.find(b"\r\n", line, line + MAX_CHUNK_LINE)
                if end < 0:
                    return n - line >= MAX_CHUNK_LINE, at
                if end == line:
                    return True, at
                line = end + 2
        if eol + 2 + length + 2 > n:
            return False, at
        at = eol + 2 + length + 2


class BoundedThreadWorker(ThreadWorker):
    """gunicorn's ``gthread`` worker that reads each request ahead in its event loop, under
    deadlines, before a thread takes it; see the module docstring."""

    def init_process(self) -> None:
        self._reading: set[Any] = set()
        self._buffered = 0  # bytes held in the read-ahead buffers of self._reading
        self._lingering: dict[Any, list[float]] = {}  # refused: [deadline, bytes left]
        super().init_process()

    # ------------------------------------------------------------------ reading ahead
    def accept(self, listener: Any) -> None:
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        from gunicorn.workers.gthread import TConn

        conn = TConn(self.cfg, client, address, listener.getsockname())  # non-blocking
        self._start_reading(conn)

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection's next request begins: read it ahead like a new one."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._start_reading(conn)
        self._read_some(conn)

    def _start_reading(self, conn: Any) -> None:
        conn.rbuf = bytearray()
        conn.head_end = None
        conn.need = None
        conn.chunk_at = None  # a chunked body: where its next chunk-size line starts
        conn.read_deadline = time.monotonic() + READ_HEADER_TIMEOUT
        self._reading.add(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn: Any, _sock: Any) -> None:
        self._read_some(conn)

    def _read_some(self, conn: Any) -> None:
        if conn not in self._reading:
            return
        data = _recv(conn.sock)
        if data is None:
            return
        if not data:  # the client closed
            self._drop(conn)
            return
        buf = conn.rbuf
        buf += data
        self._buffered += len(data)
        if conn.head_end is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0 or end > MAX_HEAD_BYTES:
                line_cap = self.cfg.limit_request_line or MAX_HEAD_BYTES
                if len(buf) > line_cap + 2 and buf.find(b"\r\n", 0, line_cap + 2) < 0:
                    self._refuse(conn, 414, "URI Too Long", "too_large",
                                 f"the request line must be at most {line_cap} bytes",
                                 "request line")
                elif len(buf) > MAX_HEAD_BYTES or end > MAX_HEAD_BYTES:
                    self._refuse(conn, 431, "Request Header Fields Too Large", "too_large",
                                 f"the request head must be at most {MAX_HEAD_BYTES} bytes",
                                 "headers")
                if end < 0:
                    return
            if conn not in self._reading:  # refused above
                return
            conn.head_end = end + 4
            length, chunked, expect, other = _head_facts(bytes(buf[:end]))
            if other:
                self._refuse(conn, 501, "Not Implemented", "unsupported_transfer_encoding",
                             "Transfer-Encoding must be chunked (or absent, with a "
                             "Content-Length)", "Transfer-Encoding")
                return
            if expect:
                conn.need = conn.head_end  # the client waits for 100 Continue: go now
            elif length is not None and length <= BUFFER_BODY_BYTES:
                conn.need = conn.head_end + length
            elif chunked:
                conn.need = -1  # up to the last chunk, or the cap
            else:
                conn.need = conn.head_end  # no body, or one over the cap: answered from its head
            conn.read_deadline = time.monotonic() + READ_BODY_TIMEOUT
        if self._buffered > READ_AHEAD_BUDGET:  # the worker holds enough: a thread reads on
            self._dispatch(conn)
            return
        if conn.need == -1:
            if len(buf) - conn.head_end <= BUFFER_BODY_BYTES + 65536:
                done, conn.chunk_at = _chunked_end(buf, conn.chunk_at or conn.head_end)
                if not done:
                    return
        elif len(buf) < conn.need:
            return
        self._dispatch(conn)

    def _dispatch(self, conn: Any) -> None:
        """The request is here: hand it to a thread."""
        self._reading.discard(conn)
        self.poller.unregister(conn.sock)
        self._buffered -= len(conn.rbuf)
        conn.prebuffer = bytes(conn.rbuf)
        conn.rbuf = bytearray()
        conn.data_ready = True
        self.enqueue_req(conn)

    def _drop(self, conn: Any) -> None:
        if conn in self._reading:
            self._buffered -= len(conn.rbuf)
        self._reading.discard(conn)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    def _refuse(self, conn: Any, status: int, reason: str, code: str, message: str,
                field: str) -> None:
        request_id = uuid.uuid4().hex
        _send_nonblocking(conn.sock, error_response(status, reason, code, message, field,
                                                    request_id))
        _log_line(severity="WARNING", message="request refused by the server", status=status,
                  error_code=code, error_field=field, request_id=request_id)
        self._linger(conn)

    def _linger(self, conn: Any) -> None:
        """Half-close a refused connection and drop what the client still sends (at most
        ``LINGER_BYTES`` for ``LINGER_SECONDS``), so that the answer is read before the
        connection closes (see the module docstring)."""
        if conn in self._reading:
            self._buffered -= len(conn.rbuf)
        self._reading.discard(conn)
        conn.rbuf = bytearray()
        try:
            self.poller.unregister(conn.sock)
            conn.sock.shutdown(socket.SHUT_WR)
            self.poller.register(conn.sock, selectors.EVENT_READ,
                                 partial(self._on_lingering, conn))
        except (KeyError, ValueError, OSError):
            self._close_lingering(conn)
            return
        self._lingering[conn] = [time.monotonic() + LINGER_SECONDS, float(LINGER_BYTES)]

    def _on_lingering(self, conn: Any, _sock: Any) -> None:
        state = self._lingering.get(conn)
        if state is None:
            return
        data = _recv(conn.sock)
        if data is None:
            return
        state[1] -= len(data)
        if not data or state[1] <= 0:  # the client closed, or sent enough
            self._close_lingering(conn)

    def _close_lingering(self, conn: Any) -> None:
        self._lingering.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c, (deadline, _) in self._lingering.items() if deadline <= now]:
            self._close_lingering(conn)
        for conn in [c for c in self._reading if c.read_deadline <= now]:
            if not conn.rbuf:  # never sent a byte: just close
                self._drop(conn)
            elif conn.head_end is None:
                self._refuse(conn, 408, "Request Timeout", "timeout",
                             f"the request head was not received within "
                             f"{READ_HEADER_TIMEOUT:g} s", "headers")
            else:
                self._refuse(conn, 408, "Request Timeout", "timeout",
                             f"the request body was not received within "
                             f"{READ_BODY_TIMEOUT:g} s", "body")

    # ------------------------------------------------------------------ in the thread
    def handle(self, conn: Any) -> Any:
        prebuffer = getattr(conn, "prebuffer", b"")
        if not prebuffer:  # a request read ahead by gunicorn itself (after a body drain)
            conn.read_deadline = time.monotonic() + READ_HEADER_TIMEOUT + READ_BODY_TIMEOUT
        if prebuffer or not conn.initialized:
            conn.sock.setblocking(True)
            conn.init()
            if not getattr(conn, "deadline_reads", False):
                _bound_reads(conn)
            if prebuffer:
                conn.parser.unreader.unread(prebuffer)
                conn.prebuffer = b""
        return super().handle(conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        for kind, status, reason, code, field in _REFUSALS:
            if isinstance(exc, kind):
                message = _refusal_message(exc, field, self.cfg)
                request_id = uuid.uuid4().hex
                _log_line(severity="WARNING", message="request refused by the server",
                          status=status, error_code=code, error_field=field,
                          request_id=request_id)
                with contextlib.suppress(OSError):
                    client.sendall(error_response(status, reason, code, message, field,
                                                  request_id))
                return
        super().handle_error(req, client, addr, exc)

def _recv(sock: Any) -> bytes | None:
    """What a readable non-blocking socket holds, up to ``RECV_BYTES``: ``b""`` when the
    client closed (or the connection failed), ``None`` when nothing is there after all."""
    try:
        return sock.recv(RECV_BYTES)  # type: ignore[no-any-return]
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""


def _refusal_message(exc: BaseException, field: str, cfg: Any) -> str:
    if isinstance(exc, http_errors.LimitRequestLine):
        return f"the request line must be at most {cfg.limit_request_line} bytes"
    if isinstance(exc, http_errors.LimitRequestHeaders):
        return (f"at most {cfg.limit_request_fields} header fields of at most "
                f"{cfg.limit_request_field_size} bytes each ({exc})")
    if isinstance(exc, http_errors.UnsupportedTransferCoding):
        return "Transfer-Encoding must be chunked (or absent, with a Content-Length)"
    return f"{field}: {exc}"[:300]


def _bound_reads(conn: Any) -> None:
    """Make every socket read of the request parser (the body the application reads, a
    keep-alive drain) end at ``conn.read_deadline``: past it, :class:`ReadTimeout`."""
    unreader = conn.parser.unreader
    sock = conn.sock
    plain = unreader.chunk

    def chunk(size_hint: int | None = None) -> bytes:
        left = getattr(conn, "read_deadline", 0.0) - time.monotonic()
        if left <= 0:
            raise ReadTimeout()
        prior = sock.gettimeout()  # gunicorn's own, shorter bound (its keep-alive drain: 5 s)
        sock.settimeout(left if prior is None else min(prior, left))
        try:
            return plain(size_hint)
        except TimeoutError:
            raise ReadTimeout() from None
        finally:
            sock.settimeout(prior)

    unreader.chunk = chunk
    conn.deadline_reads = True


#: gunicorn settings of predict beyond functions-framework's (``gunicorn.conf.py`` sets the
#: same; :func:`harden_functions_framework` applies them to functions-framework's server).
SETTINGS: dict[str, Any] = {
    "worker_class": BoundedThreadWorker, "reuse_port": True, "keepalive": 2,
    "limit_request_line": 8190, "limit_request_fields": 100, "limit_request_field_size": 8190,
}


def harden_functions_framework() -> None:
    """Give functions-framework's own server (``functions-framework --target predict``)
    :data:`SETTINGS`, so that predict is served the same way whichever command starts it.

    Cloud Functions builds run the function with functions-framework's command: the
    buildpack that honours ``GOOGLE_ENTRYPOINT`` returns without setting an entrypoint when
    the target platform is Cloud Functions (GoogleCloudPlatform/buildpacks,
    ``cmd/config/entrypoint/lib/lib.go``: "Function Frameworks with the function target
    will automatically build correctly without entrypoint modification"). ``main.py`` calls
    this at import, which functions-framework's command does before it builds its
    ``GunicornApplication``; the settings are applied after functions-framework's own
    (``load_config``). Written against functions-framework 3.10.2 (pinned).
    """
    from functions_framework._http import gunicorn as framework

    plain = framework.GunicornApplication.load_config
    if getattr(plain, "predict_settings", False):
        return

    def load_config(self: Any) -> None:
        plain(self)
        for key, value in SETTINGS.items():
            self.cfg.set(key, value)

    load_config.predict_settings = True  # type: ignore[attr-defined]
    framework.GunicornApplication.load_config = load_config


def _create_app() -> Any:
    """The functions-framework app of ``FUNCTION_TARGET`` (``predict``) in ``FUNCTION_SOURCE``
    (this folder's ``main.py``), as functions-framework's command line builds it."""
    import functions_framework

    target = os.environ.get("FUNCTION_TARGET") or "predict"
    source = os.environ.get("FUNCTION_SOURCE") or str(HERE / "main.py")
    return functions_framework.create_app(target=target, source=source)


def __getattr__(name: str) -> Any:
    """``app`` is created when gunicorn asks for it (``server:app``), not when ``main.py``
    imports this module for :func:`harden_functions_framework`."""
    if name == "app":
        globals()["app"] = created = _create_app()
        return created
    raise AttributeError(name)
