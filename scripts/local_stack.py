"""Run the system locally on embedded defaults: no cloud account needed.

``python scripts/local_stack.py demo``  calibrate a model from a synthetic answer log into a
                                        local model directory, start the real
                                        ``functions-framework`` serving ``predict`` on
                                        127.0.0.1, send sample requests, print the answers.
``python scripts/local_stack.py serve`` the same model directory, ``predict`` on
                                        http://127.0.0.1:8080 until Ctrl-C.

The model directory has the production layout (``models/LATEST`` names the version,
``models/<version>/model.json``), so ``predict`` reads it exactly as it reads the bucket.
"""

from __future__ import annotations

import argparse
import csv
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
VERSION = "demo-v1"
sys.path.insert(0, str(ROOT / "shared"))


def make_model(force: bool = False) -> Path:
    """Synthetic log -> ``python -m irt fit`` -> ``MODEL_DIR/models/<VERSION>/model.json``."""
    model_path = MODEL_DIR / "models" / VERSION / "model.json"
    if model_path.exists() and not force:
        return model_path
    from irt.simulate import simulate

    BUILD.mkdir(parents=True, exist_ok=True)
    sim = simulate(4000, 120, 30, seed=2026)
    r = sim.responses
    answers = BUILD / "answers.csv"
    with answers.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "item_id", "correct"])
        for s, j, y in zip(r.student.tolist(), r.item.tolist(), r.correct.tolist(), strict=True):
            w.writerow([f"student-{s:05d}", f"Q{j:03d}", "true" if y else "false"])
    model_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "shared"))
    print(f"$ python -m irt fit {answers.relative_to(ROOT)} --model 2pl -o "
          f"{model_path.relative_to(ROOT)}")
    subprocess.run([sys.executable, "-m", "irt", "fit", str(answers), "--model", "2pl",
                    "-o", str(model_path)], env=env, check=True)
    (MODEL_DIR / "models" / "LATEST").write_text(VERSION + "\n")
    return model_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, MODEL_DIR=str(MODEL_DIR), PYTHONPATH=str(ROOT / "shared"))
    exe = Path(sys.executable).with_name("functions-framework")
    cmd = [str(exe), "--target", "predict", "--source", str(ROOT / "functions/predict/main.py"),
           "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def _call(url: str, body: object | None = None, ctype: str = "application/json"
          ) -> tuple[int, object]:
    data = None if body is None else (body if isinstance(body, bytes) else
                                      json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


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
    make_model(force=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _server(port)
    try:
        _wait(url, proc)
        print(f"\npredict is serving on {url} (functions-framework, MODEL_DIR={MODEL_DIR})")
        answers = [{"item_id": f"Q{j:03d}", "correct": j % 3 != 0} for j in range(0, 30)]
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


def serve(port: int) -> int:
    make_model()
    proc = _server(port)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, proc)
        print(f"predict is serving on {url} (model {VERSION}); Ctrl-C to stop", flush=True)
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="calibrate, serve, send sample requests, stop")
    s = sub.add_parser("serve", help="serve predict on 127.0.0.1 until Ctrl-C")
    s.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    return demo() if args.command == "demo" else serve(args.port)


if __name__ == "__main__":
    sys.exit(main())
