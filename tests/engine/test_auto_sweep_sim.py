"""The simulator of ``benchmarks/auto_sweep.py`` draws each answer from the covariates that
:func:`irt.engine.learning.history_features` computes: its figures test ``auto`` on the model
the engine fits, not on a near-copy of it."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from irt.engine.learning import history_features

SWEEP = Path(__file__).resolve().parents[2] / "benchmarks" / "auto_sweep.py"


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("auto_sweep", SWEEP)
    module = importlib.util.module_from_spec(spec)
    sys.modules["auto_sweep"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules["auto_sweep"]


@pytest.mark.parametrize("name", ["practice", "repeats", "mistagged"])
def test_the_sweeps_covariates_are_the_engines(sweep, name) -> None:
    shape = replace(next(s for s in sweep.SHAPES if s.name == name), n_train=30)
    log = sweep.simulate(shape, 30, 0)
    item_skill = np.arange(shape.n_items) % shape.n_skills  # the truth's skills
    expected = history_features(log.student, item_skill[log.item], log.correct,
                                np.ones(log.correct.shape[0], dtype=bool), sweep.WINDOW)
    np.testing.assert_allclose(log.x, expected, rtol=0, atol=1e-12)
    # the draws depend on the history: the covariates are not all zero
    assert np.abs(log.x).sum(axis=0).min() > 0


def test_the_truths_probabilities_are_probabilities(sweep) -> None:
    shape = replace(next(s for s in sweep.SHAPES if s.name == "guessing"), n_train=30)
    log = sweep.simulate(shape, 30, 0)
    # a quarter of the answers are coin flips: p lies within [0.125, 0.875]
    assert log.p_true.min() >= 0.125 - 1e-12 and log.p_true.max() <= 0.875 + 1e-12
    assert set(np.unique(log.correct).tolist()) == {0, 1}
