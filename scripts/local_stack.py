"""Run the system locally on embedded defaults: no cloud account needed.

``python scripts/local_stack.py demo``  the scheduled refresh, then serving: start the real
                                        ``functions-framework`` with ``prepare`` on 127.0.0.1
                                        over the bundled sample log (``samples/answers.csv.gz``,
                                        DuckDB running the BigQuery SQL), POST to it as Cloud
                                        Scheduler does - a first window, a later one (gated
                                        against the first), a retry of the same window - list
                                        the versions, then serve ``predict`` from the same
                                        model directory and send it sample requests.
``python scripts/local_stack.py serve`` ``predict`` on http://127.0.0.1:8080 until Ctrl-C, served
                                        as deployed (gunicorn, ``gunicorn.conf.py``)
                                        (runs one refresh first if there is no model yet).
                                        ``--port`` (default: ``PORT``, else 8080); the
                                        server's request log lines (JSON) go to the terminal;
                                        a port already in use is an error (exit status 2),
                                        never another server mistaken for ours.

The model directory has the production layout (``models/LATEST`` names the version,
``models/<version>/{model.json,report.json,report.html,...}``), so ``predict`` reads it
exactly as it reads the bucket; the demo names the serving version's ``report.html``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "local"
MODEL_DIR = BUILD / "model_dir"
SAMPLE_LOG = ROOT / "samples" / "answers.csv.gz"
PREPARE_ENV = {"SOURCE_FILE": str(SAMPLE_LOG), "MODEL_DIR": str(MODEL_DIR),
               "COLUMN_SKILL": "skill_id", "MODEL_TYPE": "2pl", "WINDOW_DAYS": "120"}
# The sample log covers 2026-06-01 .. 2026-10-31; the operator override ``window_end``
# pins each run's window so the demo gives the same answers whatever today's date is.
RUNS = [("first refresh: window ending 2026-10-01", {"window_end": "2026-10-01T00:00:00Z"}),
        ("next refresh: window ending 2026-11-01, gated against the serving model",
         {"window_end": "2026-11-01T00:00:00Z"}),
        ("scheduler retry of the same window", {"window_end": "2026-11-01T00:00:00Z"})]
sys.path.insert(0, str(ROOT / "shared"))


def refresh(port: int | None = None, runs: list[tuple[str, dict]] | None = None) -> None:
    """Serve ``prepare`` with functions-framework and POST each run to it, as Scheduler does."""
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _server(port, "prepare", PREPARE_ENV)
    try:
        _wait_up(url, proc)
        print(f"prepare is serving on {url} (functions-framework; source {SAMPLE_LOG.name} "
              f"via DuckDB; MODEL_DIR={MODEL_DIR.relative_to(ROOT)})")
        for title, body in runs or RUNS:
            status, answer = _call(url, body, timeout=300)
            keep = {k: answer.get(k) for k in ("status", "version", "serving_version",
                                                "decision", "error", "seconds")}
            if "data" in answer:
                keep["data"] = answer["data"]
            if "gate" in answer:
                g = answer["gate"]
                keep["gate"] = {"passed": g["passed"], "holdout_answers": g["n_holdout_answers"],
                                "new_auc": g["new"].get("auc"),
                                "serving_auc": (g["serving"] or {}).get("auc")}
            _show(f"POST prepare {json.dumps(body)} - {title}", status, keep)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "shared"))
    print(f"\n$ python -m irt.ops --dir {MODEL_DIR.relative_to(ROOT)} list")
    subprocess.run([sys.executable, "-m", "irt.tools.ops", "--dir", str(MODEL_DIR), "list"],
                   env=env, check=True)
    _name_report()


def _name_report() -> None:
    """Name the serving version's model report (``report.html``, written by ``prepare``)."""
    pointer = MODEL_DIR / "models" / "LATEST"
    latest = pointer.read_text().strip() if pointer.exists() else ""
    report = MODEL_DIR / "models" / latest / "report.html"
    if latest and report.exists():
        print(f"\nmodel report of the serving version {latest} (open it in a browser; "
              f"`python -m irt.ops --dir {MODEL_DIR.relative_to(ROOT)} show {latest}` links "
              f"it):\n  {report.relative_to(ROOT)} ({report.stat().st_size / 1e6:.1f} MB)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(port: int, target: str = "predict", extra: dict[str, str] | None = None,
            *, show_logs: bool = False) -> subprocess.Popen[bytes]:
    """``target`` served as deployed: ``predict`` by gunicorn with
    ``functions/predict/gunicorn.conf.py`` (``server:app``), ``prepare`` by functions-framework;
    ``show_logs``: its output (the JSON request lines) goes to this terminal, else it is hidden
    (stderr kept for an error message)."""
    env = {**os.environ, "MODEL_DIR": str(MODEL_DIR), "PYTHONPATH": str(ROOT / "shared"),
           "PYTHONUNBUFFERED": "1", **(extra or {})}
    env.pop("PORT", None)  # the port is --port's
    env.pop("HOST", None)
    # server.py serves FUNCTION_TARGET from FUNCTION_SOURCE: never an inherited pair (a
    # shell's, or a test's functions_framework.create_app, which writes FUNCTION_TARGET)
    env.pop("FUNCTION_TARGET", None)
    env.pop("FUNCTION_SOURCE", None)
    if target == "predict":  # as deployed: the buildpack's GOOGLE_ENTRYPOINT (Terraform)
        cmd = [str(Path(sys.executable).with_name("gunicorn")), "-c",
               str(ROOT / "functions/predict/gunicorn.conf.py"), "server:app"]
        env.update({"HOST": "127.0.0.1", "PORT": str(port)})
    else:
        exe = Path(sys.executable).with_name("functions-framework")
        cmd = [str(exe), "--target", target, "--source",
               str(ROOT / f"functions/{target}/main.py"), "--host", "127.0.0.1",
               "--port", str(port)]
    if show_logs:
        return subprocess.Popen(cmd, env=env, start_new_session=True)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:``port`` (or may not be bound)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _call(url: str, body: object | None = None, ctype: str = "application/json",
          timeout: float = 10) -> tuple[int, object]:
    data = None if body is None else (body if isinstance(body, bytes) else
                                      json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until the server accepts connections (any HTTP answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited: " + proc.stderr.read().decode()[-2000:])
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise RuntimeError("server did not start in time")


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited: " + proc.stderr.read().decode()[-2000:])
        try:
            if _call(url + "/healthz")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become healthy in time")


def _show(title: str, status: int, body: object) -> None:
    print(f"\n--- {title}: HTTP {status}")
    print(json.dumps(body, indent=2)[:1500])


def demo() -> int:
    if MODEL_DIR.exists():
        import shutil

        shutil.rmtree(MODEL_DIR)
    refresh()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _server(port)
    try:
        _wait(url, proc)
        print(f"\npredict is serving on {url} (gunicorn.conf.py, as deployed; "
              f"MODEL_DIR={MODEL_DIR})")
        answers = [{"item_id": f"Q{j:03d}", "correct": j % 3 != 0} for j in range(0, 30)]
        answers.append({"item_id": "retired-item", "correct": True})
        _show("GET /model", *_call(url + "/model"))
        _show("POST /predict, one student (30 answers, 3 requested items, 1 unknown)",
              *_call(url + "/predict", {"responses": answers,
                                        "items": ["Q100", "Q101", "Q999"]}))
        _show("POST /predict, batch of two", *_call(url + "/predict", {"students": [
            {"student_id": "a", "responses": answers[:10], "items": ["Q050"]},
            {"student_id": "b", "responses": [], "items": ["Q050"]}]}))
        _show("POST /next-items, 3 items near P = 0.7",
              *_call(url + "/next-items", {"responses": answers, "k": 3,
                                           "strategy": "target_probability", "target": 0.7}))
        _show("POST /predict, bad input", *_call(url + "/predict", {
            "responses": [{"item_id": "Q001", "correct": "yes"}]}))
        _show("POST /predict, not JSON", *_call(url + "/predict", b"hello", "text/plain"))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    print("\ndone: `make serve` keeps predict running for curl (see README).")
    return 0


def serve(port: int, model_dir: Path | None = None) -> int:
    """``predict`` on 127.0.0.1:``port`` until Ctrl-C, its request logs on this terminal.

    Exit status 2, before anything starts, when the port is taken; 1 when the server exits
    or another server answers on the port instead of ours."""
    url = f"http://127.0.0.1:{port}"
    if port_in_use(port):
        print(f"error: port {port} is already in use on 127.0.0.1 (another server is "
              f"listening there); stop it, or choose another port: make serve PORT={port + 1}",
              file=sys.stderr, flush=True)
        return 2
    root = model_dir or MODEL_DIR
    if not (root / "models" / "LATEST").exists():
        refresh()
    latest = (root / "models" / "LATEST").read_text().strip()
    proc = _server(port, extra={"MODEL_DIR": str(root)}, show_logs=True)
    try:
        deadline = time.monotonic() + 30
        while True:  # healthy with OUR model and our process alive: no foreign server
            if proc.poll() is not None:
                print(f"error: predict exited with status {proc.returncode} (see above)",
                      file=sys.stderr, flush=True)
                return 1
            try:
                status, body = _call(url + "/healthz", timeout=1)
                if status == 200 and isinstance(body, dict) and \
                        body.get("model_version") == latest:
                    break
            except (urllib.error.URLError, ConnectionError, json.JSONDecodeError, OSError):
                pass
            if time.monotonic() > deadline:
                print(f"error: predict did not become healthy on {url} in 30 s",
                      file=sys.stderr, flush=True)
                return 1
            time.sleep(0.1)
        if proc.poll() is not None:
            return 1
        print(f"predict is serving on {url} (model {latest}); request logs below; Ctrl-C to "
              "stop", file=sys.stderr, flush=True)
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
    return 0


def main() -> int:
    from irt.errors import ConfigError
    from irt.settings import env_int
    from irt.tools.common import int_in

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    try:  # PORT read as the deployed server reads it (server.read_env): 1-65535, strictly
        port = env_int(os.environ, "PORT", 8080, 1, 65535)
    except ConfigError as exc:
        parser.error(str(exc))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="calibrate, serve, send sample requests, stop")
    s = sub.add_parser("serve", help="serve predict on 127.0.0.1 until Ctrl-C")
    s.add_argument("--port", type=int_in(1, 65535), default=port,
                   help="port on 127.0.0.1 (default: $PORT, else 8080)")
    s.add_argument("--model-dir", type=Path, default=None,
                   help=f"model directory (default {MODEL_DIR.relative_to(ROOT)})")
    args = parser.parse_args()
    return demo() if args.command == "demo" else serve(args.port, args.model_dir)


if __name__ == "__main__":
    sys.exit(main())
