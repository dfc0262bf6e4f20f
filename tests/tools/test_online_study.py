"""The offline/online study (ML Test Score, model 2; ``irt.tools.online_study``): in a
simulated LMS where learners with known learning dynamics practise on the items ``predict``'s
next-items code picks, models that score better offline (AUC, log-loss) give more practice in
the target band and reach mastery in fewer answers. Run at the test's size
(:data:`irt.tools.online_study.QUICK`: 2 worlds x 7 models x 60 learners x 20 answers); the
benchmark (``benchmarks/bench_online_study.py``) runs the full size."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from irt.tools.online_study import (
    QUICK,
    models_of_varied_quality,
    permutation_critical,
    run_lms,
    spearman,
    study,
)


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return study(QUICK)


def test_offline_metrics_rank_the_models_as_the_lms_outcome_does(result) -> None:
    """Across the 14 (world, model) runs, Spearman's rho between each offline figure and
    each LMS outcome exceeds the one-sided 1 % critical value of a permutation test (what
    no association would reach once in a hundred runs): the claim could fail."""
    pooled = result["correlation"]["pooled"]
    print(pooled)
    assert pooled["n"] == 14
    assert pooled["critical"] == pytest.approx(permutation_critical(14), abs=1e-12)
    assert 0.5 < pooled["critical"] < 0.7  # a sanity bound on the permutation quantile
    for key in ("auc_vs_share_in_band", "neg_log_loss_vs_share_in_band",
                "auc_vs_fewer_answers_to_mastery"):
        assert pooled[key] > pooled["critical"], key


def test_the_better_offline_model_gives_the_better_practice(result) -> None:
    """In each world the true parameters beat the shuffled ones offline and online by far
    more than the noise (4 standard errors over learners), and with the true parameters at
    least 40 % of the recommended items are in the target band 0.6-0.8 (against ~20-30 %
    shuffled): predict's target strategy does what it is for."""
    for seed in QUICK.seeds:
        rows = {r["model"]: r for r in result["rows"] if r["seed"] == seed}
        true, shuffled = rows["true"], rows["shuffled"]
        assert true["auc"] > shuffled["auc"] + 0.1
        noise = math.hypot(true["share_in_band_se"], shuffled["share_in_band_se"])
        assert true["share_in_band"] > shuffled["share_in_band"] + 4 * noise
        assert true["share_in_band"] >= 0.4
        noise = math.hypot(true["answers_to_mastery_se"], shuffled["answers_to_mastery_se"])
        assert true["answers_to_mastery"] < shuffled["answers_to_mastery"] - 4 * noise


def test_the_study_measures_what_it_says(result) -> None:
    """The figures are what they claim: the offline AUC is the online-protocol AUC of the
    same model on a log of the same world; a model re-run on the same learners gives the
    same outcome (common random numbers), and the share is a share."""
    models, a, b = models_of_varied_quality(1, QUICK)
    assert set(models) == {r["model"] for r in result["rows"] if r["seed"] == 1}
    assert np.array_equal(models["true"].a, a) and np.array_equal(models["true"].b, b)
    again = run_lms(models["noise 1"], a, b, 1, QUICK)
    row = next(r for r in result["rows"] if r["seed"] == 1 and r["model"] == "noise 1")
    assert again["share_in_band"] == row["share_in_band"]
    assert 0.0 <= row["share_in_band"] <= 1.0 and 1 <= row["answers_to_mastery"] <= 21
    # the offline log is not the calibration log: the calibrated model's offline AUC is
    # no better than the true parameters' (it would be, on its own training answers)
    true_row = next(r for r in result["rows"] if r["seed"] == 1 and r["model"] == "true")
    cal_row = next(r for r in result["rows"] if r["seed"] == 1 and r["model"] == "calibrated")
    assert cal_row["log_loss"] >= true_row["log_loss"]
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # a band that holds every probability: every recommendation is inside it
    everything = replace(QUICK, band=(0.0, 1.0), n_learners=10, steps=5)
    assert run_lms(models["shuffled"], a, b, 1, everything)["share_in_band"] == 1.0
