"""Ability estimation for calibrated items: EAP and MAP, one student or a batch.

numpy only (this module is on ``predict``'s hot path).

Prior: the calibration population, ``theta ~ N(0, sigma^2)`` (``sigma`` is
``model.population_sd``: 1 except for Rasch models).

EAP (expected a posteriori)::

    theta_hat = E[theta | y] = int t L(y | t) phi(t) dt / int L(y | t) phi(t) dt
    se        = sqrt(Var[theta | y])

evaluated by the trapezoid rule on ``n_points`` equally spaced nodes over
``[-bound * sigma, bound * sigma]``, in log space (log-sum-exp), so long answer
sets never underflow.  The trapezoid rule converges exponentially for these
smooth, rapidly decaying integrands while the grid step ``h`` is below the
posterior SD and the posterior vanishes at the grid's ends.  A student whose
posterior SD is below ``h`` (a long answer set) or whose posterior has weight
above ``EDGE_WEIGHT`` at an end node (an extreme pattern) is re-integrated on a
local grid of ``n_points`` nodes over ``mean +/- 10 SD`` (repeated up to three
times).  The result matches adaptive numerical integration to about 1e-8.  One student
(``predict``) whose local step ``h`` would satisfy ``a_max h <= 0.6`` with
:data:`NARROW_POINTS` nodes (``a_max``: the largest slope answered; a long answer set)
is re-integrated on that many nodes instead: the trapezoid rule's error for these
integrands falls as ``exp(-2 pi d / h)`` with ``d``, the distance of the nearest pole
from the real axis, at least ``pi / a_max`` (a logistic factor's), so ``exp(-33)`` here,
and as ``exp(-2 pi^2 SD^2 / h^2)`` for the Gaussian part (``h`` about ``0.63 SD``).
One student of a model without guessing with at least :data:`LONG_ANSWERS` answers skips
the first pass when the posterior's curvature at its mode (Newton's method, a few passes
over the answers) puts its SD below ``h``: the local grid starts from that mode and SD,
with the same checks (the first pass runs if they fail).  The first pass would have
re-integrated the same student on a local grid placed a little differently: over 450
random answer sets of 200-1,000 answers (2PL and Rasch banks) the two differ by 2e-15
(median), at most 7e-9 (where the two SDs fall on either side of ``h``); about a third
less work at 1,000 answers.

MAP (maximum a posteriori): Newton-Raphson on ``log L(y | theta) - theta^2 / (2 sigma^2)``
started at the EAP, with step halving; ``se = 1 / sqrt(-d2/dtheta2 log posterior)``.

Edge cases (documented behaviour, always finite):

* no answers: ``theta = 0`` and ``se = sigma`` (the prior), for both methods;
* all answers right (or all wrong): the prior keeps both estimates finite;
  they lie above (below) every difficulty answered, shrunk toward 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from irt.engine.model import P_EPS, ItemModel, softplus_tail

#: Batches with at least this many answers use a scipy sparse product (imported lazily).
SPARSE_MIN_ANSWERS = 200_000
#: A posterior weight above this at the first or last node means the grid cuts the
#: posterior off (the prior alone puts ~1e-9 there): the student is re-integrated.
EDGE_WEIGHT = 1e-8
#: Nodes of one student's local grid when ``a_max h <= NARROW_STEP`` (see the module
#: docstring): about half the work of ``n_points`` (61) for long answer sets.
NARROW_POINTS = 33
NARROW_STEP = 0.6
#: One student (models without guessing) with at least this many answers: the local grid
#: starts from the posterior's mode and curvature (:func:`_laplace_start`), not from a first
#: pass on the global grid (whose posterior is then narrower than its step on the
#: ASSISTments 2009 bank; below, the first pass alone is usually enough and cheaper).
LONG_ANSWERS = 200
#: ``2 y - 1`` at ``y`` (0 or 1): an answer's sign, by lookup.
SIGNS = np.array([-1.0, 1.0])
#: ``nodes -> (unit grid on [-1, 1], [1, unit] as columns)`` of the local grids.
_UNITS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


@dataclass(frozen=True)
class AbilityEstimate:
    """One student's ability.

    Attributes:
        theta: the estimate.
        se: its standard error (EAP: posterior SD).
        method: ``"EAP"`` or ``"MAP"``.
        n_answers: answers used (known items only).
        unknown_items: answered item ids that the model does not know (ignored).
    """

    theta: float
    se: float
    method: str
    n_answers: int
    unknown_items: list[str] = field(default_factory=list)


def _grid(sigma: float, n_points: int, bound: float) -> np.ndarray:
    return np.linspace(-bound * sigma, bound * sigma, n_points)


def _posterior(logpost: np.ndarray) -> np.ndarray:
    w = np.exp(logpost - logpost.max())
    return w / w.sum()


def eap(model: ItemModel, item_pos: np.ndarray, correct: np.ndarray, *,
        n_points: int = 61, bound: float = 6.0) -> tuple[float, float]:
    """EAP ability of one student.

    Args:
        model: calibrated items.
        item_pos: positions (in ``model.item_ids``) of the answered items.
        correct: 0/1 answers aligned with ``item_pos``.
        n_points: grid nodes.
        bound: grid half-width in prior SDs.

    Returns:
        ``(theta, se)``.
    """
    pos = np.asarray(item_pos, dtype=np.int64)
    if pos.shape[0] == 0:
        return 0.0, model.population_sd  # the prior, exactly
    return eap_rows(model, 2 * pos + np.asarray(correct, dtype=np.int8), n_points=n_points,
                    bound=bound)


def eap_rows(model: ItemModel, rows: Sequence[int] | np.ndarray, *, n_points: int = 61,
             bound: float = 6.0) -> tuple[float, float]:
    """EAP ability of one student from the rows of the grid table (see :func:`grid_table`)
    of the answers: ``2 * position + correct`` each (a list or an array; at least one).

    The serving path: a handful of numpy calls, none of which releases the GIL (a 1-D
    gather of whole-row records, a small ``matmul`` or ``reduceat``), so that under a
    threaded server a request does not hand the interpreter to another one midway.  The
    prior enters as weights on the nodes (``p = exp(log prior)``).  A long answer set (see
    the module docstring) goes to the local grid directly from :func:`_laplace_start`.
    """
    k = len(rows)
    if not isinstance(rows, np.ndarray):
        rows = np.fromiter(rows, dtype=np.intp, count=k)
    if k >= LONG_ANSWERS and model.model_type != "3pl":
        # a long answer set: when its posterior is narrower than the grid's step (as the
        # first pass would find, and then re-integrate locally), the local grid starts from
        # the mode and curvature, without the first pass
        sa, b = _signed_slopes(model, rows)
        start = _laplace_start(sa, b, model.population_sd)
        if start is not None and start[1] < 2.0 * bound * model.population_sd / (n_points - 1):
            mean, sd, settled = _refine_one(sa, b, *start, model.population_sd, n_points)
            if settled:
                return mean, sd
    step, records, ones, moments = single_grid(model, n_points, bound)
    answers = records[rows].view(np.float64).reshape(k, n_points)
    # Log-likelihood at each node: BLAS gemv for short answer sets (single-threaded at this
    # size), an ordered sum beyond (where gemv would start BLAS threads).
    loglik = ones[:k] @ answers if k <= ones.shape[0] else np.add.reduceat(
        answers, _FIRST, axis=0)[0]
    w = np.exp(loglik)  # loglik <= 0: no overflow
    # Sums of w p, w p x, w p x^2 and the weights at the two end nodes, in one product.
    total, first, second, low, high = (w @ moments).tolist()
    if not total > 1e-250:  # long answer sets: shift before exp, or the weights underflow
        w = np.exp(loglik - np.maximum.reduce(loglik))
        total, first, second, low, high = (w @ moments).tolist()
    mean = first / total
    var = second / total - mean * mean
    sd = math.sqrt(var) if var > 0.0 else 0.0
    if sd < step or max(low, high) > EDGE_WEIGHT * total:
        # A posterior narrower than the step, or cut off at an end: re-integrate locally,
        # starting (as eap_batch does) from the first pass in log space.
        return _eap_refined(model, np.asarray(rows, dtype=np.int64), loglik, n_points, bound)
    return mean, sd


def _eap_refined(model: ItemModel, rows: np.ndarray, loglik: np.ndarray, n_points: int,
                 bound: float) -> tuple[float, float]:
    """:func:`eap_rows`'s re-integration, from the first pass's log-likelihood on the grid
    (``loglik``, not recomputed)."""
    x, log_prior, _ = grid_table(model, n_points, bound)
    w = _posterior(loglik + log_prior)
    mean = float(np.dot(w, x))
    sd = math.sqrt(max(float(np.dot(w, x * x)) - mean * mean, 0.0))
    if sd < x[1] - x[0] or max(w[0], w[-1]) > EDGE_WEIGHT:
        if model.model_type == "3pl":
            k = rows.shape[0]
            m, s = np.array([mean]), np.array([sd])
            _refine(model, rows >> 1, (rows & 1).astype(np.int8), np.zeros(k, dtype=np.int64),
                    np.array([k]), m, s, model.population_sd, n_points)
            return float(m[0]), float(s[0])
        return _refine_one(*_signed_slopes(model, rows), mean, sd, model.population_sd,
                           n_points)[:2]
    return mean, sd


def _signed_slopes(model: ItemModel, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(s, b)`` of one student's answers (rows of :func:`eap_rows`): ``s_i = a_i (2 y_i -
    1)``, the slope signed by the answer, so that ``log P(y_i | t) = log logistic(s_i (t -
    b_i))`` for a model without guessing; ``b_i`` the difficulty."""
    pos = rows >> 1
    return model.a[pos] * SIGNS[rows & 1], model.b[pos]


def _laplace_start(sa: np.ndarray, b: np.ndarray, sigma: float, iterations: int = 20
                   ) -> tuple[float, float] | None:
    """The posterior's mode ``m`` and ``1 / sqrt(-l''(m))`` for one student of a model
    without guessing (``sa``, ``b``: :func:`_signed_slopes`; prior ``N(0, sigma^2)``), by
    Newton's method from 0.

    With ``s_i = a_i (2 y_i - 1)`` and ``q_i = 1 / (1 + exp(s_i (t - b_i)))``::

        l(t)   = sum_i log logistic(s_i (t - b_i)) - t^2 / (2 sigma^2)
        l'(t)  = sum_i s_i q_i - t / sigma^2
        -l''(t) = sum_i s_i^2 q_i (1 - q_i) + 1 / sigma^2

    ``l`` is strictly concave (no guessing), so the mode is unique; each step is at most
    ``sigma`` long.  Stops when a step is below a tenth of ``1 / sqrt(-l'')`` (about the
    posterior SD), in 3 or 4 steps for 1,000 answers; ``None`` if it has not after
    ``iterations`` steps (the caller then takes the first pass on the grid).  Each step is
    a few passes over the ``k`` answers, against ``k x n_points`` entries for a pass on the
    grid.
    """
    sab = sa * b
    sa2 = sa * sa
    precision = 1.0 / (sigma * sigma)
    t = 0.0
    for _ in range(iterations):
        e = sa * t
        e -= sab
        np.minimum(e, 700.0, out=e)  # exp(700) is finite
        np.exp(e, out=e)
        e += 1.0
        np.reciprocal(e, out=e)  # q
        slope = float(sa @ e) - t * precision
        e -= e * e  # q (1 - q)
        curvature = float(sa2 @ e) + precision
        step = min(max(slope / curvature, -sigma), sigma)
        t += step
        if abs(step) * math.sqrt(curvature) < 0.1:
            return t, 1.0 / math.sqrt(curvature)
    return None




def _refine_one(sa: np.ndarray, b: np.ndarray, mean: float, sd: float, sigma: float,
                n_points: int, passes: int = 3) -> tuple[float, float, bool]:
    """:func:`_refine` for one student of a model without guessing (predict's case), with
    scalars for the student's figures: the same local grids and sums, on
    :data:`NARROW_POINTS` nodes where ``a_max h <= NARROW_STEP`` (see the module
    docstring).  ``sa``, ``b``: :func:`_signed_slopes`; ``sigma``: the prior SD.  Returns
    ``(mean, sd, settled)``: ``settled`` is false when the last local grid was still too
    coarse for the posterior or cut it off."""
    count = np.array([sa.shape[0]])
    a_max = float(np.abs(sa).max())
    sd = max(sd, _sd_floor(float(np.dot(sa, sa)), sigma))
    for _ in range(passes):
        nodes = NARROW_POINTS
        half = 10.0 * sd + 2.0 * sd / (nodes - 1) + 1e-3
        if a_max * 2.0 * half / (nodes - 1) > NARROW_STEP:
            nodes = n_points
            half = 10.0 * sd + 2.0 * sd / (nodes - 1) + 1e-3
        local = _UNITS.get(nodes)
        if local is None:
            grid_unit = np.linspace(-1.0, 1.0, nodes)
            local = _UNITS[nodes] = (grid_unit, np.ascontiguousarray(
                np.vstack([np.ones(nodes), grid_unit]).T))
        unit = local[0]
        grid = mean + half * unit
        # sa (grid - b) with grid = mean + half * unit
        loglik = _one_loglik(sa * (mean - b), sa * half, unit, local[1]) \
            if count[0] <= PRODUCT_ROWS \
            else log_logistic_sums(affine_rows(sa * (mean - b), sa * half, unit), _FIRST,
                                   count)[0]
        logpost = loglik - 0.5 * (grid / sigma) ** 2
        w = np.exp(logpost - logpost.max())
        w /= w.sum()
        mean = float(np.dot(w, grid))
        sd = math.sqrt(max(float(np.dot(w, grid * grid)) - mean * mean, 0.0))
        if not (sd < grid[1] - grid[0] or max(w[0], w[-1]) > EDGE_WEIGHT):
            return mean, sd, True
    return mean, sd, False


_FIRST = np.zeros(1, dtype=np.intp)


def _one_loglik(intercept: np.ndarray, slope: np.ndarray, unit: np.ndarray,
                cols: np.ndarray) -> np.ndarray:
    """``sum_i log logistic(z_iq)`` with ``z_iq = intercept_i + slope_i unit_q``, for one
    student of at most :data:`PRODUCT_ROWS` answers: :func:`log_logistic_sums`'s formula,
    nodes by answers (the sums run along contiguous rows) and with
    ``sum_i min(z_iq, 0) = (sum_i z_iq - sum_i |z_iq|) / 2``, where ``sum_i z_iq`` is
    ``sum_i intercept_i + unit_q sum_i slope_i``: three passes over the entries after the
    product, and no second array (about twice as fast at 1,000 answers x 33 nodes; equal
    to about 1e-15 relative, another order of the sums).  ``cols``: ``[1, unit]`` as columns,
    shape ``(nodes, 2)`` (kept with the unit grid in ``_UNITS``)."""
    left = np.empty((2, intercept.shape[0]))
    left[0] = intercept
    left[1] = slope
    z = cols @ left  # nodes x answers
    np.abs(z, out=z)
    total = np.add.reduce(z, axis=1)  # sum |z|
    total -= float(intercept.sum())
    total -= float(slope.sum()) * unit
    total *= -0.5  # sum min(z, 0)
    np.negative(z, out=z)
    np.exp(z, out=z)
    z += 1.0  # factors in (1, 2]: a product of at most PRODUCT_ROWS is below the largest float
    total -= np.log(np.multiply.reduce(z, axis=1))
    return total


def _sd_floor(sum_a2: float | np.ndarray, sigma: float) -> float | np.ndarray:
    """A lower bound for a posterior SD, ``1 / sqrt(sum_i a_i^2 / 4 + 1 / sigma^2)``: an
    answer's information is at most ``a^2 / 4``.  The local grids start at least this wide,
    so a first pass whose weight sits on one coarse node (SD ~ 0, thousands of answers)
    does not start them at a width that three passes cannot grow back."""
    return 1.0 / np.sqrt(0.25 * sum_a2 + 1.0 / (sigma * sigma))


def single_grid(model: ItemModel, n_points: int, bound: float
                 ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """``(step, table rows as records, ones, moments)``, cached: ``moments`` holds
    ``[p, p x, p x^2, p at the first node, p at the last]`` per node (``p`` the prior).

    Each table row viewed as one opaque record makes gathering rows a 1-D take.
    """
    key = ("single", n_points, bound)
    cached = model._cache.get(key)
    if cached is None:
        x, log_prior, table = grid_table(model, n_points, bound)
        table = np.ascontiguousarray(table)
        records = table.view(np.dtype((np.void, table.itemsize * n_points))).reshape(-1)
        prior = np.exp(log_prior)
        ends = np.zeros((2, n_points))
        ends[0, 0], ends[1, -1] = prior[0], prior[-1]
        moments = np.ascontiguousarray(np.stack([prior, prior * x, prior * x * x, *ends], axis=1))
        cached = (float(x[1] - x[0]), records, np.ones(128), moments)
        model._cache[key] = cached  # type: ignore[assignment]
    return cached  # type: ignore[return-value]


def grid_table(model: ItemModel, n_points: int = 61, bound: float = 6.0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(nodes, log prior, log-probability table)`` of the EAP grid, cached on the model.

    The table has shape ``(2 n_items, n_points)``: row ``2 j`` holds ``log(1 - P_j(x))``
    and row ``2 j + 1`` holds ``log P_j(x)``, so one student's log-likelihood at every
    node is ``table[2 * pos + y].sum(axis=0)``.  Call it once after loading a model to
    keep the first request fast.
    """
    key = ("grid", n_points, bound)
    cached = model._cache.get(key)
    if cached is None:
        sigma = model.population_sd
        x = _grid(sigma, n_points, bound)
        cached = (x, -0.5 * (x / sigma) ** 2, logprob_table(model, x))
        model._cache[key] = cached
    return cached


def _refine(model: ItemModel, pos: np.ndarray, y: np.ndarray, local: np.ndarray,
            counts: np.ndarray, mean: np.ndarray, sd: np.ndarray,
            sigma: float, n_points: int, passes: int = 3) -> None:
    """Re-integrate posteriors on local grids ``mean +/- (10 SD + h)``, in place.

    ``pos``/``y`` are the answers of the students to refine, grouped by student;
    ``local`` maps each answer to its student ``0..k-1``, ``counts`` gives each
    student's number of answers; ``mean``/``sd`` (shape ``(k,)``) hold the first estimates
    and receive the refined ones.  A student is integrated again (up to ``passes``
    times) while its posterior is still narrower than the step or cut off at an end.
    """
    a, b = model.a[pos], model.b[pos]
    three_pl = model.model_type == "3pl"
    sa = a * (2.0 * y - 1.0)  # the answer's sign times a: log P(y | t) = log logistic(sa (t - b))
    unit = np.linspace(-1.0, 1.0, n_points)
    active = np.arange(mean.shape[0])
    np.maximum(sd, _sd_floor(np.bincount(local, weights=a * a, minlength=mean.shape[0]), sigma),
               out=sd)
    for _ in range(passes):
        half = 10.0 * sd[active] + 2.0 * sd[active] / (n_points - 1) + 1e-3
        grid = mean[active, None] + half[:, None] * unit[None, :]  # students x nodes
        # answers of the active students only
        sel = np.isin(local, active) if active.shape[0] < mean.shape[0] else slice(None)
        own = np.searchsorted(active, local[sel])
        cnt = counts[active]
        starts = np.cumsum(cnt) - cnt
        if not three_pl:
            # sa (grid - b) with grid = mean + half * unit
            s_a = sa[sel]
            z = affine_rows(s_a * (mean[active][own] - b[sel]), s_a * half[own], unit)
            loglik = log_logistic_sums(z, starts, cnt)
        else:
            c = model.c[pos][sel, None]
            z = a[sel, None] * (grid[own] - b[sel, None])
            p = np.clip(c + (1 - c) / (1 + np.exp(-z)), P_EPS, 1 - P_EPS)
            ll = np.where(y[sel, None] == 1, np.log(p), np.log1p(-p))
            loglik = np.add.reduceat(ll, starts, axis=0)
        logpost = loglik - 0.5 * (grid / sigma) ** 2
        logpost -= logpost.max(axis=1, keepdims=True)
        w = np.exp(logpost)
        w /= w.sum(axis=1, keepdims=True)
        m = np.einsum("sq,sq->s", w, grid)
        v = np.einsum("sq,sq->s", w, grid * grid) - m**2
        mean[active], sd[active] = m, np.sqrt(np.maximum(v, 0.0))
        step = grid[:, 1] - grid[:, 0]
        again = (sd[active] < step) | (np.maximum(w[:, 0], w[:, -1]) > EDGE_WEIGHT)
        active = active[again]
        if not active.size:
            break


def affine_rows(intercept: np.ndarray, slope: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """``intercept[:, None] + slope[:, None] * nodes[None, :]``, shape ``(n, nodes)``, as one
    ``(n, 2) @ (2, nodes)`` matrix product: one pass over the result instead of two (an
    outer product, then a shift), 3-4 times faster at 1,000 x 61.  Single-threaded in
    OpenBLAS at these sizes (below its threshold of 262,144 multiply-adds); the sums may be
    fused (one rounding instead of two).
    """
    left = np.empty((intercept.shape[0], 2))
    left[:, 0] = intercept
    left[:, 1] = slope
    return left @ np.vstack([np.ones(nodes.shape[0]), nodes])


#: Rows multiplied together by :func:`log_logistic_sums`: each factor is at most 2, and
#: 2**1000 (1e301) is below the largest float64.
PRODUCT_ROWS = 1000


def log_logistic_sums(z: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``sum_i log logistic(z_iq)`` over each segment of rows: shape ``(segments, nodes)``.

    ``log logistic(z) = min(z, 0) - log(1 + exp(-|z|))``, exact in both tails as
    ``-logaddexp(0, -z)`` is, but the ``log`` of a sum of rows is taken once per node as the
    ``log`` of the product of the factors ``1 + exp(-|z|)`` (each in ``(1, 2]``; blocks of at
    most :data:`PRODUCT_ROWS` rows so the product never overflows): one ``exp`` per entry
    and one ``log`` per node, about 8 times faster than ``np.logaddexp`` (which has no
    vectorised loop).  Rounding: the product of ``m`` factors is exact to ``m`` units in the
    last place, so the sums agree with ``logaddexp``'s to about ``1e-13`` (absolute) for
    ``m = 1000``.

    Args:
        z: float array of shape ``(rows, nodes)``, overwritten.
        starts: first row of each segment (increasing, segments non-empty).
        counts: rows of each segment.
    """
    e = np.abs(z)
    np.negative(e, out=e)
    np.exp(e, out=e)
    e += 1.0
    np.minimum(z, 0.0, out=z)
    if starts.shape[0] == 1 and counts[0] <= PRODUCT_ROWS:  # one segment, one block
        # (reduce, not reduceat: numpy's multiply.reduceat has no vectorised loop)
        total = np.add.reduce(z, axis=0, keepdims=True)
        total -= np.log(np.multiply.reduce(e, axis=0, keepdims=True))
        return total
    total = np.add.reduceat(z, starts, axis=0)
    blocks = -(-counts // PRODUCT_ROWS)
    if blocks.shape[0] and blocks.max() == 1:
        total -= np.log(np.multiply.reduceat(e, starts, axis=0))
        return total
    first = np.cumsum(blocks) - blocks  # each segment's first block
    block_starts = np.repeat(starts, blocks) + PRODUCT_ROWS * (
        np.arange(int(blocks.sum())) - np.repeat(first, blocks))
    total -= np.add.reduceat(np.log(np.multiply.reduceat(e, block_starts, axis=0)), first,
                             axis=0)
    return total


def _derivatives(model: ItemModel, pos: np.ndarray, y: np.ndarray, theta: np.ndarray,
                 owner: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-likelihood, first and second derivatives in theta, summed per student."""
    a, b, c = model.a[pos], model.b[pos], model.c[pos]
    th = theta[owner]
    pstar = 1.0 / (1.0 + np.exp(-a * (th - b)))
    p = np.clip(c + (1 - c) * pstar, P_EPS, 1 - P_EPS)
    dp = (1 - c) * a * pstar * (1 - pstar)
    d2p = dp * a * (1 - 2 * pstar)
    ll = np.where(y == 1, np.log(p), np.log1p(-p))
    f = (y - p) / (p * (1 - p))
    g = f * dp
    # d2/dtheta2 of y log P + (1-y) log(1-P) = f d2P - (y-P)^2/(P(1-P))^2 dP^2
    h = f * d2p - f**2 * dp**2
    return (np.bincount(owner, ll, n), np.bincount(owner, g, n), np.bincount(owner, h, n))


def _answer_arrays(student: np.ndarray, item_pos: np.ndarray, correct: np.ndarray,
                   y_dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The batch scorers' answers as arrays, checked to be of one length (as scikit-learn's
    ``check_consistent_length``)."""
    owner = np.asarray(student, dtype=np.int64)
    pos = np.asarray(item_pos, dtype=np.int64)
    y = np.asarray(correct, dtype=y_dtype)
    if not owner.shape[0] == pos.shape[0] == y.shape[0]:
        raise ValueError(f"student, item_pos and correct must have one length, got "
                         f"{owner.shape[0]}, {pos.shape[0]} and {y.shape[0]}")
    return owner, pos, y


def map_batch(model: ItemModel, student: np.ndarray, item_pos: np.ndarray, correct: np.ndarray,
              n_students: int, *, start: np.ndarray | None = None, max_iter: int = 50,
              tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """MAP abilities of many students (vectorised Newton-Raphson with step halving).

    Maximises ``log p(theta_s) + sum_i log P(y_i | theta_s)`` over each student's answers,
    with the prior ``N(0, sigma^2)`` (``sigma = model.population_sd``); the SE is
    ``1 / sqrt(-d2/dtheta2 log posterior)`` at the mode (the prior SD where that is not
    positive).  Abilities are in logits on the calibration's scale.

    Args:
        model: calibrated items.
        student: int array of shape ``(n_answers,)``: the student index
            ``0..n_students-1`` of each answer (long format, students x items).
        item_pos: int array of shape ``(n_answers,)``: the item's position in ``model``
            (``0..n_items-1``; known items only).
        correct: array of shape ``(n_answers,)`` of 0/1 answers.
        n_students: number of students (those without answers get the prior's mode, 0).
        start: array of shape ``(n_students,)``, default=None: starting values (``None``:
            the EAP).
        max_iter: int, default=50: Newton iterations.
        tol: float, default=1e-8: stop when every step is below ``tol`` (logits).

    Returns:
        ``(theta, se)``, each a float array of shape ``(n_students,)``.

    Raises:
        ValueError: if ``student``, ``item_pos`` and ``correct`` differ in length.
    """
    owner, pos, y = _answer_arrays(student, item_pos, correct, np.float64)
    sigma2 = model.population_sd**2
    theta = (eap_batch(model, owner, pos, y, n_students)[0] if start is None
             else np.array(start, dtype=float))

    def objective(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ll, g, h = _derivatives(model, pos, y, t, owner, n_students)
        return ll - 0.5 * t**2 / sigma2, g - t / sigma2, h - 1.0 / sigma2

    obj, g, h = objective(theta)
    for _ in range(max_iter):
        # Newton step where the posterior is locally concave, else a gradient step.
        step = np.where(h < 0, -g / np.minimum(h, -1e-12), g * sigma2)
        step = np.clip(step, -2.0, 2.0)
        scale = np.ones(n_students)
        for _h in range(30):
            cand = theta + scale * step
            new, g_new, h_new = objective(cand)
            bad = new < obj - 1e-12
            if not bad.any():
                break
            scale = np.where(bad, scale * 0.5, scale)
        theta, obj, g, h = cand, new, g_new, h_new
        if np.max(np.abs(scale * step)) < tol:
            break
    info = -h
    se = np.where(info > 0, 1.0 / np.sqrt(np.maximum(info, 1e-300)), model.population_sd)
    return theta, se


def eap_batch(model: ItemModel, student: np.ndarray, item_pos: np.ndarray, correct: np.ndarray,
              n_students: int, *, n_points: int = 61, bound: float = 6.0,
              chunk_answers: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """EAP abilities of many students.

    ``theta_s = sum_q x_q w_sq`` and ``se_s = sqrt(sum_q x_q^2 w_sq - theta_s^2)`` with the
    posterior weights ``w_sq oc N(x_q; 0, sigma^2) prod_i P(y_i | x_q)`` on ``n_points``
    nodes over ``[-bound sigma, bound sigma]``; students whose posterior is narrower than a
    grid step (or leans on the grid's edge) are re-integrated on a local grid.  Students with
    no answers get the prior (``0``, ``sigma``).  Works in chunks of ``chunk_answers``
    answers so memory stays O(chunk x nodes + students x nodes).

    Args:
        model: calibrated items.
        student: int array of shape ``(n_answers,)``: the student index
            ``0..n_students-1`` of each answer (long format, students x items).
        item_pos: int array of shape ``(n_answers,)``: the item's position in ``model``
            (``0..n_items-1``; known items only).
        correct: array of shape ``(n_answers,)`` of 0/1 answers.
        n_students: number of students.
        n_points: int, default=61: grid nodes.
        bound: float, default=6.0: grid half-width in prior SDs.
        chunk_answers: int, default=8192: answers per chunk of the dense path.

    Returns:
        ``(theta, se)``, each a float array of shape ``(n_students,)`` (logits).

    Raises:
        ValueError: if ``student``, ``item_pos`` and ``correct`` differ in length.
    """
    owner, pos, y = _answer_arrays(student, item_pos, correct, np.int64)
    sigma = model.population_sd
    x, log_prior, table = grid_table(model, n_points, bound)
    if owner.shape[0] and np.any(owner[1:] < owner[:-1]):
        order = np.argsort(owner, kind="stable")
        owner, pos, y = owner[order], pos[order], y[order]
    rows = 2 * pos + y
    if rows.shape[0] >= SPARSE_MIN_ANSWERS:
        # Large batches (prepare, CLI, benchmarks): a sparse product is ~3x faster.
        # scipy is imported only here; predict's request caps keep it below this size.
        import scipy.sparse as sp

        indptr = np.zeros(n_students + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=n_students), out=indptr[1:])
        ones = np.ones(rows.shape[0])
        S = sp.csr_matrix((ones, rows, indptr), shape=(n_students, table.shape[0]))
        loglik = np.asarray(S @ table, dtype=np.float64)
    else:
        loglik = np.zeros((n_students, n_points), dtype=np.float64)
        for start in range(0, rows.shape[0], chunk_answers):
            stop = min(rows.shape[0], start + chunk_answers)
            own = owner[start:stop]
            firsts = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
            loglik[own[firsts]] += np.add.reduceat(table[rows[start:stop]], firsts, axis=0)
    # In place, and einsum rather than BLAS gemv (whose thread pool costs more than it
    # saves at this size).
    w = loglik
    w += log_prior
    w -= w.max(axis=1, keepdims=True)
    np.exp(w, out=w)
    w /= w.sum(axis=1, keepdims=True)
    mean = np.einsum("sq,q->s", w, x)
    sd = np.sqrt(np.maximum(np.einsum("sq,q->s", w, x * x) - mean**2, 0.0))
    empty = np.bincount(owner, minlength=n_students) == 0
    mean[empty], sd[empty] = 0.0, sigma  # the prior, exactly
    narrow = np.flatnonzero((sd < x[1] - x[0]) | (np.maximum(w[:, 0], w[:, -1]) > EDGE_WEIGHT))
    narrow = narrow[~empty[narrow]]
    if narrow.size:
        # Long answer sets or extreme patterns: re-integrate on local grids.
        starts = np.searchsorted(owner, narrow, side="left")
        counts = np.searchsorted(owner, narrow, side="right") - starts
        local = np.repeat(np.arange(narrow.shape[0]), counts)
        offset = np.repeat(starts - np.r_[0, np.cumsum(counts)[:-1]], counts)
        idx = offset + np.arange(local.shape[0])
        m, v = mean[narrow], sd[narrow]
        _refine(model, pos[idx], y[idx], local, counts, m, v, sigma, n_points)
        mean[narrow], sd[narrow] = m, v
    return mean, sd


def logprob_table(model: ItemModel, x: np.ndarray, items: np.ndarray | None = None
                  ) -> np.ndarray:
    """``(2 n_items, n_nodes)``: row ``2 j`` = log(1 - P_j(x)), row ``2 j + 1`` = log P_j(x);
    with ``items`` (positions), those items' rows only, in that order (the same values: each
    row is computed on its own).

    Without guessing: ``log P = min(z, 0) - log1p(exp(-|z|))`` and ``log(1 - P) = -max(z, 0)
    - log1p(exp(-|z|))``, exact in both tails as ``-np.logaddexp(0, -/+z)`` is (to an ulp) and
    one ``exp`` and one ``log1p`` per entry for both rows (``np.logaddexp`` has no vectorised
    loop: 0.28 s for a 17,700-item bank at 61 nodes, a tenth of that now).
    """
    a, b = (model.a, model.b) if items is None else (model.a[items], model.b[items])
    z = np.multiply.outer(a, x) - (a * b)[:, None]
    table = np.empty((2 * a.shape[0], x.shape[0]))
    if model.model_type != "3pl":
        soft = softplus_tail(z)
        np.subtract(np.minimum(z, 0.0), soft, out=table[1::2])
        np.maximum(z, 0.0, out=z)
        np.negative(z, out=z)
        np.subtract(z, soft, out=table[0::2])
    else:
        c = (model.c if items is None else model.c[items])[:, None]
        p = np.clip(c + (1 - c) / (1 + np.exp(-z)), P_EPS, 1 - P_EPS)
        table[0::2] = np.log1p(-p)
        table[1::2] = np.log(p)
    return table


def estimate(model: ItemModel, item_ids: Sequence[str], correct: Sequence[int | bool], *,
             method: str = "EAP") -> AbilityEstimate:
    """Ability of one student from external item ids; unknown ids are ignored and reported.

    Args:
        model: calibrated items.
        item_ids: ids of the answered items.
        correct: answers aligned with ``item_ids`` (bool or 0/1).
        method: ``"EAP"`` or ``"MAP"``.

    Returns:
        An :class:`AbilityEstimate`.

    Raises:
        ValueError: on an unknown method or mismatched lengths.
    """
    if len(item_ids) != len(correct):
        raise ValueError("item_ids and correct must have the same length")
    pos, unknown = model.lookup(item_ids)
    known = pos >= 0
    pos = pos[known]
    y = np.asarray(correct, dtype=np.int8).reshape(-1)[known]
    if method == "EAP":
        theta, se = eap(model, pos, y)
    elif method == "MAP":
        t, s = map_batch(model, np.zeros(pos.shape[0], dtype=np.int64), pos, y, 1)
        theta, se = float(t[0]), float(s[0])
    else:
        raise ValueError("method must be 'EAP' or 'MAP'")
    return AbilityEstimate(float(theta), float(se), method, int(pos.shape[0]), unknown)
