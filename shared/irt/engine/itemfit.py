"""Item and person fit: S-X2, grouped X2, infit/outfit mean squares and Zh.

numpy and scipy only, no I/O.  Conventions and formulas follow R mirt 1.45.1 (``itemfit``,
``personfit``) so that the values can be checked against it.

**Residual statistics** (any design; from the answers' long arrays, O(answers)).  With
``theta_s`` the student's EAP (:func:`irt.engine.fitdata.eap_fixed`), ``P = P_j(theta_s)`` for
each answer ``y``::

    r = y - P,   W = P (1 - P),   C = P (1 - P)^4 + (1 - P) P^4       (4th central moment)

``W`` is raised to ``sqrt(1e-5)`` wherever ``W^2 < 1e-5`` (mirt's floor; ``C`` keeps the raw
``P``).  Summing over an item's answers (item fit) or a student's answers (person fit), ``n``
answers::

    outfit = sum(r^2 / W) / n,                 q_out = sqrt(sum(C / W^2) / n^2 - 1 / n)
    infit  = sum(r^2) / sum(W),                q_in  = sqrt(sum(C - W^2)) / sum(W)
    z      = (ms^(1/3) - 1) (3 / q) + q / 3    (Wilson-Hilferty; q capped at 1.4142)

(mirt's person ``q_out`` divides by the number of items in the test, ``J^2``, even for
missing answers; here it is the student's own ``n^2`` with an absolute value, the same for a
complete design.)  Zh, the standardised log-likelihood ``l_z`` (Drasgow, Levine & Williams
1985), over the same answers::

    Zh = (sum log P(y) - sum [P log P + Q log Q]) / sqrt(sum P Q log(P / Q)^2)

Mean squares near 1 and ``|z|``, ``|Zh|`` below 2 are usual; an outfit above 1.3 (or a Zh
below -2) marks answers the model does not expect.  Infit/outfit are Rasch-family statistics;
they are reported for every model, as mirt does.

**S-X2** (Orlando & Thissen 2000; complete designs only).  Students are grouped by total score
``k = 1..J-1``; for item ``i`` the observed counts ``O_k0, O_k1`` are compared with::

    E_k1 = N_k int P_i(x) S^{(-i)}_{k-1}(x) dG(x) / int S_k(x) dG(x),
    E_k0 = N_k int (1 - P_i(x)) S^{(-i)}_k(x) dG(x) / int S_k(x) dG(x)

where ``S_k(x)`` is the probability of total score ``k`` at ``x`` (Lord-Wingersky recursion)
and ``S^{(-i)}`` the same without item ``i``, on :func:`irt.engine.fitdata.marginal_grid`
(61 nodes).  Sparse score groups are merged as mirt's ``collapseCells(mincell = 1)`` does;
``S-X2 = sum (O - E)^2 / E`` with ``df = cells - groups - (item parameters) - (shared
parameters: the Rasch variance / 1PL slope)``, ``p = P(chi2_df > S-X2)`` and
``RMSEA = sqrt(max(S-X2/df - 1, 0) / (N - 1))``.  Cost O(J^3 x nodes).

**Grouped X2** (Bock 1972 / Yen's Q1; any design, the item-fit statistic for sparse logs).
Each item's students are sorted by EAP and cut into ``groups`` (10) groups of equal size (the
remainder split between the first and last group, mirt's rule); in group ``g`` with ``N_g``
students, ``r_g`` right answers and mean EAP ``t_g``::

    X2 = sum_g (r_g - N_g P(t_g))^2 / (N_g P(t_g) (1 - P(t_g))),   df = groups - item parameters

with ``RMSEA`` on the item's number of answers.  Cost O(answers log answers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import chdtrc

from irt.engine.fitdata import (
    FitData,
    item_parameter_count,
    marginal_grid,
    probabilities,
    shared_parameter_count,
)
from irt.engine.model import P_EPS, ItemModel, irf

#: mirt's floor on the infit/outfit weight: ``W^2 >= W_FLOOR_SQUARED``.
W_FLOOR_SQUARED = 1e-5
#: mirt's cap on the Wilson-Hilferty ``q``.
Q_CAP = 1.4142


@dataclass(frozen=True)
class ResidualFit:
    """Infit/outfit and Zh of items or of persons (arrays of one length; nan where undefined).

    Attributes:
        n_answers: answers summed.
        outfit, z_outfit: unweighted mean square and its z.
        infit, z_infit: information-weighted mean square and its z.
        zh: standardised log-likelihood ``l_z``.
    """

    n_answers: np.ndarray
    outfit: np.ndarray
    z_outfit: np.ndarray
    infit: np.ndarray
    z_infit: np.ndarray
    zh: np.ndarray


def rmsea(stat: np.ndarray, df: np.ndarray, n: np.ndarray | float) -> np.ndarray:
    """``sqrt(max(stat/df - 1, 0) / (n - 1))``; nan where ``df <= 0`` (mirt's ``rmsea``)."""
    stat, df = np.asarray(stat, dtype=float), np.asarray(df, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt(np.maximum(stat / df - 1.0, 0.0) / (n - 1.0))
    return np.where(df > 0, np.where(np.isnan(stat), np.nan, out), np.nan)


def chi2_sf(x: np.ndarray | float, df: np.ndarray | float) -> np.ndarray:
    """Upper-tail chi-squared probability ``P(chi2_df > x)``, the values of
    ``scipy.stats.chi2.sf`` (which is ``scipy.special.chdtrc``): 1 for ``x <= 0``, nan for a
    nan ``x`` or ``df <= 0``.  Without importing ``scipy.stats`` (a third of a second of
    every ``prepare`` refresh's report, for this one function)."""
    x, df = np.asarray(x, dtype=float), np.asarray(df, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(df > 0, chdtrc(df, np.maximum(x, 0.0)), np.nan)


def chi2_p(stat: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Upper-tail chi-squared p-values; nan where ``df <= 0`` or the statistic is nan."""
    stat, df = np.asarray(stat, dtype=float), np.asarray(df, dtype=float)
    ok = (df > 0) & ~np.isnan(stat)
    out = np.full(np.broadcast(stat, df).shape, np.nan)
    out[ok] = chi2_sf(np.broadcast_to(stat, out.shape)[ok], np.broadcast_to(df, out.shape)[ok])
    return out


def _wilson_hilferty(ms: np.ndarray, q: np.ndarray) -> np.ndarray:
    q = np.minimum(q, Q_CAP)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(q > 0, (np.cbrt(ms) - 1.0) * (3.0 / q) + q / 3.0, np.nan)


def _sums(group: np.ndarray, n: int, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.bincount(group, v, n) for k, v in values.items()}


def residual_fit(data: FitData) -> tuple[ResidualFit, ResidualFit]:
    """``(items, persons)``: infit/outfit with z and Zh of every item and every student of
    ``data`` (formulas in the module docstring), from the students' EAPs."""
    m = data.model
    p = irf(data.theta[data.student], m.a[data.item], m.b[data.item], m.c[data.item])
    p = np.clip(p, P_EPS, 1.0 - P_EPS)
    q = 1.0 - p
    y = data.correct.astype(float)
    r2 = (y - p) ** 2
    w_raw = p * q
    c4 = p * q**4 + q * p**4
    w = np.where(w_raw**2 < W_FLOOR_SQUARED, np.sqrt(W_FLOOR_SQUARED), w_raw)
    log_p, log_q = np.log(p), np.log(q)
    per_answer = {
        "r2": r2, "r2w": r2 / w, "w": w, "cw2": c4 / w**2, "cmw": c4 - w**2,
        "ll": np.where(y == 1, log_p, log_q), "mu": p * log_p + q * log_q,
        "var": w_raw * (log_p - log_q) ** 2,
    }
    out = []
    for group, n, person in ((data.item, data.n_items, False),
                             (data.student, data.n_students, True)):
        s = _sums(group, n, per_answer)
        count = np.bincount(group, minlength=n).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            outfit = s["r2w"] / count
            inner = s["cw2"] / count**2 - 1.0 / count
            q_out = np.sqrt(np.abs(inner) if person else np.maximum(inner, 0.0))
            infit = s["r2"] / s["w"]
            q_in = np.sqrt(np.maximum(s["cmw"], 0.0)) / s["w"]
            zh = (s["ll"] - s["mu"]) / np.sqrt(s["var"])
        none = count == 0
        fields = [outfit, _wilson_hilferty(outfit, q_out), infit, _wilson_hilferty(infit, q_in),
                  zh]
        for f in fields:
            f[none] = np.nan
        out.append(ResidualFit(count.astype(np.int64), *fields))
    return out[0], out[1]


# --------------------------------------------------------------------------- S-X2
def score_distribution(P: np.ndarray) -> np.ndarray:
    """Lord-Wingersky recursion: ``S[k, q]`` = probability of ``k`` right answers on the items
    of ``P`` (shape ``(n_items, n_nodes)``) at node ``q``; shape ``(n_items + 1, n_nodes)``."""
    S = np.zeros((P.shape[0] + 1, P.shape[1]))
    S[0] = 1.0
    for j in range(P.shape[0]):
        # new[k] = old[k] (1 - P_j) + old[k - 1] P_j, for the j + 2 scores reachable so far
        top = S[: j + 1] * P[j]
        S[: j + 1] *= 1.0 - P[j]
        S[1: j + 2] += top
    return S


def sum_score_expected(model: ItemModel, n_points: int = 61, bound: float = 6.0
                       ) -> np.ndarray:
    """``E[i, k, y]``: P(item ``i`` = ``y`` | total score ``k``) for ``k = 1..J-1`` (row
    ``k - 1``), from the model over :func:`irt.engine.fitdata.marginal_grid`; shape
    ``(J, J - 1, 2)``."""
    x, w = marginal_grid(model, n_points, bound)
    P = probabilities(model, x)
    J = P.shape[0]
    total = score_distribution(P) @ w  # P(score = k), k = 0..J
    out = np.empty((J, J - 1, 2))
    ks = np.arange(1, J)
    for i in range(J):
        rest = score_distribution(np.delete(P, i, axis=0))  # scores 0..J-1 without item i
        with np.errstate(divide="ignore", invalid="ignore"):
            out[i, :, 1] = (rest[ks - 1] * P[i]) @ w / total[ks]
            out[i, :, 0] = (rest[ks] * (1.0 - P[i])) @ w / total[ks]
    return out


def collapse_cells(obs: np.ndarray, expd: np.ndarray, mincell: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Merge sparse score groups of one dichotomous item's ``(groups, 2)`` observed and
    expected tables, as mirt's ``collapseCells``: drop empty groups; fold a group holding one
    student into the next (the last into the one before); then, while an expected count is
    below ``mincell``, fold its group into a neighbour (the first/last into the adjacent one,
    otherwise into the neighbour with fewer students, the lower one on a tie).  Expected
    counts of 0 become nan (left out of the statistic and its df)."""
    obs, expd = obs.astype(float).copy(), expd.astype(float).copy()
    keep = obs.sum(axis=1) > 0
    obs, expd = obs[keep], expd[keep]
    drop = []
    for j in range(obs.shape[0] - 1):
        if obs[j].sum() == 1:
            drop.append(j)
            obs[j + 1] += obs[j]
            expd[j + 1] += expd[j]
    obs, expd = np.delete(obs, drop, axis=0), np.delete(expd, drop, axis=0)
    if obs.shape[0] > 1 and obs[-1].sum() == 1:
        obs[-2] += obs[-1]
        expd[-2] += expd[-1]
        obs, expd = obs[:-1], expd[:-1]
    while obs.shape[0] > 1:
        low = ((expd != 0) & ~(expd >= mincell)).any(axis=1)
        if not low.any():
            break
        k = int(np.flatnonzero(low)[0])
        if k == 0:
            into = 1
        elif k == obs.shape[0] - 1:
            into = k - 1
        else:
            into = k - 1 if obs[k - 1].sum() <= obs[k + 1].sum() else k + 1
        obs[into] += obs[k]
        expd[into] += expd[k]
        obs, expd = np.delete(obs, k, axis=0), np.delete(expd, k, axis=0)
    expd[expd == 0] = np.nan
    return obs, expd


@dataclass(frozen=True)
class ChiSquareFit:
    """A per-item chi-squared fit statistic (arrays of one length; nan where undefined).

    Attributes:
        stat: the statistic.
        df: degrees of freedom.
        p: upper-tail p-value.
        rmsea: ``sqrt(max(stat/df - 1, 0) / (N - 1))``.
    """

    stat: np.ndarray
    df: np.ndarray
    p: np.ndarray
    rmsea: np.ndarray


def s_x2(model: ItemModel, X: np.ndarray, *, n_points: int = 61, bound: float = 6.0,
         mincell: float = 1.0) -> ChiSquareFit:
    """Orlando-Thissen S-X2 of every item of a complete design (module docstring).

    Args:
        model: the items, in the columns' order.
        X: int array of shape ``(n_students, n_items)``, 0/1 answers, no missing value.
        n_points, bound: the marginal quadrature (mirt: 61 nodes on ``[-6, 6]``).
        mincell: smallest expected count kept in a cell.
    """
    N, J = X.shape
    score = X.sum(axis=1)
    expected = sum_score_expected(model, n_points, bound)
    n_k = np.bincount(score, minlength=J + 1)[1:J].astype(float)
    shared = shared_parameter_count(model.model_type)
    per_item = item_parameter_count(model.model_type)
    stat, df = np.full(J, np.nan), np.zeros(J)
    inner = (score > 0) & (score < J)
    for i in range(J):
        obs = np.zeros((J - 1, 2))
        np.add.at(obs, (score[inner] - 1, X[inner, i]), 1.0)
        Oc, Ec = collapse_cells(obs, expected[i] * n_k[:, None], mincell)
        cells = ~np.isnan(Ec)
        d = int(cells.sum()) - Oc.shape[0] - per_item - shared
        df[i] = max(d, 0)
        if df[i] > 0:
            stat[i] = float(np.sum((Oc[cells] - Ec[cells]) ** 2 / Ec[cells]))
    return ChiSquareFit(stat, df, chi2_p(stat, df), rmsea(stat, df, N))


# --------------------------------------------------------------------------- grouped X2
def grouped_x2(data: FitData, *, groups: int = 10, min_answers: int = 20) -> ChiSquareFit:
    """Bock/Yen grouped X2 of every item (module docstring); nan for items with fewer than
    ``min_answers`` answers.  Ties in EAP keep the students' order (mirt: R's stable
    ``order``)."""
    m = data.model
    J = data.n_items
    t = data.theta[data.student]
    order = np.lexsort((data.student, t, data.item))
    item, y, t = data.item[order], data.correct[order].astype(float), t[order]
    n_j = data.answers_per_item()
    first = np.r_[0, np.cumsum(n_j)[:-1]]
    rank = np.arange(item.shape[0]) - first[item]
    base, extra = n_j // groups, n_j % groups
    lead = (extra // 2)[item]
    b = np.maximum(base[item], 1)
    g = np.where(rank < lead, 0, np.where(base[item] == 0, groups - 1,
                                          np.minimum((rank - lead) // b, groups - 1)))
    cell = item * groups + g
    size = np.bincount(cell, minlength=J * groups).reshape(J, groups)
    right = np.bincount(cell, y, J * groups).reshape(J, groups)
    mean_t = np.bincount(cell, t, J * groups).reshape(J, groups)
    used = size > 1
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_t = np.where(used, mean_t / np.maximum(size, 1), 0.0)
        p = np.clip(irf(mean_t, m.a[:, None], m.b[:, None], m.c[:, None]), P_EPS, 1 - P_EPS)
        contrib = np.where(used, (right - size * p) ** 2 / (size * p * (1 - p)), 0.0)
    stat = contrib.sum(axis=1)
    df = used.sum(axis=1) - item_parameter_count(m.model_type)
    stat = np.where((stat == 0) | (n_j < min_answers), np.nan, stat)
    df = np.where(n_j < min_answers, 0, np.maximum(df, 0)).astype(float)
    return ChiSquareFit(stat, df, chi2_p(stat, df), rmsea(stat, df, n_j))
