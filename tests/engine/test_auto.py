"""``auto``: the option set chosen on held-out training students (:mod:`irt.engine.auto`),
on logs simulated with known truth: one where the learning-aware model generated the answers,
one where the plain 2PL did."""

from __future__ import annotations

import numpy as np
import pytest
from learning_sim import simulate_learning

from irt.engine.artifact import load_model
from irt.engine.auto import AutoConfig, choose_options, fit_chosen, validation_students
from irt.engine.calibrate import FitConfig, fit
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
    winners = []
    for row in choice.table[1:]:
        won = (row["em_converged"] and row["gain"] > config.noise_z * row["noise"]
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
    # validated on about a fifth of the students, none of them in the fit part
    total = choice.n_fit_students + choice.n_validation_students
    assert total == 500 and 0.12 < choice.n_validation_students / total < 0.28


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


@pytest.mark.parametrize("settings", [{"validation_share": 0.0}, {"validation_share": 1.0},
                                      {"noise_z": -1.0}, {"min_validation_students": 1}])
def test_auto_settings_are_checked(settings) -> None:
    with pytest.raises(ValueError):
        AutoConfig(**settings)
