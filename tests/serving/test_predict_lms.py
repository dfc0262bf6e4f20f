"""LMS-shaped requests (issue 16): integer ids, long histories cut to the most recent answers,
and request correlation (``X-Request-Id``, Cloud trace) in the answer and the log line.

Integer ids must find the item the training query wrote: ``sql.py`` selects
``NULLIF(TRIM(CAST(item AS STRING)), '')``, and BigQuery's ``CAST(INT64 AS STRING)`` is the
decimal text (``-5``, ``0``, ``9223372036854775807``), which DuckDB (the local ``prepare``)
writes the same way - checked here against DuckDB itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from predict_app import make_client, publish

from irt.engine.calibrate import FitConfig, fit
from irt.engine.simulate import simulate
from irt.serving import Limits, parse_next, parse_predict
from irt.serving.config import PredictConfig
from irt.serving.trace import SPAN_FIELD, TRACE_FIELD, correlate

#: Integer item ids as an LMS keeps them, in the model as the training query cast them.
INT_IDS = [1001 + j for j in range(30)]


@pytest.fixture(scope="module")
def fitted() -> str:
    """model.json of a bank whose item ids are ``"1001"`` .. ``"1030"``."""
    model = fit(simulate(1500, 30, 15, seed=7).responses, FitConfig(compute_se=False)).model
    doc = json.loads(model.to_json())
    doc["items"] = {str(INT_IDS[int(k[1:])]): v for k, v in doc["items"].items()}
    return json.dumps(doc)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fitted: str):
    publish(tmp_path, "v1", fitted)
    return make_client(monkeypatch, tmp_path)


def _answers(ids, start: int = 0):
    return [{"item_id": i, "correct": (k + start) % 3 != 0} for k, i in enumerate(ids)]


# --------------------------------------------------------------------------- integer ids
def test_integer_ids_are_the_text_the_training_query_casts() -> None:
    duckdb = pytest.importorskip("duckdb")
    values = [0, 7, -5, 1001, (1 << 63) - 1, -(1 << 63)]
    rows = duckdb.sql("SELECT NULLIF(TRIM(CAST(v AS VARCHAR)), '') "
                      "FROM (SELECT UNNEST(?::BIGINT[]) AS v)", params=[values]).fetchall()
    students, _, _ = parse_predict({"responses": _answers(values)}, Limits())
    assert students[0].item_ids == [r[0] for r in rows]


def test_integer_item_ids_answer_as_the_same_string_ids(client) -> None:
    as_int = client.post("/predict", json={"responses": _answers(INT_IDS[:12]),
                                           "items": [*INT_IDS[12:16], 99]})
    text = [str(i) for i in INT_IDS]
    as_text = client.post("/predict", json={"responses": _answers(text[:12]),
                                            "items": [*text[12:16], "99"]})
    assert as_int.status_code == as_text.status_code == 200, as_int.get_json()
    assert as_int.get_json() == as_text.get_json()
    body = as_int.get_json()
    assert body["ability"]["n_answers"] == 12 and body["unknown_items"] == ["99"]
    assert list(body["probabilities"]) == ["1013", "1014", "1015", "1016"]


def test_integer_ids_in_a_batch_and_next_items(client) -> None:
    batch = client.post("/predict", json={"students": [
        {"student_id": 42, "responses": _answers(INT_IDS[:5]), "items": [INT_IDS[9]]},
        {"student_id": "s-2", "responses": _answers(INT_IDS[5:9])}]})
    assert batch.status_code == 200, batch.get_json()
    results = batch.get_json()["results"]
    assert [r["student_id"] for r in results] == ["42", "s-2"]  # an integer comes back as text
    assert list(results[0]["probabilities"]) == ["1010"] and results[0]["unknown_items"] == []
    nxt = client.post("/next-items", json={"responses": _answers(INT_IDS[:5]), "k": 2,
                                           "candidates": INT_IDS[:8]})
    assert nxt.status_code == 200, nxt.get_json()
    assert {i["item_id"] for i in nxt.get_json()["items"]} <= {"1006", "1007", "1008"}


@pytest.mark.parametrize("bad", [1 << 63, -(1 << 63) - 1, 7.0, True])
def test_an_integer_beyond_int64_or_a_float_is_a_400(client, bad) -> None:
    r = client.post("/predict", json={"responses": [{"item_id": bad, "correct": 1}]})
    assert r.status_code == 400
    assert r.get_json()["error"]["field"] == "responses[0].item_id"


# --------------------------------------------------------------------------- long histories
def test_a_long_history_is_a_413_unless_truncated(monkeypatch, tmp_path, fitted) -> None:
    publish(tmp_path, "v1", fitted)
    client = make_client(monkeypatch, tmp_path, MAX_RESPONSES="10")
    # 25 answers, 5 repeated items: after the first attempt per item 20 remain, the 10 most
    # recent count; the untruncated equivalent is the last 10 distinct items
    ids = INT_IDS[:20] + INT_IDS[:5]
    body = {"responses": _answers(ids)}
    r = client.post("/predict", json=body)
    assert r.status_code == 413 and "truncate" in r.get_json()["error"]["message"]
    cut = client.post("/predict", json={**body, "truncate": "oldest", "items": [INT_IDS[25]]})
    assert cut.status_code == 200, cut.get_json()
    recent = client.post("/predict", json={"responses": _answers(ids)[10:20],
                                           "items": [INT_IDS[25]]})
    got = cut.get_json()
    assert got.pop("dropped_responses") == 10
    assert got == recent.get_json()
    assert got["ability"]["n_answers"] == 10
    assert client.post("/predict", json={**body, "truncate": "none"}).status_code == 413
    assert client.post("/predict", json={**body, "truncate": "newest"}).status_code == 400


def test_truncation_keeps_the_latest_answered_at() -> None:
    limits = Limits(max_responses=2)
    answers = [{"item_id": "a", "correct": 1, "answered_at": 30},
               {"item_id": "b", "correct": 0, "answered_at": 10},
               {"item_id": "c", "correct": 1, "answered_at": 20}]
    students, _, _ = parse_predict({"responses": answers, "truncate": "oldest"}, limits)
    assert (students[0].item_ids, students[0].correct, students[0].dropped) == (
        ["c", "a"], [1, 1], 1)
    parsed = parse_next({"responses": answers, "truncate": "oldest"}, limits)
    assert parsed.item_ids == ["c", "a"] and parsed.dropped == 1


def test_server_default_truncates_batches_and_next_items(monkeypatch, tmp_path, fitted) -> None:
    publish(tmp_path, "v1", fitted)
    client = make_client(monkeypatch, tmp_path, MAX_RESPONSES="10", TRUNCATE_RESPONSES="oldest")
    long, short = _answers(INT_IDS[:14]), _answers(INT_IDS[:3])
    r = client.post("/predict", json={"students": [{"responses": long}, {"responses": short}]})
    assert r.status_code == 200, r.get_json()
    results = r.get_json()["results"]
    assert results[0]["dropped_responses"] == 4 and "dropped_responses" not in results[1]
    n = client.post("/next-items", json={"responses": long, "k": 1})
    assert n.status_code == 200 and n.get_json()["dropped_responses"] == 4
    # a request may still ask to be refused
    assert client.post("/next-items", json={"responses": long, "truncate": "none"}
                       ).status_code == 413


def test_truncate_responses_is_checked_at_start() -> None:
    assert PredictConfig.from_env({}, "x").limits.truncate is False
    assert PredictConfig.from_env({"TRUNCATE_RESPONSES": "oldest"}, "x").limits.truncate
    from irt.errors import ConfigError
    with pytest.raises(ConfigError) as err:
        PredictConfig.from_env({"TRUNCATE_RESPONSES": "latest"}, "x")
    assert err.value.field == "TRUNCATE_RESPONSES"


# --------------------------------------------------------------------------- correlation
def test_correlation_reads_the_request_id_and_the_cloud_trace() -> None:
    trace = "105445aa7843bc8bf206b12000100000"
    rid, fields = correlate({"HTTP_X_REQUEST_ID": "lms-77",
                             "HTTP_X_CLOUD_TRACE_CONTEXT": f"{trace}/255;o=1"}, "irt-prod")
    assert rid == "lms-77"
    assert fields == {TRACE_FIELD: f"projects/irt-prod/traces/{trace}",
                      SPAN_FIELD: "00000000000000ff",
                      "logging.googleapis.com/trace_sampled": True, "request_id": "lms-77"}
    rid, fields = correlate({"HTTP_TRACEPARENT": f"00-{trace}-00f067aa0ba902b7-00"}, None)
    assert rid == trace and fields[TRACE_FIELD] == trace
    assert fields[SPAN_FIELD] == "00f067aa0ba902b7"
    rid, fields = correlate({"HTTP_X_REQUEST_ID": "bad id\n" * 30}, None)  # ignored, replaced
    assert len(rid) == 16 and TRACE_FIELD not in fields and fields["request_id"] == rid


def test_request_id_is_echoed_and_logged(client, capsys) -> None:
    capsys.readouterr()
    trace = "0af7651916cd43dd8448eb211c80319c"
    r = client.post("/predict", json={"responses": [{"item_id": 1001, "correct": 1}]},
                    headers={"X-Request-Id": "lms-req-1",
                             "X-Cloud-Trace-Context": f"{trace}/1;o=1"})
    assert r.status_code == 200 and r.headers["X-Request-Id"] == "lms-req-1"
    bad = client.post("/predict", json={"responses": "x"}, headers={"X-Request-Id": "e-2"})
    assert bad.status_code == 400 and bad.headers["X-Request-Id"] == "e-2"
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()
             if x.startswith("{") and '"request"' in x]
    assert [x["request_id"] for x in lines[-2:]] == ["lms-req-1", "e-2"]
    assert lines[-2][TRACE_FIELD] == trace  # no PROJECT_ID here: the bare trace id
    assert client.get("/healthz").headers["X-Request-Id"]  # always one
