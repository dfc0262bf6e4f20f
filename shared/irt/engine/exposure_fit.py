"""The Sympson-Hetter simulation: each item's exposure-control parameter, computed offline
(numpy only; the filter that serves them is :mod:`irt.engine.exposure`, whose docstring gives
the method).  Used by ``python -m irt exposure`` and the benchmarks, never by ``predict``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from irt.engine.exposure import SYMPSON_HETTER
from irt.engine.model import ItemModel, irf, item_information


@dataclass(frozen=True)
class Simulation:
    """What :func:`simulate` counted over its sessions.

    Attributes:
        selected: share of sessions in which each item was selected, ``P(S_j)``, shape
            ``(n_items,)``.
        administered: share of sessions in which each item was given, ``P(A_j)``.
        theta: the true abilities, shape ``(n_examinees,)``.
        estimate: the final EAP abilities.
        se: their posterior SDs.
        length: items each session gave (``test_length`` unless the bank ran out).
    """

    selected: np.ndarray
    administered: np.ndarray
    theta: np.ndarray
    estimate: np.ndarray
    se: np.ndarray
    length: np.ndarray


def simulate(model: ItemModel, k: np.ndarray, *, n_examinees: int, test_length: int,
             seed: int, n_points: int = 61, bound: float = 6.0) -> Simulation:
    """Fixed-length max-information sessions under the Sympson-Hetter filter ``k``, all
    examinees at once.

    Each examinee draws a true ability from ``N(0, sigma^2)`` and one ``u`` per item; at each
    step the best remaining item at the EAP ability (grid of ``n_points`` nodes over
    ``+/- bound`` prior SDs, started at the prior mean 0) is selected; if ``u_j < K_j`` it is
    given and answered by the model's probabilities, else it is passed over for the rest of the
    session and the next best item is selected.  Cost ``O(test_length x n_examinees x
    n_items)`` per pass; peak memory about ``70 x n_examinees x n_items`` bytes (the
    information's temporaries; measured 336 MB for 1000 x 5000: 2000 sessions over a
    10,000-item bank take about 1.4 GB, over 300 items 40 MB).

    Args:
        model: the calibrated items (a plain model's parameters are used).
        k: each item's parameter, shape ``(n_items,)``; all ones is no exposure control.
        n_examinees: sessions to simulate.
        test_length: items per session.
        seed: seed of the abilities, draws and answers.
        n_points, bound: the EAP grid.
    """
    rng = np.random.default_rng(seed)
    n, m = model.n_items, n_examinees
    sigma = model.population_sd
    theta = rng.normal(0.0, sigma, m)
    u = rng.random((m, n))
    answer_u = rng.random((m, test_length))
    nodes = np.linspace(-bound * sigma, bound * sigma, n_points)
    log_prior = -0.5 * (nodes / sigma) ** 2
    p_nodes = np.clip(irf(nodes[:, None], model.a, model.b, model.c), 1e-12, 1 - 1e-12)
    log_p, log_q = np.log(p_nodes).T, np.log1p(-p_nodes).T  # (n, n_points)
    logpost = np.tile(log_prior, (m, 1))
    available = np.ones((m, n), dtype=bool)
    selected = np.zeros((m, n), dtype=bool)
    given = np.zeros((m, n), dtype=bool)
    est = np.zeros(m)
    length = np.zeros(m, dtype=np.int64)
    rows = np.arange(m)
    for step in range(test_length):
        info = item_information(est[:, None], model.a, model.b, model.c)
        pending = rows[available.any(axis=1)]
        chosen = np.full(m, -1, dtype=np.int64)
        while pending.size:
            score = np.where(available[pending], info[pending], -np.inf)
            best = np.argmax(score, axis=1)
            selected[pending, best] = True
            available[pending, best] = False
            ok = u[pending, best] < k[best]
            chosen[pending[ok]] = best[ok]
            rest = pending[~ok]
            pending = rest[available[rest].any(axis=1)]
        took = rows[chosen >= 0]
        j = chosen[took]
        given[took, j] = True
        length[took] += 1
        p = irf(theta[took], model.a[j], model.b[j], model.c[j])
        y = answer_u[took, step] < p
        logpost[took] += np.where(y[:, None], log_p[j], log_q[j])
        w = np.exp(logpost - logpost.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        est = w @ nodes
    w = np.exp(logpost - logpost.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    se = np.sqrt(np.maximum(w @ nodes**2 - est**2, 0.0))
    return Simulation(selected.mean(axis=0), given.mean(axis=0), theta, est, se, length)


@dataclass(frozen=True)
class ExposureResult:
    """The outcome of :func:`sympson_hetter`.

    Attributes:
        k: each item's parameter, shape ``(n_items,)``.
        max_exposure: the largest ``P(A_j)`` of each pass, the last one simulated with ``k``.
        converged: whether the last pass met ``r_max + tolerance``.
    """

    k: np.ndarray
    max_exposure: list[float]
    converged: bool


def sympson_hetter(model: ItemModel, *, r_max: float = 0.25, test_length: int = 20,
                   n_examinees: int = 2000, max_iterations: int = 30,
                   tolerance: float | None = None, seed: int = 0) -> ExposureResult:
    """The iterative Sympson-Hetter simulation (see :mod:`irt.engine.exposure`).

    Args:
        model: the calibrated items.
        r_max: the target largest exposure rate, in ``(0, 1]``.
        test_length: items per simulated session (the sessions the parameters are for).
        n_examinees: sessions per pass (the binomial noise of ``P(A_j)`` is about
            ``sqrt(r_max (1 - r_max) / n_examinees)``: 0.0097 for 2000 at 0.25).
        max_iterations: the most passes.
        tolerance: the slack over ``r_max`` that counts as met, in ``[0, 1)``; ``None``:
            three binomial SEs of an exposure rate of ``r_max``, ``3 sqrt(r_max (1 - r_max) /
            n_examinees)`` (0.029 for 2000 examinees at 0.25) - the largest of a few hundred
            simulated rates whose true value is ``r_max`` lies about 2.5 SEs above it by
            chance alone.
        seed: pass ``i`` uses ``seed + i``.

    Raises:
        ValueError: on an argument out of range, or ``r_max < test_length / n_items``
            (unreachable).
    """
    n = model.n_items
    if not 0.0 < r_max <= 1.0:
        raise ValueError(f"r_max must be in (0, 1], got {r_max}")
    if test_length < 1 or n_examinees < 1 or max_iterations < 1:
        raise ValueError("test_length, n_examinees and max_iterations must be at least 1")
    if test_length > n:
        raise ValueError(f"test_length {test_length} is longer than the bank ({n} items)")
    if r_max < test_length / n:
        raise ValueError(f"r_max {r_max} is below test_length / n_items = {test_length / n:.4f}:"
                         " every item would have to be given more often")
    if tolerance is None:
        tolerance = 3.0 * math.sqrt(r_max * (1.0 - r_max) / n_examinees)
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
    k = np.ones(n)
    history: list[float] = []
    converged = False
    for i in range(max_iterations):
        sim = simulate(model, k, n_examinees=n_examinees, test_length=test_length,
                       seed=seed + i)
        history.append(float(sim.administered.max()))
        converged = history[-1] <= r_max + tolerance
        if converged or i == max_iterations - 1:
            break
        k = np.where(sim.selected > r_max, r_max / np.maximum(sim.selected, 1e-300), 1.0)
    return ExposureResult(k, history, converged)


def exposure_section(model: ItemModel, result: ExposureResult, *, r_max: float,
                     test_length: int, n_examinees: int, seed: int) -> dict[str, Any]:
    """The ``exposure`` section of ``model.json`` (see
    :func:`irt.engine.model.exposure_from_dict`) for ``result``; ``K`` rounded to 6 decimals."""
    return {
        "method": SYMPSON_HETTER,
        "r_max": float(r_max),
        "parameters": {item: round(float(v), 6)
                       for item, v in zip(model.item_ids, result.k, strict=True)},
        "simulation": {"test_length": int(test_length), "n_examinees": int(n_examinees),
                       "iterations": len(result.max_exposure), "seed": int(seed),
                       "selection": "max_information", "ability": "EAP",
                       "max_exposure": [round(v, 6) for v in result.max_exposure],
                       "converged": bool(result.converged)},
    }

