"""``predict`` reading its model from a real Cloud Storage emulator (fake-gcs-server)
with the real ``google-cloud-storage`` client: cold load, hot refresh, storage going
down while warm and coming back, corrupt model objects, and a cold start with storage
down (503 + Retry-After, then recovery without restart)."""

from __future__ import annotations

import json
import time

import pytest
from emulators import create_bucket
from predict_app import make_bucket_client, publish_to_bucket, served_version

from irt.engine.calibrate import FitConfig, fit
from irt.engine.model import ItemModel
from irt.engine.simulate import simulate

REQUEST = {"responses": [{"item_id": "q1", "correct": True}], "items": ["q0"]}


@pytest.fixture(scope="module")
def fitted() -> ItemModel:
    return fit(simulate(1500, 30, 15, seed=9).responses, FitConfig(compute_se=False)).model


def wait_until(predicate, timeout: float = 8.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(step)


def test_cold_load_and_hot_refresh(monkeypatch, gcs_emulator, gcs_bucket, fitted) -> None:
    publish_to_bucket(gcs_bucket, "2026-11-27", fitted.to_json())
    client = make_bucket_client(monkeypatch, gcs_emulator, gcs_bucket.name,
                                MODEL_REFRESH_SECONDS="0.2")
    r = client.post("/", json=REQUEST)
    assert r.status_code == 200
    assert r.get_json()["model_version"] == "2026-11-27"
    p_old = r.get_json()["probabilities"]["q0"]
    doc = json.loads(fitted.to_json())
    doc["items"]["q0"]["b"] += 2.0
    publish_to_bucket(gcs_bucket, "2026-11-28", json.dumps(doc))
    # Requests keep succeeding during the swap; the new version arrives within the interval.
    seen = []
    wait_until(lambda: seen.append(served_version(client, REQUEST)) or seen[-1] == "2026-11-28")
    assert None not in seen
    assert client.post("/", json=REQUEST).get_json()["probabilities"]["q0"] < p_old


def test_corrupt_or_invalid_model_object_keeps_the_old(monkeypatch, gcs_emulator, gcs_bucket,
                                                       fitted, capsys) -> None:
    publish_to_bucket(gcs_bucket, "good", fitted.to_json())
    client = make_bucket_client(monkeypatch, gcs_emulator, gcs_bucket.name,
                                MODEL_REFRESH_SECONDS="0.1")
    assert served_version(client, REQUEST) == "good"
    capsys.readouterr()
    out = ""
    for version, text in (("truncated", fitted.to_json()[:500]),
                          ("nan", fitted.to_json().replace('"b": ', '"b": NaN, "x": ', 1)),
                          ("no-items", json.dumps({**json.loads(fitted.to_json()),
                                                   "items": {}}))):
        publish_to_bucket(gcs_bucket, version, text)
        deadline = time.monotonic() + 8
        while f'"model_version": "{version}"' not in out:
            assert served_version(client, REQUEST) == "good"
            assert time.monotonic() < deadline, f"no rejection logged for {version}"
            time.sleep(0.05)
            out += capsys.readouterr().out
    rejected = [json.loads(line) for line in out.splitlines()
                if line and "model rejected" in line]
    assert [e["model_version"] for e in rejected] == ["truncated", "nan", "no-items"]
    # A pointer naming a missing object: also no harm.
    gcs_bucket.blob("models/LATEST").upload_from_string("ghost")
    time.sleep(0.3)
    assert served_version(client, REQUEST) == "good"


def test_storage_down_while_warm_keeps_serving(monkeypatch, own_gcs_emulator, fitted,
                                               capsys) -> None:
    bucket = create_bucket(own_gcs_emulator.client())
    publish_to_bucket(bucket, "v1", fitted.to_json())
    client = make_bucket_client(monkeypatch, own_gcs_emulator, bucket.name,
                                MODEL_REFRESH_SECONDS="0.1")
    assert served_version(client, REQUEST) == "v1"
    own_gcs_emulator.stop()
    started = time.monotonic()
    statuses = []
    slowest = 0.0
    while time.monotonic() - started < 3.0:  # spans several failed refreshes
        t = time.perf_counter()
        r = client.post("/", json=REQUEST)
        slowest = max(slowest, time.perf_counter() - t)
        statuses.append((r.status_code, r.get_json().get("model_version")))
        time.sleep(0.02)
    assert set(statuses) == {(200, "v1")}
    assert slowest < 0.5  # refreshes run in the background: no request waits on storage
    assert "model refresh failed" in capsys.readouterr().out
    # Storage returns (empty: the memory backend forgets) with a new model: picked up.
    own_gcs_emulator.restart()  # same port
    bucket = create_bucket(own_gcs_emulator.client(), bucket.name)
    publish_to_bucket(bucket, "v2", fitted.to_json())
    wait_until(lambda: served_version(client, REQUEST) == "v2")


def test_cold_start_with_storage_down_is_503_then_recovers(monkeypatch, own_gcs_emulator,
                                                           fitted) -> None:
    name = create_bucket(own_gcs_emulator.client()).name
    own_gcs_emulator.stop()
    client = make_bucket_client(monkeypatch, own_gcs_emulator, name, MODEL_RETRY_SECONDS="0.2")
    r = client.post("/", json=REQUEST)
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"
    assert r.get_json()["error"]["code"] == "model_unavailable"
    own_gcs_emulator.restart()  # same port
    bucket = create_bucket(own_gcs_emulator.client(), name)
    publish_to_bucket(bucket, "v1", fitted.to_json())
    wait_until(lambda: served_version(client, REQUEST) == "v1")
