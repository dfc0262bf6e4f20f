"""SQUAREM: EM accelerated by squared extrapolation (Varadhan & Roland 2008, scheme S3), the
driver of both calibrations (:mod:`irt.engine.calibrate`, :mod:`irt.engine.learning_fit`).
numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def squarem(em_map: Callable[[np.ndarray], tuple[np.ndarray, float]], v: np.ndarray, *,
            tol: float, max_iter: int, accelerate: bool,
            change: Callable[[np.ndarray, np.ndarray], float] | None = None,
            stop: Callable[[list[float]], bool] | None = None,
            progress: Callable[[int, float, float], None] | None = None
            ) -> tuple[np.ndarray, int, bool, list[float]]:
    """EM cycles, accelerated by SQUAREM (Varadhan & Roland 2008, scheme S3).

    Two EM steps ``v -> v1 -> v2`` give ``r = v1 - v`` and ``w = v2 - v1 - r``; the
    extrapolation ``v - 2 alpha r + alpha^2 w`` with ``alpha = min(-|r| / |w|, -1)`` is
    taken through one more EM step, and kept only if its objective is not below ``v2``'s
    (so the objective never falls); otherwise the cycle ends at ``v2``.

    Args:
        em_map: one EM step: ``v -> (next v, objective at v)``.
        v: the start.
        tol: converged when ``change(new, old) < tol`` after a plain step.
        max_iter: cap on EM steps (E-steps).
        accelerate: ``False``: plain EM.
        change: distance between two parameter vectors (default: max absolute
            difference).
        stop: also converged when it returns ``True`` on the objectives so far (checked
            after each accelerated cycle).
        progress: called after each plain EM step as ``progress(steps so far, objective
            before the step, change of the step)`` (for a progress display).

    Returns:
        ``(v, EM steps run, converged, objective after each kept step)``.
    """
    if change is None:
        def change(new: np.ndarray, old: np.ndarray) -> float:
            return float(np.max(np.abs(new - old)))
    history: list[float] = []
    iterations = 0
    converged = False
    while iterations < max_iter:
        v1, obj0 = em_map(v)
        iterations += 1
        history.append(obj0)
        step = change(v1, v)
        if progress is not None:
            progress(iterations, obj0, step)
        if step < tol:
            v, converged = v1, True
            break
        if not accelerate or iterations + 2 > max_iter:
            v = v1
            continue
        v2, obj1 = em_map(v1)
        iterations += 1
        history.append(obj1)
        step = change(v2, v1)
        if progress is not None:
            progress(iterations, obj1, step)
        if step < tol:
            v, converged = v2, True
            break
        r = v1 - v
        w = v2 - v1 - r
        nw = _norm(w)
        alpha = min(-_norm(r) / nw if nw > 0 else -1.0, -1.0)
        v3, obj_ext = em_map(v - 2 * alpha * r + alpha**2 * w)
        iterations += 1
        if math.isfinite(obj_ext) and obj_ext >= obj1 - 1e-8 * abs(obj1):
            history.append(obj_ext)
            v = v3
        else:
            v = v2
        if stop is not None and stop(history):
            converged = True
            break
    return v, iterations, converged, history


def _norm(v: np.ndarray) -> float:
    """Euclidean norm without BLAS: ``np.linalg.norm`` calls a threaded ``ddot`` whose idle
    threads then spin on the other cores for a while, taking them from the work ``prepare``
    runs beside a fit (its monitoring challenger)."""
    return math.sqrt(float(np.einsum("i,i->", v, v)))
