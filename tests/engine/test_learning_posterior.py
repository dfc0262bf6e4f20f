"""``student_posterior`` (predict's learning-aware path) against the module docstring's
formulas computed term by term on long random histories: the covariates from
:func:`history_features` / :func:`next_features` (tested against their definitions in
``test_learning.py``), each answer's log-likelihood with ``np.logaddexp``, the recency weights
by counting later answers of the same group, the skill offsets integrated out with an explicit
log-sum-exp over the kernel.  The serving path computes all of it in group order with other
numpy calls (a radix sort, offsets without the feature matrix, a product of ``1 + exp(-|z|)``
per node without recency, floored weights); it must give the same numbers to 1e-9."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from learning_models import N_ITEMS, big_model
from scipy.special import logsumexp

from irt.engine.learning import (
    Learning,
    history_features,
    learning_of,
    next_features,
    offsets,
    student_posterior,
)
from irt.engine.model import ItemModel

MODEL = big_model()
FULL = learning_of(MODEL)
VARIANTS = {
    "recency,skills,pfa": FULL,
    "skills,pfa": dataclasses.replace(FULL, options=("skills", "pfa"), decay=1.0),
    "recency,skills": dataclasses.replace(FULL, options=("recency", "skills")),
    "pfa": dataclasses.replace(FULL, options=("pfa",), skill_sd=0.0, decay=1.0),
    "recency (no item -> skill map)": Learning(options=("recency",), decay=0.9),
    # other coefficients on the same model: nothing cached for FULL may serve this spec
    "recency,skills,pfa (other coefficients)": dataclasses.replace(
        FULL, beta=-0.5 * FULL.beta, gamma=FULL.gamma[::-1] + 0.1),
    "recency,skills,pfa (other tau)": dataclasses.replace(FULL, skill_sd=2.0 * FULL.skill_sd),
}


def reference(model: ItemModel, spec: Learning, pos: np.ndarray, y: np.ndarray
              ) -> tuple[float, float, np.ndarray, np.ndarray]:
    """``(theta, se, u per skill, next covariates)`` by the formulas, term by term."""
    n = pos.shape[0]
    n_skills = len(spec.skill_ids)
    x = np.linspace(-spec.bound, spec.bound, spec.n_points)
    skill = spec.item_skill[pos] if spec.grouped else np.full(n, -1)
    if spec.pfa:
        feats = history_features(np.zeros(n, int), skill, y, np.ones(n, bool), spec.window)
        o = offsets(spec, feats, skill)
    else:
        o = np.zeros(n)
    group = skill if spec.grouped else np.zeros(n, int)
    later = np.array([np.sum(group[i + 1:] == group[i]) for i in range(n)])
    s = 2.0 * y - 1.0
    z = model.a[pos, None] * (x[None, :] - model.b[pos, None]) + o[:, None]
    ll = (spec.decay ** later)[:, None] * -np.logaddexp(0.0, -s[:, None] * z)
    with np.errstate(divide="ignore"):  # log of kernel entries that are 0
        d = x[None, :] - x[:, None]
        kern = np.exp(-0.5 * (d / spec.skill_sd) ** 2) if spec.skills else np.eye(x.shape[0])
        kern /= kern.sum(axis=1, keepdims=True)  # K(th, u), rows summing to one
        log_k = np.log(kern)
    log_post = -0.5 * x * x
    own: dict[int, np.ndarray] = {}
    log_g: dict[int, np.ndarray] = {}
    for k in np.unique(group).tolist():
        lk = ll[group == k].sum(axis=0)
        if spec.skills and k >= 0:
            own[k] = lk
            log_g[k] = logsumexp(log_k + lk[None, :], axis=1)  # g_k(th)
            log_post = log_post + log_g[k]
        else:
            log_post = log_post + lk
    pi = np.exp(log_post - logsumexp(log_post))
    mean = float(pi @ x)
    sd = float(np.sqrt(pi @ (x - mean) ** 2))
    u = np.full(n_skills + 1, mean)
    if spec.skills:
        u[:n_skills] = float((pi @ kern) @ x)  # delta from its prior
        for k, lk in own.items():
            # rho_k(u) oc exp(L_k(u)) sum_th pi(th) / g_k(th) K(th, u)
            with np.errstate(divide="ignore"):
                log_pi = np.log(pi)
            log_rho = lk + logsumexp(log_pi[:, None] - log_g[k][:, None] + log_k, axis=0)
            rho = np.exp(log_rho - logsumexp(log_rho))
            u[k] = float(rho @ x)
    nxt = next_features(skill, y, spec.window, n_skills) if spec.pfa else np.zeros(
        (n_skills + 1, 5))
    return mean, sd, u, nxt


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("n", [1, 7, 240, 1000, 1400])
def test_posterior_equals_the_formulas_on_random_histories(variant: str, n: int) -> None:
    spec = VARIANTS[variant]
    rng = np.random.default_rng(n)
    pos = rng.permutation(N_ITEMS)[:n]
    y = (rng.random(n) < 0.65).astype(np.int64)
    post = student_posterior(MODEL, spec, pos, y)
    theta, se, u, nxt = reference(MODEL, spec, pos, y)
    assert post.theta == pytest.approx(theta, abs=1e-9)
    assert post.se == pytest.approx(se, abs=1e-9)
    np.testing.assert_allclose(post.skill_ability, u, rtol=0, atol=1e-9)
    np.testing.assert_allclose(post.features, nxt, rtol=0, atol=1e-12)


def test_histories_with_extreme_offsets_take_the_stable_formula() -> None:
    # pfa coefficients of 100 (the artifact's bound) push |z| past 700 on long histories,
    # where exp(-z) would overflow: the stable log-logistic must give the formulas' numbers
    spec = dataclasses.replace(FULL, beta=np.full(5, 100.0), window=1000)
    rng = np.random.default_rng(3)
    pos = rng.permutation(N_ITEMS)[:600]
    y = (rng.random(600) < 0.9).astype(np.int64)
    skill = spec.item_skill[pos]
    o = offsets(spec, history_features(np.zeros(600, int), skill, y, np.ones(600, bool), 1000),
                skill)
    assert np.abs(o).max() > 700  # exp(-z) overflows for some answer
    post = student_posterior(MODEL, spec, pos, y)
    theta, se, u, _ = reference(MODEL, spec, pos, y)
    assert np.isfinite(post.theta) and np.isfinite(post.se)
    assert post.theta == pytest.approx(theta, abs=1e-9)
    assert post.se == pytest.approx(se, abs=1e-9)
    np.testing.assert_allclose(post.skill_ability, u, rtol=0, atol=1e-9)
