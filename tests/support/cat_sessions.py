"""Simulated adaptive sessions over an item bank with known parameters (tests and
benchmarks): each simulated student of true ability ``theta`` answers items picked by
:func:`irt.engine.selection.next_items` one at a time, by the model's own response
probabilities, and is re-scored by EAP after every answer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irt.engine.ability import eap
from irt.engine.model import ItemModel
from irt.engine.selection import Controls, next_items


def bank(n_items: int = 200, n_skills: int = 4, seed: int = 0) -> ItemModel:
    """A 2PL bank: ``a ~ LogNormal(0, 0.3)``, ``b ~ N(0, 1)``, items ``q0..``, skill ``k{j %
    n_skills}`` for item ``j`` (the ``skills`` section a calibration with a skill column
    writes)."""
    rng = np.random.default_rng(seed)
    a = rng.lognormal(0.0, 0.3, n_items)
    b = rng.normal(0.0, 1.0, n_items)
    ids = [f"q{j}" for j in range(n_items)]
    nan = np.full(n_items, np.nan)
    skills = {"parameters": {f"k{s}": {"a": 1.0, "b": 0.0, "c": 0.0, "n_items": 1}
                             for s in range(n_skills)},
              "item_skills": {ids[j]: f"k{j % n_skills}" for j in range(n_items)}}
    return ItemModel("2pl", ids, a, b, np.zeros(n_items), nan, nan.copy(), nan.copy(),
                     skills=skills)


@dataclass(frozen=True)
class Sessions:
    """``theta`` the true abilities, ``estimate`` and ``se`` the final EAPs, ``length`` the
    items each student took, ``exposure`` the share of sessions each item appeared in."""

    theta: np.ndarray
    estimate: np.ndarray
    se: np.ndarray
    length: np.ndarray
    exposure: np.ndarray


def run(model: ItemModel, theta: np.ndarray, *, max_items: int, stop_se: float = 0.0,
        top: int = 1, seed: int = 0, random_order: bool = False) -> Sessions:
    """Adaptive sessions (``random_order``: items in random order instead, the baseline);
    each stops at ``max_items`` or once the SE is at or below ``stop_se``."""
    rng = np.random.default_rng(seed)
    est, ses, lengths = [], [], []
    seen = np.zeros(model.n_items)
    for s, t in enumerate(theta):
        pos: list[int] = []
        ys: list[int] = []
        th, se = 0.0, model.population_sd
        while len(pos) < max_items and se > stop_se:
            if random_order:
                rest = np.setdiff1d(np.arange(model.n_items), pos)
                j = int(rng.choice(rest))
            else:
                j = int(next_items(model, th, 1, exclude=np.array(pos, dtype=np.int64),
                                   controls=Controls(top=top, seed=seed * 1_000_003 + s * 997
                                                     + len(pos)))[0])
            p = float(model.probability_by_position(float(t), np.array([j]))[0])
            pos.append(j)
            ys.append(int(rng.random() < p))
            th, se = eap(model, np.array(pos), np.array(ys))
        est.append(th)
        ses.append(se)
        lengths.append(len(pos))
        seen[pos] += 1
    return Sessions(np.asarray(theta), np.array(est), np.array(ses), np.array(lengths),
                    seen / len(theta))
