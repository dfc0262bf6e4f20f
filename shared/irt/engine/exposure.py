"""Sympson-Hetter exposure control: the per-item parameters and the filter (numpy only).

Sympson & Hetter (1985; van der Linden, 2003, "Some alternatives to Sympson-Hetter item-exposure
control in computerized adaptive testing", JEBS 28): each item ``j`` has an exposure-control
parameter ``K_j`` in ``[0, 1]``, the probability that the item, once *selected* (it is the best
remaining item of the ranking), is *administered*.  A selected item that fails the draw
(``u >= K_j``) is passed over, not given again in that session, and the next best item is
tried.  The exposure rate of an item is then ``P(A_j) = K_j P(S_j)``.

The parameters are computed offline by the standard iterative simulation
(:func:`irt.engine.exposure_fit.sympson_hetter`, kept apart so that ``predict`` imports only
this module's filter):

1. ``K_j = 1`` for every item;
2. simulate ``n_examinees`` adaptive sessions of ``test_length`` items with abilities drawn from
   the model's ability prior ``N(0, sigma^2)`` (maximum-information selection at the EAP
   ability, re-scored after every answer, the filter applied with the current ``K``); count
   ``P(S_j)``, the share of sessions in which item ``j`` was selected, and ``P(A_j)``, the
   share in which it was administered;
3. if ``max_j P(A_j) <= r_max + tolerance`` (by default three binomial SEs), stop; else set
   ``K_j = r_max / P(S_j)`` where ``P(S_j) > r_max`` and ``K_j = 1`` elsewhere, and go to 2
   (with fresh examinees).

Sessions of ``test_length`` items over ``n`` items expose ``test_length / n`` items on average:
``r_max`` below that cannot be reached (the simulation refuses it).

Serving (:func:`filter_uniforms`): the draw ``u`` of item ``j`` is a function of the request's
seed and ``j`` only (splitmix64), so a session that sends the same ``seed`` with each of its
requests sees the same draws all along: an item it failed stays out of the session, as in the
simulation, and the answers are reproducible.  Without a seed each request draws afresh.
"""

from __future__ import annotations

import numpy as np

from irt.engine.model import ItemModel

#: The one method of the ``exposure`` section of ``model.json`` (and of the request's
#: ``exposure.method``, besides ``"none"``).
SYMPSON_HETTER = "sympson-hetter"

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's output function on ``uint64`` (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def filter_uniforms(seed: int, positions: np.ndarray) -> np.ndarray:
    """The Sympson-Hetter draws ``u`` in ``[0, 1)`` of the items at ``positions`` for a
    session's ``seed`` (an integer from 0 to 2**64 - 1): the same seed and position always
    give the same draw, different positions independent ones.

    Args:
        seed: the session's seed.
        positions: item positions, shape ``(m,)``.

    Returns:
        Shape ``(m,)`` floats, 53 random bits each.
    """
    key = _splitmix64(np.array([seed], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        mixed = _splitmix64(key ^ (np.asarray(positions, dtype=np.uint64) * _GOLDEN))
    return (mixed >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def admitted(k: np.ndarray, positions: np.ndarray, seed: int | None) -> np.ndarray:
    """Which of the items at ``positions`` pass their Sympson-Hetter draw, ``u < K_j``.

    Args:
        k: every item's parameter ``K``, shape ``(n_items,)``.
        positions: the candidate positions, shape ``(m,)``.
        seed: the session's seed (:func:`filter_uniforms`); ``None``: fresh entropy.

    Returns:
        Boolean mask, shape ``(m,)``.
    """
    if seed is None:
        seed = int(np.random.default_rng().integers(0, 1 << 63))
    return filter_uniforms(seed, positions) < k[positions]


def parameters(model: ItemModel) -> np.ndarray | None:
    """The model's Sympson-Hetter parameters by item position (1 for an item the section does
    not list), or ``None`` when the model has no ``exposure`` section; cached on the model."""
    cached = model._cache.get("exposure_k")
    if cached is None:
        k = None
        if model.exposure:
            k = np.ones(model.n_items)
            index = model.index
            for item, value in model.exposure["parameters"].items():
                k[index[item]] = float(value)
        cached = model._cache["exposure_k"] = (k,)  # type: ignore[assignment]
    return cached[0]  # type: ignore[index]
