"""Data validation and the quality gate ``prepare`` runs before publishing.

numpy only, no I/O.  Two checks, both with thresholds from configuration:

* :func:`check_data` - is the prepared data plausible?  Enough answers, not too
  many invalid rows, a row count in line with the previous run, not too many of
  the serving model's items lost.  A violation stops the run before fitting.
* :func:`gate` - is the new model at least as good as the one serving?  Both
  predict the same held-out answers, each from the same student's earlier
  answers only (the way ``predict`` is used; :func:`irt.engine.evaluate.online_predictions`),
  and the new one must not be worse beyond a tolerance in AUC and log-loss.

The hold-out (:func:`holdout_mask`): a deterministic sample of students (by a
hash of the student id, so a re-run holds out the same students), and of each
sampled student the latest ``holdout_last`` share of their answers (at least
one, never all).  The new model is calibrated without those answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from irt.engine import defaults
from irt.engine.evaluate import metrics, online_predictions
from irt.engine.hashing import unit_hash
from irt.engine.model import ItemModel
from irt.engine.preprocess import INVALID_REASONS


@dataclass(frozen=True)
class DataThresholds:
    """Limits of :func:`check_data`.

    Attributes:
        min_answers: fewest kept answers worth calibrating on.
        max_invalid_share: largest share of input rows dropped as malformed
            (:data:`irt.engine.preprocess.INVALID_REASONS`).
        min_row_ratio: input rows must be at least this share of the previous
            run's (a sudden drop means a broken export or a wrong window).
        max_row_ratio: and at most this multiple of it.
        max_items_lost: largest share of the serving model's items that may be
            missing from the new model.
    """

    min_answers: int = 100
    max_invalid_share: float = 0.05
    min_row_ratio: float = 0.5
    max_row_ratio: float = 10.0
    max_items_lost: float = 0.2


def check_data(report: dict[str, Any], thresholds: DataThresholds,
               previous: dict[str, Any] | None = None) -> list[str]:
    """Violations of the data thresholds; empty when the data is acceptable.

    Args:
        report: this run's preparation report: ``rows_in``, ``rows_out``,
            ``dropped`` (``{reason: rows}``).
        thresholds: the limits.
        previous: the serving model's preparation report, if any (row counts
            are compared with it).

    Returns:
        One sentence per violated rule, naming the figure and the limit.
    """
    out: list[str] = []
    rows_in = int(report["rows_in"])
    rows_out = int(report["rows_out"])
    if rows_out < thresholds.min_answers:
        out.append(f"only {rows_out} answers left after preparation "
                   f"(minimum {thresholds.min_answers})")
    invalid = sum(int(report["dropped"].get(r, 0)) for r in INVALID_REASONS)
    if rows_in and invalid / rows_in > thresholds.max_invalid_share:
        detail = ", ".join(f"{r} {report['dropped'][r]}" for r in INVALID_REASONS
                           if report["dropped"].get(r))
        out.append(f"{invalid / rows_in:.1%} of {rows_in} rows are malformed ({detail}); "
                   f"maximum {thresholds.max_invalid_share:.1%}")
    if previous and int(previous.get("rows_in", 0)) > 0:
        ratio = rows_in / int(previous["rows_in"])
        if ratio < thresholds.min_row_ratio or ratio > thresholds.max_row_ratio:
            out.append(f"{rows_in} input rows against {previous['rows_in']} in the previous "
                       f"run (ratio {ratio:.2f}, allowed {thresholds.min_row_ratio}"
                       f"-{thresholds.max_row_ratio})")
    return out


def items_lost(serving: ItemModel | None, new: ItemModel, thresholds: DataThresholds) -> list[str]:
    """Violation when too many of the serving model's items are not in the new one."""
    if serving is None or not serving.item_ids:
        return []
    lost = len(set(serving.item_ids) - set(new.item_ids))
    share = lost / len(serving.item_ids)
    if share > thresholds.max_items_lost:
        return [f"{lost} of the serving model's {len(serving.item_ids)} items ({share:.1%}) are "
                f"missing from the new model; maximum {thresholds.max_items_lost:.1%}"]
    return []


@dataclass(frozen=True)
class GateConfig:
    """Hold-out and tolerances of the quality gate.

    Attributes:
        holdout_students: share of students sampled for the hold-out.
        holdout_min_students: at least this many students are sampled (those of lowest
            hash beyond the share, among the students with two answers or more): a log of a
            few dozen students may have none below the share, and the gate then had nothing
            to judge and refused every refresh (at most ``holdout_max_students``).
        holdout_max_students: cap on sampled students (bounds the gate's cost).
        holdout_last: share of each sampled student's latest answers held out.
        max_auc_drop: the new AUC may be at most this much below the serving one.
        max_logloss_rise: the new log-loss may be at most this much above.
        min_auc: the new model's AUC must reach this even when nothing serves.
        max_ece_over_plain: a model with learning-aware options may have a calibration error
            (ECE) at most this much above the plain 2PL challenger's (fitted on the same
            training answers, scored on the same held-out answers); default
            :data:`irt.engine.defaults.DEFAULTS`' ``max_ece_over_plain``.
    """

    holdout_students: float = 0.1
    holdout_min_students: int = 5
    holdout_max_students: int = 5000
    holdout_last: float = 0.2
    max_auc_drop: float = 0.005
    max_logloss_rise: float = 0.005
    min_auc: float = 0.55
    max_ece_over_plain: float = field(
        default_factory=lambda: defaults.DEFAULTS.max_ece_over_plain)

    def __post_init__(self) -> None:
        if not 0 < self.holdout_students <= 1 or not 0 < self.holdout_last < 1:
            raise ValueError("holdout_students must be in (0, 1] and holdout_last in (0, 1)")
        if self.holdout_max_students < 1 or self.holdout_min_students < 1:
            raise ValueError("holdout_min_students and holdout_max_students must be >= 1")


def holdout_mask(student: np.ndarray, student_ids: Sequence[str], order_key: np.ndarray,
                 config: GateConfig) -> np.ndarray:
    """Which answers to hold out for the gate.

    Args:
        student: student index of each answer.
        student_ids: external id of each student index (hashed for the sample).
        order_key: answer time (or any order); the latest answers are held out.
        config: hold-out sizes.

    Returns:
        Boolean mask over the answers: the latest ``ceil(holdout_last * n)``
        answers (at least 1, at most ``n - 1``) of each sampled student with at
        least two answers.  The sample: the students whose id hashes below
        ``holdout_students``, at least ``holdout_min_students`` (the lowest hashes) and at
        most ``holdout_max_students``.  Deterministic: it depends on the ids, not on a seed.
    """
    student = np.asarray(student, dtype=np.int64)
    n_students = len(student_ids)
    mask = np.zeros(student.shape[0], dtype=bool)
    if not n_students:
        return mask
    h = np.fromiter((unit_hash(s) for s in student_ids), dtype=float, count=n_students)
    counts = np.bincount(student, minlength=n_students)
    two = counts >= 2
    eligible = np.flatnonzero((h < config.holdout_students) & two)
    at_least = min(config.holdout_min_students, config.holdout_max_students)
    if eligible.size < at_least:  # a small log: the students of lowest hash
        pool = np.flatnonzero(two)
        eligible = pool[np.argsort(h[pool], kind="stable")[:at_least]]
    if eligible.size > config.holdout_max_students:
        eligible = eligible[np.argsort(h[eligible], kind="stable")[:config.holdout_max_students]]
    chosen = np.zeros(n_students, dtype=bool)
    chosen[eligible] = True
    rows = np.flatnonzero(chosen[student])
    if not rows.size:
        return mask
    order = rows[np.lexsort((np.asarray(order_key)[rows], student[rows]))]
    s_sorted = student[order]
    starts = np.r_[0, np.flatnonzero(s_sorted[1:] != s_sorted[:-1]) + 1]
    lengths = np.diff(np.r_[starts, s_sorted.size])
    take = np.clip(np.ceil(config.holdout_last * lengths).astype(np.int64), 1, lengths - 1)
    rank = np.arange(s_sorted.size) - np.repeat(starts, lengths)
    mask[order[rank >= np.repeat(lengths - take, lengths)]] = True
    return mask


@dataclass(frozen=True)
class GateResult:
    """Outcome of :func:`gate`.

    Attributes:
        passed: publish or not.
        reasons: why it failed (empty when it passed).
        new: metrics of the new model on the held-out answers.
        serving: the same for the serving model (``None`` when nothing serves).
        n_holdout_answers: held-out answers scored.
        n_holdout_students: students they belong to.
        plain: the same for the plain 2PL challenger (``None`` when the new model is plain).
        against_plain: the reasons (among ``reasons``) that compare the new model with the
            plain challenger: the new model lost to it.
    """

    passed: bool
    reasons: list[str]
    new: dict[str, float]
    serving: dict[str, float] | None
    n_holdout_answers: int
    n_holdout_students: int
    plain: dict[str, float] | None = None
    against_plain: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN as ``None``)."""
        def clean(d: dict[str, float] | None) -> dict[str, float | None] | None:
            if d is None:
                return None
            return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                    for k, v in d.items()}
        out = asdict(self)
        out["new"] = clean(self.new)
        out["serving"] = clean(self.serving)
        out["plain"] = clean(self.plain)
        return out


@dataclass(frozen=True)
class Replay:
    """One model's online replay of the gate's held-out students (:func:`holdout_replay`).

    Attributes:
        order: indices into the run's answers: every answer of the students with a held-out
            answer, by student, then time.
        p: each of those answers' probability, predicted from the same student's earlier
            answers only, aligned with ``order``.
    """

    order: np.ndarray
    p: np.ndarray

    def scored(self, correct: np.ndarray, held_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(correct, P(correct))`` of the held-out answers, in the replay's order."""
        keep = held_out[self.order]
        return np.asarray(correct)[self.order][keep], self.p[keep]


def holdout_replay(model: ItemModel, student: np.ndarray, item_ids: Sequence[str],
                   correct: np.ndarray, order_key: np.ndarray, held_out: np.ndarray) -> Replay:
    """Replay every answer of the students with a held-out answer in time order, each
    predicted online from that student's earlier answers only (held-out or not).

    The gate scores the held-out answers of this replay (:func:`holdout_scores`); a refresh
    keeps the new model's to reuse it (the slices of :mod:`irt.refresh.monitoring`, the
    report's reliability diagram) instead of replaying the same answers again.

    Args:
        model: the model to replay.
        student: student index of each answer (all answers of the run).
        item_ids: item id of each answer.
        correct: 0/1 of each answer.
        order_key: answer time.
        held_out: mask from :func:`holdout_mask`.

    Returns:
        The :class:`Replay`.
    """
    student = np.asarray(student, dtype=np.int64)
    sampled = np.zeros(int(student.max()) + 1 if student.size else 0, dtype=bool)
    sampled[student[held_out]] = True
    rows = np.flatnonzero(sampled[student])
    order = rows[np.lexsort((np.asarray(order_key)[rows], student[rows]))]
    ids = np.asarray(item_ids, dtype=object)[order]
    pos = model.positions(list(ids))
    return Replay(order, online_predictions(model, student[order], pos,
                                            np.asarray(correct)[order]))


def holdout_scores(model: ItemModel, student: np.ndarray, item_ids: Sequence[str],
                   correct: np.ndarray, order_key: np.ndarray, held_out: np.ndarray,
                   replay: Replay | None = None) -> dict[str, float]:
    """Metrics of ``model`` on the held-out answers, each predicted online.

    Every answer of the sampled students is replayed in time order; a held-out
    answer is predicted from that student's earlier answers only (held-out or
    not), and only held-out answers are scored.

    Args:
        model: the model to score.
        student: student index of each answer (all answers of the run).
        item_ids: item id of each answer.
        correct: 0/1 of each answer.
        order_key: answer time.
        held_out: mask from :func:`holdout_mask`.
        replay: ``model``'s :func:`holdout_replay` of these answers, if already made.

    Returns:
        :func:`irt.engine.evaluate.metrics` of the held-out answers.
    """
    if replay is None:
        replay = holdout_replay(model, student, item_ids, correct, order_key, held_out)
    return metrics(*replay.scored(correct, held_out))


def gate(new: dict[str, float], serving: dict[str, float] | None, config: GateConfig,
         n_answers: int, n_students: int, plain: dict[str, float] | None = None
         ) -> GateResult:
    """Compare held-out metrics of the new model with the serving model's and, for a model
    with learning-aware options, with the plain 2PL challenger's.

    Rules: ``new.auc >= config.min_auc``; and, against each of the serving model (when one
    serves) and the plain challenger (``plain``, when given),
    ``new.auc >= other.auc - max_auc_drop`` and
    ``new.log_loss <= other.log_loss + max_logloss_rise``; against the plain challenger also
    ``new.ece <= plain.ece + max_ece_over_plain``.  With no held-out answer the gate fails
    (nothing was validated).
    """
    reasons: list[str] = []
    against_plain: list[str] = []
    if n_answers == 0:
        reasons.append("no held-out answers to validate the model on")
    else:
        if math.isnan(new["auc"]):  # one class only: nothing to rank
            reasons.append("AUC undefined: the held-out answers are all right or all wrong "
                           "(the model cannot be validated on them)")
        elif not new["auc"] >= config.min_auc:
            reasons.append(f"AUC {new['auc']:.4f} below the floor {config.min_auc}")
        if serving is not None:
            if not new["auc"] >= serving["auc"] - config.max_auc_drop:
                reasons.append(f"AUC {new['auc']:.4f} against {serving['auc']:.4f} serving "
                               f"(allowed drop {config.max_auc_drop})")
            if not new["log_loss"] <= serving["log_loss"] + config.max_logloss_rise:
                reasons.append(f"log-loss {new['log_loss']:.4f} against "
                               f"{serving['log_loss']:.4f} serving "
                               f"(allowed rise {config.max_logloss_rise})")
        before = len(reasons)
        if plain is not None:
            if not new["auc"] >= plain["auc"] - config.max_auc_drop:
                reasons.append(f"AUC {new['auc']:.4f} against {plain['auc']:.4f} for the plain "
                               f"2PL challenger (allowed drop {config.max_auc_drop})")
            if not new["log_loss"] <= plain["log_loss"] + config.max_logloss_rise:
                reasons.append(f"log-loss {new['log_loss']:.4f} against "
                               f"{plain['log_loss']:.4f} for the plain 2PL challenger "
                               f"(allowed rise {config.max_logloss_rise})")
            if not new["ece"] <= plain["ece"] + config.max_ece_over_plain:
                reasons.append(f"calibration error (ECE) {new['ece']:.4f} against "
                               f"{plain['ece']:.4f} for the plain 2PL challenger (allowed "
                               f"rise {config.max_ece_over_plain})")
        against_plain = reasons[before:]
    return GateResult(passed=not reasons, reasons=reasons, new=new, serving=serving,
                      n_holdout_answers=n_answers, n_holdout_students=n_students, plain=plain,
                      against_plain=against_plain)
