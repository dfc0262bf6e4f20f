"""Request correlation: the id a caller sends (or Cloud Run's trace) for the log line and the
response, free of HTTP frameworks (reads a WSGI ``environ``).

* ``X-Request-Id``: the caller's id (an LMS's own request id), echoed in the response's
  ``X-Request-Id`` and logged as ``request_id``; 1-128 visible ASCII characters, else ignored.
* ``X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1`` (Google's front end adds it to every
  request) or W3C ``traceparent: 00-TRACE_ID-SPAN_ID-FLAGS``: logged in the fields Cloud
  Logging reads to tie a line to its trace and request log - ``logging.googleapis.com/trace``
  (``projects/<project>/traces/<TRACE_ID>``, the bare id without a project),
  ``logging.googleapis.com/spanId`` (16 hex digits) and
  ``logging.googleapis.com/trace_sampled``.  Without ``X-Request-Id`` the trace id is the
  request id; without either, a random 16-hex-digit id is made, so every answer carries one.
"""

from __future__ import annotations

import os
import re
from typing import Any

TRACE_FIELD = "logging.googleapis.com/trace"
SPAN_FIELD = "logging.googleapis.com/spanId"
SAMPLED_FIELD = "logging.googleapis.com/trace_sampled"

_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
_CLOUD_TRACE = re.compile(r"([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=([01]))?")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def correlate(environ: dict[str, Any], project: str | None) -> tuple[str, dict[str, Any]]:
    """``(request id, log fields)`` of one request.

    Args:
        environ: the WSGI environ (headers as ``HTTP_X_REQUEST_ID`` etc.).
        project: the Google Cloud project id, for the trace's full resource name.
    """
    fields: dict[str, Any] = {}
    trace = span = None
    sampled = False
    header = environ.get("HTTP_X_CLOUD_TRACE_CONTEXT")
    match = _CLOUD_TRACE.fullmatch(header.strip()) if header else None
    if match:
        trace = match[1].lower()
        if match[2] and int(match[2]) < 1 << 64:
            span = format(int(match[2]), "016x")
        sampled = match[3] == "1"
    else:
        header = environ.get("HTTP_TRACEPARENT")
        match = _TRACEPARENT.fullmatch(header.strip()) if header else None
        if match:
            trace, span, sampled = match[1], match[2], bool(int(match[3], 16) & 1)
    if trace is not None:
        fields[TRACE_FIELD] = f"projects/{project}/traces/{trace}" if project else trace
        if span is not None:
            fields[SPAN_FIELD] = span
        fields[SAMPLED_FIELD] = sampled
    sent = environ.get("HTTP_X_REQUEST_ID")
    if sent is not None and _REQUEST_ID.fullmatch(sent):
        request_id = sent
    else:
        request_id = trace or os.urandom(8).hex()
    fields["request_id"] = request_id
    return request_id, fields
