"""Tests of ``irt.engine.ability``: EAP and MAP abilities against brute-force numerical truth.

Reference values are computed here, independently of the engine: the exact log
posterior (``scipy.special.log_expit``), integrated with ``scipy.integrate.quad``
over the whole real line, and maximised with ``scipy.optimize.minimize_scalar``.
Item banks are built directly as :class:`ItemModel` objects with known parameters.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.optimize import minimize_scalar
from scipy.special import log_expit

import irt.engine.ability
from irt.engine.ability import eap, eap_batch, estimate, map_batch
from irt.engine.model import ItemModel, irf, item_information

N_BANK = 1000


def make_bank(model_type: str, sigma: float = 1.0, n: int = N_BANK, seed: int = 7) -> ItemModel:
    rng = np.random.default_rng(seed)
    a = {"rasch": np.ones(n)}.get(model_type, rng.uniform(0.4, 2.5, n))
    b = rng.normal(0.0, 1.2, n)
    c = rng.uniform(0.0, 0.3, n) if model_type == "3pl" else np.zeros(n)
    nan = np.full(n, np.nan)
    return ItemModel(model_type=model_type, item_ids=tuple(f"I{j}" for j in range(n)),
                     a=a, b=b, c=c, se_a=nan, se_b=nan, se_c=nan, population_sd=sigma)


def answers(model: ItemModel, k: int, theta: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``k`` distinct items and answers drawn from the model at ``theta``."""
    rng = np.random.default_rng(seed)
    pos = rng.permutation(model.n_items)[:k]
    p = model.c[pos] + (1 - model.c[pos]) / (1 + np.exp(-model.a[pos] * (theta - model.b[pos])))
    return pos, (rng.random(k) < p).astype(np.int8)


# --------------------------------------------------------------------------- exact posterior
def log_posterior(model: ItemModel, pos, y, theta: float) -> float:
    """Exact log-likelihood plus the N(0, sigma^2) log prior (up to a constant)."""
    a, b, c = model.a[pos], model.b[pos], model.c[pos]
    z = a * (theta - b)
    with np.errstate(divide="ignore"):
        log_p = np.logaddexp(np.log(c), np.log1p(-c) + log_expit(z))  # log(c + (1-c) F(z))
    log_q = np.log1p(-c) + log_expit(-z)
    ll = float(np.sum(np.where(y == 1, log_p, log_q)))
    return ll - 0.5 * theta**2 / model.population_sd**2


def brute_mode(model, pos, y) -> float:
    s = model.population_sd
    res = minimize_scalar(lambda t: -log_posterior(model, pos, y, t), bounds=(-12 * s, 12 * s),
                          method="bounded", options={"xatol": 1e-12, "maxiter": 2000})
    return float(res.x)


def brute_eap(model, pos, y) -> tuple[float, float]:
    """Posterior mean and SD by adaptive quadrature over (-inf, inf)."""
    mode = brute_mode(model, pos, y)
    top = log_posterior(model, pos, y, mode)  # subtract the max: no underflow
    info = float(np.sum(item_information(mode, model.a[pos], model.b[pos], model.c[pos])))
    width = 20.0 / math.sqrt(info + 1.0 / model.population_sd**2)
    cuts = [-np.inf, mode - width, mode + width, np.inf]

    def integral(g) -> float:
        total = 0.0
        for lo, hi in itertools.pairwise(cuts):
            kw = {"points": [mode]} if np.isfinite(lo) and np.isfinite(hi) else {}
            val, _ = quad(lambda t: g(t) * math.exp(log_posterior(model, pos, y, t) - top),
                          lo, hi, epsabs=0.0, epsrel=1e-11, limit=500, **kw)
            total += val
        return total

    z = integral(lambda t: 1.0)
    mean = integral(lambda t: t) / z
    var = integral(lambda t: (t - mean) ** 2) / z
    return mean, math.sqrt(var)


BANKS = {
    "2pl": make_bank("2pl"),
    "3pl": make_bank("3pl"),
    "rasch": make_bank("rasch", sigma=0.75),
    "rasch_wide": make_bank("rasch", sigma=1.6),
}


# --------------------------------------------------------------------------- EAP
@pytest.mark.parametrize("bank", list(BANKS))
@pytest.mark.parametrize("k", [0, 1, 5, 50, 300, 1000])
def test_eap_equals_numerical_integration(bank, k):
    model = BANKS[bank]
    pos, y = answers(model, k, theta=0.6, seed=k + 11)
    theta, se = eap(model, pos, y)
    ref_theta, ref_se = brute_eap(model, pos, y) if k else (0.0, model.population_sd)
    assert theta == pytest.approx(ref_theta, abs=1e-6)
    assert se == pytest.approx(ref_se, abs=1e-6)


@pytest.mark.parametrize("bank", list(BANKS))
def test_eap_high_ability_matches_numerical_integration(bank):
    # a strong student (40 answers drawn at theta = 2 sigma, some wrong): the
    # posterior lies well inside the +/- 6 sigma grid
    model = BANKS[bank]
    pos, y = answers(model, 40, theta=2.0 * model.population_sd, seed=3)
    assert 0 < y.sum() < 40
    theta, se = eap(model, pos, y)
    ref_theta, ref_se = brute_eap(model, pos, y)
    assert theta == pytest.approx(ref_theta, abs=1e-6)
    assert se == pytest.approx(ref_se, abs=1e-6)


@pytest.mark.parametrize("bank", ["2pl", "3pl", "rasch"])
@pytest.mark.parametrize("right", [1, 0])
def test_eap_extreme_patterns_match_numerical_integration(bank, right):
    # All 200 answers right (or wrong): the exact posterior mean is about +/-4.25
    # (2PL) or +/-4.0 (Rasch, sigma = 0.75) with SD about 0.35-0.47, so a grid
    # that stops at 6 sigma cuts off part of the posterior.  The module promises
    # agreement with adaptive integration; this checks it where it is hardest.
    model = BANKS[bank]
    pos = np.arange(200)
    y = np.full(200, right, dtype=np.int8)
    theta, se = eap(model, pos, y)
    ref_theta, ref_se = brute_eap(model, pos, y)
    assert theta == pytest.approx(ref_theta, abs=1e-6)
    assert se == pytest.approx(ref_se, abs=1e-6)


def test_eap_no_answers_is_the_prior():
    for model in BANKS.values():
        empty = np.array([], dtype=np.int64)
        theta, se = eap(model, empty, empty)
        assert abs(theta) < 1e-12
        assert se == pytest.approx(model.population_sd, abs=1e-6)
        t, s = map_batch(model, empty, empty, empty, 1)
        assert abs(t[0]) < 1e-12
        assert s[0] == pytest.approx(model.population_sd, rel=1e-9)


@pytest.mark.parametrize("bank", ["2pl", "3pl", "rasch"])
def test_all_right_and_all_wrong_are_finite(bank):
    model = BANKS[bank]
    pos = np.arange(200)
    for y, sign in ((np.ones(200, np.int8), 1), (np.zeros(200, np.int8), -1)):
        theta, se = eap(model, pos, y)
        assert math.isfinite(theta) and math.isfinite(se) and se > 0
        assert sign * theta > 1
        t, s = map_batch(model, np.zeros(200, np.int64), pos, y, 1)
        assert np.isfinite(t[0]) and np.isfinite(s[0]) and s[0] > 0
        assert sign * t[0] > 1


@pytest.mark.parametrize("bank", ["2pl", "3pl"])
def test_long_answer_sets_do_not_underflow(bank):
    model = make_bank(bank, n=5000, seed=21)
    pos, y = answers(model, 5000, theta=-0.4, seed=5)
    theta, se = eap(model, pos, y)
    assert math.isfinite(theta) and math.isfinite(se) and 0 < se < 0.1
    assert abs(theta + 0.4) < 5 * se + 0.05
    t, s = map_batch(model, np.zeros(5000, np.int64), pos, y, 1)
    assert np.isfinite(t[0]) and np.isfinite(s[0]) and 0 < s[0] < 0.1
    assert abs(t[0] - theta) < 0.05
    bt, bs = eap_batch(model, np.zeros(5000, np.int64), pos, y, 1)
    assert bt[0] == pytest.approx(theta, abs=1e-9) and bs[0] == pytest.approx(se, abs=1e-9)


# --------------------------------------------------------------------------- eap_batch
def _batch(model: ItemModel, n_students: int, k_max: int, seed: int):
    rng = np.random.default_rng(seed)
    student, pos, y = [], [], []
    for s in range(n_students):
        if s == 3:
            continue  # student 3 has no answers
        k = int(rng.integers(1, k_max + 1))
        p_s, y_s = answers(model, k, float(rng.normal()), seed=seed * 100_003 + s)
        student.append(np.full(k, s))
        pos.append(p_s)
        y.append(y_s)
    return np.concatenate(student), np.concatenate(pos), np.concatenate(y)


def _per_student(model, student, pos, y, n_students):
    out = np.empty((n_students, 2))
    for s in range(n_students):
        mask = student == s
        out[s] = eap(model, pos[mask], y[mask])
    return out


@pytest.mark.parametrize("bank", ["2pl", "3pl", "rasch"])
def test_eap_batch_equals_per_student_eap_unsorted(bank):
    model = BANKS[bank]
    n_students = 60
    student, pos, y = _batch(model, n_students, 400, seed=1)  # some long -> refinement path
    perm = np.random.default_rng(2).permutation(student.size)
    student, pos, y = student[perm], pos[perm], y[perm]
    ref = _per_student(model, student, pos, y, n_students)
    assert ref[3, 0] == pytest.approx(0.0, abs=1e-12)
    for chunk in (8192, 7):  # a tiny chunk splits students across chunks
        theta, se = eap_batch(model, student, pos, y, n_students, chunk_answers=chunk)
        np.testing.assert_allclose(theta, ref[:, 0], rtol=0, atol=1e-9)
        np.testing.assert_allclose(se, ref[:, 1], rtol=0, atol=1e-9)
    # the order of the input answers does not matter
    t2, _ = eap_batch(model, student[::-1], pos[::-1], y[::-1], n_students)
    np.testing.assert_allclose(t2, ref[:, 0], rtol=0, atol=1e-9)


def test_eap_batch_sparse_path_equals_per_student_eap():
    model = BANKS["2pl"]
    n_min = irt.engine.ability.SPARSE_MIN_ANSWERS
    n_students = n_min // 100 + 5
    rng = np.random.default_rng(9)
    k = np.full(n_students, 100)
    k[3] = 0  # a student with no answers
    k[7] = 1
    k[11] = 900  # a narrow posterior
    student = np.repeat(np.arange(n_students), k)
    pos = np.concatenate([rng.permutation(model.n_items)[:kk] for kk in k])
    theta_true = rng.normal(size=n_students)
    p = irf(theta_true[student], model.a[pos], model.b[pos], model.c[pos])
    y = (rng.random(student.size) < p).astype(np.int8)
    assert student.size >= n_min
    perm = rng.permutation(student.size)
    student, pos, y = student[perm], pos[perm], y[perm]
    theta, se = eap_batch(model, student, pos, y, n_students)
    order = np.argsort(student, kind="stable")
    bounds = np.searchsorted(student[order], np.arange(n_students + 1))
    for s in range(n_students):
        sel = order[bounds[s]:bounds[s + 1]]
        t_ref, s_ref = eap(model, pos[sel], y[sel])
        assert theta[s] == pytest.approx(t_ref, abs=1e-9), s
        assert se[s] == pytest.approx(s_ref, abs=1e-9), s
    assert theta[3] == pytest.approx(0.0, abs=1e-12) and se[3] == pytest.approx(1.0, abs=1e-6)


# --------------------------------------------------------------------------- MAP
@pytest.mark.parametrize("bank", list(BANKS))
@pytest.mark.parametrize("k", [1, 5, 50, 300])
def test_map_is_the_argmax_and_se_the_curvature(bank, k):
    model = BANKS[bank]
    pos, y = answers(model, k, theta=-0.3, seed=k + 101)
    t, s = map_batch(model, np.zeros(k, np.int64), pos, y, 1)
    mode = brute_mode(model, pos, y)
    assert t[0] == pytest.approx(mode, abs=1e-6)
    h = 1e-4
    f = [log_posterior(model, pos, y, mode + d) for d in (-h, 0.0, h)]
    curvature = (f[0] - 2 * f[1] + f[2]) / h**2
    assert curvature < 0
    assert s[0] == pytest.approx(1.0 / math.sqrt(-curvature), rel=1e-4)


def test_map_batch_many_students_equals_one_at_a_time():
    model = BANKS["3pl"]
    student, pos, y = _batch(model, 25, 60, seed=4)
    theta, se = map_batch(model, student, pos, y, 25)
    for s in range(25):
        mask = student == s
        t1, s1 = map_batch(model, np.zeros(mask.sum(), np.int64), pos[mask], y[mask], 1)
        assert theta[s] == pytest.approx(t1[0], abs=1e-6)
        assert se[s] == pytest.approx(s1[0], rel=1e-6)
        if mask.any():
            assert theta[s] == pytest.approx(brute_mode(model, pos[mask], y[mask]), abs=1e-6)


# --------------------------------------------------------------------------- estimate()
def test_estimate_ignores_and_reports_unknown_ids():
    model = BANKS["2pl"]
    pos, y = answers(model, 12, theta=0.2, seed=8)
    ids = [model.item_ids[p] for p in pos]
    mixed_ids = [*ids[:5], "ghost-1", *ids[5:], "ghost-2"]
    mixed_y = [*y[:5], 1, *y[5:], 0]
    for method in ("EAP", "MAP"):
        est = estimate(model, mixed_ids, mixed_y, method=method)
        ref = estimate(model, ids, list(y), method=method)
        assert est.unknown_items == ["ghost-1", "ghost-2"]
        assert est.n_answers == 12 and ref.n_answers == 12 and ref.unknown_items == []
        assert est.method == method
        assert est.theta == pytest.approx(ref.theta, abs=1e-12)
        assert est.se == pytest.approx(ref.se, abs=1e-12)
    est = estimate(model, ids, [bool(v) for v in y])
    assert (est.theta, est.se) == pytest.approx(eap(model, pos, y), abs=1e-12)
    only_unknown = estimate(model, ["x", "y"], [1, 1])
    assert only_unknown.n_answers == 0 and only_unknown.unknown_items == ["x", "y"]
    assert only_unknown.theta == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        estimate(model, ids, list(y), method="MLE")
    with pytest.raises(ValueError):
        estimate(model, ids, list(y)[:-1])


# --------------------------------------------------------------------------- properties
item_a = st.floats(0.2, 3.0)
item_b = st.floats(-4.0, 4.0)
item_c = st.floats(0.0, 0.35, exclude_max=True)
thetas = st.lists(st.floats(-12.0, 12.0), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(item_a, item_b, item_c, thetas)
def test_irf_is_a_probability_and_non_decreasing(a, b, c, theta):
    t = np.sort(np.array(theta))
    p = irf(t, a, b, c)
    assert np.all(np.isfinite(p))
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(p >= c - 1e-15)
    assert np.all(np.diff(p) >= -1e-15)  # monotone up to rounding


@settings(max_examples=200, deadline=None)
@given(item_a, item_b, item_c, thetas)
def test_item_information_is_non_negative(a, b, c, theta):
    info = item_information(np.array(theta), a, b, c)
    assert np.all(np.isfinite(info))
    assert np.all(info >= 0)
    assert np.all(info <= a**2 / 4 + 1e-12)  # never above the 2PL peak a^2/4


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(item_a, item_b, st.booleans()), min_size=1, max_size=30),
       st.data())
def test_eap_increases_when_a_wrong_answer_becomes_right(items, data):
    a = np.array([t[0] for t in items])
    b = np.array([t[1] for t in items])
    y = np.array([t[2] for t in items], dtype=np.int8)
    n = a.size
    nan = np.full(n, np.nan)
    model = ItemModel("2pl", tuple(map(str, range(n))), a, b, np.zeros(n), nan, nan, nan)
    wrong = np.flatnonzero(y == 0)
    if wrong.size == 0:
        y[data.draw(st.integers(0, n - 1))] = 0
        wrong = np.flatnonzero(y == 0)
    j = int(wrong[data.draw(st.integers(0, wrong.size - 1))])
    pos = np.arange(n)
    before, _ = eap(model, pos, y)
    y2 = y.copy()
    y2[j] = 1
    after, _ = eap(model, pos, y2)
    assert after >= before - 1e-9
    t_before, _ = map_batch(model, np.zeros(n, np.int64), pos, y, 1)
    t_after, _ = map_batch(model, np.zeros(n, np.int64), pos, y2, 1)
    assert t_after[0] >= t_before[0] - 1e-7


@pytest.mark.parametrize("scorer", [eap_batch, map_batch])
def test_batch_scorers_refuse_answer_arrays_of_different_lengths(scorer) -> None:
    model = ItemModel("2pl", ("q1", "q2"), [1.0, 1.5], [0.0, 0.5], [0.0, 0.0],
                      [np.nan] * 2, [np.nan] * 2, [np.nan] * 2)
    with pytest.raises(ValueError, match="one length, got 3, 2 and 3"):
        scorer(model, np.array([0, 0, 1]), np.array([0, 1]), np.array([1, 0, 1]), 2)


# --------------------------------------------------------------------------- re-integration
def test_log_logistic_sums_equal_logaddexp_per_entry() -> None:
    # segments shorter and longer than the product's block (PRODUCT_ROWS), |z| up to 800
    # (exp(-|z|) underflows), one row each side of a block edge
    block = irt.engine.ability.PRODUCT_ROWS
    counts = np.array([1, 3, block - 1, block, block + 1, 2 * block + 7])
    rng = np.random.default_rng(12)
    z = rng.normal(0, 4, (int(counts.sum()), 61))
    z[::97] *= 200
    starts = np.cumsum(counts) - counts
    got = irt.engine.ability.log_logistic_sums(z.copy(), starts, counts)
    want = np.add.reduceat(-np.logaddexp(0.0, -z), starts, axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-10)


@pytest.mark.parametrize("k", [1001, 2500])
def test_eap_beyond_one_product_block_equals_numerical_integration(k):
    # longer than a block of the re-integration's product: the blocks' logs add up
    model = make_bank("2pl", n=3000, seed=31)
    pos, y = answers(model, k, theta=1.1, seed=k)
    theta, se = eap(model, pos, y)
    ref_theta, ref_se = brute_eap(model, pos, y)
    assert theta == pytest.approx(ref_theta, abs=1e-6)
    assert se == pytest.approx(ref_se, abs=1e-6)
    bt, bs = eap_batch(model, np.zeros(k, np.int64), pos, y, 1)
    assert bt[0] == pytest.approx(theta, abs=1e-9) and bs[0] == pytest.approx(se, abs=1e-9)


@pytest.mark.parametrize(("k", "theta"), [(200, 0.3), (1000, -0.8), (1000, 2.2), (5000, -0.4)])
def test_long_answer_sets_match_numerical_integration_closely(k, theta):
    # Long answer sets are re-integrated on the narrow local grid (33 nodes where the step
    # times the largest slope is at most 0.6); 5,000 answers put the whole first pass on one
    # node (SD ~ 0), where the local grids start from the information bound instead.
    model = make_bank("2pl", n=5000, seed=21)
    pos, y = answers(model, k, theta=theta, seed=k + 3)
    got = eap(model, pos, y)
    want = brute_eap(model, pos, y)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    bt, bs = eap_batch(model, np.zeros(k, np.int64), pos, y, 1)
    np.testing.assert_allclose([bt[0], bs[0]], want, rtol=0, atol=1e-9)


def _first_pass_only(monkeypatch, model, pos, y):
    """``eap`` as before the Laplace start: every answer set takes the first pass."""
    with monkeypatch.context() as m:
        m.setattr(irt.engine.ability, "LONG_ANSWERS", 10**9)
        return eap(model, pos, y)


def _spy(monkeypatch, name):
    """Record the results of ``irt.engine.ability.<name>``."""
    seen = []
    real = getattr(irt.engine.ability, name)

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(out)
        return out

    monkeypatch.setattr(irt.engine.ability, name, spy)
    return seen


@pytest.mark.parametrize("bank", ["2pl", "rasch", "rasch_wide"])
@pytest.mark.parametrize(("k", "theta"), [(300, 0.4), (600, -1.7), (1000, 0.2), (1000, 2.6)])
def test_long_answer_sets_start_from_the_mode_and_agree_with_the_first_pass(
        monkeypatch, bank, k, theta):
    # At least LONG_ANSWERS answers (no guessing): Newton's method gives the mode and the SD
    # from the curvature, and the local grid starts there without the first pass on the
    # global grid.  The first pass would also have re-integrated these (its SD below the
    # step), on a grid placed a little differently: the two agree to 1e-9 or better (most
    # to 1e-14), and both with adaptive quadrature.
    model = BANKS[bank]
    sigma = model.population_sd
    pos, y = answers(model, k, theta=theta * sigma, seed=k + 41)
    starts = _spy(monkeypatch, "_laplace_start")
    refined = _spy(monkeypatch, "_refine_one")
    got = eap(model, pos, y)
    assert len(starts) == 1 and starts[0] is not None
    mode, sd = starts[0]
    assert sd < 12.0 * sigma / 60  # narrower than the global grid's step: the first pass skipped
    assert len(refined) == 1 and refined[0][2]  # one local re-integration, settled
    assert abs(mode - got[0]) < got[1]  # the mode is within an SD of the mean
    assert sd == pytest.approx(got[1], rel=0.1)  # the curvature's SD is about the posterior's
    want = brute_eap(model, pos, y)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    before = _first_pass_only(monkeypatch, model, pos, y)
    np.testing.assert_allclose(got, before, rtol=0, atol=1e-9)


def test_long_answer_sets_with_a_wide_posterior_keep_the_first_pass(monkeypatch):
    # Flat items (slopes 0.05-0.2): 400 answers leave the posterior wider than the step,
    # so the first pass on the global grid is the answer, as before.
    flat = make_bank("2pl", seed=8)
    model = ItemModel(model_type="2pl", item_ids=flat.item_ids,
                      a=np.random.default_rng(3).uniform(0.05, 0.2, N_BANK), b=flat.b,
                      c=flat.c, se_a=flat.se_a, se_b=flat.se_b, se_c=flat.se_c)
    pos, y = answers(model, 400, theta=0.3, seed=4)
    starts = _spy(monkeypatch, "_laplace_start")
    refined = _spy(monkeypatch, "_refine_one")
    got = eap(model, pos, y)
    assert len(starts) == 1 and starts[0][1] > 0.2 and refined == []
    assert got == _first_pass_only(monkeypatch, model, pos, y)  # the same path, bit for bit
    np.testing.assert_allclose(got, brute_eap(model, pos, y), rtol=0, atol=1e-8)


@pytest.mark.parametrize("bank", ["2pl", "rasch"])
@pytest.mark.parametrize("right", [1, 0])
def test_long_extreme_patterns_match_numerical_integration(bank, right):
    # 1,000 answers all right (or wrong): the mode is far out (Newton's steps are at most
    # sigma long), the posterior skewed; the local grid's checks still hold it.
    model = BANKS[bank]
    pos = np.arange(1000)
    y = np.full(1000, right, dtype=np.int8)
    got = eap(model, pos, y)
    assert (2 * right - 1) * got[0] > 2.5 * model.population_sd
    np.testing.assert_allclose(got, brute_eap(model, pos, y), rtol=0, atol=1e-9)


def test_a_bad_start_falls_back_to_the_first_pass(monkeypatch):
    # The local grid's checks are the safety net: a start far from the posterior (or no
    # start: Newton's method out of steps) leaves the answer to the first pass.
    model = BANKS["2pl"]
    pos, y = answers(model, 1000, theta=-0.8, seed=9)
    want = brute_eap(model, pos, y)
    sa, b = irt.engine.ability._signed_slopes(model, 2 * pos + y)
    assert irt.engine.ability._laplace_start(sa, b, 1.0, iterations=1) is None
    for start in (None, (5.0, 0.001)):
        with monkeypatch.context() as m:
            m.setattr(irt.engine.ability, "_laplace_start", lambda *args, s=start: s)
            refined = _spy(m, "_refine_one")
            got = eap(model, pos, y)
        # a far start: the local grids walk toward the posterior but do not settle in their
        # three passes; the first pass's own re-integration then does
        assert [r[2] for r in refined] == ([True] if start is None else [False, True])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
