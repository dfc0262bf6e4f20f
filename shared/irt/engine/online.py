"""The online protocol's common parts: answer runs per student, chunks of whole students,
and the plain model's online predictions (numpy only).

Each answer is predicted from the same student's earlier answers only (see
:mod:`irt.engine.evaluate` for the protocol and :mod:`irt.engine.learning` for the
learning-aware version, which uses :func:`answer_runs` and :func:`student_chunks` too).
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from irt.engine.ability import logprob_table
from irt.engine.model import ItemModel, irf


def answer_runs(student: np.ndarray, item_pos: np.ndarray, correct: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The online protocols' input as int64 arrays, and where each student's run starts.

    Returns:
        ``(student, item_pos, correct, starts)``.

    Raises:
        ValueError: if a student's answers are not contiguous.
    """
    student = np.asarray(student, dtype=np.int64)
    pos = np.asarray(item_pos, dtype=np.int64)
    y = np.asarray(correct, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, student[1:] != student[:-1]]) if student.size else (
        np.zeros(0, dtype=np.int64))
    if np.unique(student[starts]).shape[0] != starts.shape[0]:
        raise ValueError("each student's answers must be contiguous (sort by student first)")
    return student, pos, y, starts


def student_chunks(bounds: np.ndarray, chunk_answers: int) -> list[int]:
    """Cut points (indices into ``bounds``) of chunks of whole students, about
    ``chunk_answers`` answers each.

    Args:
        bounds: array of shape ``(n_students + 1,)``: where each student's run starts, then
            the number of answers.
        chunk_answers: answers per chunk (a student longer than that is a chunk alone).

    Returns:
        Increasing indices ``0 = k_0 < ... < k_m = n_students``; chunk ``i`` holds the
        students ``k_i .. k_{i+1} - 1``.
    """
    cut = [0]
    for k in range(1, len(bounds)):
        if bounds[k] - bounds[cut[-1]] >= chunk_answers:
            cut.append(k)
    if cut[-1] != len(bounds) - 1:
        cut.append(len(bounds) - 1)
    return cut


#: Answers (and items of the log-probability table) per chunk of
#: :func:`plain_online_predictions`: a chunk's answers x 401 nodes arrays (1.6 MB at 512
#: answers) stay in a core's cache.  ASSISTments 2009's gate replay (26,473 answers of 318
#: students, 10,481 items): 0.42 s in chunks of 20,000 answers (64 MB arrays) and the whole
#: table at once, 0.18 s in chunks of 512.
CHUNK_ANSWERS = 512


def plain_online_predictions(model: ItemModel, student: np.ndarray, item_pos: np.ndarray,
                             correct: np.ndarray, *, n_points: int = 401, bound: float = 6.0,
                             chunk_answers: int = CHUNK_ANSWERS) -> np.ndarray:
    """P(correct) of every answer from the same student's earlier answers only (plain IRT:
    EAP ability, the options of the model ignored).

    Args:
        model: calibrated items.
        student: student index of each answer; each student's answers must be
            contiguous and in answer order (sort by student, then time, first).
        item_pos: item position in ``model`` (``-1``: unknown item).
        correct: 0/1 answers.
        n_points: EAP grid nodes over ``[-bound sigma, bound sigma]``.
        bound: grid half-width in prior SDs.
        chunk_answers: answers per chunk (whole students), bounding memory (the
            probabilities do not depend on it beyond rounding).

    Returns:
        Probabilities aligned with the input.

    Raises:
        ValueError: if a student's answers are not contiguous.
    """
    student, pos, y, starts = answer_runs(student, item_pos, correct)
    n = student.shape[0]
    if n == 0:
        return np.zeros(0)
    sigma = model.population_sd
    x = np.linspace(-bound * sigma, bound * sigma, n_points)
    log_prior = -0.5 * (x / sigma) ** 2
    known = pos >= 0
    # the rows of the items answered here only (a hold-out uses a fraction of the bank):
    # rows 2 k + y for the k-th of them, and a last row of zeros for an unknown item
    used, local = np.unique(pos[known], return_inverse=True)
    table = np.empty((2 * used.shape[0] + 1, n_points))
    for lo in range(0, used.shape[0], chunk_answers):  # blocks of items that stay in cache
        block = used[lo:lo + chunk_answers]
        table[2 * lo:2 * (lo + block.shape[0])] = logprob_table(model, x, block)
    table[-1] = 0.0
    row = np.full(n, 2 * used.shape[0], dtype=np.intp)
    row[known] = 2 * local + y[known]
    theta = np.empty(n)
    bounds = np.r_[starts, n]
    for lo_k, hi_k in pairwise(student_chunks(bounds, chunk_answers)):
        lo, hi = int(bounds[lo_k]), int(bounds[hi_k])
        # log-likelihood of the answers strictly before each one, within its student: an
        # exclusive running sum, so that an answer's own row never enters its prediction,
        # not even as rounding (inclusive sum minus own row differed in the last bit)
        before = np.empty((hi - lo, n_points))
        before[0] = 0.0
        np.cumsum(table[row[lo:hi - 1]], axis=0, out=before[1:])
        local_starts = bounds[lo_k:hi_k] - lo
        lengths = np.diff(np.r_[local_starts, hi - lo])
        before -= np.repeat(before[local_starts], lengths, axis=0)
        before += log_prior
        before -= before.max(axis=1, keepdims=True)
        np.exp(before, out=before)
        theta[lo:hi] = (before @ x) / before.sum(axis=1)
    typical = (float(np.median(model.a)), float(np.median(model.b)))
    at = np.maximum(pos, 0)
    a = np.where(known, model.a[at], typical[0])
    b = np.where(known, model.b[at], typical[1])
    c = np.where(known, model.c[at], 0.0)
    return irf(theta, a, b, c)
