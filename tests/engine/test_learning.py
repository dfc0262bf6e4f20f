"""Learning-aware ability (irt.engine.learning, irt.engine.learning_fit): covariates by hand, the
grid posterior against brute-force integration, no future leakage, the online harness equal to
predict's single-student path, calibration against simulations with known truth, and the
artifact round trip."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from learning_sim import simulate_learning

from irt.engine.artifact import load_model
from irt.engine.calibrate import FitConfig, Priors, fit
from irt.engine.evaluate import metrics, online_predictions, plain_online_predictions
from irt.engine.learning import (
    FEATURES,
    Learning,
    history_features,
    learning_from_dict,
    learning_of,
    learning_to_dict,
    next_features,
    parse_options,
    predict_one,
    probabilities,
    skill_map,
    student_posterior,
)
from irt.engine.learning import online_predictions as learning_online
from irt.engine.learning_fit import LearningConfig, fit_learning
from irt.engine.model import ItemModel
from irt.engine.responses import Responses
from irt.engine.simulate import simulate
from irt.errors import ModelFormatError

COMBOS = [("recency",), ("skills",), ("pfa",), ("skills", "pfa"), ("recency", "skills", "pfa"),
          ("recency", "pfa")]


def make_model(options: tuple[str, ...], n_items: int = 12, n_skills: int = 3, seed: int = 0,
               decay: float = 0.8, tau: float = 0.7,
               calibration: tuple[float, float] = (0.0, 1.0)) -> ItemModel:
    """A small model with the given options, hand-set coefficients and ``calibration``,
    through JSON."""
    rng = np.random.default_rng(seed)
    ids = tuple(f"q{j}" for j in range(n_items))
    nan = np.full(n_items, np.nan)
    base = ItemModel("2pl", ids, np.exp(rng.normal(0, 0.3, n_items)),
                     rng.normal(0, 1, n_items), np.zeros(n_items), nan, nan, nan)
    skills = tuple(f"k{k}" for k in range(n_skills))
    item_skill = np.arange(n_items) % n_skills
    item_skill[-1] = -1  # one item without a skill
    spec = Learning(options=options, decay=decay if "recency" in options else 1.0,
                    skill_sd=tau if "skills" in options else 0.0,
                    window=3, beta=np.array([0.3, -0.2, 0.25, -0.3, 0.4]),
                    gamma=rng.normal(0, 0.3, (n_skills, 3)), skill_ids=skills,
                    item_skill=item_skill)
    if not {"skills", "pfa"} & set(options):
        spec = Learning(options=options, decay=spec.decay)
    elif "pfa" not in options:
        spec = Learning(options=options, decay=spec.decay, skill_sd=spec.skill_sd,
                        skill_ids=skills, item_skill=item_skill,
                        gamma=np.zeros((n_skills, 3)))
    spec = replace(spec, calibration=calibration)
    base.options = {"learning": learning_to_dict(spec, ids)}
    return load_model(base.to_json())


# --------------------------------------------------------------------------- options
def test_parse_options() -> None:
    assert parse_options("pfa, Skills") == ("skills", "pfa")
    assert parse_options("") == parse_options(None) == parse_options("none") == ()
    assert parse_options(["recency"]) == ("recency",)
    with pytest.raises(ValueError, match="unknown model option 'bkt'"):
        parse_options("skills,bkt")
    with pytest.raises(ValueError, match=r"'xxxxxxxxxx.*\.\.\. \(5000 characters\)") as err:
        parse_options("skills," + "x" * 5000)  # quoted short, not whole
    assert len(str(err.value)) < 200


# --------------------------------------------------------------------------- covariates
def _features_by_hand(skills: list[int], ys: list[int], known: list[bool], window: int
                      ) -> np.ndarray:
    """The definition, one answer at a time."""
    out = []
    for t in range(len(ys)):
        hist = [(k, y) for k, y, ok in zip(skills[:t], ys[:t], known[:t], strict=True) if ok]
        k = skills[t]
        on = [y for kk, y in hist if kk == k and k >= 0]
        recent = [y for _, y in hist][-window:] if window else []
        out.append([math.log1p(sum(on)), math.log1p(len(on) - sum(on)),
                    math.log1p(sum(recent)), math.log1p(len(recent) - sum(recent)),
                    (2 * on[-1] - 1) if on else 0])
    return np.array(out, dtype=float)


def test_history_features_follow_the_definition() -> None:
    rng = np.random.default_rng(1)
    student = np.repeat([0, 1, 2], [9, 1, 14])
    skill = rng.integers(-1, 3, student.shape[0])
    y = rng.integers(0, 2, student.shape[0])
    known = rng.random(student.shape[0]) > 0.2
    skill[~known] = -1  # unknown items have no skill
    got = history_features(student, skill, y, known, 3)
    for s in range(3):
        idx = np.flatnonzero(student == s)
        want = _features_by_hand(skill[idx].tolist(), y[idx].tolist(), known[idx].tolist(), 3)
        np.testing.assert_allclose(got[idx], want, atol=1e-12)
    # a by-hand case: skill 0 right, skill 1 wrong, skill 0 wrong, then skill 0
    f = history_features(np.zeros(4, int), np.array([0, 1, 0, 0]), np.array([1, 0, 0, 1]),
                         np.ones(4, bool), 2)
    np.testing.assert_allclose(f[3], [math.log(2), math.log(2), 0.0, math.log(3), -1.0])


def test_next_features_are_those_of_a_next_answer() -> None:
    rng = np.random.default_rng(2)
    skill = rng.integers(-1, 4, 17)
    y = rng.integers(0, 2, 17)
    nxt = next_features(skill, y, 5, 4)
    for k in [-1, 0, 1, 2, 3]:
        full = history_features(np.zeros(18, int), np.r_[skill, k], np.r_[y, 0],
                                np.ones(18, bool), 5)
        np.testing.assert_allclose(nxt[k], full[-1], atol=1e-12)  # row -1: no skill


def test_skill_map_takes_each_items_most_frequent_skill() -> None:
    items = np.array([0, 0, 0, 1, 1, 2, -1, 3])
    skills = np.array([2, 1, 2, 0, 1, -1, 0, -1])
    np.testing.assert_array_equal(skill_map(items, skills, 5), [2, 0, -1, -1, -1])


# --------------------------------------------------------------------------- numerics
def _brute_force(model: ItemModel, spec: Learning, pos: np.ndarray, y: np.ndarray
                 ) -> tuple[float, float, dict[int, float]]:
    """General EAP/SD and E[theta + delta_k] by direct integration over (theta, delta_1..K)
    on a fine product grid with the continuous densities (covariates by hand)."""
    skills = spec.item_skill[pos] if spec.grouped else np.full(pos.shape[0], -1)
    feats = _features_by_hand(skills.tolist(), y.tolist(), [True] * len(y), spec.window)
    o = np.zeros(len(y))
    if spec.pfa:
        o = feats @ spec.beta + np.array([spec.gamma[k] @ f[[0, 1, 4]] if k >= 0 else 0.0
                                          for k, f in zip(skills, feats, strict=True)])
    group = skills if spec.grouped else np.zeros(len(y), int)
    later = np.array([np.sum(group[i + 1:] == group[i]) for i in range(len(y))])
    w = spec.decay ** later
    used = sorted({int(k) for k in skills if k >= 0}) if spec.skills else []
    th = np.linspace(-7, 7, 141)
    dl = np.linspace(-5 * spec.skill_sd, 5 * spec.skill_sd, 71) if used else np.zeros(1)
    grids = np.meshgrid(th, *([dl] * len(used)), indexing="ij")
    logp = -0.5 * grids[0] ** 2
    for g in grids[1:]:
        logp = logp - 0.5 * (g / spec.skill_sd) ** 2
    for i, j in enumerate(pos.tolist()):
        u = grids[0] + (grids[1 + used.index(skills[i])] if skills[i] in used else 0.0)
        z = model.a[j] * (u - model.b[j]) + o[i]
        logp = logp + w[i] * -np.logaddexp(0.0, -(2 * y[i] - 1) * z)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    mean = float(np.sum(p * grids[0]))
    sd = math.sqrt(float(np.sum(p * grids[0] ** 2)) - mean**2)
    return mean, sd, {k: float(np.sum(p * (grids[0] + grids[1 + n])))
                      for n, k in enumerate(used)}


@pytest.mark.parametrize("options", COMBOS)
def test_posterior_matches_brute_force_integration(options: tuple[str, ...]) -> None:
    model = make_model(options, seed=3)
    spec = learning_of(model)
    rng = np.random.default_rng(4)
    pos = np.array([0, 1, 3, 4, 2, 6, 11, 7, 9])  # skills 0,1,0,1,2,0,-,1,0 (two offsets)
    if spec.skills:
        pos = pos[spec.item_skill[pos] != 2]  # keep the brute force at three dimensions
    y = rng.integers(0, 2, pos.shape[0])
    post = student_posterior(model, spec, pos, y)
    mean, sd, u = _brute_force(model, spec, pos, y)
    assert post.theta == pytest.approx(mean, abs=2e-4)
    assert post.se == pytest.approx(sd, abs=2e-4)
    for k, want in u.items():
        assert post.skill_ability[k] == pytest.approx(want, abs=2e-4)


@pytest.mark.parametrize("options", COMBOS)
def test_no_prediction_sees_its_own_or_a_later_answer(options: tuple[str, ...]) -> None:
    model = make_model(options, seed=5)
    rng = np.random.default_rng(6)
    student = np.repeat(np.arange(6), 11)
    pos = np.concatenate([rng.permutation(12)[:11] for _ in range(6)])
    pos[[4, 30]] = -1  # unknown items
    y = rng.integers(0, 2, student.shape[0])
    p = online_predictions(model, student, pos, y)
    for s in range(6):
        idx = np.flatnonzero(student == s)
        cut = 5
        later = idx[cut:]
        pos2, y2 = pos.copy(), y.copy()
        perm = rng.permutation(later.shape[0])
        pos2[later], y2[later] = pos[later][perm], 1 - y[later][perm]
        p2 = online_predictions(model, student, pos2, y2)
        # Later answers regroup the rows of the matrix products (by skill), which may move
        # the last bit (1e-16); information from the future would move them by far more.
        np.testing.assert_allclose(p2[idx[:cut]], p[idx[:cut]], rtol=0, atol=1e-12)
        y3 = y.copy()
        y3[idx[cut]] = 1 - y3[idx[cut]]
        p3 = online_predictions(model, student, pos, y3)
        np.testing.assert_allclose(p3[idx[:cut + 1]], p[idx[:cut + 1]], rtol=0, atol=1e-12)
        if pos[idx[cut]] >= 0:  # a known answer moves the next prediction
            assert p3[idx[cut + 1]] != p[idx[cut + 1]]


@pytest.mark.parametrize("calibration", [(0.0, 1.0), (0.4, 0.7)])
@pytest.mark.parametrize("options", COMBOS)
def test_online_harness_equals_predict_on_every_prefix(options: tuple[str, ...],
                                                       calibration: tuple[float, float]) -> None:
    model = make_model(options, seed=7, calibration=calibration)
    rng = np.random.default_rng(8)
    student = np.repeat(np.arange(3), 12)
    pos = np.concatenate([rng.permutation(12) for _ in range(3)])
    y = rng.integers(0, 2, student.shape[0])
    p = online_predictions(model, student, pos, y)
    for t in range(student.shape[0]):
        s = student[t]
        prefix = np.flatnonzero((student == s) & (np.arange(student.shape[0]) < t))
        out = predict_one(model, [model.item_ids[j] for j in pos[prefix]],
                          y[prefix].tolist(), [model.item_ids[pos[t]]])
        assert out["probabilities"][model.item_ids[pos[t]]] == pytest.approx(p[t], abs=1e-6)


def test_a_plain_model_keeps_the_plain_protocol() -> None:
    model = fit(simulate(800, 20, 10, seed=9).responses, FitConfig(compute_se=False)).model
    rng = np.random.default_rng(10)
    student = np.repeat(np.arange(30), 8)
    pos = np.concatenate([rng.permutation(20)[:8] for _ in range(30)])
    y = rng.integers(0, 2, student.shape[0])
    want = plain_online_predictions(model, student, pos, y)
    assert learning_of(model) is None
    np.testing.assert_array_equal(online_predictions(model, student, pos, y), want)
    np.testing.assert_array_equal(learning_online(model, student, pos, y), want)


def test_recency_weights_older_answers_less() -> None:
    model = make_model(("recency",), decay=0.5)
    spec = learning_of(model)
    pos, y = np.array([0, 1, 2, 3]), np.array([0, 0, 1, 1])
    flipped = student_posterior(model, spec, pos[::-1], y[::-1]).theta
    recent_right = student_posterior(model, spec, pos, y).theta
    assert recent_right > flipped  # the same answers, the right ones later: higher ability
    plain = make_model(("skills",))  # decay 1: order does not matter without covariates
    sp = learning_of(plain)
    assert student_posterior(plain, sp, pos, y).theta == pytest.approx(
        student_posterior(plain, sp, pos[::-1], y[::-1]).theta, abs=1e-12)


# --------------------------------------------------------------------------- calibration
OPTION_SETS = [(), ("skills",), ("pfa",), ("skills", "pfa")]


@pytest.fixture(scope="module")
def simulated():
    """Training and new test students on the same items, a 2PL and each option set fitted."""
    beta = np.array([0.3, -0.2, 0.2, -0.2, 0.3])
    train = simulate_learning(600, 32, 4, tau=0.8, beta=beta, seed=11, item_seed=5)
    test = simulate_learning(300, 32, 4, tau=0.8, beta=beta, seed=12, item_seed=5)
    base = fit(train.responses, FitConfig(priors=Priors((0, 0.5), (0, 2)), compute_se=False,
                                          min_answers_per_item=1)).model
    fits = {o: fit_learning(base, train.responses, train.order, train.item_skill,
                            train.skill_ids, LearningConfig(options=o)) for o in OPTION_SETS}
    return train, test, base, fits


def test_calibration_recovers_the_simulated_truth(simulated) -> None:
    train, _, base, fits = simulated
    result = fits[("skills", "pfa")]
    spec = learning_of(result.model)
    assert result.converged and result.iterations >= 2
    assert spec.skill_sd == pytest.approx(0.8, abs=0.2)
    np.testing.assert_allclose(spec.beta, train.beta, atol=0.15)
    assert result.log_likelihood > base.fit["log_likelihood"]  # more parameters, better fit
    # the objective never went down (SQUAREM falls back to plain EM steps)
    assert all(b >= a - 1e-6 * abs(a) for a, b in itertools.pairwise(result.history))
    # difficulties recovered, pooled by skill
    truth = train.b[np.array([int(i[1:]) for i in result.model.item_ids])]
    assert np.corrcoef(result.model.b, truth)[0, 1] > 0.9
    assert fits[()].model is base  # no option: the plain model itself


def test_learning_aware_options_predict_better_on_new_students(simulated) -> None:
    _, test, _, fits = simulated
    r = test.responses
    auc = {}
    for options, result in fits.items():
        model = result.model
        p = online_predictions(model, r.student, model.positions(list(r.item_ids))[r.item],
                               r.correct)
        auc[options] = metrics(r.correct, p)["auc"]
    # measured: plain 0.798, skills 0.825, pfa 0.832, both 0.832 (the simulated skill
    # offsets also drive the skill covariates, so pfa alone recovers most of them)
    assert auc[("skills",)] > auc[()] + 0.01
    assert auc[("pfa",)] > auc[()] + 0.01
    assert auc[("skills", "pfa")] > auc[("skills",)] + 0.003
    assert auc[("skills", "pfa")] > auc[("pfa",)] - 0.002


def test_recency_alone_keeps_the_calibrated_items(simulated) -> None:
    train, _, base, _ = simulated
    model = fit_learning(base, train.responses, None, None, (),
                         LearningConfig(options=("recency",), decay=0.9)).model
    np.testing.assert_array_equal(model.a, base.a)
    np.testing.assert_array_equal(model.se_b, base.se_b)
    assert learning_of(model).decay == 0.9 and learning_of(base) is None


def test_an_item_without_information_does_not_freeze_the_fit(simulated) -> None:
    """An item whose difficulty starts far beyond every node (a sparse item's estimate may)
    has a log-likelihood linear in (a, d): its Newton step from the priors' curvature alone
    was 1e4-1e6, the joint step failed every halving, and no parameter of any item moved
    (the fit reported convergence at its start, with an overflow warning).  Each item's step
    now stays in a trust region."""
    train, _, base, fits = simulated
    a, b = base.a.copy(), base.b.copy()
    a[0], b[0] = 4.0, 30.0
    start = replace(base, a=a, b=b)
    result = fit_learning(start, train.responses, train.order, train.item_skill,
                          train.skill_ids, LearningConfig(options=("skills", "pfa")))
    model = result.model
    assert result.converged
    assert abs(model.b[0]) < 5.0 and 0.2 < model.a[0] < 4.0  # pulled back into the data
    # the other items are fitted as from the ordinary start
    usual = fits[("skills", "pfa")].model
    np.testing.assert_allclose(model.b[1:], usual.b[1:], atol=0.15)
    np.testing.assert_allclose(learning_of(model).beta, learning_of(usual).beta, atol=0.1)


def test_skills_and_pfa_need_a_skill_map_and_a_2pl(simulated) -> None:
    train, _, base, _ = simulated
    with pytest.raises(ValueError, match="skill map"):
        fit_learning(base, train.responses, None, None, (), LearningConfig(options=("pfa",)))
    one = fit(train.responses, FitConfig(model="1pl", compute_se=False)).model
    with pytest.raises(ValueError, match="2pl"):
        fit_learning(one, train.responses, None, train.item_skill, train.skill_ids,
                     LearningConfig(options=("skills",)))


def _md5_prefix(r, cap: int) -> list[int]:
    """The students the cap should choose, by the rule written out independently: whole
    students in the order of the first 8 bytes of MD5(id), while the answers fit."""
    counts = np.bincount(r.student, minlength=len(r.student_ids))
    order = sorted(range(len(r.student_ids)), key=lambda s: (int.from_bytes(
        hashlib.md5(r.student_ids[s].encode()).digest()[:8], "big"), r.student_ids[s]))
    chosen, total = [], 0
    for s in order:
        if total + counts[s] > cap:
            break
        chosen.append(s)
        total += counts[s]
    return chosen


@pytest.mark.parametrize("cap", [30, 4000])
def test_the_cap_calibrates_on_whole_students_chosen_by_a_stable_hash(simulated, cap) -> None:
    train, _, base, _ = simulated
    r = train.responses
    config = LearningConfig(options=("skills", "pfa"), max_answers=cap)
    capped = fit_learning(base, r, train.order, train.item_skill, train.skill_ids, config)
    sample = capped.model.options["learning"]["fit"]["sample"]
    chosen = _md5_prefix(r, cap)
    used = np.isin(r.student, chosen)
    assert sample["n_answers_total"] == r.n_answers and sample["max_answers"] == cap
    assert sample["n_students_used"] == len(chosen)
    assert sample["n_answers_used"] == int(used.sum()) <= cap
    assert "MD5" in sample["rule"]
    # items nobody in the sample answered keep the plain fit's parameters exactly
    outside = np.setdiff1d(np.arange(base.n_items), base.positions(
        [r.item_ids[j] for j in np.unique(r.item[used])]))
    assert (cap == 30) == (outside.size > 0)
    np.testing.assert_array_equal(capped.model.a[outside], base.a[outside])
    np.testing.assert_array_equal(capped.model.b[outside], base.b[outside])
    inside = np.setdiff1d(np.arange(base.n_items), outside)
    assert not np.allclose(capped.model.b[inside], base.b[inside])
    # the same sample and fit from the same log in another row order, in another run
    perm = np.random.default_rng(3).permutation(r.n_answers)
    shuffled = Responses(r.student[perm], r.item[perm], r.correct[perm], r.student_ids,
                         r.item_ids)
    again = fit_learning(base, shuffled, train.order[perm], train.item_skill, train.skill_ids,
                         config)
    assert again.model.options["learning"]["fit"]["sample"] == sample
    np.testing.assert_allclose(again.model.b, capped.model.b, rtol=0, atol=1e-9)


def test_a_log_under_the_cap_is_fitted_whole(simulated) -> None:
    train, _, base, fits = simulated
    r = train.responses
    uncapped = fit_learning(base, r, train.order, train.item_skill, train.skill_ids,
                            LearningConfig(options=("skills", "pfa"), max_answers=None))
    capped = fits[("skills", "pfa")]  # the default cap, far above this log
    assert LearningConfig().max_answers >= r.n_answers
    np.testing.assert_array_equal(capped.model.a, uncapped.model.a)
    np.testing.assert_array_equal(capped.model.b, uncapped.model.b)
    sample = capped.model.options["learning"]["fit"]["sample"]
    assert sample["n_answers_used"] == sample["n_answers_total"] == r.n_answers


# --------------------------------------------------------------------------- artifact
def test_artifact_round_trip() -> None:
    model = make_model(("recency", "skills", "pfa"))
    spec = learning_of(model)
    again = load_model(model.to_json())
    other = learning_of(again)
    assert other.options == spec.options and other.decay == spec.decay
    assert other.skill_sd == spec.skill_sd and other.skill_ids == spec.skill_ids
    np.testing.assert_array_equal(other.beta, spec.beta)
    np.testing.assert_array_equal(other.gamma, spec.gamma)
    np.testing.assert_array_equal(other.item_skill, spec.item_skill)
    doc = model.to_dict()["options"]["learning"]
    assert set(doc["coefficients"]) == set(FEATURES) and doc["item_skills"]["q0"] == "k0"
    assert "q11" not in doc["item_skills"]  # the item without a skill


@pytest.mark.parametrize("options", [("recency",), ("skills", "pfa")])
def test_a_calibrated_model_serves_logistic_of_its_calibrated_logits(options) -> None:
    """``calibration (c0, c1)`` maps each next-answer logit z of the uncalibrated model to
    ``c0 + c1 z``: in predict (the requested item, a provisional-free request) and in the
    online harness; it is kept by the artifact and shown by describe."""
    plain = make_model(options, seed=3)
    cal = make_model(options, seed=3, calibration=(0.3, 0.6))
    assert learning_of(cal).calibration == (0.3, 0.6)
    assert learning_of(load_model(cal.to_json())).calibration == (0.3, 0.6)
    assert cal.to_dict()["options"]["learning"]["calibration"] == {"intercept": 0.3,
                                                                   "slope": 0.6}
    assert "calibration" not in plain.to_dict()["options"]["learning"]  # the identity
    rng = np.random.default_rng(4)
    student = np.repeat(np.arange(4), 9)
    pos = np.concatenate([rng.permutation(12)[:9] for _ in range(4)])
    y = rng.integers(0, 2, student.shape[0])
    p = online_predictions(plain, student, pos, y)
    q = online_predictions(cal, student, pos, y)
    z = np.log(p) - np.log1p(-p)
    np.testing.assert_allclose(q, 1.0 / (1.0 + np.exp(-(0.3 + 0.6 * z))), rtol=1e-12)
    ids = [plain.item_ids[j] for j in pos[:8]]
    want = plain.item_ids[pos[8]]
    zp = predict_one(plain, ids, y[:8].tolist(), [want])["probabilities"][want]
    zq = predict_one(cal, ids, y[:8].tolist(), [want])["probabilities"][want]
    logit = math.log(zp) - math.log1p(-zp)
    assert zq == pytest.approx(1.0 / (1.0 + math.exp(-(0.3 + 0.6 * logit))), abs=2e-6)
    assert zq != pytest.approx(zp, abs=1e-3)


@pytest.mark.parametrize("options", [("recency",), ("skills", "pfa")])
def test_the_steepest_calibration_serves_extreme_items_without_overflow(options) -> None:
    """A slope of 10 (the largest the artifact allows) on items the loader accepts far from
    the grid (``b`` +-40): probabilities 0 and 1, no overflow warning (RuntimeWarnings from
    irt are errors in the suite) in predict, next-items ranking or the online harness."""
    doc = make_model(options, seed=3, calibration=(-10.0, 10.0)).to_dict()
    for j, item in enumerate(doc["items"].values()):
        item["b"] = 40.0 if j % 2 else -40.0
    model = load_model(json.dumps(doc))
    spec = learning_of(model)
    out = predict_one(model, ["q0", "q1", "q2"], [1, 0, 1], None)
    assert set(out["probabilities"].values()) == {0.0, 1.0}
    post = student_posterior(model, spec, model.positions(["q0"]), np.array([1]))
    p = probabilities(model, spec, post, np.arange(model.n_items))
    assert np.all((p >= 0.0) & (p <= 1.0))
    q = online_predictions(model, np.zeros(6, dtype=np.int64), np.arange(6),
                           np.array([1, 0, 1, 0, 1, 1]))
    assert np.all(np.isfinite(q))


def test_learning_artifacts_are_schema_2_so_older_readers_refuse_them() -> None:
    """A reader from before learning-aware models accepted exactly schema 1 and ignored
    ``options``: it would have served a learning model as a plain one.  Schema 2 makes it
    refuse the model (and keep its previous one); plain models stay 1 for every reader."""
    learning = make_model(("recency", "skills"))
    assert learning.to_dict()["schema_version"] == 2
    plain = make_model(("recency",))
    plain.options = {}
    assert plain.to_dict()["schema_version"] == 1
    assert load_model(plain.to_json()).options == {}
    # Learning artifacts written before schema 2 existed (as 1) still load, options and all.
    doc = learning.to_dict()
    doc["schema_version"] = 1
    again = load_model(json.dumps(doc))
    assert learning_of(again).options == learning_of(learning).options
    doc["schema_version"] = 3
    with pytest.raises(ModelFormatError, match="unsupported schema version 3"):
        load_model(json.dumps(doc))


def test_older_artifacts_without_options_load_as_plain_models() -> None:
    doc = make_model(("skills",)).to_dict()
    del doc["options"]
    model = load_model(json.dumps(doc))
    assert model.options == {} and learning_of(model) is None


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d.update(options=["recency", "bkt"]), "options.learning.options"),
    (lambda d: d.update(options=[]), "options.learning.options"),
    (lambda d: d.update(recency_decay=1.0), "options.learning.recency_decay"),
    (lambda d: d.update(skill_sd=0), "options.learning.skill_sd"),
    (lambda d: d["coefficients"].pop("skill_last"), "options.learning.coefficients.skill_last"),
    (lambda d: d["coefficients"].update(skill_last=float("nan")),
     "options.learning.coefficients.skill_last"),
    (lambda d: d["item_skills"].update(zz="k1"), "options.learning.item_skills.zz"),
    (lambda d: d["skills"].update(k9={}), "options.learning.skills.k9"),
    (lambda d: d.update(window=0), "options.learning.window"),
    (lambda d: d.update(grid={"n_points": 5}), "options.learning.grid.n_points"),
    (lambda d: d.update(extra=1), "options.learning.extra"),
    (lambda d: d.update(calibration={"intercept": 0.1}), "options.learning.calibration"),
    (lambda d: d.update(calibration=[0.1, 0.9]), "options.learning.calibration"),
    (lambda d: d.update(calibration=None), "options.learning.calibration"),  # as fit: null
    (lambda d: d.update(fit=None), "options.learning.fit"),
    (lambda d: d.update(calibration={"intercept": 0.1, "slope": 0}),
     "options.learning.calibration.slope"),
    (lambda d: d.update(calibration={"intercept": 0.1, "slope": -0.5}),
     "options.learning.calibration.slope"),
    (lambda d: d.update(calibration={"intercept": 11.0, "slope": 1.0}),
     "options.learning.calibration.intercept"),
    (lambda d: d.update(calibration={"intercept": "0", "slope": 1.0}),
     "options.learning.calibration.intercept"),
    (lambda d: d.update(calibration={"intercept": 0.1, "slope": 10**400}),
     "options.learning.calibration.slope"),
    (lambda d: d["coefficients"].update(skill_last=-10**400),
     "options.learning.coefficients.skill_last"),
])
def test_invalid_learning_options_are_rejected_naming_the_field(change, field) -> None:
    model = make_model(("recency", "skills", "pfa"))
    doc = model.to_dict()
    change(doc["options"]["learning"])
    with pytest.raises(ModelFormatError) as info:
        learning_from_dict(doc["options"]["learning"], model.item_ids, "2pl")
    assert info.value.field == field
    with pytest.raises(ModelFormatError):  # the loader (and so predict) refuses it too
        load_model(json.dumps(doc, allow_nan=True).replace("NaN", "null"))


# --------------------------------------------------------------------------- CLI
def _write_log(path, sim, offset: int = 0) -> None:
    import csv

    r = sim.responses
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id", "correct", "skill_id", "seq"])
        for k, (s, j, y) in enumerate(zip(r.student.tolist(), r.item.tolist(),
                                          r.correct.tolist(), strict=True)):
            w.writerow([f"u{s + offset}", r.item_ids[j], y, f"k{sim.item_skill[j]}", k])


def test_cli_evaluates_every_option_set(tmp_path, capsys) -> None:
    from irt.tools.cli import main

    beta = np.array([0.3, -0.2, 0.2, -0.2, 0.3])
    _write_log(tmp_path / "train.csv", simulate_learning(400, 24, 3, beta=beta, seed=41,
                                                         item_seed=2))
    _write_log(tmp_path / "test.csv", simulate_learning(150, 24, 3, beta=beta, seed=42,
                                                        item_seed=2), offset=1000)
    common = [str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), "--student-column",
              "user_id", "--order-column", "seq"]
    assert main(["evaluate", *common, "--options", "pfa"]) == 2  # needs --skill-column
    assert "--skill-column" in capsys.readouterr().err
    assert main(["evaluate", *common, "--skill-column", "skill_id", "--table", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = [tuple(r["options"]) for r in rows]
    assert names == [(), ("recency",), ("skills",), ("pfa",), ("skills", "pfa"),
                     ("recency", "skills", "pfa"), ("auto",)]
    auto = rows[-1]
    assert auto["chosen"] == auto["option_selection"]["chosen"]
    chosen = tuple(auto["chosen"])
    if chosen:  # the chosen set refitted on all of TRAIN predicts TEST as that set's row,
        # calibrated: the same AUC (the calibration keeps the order), another log-loss
        row = rows[names.index(chosen)]
        assert auto["auc"] == pytest.approx(row["auc"], abs=1e-5)  # (rounding: ties)
        cal = next(r["calibration"] for r in auto["option_selection"]["table"]
                   if r["verdict"] == "chosen")
        assert cal != {"intercept": 0.0, "slope": 1.0}
        assert auto["log_loss"] != pytest.approx(row["log_loss"], abs=1e-9)
    auc = {n: r["auc"] for n, r in zip(names, rows, strict=True)}
    assert auc[("skills", "pfa")] > auc[()] + 0.01
    assert all(r["n_predictions"] == 150 * 24 and r["predict_us_per_request"] > 0 for r in rows)
    from irt.tools.cli import _print_table

    _print_table(rows, published=False)  # these files are not the published split
    table = capsys.readouterr().out
    assert "2pl+skills+pfa" in table and "Best-LR" not in table
    assert table.splitlines()[1].split()[-1] == "converged"
    assert all(line.split()[-1] in ("yes", "NO") for line in table.splitlines()[2:9])
    assert "2pl+auto -> " in table and "  auto: validated on " in table
    # each candidate's validation line shows its ECE before calibration and the calibration
    lines = [line for line in table.splitlines() if "(uncalibrated " in line]
    assert len(lines) == 5 and all("calibration " in line and " z)" in line for line in lines)
    _print_table(rows, published=True)
    assert "Best-LR 0.77" in capsys.readouterr().out
