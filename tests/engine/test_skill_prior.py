"""The hierarchical skill prior of the plain calibration (``irt.engine.calibrate.fit`` with an
item -> skill map, issue #13) and the model's ``skills`` section.

Known truth: :func:`irt.engine.simulate.simulate_sparse` draws each item's difficulty around
its skill's mean (``b_j = mu_k + N(0, 0.5^2)``, ``mu_k ~ N(0, 1)``), so the items answered
once or twice, which the population prior alone can only pull toward 0, can borrow the
difficulty of their skill's other items.
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace

import numpy as np
import pytest

import irt.engine.calibrate as calibrate
from irt.engine.artifact import load_model, model_from_dict
from irt.engine.calibrate import FitConfig, Priors, fit
from irt.engine.model import item_bank_from_dict, skill_table
from irt.engine.simulate import simulate, simulate_sparse
from irt.errors import ModelFormatError

#: 30k answers over a bank of 30k items in 50 skills: about 12,000 items answered, 83 % of
#: them at most twice (the shape of simulate_sparse's default log, at a third of its size).
N_SKILLS = 50
SKILL_IDS = tuple(f"k{k}" for k in range(N_SKILLS))


@functools.cache
def sparse(seed: int = 2):
    return simulate_sparse(30_000, bank=30_000, n_skills=N_SKILLS, seed=seed)


@functools.cache
def sparse_fit(seed: int = 2, skills: bool = True, model: str = "2pl"):
    sim = sparse(seed)
    config = FitConfig(model=model, compute_se=False)
    if skills:
        return fit(sim.responses, config, sim.item_skill, SKILL_IDS)
    return fit(sim.responses, config)


def rare_rmse(result, sim, most: int = 2) -> float:
    """RMSE of ``b`` against the truth over the calibrated items with at most ``most``
    answers."""
    r = sim.responses
    counts = np.bincount(r.item, minlength=len(r.item_ids))
    pos = result.model.positions(list(r.item_ids))
    rare = (pos >= 0) & (counts <= most)
    assert rare.sum() > 5000
    return float(np.sqrt(np.mean((result.model.b[pos[rare]] - sim.b[rare]) ** 2)))


# --------------------------------------------------------------------------- against truth
@pytest.mark.parametrize("seed", [2, 3])
def test_rare_items_are_shrunk_toward_their_skill_not_the_population(seed) -> None:
    """Measured (seeds 2-5): RMSE(b) of the items with <= 2 answers 1.11-1.15 with the
    population prior alone, 0.60-0.62 with the skill prior (ratio 0.53-0.56)."""
    sim = sparse(seed)
    alone, skilled = sparse_fit(seed, skills=False), sparse_fit(seed)
    assert alone.converged and skilled.converged
    before, after = rare_rmse(alone, sim), rare_rmse(skilled, sim)
    assert before > 1.0
    assert after < 0.65 * before, (before, after)
    # and the well-answered items lose nothing
    r = sim.responses
    counts = np.bincount(r.item, minlength=len(r.item_ids))
    assert "skill_prior" not in alone.model.fit and skilled.model.fit["skill_prior"] is True
    common = counts >= 20
    err = [np.sqrt(np.mean((res.model.b[res.model.positions(
        [r.item_ids[j] for j in np.flatnonzero(common)])] - sim.b[common]) ** 2))
        for res in (alone, skilled)]
    assert err[1] <= err[0] + 0.02


def test_skill_means_recover_the_true_skill_difficulties() -> None:
    """Measured: RMSE 0.27-0.33 of the 50 estimated means against the true ``mu_k``
    (``mu_k ~ N(0, 1)``), a skill having about 240 items, most answered once or twice."""
    sim = sparse()
    params = sparse_fit().model.skills["parameters"]
    assert set(params) == set(SKILL_IDS)
    got = np.array([params[k]["b"] for k in SKILL_IDS])
    assert np.sqrt(np.mean((got - sim.skill_b) ** 2)) < 0.4
    assert np.corrcoef(got, sim.skill_b)[0, 1] > 0.95


def test_joint_step_reaches_the_fixed_point_of_alternating_updates(monkeypatch) -> None:
    """The arrowhead Fisher step on items and skill means together converges to the same
    estimates as updating the items given the means, then the means in closed form (ECM),
    only in fewer EM cycles."""
    sim = simulate_sparse(10_000, bank=5_000, n_skills=20, seed=7)
    ids = SKILL_IDS[:20]
    config = FitConfig(compute_se=False, tol=1e-6, max_iter=2000)
    joint = fit(sim.responses, config, sim.item_skill, ids)

    def alternate(pm, v, mu, r, n, x, skills, max_newton=2, points=None):
        new = calibrate._m_step(pm, v, r, n, x, skills.item_priors(mu), points=points)
        a, d, _ = pm.split(new)
        return new, skills.update(a, d)

    monkeypatch.setattr(calibrate, "_m_step_skills", alternate)
    ecm = fit(sim.responses, config, sim.item_skill, ids)
    assert joint.converged and ecm.converged
    assert joint.iterations < ecm.iterations
    np.testing.assert_allclose(joint.model.b, ecm.model.b, atol=2e-3)
    np.testing.assert_allclose(joint.model.a, ecm.model.a, atol=2e-3)
    assert joint.log_posterior == pytest.approx(ecm.log_posterior, abs=1e-3)


def test_the_penalised_objective_never_falls() -> None:
    history = np.array(sparse_fit().history)
    assert np.all(np.diff(history) >= -1e-6 * np.abs(history[1:]))


@pytest.mark.parametrize("model", ["1pl", "rasch", "3pl"])
def test_other_models_converge_with_the_skill_prior(model) -> None:
    """The 1PL and Rasch take the difficulty part through closed-form means, the 3PL through
    the joint step; each converges, and the typical difficulty of a skill sits among its
    items' (the Rasch model's on its own metric, ``b = -d``)."""
    sim = simulate_sparse(10_000, bank=5_000, n_skills=20, seed=4)
    res = fit(sim.responses, FitConfig(model=model, compute_se=False), sim.item_skill,
              SKILL_IDS[:20])
    assert res.converged and res.model.fit["skill_prior"] is True
    skills = res.model.skills
    index = res.model.index
    for skill, spec in skills["parameters"].items():
        b = [res.model.b[index[i]] for i, k in skills["item_skills"].items() if k == skill]
        assert spec["n_items"] == len(b)
        assert abs(spec["b"] - np.mean(b)) < 0.5, (skill, spec, np.mean(b))
        if model == "rasch":
            assert spec["a"] == 1.0
        if model != "3pl":
            assert spec["c"] == 0.0
        else:
            assert 0.0 < spec["c"] < 0.5


# --------------------------------------------------------------------------- unchanged without
def test_without_a_map_or_with_it_switched_off_nothing_changes() -> None:
    sim = simulate(400, 30, 15, seed=3)
    r = sim.responses
    plain = fit(r, FitConfig())
    skill = np.arange(30) % 4
    for result in (fit(r, FitConfig(), np.full(30, -1), ("k0",)),
                   fit(r, FitConfig(skill_prior=False), skill, SKILL_IDS[:4])):
        np.testing.assert_array_equal(result.model.a, plain.model.a)
        np.testing.assert_array_equal(result.model.b, plain.model.b)
        np.testing.assert_array_equal(result.model.se_b, plain.model.se_b)
        assert result.history == plain.history
    assert plain.model.skills == {} and "skills" not in plain.model.to_dict()
    assert "skill_difficulty_sd" not in plain.model.priors
    off = fit(r, FitConfig(skill_prior=False), skill, SKILL_IDS[:4]).model
    assert off.fit["skill_prior"] is False and set(off.skills["parameters"]) == set(
        SKILL_IDS[:4])  # the map still describes the skills, for predict


def test_maximum_likelihood_has_no_skill_prior() -> None:
    """Without a difficulty prior (``Priors()``, R mirt's estimation) the skill means would
    have no prior: the skill prior is off, the estimates are the plain maximum likelihood's,
    and a skill's typical difficulty is its items' mean."""
    sim = simulate(500, 12, None, seed=5)
    skill = np.arange(12) % 3
    ml = FitConfig(priors=Priors())
    plain, mapped = fit(sim.responses, ml), fit(sim.responses, ml, skill, SKILL_IDS[:3])
    np.testing.assert_array_equal(mapped.model.b, plain.model.b)
    assert mapped.model.fit["skill_prior"] is False
    for q, spec in enumerate(mapped.model.skills["parameters"].values()):
        assert spec["b"] == pytest.approx(plain.model.b[skill == q].mean())
        assert spec["a"] == pytest.approx(np.exp(np.log(plain.model.a[skill == q]).mean()))


def test_the_skill_prior_moves_estimates_and_is_recorded() -> None:
    sim = simulate(300, 40, 6, seed=11)
    skill = np.arange(40) % 5
    plain = fit(sim.responses, FitConfig())
    res = fit(sim.responses, FitConfig(), skill, SKILL_IDS[:5])
    assert np.max(np.abs(res.model.b - plain.model.b)) > 0.01
    assert res.model.priors["skill_difficulty_sd"] == 1.0
    assert res.model.priors["b_normal"] == [0.0, 2.0]
    # a tighter sigma_b pulls the items of a skill closer together
    tight = fit(sim.responses, FitConfig(skill_difficulty_sd=0.2), skill, SKILL_IDS[:5])
    spread = [np.std(m.b[skill == 0]) for m in (res.model, tight.model)]
    assert spread[1] < 0.5 * spread[0]
    assert tight.model.priors["skill_difficulty_sd"] == 0.2


@pytest.mark.parametrize("bad, ids, match", [
    (np.zeros(7, dtype=int), ("k0",), "one integer per item"),
    (np.full(8, 0.5), ("k0",), "one integer per item"),
    (np.array([0, 1, 2, 0, 0, 0, 0, 0]), ("k0", "k1"), "skill indices below 2"),
    (np.array([-2] + [0] * 7), ("k0",), "-1"),
    (np.zeros(8, dtype=int), ("",), "non-empty"),
    (np.array([0, 1] * 4), ("k0", "k0"), "distinct"),
])
def test_a_skill_map_that_does_not_fit_is_refused(bad, ids, match) -> None:
    sim = simulate(50, 8, None, seed=1)
    with pytest.raises(ValueError, match=match):
        fit(sim.responses, FitConfig(compute_se=False), bad, ids)


def test_fit_config_checks_the_skill_sd() -> None:
    with pytest.raises(ValueError, match="skill_difficulty_sd"):
        FitConfig(skill_difficulty_sd=0.0)


# --------------------------------------------------------------------------- skills section
@functools.cache
def small_with_rare():
    """A dense-ish log plus items answered once: with ``min_answers_per_item`` 3 those are
    left out, their skill recorded as provisional."""
    sim = simulate(200, 12, 8, seed=9)
    r = sim.responses
    # three extra items answered once (by students 0, 1, 2): items 12, 13, 14
    from irt.engine.responses import Responses

    student = np.r_[r.student, [0, 1, 2]]
    item = np.r_[r.item, [12, 13, 14]]
    correct = np.r_[r.correct, [1, 0, 1]].astype(np.int8)
    ids = [*r.item_ids, "new-a", "new-b", "new-c"]
    resp = Responses.from_arrays(student, item, correct, list(r.student_ids), ids)
    skill = np.array([0, 1, 2] * 4 + [1, -1, 2])
    return fit(resp, FitConfig(min_answers_per_item=3), skill, ("alg", "geo", "num"))


def test_section_holds_typical_parameters_and_both_maps() -> None:
    model = small_with_rare().model
    skills = model.skills
    assert model.fit["skill_prior"] is True
    assert set(model.excluded_items) == {"new-a", "new-b", "new-c"}
    assert skills["provisional_items"] == {"new-a": "geo", "new-c": "num"}  # new-b: no skill
    assert skills["item_skills"] == {f"q{j}": ("alg", "geo", "num")[j % 3] for j in range(12)}
    for q, name in enumerate(("alg", "geo", "num")):
        spec = skills["parameters"][name]
        members = np.arange(12) % 3 == q
        assert spec["n_items"] == 4 and spec["c"] == 0.0
        assert spec["a"] == pytest.approx(np.exp(np.mean(np.log(model.a[members]))))
        # mu_k: the closed form of the fitted items' difficulties (sigma_b 1, prior N(0, 2^2))
        want = (model.b[members].sum() / 1.0 + 0.0) / (4 / 1.0 + 1 / 4.0)
        assert spec["b"] == pytest.approx(want, abs=1e-6)


def test_section_round_trips_through_the_artifact() -> None:
    model = small_with_rare().model
    text = model.to_json()
    again = load_model(text)
    assert again.skills == model.skills == json.loads(text)["skills"]
    assert json.loads(again.to_json()) == json.loads(text)
    table = skill_table(again)
    assert table is not None and table.skill_ids == ("alg", "geo", "num")
    assert table.provisional == {"new-a": 1, "new-c": 2}
    np.testing.assert_allclose(table.b, [model.skills["parameters"][k]["b"]
                                         for k in table.skill_ids])
    assert skill_table(replace(model, skills={}, _cache={})) is None


def _doc_with(**changes):
    doc = json.loads(small_with_rare().model.to_json())
    for path, value in changes.items():
        node = doc
        keys = path.split("/")
        for key in keys[:-1]:
            node = node[key]
        if value is KeyError:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return doc


@pytest.mark.parametrize("changes, field", [
    ({"skills": []}, "skills"),
    ({"skills/extra": 1}, "skills.extra"),
    ({"skills/parameters": {}}, "skills.parameters"),
    ({"skills/parameters/alg": 3}, "skills.parameters.alg"),
    ({"skills/parameters/alg/a": KeyError}, "skills.parameters.alg.a"),
    ({"skills/parameters/alg/a": 0}, "skills.parameters.alg.a"),
    ({"skills/parameters/alg/b": "x"}, "skills.parameters.alg.b"),
    ({"skills/parameters/alg/c": 0.2}, "skills.parameters.alg.c"),
    ({"skills/parameters/alg/n_items": 0}, "skills.parameters.alg.n_items"),
    ({"skills/item_skills/q0": "nope"}, "skills.item_skills.q0"),
    ({"skills/item_skills/ghost": "alg"}, "skills.item_skills.ghost"),
    ({"skills/item_skills": ["q0"]}, "skills.item_skills"),
    ({"skills/provisional_items/q1": "alg"}, "skills.provisional_items.q1"),
    ({"skills/provisional_items/new-a": 5}, "skills.provisional_items.new-a"),
])
def test_a_broken_section_is_refused_naming_the_field(changes, field) -> None:
    doc = _doc_with(**changes)
    for reader in (item_bank_from_dict, model_from_dict, lambda d: load_model(json.dumps(d))):
        with pytest.raises(ModelFormatError) as info:
            reader(doc)
        assert info.value.field == field, (info.value.field, str(info.value))


def test_section_rules_follow_the_model_type() -> None:
    doc = _doc_with(**{"skills/parameters/alg/c": 0.2})
    doc["model_type"] = "3pl"
    assert item_bank_from_dict(doc).skills["parameters"]["alg"]["c"] == 0.2
    doc = _doc_with(**{"skills/parameters/alg/a": 1.3})
    doc["model_type"] = "rasch"
    for item in doc["items"].values():
        item["a"] = 1.0
    doc["population"]["sd"] = 1.2
    with pytest.raises(ModelFormatError) as info:
        item_bank_from_dict(doc)
    assert info.value.field == "skills.parameters.alg.a"


def test_an_artifact_without_the_section_still_loads() -> None:
    doc = _doc_with(skills=KeyError)
    assert item_bank_from_dict(doc).skills == {}
    assert item_bank_from_dict(_doc_with(skills={})).skills == {}


# --------------------------------------------------------------------------- learning options
def test_calibrated_options_start_from_the_fit_without_the_skill_prior() -> None:
    """``base_for_options``: "skills"/"pfa" start from the same plain fit without the skill
    prior (the skills section kept for predict); recency alone, or a base fitted without the
    prior, is used as is."""
    from irt.engine.learning_fit import base_for_options

    sim = simulate(300, 40, 6, seed=11)
    skill = np.arange(40) % 5
    config = FitConfig(compute_se=False)
    skilled = fit(sim.responses, config, skill, SKILL_IDS[:5]).model
    assert base_for_options(skilled, ("recency",), sim.responses, config, skill,
                            SKILL_IDS[:5]) is skilled
    start = base_for_options(skilled, ("recency", "pfa"), sim.responses, config, skill,
                             SKILL_IDS[:5])
    plain = fit(sim.responses, replace(config, skill_prior=False), skill, SKILL_IDS[:5]).model
    assert start.fit["skill_prior"] is False and start.skills["item_skills"]
    np.testing.assert_array_equal(start.b, plain.b)
    assert np.max(np.abs(start.b - skilled.b)) > 0.01
    assert base_for_options(plain, ("skills",), sim.responses, config, skill,
                            SKILL_IDS[:5]) is plain
