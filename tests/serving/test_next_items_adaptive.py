"""``/next-items`` adaptive controls through the functions-framework test client: exclude,
randomesque with a seed, Sympson-Hetter exposure control with the model's parameters, skill
caps and shares over the model's ``skills`` section, the stop recommendation, and the 4xx
errors naming each new field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cat_sessions import bank
from predict_app import make_client, publish

from irt.engine.exposure import admitted
from irt.engine.model import ItemModel


@pytest.fixture(scope="module")
def model() -> ItemModel:
    return bank(n_items=60)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model: ItemModel):
    publish(tmp_path, "cat-1", model.to_json())
    return make_client(monkeypatch, tmp_path)


ANSWERS = [{"item_id": f"q{j}", "correct": j % 3 != 0} for j in range(0, 12, 2)]


def _next(client, **body) -> dict:
    r = client.post("/next-items", json={"responses": ANSWERS, **body})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def _ids(answer: dict) -> list[str]:
    return [i["item_id"] for i in answer["items"]]


def test_without_controls_the_answer_keeps_its_shape(client) -> None:
    body = _next(client, k=3)
    assert set(body) == {"model_version", "ability", "strategy", "items", "unknown_items"}


def test_exclude_is_honoured_and_unknown_excludes_are_listed(client) -> None:
    best = _ids(_next(client, k=4))
    body = _next(client, k=10, exclude=[*best[:2], "nope"])
    assert not set(_ids(body)) & set(best[:2])
    assert _ids(body)[:2] == best[2:4]
    assert body["unknown_items"] == ["nope"]


def test_randomesque_with_a_seed_is_reproducible(client) -> None:
    first = _ids(_next(client, k=4, randomesque=10, seed=42))
    assert first == _ids(_next(client, k=4, randomesque=10, seed=42))
    seeds = {tuple(_ids(_next(client, k=4, randomesque=10, seed=s))) for s in range(12)}
    assert len(seeds) > 3
    best = set(_ids(_next(client, k=13)))
    assert all(set(s) <= best for s in seeds)


def test_skill_caps_and_shares_use_the_models_skill_map(client, model: ItemModel) -> None:
    skill = model.skills["item_skills"]
    answered = [skill[a["item_id"]] for a in ANSWERS]  # k0, k2, k0, k2, k0, k2
    body = _next(client, k=12, skill_caps={"k0": 4, "k1": 0, "unknown-skill": 1})
    got = [skill[i] for i in _ids(body)]
    assert got.count("k0") == 4 - answered.count("k0") and "k1" not in got
    assert len(got) == 12
    got = [skill[i] for i in _ids(_next(client, k=6, skill_shares={"k1": 0.5, "k3": 0.5}))]
    assert sorted(got) == ["k1"] * 3 + ["k3"] * 3


def test_stop_flips_at_the_se_target_and_at_max_items(client) -> None:
    se = _next(client)["ability"]["se"]
    assert _next(client, stop={"se": se - 1e-4})["stop"] == {"recommended": False,
                                                            "reasons": []}
    assert _next(client, stop={"se": se + 1e-4})["stop"] == {"recommended": True,
                                                            "reasons": ["se"]}
    assert _next(client, stop={"max_items": len(ANSWERS)})["stop"]["reasons"] == ["max_items"]
    assert _next(client, stop={"max_items": len(ANSWERS) + 1})["stop"]["recommended"] is False
    # more answers bring the SE below a target it was above
    more = [{"item_id": f"q{j}", "correct": j % 2 == 0} for j in range(40)]
    r = client.post("/next-items", json={"responses": more, "stop": {"se": se * 0.8}})
    assert r.get_json()["ability"]["se"] <= se * 0.8 and r.get_json()["stop"]["recommended"]
    done = _next(client, candidates=["q0"], stop={"se": 0.01})
    assert done["items"] == [] and done["stop"]["reasons"] == ["no_items"]


@pytest.mark.parametrize(("body", "field", "status"), [
    ({"exclude": "q1"}, "exclude", 400),
    ({"exclude": [1.5]}, "exclude[0]", 400),
    ({"randomesque": 0}, "randomesque", 400),
    ({"randomesque": True}, "randomesque", 400),
    ({"randomesque": 101}, "randomesque", 413),
    ({"seed": -1}, "seed", 400),
    ({"seed": 2**64}, "seed", 400),
    ({"seed": "7"}, "seed", 400),
    ({"skill_caps": []}, "skill_caps", 400),
    ({"skill_caps": {}}, "skill_caps", 400),
    ({"skill_caps": {"k0": -1}}, "skill_caps.k0", 400),
    ({"skill_caps": {"k0": 1.5}}, "skill_caps.k0", 400),
    ({"skill_shares": {"k0": 1000.5}}, "skill_shares.k0", 400),
    ({"skill_shares": {"k0": 0.5, "k1": -0.5}}, "skill_shares.k1", 400),
    ({"skill_shares": {"k0": "half", "k1": 0.5}}, "skill_shares.k0", 400),
    ({"stop": 0.3}, "stop", 400),
    ({"stop": {}}, "stop", 400),
    ({"stop": {"se": 0}}, "stop.se", 400),
    ({"stop": {"se": "0.3"}}, "stop.se", 400),
    ({"stop": {"max_items": 0}}, "stop.max_items", 400),
    ({"stop": {"items": 3}}, "stop.items", 400),
    ({"exposure": "sympson-hetter"}, "exposure", 400),
    ({"exposure": {}}, "exposure.method", 400),
    ({"exposure": {"method": "sh"}}, "exposure.method", 400),
    ({"exposure": {"method": "none", "r_max": 0.2}}, "exposure.r_max", 400),
])
def test_bad_adaptive_fields_name_the_field_and_rule(client, body, field: str,
                                                     status: int) -> None:
    r = client.post("/next-items", json={"responses": ANSWERS, **body})
    assert r.status_code == status
    error = r.get_json()["error"]
    assert error["field"] == field and error["message"]


def test_skills_the_model_does_not_know_are_listed_not_refused(
        monkeypatch, tmp_path: Path, model: ItemModel) -> None:
    doc = model.to_dict()
    doc.pop("skills")
    publish(tmp_path, "plain-1", json.dumps(doc))
    client = make_client(monkeypatch, tmp_path)
    plain = _next(client, k=5)
    for name, value in (("skill_caps", {"k0": 0}), ("skill_shares", {"k0": 1, " ": 2})):
        body = _next(client, k=5, **{name: value})
        assert sorted(body["unknown_skills"]) == sorted(value)
        assert body["items"] == plain["items"]  # no map: no balancing


def test_shares_are_normalised_weights_over_the_known_skills(client, model: ItemModel
                                                             ) -> None:
    skill = model.skills["item_skills"]
    body = _next(client, k=8, skill_shares={"k1": 3, "k3": 1, "nope": 5})
    got = [skill[i] for i in _ids(body)]
    assert (got.count("k1"), got.count("k3")) == (6, 2)
    assert body["unknown_skills"] == ["nope"]
    assert _next(client, k=3, skill_shares={"k1": 0})["items"] == []


def _sympson_hetter_client(monkeypatch, tmp_path: Path, model: ItemModel, k: np.ndarray):
    doc = model.to_dict()
    doc["exposure"] = {"method": "sympson-hetter", "r_max": 0.25,
                       "parameters": dict(zip(model.item_ids, k.tolist(), strict=True))}
    publish(tmp_path, "sh-1", json.dumps(doc))
    return make_client(monkeypatch, tmp_path)


def test_sympson_hetter_passes_over_the_items_that_fail_their_draw(
        monkeypatch, tmp_path: Path, model: ItemModel, client) -> None:
    # the plain ranking at the student's ability, from the server without exposure control
    ranking = _ids(_next(client, k=60))  # the 54 unanswered items, best first
    assert len(ranking) == 54
    k = np.ones(model.n_items)
    index = {q: j for j, q in enumerate(model.item_ids)}
    for q in ranking[:2]:
        k[index[q]] = 0.0  # never given
    for q in ranking[2:12]:
        k[index[q]] = 0.5
    client = _sympson_hetter_client(monkeypatch, tmp_path / "sh", model, k)
    sh = {"method": "sympson-hetter"}
    assert client.get("/model").get_json()["exposure"] == {"method": "sympson-hetter",
                                                           "r_max": 0.25}
    first = _next(client, k=5, exposure=sh, seed=11)
    assert first["exposure"] == {"method": "sympson-hetter", "applied": True}
    assert _ids(first) == _ids(_next(client, k=5, exposure=sh, seed=11))  # reproducible
    picks = [_ids(_next(client, k=5, exposure=sh, seed=s)) for s in range(30)]
    assert all(not set(p) & set(ranking[:2]) for p in picks)
    assert len({tuple(p) for p in picks}) > 5
    for seed, p in enumerate(picks):  # the best items that passed, in ranking order
        passed = admitted(k, np.array([index[q] for q in ranking]), seed)
        assert p == [q for q, ok in zip(ranking, passed, strict=True) if ok][:5]
    # a session that keeps its seed never sees an item it failed, as answers come in
    answers = list(ANSWERS)
    failed = [q for q, ok in zip(ranking, admitted(k, np.array([index[q] for q in ranking]),
                                                    5), strict=True) if not ok]
    for _ in range(8):
        body = client.post("/next-items", json={"responses": answers, "exposure": sh,
                                                "seed": 5}).get_json()
        assert _ids(body)[0] not in failed
        answers.append({"item_id": _ids(body)[0], "correct": len(answers) % 2 == 0})
    # "none", or no exposure field: the plain ranking
    assert _ids(_next(client, k=5, exposure={"method": "none"})) == ranking[:5]
    assert _next(client, k=5, exposure={"method": "none"})["exposure"] == {
        "method": "none", "applied": True}
    assert "exposure" not in _next(client, k=5)


def test_sympson_hetter_without_parameters_is_answered_unfiltered_and_says_so(client) -> None:
    assert "exposure" not in client.get("/model").get_json()
    body = _next(client, k=5, exposure={"method": "sympson-hetter"}, seed=3)
    assert body["exposure"] == {"method": "sympson-hetter", "applied": False}
    assert body["items"] == _next(client, k=5)["items"]
