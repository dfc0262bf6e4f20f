"""``auto``: the option set chosen on held-out training students (:mod:`irt.engine.auto`),
on logs simulated with known truth: one where the learning-aware model generated the answers,
one where the plain 2PL did."""

from __future__ import annotations

import math

import numpy as np
import pytest
from learning_sim import simulate_learning

from irt.engine.artifact import load_model
from irt.engine.auto import (
    AutoConfig,
    OptionChoice,
    _cross_calibrated,
    choose_options,
    fit_calibration,
    fit_chosen,
    noise_factor,
    student_folds,
    validation_students,
)
from irt.engine.calibrate import FitConfig, fit
from irt.engine.defaults import fold_count
from irt.engine.evaluate import metrics, online_predictions
from irt.engine.hashing import unit_hash
from irt.engine.learning import learning_of
from irt.engine.learning_fit import LearningConfig

BETA = np.array([0.3, -0.2, 0.2, -0.2, 0.3])
FIT = FitConfig(compute_se=False)


@pytest.fixture(scope="module")
def learning_log():
    """Answers drawn from the learning-aware model: skill offsets (tau 0.8) and covariates."""
    return simulate_learning(500, 24, 3, tau=0.8, beta=BETA, seed=51, item_seed=4)


@pytest.fixture(scope="module")
def plain_log():
    """Answers drawn from the plain 2PL: no offsets, no covariate effects."""
    return simulate_learning(500, 24, 3, tau=0.0, beta=np.zeros(5), seed=52, item_seed=4)


def _choose(sim, **settings):
    return choose_options(sim.responses, sim.order, sim.item_skill, sim.skill_ids, FIT,
                          LearningConfig(), AutoConfig(**settings))


def _check_rule(choice, config: AutoConfig) -> None:
    """The rule, row by row: the chosen set won on every count and has the largest gain
    among the winners; a set that lost on any count is never chosen."""
    plain = choice.table[0]
    assert plain["options"] == [] and plain["gain"] == 0.0
    # z: noise_z standard errors of a normal at the same one-sided level in Student's t
    # with S - 1 degrees of freedom (S validation students)
    from scipy.stats import norm, t
    level = norm.cdf(config.noise_z)
    assert t.cdf(choice.noise_factor, choice.n_validation_students - 1) == pytest.approx(level)
    assert choice.noise_factor > config.noise_z
    winners = []
    for row in choice.table[1:]:
        won = (row["em_converged"] and row["gain"] > choice.noise_factor * row["noise"]
               and row["auc"] >= plain["auc"]
               and row["ece"] <= plain["ece"] + config.max_ece_over_plain)
        assert row["verdict"].startswith("lost") != won, row
        if won:
            winners.append(row)
    if winners:
        best = max(winners, key=lambda r: r["gain"])
        assert tuple(best["options"]) == choice.options and best["verdict"] == "chosen"
    else:
        assert choice.options == () and plain["verdict"].startswith("chosen")


def test_auto_chooses_an_option_set_when_the_log_has_learning(learning_log) -> None:
    choice = _choose(learning_log)
    _check_rule(choice, AutoConfig())
    assert {"skills", "pfa"} & set(choice.options)
    row = next(r for r in choice.table if r["verdict"] == "chosen")
    assert row["gain"] > 2 * row["noise"] > 0
    assert [tuple(r["options"]) for r in choice.table] == [
        (), ("recency",), ("skills",), ("pfa",), ("skills", "pfa"), ("recency", "skills", "pfa")]
    # about 100 hold-out students, below all_folds_below (200): every student, in 5 folds
    assert choice.n_folds == 5 and choice.n_validation_students == 500


def test_a_few_validation_students_need_a_larger_edge(learning_log) -> None:
    """With S validation students the gain must exceed the t quantile (S - 1 degrees of
    freedom) at the level of 2 normal standard errors: 3.3 at S = 4, 2.0 for thousands."""
    assert noise_factor(2.0, 4) == pytest.approx(3.307, abs=1e-3)
    assert noise_factor(2.0, 30) == pytest.approx(2.09, abs=1e-2)
    assert noise_factor(2.0, 100_000) == pytest.approx(2.0, abs=1e-3)
    assert noise_factor(2.0, 1) == math.inf
    # never written to the record as JSON's non-standard Infinity
    record = OptionChoice((), [], 1, 1, 2, 0.0, AutoConfig(), math.inf).to_dict()
    assert record["noise_factor"] is None
    # the hold-out split kept (all_folds_below=0) on a log it leaves few students to validate
    choice = _choose(learning_log, validation_share=0.02, all_folds_below=0)
    assert 3 <= choice.n_validation_students <= 20 and choice.n_folds == 1
    _check_rule(choice, AutoConfig(validation_share=0.02))
    assert choice.to_dict()["noise_factor"] == pytest.approx(choice.noise_factor, abs=1e-4)


def test_the_cli_and_the_docs_state_the_t_factor(learning_log, capsys) -> None:
    """``irt evaluate --options auto`` prints the factor a gain had to exceed (a row that won
    showed only its gain and noise, and a reader checking them against 2 judged a rule not
    applied); the README's rule and the CLI help's defaults name the t quantile."""
    from pathlib import Path

    from irt.engine.defaults import DEFAULTS
    from irt.tools.cli import _print_selection

    choice = _choose(learning_log, validation_share=0.02, all_folds_below=0)
    _print_selection(choice.to_dict())
    header = capsys.readouterr().out.splitlines()[0]
    assert f"a gain must exceed {choice.noise_factor:.3g} x its noise" in header
    assert "Student's t" in DEFAULTS.describe()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    rule = readme.split("A set **wins** when", 1)[1].split("\n5. ", 1)[0]
    assert "2 × its noise" not in rule and "Student's t" in rule


def test_auto_keeps_plain_when_no_option_set_wins_beyond_noise(plain_log) -> None:
    choice = _choose(plain_log)
    _check_rule(choice, AutoConfig())
    assert choice.options == ()


def test_a_set_that_loses_on_any_count_is_never_chosen(learning_log) -> None:
    strict = AutoConfig(noise_z=1e6)  # no edge is large enough
    choice = _choose(learning_log, noise_z=1e6)
    _check_rule(choice, strict)
    assert choice.options == () and all(r["verdict"].startswith("lost")
                                        for r in choice.table[1:])
    no_ece = AutoConfig(max_ece_over_plain=0.0)  # any rise of the calibration error loses
    choice = _choose(learning_log, max_ece_over_plain=0.0)
    _check_rule(choice, no_ece)
    chosen = next((r for r in choice.table if r["verdict"] == "chosen"), choice.table[0])
    assert chosen["ece"] <= choice.table[0]["ece"]


def test_without_a_skill_map_only_recency_is_tried(plain_log) -> None:
    sim = plain_log
    choice = choose_options(sim.responses, sim.order, None, (), FIT, LearningConfig())
    assert [tuple(r["options"]) for r in choice.table] == [(), ("recency",)]


def test_the_validation_split_is_stable_and_not_the_gates_sample() -> None:
    ids = [f"student-{k}" for k in range(20_000)]
    first = validation_students(ids, 0.2)
    assert np.array_equal(first, validation_students(list(ids), 0.2))  # no salted hash
    assert 0.19 < first.mean() < 0.21
    gate = np.array([unit_hash(s) < 0.1 for s in ids])  # the gate's hold-out sample
    overlap = (first & gate).mean()
    assert overlap == pytest.approx(0.2 * 0.1, abs=0.005)  # independent, not nested


@pytest.fixture(scope="module")
def small_log():
    """A learning log of 120 students: the hold-out split would validate on about 24."""
    return simulate_learning(120, 24, 3, tau=0.8, beta=BETA, seed=53, item_seed=4)


def test_folds_are_stable_and_the_first_is_the_hold_out_split() -> None:
    assert [fold_count(s) for s in (0.2, 0.25, 0.5, 0.6, 0.02)] == [5, 4, 2, 2, 10]
    ids = [f"student-{k}" for k in range(20_000)]
    folds = student_folds(ids, 5)
    assert np.array_equal(folds, student_folds(list(ids), 5))
    assert np.bincount(folds).min() > 0.19 * len(ids)
    # fold 0 of 5 is the 20 % hold-out split: a large log's validation is one of the folds
    assert np.array_equal(folds == 0, validation_students(ids, 0.2))


def test_a_small_log_is_validated_on_every_student_fold_by_fold(small_log) -> None:
    choice = _choose(small_log)
    assert choice.n_folds == 5 and choice.to_dict()["n_folds"] == 5
    assert choice.n_validation_students == choice.n_fit_students == 120
    assert choice.n_validation_answers == small_log.responses.n_answers
    _check_rule(choice, AutoConfig())
    # the plain row's figures are the out-of-fold predictions': each student's answers
    # predicted online by the plain model fitted on the other folds only
    train = small_log.responses
    fold = student_folds(train.student_ids, 5)[train.student]
    rows = np.lexsort((small_log.order, train.student))
    p = np.empty(train.n_answers)
    for k in range(5):
        mine = rows[fold[rows] == k]
        model = fit(train.subset(fold != k), FIT, small_log.item_skill, small_log.skill_ids).model
        p[mine] = online_predictions(model, train.student[mine],
                                     model.positions([train.item_ids[j] for j in train.item[mine]]),
                                     train.correct[mine].astype(np.int8))
    expected = metrics(train.correct[rows].astype(float), p[rows])
    plain = choice.table[0]
    assert plain["auc"] == pytest.approx(expected["auc"], abs=1e-6)
    assert plain["log_loss"] == pytest.approx(expected["log_loss"], abs=1e-6)
    # the hold-out split alone, as a large log is validated
    held = _choose(small_log, all_folds_below=0)
    assert held.n_folds == 1 and held.n_validation_students < 40
    assert held.n_fit_students + held.n_validation_students == 120


def test_a_large_log_keeps_the_hold_out_split(learning_log) -> None:
    """About 100 hold-out students, at least ``all_folds_below`` (here 60): one fold,
    validated on about a fifth of the students, none of them in the fit part, and the same
    choice and table as with the folds switched off."""
    choice = _choose(learning_log, all_folds_below=60)
    assert choice.n_folds == 1
    total = choice.n_fit_students + choice.n_validation_students
    assert total == 500 and choice.n_validation_students >= 60 and 0.12 < (
        choice.n_validation_students / total) < 0.28
    _check_rule(choice, AutoConfig())
    held = _choose(learning_log, all_folds_below=0)
    assert choice.options == held.options and choice.table == held.table


def test_the_choice_is_recorded_in_the_artifact(learning_log) -> None:
    sim = learning_log
    choice = _choose(sim)
    base = fit(sim.responses, FIT).model
    result = fit_chosen(base, sim.responses, sim.order, sim.item_skill, sim.skill_ids,
                        LearningConfig(), choice)
    again = load_model(result.model.to_json())
    record = again.fit["option_selection"]
    assert record["chosen"] == list(choice.options) and record["method"] == "auto"
    assert [r["verdict"] for r in record["table"]] == [r["verdict"] for r in choice.table]
    spec = learning_of(again)
    assert spec is not None and spec.options == choice.options
    # every candidate judged calibrated; the chosen one's calibration is the one served
    assert "calibration" not in choice.table[0]
    for row in choice.table[1:]:
        assert row["calibration"]["slope"] > 0 and "ece_uncalibrated" in row
    chosen = next(r for r in choice.table if r["verdict"] == "chosen")
    assert spec.calibration == (chosen["calibration"]["intercept"],
                                chosen["calibration"]["slope"]) == choice.calibration
    assert record["table"][1]["calibration"] == choice.table[1]["calibration"]


@pytest.mark.parametrize("truth", [(0.3, 0.6), (-0.2, 1.4), (0.0, 1.0)])
def test_fit_calibration_recovers_a_known_calibration(truth) -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(0.3, 1.5, 40_000)
    y = rng.random(z.shape[0]) < 1.0 / (1.0 + np.exp(-(truth[0] + truth[1] * z)))
    c0, c1 = fit_calibration(z, y)
    # standard errors here are about 0.013 (intercept) and 0.012 (slope): 4 of them
    assert c0 == pytest.approx(truth[0], abs=0.05) and c1 == pytest.approx(truth[1], abs=0.05)


def test_fit_calibration_keeps_the_identity_when_it_cannot_fit_one() -> None:
    z = np.linspace(-2, 2, 50)
    assert fit_calibration(z, np.ones(50)) == (0.0, 1.0)  # all right: nothing to fit
    assert fit_calibration(z[:1], np.zeros(1)) == (0.0, 1.0)
    # answers that fall as the logit rises would need a negative slope, which would reverse
    # the order of the probabilities: refused
    rng = np.random.default_rng(6)
    big = rng.normal(0, 2, 5000)
    down = rng.random(5000) < 1.0 / (1.0 + np.exp(big))
    assert fit_calibration(big, down) == (0.0, 1.0)


def test_fit_calibration_returns_what_the_artifact_stores() -> None:
    """The calibration is stored to 6 decimals; ``fit_calibration`` returns those values, so a
    slope that rounds to 0 (which the artifact refuses: a model ``prepare`` would publish and
    ``predict`` refuse) keeps the identity."""
    rng = np.random.default_rng(5)
    z = rng.normal(0.3, 1.5, 5000)
    y = rng.random(z.shape[0]) < 1.0 / (1.0 + np.exp(-(0.3 + 0.6 * z)))
    c = fit_calibration(z, y)
    assert c != (0.0, 1.0) and c == tuple(round(v, 6) for v in c)
    # a slope of about 3e-7: answers at logits +30 and -30, right half the time plus one
    n = 200_000
    z = np.r_[np.full(n, 30.0), np.full(n, -30.0)]
    y = np.zeros(2 * n)
    y[:n // 2 + 1] = 1
    y[n:n + n // 2] = 1
    assert fit_calibration(z, y) == (0.0, 1.0)


def test_the_validation_predictions_are_calibrated_without_their_own_answers() -> None:
    """Cross-fitting: a student's calibrated predictions come from a calibration fitted on
    the other half of the students, so changing all of that student's answers leaves them
    as they were (and moves the other half's)."""
    rng = np.random.default_rng(7)
    student = np.repeat(np.arange(40), 25)
    z = rng.normal(0, 2, student.shape[0])
    y = (rng.random(student.shape[0]) < 1.0 / (1.0 + np.exp(-0.5 * z))).astype(float)
    p = 1.0 / (1.0 + np.exp(-z))
    before, full = _cross_calibrated(p, y, student)
    assert full[1] == pytest.approx(0.5, abs=0.15)
    flipped = y.copy()
    own = student == 3
    flipped[own] = 1 - flipped[own]
    after, _ = _cross_calibrated(p, flipped, student)
    same_half = student % 2 == 1
    np.testing.assert_array_equal(after[own], before[own])
    np.testing.assert_array_equal(after[same_half], before[same_half])
    assert not np.allclose(after[~same_half], before[~same_half])


@pytest.mark.parametrize("settings", [{"validation_share": 0.0}, {"validation_share": 1.0},
                                      {"noise_z": -1.0}, {"min_validation_students": 1},
                                      {"all_folds_below": -1}])
def test_auto_settings_are_checked(settings) -> None:
    with pytest.raises(ValueError):
        AutoConfig(**settings)
