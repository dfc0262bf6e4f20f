"""``clients/js/predict-example.mjs`` (Node 18+) against the real local ``predict``; skipped
where ``node`` is not installed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from livesrv import live_server

SCRIPT = Path(__file__).resolve().parents[2] / "clients" / "js" / "predict-example.mjs"
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_node_example_calls_the_local_server() -> None:
    with live_server() as server:
        out = subprocess.run([str(NODE), str(SCRIPT), server.url], capture_output=True,
                             text=True, timeout=60)
        log = server.output(100_000)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["predicted"]["model_version"] == server.model_version
    assert answer["predicted"]["ability"]["n_answers"] == 3
    assert list(answer["predicted"]["probabilities"]) == ["q3", "q4"]
    assert len(answer["next"]["items"]) == 2
    assert answer["refused"] == {"status": 400, "code": "invalid_request",
                                 "field": "responses[0].correct"}
    assert '"request_id":"node-example-1"' in log
