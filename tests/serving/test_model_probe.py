"""``predict`` probes a new model before it swaps it in, and says so when it cannot serve
``LATEST`` (ML Test Score infrastructure 6 and monitoring 4, ``docs/ml-test-score.md``).

The model comes from the Cloud Storage emulator (fake-gcs-server) through the real
``google-cloud-storage`` client and ``functions/predict/main.py``; the log lines are predict's
own stdout JSON, the lines the Terraform log-based metrics count
(``model_rejected``/``model_fetch_failed``: alert ``model_rejected``; ``model_behind``: alert
``model_behind``; their firing is evaluated in ``tests/deploy/test_alert_semantics.py``).
"""

from __future__ import annotations

import json
import time

import pytest
from predict_app import make_bucket_client, publish_to_bucket, served_version

from irt.engine.artifact import load_model
from irt.engine.calibrate import FitConfig, fit
from irt.engine.model import ItemModel
from irt.engine.simulate import simulate
from irt.refresh.monitoring import canary
from irt.serving.probe import probe

REQUEST = {"responses": [{"item_id": "q1", "correct": True}], "items": ["q0"]}


@pytest.fixture(scope="module")
def fitted() -> ItemModel:
    return fit(simulate(1500, 30, 15, seed=9).responses, FitConfig(compute_se=False)).model


def flat(model: ItemModel) -> str:
    """A model that loads (every value in range) but cannot tell students apart: slopes
    written in the wrong unit (1e-9)."""
    doc = json.loads(model.to_json())
    for spec in doc["items"].values():
        spec["a"] = 1e-9
    return json.dumps(doc)


def events(text: str, event: str) -> list[dict]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [e for e in lines if e.get("event") == event]


def serve_for(client, seconds: float, capsys) -> tuple[set, str]:
    """Requests for ``seconds``: the versions that answered and predict's log meanwhile."""
    seen, out = set(), ""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(served_version(client, REQUEST))
        out += capsys.readouterr().out
        time.sleep(0.02)
    return seen, out + capsys.readouterr().out


def test_the_probe_passes_a_fitted_model_and_fails_one_that_cannot_tell_students_apart(
        fitted) -> None:
    figures, problems = probe(fitted, "v1")
    assert not problems and figures["passed"]
    assert figures["theta_all_right"] > 0 > figures["theta_all_wrong"]
    bad = load_model(flat(fitted).encode())  # loads: the format checks pass it
    figures, problems = probe(bad, "v2")
    assert problems == ["all right does not score above all wrong"] and not figures["passed"]
    # prepare's canary asks the same: it reports the same problem for the same model
    _, found = canary(flat(fitted).encode(), bad, "v2")
    assert found == ["canary: all right does not score above all wrong"]


def test_a_new_model_failing_the_canary_answers_is_rejected_and_the_old_one_serves(
        monkeypatch, gcs_emulator, gcs_bucket, fitted, capsys) -> None:
    publish_to_bucket(gcs_bucket, "v1", fitted.to_json())
    client = make_bucket_client(monkeypatch, gcs_emulator, gcs_bucket.name,
                                MODEL_REFRESH_SECONDS="0.1")
    assert served_version(client, REQUEST) == "v1"
    capsys.readouterr()
    publish_to_bucket(gcs_bucket, "v2", flat(fitted))
    seen, out = serve_for(client, 1.5, capsys)
    assert seen == {"v1"}  # never the bad one, never a 503
    (rejected, *_) = events(out, "model_rejected")
    assert rejected["severity"] == "ERROR"
    assert rejected["model_version"] == "v2" and rejected["serving_version"] == "v1"
    assert rejected["reason"] == "canary answers failed"
    assert "all right does not score above all wrong" in rejected["error"]
    # a good version after it is probed, passes and swaps in
    publish_to_bucket(gcs_bucket, "v3", fitted.to_json())
    deadline = time.monotonic() + 8
    while served_version(client, REQUEST) != "v3":
        assert time.monotonic() < deadline, "v3 never served"
        time.sleep(0.05)
    assert not events(capsys.readouterr().out, "model_rejected")


def test_a_model_that_cannot_be_fetched_is_logged_and_the_instance_says_it_is_behind(
        monkeypatch, gcs_emulator, gcs_bucket, fitted, capsys) -> None:
    """``LATEST`` names a version whose model.json is missing: every check logs
    ``model_fetch_failed``; once the instance has served another version than ``LATEST``
    for longer than ``MODEL_REFRESH_SECONDS`` it logs ``model_behind``, not before."""
    refresh = 0.5
    publish_to_bucket(gcs_bucket, "v1", fitted.to_json())
    client = make_bucket_client(monkeypatch, gcs_emulator, gcs_bucket.name,
                     MODEL_REFRESH_SECONDS=str(refresh))
    assert served_version(client, REQUEST) == "v1"
    seen, out = serve_for(client, 3 * refresh, capsys)  # up to date: nothing to say
    assert seen == {"v1"} and not events(out, "model_behind")
    assert not events(out, "model_fetch_failed")
    publish_to_bucket(gcs_bucket, "ghost", None)  # a pointer to a version that is not there
    moved = time.monotonic()
    seen, out = serve_for(client, 4 * refresh, capsys)
    assert seen == {"v1"}
    failed = events(out, "model_fetch_failed")
    assert failed and all(e["severity"] == "ERROR" for e in failed)
    assert failed[0]["model_version"] == "ghost" and failed[0]["serving_version"] == "v1"
    behind = events(out, "model_behind")
    assert behind, "an instance behind LATEST for 4 refresh intervals said nothing"
    first = behind[0]
    assert first["severity"] == "ERROR"
    assert first["serving_version"] == "v1" and first["latest_version"] == "ghost"
    assert refresh <= first["seconds_behind"] <= time.monotonic() - moved
    assert first["refresh_seconds"] == refresh
    # LATEST back on a loadable version: the instance catches up and stops saying it
    publish_to_bucket(gcs_bucket, "v4", fitted.to_json())
    deadline = time.monotonic() + 8
    while served_version(client, REQUEST) != "v4":
        assert time.monotonic() < deadline, "v4 never served"
        time.sleep(0.05)
    capsys.readouterr()
    seen, out = serve_for(client, 3 * refresh, capsys)
    assert seen == {"v4"} and not events(out, "model_behind")
