"""``predict``: the HTTPS Cloud Function (gen2) the LMS calls.

Entry point ``predict`` (functions-framework).  Routes on the request path:

* ``POST /`` or ``POST /predict`` - ability and P(correct) for one student or a batch;
* ``POST /next-items``           - the ``k`` best next items for a student;
* ``GET /model``                 - the serving model's metadata;
* ``GET /healthz``               - 200 when a model is loaded, else 503.

The contract is ``docs/predict-openapi.yaml``; validation and answers live in
``irt.serving`` (vendored).  This module holds what touches the outside world:
configuration from the environment, the model store (Cloud Storage or a local
directory), HTTP mapping and structured logs.

Configuration (environment):

* ``MODEL_BUCKET``            - Cloud Storage bucket holding ``<MODEL_PREFIX>/LATEST``
                                (a version id) and ``<MODEL_PREFIX>/<version>/model.json``;
* ``MODEL_DIR``               - the same layout in a local directory (used when no bucket);
* ``MODEL_PREFIX``            - default ``models``;
* ``MODEL_REFRESH_SECONDS``   - re-read the pointer at most this often (default 60);
* ``MODEL_RETRY_SECONDS``     - while no model is loaded, retry at most this often (default 5);
* ``STORAGE_TIMEOUT_SECONDS`` - per storage call, retries included (default 2);
* ``MAX_BODY_BYTES`` (1 MiB), ``MAX_RESPONSES`` (1000 answers per student),
  ``MAX_ITEMS`` (5000 requested items), ``MAX_STUDENTS`` (100 per batch),
  ``MAX_K`` (100 next items) - size caps, each a 413 when exceeded.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import flask
import functions_framework
import orjson
from flask import Request, Response
from werkzeug.wsgi import get_content_length

from irt.engine.model import ItemModel, load_model
from irt.errors import ModelFormatError, RequestError
from irt.serving import Limits, model_metadata, recommend, warm
from irt.serving import predict as serve_predict

VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


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


# --------------------------------------------------------------------------- model store
class LocalSource:
    """``<root>/<prefix>/LATEST`` and ``<root>/<prefix>/<version>/model.json`` on disk."""

    def __init__(self, root: str, prefix: str) -> None:
        self.base = Path(root) / prefix
        self.where = str(self.base)

    def pointer(self) -> str:
        return (self.base / "LATEST").read_text(encoding="utf-8")

    def model_text(self, version: str) -> bytes:
        return (self.base / version / "model.json").read_bytes()


class GCSSource:
    """The same layout in a Cloud Storage bucket; short timeouts so a dead store fails fast."""

    def __init__(self, bucket: str, prefix: str, timeout: float) -> None:
        from google.api_core.retry import Retry
        from google.cloud import storage

        self.bucket = storage.Client().bucket(bucket)
        self.prefix = prefix
        self.timeout = timeout
        self.retry = Retry(initial=0.1, maximum=0.5, multiplier=2.0, timeout=timeout)
        self.where = f"gs://{bucket}/{prefix}"

    def pointer(self) -> str:
        blob = self.bucket.blob(f"{self.prefix}/LATEST")
        return blob.download_as_text(timeout=self.timeout, retry=self.retry)

    def model_text(self, version: str) -> bytes:
        blob = self.bucket.blob(f"{self.prefix}/{version}/model.json")
        return blob.download_as_bytes(timeout=self.timeout, retry=self.retry)


class ModelStore:
    """The serving model, loaded once per instance and refreshed in the background.

    ``current()`` returns the cached ``(model, version)`` at once, never waiting on
    storage.  When a check is due it starts one background thread (never more than
    one at a time) that re-reads the pointer; a new version is downloaded, validated
    and swapped in with a single assignment, so requests in flight keep the model
    they started with.  A storage error keeps the cached model; an invalid model is
    rejected (and not fetched again) and the cached one kept.  ``load()`` does the
    same synchronously (cold start).
    """

    def __init__(self, source: Any, refresh_seconds: float, retry_seconds: float) -> None:
        self.source = source
        self.refresh_seconds = refresh_seconds
        self.retry_seconds = retry_seconds
        self._current: tuple[ItemModel, str] | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()
        self._rejected: set[str] = set()

    def current(self) -> tuple[ItemModel, str] | None:
        if time.monotonic() >= self._next_check and self._lock.acquire(blocking=False):
            threading.Thread(target=self._refresh_and_release, name="model-refresh",
                             daemon=True).start()
        return self._current

    def load(self) -> tuple[ItemModel, str] | None:
        with self._lock:
            self._refresh()
        return self._current

    def _refresh_and_release(self) -> None:
        try:
            self._refresh()
        finally:
            self._lock.release()

    def _refresh(self) -> None:
        current = self._current
        try:
            version = self.source.pointer().strip()
            if not VERSION_PATTERN.match(version):
                raise ModelFormatError(f"pointer names an invalid version {version[:40]!r}")
            if (current is not None and version == current[1]) or version in self._rejected:
                self._schedule(ok=True)
                return
            text = self.source.model_text(version)
            try:
                model = load_model(text)
            except ModelFormatError as exc:
                self._rejected.add(version)
                _log(logging.ERROR, "model rejected: invalid artifact, keeping the previous one",
                     model_version=version, error=str(exc)[:500],
                     serving_version=current[1] if current else None)
                self._schedule(ok=current is not None)
                return
            if not model.version:
                model.version = version
            warm(model, LIMITS)  # precompute the EAP table and lookups before it serves
            self._current = (model, version)  # atomic swap
            _log(logging.INFO, "model loaded", model_version=version, n_items=model.n_items,
                 model_type=model.model_type, source=self.source.where,
                 previous_version=current[1] if current else None)
            self._schedule(ok=True)
        except Exception as exc:  # storage unreachable, missing object, bad pointer...
            _log(logging.WARNING if current else logging.ERROR,
                 "model refresh failed, keeping the cached model" if current
                 else "no model could be loaded", error=f"{type(exc).__name__}: {exc}"[:500],
                 source=self.source.where, serving_version=current[1] if current else None)
            self._schedule(ok=current is not None)

    def _schedule(self, ok: bool) -> None:
        delay = self.refresh_seconds if ok else self.retry_seconds
        self._next_check = time.monotonic() + delay


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _make_store() -> ModelStore:
    prefix = os.environ.get("MODEL_PREFIX", "models").strip("/")
    refresh = float(os.environ.get("MODEL_REFRESH_SECONDS", 60))
    retry = float(os.environ.get("MODEL_RETRY_SECONDS", 5))
    bucket = os.environ.get("MODEL_BUCKET")
    if bucket:
        timeout = float(os.environ.get("STORAGE_TIMEOUT_SECONDS", 2))
        return ModelStore(GCSSource(bucket, prefix, timeout), refresh, retry)
    root = os.environ.get("MODEL_DIR", str(Path(__file__).resolve().parent / "model"))
    return ModelStore(LocalSource(root, prefix), refresh, retry)


LIMITS = Limits(max_responses=_env_int("MAX_RESPONSES", 1000),
                max_items=_env_int("MAX_ITEMS", 5000),
                max_students=_env_int("MAX_STUDENTS", 100),
                max_k=_env_int("MAX_K", 100))
MAX_BODY_BYTES = _env_int("MAX_BODY_BYTES", 1 << 20)
RETRY_AFTER_SECONDS = max(1, int(float(os.environ.get("MODEL_RETRY_SECONDS", 5))))
STORE = _make_store()
STORE.load()  # at cold start; a failure is logged and retried in the background
# Everything loaded so far (framework, numpy, the model) lives as long as the process: keep it
# out of the cyclic garbage collector, whose full passes over it paused every thread of a
# worker for 30-40 ms every few thousand requests (2-3 ms frozen).  The framework imports
# this module before gunicorn forks its workers, so they share the frozen objects too.
gc.freeze()


# --------------------------------------------------------------------------- HTTP helpers
def _dumps(body: dict[str, Any]) -> bytes:
    """Compact JSON; orjson (10x faster), or ASCII-escaped stdlib JSON for strings orjson
    refuses (a lone surrogate the caller sent, echoed back)."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
          ) -> Response:
    return Response(_dumps(body), status=status, mimetype="application/json", headers=headers)


def _error(err: RequestError, headers: dict[str, str] | None = None) -> Response:
    return _json(err.to_dict(), err.status, headers)


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
    accepts) go through the standard library with a duplicate-key hook, as before.

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


def read_json(request: Request) -> Any:
    """The request's JSON body, enforcing content type, size and strict JSON.

    Raises:
        RequestError: 415, 413 or 400.
    """
    environ = request.environ  # read directly: werkzeug's header accessors cost more here
    if environ.get("CONTENT_TYPE") != "application/json" and (
            request.mimetype or "").lower() != "application/json":
        raise RequestError("Content-Type must be application/json", "Content-Type", status=415,
                           code="unsupported_media_type")
    length = get_content_length(environ)  # None when chunked
    if length is not None and length > MAX_BODY_BYTES:
        raise RequestError(f"body must be at most {MAX_BODY_BYTES} bytes", "body", status=413,
                           code="too_large")
    # With a Content-Length the stream stops there: read it all, cached, so that the
    # framework's own read after the response finds it; without one (chunked), bounded.
    raw = request.get_data() if length is not None else request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise RequestError(f"body must be at most {MAX_BODY_BYTES} bytes", "body", status=413,
                           code="too_large")
    if not raw.strip():
        raise RequestError("body is empty; send a JSON object", "body", status=400,
                           code="invalid_json")
    try:
        return parse_json(raw)
    except RecursionError:
        raise RequestError("JSON is nested too deeply", "body", status=400,
                           code="invalid_json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"body is not valid JSON: {exc}"[:300], "body", status=400,
                           code="invalid_json") from None


Handler = Callable[[Request, ItemModel, str], Response]


def endpoint(method: str, *, json_body: bool) -> Callable[[Callable[..., dict[str, Any]]], Handler]:
    """Decorator: method check (405), JSON body (415/413/400), serving model (503).

    The wrapped function receives ``(model, version[, payload])`` and returns the
    response body; a :class:`RequestError` it raises becomes the JSON error.
    """

    def wrap(func: Callable[..., dict[str, Any]]) -> Handler:
        @wraps(func)
        def handler(request: Request) -> Response:
            if request.method != method:
                raise RequestError(f"use {method} for {request.path}", "method", status=405,
                                   code="method_not_allowed")
            payload = read_json(request) if json_body else None
            loaded = STORE.current()
            if loaded is None:
                raise RequestError("no model is loaded yet; retry later", status=503,
                                   code="model_unavailable")
            model, version = loaded
            args = (model, version, payload) if json_body else (model, version)
            return _json(func(*args))

        return handler

    return wrap


@endpoint("POST", json_body=True)
def _predict(model: ItemModel, version: str, payload: Any) -> dict[str, Any]:
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
    """HTTP entry point: route, answer, log one structured line."""
    start = time.perf_counter()
    path = request.path.rstrip("/") or "/"
    route = ROUTES.get(path)
    # Only known routes are logged: a wrong URL may carry a student id.
    logged_path = path if route is not None else "<unknown path>"
    error: RequestError | None = None
    try:
        if route is None:
            raise RequestError(f"unknown path; use one of {', '.join(sorted(ROUTES))}", "path",
                               status=404, code="not_found")
        response = route(request)
    except RequestError as exc:
        error = exc
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 503 else None
        if exc.status == 405:
            allowed = "POST" if route in (_predict, _next_items) else "GET"
            headers = {"Allow": allowed}
        response = _error(exc, headers)
    except Exception:  # a bug, never bad input: log it, answer a JSON 500
        log.exception("unhandled error", extra={"fields": {"path": logged_path}})
        response = _json({"error": {"code": "internal", "message": "internal error"}}, 500)
    loaded = STORE._current
    status = response.status_code
    # One line per request, written directly: the logging module costs ~4x more here.
    fields: dict[str, Any] = {
        "severity": "INFO" if status < 400 else ("WARNING" if status < 500 else "ERROR"),
        "message": "request", "logger": "predict", "path": logged_path,
        "method": request.method,
        "status": status, "latency_ms": round((time.perf_counter() - start) * 1e3, 3),
        "model_version": loaded[1] if loaded else None,
    }
    if error is not None:
        fields["error_code"] = error.code
        fields["error_field"] = error.log_field
    try:
        sys.stdout.write(_dumps(fields).decode() + "\n")
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
