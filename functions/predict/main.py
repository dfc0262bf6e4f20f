"""``predict``: the HTTPS Cloud Function (gen2) the LMS calls.

Entry point ``predict`` (functions-framework).  Routes on the request path:

* ``POST /`` or ``POST /predict`` - ability and P(correct) for one student or a batch;
* ``POST /next-items``           - the ``k`` best next items for a student;
* ``GET /model``                 - the serving model's metadata;
* ``GET /healthz``               - 200 when a model is loaded, else 503.

``HEAD`` is answered wherever ``GET`` is (the same status and headers, no body), as HTTP
requires of every server (RFC 9110, 9.1); a wrong method gets 405 with ``Allow``.

Served by gunicorn with ``gunicorn.conf.py`` and ``server.py`` (production: the buildpack's
``GOOGLE_ENTRYPOINT``, set by Terraform): they bound slow clients and request heads and
answer HTTP-level errors in JSON before this module runs.

The contract is ``docs/predict-openapi.yaml``; validation and answers live in
:mod:`irt.serving` (vendored), the model's loading and refresh in
:mod:`irt.serving.loader`, the artifact layout in :mod:`irt.store`.  This module maps HTTP
onto them and back: configuration, routing, status codes and structured logs.

Configuration (environment), checked once at start by
:class:`irt.serving.config.PredictConfig` (which documents each rule; a broken rule stops
the instance with a log line naming the variable): ``MODEL_BUCKET`` (or ``MODEL_DIR``),
``MODEL_PREFIX``, ``MODEL_REFRESH_SECONDS``, ``MODEL_RETRY_SECONDS``,
``MODEL_REFRESH_WAIT_SECONDS``,
``STORAGE_TIMEOUT_SECONDS``, and the size caps ``MAX_BODY_BYTES`` (1 MiB),
``MAX_RESPONSES`` (1000 answers per student), ``MAX_ITEMS`` (5000 requested items),
``MAX_STUDENTS`` (100 per batch), ``MAX_K`` (100 next items), ``MAX_PROBABILITIES``
(262144 in one response; a student without ``items`` asks for every item), each a 413 when
exceeded; ``MAX_MODEL_ITEMS`` (200000) and ``MAX_MODEL_BYTES`` (64 MiB), over which a model
is rejected (ERROR, the old one keeps serving); ``TRUNCATE_RESPONSES`` (``none``; ``oldest``
keeps the most recent ``MAX_RESPONSES`` answers instead), ``PROJECT_ID`` (the trace field of
the log line).
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import flask
import functions_framework
from flask import Request, Response
from werkzeug.wsgi import get_content_length

from irt.engine.model import ItemModel
from irt.errors import ConfigError, RequestError
from irt.serving import model_metadata, predict_decoded, recommend
from irt.serving import predict as serve_predict
from irt.serving.body import Decoded, decode_single, dumps, parse_json
from irt.serving.config import PredictConfig
from irt.serving.loader import ModelCache, ModelSource
from irt.serving.trace import correlate
from irt.store import GCSStore, LocalStore


# --------------------------------------------------------------------------- logging
class _JsonFormatter(logging.Formatter):
    """One JSON object per line, as Cloud Logging parses from stdout."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"severity": record.levelname, "message": record.getMessage(),
                                 "logger": record.name}
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _StdoutHandler(logging.Handler):
    """Writes to whatever ``sys.stdout`` is at emit time, flushed per line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
            sys.stdout.flush()
        except Exception:  # logging must never fail a request
            self.handleError(record)


log = logging.getLogger("predict")
if not log.handlers:
    _handler = _StdoutHandler()
    _handler.setFormatter(_JsonFormatter())
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _log(level: int, message: str, **fields: Any) -> None:
    log.log(level, message, extra={"fields": fields})


# --------------------------------------------------------------------------- configuration, model
def _configure() -> PredictConfig:
    """The configuration, checked once at start: a value that breaks its rule is logged
    (naming the variable) and stops the instance (``SystemExit`` with that line, as
    ``server.read_env``: no traceback), so a bad revision never serves."""
    try:
        return PredictConfig.from_env(os.environ, str(Path(__file__).resolve().parent / "model"))
    except ConfigError as exc:
        _log(logging.CRITICAL, f"predict is misconfigured: {exc}", event="misconfigured",
             field=exc.field, error=exc.message)
        raise SystemExit(f"predict is misconfigured: {exc}") from None


def _open_store(config: PredictConfig) -> ModelSource:
    """The artifact store the model is read from: the bucket, else the directory."""
    if config.bucket:
        from google.api_core.retry import Retry  # only with a bucket: not needed locally

        timeout = config.storage_timeout_seconds  # short: a dead store fails fast
        return GCSStore(config.bucket, config.prefix, timeout=timeout,
                        retry=Retry(initial=0.1, maximum=0.5, multiplier=2.0, timeout=timeout))
    return LocalStore(config.model_dir, config.prefix)


CONFIG = _configure()
LIMITS = CONFIG.limits
MAX_BODY_BYTES = CONFIG.max_body_bytes
RETRY_AFTER_SECONDS = CONFIG.retry_after_seconds
PROJECT_ID = CONFIG.project_id
STORE = ModelCache(_open_store(CONFIG), LIMITS, CONFIG.refresh_seconds, CONFIG.retry_seconds,
                   log, wait_seconds=CONFIG.refresh_wait_seconds,
                   max_model_bytes=CONFIG.max_model_bytes, max_model_items=CONFIG.max_model_items)
STORE.load()  # at cold start; a failure is logged and retried in the background


def _before_fork() -> None:
    """The server forks its workers after importing this module: close the store's HTTP
    connections first (Cloud Storage's client reopens them on its next call), so that no two
    processes ever share one; two workers reading the bucket on one inherited connection
    read each other's answers."""
    client = getattr(STORE.source, "client", None)
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()


# Each worker then checks the store on its own, idle or not (ModelCache.start_background).
os.register_at_fork(before=_before_fork, after_in_child=STORE.start_background)
# Everything loaded so far (framework, numpy, the model) lives as long as the process: keep it
# out of the cyclic garbage collector, whose full passes over it paused every thread of a
# worker for 30-40 ms every few thousand requests (2-3 ms frozen).  The framework imports
# this module before gunicorn forks its workers, so they share the frozen objects too.
gc.freeze()


def _harden_server() -> None:
    """Apply predict's server settings (``server.py``) to functions-framework's gunicorn when
    functions-framework's command serves this module, as Cloud Functions does whatever
    ``GOOGLE_ENTRYPOINT`` says (see :func:`server.harden_functions_framework`)."""
    path = Path(__file__).resolve().parent / "server.py"
    if not path.is_file():
        return
    import importlib.util

    spec = importlib.util.spec_from_file_location("predict_server", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.harden_functions_framework()


_harden_server()


# --------------------------------------------------------------------------- HTTP helpers
def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
          ) -> Response:
    return Response(dumps(body), status=status, mimetype="application/json", headers=headers)


def _error(err: RequestError, headers: dict[str, str] | None = None) -> Response:
    return _json(err.to_dict(), err.status, headers)


#: A UTF-16 or UTF-32 byte order mark opens with one of these.
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def read_json(request: Request, single: bool = False) -> Any:
    """The request's JSON body, enforcing content type, size and strict JSON; with
    ``single``, the common predict request comes decoded by
    :func:`irt.serving.body.decode_single` (a ``Decoded``, for ``predict_decoded``).

    Raises:
        RequestError: 415 (also: a ``Content-Encoding``), 413, 408 (the body did not arrive
            by the server's read deadline) or 400 (also: a body not in UTF-8, a malformed
            chunked body).
    """
    environ = request.environ  # read directly: werkzeug's header accessors cost more here
    if environ.get("CONTENT_TYPE") != "application/json" and (
            request.mimetype or "").lower() != "application/json":
        raise RequestError("Content-Type must be application/json", "Content-Type", status=415,
                           code="unsupported_media_type")
    coding = environ.get("HTTP_CONTENT_ENCODING")
    if coding is not None and coding.strip().lower() not in ("", "identity"):
        # a compressed body is not decoded here: refuse it by name (RFC 9110 15.5.16)
        raise RequestError("Content-Encoding is not supported: send the JSON uncompressed",
                           "Content-Encoding", status=415, code="unsupported_media_type")
    length = get_content_length(environ)  # None when chunked
    if length is not None and length > MAX_BODY_BYTES:
        raise RequestError(f"body must be at most {MAX_BODY_BYTES} bytes", "body", status=413,
                           code="too_large")
    # With a Content-Length the stream stops there: read it all (cached); without one
    # (chunked), bounded.  What is left unread is never read: see _leave_body_unread.
    try:
        raw = request.get_data() if length is not None else \
            request.stream.read(MAX_BODY_BYTES + 1)
    except OSError:  # the server's read deadline (server.ReadTimeout), or the client left
        raise RequestError("the body was not received in time", "body", status=408,
                           code="timeout") from None
    except Exception as exc:  # gunicorn's parser on a malformed chunked body
        if not type(exc).__module__.startswith("gunicorn."):
            raise
        raise RequestError(f"the body is not valid chunked transfer coding: {exc}"[:300],
                           "body", status=400, code="invalid_request") from None
    if len(raw) > MAX_BODY_BYTES:
        raise RequestError(f"body must be at most {MAX_BODY_BYTES} bytes", "body", status=413,
                           code="too_large")
    if not raw.strip():
        raise RequestError("body is empty; send a JSON object", "body", status=400,
                           code="invalid_json")
    if raw[:2] in _UTF16_BOMS or b"\x00" in raw[:4]:
        # The standard library's json (parse_json's fallback) would detect UTF-16/32 and
        # accept it; RFC 8259 (section 8.1) requires UTF-8 between systems, so refuse.
        raise RequestError("body must be JSON encoded as UTF-8 (RFC 8259), not UTF-16/32",
                           "body", status=400, code="invalid_json")
    if single and (decoded := decode_single(raw)) is not None:
        return decoded
    try:
        return parse_json(raw)
    except RecursionError:
        raise RequestError("JSON is nested too deeply", "body", status=400,
                           code="invalid_json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"body is not valid JSON: {exc}"[:300], "body", status=400,
                           code="invalid_json") from None


#: What is left of a body up to this much over ``MAX_BODY_BYTES`` is read and dropped after
#: the answer; past it nothing more is read.
DRAIN_BYTES = 4 << 20


def _leave_body_unread(request: Request) -> None:
    """Make the rest of the request body unreadable to the application, so that nothing
    buffers it after the answer.

    functions-framework registers an after-request hook (``read_request``) that reads the
    whole body with ``request.get_data()`` before the response is sent: after a 413 that
    buffered a body of any size in the worker (a 300 MiB body raised a worker from 60 to
    363 MiB) and, with ``Content-Length: 10^12`` and 2 bytes sent, held the answer until the
    client gave up.  Once this module has answered, at most :data:`DRAIN_BYTES` more of a
    body declared no larger than ``MAX_BODY_BYTES + DRAIN_BYTES`` (or chunked) are read and
    dropped, then the request's stream is replaced by an empty one (a body already read is
    cached by ``get_data`` and unaffected); what the client still sends is gunicorn's: its
    gthread worker drains at most 64 KiB within 5 s after the response, else closes the
    connection (gunicorn 27, ``_keepalive_after``), and its sync worker always closes it.
    """
    length = get_content_length(request.environ)
    if length is None or length <= MAX_BODY_BYTES + DRAIN_BYTES:
        # A body a little over the cap is read and dropped, 64 KiB at a time (memory stays
        # flat): closing on an unread body can reset the connection before a client that is
        # still sending reads its 413.
        stream, left = request.stream, DRAIN_BYTES
        with contextlib.suppress(OSError):  # past the server's read deadline: stop
            while left > 0 and (chunk := stream.read(min(left, 1 << 16))):
                left -= len(chunk)
    request.stream = io.BytesIO()  # werkzeug's cached_property: setting it replaces the stream


Handler = Callable[[Request, ItemModel, str], Response]


def endpoint(method: str, *, json_body: bool, single: bool = False
             ) -> Callable[[Callable[..., dict[str, Any]]], Handler]:
    """Decorator: method check (405; a ``GET`` endpoint answers ``HEAD`` too, its body left
    out by werkzeug), JSON body (415/413/400), serving model (503); ``single``: the body may
    come decoded (:func:`read_json`).

    The wrapped function receives ``(model, version[, payload])`` and returns the
    response body; a :class:`RequestError` it raises becomes the JSON error.
    """

    def wrap(func: Callable[..., dict[str, Any]]) -> Handler:
        @wraps(func)
        def handler(request: Request) -> Response:
            if request.method != method and not (method == "GET" and request.method == "HEAD"):
                raise RequestError(f"use {method} for {request.path}", "method", status=405,
                                   code="method_not_allowed")
            payload = read_json(request, single) if json_body else None
            loaded = STORE.current()
            if loaded is None:
                raise RequestError("no model is loaded yet; retry later", status=503,
                                   code="model_unavailable")
            model, version = loaded
            args = (model, version, payload) if json_body else (model, version)
            return _json(func(*args))

        return handler

    return wrap


@endpoint("POST", json_body=True, single=True)
def _predict(model: ItemModel, version: str, payload: Any) -> dict[str, Any]:
    if type(payload) is Decoded:
        return predict_decoded(model, payload, LIMITS, version)
    return serve_predict(model, payload, LIMITS, version)


@endpoint("POST", json_body=True)
def _next_items(model: ItemModel, version: str, payload: Any) -> dict[str, Any]:
    return recommend(model, payload, LIMITS, version)


@endpoint("GET", json_body=False)
def _metadata(model: ItemModel, version: str) -> dict[str, Any]:
    return model_metadata(model, version)


@endpoint("GET", json_body=False)
def _health(model: ItemModel, version: str) -> dict[str, Any]:
    return {"status": "ok", "model_version": version}


ROUTES: dict[str, Handler] = {"/": _predict, "/predict": _predict, "/next-items": _next_items,
                              "/model": _metadata, "/healthz": _health}


def _router_not_found(error: Exception) -> Response:
    """Flask's own 404, for a path its router cannot match (functions-framework's
    ``/<path:path>`` rule does not match a newline): answered by :func:`predict` itself,
    which finds no route for it - the same JSON 404 and log line as any unknown path."""
    return predict(flask.request)


@functions_framework.http
def predict(request: Request) -> Response:
    """HTTP entry point: route, answer, log one structured line (with the request id and
    trace, :mod:`irt.serving.trace`; the id is echoed in ``X-Request-Id``)."""
    start = time.perf_counter()
    request_id, correlation = correlate(request.environ, PROJECT_ID)
    path = request.path.rstrip("/") or "/"
    route = ROUTES.get(path)
    # Only known routes are logged: a wrong URL may carry a student id.
    logged_path = path if route is not None else "<unknown path>"
    error: RequestError | None = None
    try:
        if "HTTP_HOST" not in request.environ and \
                request.environ.get("SERVER_PROTOCOL") == "HTTP/1.1":
            # RFC 9112 section 3.2: an HTTP/1.1 request without Host is answered 400
            raise RequestError("an HTTP/1.1 request must carry a Host header", "Host",
                               status=400, code="invalid_request")
        if route is None:
            raise RequestError(f"unknown path; use one of {', '.join(sorted(ROUTES))}", "path",
                               status=404, code="not_found")
        response = route(request)
    except RequestError as exc:
        error = exc
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 503 else None
        if exc.status == 405:
            allowed = "POST" if route in (_predict, _next_items) else "GET, HEAD"
            headers = {"Allow": allowed}
        response = _error(exc, headers)
    except Exception:  # a bug, never bad input: log it, answer a JSON 500
        log.exception("unhandled error", extra={"fields": {"path": logged_path}})
        response = _json({"error": {"code": "internal", "message": "internal error"}}, 500)
    _leave_body_unread(request)
    response.headers["X-Request-Id"] = request_id
    loaded = STORE.loaded
    status = response.status_code
    # One line per request, written directly: the logging module costs ~4x more here.
    fields: dict[str, Any] = {
        "severity": "INFO" if status < 400 else ("WARNING" if status < 500 else "ERROR"),
        "message": "request", "logger": "predict", "path": logged_path,
        "method": request.method,
        "status": status, "latency_ms": round((time.perf_counter() - start) * 1e3, 3),
        "model_version": loaded[1] if loaded else None, **correlation,
    }
    if error is not None:
        fields["error_code"] = error.code
        fields["error_field"] = error.log_field
    try:
        sys.stdout.write(dumps(fields).decode() + "\n")
        sys.stdout.flush()
    except Exception:  # logging must never fail a request
        pass
    return response


# functions-framework points ``errorhandler`` at the app it is creating before it runs this
# module. A plain import (a tool, a test loading main.py as a module) finds the last app
# created instead, which Flask refuses to change once it has served: then there is no app
# of ours to register on.
with contextlib.suppress(AssertionError):
    functions_framework.errorhandler(404)(_router_not_found)
