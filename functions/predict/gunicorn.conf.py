"""gunicorn settings of ``predict`` (``gunicorn -c gunicorn.conf.py server:app``).

Production runs this file through the buildpack's ``GOOGLE_ENTRYPOINT`` (Terraform,
``terraform/irt/main.tf``); ``make serve``, the drills, the live tests and the benchmark run
it too (``tests/support/livesrv.py``, ``scripts/local_stack.py``). What each setting bounds
is in ``server.py``'s docstring and ``functions/predict/README.md``.

Environment: ``PORT`` (8080; ``HOST``, default all interfaces), ``WORKERS`` (1) and
``THREADS`` (8) as functions-framework reads them, ``READ_HEADER_TIMEOUT_SECONDS`` (5) and
``READ_BODY_TIMEOUT_SECONDS`` (10) (``server.py``), ``GUNICORN_LOG_LEVEL`` (error).
``PORT``, ``WORKERS`` and ``THREADS`` are read as :func:`irt.settings.parse_int` reads an
integer (``1_0``, `` 2 `` or ``+2`` stop the server, naming the variable), in range.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # server.py, main.py, irt

from irt.settings import parse_int  # vendored beside this file


def _count(name: str, default: int, hi: int) -> int:
    """``name`` from the environment as an integer in ``[1, hi]`` (``default`` when unset or
    blank); otherwise the server does not start, and says which variable and why."""
    raw = os.environ.get(name, "")
    if raw.strip() == "":
        return default
    try:
        value = parse_int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be an integer from 1 to {hi}, {exc}") from None
    if not 1 <= value <= hi:
        raise SystemExit(f"{name} must be an integer from 1 to {hi}, got {raw!r}")
    return value


bind = f"{os.environ.get('HOST', '0.0.0.0')}:{_count('PORT', 8080, 65535)}"
workers = _count("WORKERS", 1, 64)
threads = _count("THREADS", 8, 1000)
worker_class = "server.BoundedThreadWorker"
# gunicorn 27 with reuse_port: no shared socket in the arbiter, each worker binds its own with
# SO_REUSEPORT, and the kernel spreads connections over them (issue 17, item 11).
reuse_port = True
# The app (main.py, the model) is loaded once, in the arbiter, and shared by the workers, as
# functions-framework's own command line does.
preload_app = True
# No worker timeout (functions-framework's 0): a request's time is bounded by Cloud Run's
# request timeout; reads are bounded by server.py's deadlines.
timeout = 0
keepalive = 2
# gunicorn's defaults; functions-framework sets limit_request_line = 0 (unlimited).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "error")
