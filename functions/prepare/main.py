"""``prepare``: the scheduled refresh (gen2 HTTP Cloud Function, entry point ``prepare``).

Cloud Scheduler POSTs here (OIDC, private function) e.g. nightly.  One run reads
the answer log, prepares it, calibrates, validates and - if the new model is
good enough - publishes it where ``predict`` picks it up.  The work is
:func:`irt.refresh.pipeline.run_refresh` (vendored); this module holds what touches the
outside world: configuration from the environment, the clients (created once
per instance), HTTP in and out.

Request: ``POST`` with an empty body, or a JSON object of operator overrides:
``{"force": bool, "dry_run": bool, "window_end": "2026-11-28T00:00:00Z",
"window_days": int, "model_type": "rasch|1pl|2pl|3pl"}``.

Response: JSON summary of the run.  ``200`` published / unchanged / dry run;
``400`` bad override (``error.field`` names it) or a body that is not JSON (duplicate
keys and nesting too deep included); ``405``/``413``/``415``;
``409`` another run published first; ``422`` data validation or quality gate
rejected the model (nothing published); ``500`` configuration or internal
error; ``503`` BigQuery or Cloud Storage unavailable.  Every non-2xx is also an
``ERROR`` log line with ``"event": "refresh_failed"`` (alerting keys on it).

Configuration (environment; :class:`irt.refresh.config.RefreshConfig` documents every key):
``BQ_TABLE`` (or ``SOURCE_FILE`` locally), ``BQ_LOCATION``, ``COLUMN_*``,
``WINDOW_DAYS``, ``MODEL_TYPE``, ``MAX_ANSWERS_PER_ITEM``, ``MIN_ANSWERS_PER_*``,
``DATA_*`` and ``GATE_*`` thresholds, ``MODEL_BUCKET`` (or ``MODEL_DIR``),
``MODEL_PREFIX``.
"""

from __future__ import annotations

import json
from typing import Any

import functions_framework
from flask import Request, Response

from irt.errors import ConfigError
from irt.refresh.config import RefreshConfig, RunOptions
from irt.refresh.logs import json_log
from irt.refresh.pipeline import run_refresh

MAX_BODY_BYTES = 64 * 1024


def _build() -> tuple[RefreshConfig | None, Any, Any, str | None]:
    """Configuration, source and store, once per instance; an error is kept for requests."""
    try:
        config = RefreshConfig.from_env()
        if config.table:
            from irt.refresh.sources import BigQuerySource

            source: Any = BigQuerySource(config.table, location=config.location,
                                         storage_api=config.storage_api)
        else:
            from irt.refresh.sources import DuckDBSource

            source = DuckDBSource(config.source_file or "", config.columns)
        if config.bucket:
            from irt.store import GCSStore

            store: Any = GCSStore(config.bucket, config.prefix)
        else:
            from irt.store import LocalStore

            store = LocalStore(config.model_dir or "", config.prefix)
        return config, source, store, None
    except ConfigError as exc:
        return None, None, None, str(exc)
    except Exception as exc:  # client creation (credentials, ...) - reported per request
        return None, None, None, f"{type(exc).__name__}: {exc}"


CONFIG, SOURCE, STORE, CONFIG_ERROR = _build()
if CONFIG_ERROR:
    json_log("ERROR", f"prepare is misconfigured: {CONFIG_ERROR}", event="refresh_failed")


def _reply(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body, default=str), status=status, mimetype="application/json")


def _error(status: int, code: str, message: str, field: str = "",
           headers: dict[str, str] | None = None) -> Response:
    """A JSON error, also logged as ERROR ``refresh_failed`` (the alert keys on it)."""
    err: dict[str, Any] = {"code": code, "message": message}
    if field:
        err["field"] = field
    # the log names a known field only, and no JSON error (it may quote a key): an unknown
    # or duplicate key may be caller data (a student id)
    known = field in (*RunOptions.FIELDS, "body")
    said = code if code == "invalid_json" or (field and not known) else message
    json_log("ERROR", f"refresh failed: {said}",
             event="refresh_failed", http_status=status, status=code,
             **({"field": field} if known else {}))
    resp = _reply(status, {"error": err})
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


@functions_framework.http
def prepare(request: Request) -> Response:
    """Run one refresh; see the module docstring for the contract."""
    if request.method != "POST":
        return _error(405, "method_not_allowed", "use POST", headers={"Allow": "POST"})
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _error(413, "body_too_large", f"the body must be at most {MAX_BODY_BYTES} bytes")
    raw = request.get_data(cache=False)
    if len(raw) > MAX_BODY_BYTES:
        return _error(413, "body_too_large", f"the body must be at most {MAX_BODY_BYTES} bytes")
    body = None
    if raw.strip():
        if request.mimetype != "application/json":
            return _error(415, "unsupported_media_type", "send application/json (or no body)")
        try:
            body = json.loads(raw, parse_constant=_reject_constant,
                              object_pairs_hook=_no_duplicates)
        except RecursionError:
            return _error(400, "invalid_json", "the body is nested too deeply")
        except ValueError as exc:  # UnicodeDecodeError too
            return _error(400, "invalid_json", f"the body is not valid JSON: {exc}"[:300])
    try:
        options = RunOptions.from_json(body)
    except ConfigError as exc:
        return _error(400, "invalid_field", exc.message, field=exc.field)
    if CONFIG_ERROR or CONFIG is None:
        return _error(500, "misconfigured", f"configuration error: {CONFIG_ERROR}")
    result = run_refresh(CONFIG, SOURCE, STORE, options)
    return _reply(result.status, result.body)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse a repeated key (``{"force": false, "force": true}``), as predict does."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out
