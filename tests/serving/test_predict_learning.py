"""``predict`` serving a learning-aware model (irt.serving.learning) through the
functions-framework test client: the same contract, learning-aware answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from learning_sim import simulate_learning
from predict_app import make_client, publish

from irt.engine.calibrate import FitConfig, Priors, fit
from irt.engine.learning import learning_of, predict_one, probabilities, student_posterior
from irt.engine.learning_fit import LearningConfig, fit_learning
from irt.engine.model import ItemModel


@pytest.fixture(scope="module")
def learned() -> ItemModel:
    sim = simulate_learning(300, 24, 3, tau=0.8, beta=np.array([0.3, -0.2, 0.2, -0.2, 0.3]),
                            seed=21)
    base = fit(sim.responses, FitConfig(priors=Priors((0, 0.5), (0, 2)), compute_se=False,
                                        min_answers_per_item=1)).model
    return fit_learning(base, sim.responses, sim.order, sim.item_skill, sim.skill_ids,
                        LearningConfig(options=("recency", "skills", "pfa"))).model


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, learned: ItemModel):
    publish(tmp_path, "learn-1", learned.to_json())
    return make_client(monkeypatch, tmp_path)


HISTORY = [("q0", True), ("q3", False), ("q1", True), ("q6", True), ("q4", False)]


def test_predict_answers_with_the_learning_aware_model(client, learned: ItemModel) -> None:
    answers = [{"item_id": i, "correct": y} for i, y in HISTORY]
    r = client.post("/predict", json={"responses": [*answers, {"item_id": "zz", "correct": 1}],
                                      "items": ["q2", "q5", "q9", "nope"]})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["model_version"] == "learn-1"
    assert set(body) == {"model_version", "ability", "probabilities", "unknown_items"}
    assert body["unknown_items"] == ["zz", "nope"]
    spec = learning_of(learned)
    pos = learned.positions([i for i, _ in HISTORY])
    y = np.array([int(v) for _, v in HISTORY])
    post = student_posterior(learned, spec, pos, y)
    want = probabilities(learned, spec, post, learned.positions(["q2", "q5", "q9"]))
    assert body["ability"] == {"theta": round(post.theta, 6), "se": round(post.se, 6),
                               "method": "EAP", "n_answers": 5}
    assert list(body["probabilities"]) == ["q2", "q5", "q9"]
    np.testing.assert_allclose(list(body["probabilities"].values()), want, atol=1e-6)
    # learning-aware: the order of the answers matters (recency, covariates)
    flipped = client.post("/", json={"responses": answers[::-1], "items": ["q2"]}).get_json()
    assert flipped["probabilities"]["q2"] != body["probabilities"]["q2"]


def test_model_metadata_names_the_options_and_the_calibration(monkeypatch, tmp_path: Path,
                                                             learned: ItemModel) -> None:
    """GET /model says which learning-aware options the serving model has, with its
    calibration when it has one, in the documented shape (docs/predict-openapi.yaml)."""
    import yaml
    from openapi_schema_validator import OAS30Validator

    from irt.engine.learning_fit import with_calibration

    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs"
                           / "predict-openapi.yaml").read_text())
    schema = {**spec["components"]["schemas"]["ModelMetadata"],
              "components": spec["components"]}
    publish(tmp_path, "learn-2", with_calibration(learned, (0.1, 0.8)).to_json())
    body = make_client(monkeypatch, tmp_path).get("/model").get_json()
    OAS30Validator(schema).validate(body)
    assert body["learning"]["options"] == ["recency", "skills", "pfa"]
    assert body["learning"]["calibration"] == {"intercept": 0.1, "slope": 0.8}
    assert body["learning"]["n_skills"] == 3 and body["learning"]["window"] == 10


def test_answered_at_orders_the_answers_and_first_attempts_count(client) -> None:
    timed = [{"item_id": i, "correct": y, "answered_at": f"2026-11-28T10:0{9 - k}:00Z"}
             for k, (i, y) in enumerate(HISTORY)]
    retry = {"item_id": "q0", "correct": False, "answered_at": "2026-11-28T11:00:00Z"}
    got = client.post("/", json={"responses": [*timed, retry], "items": ["q2"]}).get_json()
    want = client.post("/", json={"responses": [{"item_id": i, "correct": y}
                                                for i, y in HISTORY[::-1]],
                                  "items": ["q2"]}).get_json()
    assert got["probabilities"] == want["probabilities"]
    assert got["ability"] == want["ability"]


def test_batch_answers_as_single_requests_and_map(client) -> None:
    students = [{"student_id": "a", "responses": [{"item_id": i, "correct": y}
                                                  for i, y in HISTORY], "items": ["q7"]},
                {"student_id": "b", "responses": [], "items": ["q7", "q8"]}]
    batch = client.post("/predict", json={"students": students, "method": "MAP"}).get_json()
    assert [r["student_id"] for r in batch["results"]] == ["a", "b"]
    for res, student in zip(batch["results"], students, strict=True):
        single = client.post("/predict", json={"responses": student["responses"],
                                               "items": student["items"],
                                               "method": "MAP"}).get_json()
        assert res["ability"] == single["ability"] and res["ability"]["method"] == "MAP"
        assert res["probabilities"] == single["probabilities"]
    empty = batch["results"][1]["ability"]
    assert empty["theta"] == 0.0 and empty["n_answers"] == 0


def test_every_item_when_items_is_omitted(client, learned: ItemModel) -> None:
    body = client.post("/", json={"responses": [{"item_id": "q0", "correct": 1}]}).get_json()
    assert list(body["probabilities"]) == list(learned.item_ids)
    want = predict_one(learned, ["q0"], [1], None)
    assert body["probabilities"] == want["probabilities"]


def test_next_items_rank_by_learning_aware_probabilities(client, learned: ItemModel) -> None:
    answers = [{"item_id": i, "correct": y} for i, y in HISTORY]
    body = client.post("/next-items", json={"responses": answers, "k": 4,
                                            "strategy": "target_probability",
                                            "target": 0.6}).get_json()
    chosen = [i["item_id"] for i in body["items"]]
    assert len(chosen) == 4 and not set(chosen) & {i for i, _ in HISTORY}
    one = predict_one(learned, [i for i, _ in HISTORY], [int(y) for _, y in HISTORY], None)
    probs = {i: p for i, p in one["probabilities"].items() if i not in dict(HISTORY)}
    gaps = sorted(abs(p - 0.6) for p in probs.values())
    assert [abs(i["probability"] - 0.6) for i in body["items"]] == pytest.approx(gaps[:4],
                                                                                 abs=1e-6)
    info = client.post("/next-items", json={"responses": answers, "k": 2,
                                            "candidates": ["q10", "q11", "q12", "x"]})
    assert info.status_code == 200 and info.get_json()["unknown_items"] == ["x"]


def test_invalid_requests_are_refused_as_before(client) -> None:
    r = client.post("/", json={"responses": [{"item_id": "q0", "correct": "yes"}]})
    assert r.status_code == 400
    assert r.get_json()["error"]["field"] == "responses[0].correct"
    r = client.post("/next-items", json={"responses": [], "k": 0})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "k"
    assert client.get("/model").get_json()["model_version"] == "learn-1"


def test_next_items_adaptive_controls_with_the_learning_item_skills(client,
                                                                     learned: ItemModel) -> None:
    """Caps over ``options["learning"]["item_skills"]``, exclude, seeded randomesque and the
    stop recommendation, on the learning-aware ranking."""
    skill = learned.options["learning"]["item_skills"]
    answers = [{"item_id": i, "correct": y} for i, y in HISTORY]
    base = {"responses": answers}
    best = [i["item_id"] for i in client.post("/next-items", json={**base, "k": 6}).get_json()[
        "items"]]
    body = client.post("/next-items", json={**base, "k": 6, "exclude": best[:3]}).get_json()
    assert [i["item_id"] for i in body["items"]][:3] == best[3:6]
    first = skill[best[0]]
    seen = sum(skill.get(i) == first for i, _ in HISTORY)
    r = client.post("/next-items", json={**base, "k": 10, "skill_caps": {first: seen}})
    got = [i["item_id"] for i in r.get_json()["items"]]
    assert len(got) == 10 and all(skill[i] != first for i in got)
    draws = [client.post("/next-items", json={**base, "k": 3, "randomesque": 6, "seed": s}
                         ).get_json()["items"] for s in (1, 1, 2, 3, 4, 5)]
    assert draws[0] == draws[1] and len({tuple(i["item_id"] for i in d) for d in draws}) > 2
    se = body["ability"]["se"]
    for target, flag in ((se + 1e-4, True), (se - 1e-4, False)):
        stop = client.post("/next-items", json={**base, "stop": {"se": target}}).get_json()
        assert stop["stop"]["recommended"] is flag


def test_an_invalid_learning_artifact_is_never_served(monkeypatch, tmp_path: Path,
                                                      learned: ItemModel) -> None:
    doc = json.loads(learned.to_json())  # a copy: to_dict shares the fixture's options
    doc["options"]["learning"]["skill_sd"] = -1.0
    publish(tmp_path, "bad", json.dumps(doc))
    client = make_client(monkeypatch, tmp_path)
    r = client.post("/", json={"responses": []})
    assert r.status_code == 503


def test_the_learning_serving_path_does_not_import_scipy() -> None:
    from fresh_python import loaded_modules

    loaded = loaded_modules("import irt.serving, irt.serving.learning, irt.engine.learning",
                            base_env={}, timeout=60)
    assert "irt.serving.learning" in loaded and "irt.engine.learning" in loaded
    assert "scipy" not in loaded, [m for m in loaded if "scipy" in m]



def test_sympson_hetter_filters_the_learning_aware_ranking(monkeypatch, tmp_path: Path,
                                                          learned: ItemModel) -> None:
    """A learning-aware model with an ``exposure`` section: the items that fail their draw
    are passed over in the learning-aware ranking, reproducibly with the seed."""
    from dataclasses import replace

    from irt.engine.exposure import admitted

    base = {"responses": [{"item_id": i, "correct": y} for i, y in HISTORY]}
    publish(tmp_path, "learn-1", learned.to_json())
    plain = make_client(monkeypatch, tmp_path)
    ranking = [i["item_id"] for i in plain.post("/next-items", json={**base, "k": 19}
                                                ).get_json()["items"]]
    k = np.full(learned.n_items, 0.5)
    k[learned.index[ranking[0]]] = 0.0
    section = {"method": "sympson-hetter", "r_max": 0.3,
               "parameters": dict(zip(learned.item_ids, k.tolist(), strict=True))}
    publish(tmp_path, "learn-2", replace(learned, exposure=section, _cache={}).to_json())
    client = make_client(monkeypatch, tmp_path)
    for seed in range(6):
        body = client.post("/next-items", json={**base, "k": 3, "seed": seed, "exposure": {
            "method": "sympson-hetter"}}).get_json()
        assert body["exposure"] == {"method": "sympson-hetter", "applied": True}
        passed = admitted(k, np.array([learned.index[q] for q in ranking]), seed)
        assert [i["item_id"] for i in body["items"]] == [
            q for q, ok in zip(ranking, passed, strict=True) if ok][:3]
