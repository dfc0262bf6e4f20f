"""Online evaluation: predict each answer from only the student's earlier answers.

This is how ``predict`` is used: the LMS sends what the student has answered so far and
asks for the probability of the next answer.  For every test student, in answer order,
answer ``t`` is predicted from answers ``0..t-1`` alone::

    theta_t = E[theta | y_0..y_{t-1}]        (EAP, prior N(0, sigma^2))
    p_t     = P_{j_t}(theta_t)               (the plug-in probability predict returns)

so no prediction ever sees its own answer or a later one.  All predictions of a student
are computed at once from running sums of per-node log-likelihoods (O(answers x nodes)).
The grid is finer than ``predict``'s default (401 nodes on +/- 6 sigma, step 0.03) because
long answer sequences give narrow posteriors; ``predict`` reaches the same EAP through its
local re-integration.  Items the model does not know (new, or left out of calibration)
are predicted with the bank's typical item (median ``a``, median ``b``, ``c = 0``) and do
not update the ability, as in ``predict``.

Metrics: AUC (Mann-Whitney, ties counted half), log-loss (probabilities clipped to
``[1e-15, 1 - 1e-15]``), Brier score, and expected calibration error (ECE: ten equal-width
probability bins, ``sum_k n_k / n * |mean(p)_k - mean(y)_k|``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from irt.engine import learning
from irt.engine.model import ItemModel
from irt.engine.online import plain_online_predictions


@dataclass(frozen=True)
class Evaluation:
    """Online prediction quality on a test log.

    Attributes:
        n_predictions: answers predicted.
        n_students: test students.
        n_unknown_item_predictions: predictions made with the typical item.
        auc: area under the ROC curve.
        log_loss: mean negative log-likelihood of the answers.
        brier: mean squared error of the probabilities.
        ece: expected calibration error (10 bins).
        mean_probability: mean predicted probability.
        mean_correct: observed proportion correct.
        seconds: wall time of the predictions (metrics excluded).
        us_per_prediction: ``seconds`` per prediction, in microseconds.
    """

    n_predictions: int
    n_students: int
    n_unknown_item_predictions: int
    auc: float
    log_loss: float
    brier: float
    ece: float
    mean_probability: float
    mean_correct: float
    seconds: float
    us_per_prediction: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney U) formula, ties halved."""
    y = np.asarray(y, dtype=bool)
    p = np.asarray(p, dtype=float)
    n_pos = int(y.sum())
    n_neg = y.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(p.shape[0])
    sorted_p = p[order]
    # average ranks over ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_p)) + 1]
    ends = np.r_[starts[1:], p.shape[0]]
    avg = (starts + ends + 1) / 2.0  # 1-based average rank of each tie group
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-width probability bins."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    k = np.minimum((p * bins).astype(int), bins - 1)
    n = np.bincount(k, minlength=bins)
    sum_p = np.bincount(k, weights=p, minlength=bins)
    sum_y = np.bincount(k, weights=y, minlength=bins)
    used = n > 0
    return float(np.sum(np.abs(sum_p[used] - sum_y[used])) / max(p.shape[0], 1))


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, log-loss, Brier score, ECE and means of answers ``y`` and probabilities ``p``."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    pc = np.clip(p, 1e-15, 1 - 1e-15)
    return {
        "auc": auc(y, p),
        "log_loss": float(-np.mean(y * np.log(pc) + (1 - y) * np.log1p(-pc))),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": calibration_error(y, p),
        "mean_probability": float(p.mean()) if p.size else float("nan"),
        "mean_correct": float(y.mean()) if y.size else float("nan"),
    }


def online_predictions(model: ItemModel, student: np.ndarray, item_pos: np.ndarray,
                       correct: np.ndarray, *, n_points: int = 401, bound: float = 6.0,
                       chunk_answers: int | None = None) -> np.ndarray:
    """P(correct) of every answer from the same student's earlier answers only, by the
    model's own protocol: :func:`irt.engine.learning.online_predictions` for a model with
    learning-aware options (``options["learning"]``; ``n_points`` and ``bound`` are then the
    model's), :func:`plain_online_predictions` otherwise.  Same arguments and result
    (``chunk_answers`` ``None``: each protocol's default)."""
    chunk = {} if chunk_answers is None else {"chunk_answers": chunk_answers}
    if model.options.get("learning"):
        return learning.online_predictions(model, student, item_pos, correct, **chunk)
    return plain_online_predictions(model, student, item_pos, correct, n_points=n_points,
                                    bound=bound, **chunk)


def evaluate(model: ItemModel, student: np.ndarray, item_ids: list[str] | np.ndarray,
             correct: np.ndarray, **options: int) -> tuple[Evaluation, np.ndarray]:
    """Online predictions and their metrics for a test log in answer order.

    Args:
        model: calibrated items.
        student: student index of each answer (contiguous per student, in answer order).
        item_ids: external item id of each answer.
        correct: 0/1 answers.
        **options: passed to :func:`online_predictions`.

    Returns:
        ``(evaluation, probabilities)``.
    """
    pos = model.positions(list(item_ids))
    start = time.perf_counter()
    p = online_predictions(model, student, pos, correct, **options)
    seconds = time.perf_counter() - start
    m = metrics(correct, p)
    n = int(p.shape[0])
    return Evaluation(
        n_predictions=n, n_students=int(np.unique(student).shape[0]),
        n_unknown_item_predictions=int(np.count_nonzero(pos < 0)),
        auc=m["auc"], log_loss=m["log_loss"], brier=m["brier"], ece=m["ece"],
        mean_probability=m["mean_probability"], mean_correct=m["mean_correct"],
        seconds=seconds, us_per_prediction=seconds / max(n, 1) * 1e6,
    ), p
