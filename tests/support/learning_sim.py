"""Answer logs simulated from the learning-aware model (:mod:`irt.engine.learning`) with known
truth.

Each student works through skills in blocks (as in skill builders): a block of one skill,
items of that skill in random order, then another skill.  Each answer is drawn from::

    logit P = a_j (theta_s + delta_sk - b_j) + beta . x_t + gamma_k . z_t

with the covariates of the student's history, computed here from their definition (the
tests compare them with :func:`irt.engine.learning.history_features`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irt.engine.learning import _SKILL_COLUMNS, FEATURES
from irt.engine.responses import Responses


@dataclass
class LearningSimulation:
    responses: Responses
    order: np.ndarray          # answer time of each answer
    item_skill: np.ndarray     # skill of each item
    skill_ids: tuple[str, ...]
    theta: np.ndarray
    delta: np.ndarray          # students x skills
    a: np.ndarray
    b: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray


def simulate_learning(n_students: int = 600, n_items: int = 40, n_skills: int = 4,
                      blocks: int = 3, per_block: int = 8, *, tau: float = 0.8,
                      beta: np.ndarray | None = None, gamma_sd: float = 0.0,
                      b_skill_sd: float = 1.0, window: int = 10, seed: int = 0,
                      item_seed: int | None = None) -> LearningSimulation:
    """``item_seed`` (default ``seed``) draws the items, skills and coefficients, ``seed``
    the students: two logs with the same ``item_seed`` share their items."""
    items_rng = np.random.default_rng(seed if item_seed is None else item_seed)
    rng = np.random.default_rng([seed, 1])
    beta = np.zeros(len(FEATURES)) if beta is None else np.asarray(beta, dtype=float)
    item_skill = np.arange(n_items) % n_skills
    mu = items_rng.normal(0.0, 1.0, n_skills)
    a = np.exp(items_rng.normal(0.0, 0.25, n_items))
    b = mu[item_skill] + items_rng.normal(0.0, b_skill_sd * 0.5, n_items)
    gamma = items_rng.normal(0.0, gamma_sd, (n_skills, len(_SKILL_COLUMNS))) if gamma_sd \
        else np.zeros((n_skills, len(_SKILL_COLUMNS)))
    theta = rng.standard_normal(n_students)
    delta = rng.normal(0.0, tau, (n_students, n_skills))
    students, items, ys = [], [], []
    for s in range(n_students):
        seq: list[int] = []
        for k in rng.choice(n_skills, size=min(blocks, n_skills), replace=False):
            pool = np.flatnonzero(item_skill == k)
            seq += rng.choice(pool, size=min(per_block, pool.size), replace=False).tolist()
        # the covariates by their definition, updated answer by answer
        right = np.zeros(n_skills)
        wrong = np.zeros(n_skills)
        last = np.zeros(n_skills)
        y_s: list[int] = []
        for j in seq:
            k = item_skill[j]
            recent = y_s[-window:]
            x = np.array([np.log1p(right[k]), np.log1p(wrong[k]), np.log1p(sum(recent)),
                          np.log1p(len(recent) - sum(recent)), last[k]])
            z = a[j] * (theta[s] + delta[s, k] - b[j]) + x @ beta + x[_SKILL_COLUMNS] @ gamma[k]
            y = int(rng.random() < 1.0 / (1.0 + np.exp(-z)))
            y_s.append(y)
            right[k] += y
            wrong[k] += 1 - y
            last[k] = 2 * y - 1
        students += [s] * len(seq)
        items += seq
        ys += y_s
    r = Responses(np.array(students), np.array(items), np.array(ys),
                  tuple(f"s{s}" for s in range(n_students)),
                  tuple(f"q{j}" for j in range(n_items)))
    return LearningSimulation(r, np.arange(len(ys), dtype=float), item_skill,
                              tuple(f"k{k}" for k in range(n_skills)), theta, delta, a, b, beta,
                              gamma)
