"""Simulated answer logs with known truth (tests, benchmarks, ``make demo``)."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class SparseSimulation(Simulation):
    """A simulated LMS-like log: :class:`Simulation` plus the item -> skill map.

    Attributes:
        item_skill: skill index of each item, shape ``(n_items,)``.
        skill_b: the true mean difficulty of each skill, shape ``(n_skills,)``.
    """

    item_skill: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    skill_b: np.ndarray = field(default_factory=lambda: np.zeros(0))


def simulate_sparse(n_answers: int = 100_000, *, bank: int = 100_000,
                    answers_per_student: int = 20, zipf: float = 0.8, n_skills: int = 200,
                    skill_sd: float = 0.5, a_sdlog: float = 0.3,
                    seed: int = 0) -> SparseSimulation:
    """Simulate an LMS answer log with a long tail of rarely served items (2PL truth).

    Items are served with Zipf exposure: the item of popularity rank ``r`` (ranks shuffled
    over the bank) is drawn with probability ``oc r^-zipf``.  Each student draws
    ``answers_per_student`` items that way (a repeated draw is dropped: first attempts
    only).  Skills: item ``j`` belongs to skill ``k(j)`` (uniform), ``b_j = mu_k + N(0,
    skill_sd^2)`` with ``mu_k ~ N(0, 1)``; ``a_j ~ lognormal(0, a_sdlog)``; ``theta ~ N(0, 1)``.

    With the defaults (100k answers, a bank of 100k, Zipf 0.8) about 40,000 items are
    answered, over 80 % of them at most twice, and about 45 at least 100 times: the shape
    of a large LMS item bank.

    Args:
        n_answers: answers drawn (slightly fewer are kept: repeats are dropped).
        bank: items that could be served; only the answered ones are in the log.
        answers_per_student: draws per student.
        zipf: exponent of the exposure law.
        n_skills: skills the bank's items belong to.
        skill_sd: spread of the difficulties within a skill (logits).
        a_sdlog: standard deviation of ``log a``.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        A :class:`SparseSimulation` over the answered items (ids ``q<bank index>``), answers
        grouped by student.
    """
    rng = np.random.default_rng(seed)
    n_students = max(1, n_answers // answers_per_student)
    weight = 1.0 / np.arange(1, bank + 1, dtype=float) ** zipf
    weight /= weight.sum()
    drawn = rng.permutation(bank)[rng.choice(bank, size=n_students * answers_per_student,
                                             p=weight)]
    student = np.repeat(np.arange(n_students, dtype=np.int64), answers_per_student)
    key = np.unique(student * bank + drawn)  # first attempts, grouped by student
    student, bank_item = key // bank, key % bank
    answered, item = np.unique(bank_item, return_inverse=True)
    skill_b = rng.standard_normal(n_skills)
    item_skill = rng.integers(0, n_skills, answered.shape[0])
    a = rng.lognormal(0.0, a_sdlog, answered.shape[0])
    b = skill_b[item_skill] + skill_sd * rng.standard_normal(answered.shape[0])
    theta = rng.standard_normal(n_students)
    p = irf(theta[student], a[item], b[item], 0.0)
    correct = (rng.random(p.shape[0]) < p).astype(np.int8)
    responses = Responses.from_arrays(student.astype(np.int32), item.astype(np.int32), correct,
                                      [f"s{i}" for i in range(n_students)],
                                      [f"q{j}" for j in answered.tolist()])
    return SparseSimulation(responses, theta, a, b, np.zeros(answered.shape[0]),
                            item_skill=item_skill, skill_b=skill_b)
