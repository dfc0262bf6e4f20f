"""gunicorn settings of ``predict`` (``gunicorn -c gunicorn.conf.py server:app``).

Production runs this file through the buildpack's ``GOOGLE_ENTRYPOINT`` (Terraform,
``terraform/irt/main.tf``); ``make serve``, the drills, the live tests and the benchmark run
it too (``tests/support/livesrv.py``, ``scripts/local_stack.py``). What each setting bounds
is in ``server.py``'s docstring and ``functions/predict/README.md``.

Environment: ``PORT`` (8080; ``HOST``, default all interfaces), ``WORKERS`` (1) and
``THREADS`` (8) as functions-framework reads them, ``READ_HEADER_TIMEOUT_SECONDS`` (5) and
``READ_BODY_TIMEOUT_SECONDS`` (10) (``server.py``), ``GUNICORN_LOG_LEVEL`` (error).
``PORT``, ``WORKERS`` and ``THREADS`` are read by :func:`irt.settings.env_int` (through
``server.read_env``): ``1_0``, `` 2 ``, ``+2`` or a value out of range stops the server,
naming the variable.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # server.py, main.py, irt

from server import read_env

from irt.settings import env_int

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{read_env(env_int, 'PORT', 8080, 1, 65535)}"
workers = read_env(env_int, "WORKERS", 1, 1, 64)
threads = read_env(env_int, "THREADS", 8, 1, 1000)
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
