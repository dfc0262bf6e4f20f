"""Maximum-likelihood (ML) and weighted-likelihood (WLE) abilities, beside EAP and MAP.

numpy only.  :mod:`irt.engine.ability` keeps EAP and MAP (``predict``'s path); this module adds
the two estimators that use no prior, as R mirt's ``fscores(method = 'ML' | 'WLE')``, and
:func:`score_batch`, one entry point for the four.

With ``P_j(theta) = c_j + (1 - c_j) / (1 + exp(-a_j (theta - b_j)))`` and a student's answers
``y_j`` on the items ``j`` they answered (logits on the calibration's scale):

ML::

    theta_ML = argmax_theta  l(theta),   l(theta) = sum_j y_j log P_j + (1 - y_j) log(1 - P_j)
    se       = 1 / sqrt(-l''(theta_ML))

WLE (Warm 1989), in mirt's form: maximise the likelihood weighted by the square root of the
test information ``I(theta) = sum_j P_j'^2 / (P_j (1 - P_j))``::

    theta_WLE = argmax_theta  l(theta) + 1/2 log I(theta)
    se        = 1 / sqrt(-(l'' + 1/2 (log I)'')(theta_WLE))

For the 1PL/2PL/Rasch models the stationary point is the root of Warm's bias-corrected score
``l' + J / (2 I)`` with ``J = sum_j P_j' P_j'' / (P_j (1 - P_j))``; for the 3PL, mirt (and this
module) maximise the weighted likelihood above.  WLE is finite for every pattern, including
all right and all wrong.

mirt's bounds, kept here:

* ML: a student with every answer wrong gets ``-inf`` and every answer right ``+inf``, with
  SE ``nan`` (no finite maximum); an estimate is searched within ``|theta| <= MAX_THETA``
  (20) and one whose SE exceeds ``MAX_SE`` (30) is set to ``+/-inf`` with SE ``nan`` (a
  likelihood too flat to locate, e.g. a 3PL pattern explained by guessing);
* WLE: searched within ``|theta| <= MAX_THETA`` as well.

A student with no answers gets ``nan`` from ML and WLE (there is nothing to maximise).

Method: vectorised Newton-Raphson over all students at once, started at the EAP, with step
halving so that every step raises the objective (a gradient step where the objective is not
locally concave), as :func:`irt.engine.ability.map_batch`.  Cost O(answers) per iteration.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from irt.engine.ability import eap_batch, map_batch
from irt.engine.model import P_EPS, ItemModel

ScoreMethod = Literal["EAP", "MAP", "ML", "WLE"]
SCORE_METHODS: tuple[ScoreMethod, ...] = ("EAP", "MAP", "ML", "WLE")
#: Search range of ML and WLE, ``|theta| <= MAX_THETA`` (mirt's ``max_theta``).
MAX_THETA = 20.0
#: An ML estimate with a larger SE is reported as ``+/-inf`` (mirt's rule).
MAX_SE = 30.0


def _item_terms(model: ItemModel, pos: np.ndarray, theta: np.ndarray
                ) -> tuple[np.ndarray, ...]:
    """``P, P', P'', P'''`` of each answer's item at its student's ``theta`` (same shape)."""
    a, b, c = model.a[pos], model.b[pos], model.c[pos]
    z = np.clip(a * (theta - b), -700.0, 700.0)
    psi = 1.0 / (1.0 + np.exp(-z))
    s = psi * (1.0 - psi)
    p = np.clip(c + (1.0 - c) * psi, P_EPS, 1.0 - P_EPS)
    d1 = (1.0 - c) * a * s
    d2 = d1 * a * (1.0 - 2.0 * psi)
    d3 = d1 * a * a * (1.0 - 6.0 * s)
    return p, d1, d2, d3


def _objective(model: ItemModel, owner: np.ndarray, pos: np.ndarray, y: np.ndarray,
               theta: np.ndarray, n: int, weighted: bool
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per student: the objective (``l`` or ``l + 1/2 log I``) and its first two derivatives."""
    th = theta[owner]
    p, d1, d2, d3 = _item_terms(model, pos, th)
    q = 1.0 - p
    ll = np.where(y == 1, np.log(p), np.log(q))
    f = (y - p) / (p * q)
    g = f * d1
    h = f * d2 - f * f * d1 * d1
    obj = np.bincount(owner, ll, n)
    grad = np.bincount(owner, g, n)
    hess = np.bincount(owner, h, n)
    if weighted:
        # I_j = u / v with u = P'^2, v = P Q; derivatives by the quotient rule.
        u, u1, u2 = d1 * d1, 2.0 * d1 * d2, 2.0 * (d2 * d2 + d1 * d3)
        v, v1, v2 = p * q, d1 * (1.0 - 2.0 * p), d2 * (1.0 - 2.0 * p) - 2.0 * d1 * d1
        info = u / v
        info1 = (u1 * v - u * v1) / (v * v)
        info2 = u2 / v - 2.0 * u1 * v1 / (v * v) - u * v2 / (v * v) + 2.0 * u * v1 * v1 / v**3
        tot = np.maximum(np.bincount(owner, info, n), 1e-300)
        tot1 = np.bincount(owner, info1, n)
        tot2 = np.bincount(owner, info2, n)
        obj = obj + 0.5 * np.log(tot)
        grad = grad + 0.5 * tot1 / tot
        hess = hess + 0.5 * (tot2 / tot - (tot1 / tot) ** 2)
    return obj, grad, hess


def _maximise(model: ItemModel, owner: np.ndarray, pos: np.ndarray, y: np.ndarray,
              start: np.ndarray, active: np.ndarray, weighted: bool, max_iter: int,
              tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Newton-Raphson with step halving for the students where ``active``; ``(theta, hess)``."""
    n = start.shape[0]
    theta = np.clip(np.where(active, start, 0.0), -MAX_THETA, MAX_THETA)
    obj, g, h = _objective(model, owner, pos, y, theta, n, weighted)
    for _ in range(max_iter):
        step = np.where(h < 0, -g / np.minimum(h, -1e-300), np.sign(g) * 0.5)
        step = np.where(active, np.clip(step, -2.0, 2.0), 0.0)
        scale = np.ones(n)
        for _halving in range(40):
            cand = np.clip(theta + scale * step, -MAX_THETA, MAX_THETA)
            new, g_new, h_new = _objective(model, owner, pos, y, cand, n, weighted)
            worse = new < obj - 1e-12 * np.maximum(1.0, np.abs(obj))
            if not worse.any():
                break
            scale = np.where(worse, scale * 0.5, scale)
        moved = np.abs(cand - theta)
        theta, obj, g, h = cand, new, g_new, h_new
        if not np.any(moved[active] > tol):
            break
    return theta, h


def _grouped(student: np.ndarray, item_pos: np.ndarray, correct: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    owner = np.asarray(student, dtype=np.int64)
    pos = np.asarray(item_pos, dtype=np.int64)
    y = np.asarray(correct, dtype=np.float64)
    if not owner.shape[0] == pos.shape[0] == y.shape[0]:
        raise ValueError(f"student, item_pos and correct must have one length, got "
                         f"{owner.shape[0]}, {pos.shape[0]} and {y.shape[0]}")
    return owner, pos, y


def ml_batch(model: ItemModel, student: np.ndarray, item_pos: np.ndarray, correct: np.ndarray,
             n_students: int, *, start: np.ndarray | None = None, max_iter: int = 100,
             tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood abilities of many students (no prior).

    Args:
        model: calibrated items.
        student: int array of shape ``(n_answers,)``: the student index ``0..n_students-1``
            of each answer.
        item_pos: int array of shape ``(n_answers,)``: the item's position in ``model``.
        correct: array of shape ``(n_answers,)`` of 0/1 answers.
        n_students: number of students.
        start: array of shape ``(n_students,)``, default=None: starting values (``None``:
            the EAP, as mirt).
        max_iter: int, default=100: Newton iterations.
        tol: float, default=1e-8: stop when no estimate moves more than ``tol`` logits.

    Returns:
        ``(theta, se)``, float arrays of shape ``(n_students,)``: ``-inf``/``+inf`` with SE
        ``nan`` for all-wrong/all-right students and for estimates whose SE exceeds
        :data:`MAX_SE`; ``nan`` for students without answers.

    Raises:
        ValueError: if ``student``, ``item_pos`` and ``correct`` differ in length.
    """
    owner, pos, y = _grouped(student, item_pos, correct)
    n_ans = np.bincount(owner, minlength=n_students)
    n_right = np.bincount(owner, y, minlength=n_students)
    all_wrong = (n_ans > 0) & (n_right == 0)
    all_right = (n_ans > 0) & (n_right == n_ans)
    active = (n_ans > 0) & ~all_wrong & ~all_right
    if start is None:
        start = eap_batch(model, owner, pos, y.astype(np.int8), n_students)[0]
    theta, h = _maximise(model, owner, pos, y, np.asarray(start, dtype=float), active,
                         False, max_iter, tol)
    # A 3PL likelihood can rise again toward a bound (guessing explains the answers): the
    # maximum is then at the bound, as flat as MAX_SE marks infinite.
    obj = _objective(model, owner, pos, y, theta, n_students, False)[0]
    for bound in (-MAX_THETA, MAX_THETA):
        edge = np.full(n_students, bound)
        at_edge, _, h_edge = _objective(model, owner, pos, y, edge, n_students, False)
        better = active & (at_edge > obj)
        theta, h, obj = (np.where(better, edge, theta), np.where(better, h_edge, h),
                         np.where(better, at_edge, obj))
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.where(h < 0, 1.0 / np.sqrt(np.maximum(-h, 1e-300)), np.inf)
    flat = active & (se > MAX_SE)
    theta = np.where(flat, np.where(theta < 0, -np.inf, np.inf), theta)
    se = np.where(flat, np.nan, se)
    theta[all_wrong], theta[all_right] = -np.inf, np.inf
    se[all_wrong | all_right] = np.nan
    theta[n_ans == 0] = se[n_ans == 0] = np.nan
    return theta, se


def wle_batch(model: ItemModel, student: np.ndarray, item_pos: np.ndarray, correct: np.ndarray,
              n_students: int, *, start: np.ndarray | None = None, max_iter: int = 100,
              tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Warm's weighted-likelihood abilities of many students (finite for every pattern).

    Same arguments and shapes as :func:`ml_batch`.  The SE is
    ``1 / sqrt(-(l + 1/2 log I)'')`` at the estimate (mirt: the Hessian of the same
    objective); students without answers get ``nan``.
    """
    owner, pos, y = _grouped(student, item_pos, correct)
    n_ans = np.bincount(owner, minlength=n_students)
    active = n_ans > 0
    if start is None:
        start = eap_batch(model, owner, pos, y.astype(np.int8), n_students)[0]
    theta, h = _maximise(model, owner, pos, y, np.asarray(start, dtype=float), active,
                         True, max_iter, tol)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.where(h < 0, 1.0 / np.sqrt(np.maximum(-h, 1e-300)), np.nan)
    theta[~active] = se[~active] = np.nan
    return theta, se


def score_batch(model: ItemModel, student: np.ndarray, item_pos: np.ndarray,
                correct: np.ndarray, n_students: int, method: ScoreMethod = "EAP",
                **options: int | float) -> tuple[np.ndarray, np.ndarray]:
    """Abilities of many students by ``method``: ``EAP`` and ``MAP``
    (:func:`irt.engine.ability.eap_batch`, :func:`~irt.engine.ability.map_batch`; prior
    ``N(0, sigma^2)``), ``ML`` (:func:`ml_batch`) or ``WLE`` (:func:`wle_batch`).

    Same arguments as :func:`ml_batch`; ``options`` go to the chosen function.

    Raises:
        ValueError: on an unknown method.
    """
    scorers = {"EAP": eap_batch, "MAP": map_batch, "ML": ml_batch, "WLE": wle_batch}
    if method not in scorers:
        raise ValueError(f"method must be one of {', '.join(SCORE_METHODS)}, got {method!r}")
    return scorers[method](model, student, item_pos, correct, n_students, **options)
