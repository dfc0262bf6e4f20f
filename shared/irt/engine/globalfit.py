"""Global fit: the limited-information M2 statistic and its indices, information criteria and
the likelihood-ratio test of nested models.

numpy and scipy only, no I/O.  Conventions follow R mirt 1.45.1 (``M2``, ``anova``).

**M2** (Maydeu-Olivares & Joe 2005, 2006; complete designs).  With the first- and
second-order margins of ``J`` dichotomous items, ``m = J + J (J - 1) / 2`` of them::

    p   = (mean_s y_si ; mean_s y_si y_sj, i < j)                          observed
    pi  = (int P_i dG ; int P_i P_j dG)                                     model-implied
    Xi  = [int prod_{k in a u b} P_k dG - pi_a pi_b]_{a, b}                 their covariance
    Delta = d pi / d xi'  (m x q, xi the q free parameters)
    M2  = N (p - pi)' Dc (Dc' Xi Dc)^{-1} Dc' (p - pi),    df = m - q

``Dc`` is an orthonormal basis of the complement of ``Delta``'s columns (mirt: a full QR
decomposition), so ``M2`` does not depend on how the parameters are written; it is computed
as ``Xi^-1 - Xi^-1 Delta (Delta' Xi^-1 Delta)^-1 Delta' Xi^-1`` (the same matrix) from one
Cholesky factorisation of ``Xi``, with the QR form as the fall-back.  The
integrals use :func:`irt.engine.fitdata.marginal_grid` (61 nodes on ``[-6, 6]``).  Then::

    RMSEA  = sqrt(max(M2/df - 1, 0) / (N - 1)),  90 % interval sqrt(lambda / (N df)) with
             lambda the noncentrality where P(chi2_{df, lambda} <= M2) = 0.95 (0.05)
    SRMSR  = sqrt(mean_{i<j} (r_ij - rho_ij)^2)   (observed vs model-implied correlations)
    TLI    = (M2_0/df_0 - M2/df) / (M2_0/df_0 - 1),   CFI = 1 - (M2 - df) / (M2_0 - df_0)
             (clipped to [0, 1]) against the independence model (slopes 0: pi_i = p_i,
             pi_ij = p_i p_j, df_0 = m - J); only when M2_0 > M2, as mirt.

The Rasch model's latent variance (the 1PL's common slope) is a free parameter and has a
column in ``Delta``.  mirt 1.45.1 leaves the latent variance out of ``Delta`` (but counts it in
``df``); ``latent_in_delta=False`` reproduces that.  Cost O(m^2 x nodes + m^3): the number of
items is capped (``MAX_ITEMS``) since ``Xi`` has ``m^2`` entries.

**Information criteria** on the marginal log-likelihood ``l`` (61 nodes), ``k`` free
parameters and ``N`` students: ``AIC = -2 l + 2 k``, ``BIC = -2 l + k log N`` (mirt's; note
``model.fit["bic"]`` from calibration uses the number of answers instead of ``N``).

**Likelihood-ratio test** of nested models (Rasch = 1PL < 2PL < 3PL on the same answers):
``X2 = 2 (l_big - l_small)``, ``df = k_big - k_small``, ``p = P(chi2_df > X2)``.  It assumes
maximum-likelihood estimates (no priors) fitted to these answers; Rasch and 1PL are one model
written two ways (``df = 0``: no test).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from irt.engine.fitdata import marginal_grid, parameter_count, probabilities
from irt.engine.itemfit import chi2_sf
from irt.engine.model import ItemModel

#: The largest test M2 is computed for (``Xi`` has ``(J (J + 1) / 2)^2`` entries).
MAX_ITEMS = 60
#: Order of the model types by nesting (Rasch and 1PL are the same model).
NESTING = {"rasch": 0, "1pl": 0, "2pl": 1, "3pl": 2}


@dataclass(frozen=True)
class M2Result:
    """M2 and the indices built on it (``None`` where mirt reports none).

    Attributes:
        m2, df, p: the statistic, its degrees of freedom and upper-tail p-value.
        rmsea, rmsea_low, rmsea_high: RMSEA and its 90 % interval.
        srmsr: standardised root mean squared residual of the item correlations.
        tli, cfi: against the independence model (``None`` unless its M2 is larger).
        m2_null, df_null: the independence model's M2 and df.
        n: students.
    """

    m2: float
    df: int
    p: float
    rmsea: float
    rmsea_low: float
    rmsea_high: float
    srmsr: float
    tli: float | None
    cfi: float | None
    m2_null: float
    df_null: int
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def rmsea_interval(stat: float, df: int, n: int, level: float = 0.90) -> tuple[float, float]:
    """``(low, high)`` RMSEA bounds ``sqrt(lambda / (n df))`` from the noncentral chi-squared
    (mirt's ``RMSEA.CI``: a bound is 0 where no noncentrality solves its equation)."""
    # M2 only (complete designs): scipy.stats and scipy.optimize cost half a second to import
    from scipy.optimize import brentq
    from scipy.stats import chi2, ncx2

    alpha = (1.0 - level) / 2.0

    def root(target: float, hi: float) -> float:
        f = lambda lam: ncx2.cdf(stat, df, lam) - target if lam > 0 else (  # noqa: E731
            chi2.cdf(stat, df) - target)
        try:
            if hi <= 0 or f(0.0) * f(hi) > 0:
                return 0.0
            return float(brentq(f, 0.0, hi, xtol=1e-10))
        except (ValueError, RuntimeError):
            return 0.0

    lam_low = root(1.0 - alpha, stat)
    lam_high = root(alpha, max(float(n), 5.0 * stat))
    return math.sqrt(lam_low / (n * df)), math.sqrt(lam_high / (n * df))


def _second_moments(P: np.ndarray, w: np.ndarray, first: np.ndarray, second: np.ndarray,
                    chunk: int = 20_000) -> np.ndarray:
    """``E[a, b] = sum_q w_q prod_{k in a u b} P_k(x_q)`` for all margins ``a, b``.

    ``first``/``second`` give each margin's items (``second = J``: none, a padding row of
    ones).  Disjoint margins come from one product; those sharing an item are redone with
    the union of their items.
    """
    J = P.shape[0]
    Ppad = np.vstack([P, np.ones((1, P.shape[1]))])
    M = Ppad[first] * Ppad[second]
    E = (M * w) @ M.T
    incidence = np.zeros((M.shape[0], J + 1))
    rows = np.arange(M.shape[0])
    incidence[rows, first] = 1.0
    incidence[rows, second] = 1.0
    incidence = incidence[:, :J]
    ia, ib = np.nonzero(incidence @ incidence.T > 0)
    for lo in range(0, ia.shape[0], chunk):
        a, b = ia[lo:lo + chunk], ib[lo:lo + chunk]
        items = np.sort(np.stack([first[a], second[a], first[b], second[b]], axis=1), axis=1)
        items[:, 1:][items[:, 1:] == items[:, :-1]] = J  # a repeated item counts once
        prod = Ppad[items[:, 0]] * Ppad[items[:, 1]] * Ppad[items[:, 2]] * Ppad[items[:, 3]]
        E[a, b] = prod @ w
    return E


def _m2_core(P: np.ndarray, w: np.ndarray, item_derivs: list[np.ndarray],
             slope_deriv: np.ndarray | None, weight_deriv: np.ndarray | None, X: np.ndarray
             ) -> tuple[float, int, float]:
    """``(M2, df, SRMSR)`` for item probabilities ``P`` (``J x Q``) on weights ``w``.

    Margins are ordered: the ``J`` items, then the pairs ``(i, j)``, ``i < j``, row-major.

    ``item_derivs``: per-item parameters, each ``dP_j/dxi_j`` as a ``J x Q`` array;
    ``slope_deriv``: ``dP_j/da`` of a slope shared by all items (``J x Q``) or ``None``;
    ``weight_deriv``: ``dw/dxi`` of a latent-distribution parameter (``Q``) or ``None``.
    """
    from scipy.linalg import cho_factor, cho_solve  # M2 only: imported when needed

    N, J = X.shape
    iu, ju = np.triu_indices(J, 1)
    first = np.r_[np.arange(J), iu]
    second = np.r_[np.full(J, J), ju]
    m = first.shape[0]
    Xf = X.astype(float)
    cross = Xf.T @ Xf / N
    p_obs = np.r_[Xf.mean(axis=0), cross[iu, ju]]
    E = _second_moments(P, w, first, second)
    pi = np.diag(E).copy()  # E[a, a] = pi_a (y^2 = y)
    Xi = E - np.outer(pi, pi)
    cols = []
    for D in item_derivs:
        H = (D * w) @ P.T  # H[i, j] = sum_q w D_i P_j
        single = D @ w
        for_i = np.zeros((m, J))
        for_i[np.arange(J), np.arange(J)] = single
        pairs = np.arange(J, m)
        for_i[pairs, iu] = H[iu, ju]
        for_i[pairs, ju] = H[ju, iu]
        cols.append(for_i)
    if slope_deriv is not None:
        H = (slope_deriv * w) @ P.T
        cols.append(np.r_[slope_deriv @ w, H[iu, ju] + H[ju, iu]][:, None])
    if weight_deriv is not None:
        cols.append(np.r_[P @ weight_deriv, (P[iu] * P[ju]) @ weight_deriv][:, None])
    delta = np.hstack(cols)
    q = delta.shape[1]
    df = m - q
    e = p_obs - pi
    try:
        # Dc (Dc' Xi Dc)^{-1} Dc' = Xi^-1 - Xi^-1 D (D' Xi^-1 D)^-1 D' Xi^-1 for a positive
        # definite Xi: one Cholesky factorisation instead of a full QR of Delta.
        factor = cho_factor(Xi)
        ue, ud = np.split(cho_solve(factor, np.column_stack([e, delta])), [1], axis=1)
        ue = ue[:, 0]
        g = delta.T @ ue
        m2 = float(abs(N * (e @ ue - g @ np.linalg.solve(delta.T @ ud, g))))
    except np.linalg.LinAlgError:
        Qfull, _ = np.linalg.qr(delta, mode="complete")
        Dc = Qfull[:, q:]
        v = Dc.T @ e
        m2 = float(abs(N * v @ np.linalg.solve(Dc.T @ Xi @ Dc, v)))
    # SRMSR: observed vs implied correlation matrices
    p1 = p_obs[:J]
    cov_obs = cross - np.outer(p1, p1)
    cov_mod = E[:J, :J] - np.outer(pi[:J], pi[:J])  # E[i, j] = pi_ij, E[i, i] = pi_i

    def cor(c: np.ndarray) -> np.ndarray:
        s = np.sqrt(np.diag(c))
        return c / np.outer(s, s)

    with np.errstate(divide="ignore", invalid="ignore"):
        resid = (cor(cov_obs) - cor(cov_mod))[iu, ju]
    srmsr = float(np.sqrt(np.mean(resid**2)))
    return m2, df, srmsr


def _derivatives(model: ItemModel, x: np.ndarray, w: np.ndarray, latent_in_delta: bool
                 ) -> tuple[list[np.ndarray], np.ndarray | None, np.ndarray | None]:
    """``dP/dxi`` of the model's free parameters on the nodes ``x`` (see :func:`_m2_core`)."""
    a, b, c = model.a[:, None], model.b[:, None], model.c[:, None]
    z = a * (x[None, :] - b)
    psi = 1.0 / (1.0 + np.exp(-z))
    dpsi = (1.0 - c) * psi * (1.0 - psi)
    d_b = -a * dpsi
    d_a = (x[None, :] - b) * dpsi
    kind = model.model_type
    if kind == "rasch":
        sigma = model.population_sd
        dw = w * (x**2 - np.dot(w, x**2)) / sigma**3
        return [d_b], None, dw if latent_in_delta else None
    if kind == "1pl":
        return [d_b], d_a, None
    if kind == "2pl":
        return [d_a, d_b], None, None
    return [d_a, d_b, 1.0 - psi], None, None


def m2(model: ItemModel, X: np.ndarray, *, n_points: int = 61, bound: float = 6.0,
       latent_in_delta: bool = True) -> M2Result:
    """M2, its RMSEA (90 % interval), SRMSR, TLI and CFI of a complete design (module
    docstring).

    Args:
        model: the items, in the columns' order.
        X: int array of shape ``(n_students, n_items)`` of 0/1 answers, none missing.
        n_points, bound: the marginal quadrature (mirt: 61 nodes on ``[-6, 6]``).
        latent_in_delta: give the Rasch latent variance its column in ``Delta`` (``False``:
            mirt 1.45.1's convention).

    Raises:
        ValueError: with fewer than two students, too few items for positive df, or more
            than :data:`MAX_ITEMS` items.
    """
    N, J = X.shape
    if N < 2:
        raise ValueError(f"M2 needs at least two students, got {N}")
    k = parameter_count(model.model_type, J)
    m = J * (J + 1) // 2
    if m - k <= 0:
        raise ValueError(f"M2 needs more margins ({m}) than parameters ({k}): too few items")
    if J > MAX_ITEMS:
        raise ValueError(f"M2 is computed for at most {MAX_ITEMS} items, got {J}")
    x, w = marginal_grid(model, n_points, bound)
    P = probabilities(model, x)
    stat, df, srmsr = _m2_core(P, w, *_derivatives(model, x, w, latent_in_delta), X)
    if model.model_type == "rasch" and not latent_in_delta:
        df -= 1  # mirt: the variance counts in df but not in Delta
    null, df_null = null_m2(X)
    low, high = rmsea_interval(stat, df, N)
    tli = cfi = None
    if null > stat:
        tli = (null / df_null - stat / df) / (null / df_null - 1.0)
        cfi = min(max(1.0 - (stat - df) / (null - df_null), 0.0), 1.0)
    r = math.sqrt(max(stat / df - 1.0, 0.0) / (N - 1))
    return M2Result(m2=stat, df=df, p=float(chi2_sf(stat, df)), rmsea=r, rmsea_low=low,
                    rmsea_high=high, srmsr=srmsr, tli=tli, cfi=cfi, m2_null=null,
                    df_null=df_null, n=N)


def null_m2(X: np.ndarray) -> tuple[float, int]:
    """``(M2, df)`` of the independence model (slopes 0, one intercept per item fitted to the
    proportions correct), the baseline of TLI and CFI."""
    p = np.clip(X.mean(axis=0), 1e-12, 1 - 1e-12)
    P = p[:, None]
    stat, df, _ = _m2_core(P, np.ones(1), [(p * (1 - p))[:, None]], None, None, X)
    return stat, df


# --------------------------------------------------------------------------- likelihood
@dataclass(frozen=True)
class InformationCriteria:
    """Marginal log-likelihood of a model on answers, with AIC and BIC.

    Attributes:
        log_likelihood: ``l``.
        n_parameters: ``k``.
        n_students: ``N``.
        aic: ``-2 l + 2 k``.
        bic: ``-2 l + k log N``.
    """

    log_likelihood: float
    n_parameters: int
    n_students: int
    aic: float
    bic: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def information_criteria(log_likelihood: float, n_parameters: int, n_students: int
                         ) -> InformationCriteria:
    return InformationCriteria(
        log_likelihood, n_parameters, n_students, aic=-2 * log_likelihood + 2 * n_parameters,
        bic=-2 * log_likelihood + n_parameters * math.log(max(n_students, 1)))


@dataclass(frozen=True)
class LikelihoodRatioTest:
    """Likelihood-ratio test of ``small`` nested in ``big``.

    Attributes:
        small, big: model types.
        x2, df, p: ``2 (l_big - l_small)``, ``k_big - k_small`` and the p-value (``None``
            when ``df`` is 0: equivalent models).
        note: why the test is or is not meaningful.
    """

    small: str
    big: str
    x2: float
    df: int
    p: float | None
    note: str

    def to_dict(self) -> dict[str, float | int | str | None]:
        return asdict(self)


def likelihood_ratio_test(type_a: str, ll_a: float, k_a: int, type_b: str, ll_b: float,
                          k_b: int) -> LikelihoodRatioTest:
    """LRT of two nested model types (either order); see the module docstring.

    Raises:
        ValueError: if neither model type nests in the other's.
    """
    if NESTING[type_a] > NESTING[type_b] or (NESTING[type_a] == NESTING[type_b] and k_a > k_b):
        type_a, ll_a, k_a, type_b, ll_b, k_b = type_b, ll_b, k_b, type_a, ll_a, k_a
    df = k_b - k_a
    x2 = 2.0 * (ll_b - ll_a)
    if df == 0:
        note = (f"{type_a} and {type_b} have the same number of parameters"
                + (" (the Rasch model is the 1PL written with a = 1 and a latent SD): no test"
                   if {type_a, type_b} <= {"rasch", "1pl"} else ": no test"))
        return LikelihoodRatioTest(type_a, type_b, x2, 0, None, note)
    if df < 0:
        raise ValueError(f"{type_b} has fewer parameters than {type_a}: not nested")
    note = (f"{type_a} is nested in {type_b}; valid for maximum-likelihood fits (no priors) "
            "to these answers")
    return LikelihoodRatioTest(type_a, type_b, x2, df, float(chi2_sf(max(x2, 0.0), df)), note)
