"""The extreme-sparsity generator (:func:`irt.engine.simulate.simulate_sparse`, issue #13):
an LMS-like log whose shape the sparsity work and ``benchmarks/bench_sparse.py`` rely on."""

from __future__ import annotations

import numpy as np
import pytest

from irt.engine.model import irf
from irt.engine.simulate import simulate_sparse


@pytest.fixture(scope="module")
def sim():
    return simulate_sparse(seed=3)


def test_the_default_log_has_the_long_tail_the_issue_describes(sim) -> None:
    r = sim.responses
    counts = np.bincount(r.item, minlength=len(r.item_ids))
    assert 95_000 <= r.n_answers <= 100_000
    assert 35_000 <= len(r.item_ids) <= 45_000
    assert counts.min() >= 1  # only answered items are in the log
    assert np.mean(counts <= 2) >= 0.80
    assert (counts >= 100).sum() >= 20  # and a head of popular items


def test_first_attempts_grouped_by_student_and_truth_aligned(sim) -> None:
    r = sim.responses
    pairs = r.student.astype(np.int64) * len(r.item_ids) + r.item
    assert np.unique(pairs).size == pairs.size
    assert np.all(np.diff(r.student) >= 0)
    n_items = len(r.item_ids)
    assert sim.a.shape == sim.b.shape == sim.c.shape == sim.item_skill.shape == (n_items,)
    assert sim.theta.shape == (r.n_students,)
    assert np.all(sim.a > 0) and np.all(sim.c == 0)


def test_answers_follow_the_2pl_truth_and_skills_group_difficulties(sim) -> None:
    r = sim.responses
    p = irf(sim.theta[r.student], sim.a[r.item], sim.b[r.item], 0.0)
    assert abs(r.correct.mean() - p.mean()) < 0.01
    # binned calibration of the truth: observed share correct within 0.03 in each decile
    edges = np.quantile(p, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
    for k in range(10):
        sel = bins == k
        assert abs(r.correct[sel].mean() - p[sel].mean()) < 0.03
    within = sim.b - sim.skill_b[sim.item_skill]
    assert within.std() == pytest.approx(0.5, abs=0.03)
    assert np.corrcoef(sim.b, sim.skill_b[sim.item_skill])[0, 1] > 0.8


def test_the_same_seed_gives_the_same_log() -> None:
    one, two = simulate_sparse(20_000, seed=5), simulate_sparse(20_000, seed=5)
    assert one.responses.item_ids == two.responses.item_ids
    assert np.array_equal(one.responses.correct, two.responses.correct)
    assert not np.array_equal(simulate_sparse(20_000, seed=6).responses.correct[:500],
                              one.responses.correct[:500])
