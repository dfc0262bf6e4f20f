"""How the refresh logs: one Cloud Logging JSON line per event (:func:`json_log`), and every
step's outcome in one shape (:func:`log_step`).

Terraform's log-based metrics and alerts read these lines by ``jsonPayload.event`` and their
fields (``terraform/modules/irt/monitoring.tf``): an event's name and fields are an interface.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

#: ``log(severity, message, **fields)``: where a run's lines go (:func:`json_log` in production).
Log = Callable[..., None]


def json_log(severity: str, message: str, **fields: Any) -> None:
    """Write one Cloud Logging JSON line to stdout."""
    entry = {"severity": severity, "message": message, **fields}
    sys.stdout.write(json.dumps(entry, default=str) + "\n")
    sys.stdout.flush()


def log_step(say: Log, message: str, /, *, event: str, severity: str = "INFO",
             since: float | None = None, **fields: Any) -> None:
    """Log one step's outcome as ``say(severity, message, event=..., **fields, seconds=...)``.

    Every line has the same shape: ``event`` first, then the step's fields, then
    ``seconds``, the wall time since ``since`` (a :func:`time.perf_counter` reading) rounded
    to the millisecond; a line without ``since`` carries no ``seconds``.  Callers pass
    ``event`` as a keyword, so ``event="name"`` in the source finds the line a metric counts.
    """
    if since is not None:
        fields["seconds"] = round(time.perf_counter() - since, 3)
    say(severity, message, event=event, **fields)
