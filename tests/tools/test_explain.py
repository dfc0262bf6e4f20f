"""``python -m irt.explain``: one prediction step by step, recomputed independently of the
serving code, must agree with what ``predict`` answers (ML Test Score, infrastructure 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from irt.engine.calibrate import FitConfig, fit
from irt.engine.simulate import simulate
from irt.errors import RequestError
from irt.tools.explain import explain

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model():
    return fit(simulate(1500, 30, 15, seed=12).responses, FitConfig(compute_se=False)).model


REQUESTS = [
    {"responses": []},
    {"responses": [{"item_id": "q1", "correct": True}, {"item_id": "q2", "correct": 0}],
     "items": ["q3", "q4", "zz"]},
    {"responses": [{"item_id": f"q{j}", "correct": True} for j in range(30)]},  # all right
    {"responses": [{"item_id": "q5", "correct": 1, "answered_at": "2026-11-02T00:00:00Z"},
                   {"item_id": "q5", "correct": 0, "answered_at": "2026-11-01T00:00:00Z"},
                   {"item_id": "new", "correct": 1}], "items": ["q5"]},
]


@pytest.mark.parametrize("payload", REQUESTS)
def test_explained_steps_agree_with_predict(model, payload) -> None:
    report = explain(model, payload)
    served = report["served"]
    assert abs(served["theta_difference"]) < 2e-6 and abs(served["se_difference"]) < 2e-6
    counted = report["request"]["answers_counted"]
    assert counted == served["ability"]["n_answers"] == len(report["answers"])
    loglik = sum(a["loglik_at_theta"] for a in report["answers"])
    assert loglik == pytest.approx(report["posterior"]["log_likelihood_at_theta"])
    for p in report["probabilities"]:
        assert p["served"] == pytest.approx(p["p_correct"], abs=2e-6)
    weights = [n["weight"] for n in report["posterior"]["top_nodes"]]
    assert weights == sorted(weights, reverse=True) and 0 < sum(weights) <= 1


def test_first_attempt_and_unknown_items_are_shown(model) -> None:
    report = explain(model, REQUESTS[3])
    assert report["request"]["answers_sent"] == 3
    assert report["request"]["answers_counted"] == 1
    assert report["answers"][0]["correct"] == 0  # the earlier attempt
    assert report["request"]["unknown_answered_items"] == ["new"]


def test_invalid_requests_are_refused_as_predict_refuses_them(model) -> None:
    with pytest.raises(RequestError) as err:
        explain(model, {"responses": [{"item_id": "q1", "correct": "yes"}]})
    assert err.value.field == "responses[0].correct"
    with pytest.raises(RequestError):
        explain(model, {"students": [{"responses": []}]})


def test_command_line(model, tmp_path) -> None:
    path = tmp_path / "model.json"
    path.write_text(model.to_json())
    env = {**os.environ, "PYTHONPATH": str(ROOT / "shared")}
    run = subprocess.run([sys.executable, "-m", "irt.tools.explain", str(path),
                          json.dumps(REQUESTS[1])], capture_output=True, text=True, env=env,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("1. request: 2 answers sent, 2 counted")
    assert "4. predict answers theta" in run.stdout and "zz" in run.stdout
    as_json = subprocess.run([sys.executable, "-m", "irt.tools.explain", str(path), "-", "--json"],
                             input=json.dumps(REQUESTS[0]), capture_output=True, text=True,
                             env=env, timeout=60, check=False)
    assert json.loads(as_json.stdout)["posterior"]["theta"] == pytest.approx(0.0, abs=1e-9)
    bad = subprocess.run([sys.executable, "-m", "irt.tools.explain", str(path), '{"responses": 1}'],
                         capture_output=True, text=True, env=env, timeout=60, check=False)
    assert bad.returncode == 2 and "invalid request (responses)" in bad.stderr
