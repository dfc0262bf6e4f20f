"""``predict`` through the functions-framework test client, model from a local directory.

``functions_framework.create_app`` executes ``functions/predict/main.py`` afresh on each
call, so every app built here reads the environment set by its test.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from predict_app import make_client, publish

from irt.engine.ability import eap
from irt.engine.calibrate import FitConfig, fit
from irt.engine.model import ItemModel
from irt.engine.simulate import simulate


@pytest.fixture(scope="module")
def fitted() -> ItemModel:
    return fit(simulate(2000, 40, 20, seed=5).responses, FitConfig(compute_se=False)).model



@pytest.fixture
def model_dir(tmp_path: Path, fitted: ItemModel) -> Path:
    publish(tmp_path, "v1", fitted.to_json())
    return tmp_path


def wait_for(client, version: str, timeout: float = 5.0) -> dict:
    """Poll until the background refresh serves ``version``; returns the last /model body."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get("/model")
        body = r.get_json()
        if r.status_code == 200 and body["model_version"] == version:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"still serving {body} after {timeout} s, wanted {version}")
        time.sleep(0.05)



@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, model_dir: Path):
    return make_client(monkeypatch, model_dir)


ANSWERS = [{"item_id": f"q{j}", "correct": j % 2 == 0} for j in range(10)]


def test_single_student_probabilities_match_the_engine(client, fitted: ItemModel) -> None:
    r = client.post("/", json={"responses": [*ANSWERS, {"item_id": "zz", "correct": 1}],
                               "items": ["q20", "q21", "nope"]})
    assert r.status_code == 200
    body = r.get_json()
    pos, _ = fitted.lookup([a["item_id"] for a in ANSWERS])
    theta, se = eap(fitted, pos, np.array([a["correct"] for a in ANSWERS], dtype=np.int8))
    assert body["model_version"] == "v1"
    assert body["ability"] == {"theta": pytest.approx(theta, abs=1e-6),
                               "se": pytest.approx(se, abs=1e-6), "method": "EAP",
                               "n_answers": 10}
    want = fitted.probability(theta, ["q20", "q21"])
    assert body["probabilities"] == {"q20": pytest.approx(want[0], abs=1e-6),
                                     "q21": pytest.approx(want[1], abs=1e-6)}
    assert body["unknown_items"] == ["zz", "nope"]


def test_items_omitted_means_every_item_and_map_method(client, fitted: ItemModel) -> None:
    body = client.post("/predict", json={"responses": ANSWERS, "method": "MAP"}).get_json()
    assert set(body["probabilities"]) == set(fitted.item_ids)
    assert body["ability"]["method"] == "MAP"
    assert all(0.0 <= p <= 1.0 for p in body["probabilities"].values())


def test_first_attempt_counts_by_answered_at(client) -> None:
    later_wrong_first = [
        {"item_id": "q1", "correct": True, "answered_at": "2026-01-02T00:00:00Z"},
        {"item_id": "q1", "correct": False, "answered_at": "2026-01-01T00:00:00Z"},
    ]
    only_wrong = [{"item_id": "q1", "correct": False}]
    a = client.post("/", json={"responses": later_wrong_first, "items": ["q2"]}).get_json()
    b = client.post("/", json={"responses": only_wrong, "items": ["q2"]}).get_json()
    assert a["ability"] == b["ability"]
    assert a["ability"]["n_answers"] == 1


def test_batch_keeps_order_and_ids(client) -> None:
    body = client.post("/", json={"students": [
        {"student_id": "s-1", "responses": ANSWERS, "items": ["q3"]},
        {"student_id": "s-2", "responses": [], "items": ["q3"]},
        {"responses": ANSWERS[:2]}]}).get_json()
    results = body["results"]
    assert [r["student_id"] for r in results] == ["s-1", "s-2", None]
    assert results[1]["ability"]["theta"] == 0.0 and results[1]["ability"]["se"] == 1.0
    assert len(results[2]["probabilities"]) == 40


def test_next_items_strategies(client, fitted: ItemModel) -> None:
    answered = {a["item_id"] for a in ANSWERS}
    info = client.post("/next-items", json={"responses": ANSWERS, "k": 5}).get_json()
    got = [i["item_id"] for i in info["items"]]
    assert len(got) == 5 and not answered & set(got)
    infos = [i["information"] for i in info["items"]]
    assert infos == sorted(infos, reverse=True)
    theta = info["ability"]["theta"]
    rest = [j for j in range(fitted.n_items) if fitted.item_ids[j] not in answered]
    best = max(fitted.information_by_position(theta, np.array(rest)))
    assert infos[0] == pytest.approx(best, abs=1e-6)
    target = client.post("/next-items", json={
        "responses": ANSWERS, "k": 3, "strategy": "target_probability", "target": 0.7}).get_json()
    gaps = [abs(i["probability"] - 0.7) for i in target["items"]]
    probs = fitted.probability_by_position(theta, np.array(rest))
    assert gaps[0] == pytest.approx(np.min(np.abs(probs - 0.7)), abs=1e-6)
    limited = client.post("/next-items", json={
        "responses": ANSWERS, "k": 10, "candidates": ["q30", "q31", "q1", "what"]}).get_json()
    assert {i["item_id"] for i in limited["items"]} == {"q30", "q31"}
    assert limited["unknown_items"] == ["what"]


def test_next_items_information_of_a_3pl_is_birnbaums_as_the_contract_says(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fitted: ItemModel) -> None:
    """A 3PL's information is Birnbaum's ``a^2 (Q/P) ((P - c)/(1 - c))^2``, not ``a^2 P Q``:
    /next-items serves it, and docs/predict-openapi.yaml says so (its ``information`` gave
    ``a^2 p (1 - p)`` for every model)."""
    from dataclasses import replace

    import yaml

    from irt.engine.model import item_information

    guessing = replace(fitted, model_type="3pl", c=np.full(fitted.n_items, 0.2),
                       _index=None, _cache={})
    publish(tmp_path, "v3", guessing.to_json())
    body = make_client(monkeypatch, tmp_path).post(
        "/next-items", json={"responses": ANSWERS, "k": 5}).get_json()
    theta = body["ability"]["theta"]
    for row in body["items"]:
        j = guessing.item_ids.index(row["item_id"])
        want = item_information(np.array(theta), guessing.a[j], guessing.b[j], 0.2)
        assert row["information"] == pytest.approx(float(want), abs=1e-6)
        p = row["probability"]
        assert row["information"] != pytest.approx(guessing.a[j] ** 2 * p * (1 - p), abs=1e-3)
    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs"
                           / "predict-openapi.yaml").read_text())
    text = spec["components"]["schemas"]["NextItemsResponse"]["properties"]["items"]["items"][
        "properties"]["information"]["description"]
    assert "((p - c) / (1 - c))^2" in text and "3PL" in text


def test_model_metadata_and_health(client, fitted: ItemModel) -> None:
    meta = client.get("/model").get_json()
    assert meta["model_version"] == "v1"
    assert meta["model_type"] == "2pl" and meta["n_items"] == fitted.n_items
    assert meta["created_at"] == fitted.created_at
    assert meta["fit"]["converged"] is True
    assert client.get("/healthz").get_json() == {"status": "ok", "model_version": "v1"}


@pytest.mark.parametrize(("body", "field"), [
    ({"responses": [{"item_id": "q1", "correct": 2}]}, "responses[0].correct"),
    ({"responses": [{"item_id": "q1", "correct": "true"}]}, "responses[0].correct"),
    ({"responses": [{"item_id": "", "correct": 1}]}, "responses[0].item_id"),
    ({"responses": [{"item_id": 7.0, "correct": 1}]}, "responses[0].item_id"),
    ({"responses": [{"item_id": True, "correct": 1}]}, "responses[0].item_id"),
    ({"responses": [{"item_id": 1 << 63, "correct": 1}]}, "responses[0].item_id"),
    ({"responses": [{"correct": 1}]}, "responses[0].item_id"),
    ({"responses": [{"item_id": "q1", "correct": 1, "extra": 1}]}, "responses[0].extra"),
    ({"responses": [{"item_id": "q1", "correct": 1, "answered_at": "yesterday"}]},
     "responses[0].answered_at"),
    ({"responses": "q1"}, "responses"),
    ({"items": ["q1"]}, "responses"),
    ({"responses": [], "items": ["q1", None]}, "items[1]"),
    ({"responses": [], "method": "MLE"}, "method"),
    ({"responses": [], "student_id": "x"}, "student_id"),
    ({"students": []}, "students"),
    ({"students": [{"responses": [], "items": "q1"}]}, "students[0].items"),
    ({"students": [{"student_id": "", "responses": []}]}, "students[0].student_id"),
    ({"students": [{"responses": []}], "responses": []}, "responses"),
    ([], "body"),
])
def test_bad_input_is_a_400_naming_the_field(client, body, field: str) -> None:
    r = client.post("/", json=body)
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert error["field"] == field
    assert error["message"]


@pytest.mark.parametrize(("body", "field"), [
    ({"responses": [], "k": 0}, "k"),
    ({"responses": [], "k": 2.5}, "k"),
    ({"responses": [], "strategy": "random"}, "strategy"),
    ({"responses": [], "strategy": "target_probability", "target": 1.0}, "target"),
    ({"responses": [], "target": 0.6}, "target"),
    ({"responses": [], "candidates": [1.5]}, "candidates[0]"),
])
def test_bad_next_items_requests(client, body, field: str) -> None:
    r = client.post("/next-items", json=body)
    assert r.status_code == 400
    assert r.get_json()["error"]["field"] == field


@pytest.mark.parametrize("raw", [b"{", b"", b"   ", b'{"responses": [], "x": NaN}',
                                 b'{"responses": [], "responses": []}', b"[" * 50_000,
                                 b"\xff\xfe",
                                 b'{"responses": [{"item_id": "q1", "correct": 1, "correct": 0}]}',
                                 b'{"responses": [], "\\u0072esponses": []}'])
def test_malformed_json_is_a_400(client, raw: bytes) -> None:
    r = client.post("/", data=raw, content_type="application/json")
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == "invalid_json"


def test_integers_beyond_64_bits_stay_integers(client) -> None:
    """A huge ``k`` is over the cap (413), not a non-integer (400): big integers are read as
    integers, whichever parser reads the body."""
    r = client.post("/next-items", data=b'{"responses": [], "k": 100000000000000000000}',
                    content_type="application/json")
    assert r.status_code == 413 and r.get_json()["error"]["field"] == "k"


def test_wrong_content_type_method_and_path(client) -> None:
    r = client.post("/", data="x", content_type="text/plain")
    assert r.status_code == 415 and r.get_json()["error"]["field"] == "Content-Type"
    r = client.get("/predict")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = client.post("/model", json={})
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    r = client.head("/predict")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"


def test_head_is_answered_where_get_is_with_the_same_headers_and_no_body(client) -> None:
    """HTTP requires HEAD wherever GET is (RFC 9110, 9.1): a monitor or proxy that probes
    with HEAD gets GET's status and headers, without the body."""
    for path in ("/model", "/healthz", "/healthz/"):
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.data == b"" and got.data, path
        assert head.headers["Content-Type"] == got.headers["Content-Type"] == "application/json"
        assert head.headers["Content-Length"] == got.headers["Content-Length"], path
        assert head.headers["X-Request-Id"] and head.headers["X-Request-Id"] != \
            got.headers["X-Request-Id"]


def test_a_path_the_router_cannot_match_gets_the_same_json_404(client, capsys) -> None:
    """A newline in the path: Flask's router answers before predict() runs; predict's 404
    handler makes it the JSON error and one request log line without the path."""
    capsys.readouterr()
    r = client.post("/SID-7%0Asecret", json={})
    assert r.status_code == 404 and r.mimetype == "application/json"
    assert r.get_json()["error"] == {"code": "not_found", "field": "path", "message": (
        "unknown path; use one of /, /healthz, /model, /next-items, /predict")}
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    logged = [x for x in lines if x.get("message") == "request"]
    assert len(logged) == 1 and logged[0]["path"] == "<unknown path>"
    assert logged[0]["status"] == 404 and logged[0]["method"] == "POST"
    assert "SID-7" not in json.dumps(lines)


def test_size_caps_are_413(monkeypatch, model_dir: Path) -> None:
    c = make_client(monkeypatch, model_dir, MAX_BODY_BYTES="2000", MAX_RESPONSES="5",
                    MAX_ITEMS="3", MAX_STUDENTS="2", MAX_K="4")
    cases = [
        ({"responses": ANSWERS[:6]}, "responses"),
        ({"responses": [], "items": ["q1", "q2", "q3", "q4"]}, "items"),
        ({"students": [{"responses": []}] * 3}, "students"),
        ({"students": [{"responses": ANSWERS[:6]}]}, "students[0].responses"),
    ]
    for body, field in cases:
        r = c.post("/", json=body)
        assert r.status_code == 413, body
        assert r.get_json()["error"] == {"code": "too_large", "message": pytest.approx(
            r.get_json()["error"]["message"]), "field": field}
    assert c.post("/next-items", json={"responses": [], "k": 5}).status_code == 413
    big = json.dumps({"responses": [], "items": ["x" * 100] * 30})
    r = c.post("/", data=big, content_type="application/json")
    assert r.status_code == 413 and r.get_json()["error"]["field"] == "body"


def test_probabilities_per_response_are_capped(monkeypatch, model_dir: Path,
                                               fitted: ItemModel) -> None:
    """Issue 17 item 3: a student without ``items`` asks for every item of the model; a
    response of more than ``MAX_PROBABILITIES`` probabilities is a 413 naming ``students``
    (batch) or ``items`` (one student), on the fast path and the detailed one alike."""
    n = fitted.n_items  # 40
    c = make_client(monkeypatch, model_dir, MAX_PROBABILITIES=str(2 * n))
    detailed = {"item_id": "q1", "correct": 1, "answered_at": "2026-01-01T00:00:00Z"}
    over = [
        ({"students": [{"responses": []}] * 3}, "students"),  # 3 x 40 > 80
        ({"students": [{"responses": [detailed]}] * 3}, "students"),
        ({"students": [{"responses": []}, {"responses": [], "items": ["q1"] * (n + 1)}]},
         "students"),
        ({"students": [{"responses": []}] * 3, "item_skills": {}}, "students"),
    ]
    for body, field in over:
        r = c.post("/", json=body)
        assert r.status_code == 413, (body, r.get_json())
        error = r.get_json()["error"]
        assert (error["code"], error["field"]) == ("too_large", field)
        assert str(2 * n) in error["message"] and "items" in error["message"]
    ok = [{"students": [{"responses": []}] * 2},
          {"students": [{"responses": [], "items": ["q1"]}] * 80},
          {"responses": [detailed]}]
    for body in ok:
        assert c.post("/", json=body).status_code == 200, body
    single = make_client(monkeypatch, model_dir, MAX_PROBABILITIES=str(n - 1))
    for body in ({"responses": []}, {"responses": [detailed]}):
        r = single.post("/", json=body)
        assert r.status_code == 413 and r.get_json()["error"]["field"] == "items"
    assert single.post("/", json={"responses": [], "items": ["q1"]}).status_code == 200


def test_no_model_is_503_then_recovers_without_restart(monkeypatch, tmp_path: Path,
                                                        fitted: ItemModel) -> None:
    c = make_client(monkeypatch, tmp_path, MODEL_RETRY_SECONDS="0.2")
    r = c.post("/", json={"responses": []})
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"
    assert r.get_json()["error"]["code"] == "model_unavailable"
    assert c.get("/healthz").status_code == 503
    publish(tmp_path, "v7", fitted.to_json())
    wait_for(c, "v7")
    r = c.post("/", json={"responses": []})
    assert r.status_code == 200 and r.get_json()["model_version"] == "v7"


def test_hot_refresh_swaps_and_corrupt_model_keeps_the_old(monkeypatch, model_dir: Path,
                                                           fitted: ItemModel, capsys) -> None:
    c = make_client(monkeypatch, model_dir, MODEL_REFRESH_SECONDS="0.2")
    assert c.get("/model").get_json()["model_version"] == "v1"
    # A new version with different parameters is picked up after the refresh interval.
    doc = json.loads(fitted.to_json())
    for spec in doc["items"].values():
        spec["b"] += 1.0
    publish(model_dir, "v2", json.dumps(doc))
    before = c.post("/", json={"responses": [], "items": ["q0"]}).get_json()
    assert before["model_version"] == "v1"  # not due yet
    wait_for(c, "v2")
    after = c.post("/", json={"responses": [], "items": ["q0"]}).get_json()
    assert after["model_version"] == "v2"
    assert after["probabilities"]["q0"] < before["probabilities"]["q0"]
    # Truncated JSON, then a schema violation: both rejected, v2 keeps serving.
    capsys.readouterr()
    out = ""
    for version, text in (("v3", fitted.to_json()[:200]),
                          ("v4", fitted.to_json().replace('"a": ', '"a": -', 1))):
        publish(model_dir, version, text)
        deadline = time.monotonic() + 5
        while f'"model_version": "{version}"' not in out and time.monotonic() < deadline:
            r = c.post("/", json={"responses": [], "items": ["q0"]})
            assert r.status_code == 200
            assert r.get_json()["model_version"] == "v2"
            time.sleep(0.05)
            out += capsys.readouterr().out
    logs = [json.loads(line) for line in out.splitlines() if line]
    rejected = [e for e in logs if e["message"].startswith("model rejected")]
    assert {e["model_version"] for e in rejected} == {"v3", "v4"}
    assert all(e["severity"] == "ERROR" for e in rejected)


def test_model_over_the_size_caps_is_rejected_and_the_old_keeps_serving(
        monkeypatch, model_dir: Path, fitted: ItemModel, capsys) -> None:
    """Issue 17 item 4: a model over ``MAX_MODEL_ITEMS`` items or ``MAX_MODEL_BYTES`` bytes
    is rejected like an invalid one (ERROR ``model rejected`` naming the cap), the old one
    keeps serving (a 1M-item model used to load and peak at 5.9 GiB)."""
    text = fitted.to_json()
    c = make_client(monkeypatch, model_dir, MODEL_REFRESH_SECONDS="0.1",
                    MAX_MODEL_ITEMS=str(fitted.n_items), MAX_MODEL_BYTES=str(len(text) + 100))
    assert c.get("/model").get_json()["model_version"] == "v1"
    doc = json.loads(text)
    doc["items"]["extra"] = dict(doc["items"]["q0"])  # one item too many
    small = json.dumps(doc, separators=(",", ":"))
    assert len(small) < len(text)
    capsys.readouterr()
    out = ""
    for version, body in (("v2", small), ("v3", text + " " * 200)):
        publish(model_dir, version, body)
        deadline = time.monotonic() + 5
        while f'"model_version": "{version}"' not in out and time.monotonic() < deadline:
            assert c.get("/model").get_json()["model_version"] == "v1"
            time.sleep(0.05)
            out += capsys.readouterr().out
    logs = [json.loads(line) for line in out.splitlines() if line]
    rejected = {e["model_version"]: e for e in logs if e["message"].startswith("model rejected")}
    assert set(rejected) == {"v2", "v3"}
    assert all(e["severity"] == "ERROR" for e in rejected.values())
    assert "MAX_MODEL_ITEMS" in rejected["v2"]["error"]
    assert "MAX_MODEL_BYTES" in rejected["v3"]["error"]


def test_logs_are_structured_and_carry_no_student_ids(client, capsys) -> None:
    capsys.readouterr()
    secret = "student-4f9a2c"
    client.post("/", json={"students": [{"student_id": secret, "responses": ANSWERS}]})
    client.post("/", json={"students": [{"student_id": secret, "responses": [{"x": 1}]}]})
    client.post("/", json={"responses": [], secret: 1})  # a key chosen by the caller
    client.post("/", json={"responses": [{"item_id": secret, "correct": 1}]})
    out = capsys.readouterr().out
    assert secret not in out
    entries = [json.loads(line) for line in out.splitlines() if line]
    requests = [e for e in entries if e["message"] == "request"]
    assert [e["status"] for e in requests] == [200, 400, 400, 200]
    for e in requests:
        assert e["severity"] in {"INFO", "WARNING"}
        assert e["model_version"] == "v1"
        assert e["latency_ms"] >= 0


def test_batch_answers_equal_single_answers(client) -> None:
    """The vectorised batch path (and its fast validation) gives each student the answer the
    single-student path gives, including unknown ids, repeated items and omitted items."""
    students = [
        {"student_id": "a", "responses": ANSWERS, "items": ["q3", "q30", "zz"]},
        {"student_id": "b", "responses": [*ANSWERS[:3], {"item_id": "q1", "correct": False},
                                          {"item_id": "new", "correct": 1}],
         "items": ["q5", "q5", "q6"]},
        {"responses": [{"item_id": "q2", "correct": 0}]},
        {"student_id": "d", "responses": [], "items": []},
    ]
    batch = client.post("/", json={"students": students}).get_json()["results"]
    for student, got in zip(students, batch, strict=True):
        single = client.post("/", json={k: v for k, v in student.items()
                                        if k != "student_id"}).get_json()
        assert got["student_id"] == student.get("student_id")
        assert got["ability"] == pytest.approx(single["ability"], abs=2e-6)
        assert got["probabilities"].keys() == single["probabilities"].keys()
        for item, p in single["probabilities"].items():
            assert got["probabilities"][item] == pytest.approx(p, abs=2e-6)
        assert got["unknown_items"] == single["unknown_items"]
    bad = client.post("/", json={"students": [{"responses": ANSWERS},
                                              {"responses": [{"item_id": " ", "correct": 1}]}]})
    assert bad.status_code == 400
    assert bad.get_json()["error"]["field"] == "students[1].responses[0].item_id"


def test_unknown_ids_are_listed_once_in_first_seen_order(client) -> None:
    # Each id once, where it was first seen (answers first, then requested items, candidates,
    # exclusions); the lists are built with dict.fromkeys, not by scanning the list per id
    # (which made 29 students x 5,000 unknown ids cost seconds).
    answers = [{"item_id": "u1", "correct": True}, {"item_id": "q0", "correct": False}]
    items = ["u2", "q1", "u1", "u2", "u3", "q1"]
    single = client.post("/predict", json={"responses": answers, "items": items}).get_json()
    assert single["unknown_items"] == ["u1", "u2", "u3"]
    assert list(single["probabilities"]) == ["q1"]
    batch = client.post("/predict", json={"students": [
        {"student_id": "a", "responses": answers, "items": items},
        {"student_id": "b", "responses": [], "items": ["u3", "u3", "u4"]}]}).get_json()
    assert [r["unknown_items"] for r in batch["results"]] == [["u1", "u2", "u3"], ["u3", "u4"]]
    nxt = client.post("/next-items", json={"responses": answers, "k": 2,
                                           "candidates": ["u5", "q2", "u1", "q3", "u5"],
                                           "exclude": ["u6", "u5", "u6"]}).get_json()
    assert nxt["unknown_items"] == ["u1", "u5", "u6"]
    many = [f"x{k}" for k in range(4990)]  # with 10 repeats: MAX_ITEMS (5,000)
    big = client.post("/predict", json={"responses": [], "items": many + many[:10]}).get_json()
    assert big["unknown_items"] == many
