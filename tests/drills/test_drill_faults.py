"""Fault drills that the rest of the suite does not already run (``tests/support/drill_registry.py``
lists those it does), each against real emulators and with its expected outcome asserted:

* BigQuery fails in the middle of a refresh - the table disappears between the schema check
  and the query, on the BigQuery emulator with the real client: 503 ``source_unavailable``,
  nothing written, ``LATEST`` still names the model that served;
* the live ``predict`` (gunicorn, two workers, as deployed) starts with Cloud Storage down:
  every request a JSON 503 with ``Retry-After``; storage comes back: both workers recover
  without a restart; storage goes down again while warm: every request still answered 200 by
  the cached model.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests
from answerlogs import load_bigquery, simulated_rows
from emulators import CALL_TIMEOUT, EMULATOR_ENV_VAR, PROJECT, create_bucket, short_retry
from livesrv import live_server, model_json

from irt.refresh.pipeline import RefreshConfig, RunOptions, run_refresh
from irt.refresh.sources import BigQuerySource
from irt.store import GCSStore

pytestmark = pytest.mark.drills

BODY = {"window_end": "2026-11-01T00:00:00Z", "window_days": 61}
REQUEST = {"responses": [{"item_id": "q1", "correct": True}], "items": ["q0"]}
LIVENESS_BOUND_S = 60  # a safety net for a hung server, not a performance threshold


class Logs(list):
    def __call__(self, severity: str, message: str, **fields) -> None:
        self.append(json.loads(json.dumps({"severity": severity, "message": message,
                                           **fields}, default=str)))


class TableDroppedMidRun(BigQuerySource):
    """The table is deleted after the schema check, just before the first query."""

    def query(self, sql, params):
        if not getattr(self, "dropped", False):
            self.dropped = True
            self.client.delete_table(self.table, timeout=30)
        return super().query(sql, params)


def test_bigquery_error_mid_run_publishes_nothing(bq_emulator, gcs_env, gcs_bucket) -> None:
    table = f"{bq_emulator.project}.lms_{uuid.uuid4().hex[:8]}.answers"
    load_bigquery(bq_emulator.client(), table, simulated_rows(300, 20, 12, seed=23))
    cfg = RefreshConfig.from_env({"BQ_TABLE": table, "MODEL_BUCKET": gcs_bucket.name,
                                  "MIN_ANSWERS_PER_ITEM": "5", "GATE_HOLDOUT_STUDENTS": "0.3"})
    store = GCSStore(gcs_bucket.name, client=gcs_bucket.client, retry=short_retry(),
                     timeout=CALL_TIMEOUT)
    first = run_refresh(cfg, BigQuerySource(table, client=bq_emulator.client()), store,
                        RunOptions.from_json({**BODY, "window_days": 45}), log=Logs())
    assert first.status == 200, first.body
    before = store.versions()
    logs = Logs()
    result = run_refresh(cfg, TableDroppedMidRun(table, client=bq_emulator.client()), store,
                         RunOptions.from_json(BODY), log=logs)
    assert result.status == 503 and result.body["status"] == "source_unavailable", result.body
    assert "Not found" in result.body["error"] or "404" in result.body["error"], result.body
    assert store.read_pointer()[0] == first.body["version"]
    assert store.versions() == before  # nothing written, not even a rejection report
    failed = logs[-1]
    assert failed["severity"] == "ERROR" and failed["event"] == "refresh_failed"


def _log(server) -> list[dict]:
    text = server.log_path.read_text(encoding="utf-8", errors="replace")
    return [json.loads(line) for line in text.split("\n") if line.startswith("{")]


def _post(url: str) -> requests.Response:
    return requests.post(f"{url}/predict", json=REQUEST, timeout=10)


def test_live_predict_through_a_storage_outage(own_gcs_emulator) -> None:
    client = own_gcs_emulator.client()
    name = create_bucket(client).name
    own_gcs_emulator.stop()  # cold start with storage down
    env = {"WORKERS": "2", "THREADS": "4", "MODEL_BUCKET": name,
           EMULATOR_ENV_VAR: own_gcs_emulator.url, "GOOGLE_CLOUD_PROJECT": PROJECT,
           "MODEL_RETRY_SECONDS": "0.3", "MODEL_REFRESH_SECONDS": "0.3",
           "STORAGE_TIMEOUT_SECONDS": "1"}
    with live_server(env=env, wait_for_model=False, start_timeout=60) as server:
        for _ in range(30):
            r = _post(server.url)
            assert r.status_code == 503 and r.headers.get("Retry-After") == "1", r.text
            assert r.json()["error"]["code"] == "model_unavailable"
        # Storage comes back (empty: the memory backend forgets) and a model is published.
        own_gcs_emulator.restart()
        bucket = create_bucket(client, name)
        bucket.blob("models/v1/model.json").upload_from_string(
            model_json(), retry=short_retry(), timeout=CALL_TIMEOUT)
        bucket.blob("models/LATEST").upload_from_string("v1", retry=short_retry(),
                                                        timeout=CALL_TIMEOUT)
        deadline = time.monotonic() + LIVENESS_BOUND_S
        streak = 0
        while streak < 40:  # both workers serve v1 (requests land on either)
            assert time.monotonic() < deadline, server.output()
            r = _post(server.url)
            ok = r.status_code == 200 and r.json()["model_version"] == "v1"
            assert ok or r.status_code == 503, r.text
            streak = streak + 1 if ok else 0
        # Storage down again, while warm: the cached model answers every request, through
        # failed background refreshes (each takes STORAGE_TIMEOUT_SECONDS to give up).
        own_gcs_emulator.stop()
        answers = []
        deadline = time.monotonic() + LIVENESS_BOUND_S
        while len(answers) < 200 or not any(
                e["message"].startswith("model refresh failed") for e in _log(server)):
            assert time.monotonic() < deadline, server.output()
            answers.append(_post(server.url))
        assert {(r.status_code, r.json()["model_version"]) for r in answers} == {(200, "v1")}
        log = _log(server)
    messages = [e["message"] for e in log]
    assert any(m.startswith("no model could be loaded") for m in messages)  # cold start
    assert any(m.startswith("model refresh failed") for m in messages)  # the warm outage
    assert [e["model_version"] for e in log if e["message"] == "model loaded"] == ["v1", "v1"]
