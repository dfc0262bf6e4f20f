"""Hello world: the reference HTTP function for ``bench_predict.py``.

Served with the same ``functions-framework`` command and settings as ``predict``; its
throughput, latency and cold start are what the framework alone costs on this machine.
It ignores the request (the benchmark sends it the same POST body as ``predict``).
"""

from __future__ import annotations

import functions_framework
from flask import Request


@functions_framework.http
def hello(request: Request) -> dict[str, str]:
    """Return a tiny JSON object."""
    return {"message": "hello"}
