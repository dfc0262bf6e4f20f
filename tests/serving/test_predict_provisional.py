"""Provisional items in ``predict`` (issue #13) through the functions-framework test client:
an item the model has no parameters for, but whose skill it knows - from its ``skills``
section (items seen below the minimum answers) or from the request's ``item_skills`` - gets
the probability of its skill's typical item and is listed in ``provisional_items``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from learning_sim import simulate_learning
from predict_app import make_client, publish

from irt.engine.ability import eap
from irt.engine.calibrate import FitConfig, fit
from irt.engine.learning import learning_of, skill_probabilities, student_posterior
from irt.engine.learning_fit import LearningConfig, fit_learning
from irt.engine.model import ItemModel, irf, skill_table
from irt.engine.responses import Responses
from irt.engine.simulate import simulate
from irt.serving import plain

SKILLS = ("k0", "k1", "k2", "k3")


@pytest.fixture(scope="module")
def skilled() -> ItemModel:
    """40 items in 4 skills (``q<j>`` in ``k<j % 4>``), plus ``rare-1`` (skill k1) and
    ``rare-2`` (no skill), each answered once: left out below 3 answers."""
    r = simulate(1500, 40, 20, seed=5).responses
    resp = Responses.from_arrays(np.r_[r.student, [0, 1]], np.r_[r.item, [40, 41]],
                                 np.r_[r.correct, [1, 0]].astype(np.int8),
                                 list(r.student_ids), [*r.item_ids, "rare-1", "rare-2"])
    skill = np.r_[np.arange(40) % 4, [1, -1]]
    model = fit(resp, FitConfig(compute_se=False, min_answers_per_item=3), skill, SKILLS).model
    assert model.skills["provisional_items"] == {"rare-1": "k1"}
    return model


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, skilled: ItemModel):
    publish(tmp_path, "v1", skilled.to_json())
    return make_client(monkeypatch, tmp_path, MAX_ITEMS="50")


ANSWERS = [{"item_id": f"q{j}", "correct": j % 3 != 0} for j in range(12)]


def typical(model: ItemModel, skill: str, theta: float) -> float:
    spec = model.skills["parameters"][skill]
    return float(irf(theta, spec["a"], spec["b"], spec["c"]))


def engine_theta(model: ItemModel, answers: list[dict]) -> float:
    known = [a for a in answers if a["item_id"] in model.index]
    return eap(model, model.positions([a["item_id"] for a in known]),
               np.array([int(a["correct"]) for a in known]))[0]


def test_an_item_below_the_minimum_is_served_from_its_skill(client, skilled) -> None:
    r = client.post("/", json={"responses": ANSWERS,
                               "items": ["q20", "rare-1", "nope", "rare-2", "q21"]})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert list(body["probabilities"]) == ["q20", "rare-1", "q21"]  # request order
    assert body["provisional_items"] == ["rare-1"]
    assert body["unknown_items"] == ["nope", "rare-2"]
    theta = engine_theta(skilled, ANSWERS)
    assert body["ability"]["theta"] == pytest.approx(theta, abs=1e-6)
    assert body["probabilities"]["rare-1"] == pytest.approx(typical(skilled, "k1", theta),
                                                            abs=1e-6)
    j = skilled.index["q20"]
    assert body["probabilities"]["q20"] == pytest.approx(
        float(irf(theta, skilled.a[j], skilled.b[j], 0.0)), abs=1e-6)
    # no provisional item: the answer is as before, without the key
    plain_body = client.post("/", json={"responses": ANSWERS, "items": ["q20", "nope"]}
                             ).get_json()
    assert set(plain_body) == {"model_version", "ability", "probabilities", "unknown_items"}


def test_the_request_names_the_skill_of_new_items(client, skilled) -> None:
    body = {"responses": ANSWERS, "items": ["new-1", "new-2", "q3", "rare-1", "new-3"],
            "item_skills": {" new-1 ": " k2 ", "new-2": "no-such-skill", "q3": "k0",
                            "rare-1": "k3", "new-3": "k2", "": "k1"}}
    r = client.post("/predict", json=body)
    assert r.status_code == 200, r.get_json()
    got = r.get_json()
    theta = engine_theta(skilled, ANSWERS)
    assert got["provisional_items"] == ["new-1", "rare-1", "new-3"]
    assert got["unknown_items"] == ["new-2"]  # a skill the model does not know
    assert list(got["probabilities"]) == ["new-1", "q3", "rare-1", "new-3"]
    assert got["probabilities"]["new-1"] == got["probabilities"]["new-3"] == pytest.approx(
        typical(skilled, "k2", theta), abs=1e-6)
    # the model's own map wins: rare-1 is a k1 item whatever the request says
    assert got["probabilities"]["rare-1"] == pytest.approx(typical(skilled, "k1", theta),
                                                           abs=1e-6)
    # a calibrated item keeps its own parameters
    j = skilled.index["q3"]
    assert got["probabilities"]["q3"] == pytest.approx(
        float(irf(theta, skilled.a[j], skilled.b[j], 0.0)), abs=1e-6)
    assert got["probabilities"]["q3"] != pytest.approx(typical(skilled, "k0", theta), abs=1e-3)


def test_answers_to_provisional_items_do_not_count(client) -> None:
    answered = [*ANSWERS, {"item_id": "rare-1", "correct": True},
                {"item_id": "new-1", "correct": False}, {"item_id": "ghost", "correct": True}]
    got = client.post("/", json={"responses": answered, "items": ["q30"],
                                 "item_skills": {"new-1": "k0"}}).get_json()
    want = client.post("/", json={"responses": ANSWERS, "items": ["q30"]}).get_json()
    assert got["ability"] == want["ability"] and got["ability"]["n_answers"] == 12
    assert got["probabilities"] == want["probabilities"]
    assert got["provisional_items"] == ["rare-1", "new-1"]
    assert got["unknown_items"] == ["ghost"]


def test_a_batch_answers_each_student_as_alone(client) -> None:
    named = {"new-1": "k2"}
    students = [{"student_id": "a", "responses": ANSWERS[:6], "items": ["rare-1", "q1"]},
                {"student_id": "b", "responses": ANSWERS[6:], "items": ["new-1", "zz"]},
                {"student_id": "c", "responses": [{"item_id": "rare-1", "correct": 1}]}]
    got = client.post("/", json={"students": students, "item_skills": named}).get_json()
    for student, result in zip(students, got["results"], strict=True):
        alone = {"responses": student["responses"], "item_skills": named}
        if "items" in student:
            alone["items"] = student["items"]
        single = client.post("/", json=alone).get_json()
        assert result["student_id"] == student["student_id"]
        for key in ("ability", "probabilities", "unknown_items"):
            assert result[key] == single[key], key
        assert result.get("provisional_items") == single.get("provisional_items")
    assert [r.get("provisional_items") for r in got["results"]] == [
        ["rare-1"], ["new-1"], ["rare-1"]]
    # without item_skills (the fast batch path) the model's own provisional item still counts
    fast = client.post("/", json={"students": students[:1]}).get_json()
    assert fast["results"][0]["provisional_items"] == ["rare-1"]
    assert fast["results"][0]["probabilities"] == got["results"][0]["probabilities"]


def test_fast_and_detailed_paths_agree(skilled, monkeypatch) -> None:
    from irt.serving import Limits, predict

    body = {"responses": ANSWERS, "items": ["q1", "rare-1", "zz"]}
    fast = predict(skilled, body, Limits(), "v1")
    assert plain._fast_predict(skilled, body, Limits()) is not None
    monkeypatch.setattr(plain, "_fast_predict", lambda *a: None)
    assert predict(skilled, body, Limits(), "v1") == fast
    assert fast["provisional_items"] == ["rare-1"]


@pytest.mark.parametrize("item_skills, status, field", [
    (["new-1"], 400, "item_skills"),
    ("k1", 400, "item_skills"),
    ({"new-1": ""}, 400, "item_skills.new-1"),
    ({"new-1": "   "}, 400, "item_skills.new-1"),
    ({"new-1": 3.5}, 400, "item_skills.new-1"),  # an integer is a skill id, as SQL CASTs it
    ({"new-1": None}, 400, "item_skills.new-1"),
    ({"new-1": "k" * 257}, 400, "item_skills.new-1"),
    ({" new-1": "k1", "new-1": "k2"}, 400, "item_skills.new-1"),  # keys sent sorted
    ({f"n{i}": "k1" for i in range(51)}, 413, "item_skills"),
])
def test_a_bad_item_skills_is_a_4xx_naming_the_field(client, item_skills, status, field
                                                      ) -> None:
    for body in ({"responses": ANSWERS, "item_skills": item_skills},
                 {"students": [{"responses": ANSWERS}], "item_skills": item_skills}):
        r = client.post("/", json=body)
        assert r.status_code == status, r.get_json()
        error = r.get_json()["error"]
        assert error["field"] == field, error
        assert error["code"] == ("too_large" if status == 413 else "invalid_request")


def test_item_skills_null_or_repeated_the_same_is_fine(client) -> None:
    base = client.post("/", json={"responses": ANSWERS, "items": ["q5"]}).get_json()
    same = client.post("/", json={"responses": ANSWERS, "items": ["q5"],
                                  "item_skills": None}).get_json()
    assert same == base
    twice = client.post("/", json={"responses": ANSWERS, "items": ["new-1"],
                                   "item_skills": {"new-1": "k1", "new-1 ": "k1"}})
    assert twice.status_code == 200 and twice.get_json()["provisional_items"] == ["new-1"]


def test_next_items_and_a_model_without_skills_are_unchanged(client, monkeypatch, tmp_path,
                                                             skilled) -> None:
    """``/next-items`` ranks calibrated items only (a provisional candidate is unknown there)
    and takes no ``item_skills``; a model without a skills section lists every item without
    parameters as unknown, whatever the request names."""
    r = client.post("/next-items", json={"responses": ANSWERS, "candidates": ["rare-1", "q30"]})
    assert r.status_code == 200
    assert r.get_json()["unknown_items"] == ["rare-1"]
    r = client.post("/next-items", json={"responses": ANSWERS, "item_skills": {"a": "k1"}})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "item_skills"
    bare = tmp_path / "bare"
    doc = json.loads(skilled.to_json())
    del doc["skills"]
    publish(bare, "v2", json.dumps(doc))
    other = make_client(monkeypatch, bare)
    got = other.post("/", json={"responses": ANSWERS, "items": ["rare-1", "new-1"],
                                "item_skills": {"new-1": "k1"}}).get_json()
    assert got["unknown_items"] == ["rare-1", "new-1"] and "provisional_items" not in got


# --------------------------------------------------------------------------- learning-aware
@pytest.fixture(scope="module")
def learned() -> ItemModel:
    """A learning-aware model ("skills", "pfa") on a log with a skill map, its plain fit with
    the skill prior; ``q0``-``q23`` in skills ``k0``-``k2`` (``q<j>`` in ``k<j % 3>``)."""
    sim = simulate_learning(300, 24, 3, tau=0.8, beta=np.array([0.3, -0.2, 0.2, -0.2, 0.3]),
                            seed=21)
    base = fit(sim.responses, FitConfig(compute_se=False), sim.item_skill, sim.skill_ids)
    assert base.model.fit["skill_prior"] is True
    return fit_learning(base.model, sim.responses, sim.order, sim.item_skill, sim.skill_ids,
                        LearningConfig(options=("skills", "pfa"))).model


def test_learning_model_keeps_a_skills_section_of_its_own_parameters(learned) -> None:
    means = learned.fit["learning"]["skill_difficulty_means"]
    params = learned.skills["parameters"]
    assert set(params) == set(means)
    for skill, spec in params.items():
        assert spec["b"] == pytest.approx(means[skill])
        members = [learned.index[i] for i, k in learned.skills["item_skills"].items()
                   if k == skill]
        assert spec["a"] == pytest.approx(np.exp(np.mean(np.log(learned.a[members]))))


def test_learning_model_serves_provisional_items(monkeypatch, tmp_path, learned) -> None:
    publish(tmp_path, "learn-1", learned.to_json())
    client = make_client(monkeypatch, tmp_path)
    skill_of = learned.skills["item_skills"]
    k = skill_of["q0"]
    mine = [i for i, s in skill_of.items() if s == k][:6]
    answers = [{"item_id": i, "correct": True} for i in mine]
    body = {"responses": answers, "items": ["q1", "new-1", "zz"],
            "item_skills": {"new-1": k}}
    got = client.post("/", json=body).get_json()
    assert got["provisional_items"] == ["new-1"] and got["unknown_items"] == ["zz"]
    assert list(got["probabilities"]) == ["q1", "new-1"]
    spec = learning_of(learned)
    post = student_posterior(learned, spec, learned.positions(mine), np.ones(len(mine)))
    table = skill_table(learned)
    assert table is not None
    want = skill_probabilities(learned, spec, post, [table.index[k]])[0]
    assert got["probabilities"]["new-1"] == pytest.approx(want, abs=1e-6)
    # the student's ability in that skill counts: all wrong in it gives a lower probability
    wrong = [{"item_id": i, "correct": False} for i in mine]
    low = client.post("/", json={**body, "responses": wrong}).get_json()
    assert low["probabilities"]["new-1"] < got["probabilities"]["new-1"] - 0.1
    # batch and single agree
    batch = client.post("/", json={"students": [{"responses": answers, "items": body["items"]}],
                                   "item_skills": {"new-1": k}}).get_json()["results"][0]
    assert batch["probabilities"] == got["probabilities"]
    assert batch["provisional_items"] == ["new-1"]


def test_a_calibrated_learning_model_serves_the_calibration_on_every_path(
        monkeypatch, tmp_path, learned) -> None:
    """``options.learning.calibration (c0, c1)`` reaches every probability ``predict`` serves:
    the decoded single request, the general path (``answered_at``), a batch, a provisional
    item and the ``/next-items`` ranking each give ``logistic(c0 + c1 z)`` of the uncalibrated
    logit ``z``, at the same ability."""
    from irt.engine.learning import probabilities
    from irt.engine.learning_fit import with_calibration

    c0, c1 = 0.3, 0.6
    publish(tmp_path, "cal-1", with_calibration(learned, (c0, c1)).to_json())
    client = make_client(monkeypatch, tmp_path)
    skill_of = learned.skills["item_skills"]
    k = skill_of["q0"]
    mine = [i for i, s in skill_of.items() if s == k][:5]
    y = [True, False, True, True, False]
    spec = learning_of(learned)
    post = student_posterior(learned, spec, learned.positions(mine), np.array(y, dtype=int))
    table = skill_table(learned)
    assert table is not None
    asked = ["q1", "q2", "q4"]
    z = np.concatenate([probabilities(learned, spec, post, learned.positions(asked)),
                        skill_probabilities(learned, spec, post, [table.index[k]])])
    z = np.log(z) - np.log1p(-z)
    want = dict(zip([*asked, "new-1"], 1.0 / (1.0 + np.exp(-(c0 + c1 * z))), strict=True))
    answers = [{"item_id": i, "correct": v} for i, v in zip(mine, y, strict=True)]
    timed = [{**a, "answered_at": f"2026-11-28T10:0{n}:00Z"} for n, a in enumerate(answers)]
    ability = {"theta": round(post.theta, 6), "se": round(post.se, 6), "method": "EAP",
               "n_answers": 5}
    fast = client.post("/", json={"responses": answers, "items": asked}).get_json()
    general = client.post("/", json={"responses": timed, "items": [*asked, "new-1"],
                                     "item_skills": {"new-1": k}}).get_json()
    batch = client.post("/", json={"students": [{"responses": answers,
                                                 "items": [*asked, "new-1"]}],
                                   "item_skills": {"new-1": k}}).get_json()["results"][0]
    for got in (fast, general, batch):
        assert got["ability"] == ability
        for item, p in got["probabilities"].items():
            assert p == pytest.approx(want[item], abs=1e-6), item
    assert general["provisional_items"] == batch["provisional_items"] == ["new-1"]
    ranked = client.post("/next-items", json={"responses": answers, "k": 3,
                                              "candidates": asked}).get_json()
    assert {i["item_id"] for i in ranked["items"]} == set(asked)
    for row in ranked["items"]:
        assert row["probability"] == pytest.approx(want[row["item_id"]], abs=1e-6)
        # the Fisher information of the served probability: dp/du = c1 a p (1 - p)
        a = learned.a[learned.index[row["item_id"]]]
        p = want[row["item_id"]]
        assert row["information"] == pytest.approx((c1 * a) ** 2 * p * (1 - p), abs=2e-6)
