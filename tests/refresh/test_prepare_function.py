"""The ``prepare`` Cloud Function through the Functions Framework's test client: the HTTP
contract, then a whole scheduled run against the BigQuery and Cloud Storage emulators with
the real clients, and ``predict`` serving what it published."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import functions_framework
import pytest
from answerlogs import load_bigquery, simulated_rows, write_csv
from emulators import CALL_TIMEOUT, short_retry

from irt.engine.artifact import load_model
from irt.errors import PointerConflictError
from irt.refresh.config import RefreshConfig
from irt.store import GCSStore

ROOT = Path(__file__).resolve().parents[2]
SOURCE = str(ROOT / "functions" / "prepare" / "main.py")
PREDICT = str(ROOT / "functions" / "predict" / "main.py")
BODY = {"window_end": "2026-11-01T00:00:00Z", "window_days": 61}
ENV_KEYS = ("BQ_TABLE", "SOURCE_FILE", "MODEL_BUCKET", "MODEL_DIR", "BIGQUERY_EMULATOR_HOST",
            "GATE_MIN_AUC", "MIN_ANSWERS_PER_ITEM", "GATE_HOLDOUT_STUDENTS")


def app_for(monkeypatch: pytest.MonkeyPatch, target: str = "prepare", source: str = SOURCE,
            **env: str):
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return functions_framework.create_app(target=target, source=source).test_client()


@pytest.fixture
def local_app(monkeypatch, tmp_path):
    log = write_csv(simulated_rows(300, 20, 12, seed=21), tmp_path / "log.csv")
    return app_for(monkeypatch, SOURCE_FILE=str(log), MODEL_DIR=str(tmp_path / "md"),
                   MIN_ANSWERS_PER_ITEM="5", GATE_HOLDOUT_STUDENTS="0.3")


def test_http_contract(local_app):
    r = local_app.get("/")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert r.get_json()["error"]["code"] == "method_not_allowed"
    r = local_app.post("/", data="force", content_type="text/plain")
    assert r.status_code == 415
    r = local_app.post("/", data="{", content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_json"
    r = local_app.post("/", data='{"window_days": NaN}', content_type="application/json")
    assert r.status_code == 400
    r = local_app.post("/", json={"window_days": "7"})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "window_days"
    r = local_app.post("/", json={"sql": "DROP TABLE answers"})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "sql"
    r = local_app.post("/", json={"x": "a" * 70_000})
    assert r.status_code == 413


def test_scheduled_run_publishes_and_rerun_is_unchanged(local_app, capsys):
    r = local_app.post("/", json=BODY)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "published" and body["version"]
    again = local_app.post("/", json=BODY)
    assert again.status_code == 200 and again.get_json()["status"] == "unchanged"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{")]
    assert any(line.get("event") == "model_published" for line in lines)
    assert all("severity" in line and "run_id" in line for line in lines)


def test_empty_scheduler_body_uses_the_configured_window(local_app):
    # The sample rows are from October 2026; "now" is later, the default window is 365 days.
    r = local_app.post("/")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "published"
    assert body["window_end"].endswith(":00:00+00:00")  # now, floored to the hour


def test_misconfiguration_is_a_clear_500(monkeypatch, tmp_path):
    client = app_for(monkeypatch, MODEL_DIR=str(tmp_path))
    r = client.post("/")
    assert r.status_code == 500
    assert "BQ_TABLE" in r.get_json()["error"]["message"]


def test_bq_storage_api_is_validated_and_shapes_no_version(monkeypatch, tmp_path):
    # BQ_STORAGE_API was read at query time and any value but "0" meant on: now a boolean
    # of the configuration (a bad value is misconfigured, naming it), outside the digest.
    client = app_for(monkeypatch, MODEL_DIR=str(tmp_path), BQ_TABLE="my-project.lms.answers",
                     BQ_STORAGE_API="maybe")
    r = client.post("/")
    assert r.status_code == 500 and r.get_json()["error"]["code"] == "misconfigured"
    assert "BQ_STORAGE_API" in r.get_json()["error"]["message"]
    base = {"SOURCE_FILE": "x.csv", "MODEL_DIR": str(tmp_path)}
    on, off = (RefreshConfig.from_env({**base, **extra})
               for extra in ({}, {"BQ_STORAGE_API": "0"}))
    assert on.storage_api and not off.storage_api
    assert on.summary() == off.summary() and "storage_api" not in on.summary()


# --------------------------------------------------------------------------- cloud path
@pytest.fixture
def cloud(monkeypatch, bq_emulator, gcs_env, gcs_bucket):
    table = f"{bq_emulator.project}.lms_{uuid.uuid4().hex[:8]}.answers"
    load_bigquery(bq_emulator.client(), table, simulated_rows(300, 20, 12, seed=22))
    env = {"BQ_TABLE": table, "BIGQUERY_EMULATOR_HOST": bq_emulator.url,
           "MODEL_BUCKET": gcs_bucket.name, "MIN_ANSWERS_PER_ITEM": "5",
           "GATE_HOLDOUT_STUDENTS": "0.3"}
    return env, gcs_bucket


def test_bigquery_to_cloud_storage_to_predict(monkeypatch, cloud):
    env, bucket = cloud
    r = app_for(monkeypatch, **env).post("/", json=BODY)
    assert r.status_code == 200, r.get_json()
    version = r.get_json()["version"]
    names = {b.name for b in bucket.client.list_blobs(bucket, retry=short_retry(),
                                                      timeout=CALL_TIMEOUT)}
    assert {f"models/{version}/{n}" for n in ("prepared.csv.gz", "model.json", "metrics.json",
                                              "report.html", "report.json", "PUBLISHED")} | {
        "models/LATEST"} == names
    predict = app_for(monkeypatch, target="predict", source=PREDICT,
                      MODEL_BUCKET=bucket.name)
    meta = predict.get("/model")
    assert meta.status_code == 200 and meta.get_json()["model_version"] == version
    answer = predict.post("/", json={"responses": [{"item_id": "Q01", "correct": True}],
                                     "items": ["Q02"]})
    assert answer.status_code == 200 and answer.get_json()["model_version"] == version


def test_failed_gate_on_cloud_storage_leaves_latest(monkeypatch, cloud):
    env, bucket = cloud
    first = app_for(monkeypatch, **env).post("/", json={**BODY, "window_days": 45})
    assert first.status_code == 200
    served = first.get_json()["version"]
    failed = app_for(monkeypatch, **env, GATE_MIN_AUC="0.99").post("/", json=BODY)
    assert failed.status_code == 422 and failed.get_json()["status"] == "rejected"
    latest = bucket.blob("models/LATEST").download_as_text(retry=short_retry(),
                                                           timeout=CALL_TIMEOUT)
    assert latest.strip() == served


def test_pointer_precondition_on_cloud_storage(cloud):
    """Two runs read LATEST, both try to move it: the emulator's generation match lets one."""
    _, bucket = cloud
    a = GCSStore(bucket.name, client=bucket.client, retry=short_retry(), timeout=CALL_TIMEOUT)
    b = GCSStore(bucket.name, client=bucket.client, retry=short_retry(), timeout=CALL_TIMEOUT)
    _, token_a = a.read_pointer()
    _, token_b = b.read_pointer()
    assert token_a == token_b == 0
    a.move_pointer("run-a", token_a)
    with pytest.raises(PointerConflictError):
        b.move_pointer("run-b", token_b)
    assert a.read_pointer()[0] == "run-a"
    _, token = b.read_pointer()
    b.move_pointer("run-b", token)
    assert a.read_pointer()[0] == "run-b"


class DiesBeforePointer(GCSStore):
    def move_pointer(self, version, token):
        raise ConnectionError("instance lost its network before moving LATEST")


def test_failure_between_upload_and_pointer_on_cloud_storage(monkeypatch, cloud):
    env, bucket = cloud
    first = app_for(monkeypatch, **env).post("/", json={**BODY, "window_days": 45})
    served = first.get_json()["version"]
    from irt.refresh.pipeline import RefreshConfig, RunOptions, run_refresh
    from irt.refresh.sources import BigQuerySource

    cfg = RefreshConfig.from_env(env)
    store = DiesBeforePointer(bucket.name, client=bucket.client, retry=short_retry(),
                              timeout=CALL_TIMEOUT)
    result = run_refresh(cfg, BigQuerySource(cfg.table), store, RunOptions.from_json(BODY),
                         log=lambda *a, **k: None)
    assert result.status == 503
    good = GCSStore(bucket.name, client=bucket.client)
    assert good.read_pointer()[0] == served
    load_model(good.get(served, "model.json"))
    from irt.store import describe

    status = {v.version: v.status for v in describe(good)}
    assert status[result.body["version"]] == "unpublished"
