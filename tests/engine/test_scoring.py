"""Tests of ``irt.engine.scoring``: ML and WLE abilities (and the four-method entry point).

Against R mirt 1.45.1 ``fscores(mod, method = 'ML' | 'WLE' | 'MAP' | 'EAP',
response.pattern = pats)`` on LSAT7 (all 32 patterns), LSAT6, deAyala, SAT12 and VerbAgg
(values in ``tests/data/mirt_diagnostics_reference.json``, sources in ``tests/data/SOURCE.md``),
scoring with mirt's own item estimates so that only the scorer is compared.  Also against
brute-force truth computed here with scipy (the likelihood maximised by
``minimize_scalar``; Warm's bias-corrected score solved by ``brentq``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from mirt_reference import DATASETS, mirt_model, num, ref
from scipy.optimize import brentq, minimize_scalar
from scipy.special import expit, log_expit

from irt.engine.model import ItemModel
from irt.engine.scoring import MAX_SE, ml_batch, score_batch, wle_batch

# mirt maximises with nlm (gradient tolerance 1e-6): its estimates sit within a few 1e-6 of
# the optimum (measured here: at most 4e-6 for ML/WLE/MAP); 1e-4 leaves room for that only.
THETA_ATOL = 1e-4
# SEs of ML and MAP: mirt's nlm Hessian by finite differences (measured: at most 6e-5).
SE_ATOL = 2e-4
# WLE SEs: the same finite-difference Hessian of a flatter objective; measured at most 1e-3
# (SAT12 2PL), analytic here.
WLE_SE_ATOL = 2e-3


def pattern_args(dataset: str, model: str) -> tuple[np.ndarray, ...]:
    pats = np.array(ref(dataset, model)["fscores_patterns"]["patterns"], dtype=float)
    s, j = np.nonzero(~np.isnan(pats))
    return s, j, pats[s, j].astype(np.int8), pats.shape[0]


@pytest.mark.parametrize("model", ["2PL", "Rasch"])
@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("method", ["ML", "WLE", "MAP"])
def test_scores_match_mirt_fscores(dataset: str, model: str, method: str) -> None:
    bank = mirt_model(dataset, model)
    s, j, y, n = pattern_args(dataset, model)
    theta, se = score_batch(bank, s, j, y, n, method)
    want = ref(dataset, model)["fscores_patterns"][method]
    want_theta, want_se = num(want["F1"]), num(want["SE_F1"])
    finite = np.isfinite(want_theta)
    # the infinite ML estimates (all right / all wrong) are the same, with no SE
    np.testing.assert_array_equal(theta[~finite], want_theta[~finite])
    np.testing.assert_allclose(theta[finite], want_theta[finite], atol=THETA_ATOL, rtol=0)
    np.testing.assert_array_equal(np.isnan(se), np.isnan(want_se))
    tol = WLE_SE_ATOL if method == "WLE" else SE_ATOL
    np.testing.assert_allclose(se[~np.isnan(se)], want_se[~np.isnan(want_se)], atol=tol, rtol=0)


@pytest.mark.parametrize("dataset", DATASETS)
def test_eap_on_mirt_grid_matches_mirt_fscores(dataset: str) -> None:
    # 2PL (sigma = 1): ability.eap_batch's 121-node grid on +/- 6 sigma is mirt's fscores grid.
    bank = mirt_model(dataset, "2PL")
    s, j, y, n = pattern_args(dataset, "2PL")
    theta, se = score_batch(bank, s, j, y, n, "EAP", n_points=121)
    want = ref(dataset, "2PL")["fscores_patterns"]["EAP"]
    np.testing.assert_allclose(theta, num(want["F1"]), atol=THETA_ATOL, rtol=0)
    np.testing.assert_allclose(se, num(want["SE_F1"]), atol=SE_ATOL, rtol=0)


def test_lsat7_extreme_patterns_follow_mirt_bounds() -> None:
    bank = mirt_model("lsat7", "2PL")
    s, j, y, n = pattern_args("lsat7", "2PL")
    ml, ml_se = ml_batch(bank, s, j, y, n)
    wle, wle_se = wle_batch(bank, s, j, y, n)
    # patterns in binary order: row 0 all wrong, row 31 all right
    assert ml[0] == -math.inf and ml[31] == math.inf
    assert math.isnan(ml_se[0]) and math.isnan(ml_se[31])
    assert np.all(np.isfinite(ml[1:31]))
    assert np.all(np.isfinite(wle)) and np.all(np.isfinite(wle_se))
    assert wle[0] < wle[1:31].min() and wle[31] > wle[1:31].max()


# --------------------------------------------------------------------------- brute force
def bank(model_type: str, n: int = 25, seed: int = 3) -> ItemModel:
    rng = np.random.default_rng(seed)
    a = np.ones(n) if model_type == "rasch" else rng.uniform(0.5, 2.2, n)
    c = rng.uniform(0.05, 0.3, n) if model_type == "3pl" else np.zeros(n)
    nan = np.full(n, np.nan)
    return ItemModel(model_type, tuple(f"q{k}" for k in range(n)), a, rng.normal(0, 1, n), c,
                     nan, nan, nan)


def loglik(m: ItemModel, y: np.ndarray, t: float) -> float:
    z = m.a * (t - m.b)
    log_p = np.log(m.c + (1 - m.c) * expit(z)) if m.model_type == "3pl" else log_expit(z)
    log_q = np.log1p(-m.c) + log_expit(-z)
    return float(np.sum(np.where(y == 1, log_p, log_q)))


def info(m: ItemModel, t: float) -> float:
    return float(np.sum(m.information(t)))


@pytest.mark.parametrize("model_type", ["rasch", "2pl", "3pl"])
def test_ml_is_the_maximum_of_the_likelihood(model_type: str) -> None:
    m = bank(model_type)
    rng = np.random.default_rng(11)
    ys = (rng.random((30, m.n_items)) < 0.6).astype(np.int8)
    ys = ys[(ys.sum(1) > 0) & (ys.sum(1) < m.n_items)]
    s, j = np.nonzero(np.ones_like(ys))
    theta, se = ml_batch(m, s, j, ys[s, j], ys.shape[0])
    grid = np.linspace(-20, 20, 4001)
    at_bound = 0
    for k, y in enumerate(ys):
        # global search: the best node of a 0.01 grid, then refined around it
        t0 = grid[np.argmax([loglik(m, y, t) for t in grid])]
        if abs(t0) == 20:  # a 3PL likelihood still rising at the bound: reported infinite
            at_bound += 1
            assert theta[k] == math.copysign(math.inf, t0) and math.isnan(se[k])
            continue
        best = minimize_scalar(lambda t, y=y: -loglik(m, y, t), bounds=(t0 - 0.01, t0 + 0.01),
                               method="bounded", options={"xatol": 1e-10})
        assert theta[k] == pytest.approx(best.x, abs=1e-5)
        if model_type != "3pl":  # observed = expected information for the 1PL/2PL
            assert se[k] == pytest.approx(1 / math.sqrt(info(m, theta[k])), rel=1e-6)
    assert at_bound < len(ys) / 2


@pytest.mark.parametrize("model_type", ["rasch", "2pl"])
def test_wle_solves_warms_corrected_score(model_type: str) -> None:
    m = bank(model_type)
    rng = np.random.default_rng(5)
    ys = (rng.random((20, m.n_items)) < 0.5).astype(np.int8)
    ys[0], ys[1] = 0, 1  # all wrong, all right: finite WLE
    s, j = np.nonzero(np.ones_like(ys))
    theta, _ = wle_batch(m, s, j, ys[s, j], ys.shape[0])

    def corrected_score(t: float, y: np.ndarray) -> float:
        # l'(t) + J / (2 I), J = sum P' P'' / (P Q) (Warm 1989), c = 0
        p = expit(m.a * (t - m.b))
        d1 = m.a * p * (1 - p)
        d2 = m.a * d1 * (1 - 2 * p)
        return float(np.sum(m.a * (y - p)) + np.sum(d1 * d2 / (p * (1 - p))) / (2 * info(m, t)))

    for k, y in enumerate(ys):
        root = brentq(corrected_score, -15, 15, args=(y,), xtol=1e-12)
        assert theta[k] == pytest.approx(root, abs=1e-6)


def test_wle_3pl_maximises_the_weighted_likelihood() -> None:
    m = bank("3pl")
    rng = np.random.default_rng(8)
    ys = (rng.random((15, m.n_items)) < 0.55).astype(np.int8)
    s, j = np.nonzero(np.ones_like(ys))
    theta, _ = wle_batch(m, s, j, ys[s, j], ys.shape[0])
    for k, y in enumerate(ys):
        best = minimize_scalar(lambda t, y=y: -(loglik(m, y, t) + 0.5 * math.log(info(m, t))),
                               bounds=(-20, 20), method="bounded", options={"xatol": 1e-10})
        assert theta[k] == pytest.approx(best.x, abs=1e-5)


def test_a_flat_likelihood_gives_an_infinite_ml_estimate() -> None:
    # two nearly flat items (a = 0.02): the ML SE would be about 1/sqrt(2 * 0.02^2 / 4) = 71 >
    # MAX_SE, so mirt's rule reports +inf (the maximum lies above both difficulties)
    nan = np.full(2, np.nan)
    m = ItemModel("2pl", ("x", "y"), np.array([0.02, 0.02]), np.array([-1.0, 3.0]),
                  np.zeros(2), nan, nan, nan)
    theta, se = ml_batch(m, np.array([0, 0]), np.array([0, 1]), np.array([1, 0]), 1)
    assert 1 / math.sqrt(info(m, 1.0)) > MAX_SE
    assert theta[0] == math.inf and math.isnan(se[0])


def test_students_without_answers_and_bad_input() -> None:
    m = bank("2pl")
    theta, se = score_batch(m, np.array([1]), np.array([0]), np.array([1]), 3, "WLE")
    assert math.isnan(theta[0]) and math.isnan(theta[2]) and np.isfinite(theta[1])
    assert math.isnan(se[0]) and np.isfinite(se[1])
    theta, se = score_batch(m, np.array([1]), np.array([0]), np.array([1]), 2, "ML")
    assert math.isnan(theta[0]) and theta[1] == math.inf and math.isnan(se[1])
    with pytest.raises(ValueError, match="one length"):
        ml_batch(m, np.array([0, 0]), np.array([0]), np.array([1]), 1)
    with pytest.raises(ValueError, match="method must be one of"):
        score_batch(m, np.array([0]), np.array([0]), np.array([1]), 1, "BOGUS")  # type: ignore[arg-type]
