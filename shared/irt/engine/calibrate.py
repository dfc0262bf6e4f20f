"""Item calibration by marginal maximum likelihood (Bock-Aitkin EM) on sparse answers.

The marginal log-likelihood of ``N`` students with answers ``y_{sj}`` is::

    l(xi) = sum_s log sum_q w_q prod_{j in A(s)} P_j(x_q)^{y_sj} (1 - P_j(x_q))^{1 - y_sj}

over fixed quadrature nodes ``x_q`` on ``[-bound, bound]`` with weights
``w_q`` proportional to the N(0, 1) density (``A(s)``: the items student ``s``
answered).  Internally items use the slope-intercept form ``z = a x + d``
(``b = -d / a``) and, for the 3PL, ``c = logistic(g)``.

E-step: one sparse product ``L = S @ T`` gives every student's log-likelihood
at every node, where ``S`` (students x 2 items) has a single 1 per answer in
column ``2 j + y`` and ``T`` (2 items x nodes) holds ``log(1 - P_j)`` and
``log P_j``.  The posterior ``W = softmax(L + log w)`` (students x nodes) gives
the expected counts ``S^T W`` (2 items x nodes): expected wrong and right
answers of each item at each node.  Cost O(answers x nodes); memory
O(answers + students x nodes).  No students x items matrix is built.

M-step: per item, Fisher scoring on the expected complete-data
log-likelihood plus log-priors, with step halving; for the 1PL and Rasch models
the common slope couples the items, and the Newton system is solved exactly
through its arrowhead structure.

Acceleration: SQUAREM (Varadhan & Roland 2008, scheme S3) around the EM map,
with a fall-back to the plain EM step whenever an extrapolation lowers the
(penalised) log-likelihood, so every accepted step is monotone.

Standard errors: the observed information by Louis' (1982) formula, then the
delta method for ``b`` and ``c``.  Small problems (students x nodes x parameters
below ``FULL_LOUIS_MAX_CELLS``, at most ``FULL_LOUIS_MAX_PARAMS`` parameters) use
the full matrix (:func:`_full_louis_covariances`; on LSAT7 it gives R mirt's
SEs within 1 %).  Larger ones use item blocks (:func:`_covariances`), which
neglect covariances between items that share students and read a few percent
low on dense data.  ``model.fit["se_method"]`` says which was used.  Parameters
on a boundary (a 3PL ``c`` going to 0) get no SE (null in the artifact).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, logit

from irt import __version__
from irt.engine import defaults
from irt.engine.defaults import Defaults
from irt.engine.model import MODEL_TYPES, ItemModel, ModelType, softplus_tail
from irt.engine.responses import Responses
from irt.engine.squarem import squarem


@dataclass(frozen=True)
class Quadrature:
    """Fixed quadrature for the latent N(0, 1): ``n_points`` nodes evenly on ``[-bound, bound]``.

    Weights are the normal density at the nodes, normalised to sum to one (as R mirt does).
    """

    n_points: int = 41
    bound: float = 6.0

    def __post_init__(self) -> None:
        if self.n_points < 5:
            raise ValueError("quadrature n_points must be at least 5")
        if not self.bound > 0:
            raise ValueError("quadrature bound must be positive")

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(nodes, log_weights)``, each of shape ``(n_points,)``."""
        x = np.linspace(-self.bound, self.bound, self.n_points)
        lw = -0.5 * x**2
        lw -= np.logaddexp.reduce(lw)
        return x, lw


@dataclass(frozen=True)
class Priors:
    """Optional priors added to the log-likelihood in the M-step (MAP item estimates).

    Attributes:
        a_lognormal: ``(meanlog, sdlog)``: ``log a ~ N(meanlog, sdlog^2)``.
        b_normal: ``(mean, sd)``: ``b ~ N(mean, sd^2)``.
        c_beta: ``(alpha, beta)``: ``c ~ Beta(alpha, beta)`` (3PL only).
    """

    a_lognormal: tuple[float, float] | None = None
    b_normal: tuple[float, float] | None = None
    c_beta: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("a_lognormal", "b_normal", "c_beta"):
            value = getattr(self, name)
            if value is None:
                continue
            if len(value) != 2 or not all(math.isfinite(v) for v in value):
                raise ValueError(f"prior {name} must be two finite numbers")
            if value[1] <= 0 or (name == "c_beta" and value[0] <= 0):
                raise ValueError(f"prior {name} needs positive scale/shape parameters")
            object.__setattr__(self, name, (float(value[0]), float(value[1])))

    @classmethod
    def default(cls, model: str, settings: Defaults | None = None) -> Priors:
        """The priors of ``settings`` (default :data:`irt.engine.defaults.DEFAULTS`) for
        ``model``: the slope and difficulty priors for all (the slope prior falls on the 1PL's
        common slope, and on the Rasch model's latent SD, which plays its part in the
        calibration), the guessing prior for the 3PL only."""
        s = settings if settings is not None else defaults.DEFAULTS
        return cls(a_lognormal=s.prior_a, b_normal=s.prior_b,
                   c_beta=s.prior_c if model == "3pl" else None)

    def to_dict(self) -> dict[str, list[float] | None]:
        return {k: (list(v) if v is not None else None) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class FitConfig:
    """Calibration settings; a field left out takes its value from
    :data:`irt.engine.defaults.DEFAULTS` (read when the config is made).

    Attributes:
        model: one of :data:`irt.engine.model.MODEL_TYPES` (the ``ModelType`` literal):
            ``rasch``, ``1pl``, ``2pl`` or ``3pl``; checked at construction.
        quadrature: quadrature of the latent distribution.
        priors: item priors; ``None`` = :meth:`Priors.default` for the model (the defaults'
            priors); ``Priors()`` = none (maximum likelihood, as R mirt).
        tol: convergence when no item parameter (``a``, ``d``, ``logit c``)
            moves more than ``tol`` in one EM cycle.
        max_iter: cap on EM cycles (E-steps).
        min_answers_per_item: items with fewer answers are left out and reported.
        min_slope: a fitted 2PL/3PL slope below this marks a non-discriminating
            or mis-keyed item: it is left out and the rest refitted.
        accelerate: use SQUAREM.
        compute_se: compute standard errors.
        float32_estep: run the E-step sparse products in float32 during the
            iterations (the final E-step, the log-likelihood and SEs are float64).
        skill_prior: with an item -> skill map given to :func:`fit`, the hierarchical skill
            prior (see :func:`fit`); without a map it changes nothing.
        skill_difficulty_sd: ``sigma_b``, SD of the difficulties around their skill's mean.
    """

    model: ModelType = field(default_factory=lambda: defaults.DEFAULTS.model)
    quadrature: Quadrature = field(
        default_factory=lambda: Quadrature(defaults.DEFAULTS.quadrature_points))
    priors: Priors | None = None
    tol: float = field(default_factory=lambda: defaults.DEFAULTS.tol)
    max_iter: int = field(default_factory=lambda: defaults.DEFAULTS.max_iter)
    min_answers_per_item: int = field(
        default_factory=lambda: defaults.DEFAULTS.min_answers_per_item)
    min_slope: float = field(default_factory=lambda: defaults.DEFAULTS.min_slope)
    accelerate: bool = True
    compute_se: bool = True
    float32_estep: bool = True
    skill_prior: bool = field(default_factory=lambda: defaults.DEFAULTS.skill_prior)
    skill_difficulty_sd: float = field(
        default_factory=lambda: defaults.DEFAULTS.skill_difficulty_sd)

    def __post_init__(self) -> None:
        if self.model not in MODEL_TYPES:
            raise ValueError(f"model must be one of {', '.join(MODEL_TYPES)}, got {self.model!r}")
        if not self.tol > 0:
            raise ValueError("tol must be positive")
        if self.max_iter < 1:
            raise ValueError("max_iter must be at least 1")
        if self.min_answers_per_item < 1:
            raise ValueError("min_answers_per_item must be at least 1")
        if not self.skill_difficulty_sd > 0:
            raise ValueError("skill_difficulty_sd must be positive")

    def resolved_priors(self) -> Priors:
        """:attr:`priors`, or the defaults' for :attr:`model` when ``None``."""
        return self.priors if self.priors is not None else Priors.default(self.model)


@dataclass
class FitResult:
    """Outcome of :func:`fit`.

    Attributes:
        model: the calibrated :class:`~irt.engine.model.ItemModel`.
        iterations: EM cycles (E-steps) run.
        converged: whether ``tol`` was reached before ``max_iter``.
        log_likelihood: marginal log-likelihood at the estimates (without priors).
        log_posterior: the penalised objective that EM maximised (with log-priors).
        history: the objective after each EM cycle (for diagnostics).
    """

    model: ItemModel
    iterations: int
    converged: bool
    log_likelihood: float
    log_posterior: float
    history: list[float]


# --------------------------------------------------------------------------- helpers
class _Params:
    """Free parameters as one flat vector ``[a (n or 1), d (n), g (n, 3PL only)]``."""

    def __init__(self, model: str, n_items: int) -> None:
        self.model = model
        self.n = n_items
        self.common = model in ("rasch", "1pl")
        self.n_a = 1 if self.common else n_items
        self.has_c = model == "3pl"

    def split(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        a = v[: self.n_a]
        a = np.broadcast_to(a, (self.n,)) if self.common else a
        d = v[self.n_a: self.n_a + self.n]
        g = v[self.n_a + self.n:] if self.has_c else None
        return a, d, g

    def join(self, a: np.ndarray, d: np.ndarray, g: np.ndarray | None) -> np.ndarray:
        parts = [np.atleast_1d(a[:1] if self.common else a), d]
        if self.has_c:
            parts.append(g)
        return np.concatenate(parts).astype(float)


class _EStep:
    """Sparse E-step machinery for fixed data (students with no answers are dropped)."""

    def __init__(self, responses: Responses, n_items: int, quad: Quadrature) -> None:
        self.x, self.log_w = quad.nodes()
        cols = 2 * responses.item.astype(np.int64) + responses.correct
        # Compact the student index to those with answers.
        students, row = np.unique(responses.student, return_inverse=True)
        self.n_students = students.shape[0]
        shape = (self.n_students, 2 * n_items)
        ones = np.ones(responses.n_answers, dtype=np.float64)
        self.S64 = sp.csr_matrix((ones, (row, cols)), shape=shape)
        self.S64.sum_duplicates()
        self.S32 = self.S64.astype(np.float32)
        self.St64 = self.S64.T  # CSC view: fast scatter-add of posterior rows
        self.St32 = self.S32.T
        self.row = row.astype(np.int64)
        self.cols = cols

    def run(self, logp: np.ndarray, logq: np.ndarray, float32: bool
            ) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        """Return ``(r, n, loglik, posterior)``.

        ``r`` and ``n`` are the expected right and total answers (items x nodes),
        ``posterior`` the students x nodes posterior weights.
        """
        n_items = logp.shape[0]
        dtype = np.float32 if float32 else np.float64
        table = np.empty((2 * n_items, logp.shape[1]), dtype=dtype)
        table[0::2] = logq
        table[1::2] = logp
        S, St = (self.S32, self.St32) if float32 else (self.S64, self.St64)
        L = S @ table
        L += self.log_w.astype(dtype)
        m = L.max(axis=1, keepdims=True)
        np.subtract(L, m, out=L)
        # Weights below e^-80 (~1e-35) are raised to it: they are negligible, and float32
        # denormals would slow the next sparse product down several times.
        np.maximum(L, -80.0, out=L)
        np.exp(L, out=L)
        tot = L.sum(axis=1, keepdims=True)
        loglik = float(np.sum(np.log(tot, dtype=np.float64)) + np.sum(m, dtype=np.float64))
        L /= tot
        counts = St @ L
        # in float64, as contiguous arrays (the M-step's passes read them block by block)
        right = counts[1::2].astype(np.float64)
        return right, counts[0::2] + right, loglik, L


def _item_probabilities(a, d, g, x) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """``(P, P*, logP, log(1-P))`` at nodes ``x`` for every item (items x nodes)."""
    z = a[:, None] * x[None, :] + d[:, None]
    # log P* = min(z, 0) - log1p(e^-|z|), log(1 - P*) = -max(z, 0) - log1p(e^-|z|): exact
    # for any z, and half the time of two np.logaddexp calls (the M-step's main cost).
    soft = softplus_tail(z)
    logp = np.minimum(z, 0.0) - soft
    pstar = np.exp(logp)
    if g is None:
        logq = -np.maximum(z, 0.0) - soft
        # P is clipped (steep items reach 1.0 in float64 at the outer nodes); logs are exact.
        return np.clip(pstar, 1e-15, 1 - 1e-15), pstar, logp, logq
    c = expit(g)[:, None]
    p = c + (1.0 - c) * pstar
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return p, pstar, np.log(p), np.log1p(-p)


def _item_logs(a, d, g, x, points: _Points | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(log P, log(1 - P))`` at nodes ``x`` for every item (items x nodes): the E-step's
    needs, without the probabilities themselves.  Without guessing ``log(1 - P) = log P - z``
    (the same values as :func:`_item_probabilities`' to an ulp, in fewer passes), from the
    :class:`_Point` at ``(a, d)`` (``points``' when given)."""
    if g is not None:
        _, _, logp, logq = _item_probabilities(a, d, g, x)
        return logp, logq
    point = _point(points, a, d, x)
    logp = np.empty((a.shape[0], x.shape[0]))
    logq = np.empty_like(logp)
    for k, (lo, hi) in enumerate(point.blocks):
        np.minimum(point.z[k], 0.0, out=logp[lo:hi])
        logp[lo:hi] -= point.soft(k)
        np.subtract(logp[lo:hi], point.z[k], out=logq[lo:hi])
    return logp, logq


def _objective(a, d, g, r, n, x, priors: Priors | _ItemPriors, common: bool,
               points: _Points | None = None) -> np.ndarray:
    """Expected complete-data log-likelihood plus log-priors, per item (shape ``(n_items,)``).

    Without guessing, ``sum_q r log P + (n - r) log(1 - P) = sum_q r z - n softplus(z)``
    (``log P = z - softplus(z)``, ``log(1 - P) = -softplus(z)``), and ``sum_q r z`` is
    ``a (r . x) + d sum_q r``: one pass for ``softplus(z) = max(z, 0) + log1p(exp(-|z|))``
    (exact in both tails) and its weighted sum, none for the rest; ``z`` and
    ``log1p(exp(-|z|))`` from the :class:`_Point` at ``(a, d)`` (``points``' when given).
    """
    if g is None:
        obj = np.empty(a.shape[0])
        point = _point(points, a, d, x)
        for k, (lo, hi) in enumerate(point.blocks):
            soft = np.maximum(point.z[k], 0.0)
            soft += point.soft(k)  # softplus(z)
            obj[lo:hi] = (a[lo:hi] * (r[lo:hi] @ x) + d[lo:hi] * r[lo:hi].sum(axis=1)
                          - np.einsum("jq,jq->j", n[lo:hi], soft))
    else:
        _, _, logp, logq = _item_probabilities(a, d, g, x)
        obj = np.sum(r * logp + (n - r) * logq, axis=1)
    return obj + _log_prior(a, d, g, priors, common)


#: Items per block of the M-step's items x nodes passes (2,048 x 41 float64: 0.7 MB per
#: array, so a block's few arrays stay in a core's L2 cache; a third faster than whole-bank
#: arrays at 17,700 items).
_BLOCK = 2048


class _Point:
    """``z = a x + d`` and ``e = exp(-|z|)`` at one parameter point without guessing, per
    block of :data:`_BLOCK` items (items x nodes), and ``log1p(e)`` once asked for: what the
    E-step's logs (:func:`_item_logs`), the M-step's objective (:func:`_objective`) and its
    gradient (:func:`_score_2pl`) compute from ``(a, d)``, with the same operations, so the
    same values.  An EM cycle meets each point up to three times (the E-step's logs, then
    the objective and the gradient at the M-step's start; a step's objective, then the
    gradient there): :class:`_Points` computes it once.

    Attributes:
        a, d: the point (copies).
        blocks: ``(lo, hi)`` item ranges of the blocks.
        z, e: per block, arrays of shape ``(hi - lo, n_nodes)``; read-only by convention.
    """

    def __init__(self, a: np.ndarray, d: np.ndarray, x: np.ndarray) -> None:
        self.a, self.d = np.array(a, dtype=float), np.array(d, dtype=float)
        n = self.a.shape[0]
        self.blocks = [(lo, min(lo + _BLOCK, n)) for lo in range(0, n, _BLOCK)]
        self.z: list[np.ndarray] = []
        self.e: list[np.ndarray] = []
        for lo, hi in self.blocks:
            z = np.multiply.outer(self.a[lo:hi], x)
            z += self.d[lo:hi, None]
            e = np.abs(z)
            np.negative(e, out=e)
            np.exp(e, out=e)
            self.z.append(z)
            self.e.append(e)
        self._soft: list[np.ndarray | None] = [None] * len(self.blocks)

    def soft(self, k: int) -> np.ndarray:
        """``log1p(exp(-|z|))`` of block ``k`` (as :func:`irt.engine.model.softplus_tail`)."""
        soft = self._soft[k]
        if soft is None:
            soft = self._soft[k] = np.log1p(self.e[k])
        return soft


class _Points:
    """The last ``size`` :class:`_Point` of one fit (its nodes ``x``), found by value: a call
    with ``(a, d)`` equal to a kept point's, element for element, returns it; otherwise a
    new point is computed and the oldest dropped.  Two suffice: the M-step's start and the
    step being tried (an accepted step is the next start, and the next E-step's point)."""

    def __init__(self, x: np.ndarray, size: int = 2) -> None:
        self.x, self.size = x, size
        self._kept: list[_Point] = []

    def __call__(self, a: np.ndarray, d: np.ndarray) -> _Point:
        for k, point in enumerate(self._kept):
            if point.a.shape == np.shape(a) and np.array_equal(point.a, a) and \
                    np.array_equal(point.d, d):
                self._kept.append(self._kept.pop(k))
                return point
        point = _Point(a, d, self.x)
        self._kept = [*self._kept[1 - self.size:], point] if self.size > 1 else [point]
        return point


def _point(points: _Points | None, a: np.ndarray, d: np.ndarray, x: np.ndarray) -> _Point:
    """The :class:`_Point` at ``(a, d)``: ``points``' (kept for the fit), else a new one."""
    return _Point(a, d, x) if points is None else points(a, d)


def _log_prior(a, d, g, priors: Priors | _ItemPriors, common: bool) -> np.ndarray:
    """The log-priors of :func:`_objective`, per item (the slope prior spread over the items
    with ``common``)."""
    obj = np.zeros(a.shape[0])
    if priors.a_lognormal is not None:
        m, s = priors.a_lognormal
        with np.errstate(divide="ignore", invalid="ignore"):
            la = np.log(a)
            pa = np.where(a > 0, -la - 0.5 * ((la - m) / s) ** 2, -np.inf)
        obj += pa / a.shape[0] if common else pa
    if priors.b_normal is not None:
        m, s = priors.b_normal
        obj -= 0.5 * ((-d / a - m) / s) ** 2
    if priors.c_beta is not None and g is not None:
        al, be = priors.c_beta
        # log Beta density in c plus the Jacobian of c = logistic(g).
        obj += al * (-np.logaddexp(0.0, -g)) + be * (-np.logaddexp(0.0, g))
    return obj


def _gradient_information(a, d, g, r, n, x, priors: Priors | _ItemPriors, common: bool = False,
                          points: _Points | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-item gradient (n_items x k) and Fisher information (n_items x k x k) in (a, d[, g]).

    With ``common`` (one slope shared by every item, 1PL) the slope prior's terms are
    spread over the items (divided by their number), so that summing the slope column
    over items counts the prior once - as :func:`_objective` does.  ``z`` and ``exp(-|z|)``
    from the :class:`_Point` at ``(a, d)`` (``points``' when given).
    """
    if g is None:
        grad = np.empty((a.shape[0], 2))
        info = np.empty((a.shape[0], 2, 2))
        point = _point(points, a, d, x)
        for k, (lo, hi) in enumerate(point.blocks):
            _score_2pl(a[lo:hi], d[lo:hi], r[lo:hi], n[lo:hi], x, grad[lo:hi], info[lo:hi],
                       point.z[k], point.e[k])
    else:
        p, pstar, _, _ = _item_probabilities(a, d, g, x)
        ds = pstar * (1.0 - pstar)
        c = expit(g)[:, None]
        dp = np.stack([(1 - c) * ds * x[None, :], (1 - c) * ds, c * (1 - c) * (1 - pstar)], axis=1)
        pq = p * (1.0 - p)
        grad = np.einsum("jq,jkq->jk", (r - n * p) / pq, dp)
        info = np.einsum("jq,jkq,jlq->jkl", n / pq, dp, dp)
    k = grad.shape[1]
    if priors.a_lognormal is not None:
        m, s = priors.a_lognormal
        aa = np.maximum(a, 1e-8)
        la = np.log(aa)
        share = 1.0 / a.shape[0] if common else 1.0
        grad[:, 0] += share * (-1.0 - (la - m) / s**2) / aa
        info[:, 0, 0] += share * (1.0 + 1.0 / s**2) / aa**2
    if priors.b_normal is not None:
        m, s = priors.b_normal
        b = -d / a
        jac = np.stack([d / a**2, -1.0 / a], axis=1)  # db/da, db/dd
        grad[:, :2] += (-(b - m) / s**2)[:, None] * jac
        # s: a number, or one per item (the skill prior)
        info[:, :2, :2] += jac[:, :, None] * jac[:, None, :] / np.reshape(s, (-1, 1, 1)) ** 2
    if priors.c_beta is not None and k == 3:
        al, be = priors.c_beta
        c1 = expit(g)
        grad[:, 2] += al * (1 - c1) - be * c1
        info[:, 2, 2] += (al + be) * c1 * (1 - c1)
    return grad, info


def _score_2pl(a, d, r, n, x, grad: np.ndarray, info: np.ndarray, z: np.ndarray,
               e: np.ndarray) -> None:
    """:func:`_gradient_information`'s likelihood part without guessing, into ``grad`` and
    ``info`` (one block of items), from the block's ``z`` and ``exp(-|z|)`` (its
    :class:`_Point`'s; left unchanged)."""
    # P = logistic(z), exact in both tails: 1 / (1 + e) or e / (1 + e), e = exp(-|z|)
    inv = e + 1.0
    np.reciprocal(inv, out=inv)
    e = e * inv  # e / (1 + e)
    # P (1 - P) = e / (1 + e)^2 on both sides of 0
    w = e * inv
    w *= n
    # P = 1 / (1 + e) where z >= 0, else e / (1 + e): in place of 1 / (1 + e)
    pstar = inv
    np.copyto(pstar, e, where=~(z >= 0.0))
    # canonical link: dl/dz = r - nP (P clipped as the objective's logs are not)
    np.maximum(pstar, 1e-15, out=pstar)
    np.minimum(pstar, 1 - 1e-15, out=pstar)
    pstar *= n
    resid = np.subtract(r, pstar, out=pstar)
    grad[:, 0] = resid @ x
    grad[:, 1] = resid.sum(1)
    info[:, 0, 0] = w @ (x * x)
    info[:, 0, 1] = info[:, 1, 0] = w @ x
    info[:, 1, 1] = w.sum(1)


def _m_step(pm: _Params, v: np.ndarray, r: np.ndarray, n: np.ndarray, x: np.ndarray,
            priors: Priors | _ItemPriors, max_newton: int = 2,
            points: _Points | None = None) -> np.ndarray:
    """Improve the expected complete-data objective by Fisher scoring with step halving.

    At most ``max_newton`` steps per M-step (a generalised EM: every step raises the
    objective, and the fixed point is the same); more steps made each EM cycle dearer
    without saving cycles (measured: ASSISTments 2009, 17,339 items, 5.4 s with 2 steps,
    10.5 s with 4, 21.8 s with 8, same estimates).  ``points``: the fit's :class:`_Points`
    (the same result, with fewer passes).
    """
    a, d, g = pm.split(v)
    a, d = a.copy(), d.copy()
    g = None if g is None else g.copy()
    obj = _objective(a, d, g, r, n, x, priors, pm.common, points)
    for _ in range(max_newton):
        grad, info = _gradient_information(a, d, g, r, n, x, priors, pm.common, points)
        if pm.common:
            # Arrowhead system in (a, d_1..d_n): Schur complement on the common slope.
            idd = info[:, 1, 1] + 1e-12
            iad = info[:, 0, 1]
            schur = info[:, 0, 0].sum() - np.sum(iad**2 / idd)
            step_a = (grad[:, 0].sum() - np.sum(iad * grad[:, 1] / idd)) / max(schur, 1e-12)
            step_d = (grad[:, 1] - iad * step_a) / idd
            step = np.concatenate([[step_a], step_d])
            scale = 1.0
            total = obj.sum()
            for _h in range(12):
                a_new = np.full_like(a, a[0] + scale * step_a)
                d_new = d + scale * step_d
                new = _objective(a_new, d_new, None, r, n, x, priors, True, points)
                if new.sum() >= total - 1e-10 * abs(total):
                    break
                scale *= 0.5
            else:
                break
            a, d, obj = a_new, d_new, new
            if scale * np.max(np.abs(step)) < 1e-9:
                break
            continue
        k = grad.shape[1]
        info = info + 1e-10 * np.eye(k)[None]
        step = np.linalg.solve(info, grad[:, :, None])[:, :, 0]
        scale = np.ones(a.shape[0])
        accepted = np.zeros(a.shape[0], dtype=bool)
        cand = None
        for _h in range(12):
            a_new = a + scale * step[:, 0]
            d_new = d + scale * step[:, 1]
            g_new = None if g is None else g + scale * step[:, 2]
            new = _objective(a_new, d_new, g_new, r, n, x, priors, False, points)
            ok = np.isfinite(new) & (new >= obj - 1e-10 * np.abs(obj))
            take = ok & ~accepted
            if cand is None:
                cand = [a.copy(), d.copy(), None if g is None else g.copy(), obj.copy()]
            cand[0][take], cand[1][take] = a_new[take], d_new[take]
            if g is not None:
                cand[2][take] = g_new[take]
            cand[3][take] = new[take]
            accepted |= ok
            if accepted.all():
                break
            scale = np.where(accepted, scale, scale * 0.5)
        moved = np.max(np.abs(scale[accepted, None] * step[accepted])) if accepted.any() else 0.0
        a, d, g, obj = cand[0], cand[1], cand[2], cand[3]
        if moved < 1e-9:
            break
    return pm.join(a, d, g)


def _m_step_skills(pm: _Params, v: np.ndarray, mu: np.ndarray, r: np.ndarray, n: np.ndarray,
                   x: np.ndarray, skills: _SkillPrior, max_newton: int = 2,
                   points: _Points | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_m_step` for the 2PL/3PL with the skill prior: Fisher scoring on the items'
    parameters and the skill means together, then the means in closed form.

    The skill means couple the items of a skill, but each item to one skill only: the
    system is an arrowhead, solved exactly through the per-skill Schur complement::

        S_k = H_k - sum_{j in k} B_j' C_j B_j,   C_j = I_j^-1
        step_k = (g_k - sum_{j in k} B_j' C_j g_j) / S_k,   step_j = C_j (g_j - B_j step_k)

    with ``I_j, g_j`` the item's information and gradient (prior included), ``H_k =
    n_k / sigma_b^2 + 1 / s_0^2`` and ``g_k`` those of the mean ``mu_k``, and ``B_j =
    -(db_j / dxi_j) / sigma_b^2`` the prior's cross information.  Updating the items given
    the means and the means given the items in turn (ECM) crawls here: a rarely answered
    item follows its skill's mean and the mean its items (measured on the sparse log of
    ``benchmarks/bench_sparse.py``: 35 EM cycles and 14 s, against 13 cycles and 5 s).
    Step halving is per skill (the objective is a sum over the skills, and over the items
    without one), so every accepted step raises the penalised objective.

    Returns:
        ``(item parameters, skill means)``.
    """
    a, d, g = pm.split(v)
    g = None if g is None else g.copy()
    K = skills.n_skills
    has = skills.skill >= 0
    kk = skills.skill[has]
    # acceptance groups: a skill (its items and mean), or one item without a skill
    group = np.where(has, skills.skill, K + np.cumsum(~has) - 1)
    n_groups = K + int((~has).sum())
    m0, s0 = skills.population.b_normal  # type: ignore[misc]
    sb2 = skills.b_sd ** 2
    h_k = np.bincount(kk, minlength=K) / sb2 + 1.0 / s0**2

    def objective(a, d, g, mu) -> np.ndarray:
        """Per group: its items' objectives plus the skill mean's log-prior."""
        per_item = _objective(a, d, g, r, n, x, skills.item_priors(mu), False, points)
        per_group = np.bincount(group, weights=per_item, minlength=n_groups)
        per_group[:K] += skills.log_hyper(mu)
        return per_group

    obj = objective(a, d, g, mu)
    for _ in range(max_newton):
        grad, info = _gradient_information(a, d, g, r, n, x, skills.item_priors(mu), False,
                                           points)
        k = grad.shape[1]
        inv = _inverse(info + 1e-10 * np.eye(k)[None])
        cross = np.zeros((pm.n, k))  # B_j; zero for the items without a skill
        cross[has, 0] = -(d[has] / a[has] ** 2) / sb2
        cross[has, 1] = (1.0 / a[has]) / sb2
        cb = np.einsum("jkl,jl->jk", inv, cross)   # C_j B_j
        cg = np.einsum("jkl,jl->jk", inv, grad)    # C_j g_j
        g_k = (np.bincount(kk, weights=(-d / a)[has] - mu[kk], minlength=K) / sb2
               - (mu - m0) / s0**2)
        schur = h_k - np.bincount(kk, weights=np.einsum("jk,jk->j", cross, cb)[has],
                                  minlength=K)
        rhs = g_k - np.bincount(kk, weights=np.einsum("jk,jk->j", cross, cg)[has], minlength=K)
        step_mu = rhs / schur
        step = cg
        step[has] -= cb[has] * step_mu[kk][:, None]
        scale = np.ones(n_groups)
        accepted = np.zeros(n_groups, dtype=bool)
        new_a, new_d, new_g, new_mu = a.copy(), d.copy(), None if g is None else g.copy(), \
            mu.copy()
        for _h in range(12):
            s_item = scale[group]
            a_try = a + s_item * step[:, 0]
            d_try = d + s_item * step[:, 1]
            g_try = None if g is None else g + s_item * step[:, 2]
            mu_try = mu + scale[:K] * step_mu
            # a slope at or below 0 makes its group's objective NaN: rejected
            per_group = objective(np.where(a_try > 0, a_try, np.nan), d_try, g_try, mu_try)
            ok = np.isfinite(per_group) & (per_group >= obj - 1e-10 * np.abs(obj))
            take = ok & ~accepted
            ti = take[group]
            new_a[ti], new_d[ti] = a_try[ti], d_try[ti]
            if g is not None:
                new_g[ti] = g_try[ti]  # type: ignore[index]
            new_mu[take[:K]] = mu_try[take[:K]]
            obj = np.where(take, per_group, obj)
            accepted |= ok
            if accepted.all():
                break
            scale = np.where(accepted, scale, scale * 0.5)
        moved = float(np.max(np.abs(scale[group][:, None] * step)[accepted[group]],
                             initial=0.0))
        a, d, g, mu = new_a, new_d, new_g, new_mu
        if moved < 1e-9:
            break
    # the means given the items: exact, and never lowers the objective
    return pm.join(a, d, g), skills.update(a, d)


def _inverse(m: np.ndarray) -> np.ndarray:
    """Inverses of a stack of matrices (``(n, k, k)``): 2 x 2 ones by the adjugate over the
    determinant (a tenth of ``np.linalg.inv``'s time on ASSISTments' 17,700 items; the same
    values to rounding), larger ones by ``np.linalg.inv``."""
    if m.shape[1:] != (2, 2):
        return np.linalg.inv(m)
    p, q, t, s = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    det = p * s - q * t
    out = np.empty_like(m)
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = s / det, -q / det, -t / det, \
        p / det
    return out


def _start_values(responses: Responses, pm: _Params, priors: Priors) -> np.ndarray:
    """Start from proportions correct and item-score correlations (O(answers))."""
    n_items = pm.n
    n_j = np.bincount(responses.item, minlength=n_items).astype(float)
    k_j = np.bincount(responses.item, weights=responses.correct, minlength=n_items)
    p = (k_j + 0.5) / (n_j + 1.0)
    # Student score: logit of smoothed proportion correct, standardised.
    n_s = np.bincount(responses.student, minlength=responses.n_students).astype(float)
    k_s = np.bincount(responses.student, weights=responses.correct, minlength=responses.n_students)
    score = logit((k_s + 0.5) / (n_s + 1.0))
    answered = n_s > 0
    score = (score - score[answered].mean()) / max(score[answered].std(), 1e-6)
    z = score[responses.student]
    y = responses.correct.astype(float)
    mz = np.bincount(responses.item, weights=z, minlength=n_items) / np.maximum(n_j, 1)
    mzz = np.bincount(responses.item, weights=z * z, minlength=n_items) / np.maximum(n_j, 1)
    myz = np.bincount(responses.item, weights=y * z, minlength=n_items) / np.maximum(n_j, 1)
    py = k_j / np.maximum(n_j, 1)
    cov = myz - py * mz
    sd = np.sqrt(np.maximum(py * (1 - py), 1e-6) * np.maximum(mzz - mz**2, 1e-6))
    rho = np.clip(cov / sd, 0.05, 0.9)
    a = np.clip(1.7 * rho / np.sqrt(1 - rho**2), 0.25, 2.5)
    if pm.common:
        a = np.full(n_items, float(np.median(a)))
    g = None
    if pm.has_c:
        c0 = priors.c_beta[0] / sum(priors.c_beta) if priors.c_beta else 0.1
        p = np.clip((p - c0) / (1 - c0), 0.02, 0.98)
        g = np.full(n_items, float(logit(c0)))
    d = logit(p) / 1.7 * np.sqrt(1.7**2 + a**2)
    return pm.join(a, d, g)


# --------------------------------------------------------------------------- EM

@dataclass(frozen=True)
class _ItemPriors:
    """Per-item priors (the skill prior's): :class:`Priors`' fields with arrays of shape
    ``(n_items,)`` as the location and scale of the difficulty prior.  The functions that
    take a :class:`Priors` (:func:`_objective`, :func:`_gradient_information`) broadcast
    them item by item."""

    a_lognormal: tuple[float, float] | None
    b_normal: tuple[np.ndarray, np.ndarray]
    c_beta: tuple[float, float] | None


@dataclass(frozen=True)
class _SkillPrior:
    """The hierarchical skill prior of one fit (see :func:`fit`).

    Attributes:
        skill: skill index of each calibrated item, ``-1`` for none, shape ``(n_items,)``.
        n_skills: skill indices ``0..n_skills-1``.
        b_sd: ``sigma_b``, SD of the difficulties ``-d / a`` around their skill's mean.
        population: the population priors: of the items without a skill, of the skill
            means (``mu_k ~ b_normal``) and of every slope.
    """

    skill: np.ndarray
    n_skills: int
    b_sd: float
    population: Priors

    def item_priors(self, mu: np.ndarray) -> _ItemPriors:
        """Each item's priors given the skill means ``mu``."""
        n = self.skill.shape[0]
        has = self.skill >= 0
        pop = self.population
        assert pop.b_normal is not None
        b_mean, b_sd = np.full(n, pop.b_normal[0]), np.full(n, pop.b_normal[1])
        b_mean[has], b_sd[has] = mu[self.skill[has]], self.b_sd
        return _ItemPriors(pop.a_lognormal, (b_mean, b_sd), pop.c_beta)

    def update(self, a: np.ndarray, d: np.ndarray) -> np.ndarray:
        """The skill means that maximise the log-posterior given the items, in closed form
        (a normal mean with a normal prior)::

            mu_k = (sum_{j in k} b_j / sigma_b^2 + m_0 / s_0^2) / (n_k / sigma_b^2 + 1 / s_0^2)

        with ``b_j = -d_j / a_j`` and ``(m_0, s_0)`` the population difficulty prior."""
        has = self.skill >= 0
        k = self.skill[has]
        m0, s0 = self.population.b_normal  # type: ignore[misc]
        total = np.bincount(k, weights=(-d / a)[has], minlength=self.n_skills)
        count = np.bincount(k, minlength=self.n_skills)
        return (total / self.b_sd**2 + m0 / s0**2) / (count / self.b_sd**2 + 1 / s0**2)

    def log_hyper(self, mu: np.ndarray) -> np.ndarray:
        """Log-prior of each skill mean (``mu_k ~ b_normal``), up to a constant."""
        m0, s0 = self.population.b_normal  # type: ignore[misc]
        return -0.5 * ((mu - m0) / s0) ** 2


def _em(responses: Responses, n_items: int, cfg: FitConfig, priors: Priors,
        skills: _SkillPrior | None = None, *,
        progress: Callable[[int, float, float], None] | None = None
        ) -> tuple[np.ndarray, np.ndarray | None, int, bool, list[float], _EStep]:
    """EM (SQUAREM) from the start values.

    Returns ``(item parameters, skill means or None, EM cycles, converged, objective
    history, E-step)``.  With ``skills`` the parameter vector carries the skill means after
    the items' parameters; each M-step raises the log-posterior in both (together for the
    2PL/3PL, :func:`_m_step_skills`; in turn for the 1PL/Rasch).
    """
    pm = _Params(cfg.model, n_items)
    estep = _EStep(responses, n_items, cfg.quadrature)
    x = estep.x
    points = _Points(x)
    n_v = pm.n_a + pm.n * (2 if pm.has_c else 1)

    def split(v: np.ndarray) -> tuple[np.ndarray, Priors | _ItemPriors, np.ndarray | None]:
        """``(item parameters, the items' priors, hyper-parameters or None)``."""
        if skills is None:
            return v, priors, None
        h = v[n_v:]
        return v[:n_v], skills.item_priors(h), h

    def em_map(v: np.ndarray) -> tuple[np.ndarray, float]:
        vi, item_priors, h = split(v)
        a, d, g = pm.split(vi)
        logp, logq = _item_logs(a, d, g, x, points)
        r, n, loglik, _ = estep.run(logp, logq, cfg.float32_estep)
        log_prior = float(_log_prior(a, d, g, item_priors, pm.common).sum())
        if skills is None:
            return _m_step(pm, vi, r, n, x, item_priors, points=points), loglik + log_prior
        objective = loglik + log_prior + float(skills.log_hyper(h).sum())  # type: ignore
        if not np.all(a > 0):  # an extrapolation past a zero slope: SQUAREM rejects it
            return v, -math.inf
        if pm.common:  # the common slope's own arrowhead: the means after the items (ECM)
            new = _m_step(pm, vi, r, n, x, item_priors, points=points)
            a_new, d_new, _ = pm.split(new)
            return np.concatenate([new, skills.update(a_new, d_new)]), objective
        new, h_new = _m_step_skills(pm, vi, h, r, n, x, skills,  # type: ignore[arg-type]
                                    points=points)
        return np.concatenate([new, h_new]), objective

    def natural(v: np.ndarray) -> np.ndarray:
        # Convergence is judged on (a, d, c): a guessing parameter drifting to 0
        # moves logit(c) forever but c not at all.
        if not pm.has_c:
            return v
        out = v.copy()
        out[pm.n_a + pm.n:n_v] = expit(v[pm.n_a + pm.n:n_v])
        return out

    def change(v_new: np.ndarray, v_old: np.ndarray) -> float:
        return float(np.max(np.abs(natural(v_new) - natural(v_old))))

    start = _start_values(responses, pm, priors)
    if skills is not None:
        a0, d0, _ = pm.split(start)
        start = np.concatenate([start, skills.update(a0, d0)])
    v, iterations, converged, history = squarem(
        em_map, start, tol=cfg.tol, max_iter=cfg.max_iter,
        accelerate=cfg.accelerate, change=change, progress=progress)
    return v[:n_v], (v[n_v:] if skills is not None else None), iterations, converged, \
        history, estep


@dataclass
class _Scores:
    """Posterior and per-(item, answer) complete-data score factors at the estimates.

    ``dp`` (items x k x nodes) is dP/dxi; one answer's score at node ``x`` is
    ``f_y(x) dP/dxi`` with ``f_1 = 1/P``, ``f_0 = -1/(1 - P)``; ``table`` holds those scores
    in rows ``2 j + y`` (2 items x k x nodes); ``resid = (r - nP) / (P(1-P))``.
    """

    r: np.ndarray
    n: np.ndarray
    post: np.ndarray
    p: np.ndarray
    dp: np.ndarray
    f1: np.ndarray
    f0: np.ndarray
    resid: np.ndarray
    table: np.ndarray


def _scores(a: np.ndarray, d: np.ndarray, g: np.ndarray | None, estep: _EStep) -> _Scores:
    x = estep.x
    p, pstar, logp, logq = _item_probabilities(a, d, g, x)
    r, n, _, post = estep.run(logp, logq, False)
    ds = pstar * (1.0 - pstar)
    if g is None:
        dp = np.stack([ds * x[None, :], ds], axis=1)
    else:
        c = expit(g)[:, None]
        dp = np.stack([(1 - c) * ds * x[None, :], (1 - c) * ds, c * (1 - c) * (1 - pstar)], axis=1)
    f1, f0 = 1.0 / p, -1.0 / (1.0 - p)
    table = np.empty((2 * p.shape[0], dp.shape[1], x.shape[0]))
    table[0::2] = f0[:, None, :] * dp
    table[1::2] = f1[:, None, :] * dp
    return _Scores(r, n, post, p, dp, f1, f0, (r - n * p) / (p * (1.0 - p)), table)


def _covariances(pm: _Params, v: np.ndarray, estep: _EStep, responses: Responses,
                     priors: Priors | _ItemPriors) -> np.ndarray:
    """Covariance of each item's free parameters ``[a, d, g]`` (items x k x k) by Louis' formula.

    One answer's complete-data score is ``s = f_y(x) dP/dxi`` with ``f_1 = 1/P`` and
    ``f_0 = -1/(1 - P)``, and its Hessian ``f_y d2P/dxi2 - f_y^2 dP dP'``.  Louis'
    observed information, ``E[-H_c] - E[s_c s_c'] + E[s_c] E[s_c]'`` under the
    posterior, restricted to the block of item ``j`` (a student answers an item at
    most once, so the ``f_y^2`` terms cancel), is::

        I_j = sum_{answers of j} m m'  -  sum_q (r_jq - n_jq P_jq) / (P_jq Q_jq) d2P_jq/dxi2

    with ``m = E_post[s]`` the posterior mean score of each answer, plus the prior
    information.  Covariances between items that share students are neglected
    (item-block approximation).  The common slope of the 1PL/Rasch gets its own
    1 x 1 block with each student's score summed over answers::

        I_aa = sum_q [r f_1^2 + (n - r) f_0^2] (dP/da)^2 - sum_q (r - nP)/(PQ) d2P/da2
               - sum_s Var_post(sum_{answers of s} s_a)

    Covariance = I_j^-1; NaN where the block is not positive definite.
    """
    a, d, g = pm.split(v)
    x = estep.x
    n_items = pm.n
    sc = _scores(a, d, g, estep)
    r, n, post, dp, f1, f0, resid, table = (sc.r, sc.n, sc.post, sc.dp, sc.f1, sc.f0,
                                            sc.resid, sc.table)
    k = dp.shape[1]
    info = np.zeros((n_items, k, k))
    for i in range(k):
        for j in range(i, k):
            info[:, i, j] = info[:, j, i] = -np.sum(resid * _d2p(a, d, g, x, i, j), axis=1)
    # Posterior mean score of every answer: a sampled dense product, in chunks.
    item = estep.cols // 2
    # float32 for the gathers (the dominant cost): ~1e-7 relative, ample for SEs.
    post32 = post.astype(np.float32)
    tables32 = [np.ascontiguousarray(table[:, kk, :], dtype=np.float32) for kk in range(k)]
    chunk = 16384
    sum_m2_a = 0.0
    for start in range(0, estep.cols.shape[0], chunk):
        stop = min(estep.cols.shape[0], start + chunk)
        rows = post32[estep.row[start:stop]]
        cols = estep.cols[start:stop]
        m = np.stack([np.einsum("nq,nq->n", rows, t[cols]) for t in tables32],
                     axis=1).astype(np.float64)
        sum_m2_a += float(np.sum(m[:, 0] ** 2))
        for i in range(k):
            for j in range(i, k):
                add = np.bincount(item[start:stop], weights=m[:, i] * m[:, j], minlength=n_items)
                info[:, i, j] += add
                if i != j:
                    info[:, j, i] += add
    zeros = np.zeros_like(r)
    # the prior on the common slope counts once (spread over the items)
    _, prior_info = _gradient_information(a, d, g, zeros, zeros, x, priors, pm.common)
    info += prior_info
    boundary = np.zeros(n_items, dtype=bool)
    if g is not None:
        # c at its boundary 0: no SE for c; a and d get theirs with c held there.
        boundary = expit(g) < C_BOUNDARY
        info[boundary, 2, :2] = info[boundary, :2, 2] = 0.0
        info[boundary, 2, 2] = 1.0
    cov = np.full((n_items, k, k), np.nan)
    first = 1 if pm.common else 0
    blocks = info[:, first:, first:]
    ok = np.linalg.det(blocks) > 0
    if ok.any():
        inv = np.linalg.inv(blocks[ok])
        good = np.all(np.diagonal(inv, axis1=1, axis2=2) > 0, axis=1)
        idx = np.flatnonzero(ok)[good]
        cov[idx, first:, first:] = inv[good]
    if pm.common:
        cov[:, 0, 1:] = cov[:, 1:, 0] = 0.0
    if boundary.any():
        cov[boundary, 2, :] = cov[boundary, :, 2] = np.nan
    if pm.common:
        # Remove the per-answer m_a^2 terms and use the per-student score variance instead.
        w_var = r * f1**2 + (n - r) * f0**2
        score_a = estep.S64 @ table[:, 0, :]  # students x nodes: summed slope score
        mean_a = np.sum(post * score_a, axis=1)
        var_a = np.sum(post * score_a**2, axis=1) - mean_a**2
        info_aa = (info[:, 0, 0].sum() - sum_m2_a + np.sum(w_var * dp[:, 0] ** 2) - var_a.sum())
        cov[:, 0, 0] = 1.0 / info_aa if info_aa > 0 else np.nan
    return cov


#: Refits after leaving out items whose slope fell below ``min_slope``; items still below
#: it after the last refit are left out of the model without another fit.
MAX_REFITS = 2

#: The full Louis information is used while students x nodes x parameters stays below this.
FULL_LOUIS_MAX_CELLS = 20_000_000
#: A 3PL guessing parameter below this is on its boundary (0): it gets no SE.
C_BOUNDARY = 1e-3
FULL_LOUIS_MAX_PARAMS = 300
FULL_LOUIS_MAX_FLOPS = 1_000_000_000


def _full_louis_covariances(pm: _Params, v: np.ndarray, estep: _EStep,
                            priors: Priors | _ItemPriors) -> np.ndarray | None:
    """Per-item covariance blocks from the inverse of the FULL Louis observed information.

    ``I = sum_j E[-H_c]_j - sum_s Cov_post(S_s)`` where ``S_s(x)`` is student ``s``'s
    complete-data score over all parameters at node ``x``: exact, including the
    covariances between items that share students.  Costs O(students x nodes x
    params^2), so it is used only for small problems (see the module constants);
    returns ``None`` when the problem is too large or the matrix is singular.
    """
    n_params = v.shape[0]
    x = estep.x
    cells = estep.n_students * x.shape[0] * n_params
    if n_params > FULL_LOUIS_MAX_PARAMS or cells > FULL_LOUIS_MAX_CELLS or (
            cells * n_params > FULL_LOUIS_MAX_FLOPS):
        return None
    a, d, g = pm.split(v)
    if g is not None and np.any(expit(g) < C_BOUNDARY):
        return None  # singular in c: the item-block path handles the boundary
    n_items = pm.n
    sc = _scores(a, d, g, estep)
    r, n, post, dp, f1, f0, resid, table = (sc.r, sc.n, sc.post, sc.dp, sc.f1, sc.f0,
                                            sc.resid, sc.table)
    k = dp.shape[1]
    w_var = r * f1**2 + (n - r) * f0**2
    # Global parameter index of (item j, local parameter k), as laid out by _Params.
    j_all = np.arange(n_items)
    gidx = np.stack([np.zeros(n_items, int) if pm.common else j_all, pm.n_a + j_all]
                    + ([pm.n_a + n_items + j_all] if k == 3 else []), axis=1)
    info = np.zeros((n_params, n_params))
    for i in range(k):
        for m in range(k):
            block = np.sum(w_var * dp[:, i] * dp[:, m], axis=1) - np.sum(
                resid * _d2p(a, d, g, x, min(i, m), max(i, m)), axis=1)
            np.add.at(info, (gidx[:, i], gidx[:, m]), block)
    item = estep.cols // 2
    scores = np.zeros((estep.n_students, x.shape[0], n_params))
    for kk in range(k):
        if kk == 0 and pm.common:
            scores[:, :, 0] = estep.S64 @ table[:, 0, :]  # summed over the student's answers
        else:  # one answer per (student, item): plain assignment
            scores[estep.row, :, gidx[item, kk]] = table[estep.cols, kk, :]
    mean = np.einsum("sq,sqp->sp", post, scores)
    info -= np.einsum("sq,sqp,sqr->pr", post, scores, scores, optimize=True) - mean.T @ mean
    zeros = np.zeros_like(r)
    _, prior_info = _gradient_information(a, d, g, zeros, zeros, x, priors, pm.common)
    for i in range(k):
        for m in range(k):
            np.add.at(info, (gidx[:, i], gidx[:, m]), prior_info[:, i, m])
    try:
        full = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.diag(full) > 0):
        return None
    return full[gidx[:, :, None], gidx[:, None, :]]


def _d2p(a, d, g, x, i: int, j: int) -> np.ndarray:
    """Second derivative of P w.r.t. parameters ``i`` and ``j`` of (a, d, g), items x nodes."""
    z = a[:, None] * x[None, :] + d[:, None]
    ps = expit(z)
    s1 = ps * (1 - ps)
    s2 = s1 * (1 - 2 * ps)  # d2 logistic / dz2
    dz = [x[None, :] * np.ones_like(z), np.ones_like(z)]
    if g is None:
        return s2 * dz[i] * dz[j]
    c = expit(g)[:, None]
    dc = c * (1 - c)
    d2c = dc * (1 - 2 * c)
    if i < 2 and j < 2:
        return (1 - c) * s2 * dz[i] * dz[j]
    if i == 2 and j == 2:
        return d2c * (1 - ps)
    other = j if i == 2 else i
    return -dc * s1 * dz[other]


# --------------------------------------------------------------------------- public API
def fit(responses: Responses, config: FitConfig | None = None,
        item_skill: np.ndarray | None = None, skill_ids: Sequence[str] = (), *,
        progress: Callable[[int, float, float], None] | None = None) -> FitResult:
    """Calibrate item parameters by marginal maximum likelihood.

    Items with fewer than ``config.min_answers_per_item`` answers, with every
    answer right or every answer wrong (their difficulty is infinite without a
    prior), or, for the 2PL/3PL, with a fitted slope below ``config.min_slope``,
    are left out of the model and listed in ``model.excluded_items`` with the
    reason; they are never fitted into nonsense.

    **Skill prior.**  With an item -> skill map (``item_skill``), ``config.skill_prior``
    and a difficulty prior ``b_normal = (m_0, s_0)``, the difficulty prior of an item
    with a skill is hierarchical, as the learning-aware "skills" option's
    (:mod:`irt.engine.learning_fit`)::

        b_j ~ N(mu_k(j), sigma_b^2),   mu_k ~ N(m_0, s_0^2)

    (``sigma_b`` = ``config.skill_difficulty_sd``; slopes keep the population prior, see
    :mod:`irt.engine.defaults`).  The skill means are estimated with the items - for the
    2PL/3PL by Fisher scoring on both at once (:func:`_m_step_skills`), for the 1PL and
    Rasch models (whose common slope has its own arrowhead) in closed form after each
    M-step (:meth:`_SkillPrior.update`) - so a rarely answered item is shrunk toward its
    skill's items instead of the whole bank.  Items without a skill keep the population
    priors.  Without a difficulty prior (maximum likelihood) there is no skill prior: the
    map then only fills the model's ``skills`` section (``fit["skill_prior"]`` says which).
    Standard errors hold the skill means at their estimates.

    The model's ``skills`` section (:func:`skills_section`) records, with a map, each
    skill's typical parameters, the skill of each calibrated item and of each item left
    out for too few answers (``predict`` serves those provisionally).

    Args:
        responses: sparse answers; at most one answer per student-item pair.
        config: settings; defaults to a 2PL with :class:`FitConfig` defaults.
        item_skill: skill index of each item of ``responses.item_ids``, ``-1`` for none,
            shape ``(n_items,)``; ``None``: no skill map.
        skill_ids: external id of each skill index.
        progress: called after each plain EM step (SQUAREM's extrapolations are not
            reported) as ``progress(cycle, objective, change)``: the EM steps so far, the
            log-posterior before the step (the log-likelihood without priors) and the
            largest parameter change of the step (converged below ``config.tol``); the
            cycle count starts again when items are left out and EM refits.

    Returns:
        A :class:`FitResult` whose ``model`` is ready to serialise.

    Raises:
        ValueError: if no item is left to calibrate, or the skill map does not fit the
            items or the skill ids.
    """
    cfg = config or FitConfig()
    priors = cfg.resolved_priors()
    skill_all = _check_skill_map(item_skill, skill_ids, responses.n_items)
    use_skill_prior = (skill_all is not None and cfg.skill_prior
                       and priors.b_normal is not None)
    n_j = responses.answers_per_item()
    k_j = np.rint(responses.correct_per_item())
    excluded: dict[str, str] = {}
    keep = np.ones(responses.n_items, dtype=bool)
    for j in np.flatnonzero(n_j < cfg.min_answers_per_item):
        excluded[responses.item_ids[j]] = (
            f"fewer than {cfg.min_answers_per_item} answers ({int(n_j[j])})")
        keep[j] = False
    too_few = ~keep
    extreme = keep & ((k_j == 0) | (k_j == n_j))
    # An all-right/all-wrong item is perfectly separable: its difficulty (and a free
    # slope) run away.  Keep it only if priors bound both.
    bounded = priors.b_normal is not None and (
        cfg.model in ("rasch", "1pl") or priors.a_lognormal is not None)
    if not bounded:
        for j in np.flatnonzero(extreme):
            kind = "right" if k_j[j] == n_j[j] else "wrong"
            excluded[responses.item_ids[j]] = f"every answer {kind} ({int(n_j[j])} answers)"
            keep[j] = False
    if responses.n_items == 0:
        raise ValueError("no item left to calibrate: there are no answers")
    for refit in range(MAX_REFITS + 1):
        if not keep.any():
            raise ValueError("no item left to calibrate: " + "; ".join(
                f"{i}: {why}" for i, why in list(excluded.items())[:5]))
        sub, kept_ids = _restrict(responses, keep)
        pm = _Params(cfg.model, len(kept_ids))
        skills = None
        if use_skill_prior:
            assert skill_all is not None
            skills = _SkillPrior(skill_all[keep], len(skill_ids), cfg.skill_difficulty_sd,
                                 priors)
        v, hyper, iterations, converged, history, estep = _em(sub, len(kept_ids), cfg,
                                                              priors, skills,
                                                              progress=progress)
        a, d, g = pm.split(v)
        low = np.zeros(pm.n, dtype=bool) if pm.common else a < cfg.min_slope
        if not low.any() or refit == MAX_REFITS:
            break
        kept_pos = np.flatnonzero(keep)
        for j in np.flatnonzero(low):
            excluded[responses.item_ids[kept_pos[j]]] = (
                f"slope {a[j]:.3f} below {cfg.min_slope} (not discriminating or mis-keyed)")
            keep[kept_pos[j]] = False
    # the items' priors at the estimates (the skill means held there, for the SEs)
    item_priors: Priors | _ItemPriors = priors
    if skills is not None:
        assert hyper is not None
        item_priors = skills.item_priors(hyper)

    # Final float64 E-step: exact log-likelihood and posterior for the SEs.
    logp, logq = _item_logs(a, d, g, estep.x)
    _, _, loglik, _ = estep.run(logp, logq, False)
    log_post = loglik + float(_log_prior(a, d, g, item_priors, pm.common).sum())
    if skills is not None:
        log_post += float(skills.log_hyper(hyper).sum())  # type: ignore[arg-type]
    k = 3 if pm.has_c else 2
    cov = None
    se_method = "none"
    if cfg.compute_se:
        cov = _full_louis_covariances(pm, v, estep, item_priors)
        se_method = "Louis observed information (full matrix)"
        if cov is None:
            cov = _covariances(pm, v, estep, sub, item_priors)
            se_method = "Louis observed information (item blocks)"
    if cov is None:
        cov = np.full((pm.n, k, k), np.nan)

    a_out = np.array(a, dtype=float)
    c_out = expit(g) if g is not None else np.zeros(pm.n)
    var_a = cov[:, 0, 0]
    if cfg.model == "rasch":
        # Same likelihood as the common slope on N(0,1): sigma = a, Rasch b = -d.
        sigma = float(a_out[0])
        b_out = -d
        se_a = np.full(pm.n, np.nan)
        se_b = np.sqrt(cov[:, 1, 1])
        a_out = np.ones(pm.n)
    else:
        sigma = 1.0
        b_out = -d / a_out
        jb = np.stack([d / a_out**2, -1.0 / a_out], axis=1)  # db/da, db/dd
        var_b = np.einsum("jk,jkl,jl->j", jb, cov[:, :2, :2], jb)
        se_a = np.sqrt(var_a)
        se_b = np.sqrt(var_b)
    se_c = (c_out * (1 - c_out) * np.sqrt(cov[:, 2, 2])) if pm.has_c else np.full(pm.n, np.nan)

    n_params = v.shape[0]  # rasch: sigma plays the common slope's part
    n_students = int(np.count_nonzero(sub.answers_per_student()))
    fit_stats = {
        "method": "MML-EM (Bock-Aitkin)" + (", SQUAREM" if cfg.accelerate else ""),
        "iterations": int(iterations),
        "converged": bool(converged),
        "tol": cfg.tol,
        "log_likelihood": float(loglik),
        "log_posterior": float(log_post),
        "n_parameters": int(n_params),
        "aic": float(-2 * loglik + 2 * n_params),
        "bic": float(-2 * loglik + n_params * math.log(max(sub.n_answers, 1))),
        "se_method": se_method,
    }
    if cfg.model == "rasch":
        fit_stats["latent_variance"] = sigma**2
    elif cfg.model == "1pl":
        fit_stats["common_slope"] = float(a_out[0])
    # Slopes still below min_slope after the last refit: left out of the model (the
    # other items' estimates come from a fit that still contained them).
    show = ~low
    for j in np.flatnonzero(low):
        excluded[kept_ids[j]] = (f"slope {a_out[j]:.3f} below {cfg.min_slope} after "
                                 f"{MAX_REFITS} refits (not discriminating or mis-keyed)")
    if low.any():
        fit_stats["items_left_out_after_fit"] = int(low.sum())
    prior_doc: dict[str, Any] = priors.to_dict()
    skills_doc: dict[str, Any] = {}
    if skill_all is not None:
        model_skill = skill_all[keep][show]
        mu = None
        if skills is not None:
            assert hyper is not None
            mu = hyper * sigma  # the reported metric (the Rasch model's b is -d, not -d / sigma)
            prior_doc["skill_difficulty_sd"] = skills.b_sd
        fit_stats["skill_prior"] = skills is not None
        below = {responses.item_ids[j]: skill_ids[skill_all[j]]
                 for j in np.flatnonzero(too_few & (skill_all >= 0)).tolist()}
        skills_doc = skills_section(cfg.model, a_out[show], np.asarray(b_out)[show],
                                    c_out[show], [i for i, k in zip(kept_ids, show, strict=True)
                                                  if k], model_skill, skill_ids, mu, below)
    summary = {
        "n_answers": int(sub.n_answers),
        "n_students": n_students,
        "n_items": int(show.sum()),
        "n_items_excluded": len(excluded),
        "proportion_correct": float(sub.correct.mean()) if sub.n_answers else 0.0,
    }
    model = ItemModel(
        model_type=cfg.model, item_ids=tuple(i for i, k in zip(kept_ids, show, strict=True) if k),
        a=a_out[show], b=np.asarray(b_out, dtype=float)[show], c=c_out[show],
        se_a=se_a[show], se_b=se_b[show], se_c=se_c[show], population_sd=sigma,
        quadrature={"n_points": cfg.quadrature.n_points, "bound": cfg.quadrature.bound,
                    "distribution": "normal"},
        priors=prior_doc, fit=fit_stats, data_summary=summary, excluded_items=excluded,
        created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        code_version=__version__, skills=skills_doc,
    )
    return FitResult(model, iterations, converged, float(loglik), float(log_post), history)


def _check_skill_map(item_skill: np.ndarray | None, skill_ids: Sequence[str],
                     n_items: int) -> np.ndarray | None:
    """``item_skill`` as int64, checked against the items and ``skill_ids``; ``None`` when
    there is no map or no item has a skill."""
    if item_skill is None:
        return None
    skill = np.asarray(item_skill)
    if skill.shape != (n_items,) or (skill.size and not np.issubdtype(skill.dtype, np.integer)):
        raise ValueError(f"item_skill must hold one integer per item ({n_items}), "
                         f"got shape {skill.shape} of {skill.dtype}")
    skill = skill.astype(np.int64)
    if skill.size and (skill.min() < -1 or skill.max() >= len(skill_ids)):
        raise ValueError(f"item_skill values must be -1 (none) or skill indices below "
                         f"{len(skill_ids)} (the skill ids given)")
    if len(set(skill_ids)) != len(skill_ids) or not all(
            isinstance(k, str) and k for k in skill_ids):
        raise ValueError("skill_ids must be distinct non-empty strings")
    return skill if np.any(skill >= 0) else None


def skills_section(model_type: str, a: np.ndarray, b: np.ndarray, c: np.ndarray,
                   item_ids: Sequence[str], item_skill: np.ndarray, skill_ids: Sequence[str],
                   mu: np.ndarray | None = None,
                   provisional: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The artifact's ``skills`` section (schema in :func:`irt.engine.model.skills_from_dict`).

    Each skill with at least one calibrated item gets its typical parameters: ``b`` the
    estimated skill mean ``mu_k`` (with the skill prior; else the mean difficulty of its
    items), ``a`` the geometric mean of its items' slopes (the Rasch model's 1, the 1PL's
    common slope), ``c`` the mean of its items' (3PL; else 0), and ``n_items``.

    Args:
        model_type: the model's type.
        a, b, c: the calibrated items' parameters (reported metric), shape ``(n,)``.
        item_ids: their ids.
        item_skill: their skill indices (``-1``: none).
        skill_ids: external id of each skill index.
        mu: the skill prior's estimated mean difficulty per skill index (reported metric),
            or ``None``.
        provisional: items not calibrated (too few answers) ``{item_id: skill_id}``; kept
            when their skill has calibrated items.

    Returns:
        ``{}`` when no calibrated item has a skill.
    """
    has = item_skill >= 0
    if not has.any():
        return {}
    k = item_skill[has]
    n_k = np.bincount(k, minlength=len(skill_ids))
    used = np.flatnonzero(n_k)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_b = np.bincount(k, weights=b[has], minlength=len(skill_ids)) / n_k
        mean_log_a = np.bincount(k, weights=np.log(a[has]), minlength=len(skill_ids)) / n_k
        mean_c = np.bincount(k, weights=c[has], minlength=len(skill_ids)) / n_k
    typical_b = mu if mu is not None else mean_b
    typical_a = np.exp(mean_log_a)
    if model_type == "rasch":
        typical_a = np.ones(len(skill_ids))
    elif model_type == "1pl":
        typical_a = np.full(len(skill_ids), float(a[0]))
    if model_type != "3pl":
        mean_c = np.zeros(len(skill_ids))
    parameters = {skill_ids[q]: {"a": float(typical_a[q]), "b": float(typical_b[q]),
                                 "c": float(mean_c[q]), "n_items": int(n_k[q])}
                  for q in used.tolist()}
    doc: dict[str, Any] = {
        "parameters": parameters,
        "item_skills": {item_ids[j]: skill_ids[q]
                        for j, q in enumerate(item_skill.tolist()) if q >= 0},
    }
    below = {i: q for i, q in (provisional or {}).items() if q in parameters}
    if below:
        doc["provisional_items"] = below
    return doc


def _restrict(responses: Responses, keep: np.ndarray) -> tuple[Responses, tuple[str, ...]]:
    """Answers of kept items only, items re-indexed ``0..n_kept-1`` in original order."""
    new_index = np.cumsum(keep) - 1
    mask = keep[responses.item]
    kept_ids = tuple(i for i, k in zip(responses.item_ids, keep, strict=True) if k)
    sub = Responses(responses.student[mask], new_index[responses.item[mask]],
                    responses.correct[mask], responses.student_ids, kept_ids)
    return sub, kept_ids
