"""Local dependence between item pairs: Yen's Q3 and the Chen-Thissen LD-X2.

numpy and scipy only, no I/O.  Conventions follow R mirt 1.45.1
(``residuals(mod, type = 'Q3' | 'LD')``), over the students who answered both items of a pair
(pairwise, so a sparse log works the same way as a complete test).

**Q3** (Yen 1984): the correlation over students of the residuals ``y_si - P_i(theta_s)`` and
``y_sj - P_j(theta_s)`` (``theta_s`` the EAP).  Under local independence Q3 is slightly
negative, about ``-1 / (J - 1)``; a pair well above the average Q3 (``Q3 - mean Q3 > 0.2`` is
a common flag, Christensen et al. 2017) shares something the trait does not explain.

**LD-X2** (Chen & Thissen 1997): the pair's 2 x 2 table of answers against the table the
model expects for ``n_ij`` students drawn from the population::

    E_kl = n_ij int P_i^k (1 - P_i)^(1-k) P_j^l (1 - P_j)^(1-l) dG,    X2 = sum (O - E)^2 / E

with ``df = 1``, on :func:`irt.engine.fitdata.marginal_grid` (61 nodes).  mirt also reports
the signed Cramer's V, ``sign(gamma(O) - gamma(E)) sqrt(X2 / n_ij)`` (Goodman-Kruskal gamma of
each table), positive when the pair agrees more than expected (it can exceed 1 in size when
the pair's proportions correct differ from the model's); both are undefined (nan) for a table
whose gamma is (``n00 n11 + n01 n10 = 0``), as in mirt.  On a sparse log the expected
table assumes the students who answered a pair are a random draw from the population, which
a log whose items are chosen by level does not give: read Q3 there, which conditions on
each student's ability.

Cost: for ``K`` items (all of a test; the ``max_items`` most-answered ones of a sparse log),
sparse products over the answers and ``K x K`` dense arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from irt.engine.fitdata import FitData, marginal_grid, probabilities
from irt.engine.itemfit import chi2_sf
from irt.engine.model import irf


@dataclass(frozen=True)
class LocalDependence:
    """Pairwise local-dependence statistics of ``items`` (``K x K`` symmetric arrays, nan on
    the diagonal and where fewer than ``min_pair_answers`` students answered both).

    Attributes:
        items: positions (in the fitted bank) of the items examined.
        n: students who answered both items.
        q3: Yen's Q3.
        ld_x2: Chen-Thissen LD-X2 (df 1).
        ld_p: its p-value.
        cramers_v: signed Cramer's V.
    """

    items: np.ndarray
    n: np.ndarray
    q3: np.ndarray
    ld_x2: np.ndarray
    ld_p: np.ndarray
    cramers_v: np.ndarray

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(i, j)`` positions into :attr:`items` of the pairs with statistics, ``i < j``."""
        i, j = np.triu_indices(self.items.shape[0], 1)
        ok = ~np.isnan(self.q3[i, j])
        return i[ok], j[ok]


def local_dependence(data: FitData, *, max_items: int = 200, min_pair_answers: int = 20,
                     n_points: int = 61, bound: float = 6.0) -> LocalDependence:
    """Q3 and LD-X2 of every pair among all items (at most ``max_items``; else the
    ``max_items`` most-answered) with at least ``min_pair_answers`` co-answering students."""
    counts = data.answers_per_item()
    if data.n_items <= max_items:
        items = np.arange(data.n_items)
    else:
        items = np.sort(np.argsort(-counts, kind="stable")[:max_items])
    K = items.shape[0]
    local = np.full(data.n_items, -1, dtype=np.int64)
    local[items] = np.arange(K)
    keep = local[data.item] >= 0
    s, j = data.student[keep], local[data.item[keep]]
    y = data.correct[keep].astype(float)
    m = data.model
    pos = items[j]
    resid = y - irf(data.theta[s], m.a[pos], m.b[pos], m.c[pos])
    shape = (data.n_students, K)

    def mat(values: np.ndarray) -> sp.csc_matrix:
        return sp.csc_matrix((values, (s, j)), shape=shape)

    B, R, R2, Y = mat(np.ones_like(y)), mat(resid), mat(resid**2), mat(y)
    n = (B.T @ B).toarray()
    sx = (R.T @ B).toarray()       # sx[i, j]: sum of i's residuals over students with both
    sxx = (R2.T @ B).toarray()
    sxy = (R.T @ R).toarray()
    with np.errstate(divide="ignore", invalid="ignore"):
        q3 = (n * sxy - sx * sx.T) / np.sqrt((n * sxx - sx**2) * (n * sxx.T - sx.T**2))
    n11 = (Y.T @ Y).toarray()
    n1_ = (Y.T @ B).toarray()      # i right, both answered
    n10 = n1_ - n11
    n01 = n1_.T - n11
    n00 = n - n1_ - n1_.T + n11
    x, w = marginal_grid(m, n_points, bound)
    P = probabilities(m, x)[items]
    pi1 = P @ w
    pi11 = (P * w) @ P.T
    exp = [n * e for e in (1 - pi1[:, None] - pi1[None, :] + pi11, pi1[None, :] - pi11,
                           pi1[:, None] - pi11, pi11)]
    obs = [n00, n01, n10, n11]
    with np.errstate(divide="ignore", invalid="ignore"):
        x2 = sum((o - e) ** 2 / e for o, e in zip(obs, exp, strict=True))
        gamma_o = (n00 * n11 - n01 * n10) / (n00 * n11 + n01 * n10)
        gamma_e = (exp[0] * exp[3] - exp[1] * exp[2]) / (exp[0] * exp[3] + exp[1] * exp[2])
        sign = np.where(gamma_o - gamma_e < 0, -1.0, 1.0)
        # mirt: no statistic for a table whose gamma is undefined (both products 0)
        x2 = np.where(np.isnan(gamma_o - gamma_e), np.nan, x2)
        v = sign * np.sqrt(np.abs(x2) / n)
    off = (n < min_pair_answers) | np.eye(K, dtype=bool)
    upper = np.triu(np.ones((K, K), dtype=bool), 1)
    # one value per pair, the (i < j) one, mirrored (the products are symmetric up to rounding)
    q3, x2, v = (np.where(off, np.nan, np.where(upper, a, a.T)) for a in (q3, x2, v))
    p = np.full((K, K), np.nan)
    ok = ~np.isnan(x2)
    p[ok] = chi2_sf(x2[ok], 1)
    return LocalDependence(items=items, n=n.astype(np.int64), q3=q3, ld_x2=x2, ld_p=p,
                           cramers_v=v)
