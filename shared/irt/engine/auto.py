"""``auto``: choosing the learning-aware options on held-out *training* students.

numpy only; used by ``prepare`` (``MODEL_OPTIONS=auto``) and ``irt evaluate --options auto``,
never by ``predict``.

Protocol.  The training students are split by a stable hash of their id (MD5, salted with
``"auto-options:"`` so the split is independent of the quality gate's sample) into a fit part
and a validation part (``validation_share`` of the students, default 20 %).  On the fit part
the plain 2PL is calibrated with the run's settings, then each candidate option set on top of
it (:func:`irt.engine.learning_fit.fit_learning`; ``recency`` is not calibrated, so the
recency variants reuse the fits).  Every answer of every validation student is then predicted
online - from that student's earlier answers only, as ``predict`` is used - by the plain model
and by each candidate.  The test students of an evaluation are never seen.

Small logs.  When the hold-out split would validate on fewer than ``all_folds_below`` (200)
students, a real gain can stay within its noise and the calibration is fitted on few
students, so every training student is validated instead: the students fall into
:func:`irt.engine.defaults.fold_count` folds (5; :func:`student_folds`, the same stable hash,
fold 0 being the hold-out split's students), each fold's answers are predicted online by the
models fitted on the other folds, and the rule and the calibration below read the pooled
predictions.  It costs one set of fits per fold, on a log small enough to afford it (under
about 1,000 training students).  On the Spanish log (30 training students) the hold-out split
validated on 6; on 42 synthetic logs of 15-1,000 students (``benchmarks/auto_sweep.py
--scale 0.5``) the folds cut the logs missing a target of issue #13 from 8 to 2, lowered
``auto``'s TEST log-loss on 16 and raised it on none (benchmarks README).

Rule (``never lose to plain``).  For a candidate ``c`` and validation student ``s`` let
``d_s = sum_i [log p_c(y_i) - log p_plain(y_i)]`` over the student's answers: the paired
log-likelihood gain.  With ``N`` validation answers and ``S`` students::

    gain  = sum_s d_s / N                              (per answer)
    noise = sqrt(S / (S - 1) * sum_s (d_s - mean d)^2) / N   (its standard error)

Calibration.  A learning-aware model is calibrated in-sample, and on a log of sparse items
its plug-in probabilities are over-confident on new students (on the five AKT folds of
ASSISTments 2009, ``pfa``'s validation ECE was 0.028-0.036 against plain's 0.012-0.020).
So each candidate's validation predictions get a logistic calibration ``p = logistic(c_0 +
c_1 z)`` of their logit ``z`` (:func:`fit_calibration`), and the candidate is judged on
calibrated predictions: cross-fitted (the validation students in two halves, each half's predictions
calibrated by the other half's fit), so that no prediction is scored by a calibration fitted
on its own answer.  The chosen set is served with the calibration fitted on all validation
students (``options.learning.calibration`` of the artifact); the plain model is never
recalibrated (it is the baseline, served as R mirt would fit it).

A candidate *wins* when ``gain > z * noise``, its AUC is not below plain's, and its
calibration error is at most plain's + ``max_ece_over_plain`` (0.01).  ``z`` is ``noise_z``
(default 2) standard errors of a normal, at the same one-sided level in Student's t with
``S - 1`` degrees of freedom (:func:`noise_factor`): with a few validation students the
standard error is itself uncertain (``z`` = 3.3 at ``S`` = 4, 2.3 at 11, 2.09 at 30, 2.01
from 300).  Among the winners the largest gain is chosen; with no winner the plain model is
kept.  So ``auto`` never chooses an option set that lost to plain on validation, nor one whose
edge is within the noise of the validation sample.  The choice, the rule and the whole validation
table are recorded (:meth:`OptionChoice.to_dict`) in the model artifact
(``fit["option_selection"]``) and in ``prepare``'s ``report.json``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from irt.engine import defaults
from irt.engine.calibrate import FitConfig, fit
from irt.engine.defaults import fold_count
from irt.engine.evaluate import metrics, online_predictions
from irt.engine.hashing import unit_hash
from irt.engine.learning import CALIBRATION_INTERCEPT, CALIBRATION_SLOPE, IDENTITY
from irt.engine.learning_fit import (
    LearningConfig,
    LearningFit,
    base_for_options,
    fit_learning,
    with_calibration,
    with_recency,
)
from irt.engine.model import ItemModel, logistic
from irt.engine.responses import Responses

#: The option sets ``auto`` tries when the log has an item -> skill map (plain first).
CANDIDATES: tuple[tuple[str, ...], ...] = (
    (), ("recency",), ("skills",), ("pfa",), ("skills", "pfa"), ("recency", "skills", "pfa"))
#: ... and without one (``skills`` and ``pfa`` need the map).
CANDIDATES_WITHOUT_SKILLS: tuple[tuple[str, ...], ...] = ((), ("recency",))
_SALT = "auto-options:"


@dataclass(frozen=True)
class AutoConfig:
    """Settings of the option choice; a field left out takes its value from
    :data:`irt.engine.defaults.DEFAULTS` (read when the config is made).

    Attributes:
        validation_share: share of the training students held out for validation.
        noise_z: a candidate must beat plain by more than this many standard errors of its
            paired per-student log-likelihood gain (a normal's; with ``S`` validation
            students, the t quantile of the same level, :func:`noise_factor`).
        max_ece_over_plain: a candidate whose validation calibration error exceeds plain's
            by more than this loses.
        min_validation_students: with fewer validation students nothing is tried and the
            plain model is kept (the noise cannot be estimated).
        all_folds_below: when the hold-out split has fewer validation students than this,
            every training student is validated, in
            :func:`irt.engine.defaults.fold_count` folds
            (:func:`student_folds`): each fold's answers are predicted by the models fitted
            on the other folds.
    """

    validation_share: float = field(
        default_factory=lambda: defaults.DEFAULTS.auto_validation_share)
    noise_z: float = field(default_factory=lambda: defaults.DEFAULTS.auto_noise_z)
    max_ece_over_plain: float = field(
        default_factory=lambda: defaults.DEFAULTS.max_ece_over_plain)
    min_validation_students: int = 3
    all_folds_below: int = field(
        default_factory=lambda: defaults.DEFAULTS.auto_all_folds_below)

    def __post_init__(self) -> None:
        if not 0.0 < self.validation_share < 1.0:
            raise ValueError("validation_share must be in (0, 1)")
        if self.all_folds_below < 0:
            raise ValueError("all_folds_below must be at least 0")
        if self.noise_z < 0 or self.max_ece_over_plain < 0:
            raise ValueError("noise_z and max_ece_over_plain must be >= 0")
        if self.min_validation_students < 2:
            raise ValueError("min_validation_students must be at least 2")


@dataclass
class OptionChoice:
    """Outcome of :func:`choose_options`.

    Attributes:
        options: the chosen option set (``()``: the plain model).
        table: one row per candidate (plain first): its options, validation ``auc``,
            ``log_loss``, ``ece``, ``gain`` and ``noise`` (per answer, against plain),
            ``em_converged`` and ``verdict`` (``chosen``, ``won``, or why it lost).
        n_fit_students, n_validation_students, n_validation_answers: the split's sizes
            (with several folds, ``n_fit_students`` is the students of the fits, every
            training student, each fit holding out one fold).
        seconds: wall time of the choice.
        config: the rule's settings.
        noise_factor: the standard errors a gain had to exceed (:func:`noise_factor`;
            ``None`` when no option set was tried).
        n_folds: the folds validated: 1 (the hold-out split) or
            :func:`irt.engine.defaults.fold_count`'s (a small log, see
            :attr:`AutoConfig.all_folds_below`).
    """

    options: tuple[str, ...]
    table: list[dict[str, Any]]
    n_fit_students: int
    n_validation_students: int
    n_validation_answers: int
    seconds: float
    config: AutoConfig = field(default_factory=AutoConfig)
    noise_factor: float | None = None
    n_folds: int = 1

    @property
    def calibration(self) -> tuple[float, float]:
        """``(c_0, c_1)`` of the chosen set (fitted on every validation student), the identity
        for the plain model."""
        for row in self.table:
            if row.get("verdict") == "chosen" and "calibration" in row:
                return row["calibration"]["intercept"], row["calibration"]["slope"]
        return IDENTITY

    def attach(self, model: ItemModel) -> ItemModel:
        """``model`` (the chosen set's fit, or the plain one) as served for this choice: with
        the chosen set's calibration and this record in ``fit["option_selection"]``."""
        if self.calibration != IDENTITY:
            model = with_calibration(model, self.calibration)
        return replace(model, fit={**model.fit, "option_selection": self.to_dict()},
                       _index=None, _cache={})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (the artifact's ``fit["option_selection"]``)."""
        return {"method": "auto", "chosen": list(self.options),
                "rule": (f"largest per-answer log-likelihood gain over plain among the option "
                         f"sets with gain > z x its standard error over validation students "
                         f"(z: {self.config.noise_z:g} standard errors of a normal, at the same "
                         f"one-sided level in Student's t with students - 1 degrees of "
                         f"freedom), AUC >= plain's and ECE <= plain's + "
                         f"{self.config.max_ece_over_plain:g}; else plain"),
                "noise_factor": None if self.noise_factor is None or not math.isfinite(
                    self.noise_factor) else round(self.noise_factor, 4),
                "validation_share": self.config.validation_share,
                "n_folds": self.n_folds,
                "n_fit_students": self.n_fit_students,
                "n_validation_students": self.n_validation_students,
                "n_validation_answers": self.n_validation_answers,
                "seconds": round(self.seconds, 3), "table": self.table}


def _student_hashes(student_ids: Sequence[str]) -> np.ndarray:
    """The stable salted hash of each student id, in [0, 1) (the same in every run, on every
    machine): the split and the folds both read it."""
    return np.fromiter((unit_hash(_SALT + str(s)) for s in student_ids), dtype=float,
                       count=len(student_ids))


def _folds(hashes: np.ndarray, n_folds: int) -> np.ndarray:
    return np.minimum((hashes * n_folds).astype(np.int64), n_folds - 1)


def validation_students(student_ids: Sequence[str], share: float) -> np.ndarray:
    """Whether each student is a validation student: a stable hash of the id (the same split
    in every run, on every machine) below ``share``."""
    return _student_hashes(student_ids) < share


def student_folds(student_ids: Sequence[str], n_folds: int) -> np.ndarray:
    """Each student's fold, ``floor(n_folds h)`` of the stable hash ``h`` of
    :func:`validation_students`: the same folds in every run, on every machine."""
    return _folds(_student_hashes(student_ids), n_folds)


def noise_factor(noise_z: float, n_students: int) -> float:
    """How many standard errors a gain over ``n_students`` validation students must exceed:
    the quantile of Student's t with ``n_students - 1`` degrees of freedom at the one-sided
    level of ``noise_z`` standard errors of a normal (``Phi(2)`` = 0.977 for 2); ``noise_z``
    itself for an infinite sample."""
    from scipy.stats import norm, t  # prepare and the CLI only; predict never imports this

    if n_students < 2:
        return math.inf
    return float(t.ppf(norm.cdf(noise_z), n_students - 1))


def _gain(ll_c: np.ndarray, ll_p: np.ndarray, student: np.ndarray) -> tuple[float, float]:
    """Per-answer paired log-likelihood gain and its standard error over students."""
    _, s = np.unique(student, return_inverse=True)
    d = np.bincount(s, weights=ll_c - ll_p)
    n, k = ll_c.shape[0], d.shape[0]
    if k < 2:
        return float(d.sum() / max(n, 1)), math.inf
    return float(d.sum() / n), float(math.sqrt(k * d.var(ddof=1)) / n)


def _loglik(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    pc = np.clip(p, 1e-15, 1 - 1e-15)
    return np.where(y > 0, np.log(pc), np.log1p(-pc))


def fit_calibration(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(c_0, c_1)`` maximising ``sum_i log P(y_i)`` with ``P(y = 1) = logistic(c_0 + c_1
    z_i)``: logistic regression of the answers on the logits (Newton's method from the
    identity ``(0, 1)``; a 1e-6 ridge keeps a degenerate sample finite), rounded to the 6
    decimals the artifact stores.  The identity is kept when the sample cannot fit one (fewer
    than two answers, or all right or all wrong) or the fit leaves the artifact's ranges
    (:data:`irt.engine.learning.CALIBRATION_SLOPE`, ``CALIBRATION_INTERCEPT``).

    Args:
        z: logits of the predictions, shape ``(n,)``.
        y: 0/1 answers, shape ``(n,)``.
    """
    z = np.clip(np.asarray(z, dtype=float), -30.0, 30.0)
    y = np.asarray(y, dtype=float)
    if z.shape[0] < 2 or y.min() == y.max():
        return IDENTITY
    x = np.stack([np.ones_like(z), z], axis=1)
    c = np.array(IDENTITY)
    for _ in range(50):
        p = logistic(x @ c)
        grad = x.T @ (y - p) - 1e-6 * (c - np.array(IDENTITY))
        hess = (x * (p * (1.0 - p))[:, None]).T @ x + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        c += step
        if not np.all(np.isfinite(c)):
            return IDENTITY
        if np.abs(step).max() < 1e-10:
            break
    # to the 6 decimals the artifact stores (a slope below 5e-7 would be stored as 0, which
    # the artifact refuses): what is judged here is what is served
    c0, c1 = round(float(c[0]), 6), round(float(c[1]), 6)
    lo0, hi0 = CALIBRATION_INTERCEPT
    lo1, hi1 = CALIBRATION_SLOPE
    if not (lo0 <= c0 <= hi0 and lo1 < c1 <= hi1):
        return IDENTITY
    return c0, c1


def _logit(p: np.ndarray) -> np.ndarray:
    pc = np.clip(p, 1e-15, 1 - 1e-15)
    return np.log(pc) - np.log1p(-pc)


def _cross_calibrated(p: np.ndarray, y: np.ndarray, student: np.ndarray
                      ) -> tuple[np.ndarray, tuple[float, float]]:
    """``(cross-fitted calibrated predictions, calibration fitted on all of them)``: the
    students in two halves (by the parity of their index), each half's predictions
    calibrated by :func:`fit_calibration` fitted on the other half."""
    z = _logit(p)
    _, s = np.unique(student, return_inverse=True)
    half = (s % 2).astype(bool)
    out = np.empty_like(p)
    for part in (half, ~half):
        c0, c1 = fit_calibration(z[~part], y[~part])
        out[part] = logistic(c0 + c1 * z[part])
    return out, fit_calibration(z, y)


def choose_options(train: Responses, order_key: np.ndarray | None, item_skill: np.ndarray | None,
                   skill_ids: Sequence[str], fit_config: FitConfig, learning: LearningConfig,
                   config: AutoConfig | None = None,
                   validation: tuple[np.ndarray, Sequence[str], np.ndarray] | None = None
                   ) -> OptionChoice:
    """Choose the option set by the online protocol on held-out training students.

    Args:
        train: the training answers.
        order_key: answer time of each answer of ``train`` (``None``: the given order).
        item_skill: skill index of each item of ``train.item_ids`` (``-1``: none), or ``None``
            (then only ``recency`` is tried).
        skill_ids: external id of each skill index.
        fit_config: the plain calibration's settings (a 2pl).
        learning: the options' settings (its ``options`` are ignored).
        config: the rule's settings (default :class:`AutoConfig`).
        validation: the answers to predict, as ``(student, item_ids, correct)``:
            ``student`` the index in ``train.student_ids``, each student's answers
            contiguous and in answer order; the answers of students outside the validated
            folds are left out.  ``None``: the validated students' answers in ``train``.
            (``irt evaluate`` passes every attempt of its training students, as its test
            protocol predicts them.)

    Returns:
        The :class:`OptionChoice`.
    """
    cfg = config or AutoConfig()
    t0 = time.perf_counter()
    hashes = _student_hashes(train.student_ids)  # validation_students' and student_folds'
    is_val = hashes < cfg.validation_share
    n_hold_out = int(np.unique(train.student[is_val[train.student]]).shape[0])
    if n_hold_out < cfg.all_folds_below:  # a small log: every student, fold by fold
        n_folds = fold_count(cfg.validation_share)
        fold = _folds(hashes, n_folds)
    else:  # the hold-out split: fold 0 validated, fitted on fold 1
        n_folds = 1
        fold = np.where(is_val, 0, 1)
    answer_fold = fold[train.student]
    answer_val = answer_fold < n_folds
    has_skills = item_skill is not None and bool(np.any(np.asarray(item_skill) >= 0))
    candidates = CANDIDATES if has_skills else CANDIDATES_WITHOUT_SKILLS
    if validation is None:
        rows = np.flatnonzero(answer_val)
        key = np.arange(train.n_answers, dtype=float) if order_key is None else \
            np.asarray(order_key, dtype=float)
        rows = rows[np.lexsort((key[rows], train.student[rows]))]
        validation = (train.student[rows], [train.item_ids[j] for j in train.item[rows]],
                      train.correct[rows])
    v_student = np.asarray(validation[0])
    v_fold = fold[v_student]
    keep = np.flatnonzero(v_fold < n_folds)
    v_student, v_fold = v_student[keep], v_fold[keep]
    v_items = np.asarray(validation[1], dtype=object)[keep]
    v_y = np.asarray(validation[2], dtype=float)[keep]
    n_val_students = int(np.unique(train.student[answer_val]).shape[0])
    # the students the fits draw on: the other folds' (one fold), every student (all folds)
    n_fit_students = int(np.unique(train.student[answer_fold != 0]).shape[0]) \
        if n_folds == 1 else len(np.unique(train.student))
    if n_val_students < cfg.min_validation_students or (
            n_folds == 1 and n_fit_students == 0):
        return OptionChoice((), [{"options": [], "verdict": f"chosen: fewer than "
                                  f"{cfg.min_validation_students} validation students"}],
                            n_fit_students, n_val_students, int(v_y.shape[0]),
                            time.perf_counter() - t0, cfg, n_folds=n_folds)
    # every candidate's online predictions of the validated folds' answers, fold by fold
    # from the models fitted on the other folds (each student's answers stay contiguous)
    order = np.argsort(v_fold, kind="stable")
    v_student, v_items, v_y, v_fold = v_student[order], v_items[order], v_y[order], v_fold[order]
    predicted: dict[tuple[str, ...], list[np.ndarray]] = {opts: [] for opts in candidates}
    converged = dict.fromkeys(candidates, True)
    done: list[np.ndarray] = []  # the rows predicted, fold by fold
    for k in range(n_folds):
        fit_part = train.subset(answer_fold != k)
        rows = np.flatnonzero(v_fold == k)
        if not rows.size or not fit_part.n_answers:
            continue
        fit_key = None if order_key is None else np.asarray(order_key)[answer_fold != k]
        models = _candidate_models(candidates, fit_part, fit_key, item_skill, skill_ids,
                                   has_skills, fit_config, learning)
        for opts in candidates:
            model, ok = models[opts]
            converged[opts] = converged[opts] and ok
            predicted[opts].append(online_predictions(
                model, v_student[rows], model.positions(v_items[rows].tolist()),
                v_y[rows].astype(np.int8)))
        done.append(rows)
    if not done:  # every student in one fold: no fold has others to be fitted on
        return OptionChoice((), [{"options": [], "verdict": "chosen: no fold has training "
                                  "students outside it to fit on"}],
                            n_fit_students, n_val_students, int(v_y.shape[0]),
                            time.perf_counter() - t0, cfg, n_folds=n_folds)
    kept = np.concatenate(done)
    v_student, v_y = v_student[kept], v_y[kept]
    table = []
    ll_plain = None
    for opts in candidates:
        p = np.concatenate(predicted[opts])
        extra: dict[str, Any] = {}
        if opts:  # judged calibrated (cross-fitted), as it would be served
            uncalibrated = metrics(v_y, p)["ece"]
            p, (c0, c1) = _cross_calibrated(p, v_y, v_student)
            extra = {"calibration": {"intercept": round(c0, 6), "slope": round(c1, 6)},
                     "ece_uncalibrated": uncalibrated}
        ll = _loglik(v_y, p)
        if ll_plain is None:
            ll_plain = ll
        gain, noise = _gain(ll, ll_plain, v_student)
        m = metrics(v_y, p)
        table.append({"options": list(opts), "auc": m["auc"], "log_loss": m["log_loss"],
                      "ece": m["ece"], "gain": gain, "noise": noise,
                      "em_converged": bool(converged[opts]), **extra})
    plain = table[0]
    plain["verdict"] = "baseline"
    z = noise_factor(cfg.noise_z, int(np.unique(v_student).shape[0]))
    best = None
    for row in table[1:]:
        why = []
        if not row["em_converged"]:
            why.append("its EM did not converge")
        if not row["gain"] > z * row["noise"]:
            why.append(f"gain {row['gain']:.5f} within {z:.3g} x noise "
                       f"{row['noise']:.5f}" if row["gain"] > 0 else
                       f"lower log-likelihood than plain ({row['gain']:.5f} per answer)")
        if not row["auc"] >= plain["auc"]:
            why.append(f"AUC {row['auc']:.4f} below plain's {plain['auc']:.4f}")
        if not row["ece"] <= plain["ece"] + cfg.max_ece_over_plain:
            why.append(f"ECE {row['ece']:.4f} above plain's {plain['ece']:.4f} + "
                       f"{cfg.max_ece_over_plain:g}")
        row["verdict"] = "lost: " + "; ".join(why) if why else "won"
        if not why and (best is None or row["gain"] > best["gain"]):
            best = row
    if best is None:
        plain["verdict"] = "chosen (no option set won)"
        chosen: tuple[str, ...] = ()
    else:
        best["verdict"] = "chosen"
        chosen = tuple(best["options"])
    for row in table:
        for key in ("auc", "log_loss", "ece", "gain", "noise", "ece_uncalibrated"):
            if key in row:
                row[key] = None if not math.isfinite(row[key]) else round(float(row[key]), 6)
    return OptionChoice(chosen, table, n_fit_students, n_val_students, int(v_y.shape[0]),
                        time.perf_counter() - t0, cfg, z, n_folds)


def _candidate_models(candidates: Sequence[tuple[str, ...]], fit_part: Responses,
                      fit_key: np.ndarray | None, item_skill: np.ndarray | None,
                      skill_ids: Sequence[str], has_skills: bool, fit_config: FitConfig,
                      learning: LearningConfig) -> dict[tuple[str, ...], tuple[ItemModel, bool]]:
    """Each candidate's model fitted on ``fit_part``, and whether its EM converged: the
    plain model as production fits it (with the skill prior when there is a map), each
    calibrated option set on top of it (``recency`` is not calibrated: its variants reuse
    the fits)."""
    base = fit(fit_part, replace(fit_config, compute_se=False),
               *((item_skill, skill_ids) if has_skills else ())).model
    models: dict[tuple[str, ...], tuple[ItemModel, bool]] = {(): (base, True)}
    options_base = None  # the calibrated options' start (base_for_options), made once
    for opts in candidates[1:]:
        calibrated = tuple(o for o in opts if o != "recency")
        if not calibrated:
            models[opts] = (with_recency(base, learning.decay), True)
            continue
        if calibrated not in models:
            if options_base is None:
                options_base = base_for_options(base, calibrated, fit_part, fit_config,
                                                item_skill, skill_ids)
            result = fit_learning(options_base, fit_part, fit_key, item_skill, skill_ids,
                                  replace(learning, options=calibrated))
            models[calibrated] = (result.model, result.converged)
        if "recency" in opts:
            model, ok = models[calibrated]
            models[opts] = (with_recency(model, learning.decay), ok)
    return models


def fit_chosen(base: ItemModel, train: Responses, order_key: np.ndarray | None,
               item_skill: np.ndarray | None, skill_ids: Sequence[str],
               learning: LearningConfig, choice: OptionChoice) -> LearningFit:
    """The chosen option set calibrated on every training answer on top of ``base`` (the
    plain fit of all of them; for calibrated options the one
    :func:`irt.engine.learning_fit.base_for_options` gives), the choice recorded in
    ``model.fit["option_selection"]``."""
    calibrated = tuple(o for o in choice.options if o != "recency")
    result = fit_learning(base, train, order_key, item_skill, skill_ids,
                          replace(learning, options=calibrated))
    model = result.model
    if "recency" in choice.options:
        model = with_recency(model, learning.decay)
    return replace(result, model=choice.attach(model))
