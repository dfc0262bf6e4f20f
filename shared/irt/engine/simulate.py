"""Simulated answer logs with known truth (tests, benchmarks, ``make demo``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irt.engine.model import irf
from irt.engine.responses import Responses


@dataclass(frozen=True)
class Simulation:
    """A simulated log and the parameters that generated it.

    Attributes:
        responses: the answers.
        theta: true ability of each student, shape ``(n_students,)``.
        a, b, c: true item parameters, shape ``(n_items,)``.
    """

    responses: Responses
    theta: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray


def simulate(
    n_students: int,
    n_items: int,
    answers_per_student: int | None = None,
    *,
    model: str = "2pl",
    seed: int = 0,
    a_sdlog: float = 0.3,
    c_range: tuple[float, float] = (0.1, 0.3),
) -> Simulation:
    """Simulate answers under a 1PL/2PL/3PL model.

    ``theta ~ N(0, 1)``, ``a ~ lognormal(0, a_sdlog)`` (1 for ``1pl``),
    ``b ~ N(0, 1)``, ``c ~ U(c_range)`` for ``3pl`` (else 0).

    Args:
        n_students: number of students.
        n_items: number of items in the bank.
        answers_per_student: items answered by each student, drawn without
            replacement uniformly from the bank; ``None`` = every item (dense).
        model: ``"1pl"``, ``"2pl"`` or ``"3pl"``.
        seed: seed of ``numpy.random.default_rng``.
        a_sdlog: standard deviation of ``log a``.
        c_range: bounds of the uniform distribution of ``c`` (3PL only).

    Returns:
        A :class:`Simulation`; answers are grouped by student.
    """
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(n_students)
    a = np.ones(n_items) if model == "1pl" else rng.lognormal(0.0, a_sdlog, n_items)
    b = rng.standard_normal(n_items)
    c = rng.uniform(*c_range, n_items) if model == "3pl" else np.zeros(n_items)
    k = n_items if answers_per_student is None else int(answers_per_student)
    if k > n_items:
        raise ValueError("answers_per_student cannot exceed n_items")
    student = np.repeat(np.arange(n_students, dtype=np.int32), k)
    if k == n_items:
        item = np.tile(np.arange(n_items, dtype=np.int32), n_students)
    else:
        # k distinct items per student: the k smallest of n_items random keys.
        item = np.empty(n_students * k, dtype=np.int32)
        chunk = max(1, 2_000_000 // n_items)
        for start in range(0, n_students, chunk):
            stop = min(n_students, start + chunk)
            keys = rng.random((stop - start, n_items), dtype=np.float32)
            pick = np.argpartition(keys, k - 1, axis=1)[:, :k]
            item[start * k: stop * k] = pick.reshape(-1)
    p = irf(theta[student], a[item], b[item], c[item])
    correct = (rng.random(p.shape[0]) < p).astype(np.int8)
    responses = Responses.from_arrays(student, item, correct,
                                      [f"s{i}" for i in range(n_students)],
                                      [f"q{j}" for j in range(n_items)])
    return Simulation(responses, theta, a, b, c)
