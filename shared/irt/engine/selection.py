"""Next-item selection for adaptive practice (numpy only).

Two strategies over the candidate items (by default every item the student has
not answered):

* ``max_information`` - the ``k`` items with the largest Fisher information at
  the current ability, ``I_j(theta) = a_j^2 (Q_j / P_j) ((P_j - c_j) / (1 - c_j))^2``
  (the classic computerised-adaptive-testing rule: the most precise next answer).
* ``target_probability`` - the ``k`` items whose success probability is closest
  to ``target`` (e.g. 0.7: challenging but achievable practice), ties broken by
  higher information.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from irt.engine.model import ItemModel

Strategy = Literal["max_information", "target_probability"]
STRATEGIES: tuple[str, ...] = ("max_information", "target_probability")


def next_items(model: ItemModel, theta: float, k: int, *, strategy: str = "max_information",
               target: float = 0.7, exclude: np.ndarray | None = None,
               candidates: np.ndarray | None = None) -> np.ndarray:
    """Positions of the ``k`` best next items, best first.

    Args:
        model: calibrated items.
        theta: the student's current ability.
        k: how many items (fewer if fewer candidates remain).
        strategy: ``"max_information"`` or ``"target_probability"``.
        target: success probability aimed at by ``target_probability``, in (0, 1).
        exclude: positions never to return (e.g. items already answered).
        candidates: positions to choose from (default: every item).

    Returns:
        Item positions, shape ``(min(k, n_candidates),)``.

    Raises:
        ValueError: on an unknown strategy, ``k < 1`` or ``target`` outside (0, 1).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
    if k < 1:
        raise ValueError("k must be at least 1")
    if not 0.0 < target < 1.0:
        raise ValueError("target must be in (0, 1)")
    pool = np.arange(model.n_items) if candidates is None else np.unique(candidates)
    if exclude is not None and exclude.size:
        pool = pool[~np.isin(pool, exclude)]
    if pool.size == 0:
        return pool
    info = model.information_by_position(theta, pool)
    if strategy == "max_information":
        order = np.lexsort((pool, -info))  # stable: ties by position
    else:
        gap = np.abs(model.probability_by_position(theta, pool) - target)
        order = np.lexsort((pool, -info, np.round(gap, 12)))
    return pool[order[:k]]
