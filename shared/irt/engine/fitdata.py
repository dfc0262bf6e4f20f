"""Answers lined up with an item bank: what every diagnostic statistic starts from.

numpy and scipy only, no I/O.  :func:`align` keeps the answers on items the model knows,
restricts the bank to the items that were answered, numbers the students that answered
something ``0..n-1`` and works out the design:

* **complete**: every student answered every (answered) item, as in a fixed test form
  (LSAT7, SAT12); the limited-information and sum-score statistics (M2, S-X2) need it, and a
  dense students x items 0/1 matrix (:attr:`FitData.dense`) is then built;
* **incomplete** (sparse logs, adaptive tests): each student answered a subset; only
  statistics defined per answer or per pair of co-answered items are computed, always from
  the long ``(student, item, correct)`` arrays.

Grids.  Two conventions (:data:`GRIDS`), the same when ``sigma = 1`` (every 1PL/2PL/3PL
bank; Rasch banks carry their estimated ``sigma``):

* ``"prior_sd"`` (the default): nodes over ``+/- bound`` prior SDs, ``[-6 sigma, 6 sigma]``;
* ``"mirt"``: nodes over ``[-6, 6]`` logits whatever ``sigma``, as R mirt.  For a Rasch bank
  with ``sigma > 1`` this cuts the prior off (ASSISTments 2009: ``sigma = 2.5``, the grid ends
  at 2.4 SDs); use it to reproduce mirt's numbers.

On either grid, with :func:`half_width` giving its half-width in logits:

* :func:`marginal_grid` - ``n_points`` (61) equally spaced nodes with weights ``w_q``
  proportional to the ``N(0, sigma^2)`` density at the nodes, normalised to 1: the marginal
  integrals ``int f(theta) dG(theta) ~ sum_q w_q f(x_q)`` of S-X2, M2 and the LD tables;
* the abilities of the residual statistics (infit/outfit, Zh, Q3, X2 groups, empirical
  reliability): the EAP and posterior SD over 121 nodes (mirt's ``fscores`` default)::

      theta_s = sum_q x_q w_q L_s(x_q) / sum_q w_q L_s(x_q),
      L_s(x)  = prod_j P_j(x)^y_sj (1 - P_j(x))^(1 - y_sj)

  ``"prior_sd"``: :func:`irt.engine.ability.eap_batch`, which re-integrates a posterior
  narrower than the node step (a few hundred answers) or leaning on the grid's end on a local
  grid; ``"mirt"``: :func:`eap_fixed`, the plain sum above.

The marginal log-likelihood ``l = sum_s log int L_s(t) dN(t; 0, sigma^2)`` that AIC, BIC and
the likelihood-ratio test use is integrated per student: on 161 nodes over +/- 8 prior SDs,
or, where the posterior is narrower than two of their steps, over a local grid, the posterior
mean +/- 10 posterior SDs (:func:`marginal_loglik`, ``adaptive=True``), so that neither long
answer sequences (narrow posteriors: on ASSISTments 2009 the 61-node grid is 0.27 off for the
2PL) nor a wide prior (the Rasch model there: 26 off on ``[-6, 6]``) bias it; with
``adaptive=False`` it is mirt's 61-node sum (``logLik``).

Cost: one sparse product per chunk of students, O(answers x nodes); memory O(chunk x nodes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from irt.engine.ability import eap_batch, logprob_table
from irt.engine.model import ItemModel, softplus_tail
from irt.engine.responses import Responses

#: Students per chunk of the students x nodes arrays.
STUDENT_CHUNK = 50_000
#: Answers per chunk of the adaptive log-likelihood's answers x nodes arrays (whole students;
#: the figures do not depend on it): 8,192 answers x 61 nodes (4 MB) stay in cache, where
#: 100,000 (49 MB arrays) took half as long again (ASSISTments 2009's 268,685 training
#: answers: 0.52 -> 0.35 s).
ANSWER_CHUNK = 8192
#: Items per block of the log-probability table (the same rows as the whole table's, built
#: while they stay in cache: ASSISTments 2009's 17,700 items at 161 nodes, 54 -> 39 ms).
TABLE_BLOCK = 512
#: The grid conventions (module docstring).
GRIDS = ("prior_sd", "mirt")


def half_width(model: ItemModel, bound: float = 6.0, grid: str = "prior_sd") -> float:
    """The grid's half-width in logits: ``bound * sigma`` (``"prior_sd"``) or ``bound``
    (``"mirt"``).

    Raises:
        ValueError: on an unknown convention.
    """
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {', '.join(GRIDS)}, got {grid!r}")
    return bound * model.population_sd if grid == "prior_sd" else bound


def item_parameter_count(model_type: str) -> int:
    """Free parameters of one item: 1 (``b``) for ``rasch``/``1pl``, 2 (``a, b``) for ``2pl``,
    3 (``a, b, c``) for ``3pl``."""
    return {"rasch": 1, "1pl": 1, "2pl": 2, "3pl": 3}[model_type]


def shared_parameter_count(model_type: str) -> int:
    """Free parameters shared by all items: the Rasch model's latent variance and the 1PL's
    common slope (one each; the two models are reparameterisations of one another)."""
    return 1 if model_type in ("rasch", "1pl") else 0


def parameter_count(model_type: str, n_items: int) -> int:
    """Free parameters of a bank of ``n_items`` items (mirt's ``nest``)."""
    return n_items * item_parameter_count(model_type) + shared_parameter_count(model_type)


def marginal_grid(model: ItemModel, n_points: int = 61, bound: float = 6.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(x, w)``: ``n_points`` nodes on ``[-bound, bound]`` and weights ``w_q oc N(x_q; 0,
    sigma^2)``, ``sum_q w_q = 1`` (``sigma = model.population_sd``), each of shape
    ``(n_points,)``."""
    x = np.linspace(-bound, bound, n_points)
    lw = -0.5 * (x / model.population_sd) ** 2
    w = np.exp(lw - lw.max())
    return x, w / w.sum()


def probabilities(model: ItemModel, x: np.ndarray) -> np.ndarray:
    """``P_j(x_q)`` of shape ``(n_items, n_nodes)``."""
    return model.c[:, None] + (1.0 - model.c[:, None]) / (
        1.0 + np.exp(-model.a[:, None] * (x[None, :] - model.b[:, None])))


def node_loglik(model: ItemModel, student: np.ndarray, item: np.ndarray, correct: np.ndarray,
                n_students: int, x: np.ndarray, rows: slice | None = None) -> np.ndarray:
    """Each student's log-likelihood at each node, ``(n_students, n_nodes)`` (or the students
    ``rows`` of it): one sparse product ``S @ T`` with ``S[s, 2 j + y] = 1``."""
    table = np.empty((2 * model.n_items, x.shape[0]))
    for lo in range(0, model.n_items, TABLE_BLOCK):  # blocks of items that stay in cache
        items = np.arange(lo, min(lo + TABLE_BLOCK, model.n_items))
        table[2 * lo:2 * (lo + items.shape[0])] = logprob_table(model, x, items)
    S = sp.csr_matrix((np.ones(student.shape[0]), (student, 2 * item + correct.astype(np.int64))),
                      shape=(n_students, table.shape[0]))
    if rows is not None:
        S = S[rows]
    return np.asarray(S @ table)


def eap_fixed(model: ItemModel, student: np.ndarray, item: np.ndarray, correct: np.ndarray,
              n_students: int, *, n_points: int = 121, bound: float = 6.0
              ) -> tuple[np.ndarray, np.ndarray]:
    """EAP and posterior SD of each student on ``n_points`` nodes on ``[-bound, bound]`` with
    the ``N(0, sigma^2)`` prior (mirt's ``fscores``), each of shape ``(n_students,)``.

    Args:
        model: calibrated items.
        student: int array of shape ``(n_answers,)``, the student index of each answer.
        item: int array of shape ``(n_answers,)``, the item's position in ``model``.
        correct: array of shape ``(n_answers,)`` of 0/1 answers.
        n_students: number of students (one without answers gets the truncated prior's
            mean and SD).
        n_points: int, default=121: nodes.
        bound: float, default=6.0: grid half-width (logits, not prior SDs).
    """
    x, w = marginal_grid(model, n_points, bound)
    log_w = np.log(w)
    mean = np.empty(n_students)
    sd = np.empty(n_students)
    for lo in range(0, n_students, STUDENT_CHUNK):
        hi = min(n_students, lo + STUDENT_CHUNK)
        post = node_loglik(model, student, item, correct, n_students, x, slice(lo, hi))
        post += log_w
        post -= post.max(axis=1, keepdims=True)
        np.exp(post, out=post)
        post /= post.sum(axis=1, keepdims=True)
        m = post @ x
        mean[lo:hi] = m
        sd[lo:hi] = np.sqrt(np.maximum(post @ (x * x) - m * m, 0.0))
    return mean, sd


def marginal_loglik(model: ItemModel, student: np.ndarray, item: np.ndarray,
                    correct: np.ndarray, n_students: int, *, n_points: int = 61,
                    bound: float = 6.0, adaptive: bool = True) -> float:
    """Marginal log-likelihood ``sum_s log int L_s(t) dN(t; 0, sigma^2)``.

    ``adaptive=True``: per student, the sum over 161 nodes on +/- 8 prior SDs where the
    posterior is wide enough for it, else the trapezoid rule with ``n_points`` nodes over the
    posterior mean +/- 10 posterior SDs of ``L_s(t)`` times the normal density: accurate for
    narrow posteriors and any ``sigma`` (the rule's error falls like
    ``exp(-2 pi^2 (SD / step)^2)``).
    ``adaptive=False``: ``sum_s log sum_q w_q L_s(x_q)`` on :func:`marginal_grid` with
    half-width ``bound`` logits (R mirt's ``logLik`` with ``bound = 6``).
    """
    if adaptive:
        return _adaptive_loglik(model, np.asarray(student, dtype=np.int64),
                                np.asarray(item, dtype=np.int64), np.asarray(correct),
                                n_students, n_points)
    x, w = marginal_grid(model, n_points, bound)
    total = 0.0
    for lo in range(0, n_students, STUDENT_CHUNK):
        hi = min(n_students, lo + STUDENT_CHUNK)
        ll = node_loglik(model, student, item, correct, n_students, x, slice(lo, hi))
        total += float(logsumexp(ll + np.log(w), axis=1).sum())
    return total


def _local_pass(model: ItemModel, student: np.ndarray, item: np.ndarray, y: np.ndarray,
                counts: np.ndarray, center: np.ndarray, half: np.ndarray, n_points: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per student (answers sorted by student, ``counts`` of each): the log of
    ``int L_s(t) N(t; 0, sigma^2) dt`` by the trapezoid rule over ``center +/- half`` with
    ``n_points`` nodes, and the posterior mean and SD on that grid."""
    sigma = model.population_sd
    unit = np.linspace(-1.0, 1.0, n_points)
    trap = np.ones(n_points)
    trap[[0, -1]] = 0.5
    n = counts.shape[0]
    log_int, mean, sd = np.zeros(n), center.copy(), half / 10.0
    ends = np.cumsum(counts)
    lo = 0
    while lo < n:  # chunks of whole students, about ANSWER_CHUNK answers each
        hi = min(max(int(np.searchsorted(ends, ends[lo] - counts[lo] + ANSWER_CHUNK,
                                         "right")), lo + 1), n)
        first, last = ends[lo] - counts[lo], ends[hi - 1]
        who = np.flatnonzero(counts[lo:hi]) + lo
        if who.size:
            grid = center[who, None] + half[who, None] * unit[None, :]  # students x nodes
            local = np.searchsorted(who, student[first:last])
            j, yy = item[first:last], y[first:last]
            if model.model_type != "3pl":
                # log P = -softplus(-z), log(1 - P) = -softplus(z): one softplus per cell,
                # the sign folded into the slope (-z = (-a) (t - b) exactly), in place
                t = grid[local]
                t -= model.b[j, None]
                t *= np.where(yy == 1, -model.a[j], model.a[j])[:, None]
                ll = softplus_tail(t)
                np.maximum(t, 0.0, out=t)
                ll += t
                np.negative(ll, out=ll)
            else:
                z = model.a[j, None] * (grid[local] - model.b[j, None])
                c = model.c[j, None]
                p = np.clip(c + (1 - c) / (1 + np.exp(-z)), 1e-300, 1 - 1e-16)
                ll = np.where(yy[:, None] == 1, np.log(p), np.log1p(-p))
            starts = np.r_[0, np.cumsum(counts[who])[:-1]]
            logpost = np.add.reduceat(ll, starts, axis=0)
            logpost += -0.5 * (grid / sigma) ** 2 - math.log(sigma * math.sqrt(2 * math.pi))
            step = 2.0 * half[who] / (n_points - 1)
            log_int[who] = logsumexp(logpost, axis=1, b=trap[None, :]) + np.log(step)
            w = np.exp(logpost - logpost.max(axis=1, keepdims=True)) * trap
            w /= w.sum(axis=1, keepdims=True)
            m = np.einsum("sq,sq->s", w, grid)
            mean[who] = m
            sd[who] = np.sqrt(np.maximum(np.einsum("sq,sq->s", w, grid * grid) - m * m, 0.0))
        lo = hi
    return log_int, mean, sd


def _adaptive_loglik(model: ItemModel, student: np.ndarray, item: np.ndarray,
                     correct: np.ndarray, n_students: int, n_points: int) -> float:
    """A grid of 161 nodes over +/- 8 prior SDs first: a student whose posterior SD is at
    least two node steps and whose posterior does not reach the grid's ends keeps that sum
    (its error then falls like ``exp(-8 pi^2)``).  The others get two local passes: over the
    coarse mean +/- (10 SD + 2 steps) with 31 nodes (to locate the posterior), and over the
    refined mean +/- 10 refined SDs with ``n_points`` nodes (the integral)."""
    y = correct.astype(np.int8)
    if student.shape[0] and np.any(student[1:] < student[:-1]):
        order = np.argsort(student, kind="stable")
        student, item, y = student[order], item[order], y[order]
    counts = np.bincount(student, minlength=n_students)
    sigma = model.population_sd
    x = np.linspace(-8.0 * sigma, 8.0 * sigma, 161)  # the prior's mass beyond: 1e-15
    h0 = x[1] - x[0]
    # the trapezoid rule with the normal density itself (not weights normalised on the grid)
    log_w = np.log(h0) - 0.5 * (x / sigma) ** 2 - math.log(sigma * math.sqrt(2 * math.pi))
    log_w[[0, -1]] += math.log(0.5)
    log_int = np.zeros(n_students)
    mean, sd = np.zeros(n_students), np.zeros(n_students)
    narrow = np.zeros(n_students, dtype=bool)
    for lo in range(0, n_students, STUDENT_CHUNK):
        hi = min(n_students, lo + STUDENT_CHUNK)
        post = node_loglik(model, student, item, y, n_students, x, slice(lo, hi)) + log_w
        log_int[lo:hi] = logsumexp(post, axis=1)
        post = np.exp(post - log_int[lo:hi, None])
        m = post @ x
        mean[lo:hi] = m
        sd[lo:hi] = np.sqrt(np.maximum(post @ (x * x) - m * m, 0.0))
        narrow[lo:hi] = (sd[lo:hi] < 2.0 * h0) | (np.maximum(post[:, 0], post[:, -1]) > 1e-8)
    narrow &= counts > 0
    if narrow.any():
        keep = narrow[student]
        sub_counts = counts[narrow]
        local = np.repeat(np.arange(sub_counts.shape[0]), sub_counts)
        s_item, s_y = item[keep], y[keep]
        _, m1, s1 = _local_pass(model, local, s_item, s_y, sub_counts, mean[narrow],
                                10.0 * sd[narrow] + 2.0 * h0, 31)
        refined, _, _ = _local_pass(model, local, s_item, s_y, sub_counts, m1,
                                    10.0 * np.maximum(s1, 1e-8), n_points)
        log_int[narrow] = refined
    return float(log_int[counts > 0].sum())


@dataclass(frozen=True)
class FitData:
    """Answers on the known, answered items of a bank, grouped by student.

    Attributes:
        model: the bank restricted to the answered items (positions ``0..n_items-1``).
        student: int64 array of shape ``(n_answers,)``, student index, ascending.
        item: int64 array of shape ``(n_answers,)``, item position in :attr:`model`.
        correct: int8 array of shape ``(n_answers,)``, 0/1.
        student_ids: ids of the students ``0..n_students-1`` (those with an answer).
        n_unknown_answers: answers dropped because the model does not know their item.
        n_items_unanswered: items of the bank that nobody answered (left out).
        complete: whether every student answered every item.
        theta: EAP of each student (:func:`eap_fixed`), shape ``(n_students,)``.
        theta_se: posterior SD of each student, shape ``(n_students,)``.
    """

    model: ItemModel
    student: np.ndarray
    item: np.ndarray
    correct: np.ndarray
    student_ids: tuple[str, ...]
    n_unknown_answers: int
    n_items_unanswered: int
    complete: bool
    theta: np.ndarray
    theta_se: np.ndarray

    @property
    def n_students(self) -> int:
        return len(self.student_ids)

    @property
    def n_items(self) -> int:
        return self.model.n_items

    @property
    def n_answers(self) -> int:
        return int(self.student.shape[0])

    @property
    def density(self) -> float:
        """Answers over student x item cells."""
        return self.n_answers / max(self.n_students * self.n_items, 1)

    def answers_per_item(self) -> np.ndarray:
        return np.bincount(self.item, minlength=self.n_items)

    def answers_per_student(self) -> np.ndarray:
        return np.bincount(self.student, minlength=self.n_students)

    @property
    def dense(self) -> np.ndarray:
        """The students x items 0/1 matrix (int8) of a complete design.

        Raises:
            ValueError: for an incomplete design (it is never built for a sparse log).
        """
        if not self.complete:
            raise ValueError("the design is incomplete: no dense students x items matrix")
        X = np.empty((self.n_students, self.n_items), dtype=np.int8)
        X[self.student, self.item] = self.correct
        return X


def subset_model(model: ItemModel, keep: np.ndarray) -> ItemModel:
    """The bank restricted to the item positions ``keep`` (in order; caches reset)."""
    keep = np.asarray(keep, dtype=np.int64)
    return replace(model, item_ids=tuple(model.item_ids[k] for k in keep.tolist()),
                   a=model.a[keep], b=model.b[keep], c=model.c[keep], se_a=model.se_a[keep],
                   se_b=model.se_b[keep], se_c=model.se_c[keep], _index=None, _cache={})


def align(model: ItemModel, responses: Responses, *, n_points: int = 121,
          bound: float = 6.0, grid: str = "prior_sd") -> FitData:
    """Line up ``responses`` with ``model`` (see the module docstring) and score the students
    by EAP with ``n_points`` nodes over ``bound`` prior SDs (``grid="prior_sd"``:
    :func:`irt.engine.ability.eap_batch`) or ``bound`` logits (``grid="mirt"``:
    :func:`eap_fixed`).

    Raises:
        ValueError: if no answer falls on an item the model knows.
    """
    pos = model.positions(list(responses.item_ids))[responses.item]
    known = pos >= 0
    if not known.any():
        raise ValueError("no answer is on an item of the model")
    counts = np.bincount(pos[known], minlength=model.n_items)
    answered = np.flatnonzero(counts > 0)
    new_item = np.full(model.n_items, -1, dtype=np.int64)
    new_item[answered] = np.arange(answered.shape[0])
    sub = subset_model(model, answered) if answered.shape[0] < model.n_items else replace(
        model, _index=None, _cache={})
    raw_student = responses.student[known].astype(np.int64)
    used, student = np.unique(raw_student, return_inverse=True)
    item = new_item[pos[known]]
    correct = responses.correct[known].astype(np.int8)
    order = np.lexsort((item, student))
    student, item, correct = student[order], item[order], correct[order]
    twice = (student[1:] == student[:-1]) & (item[1:] == item[:-1])
    if twice.any():
        k = int(np.flatnonzero(twice)[0])
        raise ValueError(f"student {responses.student_ids[used[student[k]]]!r} answered item "
                         f"{sub.item_ids[item[k]]!r} more than once (keep the first attempt: "
                         "irt.engine.preprocess.prepare_rows)")
    n_students = used.shape[0]
    complete = student.shape[0] == n_students * sub.n_items
    half_width(sub, bound, grid)  # checks the convention's name
    if grid == "mirt":
        theta, se = eap_fixed(sub, student, item, correct, n_students, n_points=n_points,
                              bound=bound)
    else:
        theta, se = eap_batch(sub, student, item, correct, n_students, n_points=n_points,
                              bound=bound)
    return FitData(model=sub, student=student, item=item, correct=correct,
                   student_ids=tuple(responses.student_ids[k] for k in used.tolist()),
                   n_unknown_answers=int(np.count_nonzero(~known)),
                   n_items_unanswered=int(model.n_items - answered.shape[0]), complete=complete,
                   theta=theta, theta_se=se)
