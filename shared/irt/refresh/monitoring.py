"""Checks a refresh runs beside the quality gate, and the canary before ``LATEST`` moves.

These implement the tests of the ML Test Score (Breck et al. 2017) that the data checks and
the gate of :mod:`irt.refresh.quality` leave open (``docs/ml-test-score.md``).  numpy only, no I/O:
:func:`run_checks` takes what the run has in memory, returns figures (for ``metrics.json``)
and sentences (problems reject the model; alerts are logged for the monitoring alert).

* :func:`data_profile` / :func:`drift` - the input distribution of this window against the
  serving model's (PSI of item p-values and of student scores, share correct);
* :func:`numerical_checks` - finite, in-range parameters; the EM objective never fell;
* :func:`skew_check` - the serving code path (:func:`irt.serving.predict` on the requests
  the LMS would send) against the training-side computations (``eap_batch``; the gate's
  online probabilities) for a sample of students: the same abilities and probabilities;
* :func:`baseline_scores` - a simpler model (each item's smoothed proportion correct) on
  the gate's held-out answers: the new model must beat it; and the next simpler IRT model
  (2PL -> 1PL, 3PL -> 2PL) fitted on the same answers as a challenger: an alert when it
  predicts the held-out answers better (a hint to change ``MODEL_TYPE``);
* :func:`slice_scores` - quality on slices of the held-out students (history length,
  items' exposure, skill, cold start): each slice within a margin of the overall AUC;
* :func:`served_quality` - the serving model on the answers given *after* its window,
  predicted online as ``predict`` answered them: its quality on served data against its
  offline (gate) figure at publication, by model age (the cost of staleness);
* :func:`staleness_curve` - the stored versions from about 7 and 30 days before this window
  (:data:`STALENESS_AGES`) scored on the gate's held-out answers beside the new model: the
  cost of serving a model of that age, on the newest real answers;
* :func:`served_trend` - that served AUC against the trailing median of the last published
  versions' (a slow leak that each version's own comparison and the gate's floor miss);
* :func:`canary` - the stored ``model.json`` loaded back and put through the serving code
  (load, EAP table, answers of known shape) before it may serve.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from irt.engine.artifact import load_model
from irt.engine.evaluate import metrics, online_predictions
from irt.engine.hashing import unit_hash
from irt.engine.learning import abilities
from irt.engine.model import ItemModel
from irt.errors import ConfigError, ModelFormatError
from irt.refresh.quality import Replay, holdout_scores
from irt.settings import env_float, env_int, shown

#: Item p-value and student score histograms: ten equal bins on [0, 1].
BINS = np.linspace(0.0, 1.0, 11)


@dataclass(frozen=True)
class MonitorConfig:
    """Thresholds of the monitoring checks (environment variables in brackets).

    Attributes:
        max_drift_psi: alert when the PSI of item p-values or of student scores against the
            serving model's data exceeds this [``MONITOR_MAX_PSI``, 0.25: the usual "major
            shift" level].
        max_correct_shift: alert when the share of correct answers moves more than this
            [``MONITOR_MAX_CORRECT_SHIFT``, 0.1].
        served_max_auc_drop: alert when the serving model's AUC on the answers given since
            its window is this much below its gate AUC at publication
            [``MONITOR_SERVED_MAX_AUC_DROP``, 0.05].
        max_students: students sampled (by a hash of the id) for the skew and served-data
            checks [``MONITOR_MAX_STUDENTS``, 2000].
        skew_students: students whose answers go through the serving path
            [``MONITOR_SKEW_STUDENTS``, 200].
        skew_theta_tolerance: largest |ability or SE difference| between ``eap_batch`` and
            the serving path [``MONITOR_SKEW_THETA_TOL``, 2e-6: predict rounds to 6
            decimals, +-5e-7; measured on the sample log 4.97e-7].
        skew_p_tolerance: largest |P difference| between the gate's online probability of
            an answer and what ``predict`` answers for the same history
            [``MONITOR_SKEW_P_TOL``, 1e-5: the gate integrates on a 401-node grid, predict
            on 61 nodes refined locally, and rounds to 6 decimals; measured 5.0e-7].
        min_slice_answers: a slice is judged from this many held-out answers
            [``MONITOR_MIN_SLICE_ANSWERS``, 100].
        min_slice_auc: every judged slice must reach this AUC whatever the overall figure
            [``MONITOR_MIN_SLICE_AUC``, 0.5: better than chance].
        slice_max_auc_drop: every judged slice must reach the overall held-out AUC (for a
            skill slice: the median skill slice's AUC) minus this, minus ``slice_noise_z``
            standard errors of the slice's AUC [``MONITOR_SLICE_MAX_AUC_DROP``, 0.05].
        cold_start_max_auc_drop: the same for the cold-start slice (each held-out student's
            first :data:`COLD_START_ANSWERS` answers): with no or little history the model
            ranks answers by the items alone [``MONITOR_COLD_START_MAX_AUC_DROP``, 0.12].
        slice_noise_z: standard errors (Hanley-McNeil) of a slice's AUC allowed below its
            mark, so that a small sound slice does not fail by chance
            [``MONITOR_SLICE_NOISE_Z``, 2].
        baseline_tolerance: the new model may trail the item-proportion baseline by at most
            this in AUC and log-loss [``MONITOR_BASELINE_TOL``, 0.0].
        simpler_model: the challenger fitted beside the new model: ``auto`` (2PL -> 1PL,
            3PL -> 2PL, none for 1PL and Rasch), a model type, or ``none``
            [``MONITOR_SIMPLER_MODEL``].
        simpler_tolerance: alert when the challenger's held-out log-loss is lower by more
            than this [``MONITOR_SIMPLER_TOL``, 0.002].
        simpler_fit_tol: the challenger's EM convergence tolerance (the largest parameter
            change of a cycle, as ``FitConfig.tol``) [``MONITOR_SIMPLER_FIT_TOL``, 1e-3: ten
            times the calibration's; the challenger only feeds the alert above.  ASSISTments
            2009's 1PL: 22 EM cycles instead of 28, held-out log-loss 2.1e-6 and AUC 1e-6
            from the fit at 1e-4, a thousandth of ``simpler_tolerance``; the fit at 1e-4 is
            itself 4.5e-5 in log-loss from the 1PL's optimum, which its common slope
            approaches slowly].
        served_trend_versions: the served AUC of a refresh is compared with the median of
            the served AUCs of the last this many published versions, kept in each
            version's ``metrics.json`` (``monitoring.served_trend.history``)
            [``MONITOR_SERVED_TREND_VERSIONS``, 10].
        served_trend_min_versions: the comparison needs at least this many of them
            [``MONITOR_SERVED_TREND_MIN_VERSIONS``, 3].
        served_trend_margin: alert (check ``served_quality_trend``) when the served AUC is
            more than this below that median [``MONITOR_SERVED_TREND_MARGIN``, 0.02: about
            twice the sampling SD of an AUC on 2,000 students' latest answers].  With 10
            versions the median trails a steady leak by 5.5 versions: a fall of more than
            0.02 / 5.5 = 0.0036 AUC per version is caught, however far above the gate's
            fixed floor (``GATE_MIN_AUC``, 0.55) it stays.
    """

    max_drift_psi: float = 0.25
    max_correct_shift: float = 0.10
    served_max_auc_drop: float = 0.05
    max_students: int = 2000
    skew_students: int = 200
    skew_theta_tolerance: float = 2e-6
    skew_p_tolerance: float = 1e-5
    min_slice_answers: int = 100
    min_slice_auc: float = 0.5
    slice_max_auc_drop: float = 0.05
    cold_start_max_auc_drop: float = 0.12
    slice_noise_z: float = 2.0
    baseline_tolerance: float = 0.0
    simpler_model: str = "auto"
    simpler_tolerance: float = 0.002
    simpler_fit_tol: float = 1e-3
    served_trend_versions: int = 10
    served_trend_min_versions: int = 3
    served_trend_margin: float = 0.02

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MonitorConfig:
        d = cls()
        return cls(
            max_drift_psi=env_float(env, "MONITOR_MAX_PSI", d.max_drift_psi, 0, 100),
            max_correct_shift=env_float(env, "MONITOR_MAX_CORRECT_SHIFT",
                                          d.max_correct_shift, 0, 1),
            served_max_auc_drop=env_float(env, "MONITOR_SERVED_MAX_AUC_DROP",
                                            d.served_max_auc_drop, 0, 1),
            max_students=env_int(env, "MONITOR_MAX_STUDENTS", d.max_students, 1, 10**7),
            skew_students=env_int(env, "MONITOR_SKEW_STUDENTS", d.skew_students, 0, 10**5),
            skew_theta_tolerance=env_float(env, "MONITOR_SKEW_THETA_TOL",
                                             d.skew_theta_tolerance, 0, 1),
            skew_p_tolerance=env_float(env, "MONITOR_SKEW_P_TOL", d.skew_p_tolerance, 0, 1),
            min_slice_answers=env_int(env, "MONITOR_MIN_SLICE_ANSWERS",
                                          d.min_slice_answers, 1, 10**9),
            min_slice_auc=env_float(env, "MONITOR_MIN_SLICE_AUC", d.min_slice_auc, 0, 1),
            slice_max_auc_drop=env_float(env, "MONITOR_SLICE_MAX_AUC_DROP",
                                           d.slice_max_auc_drop, 0, 1),
            cold_start_max_auc_drop=env_float(env, "MONITOR_COLD_START_MAX_AUC_DROP",
                                                d.cold_start_max_auc_drop, 0, 1),
            slice_noise_z=env_float(env, "MONITOR_SLICE_NOISE_Z", d.slice_noise_z, 0, 10),
            baseline_tolerance=env_float(env, "MONITOR_BASELINE_TOL", d.baseline_tolerance,
                                           0, 1),
            simpler_model=_simpler_setting(env.get("MONITOR_SIMPLER_MODEL", "")),
            simpler_tolerance=env_float(env, "MONITOR_SIMPLER_TOL", d.simpler_tolerance,
                                          0, 1),
            simpler_fit_tol=env_float(env, "MONITOR_SIMPLER_FIT_TOL", d.simpler_fit_tol,
                                      1e-12, 1),
            served_trend_versions=env_int(env, "MONITOR_SERVED_TREND_VERSIONS",
                                          d.served_trend_versions, 1, 1000),
            served_trend_min_versions=env_int(env, "MONITOR_SERVED_TREND_MIN_VERSIONS",
                                              d.served_trend_min_versions, 1, 1000),
            served_trend_margin=env_float(env, "MONITOR_SERVED_TREND_MARGIN",
                                          d.served_trend_margin, 0, 1),
        )


SIMPLER = {"3pl": "2pl", "2pl": "1pl"}


def challenger_kind(config: MonitorConfig, model_type: str) -> str | None:
    """The model type of the challenger :func:`simpler_model` fits beside a ``model_type``
    model (``MONITOR_SIMPLER_MODEL``: ``auto`` is :data:`SIMPLER`'s), ``None`` for none."""
    kind = SIMPLER.get(model_type) if config.simpler_model == "auto" else config.simpler_model
    return None if kind in (None, "none") or kind == model_type else kind


def _simpler_setting(raw: str) -> str:
    value = raw.strip().lower() or "auto"
    if value not in ("auto", "none", "rasch", "1pl", "2pl"):
        raise ConfigError(f"must be auto, none, rasch, 1pl or 2pl, got {shown(raw)}",
                          "MONITOR_SIMPLER_MODEL")
    return value


def _clean(value: Any) -> Any:
    """JSON-ready: NaN/inf floats as None, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


# --------------------------------------------------------------------------- data drift
def _quantiles(counts: np.ndarray) -> dict[str, float]:
    if not counts.size:
        return {"p10": 0.0, "p50": 0.0, "p90": 0.0}
    q = np.quantile(counts, [0.1, 0.5, 0.9])
    return {"p10": float(q[0]), "p50": float(q[1]), "p90": float(q[2])}


def _hist(values: np.ndarray) -> list[float]:
    counts, _ = np.histogram(np.clip(values, 0.0, 1.0), bins=BINS)
    return (counts / max(values.size, 1)).tolist()


def data_profile(student: np.ndarray, item: np.ndarray, correct: np.ndarray,
                 n_students: int, n_items: int) -> dict[str, Any]:
    """Distribution of a prepared answer set (stored in ``report.json`` as ``profile``)."""
    student = np.asarray(student, dtype=np.int64)
    item = np.asarray(item, dtype=np.int64)
    y = np.asarray(correct, dtype=float)
    per_item = np.bincount(item, minlength=n_items)
    per_student = np.bincount(student, minlength=n_students)
    item_p = np.bincount(item, weights=y, minlength=n_items)[per_item > 0] / per_item[
        per_item > 0]
    student_p = np.bincount(student, weights=y, minlength=n_students)[per_student > 0] / \
        per_student[per_student > 0]
    return {"n_answers": int(y.size), "n_students": int((per_student > 0).sum()),
            "n_items": int((per_item > 0).sum()),
            "share_correct": float(y.mean()) if y.size else float("nan"),
            "answers_per_student": _quantiles(per_student[per_student > 0]),
            "answers_per_item": _quantiles(per_item[per_item > 0]),
            "item_p_hist": _hist(item_p), "student_score_hist": _hist(student_p)}


def psi(expected: Sequence[float], actual: Sequence[float], floor: float = 1e-4) -> float:
    """Population stability index ``sum (a - e) ln(a / e)`` of two histograms (shares)."""
    e = np.maximum(np.asarray(expected, dtype=float), floor)
    a = np.maximum(np.asarray(actual, dtype=float), floor)
    return float(np.sum((a - e) * np.log(a / e)))


def drift(new: dict[str, Any], old: dict[str, Any] | None, config: MonitorConfig
          ) -> tuple[dict[str, Any], list[str]]:
    """This window's profile against the serving model's: figures and alerts."""
    if not old:
        return {"compared_with": None}, []
    figures = {"psi_item_p": psi(old["item_p_hist"], new["item_p_hist"]),
               "psi_student_score": psi(old["student_score_hist"], new["student_score_hist"]),
               "share_correct_shift": new["share_correct"] - old["share_correct"],
               "answers_per_student_p50": [old["answers_per_student"]["p50"],
                                           new["answers_per_student"]["p50"]]}
    alerts = []
    for key in ("psi_item_p", "psi_student_score"):
        if figures[key] > config.max_drift_psi:
            alerts.append(f"input drift: {key} {figures[key]:.3f} above {config.max_drift_psi}")
    if abs(figures["share_correct_shift"]) > config.max_correct_shift:
        alerts.append(f"input drift: share correct moved {figures['share_correct_shift']:+.3f} "
                      f"(allowed {config.max_correct_shift})")
    return figures, alerts


# --------------------------------------------------------------------------- numerical
def numerical_checks(model: ItemModel, history: Sequence[float], log_likelihood: float,
                     converged: bool) -> tuple[dict[str, Any], list[str], list[str]]:
    """``(figures, problems, warnings)``: problems reject the model, warnings alert.

    Problems: a non-finite parameter, standard error or log-likelihood; a slope not positive;
    a guessing parameter outside [0, 1); EM did not converge (stopped at its cycle cap: an
    unconverged model is never published).  Warnings: the objective fell between cycles
    (SQUAREM with its fall-back never lets it; float32 E-steps may wobble in the last
    digits, so only a fall beyond 1e-6 relative counts); extreme parameters.
    """
    problems: list[str] = []
    warnings: list[str] = []
    for name in ("a", "b", "c"):
        values = getattr(model, name)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            problems.append(f"{bad.size} non-finite {name} (first: item "
                            f"{model.item_ids[bad[0]]})")
    for name in ("se_a", "se_b", "se_c"):
        values = getattr(model, name)
        if np.isinf(values).any():
            problems.append(f"{int(np.isinf(values).sum())} infinite {name}")
    if model.n_items and not (model.a > 0).all():
        problems.append(f"{int((model.a <= 0).sum())} slopes not positive")
    if model.n_items and not ((model.c >= 0) & (model.c < 1)).all():
        problems.append("guessing parameters outside [0, 1)")
    if not math.isfinite(log_likelihood) or not math.isfinite(model.population_sd):
        problems.append(f"log-likelihood {log_likelihood}, population SD {model.population_sd}")
    h = np.asarray(history, dtype=float)
    falls = np.diff(h) < -1e-6 * np.maximum(1.0, np.abs(h[:-1])) if h.size > 1 else \
        np.zeros(0, dtype=bool)
    if not np.isfinite(h).all():
        problems.append("the EM objective was not finite in some cycle")
    if falls.any():
        warnings.append(f"the EM objective fell in {int(falls.sum())} cycles")
    if not converged:
        problems.append(f"EM did not converge in {h.size} cycles")
    finite_b = model.b[np.isfinite(model.b)]
    extreme = int((np.abs(finite_b) > 10).sum() + (model.a > 10).sum())
    if extreme:
        warnings.append(f"{extreme} extreme parameters (|b| > 10 or a > 10)")
    figures = {"converged": bool(converged), "iterations": int(h.size),
               "objective_falls": int(falls.sum()),
               "max_abs_b": float(np.abs(finite_b).max(initial=0.0)),
               "a_range": [float(model.a.min()), float(model.a.max())] if model.n_items
               else [],
               "extreme_parameters": extreme}
    return figures, problems, warnings


# --------------------------------------------------------------------------- sampling
def sample_students(student_ids: Sequence[str], eligible: np.ndarray, limit: int) -> np.ndarray:
    """Indices of up to ``limit`` eligible students, the smallest hashes of their ids first
    (the same students every run, whatever the row order)."""
    candidates = np.flatnonzero(eligible)
    if candidates.size <= limit:
        return candidates
    h = np.fromiter((unit_hash(student_ids[k]) for k in candidates.tolist()), dtype=float,
                    count=candidates.size)
    return np.sort(candidates[np.argsort(h, kind="stable")[:limit]])


def _replay(model: ItemModel, student: np.ndarray, item_ids: np.ndarray, correct: np.ndarray,
            order_key: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Online probabilities of ``rows`` (all answers of some students), in (student, time)
    order: ``(order, p, rank)`` - ``rank`` is each answer's number of earlier answers."""
    order = rows[np.lexsort((order_key[rows], student[rows]))]
    s = student[order]
    pos = model.positions(list(item_ids[order]))
    p = online_predictions(model, s, pos, correct[order])
    return order, p, _ranks(s)


def _ranks(s: np.ndarray) -> np.ndarray:
    """Each answer's number of earlier answers of its student (``s``: student of each
    answer, each student's answers contiguous)."""
    starts = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1] if s.size else np.zeros(0, int)
    lengths = np.diff(np.r_[starts, s.size])
    return np.arange(s.size) - np.repeat(starts, lengths)


# --------------------------------------------------------------------------- skew
def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def skew_check(model: ItemModel, student: np.ndarray, item_ids: np.ndarray,
               correct: np.ndarray, order_key: np.ndarray, student_ids: Sequence[str],
               config: MonitorConfig) -> tuple[dict[str, Any], list[str]]:
    """The serving path against the training-side computations, on the same answers.

    For up to ``skew_students`` students (by hash), their answers as the LMS sends them to
    ``predict`` (``item_id``, ``correct`` as a boolean, ``answered_at`` as ISO-8601, in a
    shuffled order, so that predict must order them by time itself) go through
    :func:`irt.serving.predict`; the ability must equal ``eap_batch``'s on the prepared
    answers (what ``python -m irt score`` computes), and for each student's last answer,
    requested with the earlier ones as the history, predict's probability must equal the one
    the gate scored (:func:`irt.engine.evaluate.online_predictions`).
    """
    from irt.serving import Limits, predict

    n_students = len(student_ids)
    counts = np.bincount(student, minlength=n_students)
    chosen = sample_students(student_ids, counts >= 2, config.skew_students)
    if not chosen.size or not model.n_items:
        return {"students": 0}, []
    rows = np.flatnonzero(np.isin(student, chosen))
    order, p_gate, _ = _replay(model, student, item_ids, correct, order_key, rows)
    s = student[order]
    local = np.searchsorted(chosen, s)
    pos = model.positions(list(item_ids[order]))
    known = pos >= 0
    # eap_batch for a plain model; the learning-aware posterior for a model with options
    theta_t, se_t = abilities(model, local[known], pos[known], correct[order][known],
                              chosen.size)
    limits = Limits(max_responses=10**6, max_items=10**6, max_students=10**6)
    rng = np.random.default_rng(0)
    starts = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1]
    ends = np.r_[starts[1:], s.size]
    d_theta = d_se = d_p = 0.0
    for k, (lo, hi) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        answers = [{"item_id": str(item_ids[order[i]]), "correct": bool(correct[order[i]]),
                    "answered_at": _iso(float(order_key[order[i]]))} for i in range(lo, hi)]
        shuffled = [answers[i] for i in rng.permutation(len(answers))]
        whole = predict(model, {"responses": shuffled}, limits, "skew")["ability"]
        d_theta = max(d_theta, abs(whole["theta"] - float(theta_t[k])))
        d_se = max(d_se, abs(whole["se"] - float(se_t[k])))
        last = answers[-1]["item_id"]
        if known[hi - 1]:
            history = predict(model, {"responses": answers[:-1], "items": [last]}, limits,
                              "skew")
            d_p = max(d_p, abs(history["probabilities"][last] - float(p_gate[hi - 1])))
    figures = {"students": int(chosen.size), "answers": int(rows.size),
               "max_abs_theta_diff": d_theta, "max_abs_se_diff": d_se,
               "max_abs_p_diff_vs_gate": d_p,
               "tolerances": {"theta": config.skew_theta_tolerance,
                              "p": config.skew_p_tolerance}}
    problems = []
    if not d_theta <= config.skew_theta_tolerance or not d_se <= config.skew_theta_tolerance:
        problems.append(f"training/serving skew: ability differs by {d_theta:.2e} (SE "
                        f"{d_se:.2e}) between eap_batch and predict; tolerance "
                        f"{config.skew_theta_tolerance}")
    if not d_p <= config.skew_p_tolerance:
        problems.append(f"training/serving skew: P differs by {d_p:.2e} between the gate and "
                        f"predict; tolerance {config.skew_p_tolerance}")
    return figures, problems


# --------------------------------------------------------------------------- baseline
def baseline_scores(train_item_ids: np.ndarray, train_correct: np.ndarray,
                    eval_item_ids: np.ndarray, eval_correct: np.ndarray,
                    strength: float = 2.0) -> dict[str, float]:
    """Metrics of the simplest model: each item's proportion correct in the training answers,
    shrunk toward the overall proportion by ``strength`` pseudo-answers (an item never seen:
    the overall proportion). No ability: every student gets the same probability."""
    y = np.asarray(train_correct, dtype=float)
    overall = float(y.mean()) if y.size else 0.5
    train_codes, eval_codes = np.asarray(train_item_ids), np.asarray(eval_item_ids)
    if np.issubdtype(train_codes.dtype, np.integer) and np.issubdtype(eval_codes.dtype,
                                                                       np.integer):
        # item indices (what a refresh passes): bincounts, no string work on millions of rows
        size = int(max(train_codes.max(initial=-1), eval_codes.max(initial=-1))) + 1
        n_c = np.bincount(train_codes, minlength=size)
        k_c = np.bincount(train_codes, weights=y, minlength=size)
        p_code = (k_c + strength * overall) / (n_c + strength)  # unseen: the overall share
        return metrics(np.asarray(eval_correct, dtype=float), p_code[eval_codes])
    ids, inverse = np.unique(np.asarray(train_item_ids, dtype=object).astype(str),
                             return_inverse=True)
    n = np.bincount(inverse, minlength=ids.size)
    k = np.bincount(inverse, weights=y, minlength=ids.size)
    p_item = (k + strength * overall) / (n + strength)
    lookup = dict(zip(ids.tolist(), p_item.tolist(), strict=True))
    p = np.fromiter((lookup.get(str(i), overall) for i in eval_item_ids), dtype=float,
                    count=len(eval_item_ids))
    return metrics(np.asarray(eval_correct, dtype=float), p)


def simpler_model(config: MonitorConfig, model_type: str, fit_simpler: Callable[[str], ItemModel],
                  new_scores: Mapping[str, float], student: np.ndarray, item_ids: np.ndarray,
                  correct: np.ndarray, order_key: np.ndarray, held_out: np.ndarray
                  ) -> tuple[dict[str, Any], list[str]]:
    """The challenger: the next simpler IRT model fitted on the same training answers,
    scored on the same held-out answers. An alert (not a rejection: the operator chooses the
    model type) when it predicts them better than the new model by ``simpler_tolerance``.
    The figures say how its EM ended (``fit``: cycles, convergence, tolerance and, from
    ``prepare``, the fit's own seconds), as far as the fitted model records it; ``seconds``
    is the time this check took (``prepare`` fits the challenger beside the calibration, so
    it may have been ready)."""
    kind = challenger_kind(config, model_type)
    if kind is None:
        return {"model_type": None}, []
    t0 = time.perf_counter()
    challenger = fit_simpler(kind)
    scores = holdout_scores(challenger, student, item_ids, correct, order_key, held_out)
    figures = {"model_type": kind, "auc": scores["auc"], "log_loss": scores["log_loss"],
               "new_auc": new_scores["auc"], "new_log_loss": new_scores["log_loss"],
               "fit": {k: challenger.fit[k] for k in ("iterations", "converged", "tol",
                                                      "seconds") if k in challenger.fit},
               "seconds": round(time.perf_counter() - t0, 3)}
    alerts = []
    if scores["log_loss"] < new_scores["log_loss"] - config.simpler_tolerance:
        alerts.append(f"a simpler model predicts better: {kind} log-loss "
                      f"{scores['log_loss']:.4f} against {new_scores['log_loss']:.4f} for "
                      f"{model_type} (AUC {scores['auc']:.4f} against {new_scores['auc']:.4f});"
                      f" consider MODEL_TYPE={kind}")
    return figures, alerts


def beats_baseline(new: Mapping[str, float], baseline: Mapping[str, float],
                   tolerance: float) -> list[str]:
    """Problems when the simpler model does better than the new one."""
    out = []
    if not new["auc"] >= baseline["auc"] - tolerance:
        out.append(f"a simpler model is better: item-proportion baseline AUC "
                   f"{baseline['auc']:.4f} against {new['auc']:.4f}")
    if not new["log_loss"] <= baseline["log_loss"] + tolerance:
        out.append(f"a simpler model is better: item-proportion baseline log-loss "
                   f"{baseline['log_loss']:.4f} against {new['log_loss']:.4f}")
    return out


# --------------------------------------------------------------------------- slices
HISTORY_SLICES = (("history 0-4", 0, 5), ("history 5-19", 5, 20), ("history 20+", 20, None))
EXPOSURE_SLICES = (("item answers <50", 0, 50), ("item answers 50-499", 50, 500),
                   ("item answers 500+", 500, None))


def auc_standard_error(auc: float, n_positive: int, n_negative: int) -> float:
    """Standard error of an AUC from ``n_positive`` correct and ``n_negative`` wrong answers
    (Hanley and McNeil 1982): ``sqrt((A(1-A) + (n1-1)(Q1-A^2) + (n0-1)(Q2-A^2)) / (n1 n0))``
    with ``Q1 = A/(2-A)``, ``Q2 = 2A^2/(1+A)``; ``inf`` when either count is 0 or the AUC
    is undefined."""
    if not n_positive or not n_negative or not math.isfinite(auc):
        return math.inf
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_positive - 1) * (q1 - auc * auc)
           + (n_negative - 1) * (q2 - auc * auc)) / (n_positive * n_negative)
    return math.sqrt(max(var, 0.0))


#: The cold-start slice: each held-out student's first answers (none to four earlier ones).
COLD_START_ANSWERS = 5


def slice_scores(model: ItemModel, student: np.ndarray, item_ids: np.ndarray,
                 correct: np.ndarray, order_key: np.ndarray, held_out: np.ndarray,
                 train_counts: Mapping[str, int], config: MonitorConfig,
                 overall_auc: float | None = None, answer_skill: np.ndarray | None = None,
                 replay: Replay | None = None) -> tuple[dict[str, Any], list[str]]:
    """The new model on slices of the gate's held-out students, each against a pass mark
    relative to the overall figure.

    Slices of the held-out answers: by how many earlier answers the student had
    (:data:`HISTORY_SLICES`), by how many training answers the item had
    (:data:`EXPOSURE_SLICES`) and, when the log names skills (``answer_skill``: the skill
    id of each answer, ``None`` for an item without one), by skill (``skill <id>``).  A
    slice with at least ``min_slice_answers`` answers is judged: its AUC must reach
    ``max(min_slice_auc, reference - slice_max_auc_drop - slice_noise_z * se)``, with
    ``se`` the slice AUC's standard error (:func:`auc_standard_error`) and ``reference``
    the overall AUC; for a skill slice, the median AUC of the judged skill slices (the AUC
    over all answers also rewards knowing which skills are harder, which no one skill's
    answers can show: on a log whose skills differ in difficulty every skill slice lies
    far below it).

    The cold-start slice (``cold start``): the gate holds out each student's *latest*
    answers, so students with no history are rarely among them; this slice is the first
    :data:`COLD_START_ANSWERS` answers of the same held-out students, each predicted online
    from the student's earlier answers only (as ``predict`` answers a new student).  Those
    answers were among the calibration's, so the item parameters have seen them (each is one
    of an item's many answers); the student's ability never has.  Its mark is
    ``overall_auc - cold_start_max_auc_drop - slice_noise_z * se`` (with no history the
    model can rank answers by the items alone).

    Args:
        overall_auc: the gate's AUC of the model on all held-out answers (``None``: only the
            absolute floor ``min_slice_auc`` applies).
        replay: the gate's replay of ``model`` on these answers
            (:func:`irt.refresh.quality.holdout_replay`): its predictions are used instead
            of replaying the same answers again (``None``: replayed here).

    Returns:
        ``(figures, problems)``: per slice ``n`` and, when judged, ``auc``, ``log_loss``,
        ``ece``, ``auc_se``, ``reference`` (``None`` without ``overall_auc``) and ``mark``;
        a problem per judged slice below its mark.
    """
    if replay is None:
        sampled = np.zeros(int(student.max()) + 1 if student.size else 0, dtype=bool)
        sampled[student[held_out]] = True
        rows = np.flatnonzero(sampled[student])
        if not rows.size:
            return {}, []
        order, p, rank = _replay(model, student, item_ids, correct, order_key, rows)
    else:  # the same rows in the same order as _replay's
        if not replay.order.size:
            return {}, []
        order, p, rank = replay.order, replay.p, _ranks(student[replay.order])
    scored = held_out[order]
    y = correct[order].astype(float)
    exposure = np.fromiter((train_counts.get(str(i), 0) for i in item_ids[order]), dtype=float,
                           count=order.size)
    relative = overall_auc is not None and math.isfinite(overall_auc)
    mark = config.slice_max_auc_drop
    cold_mark = config.cold_start_max_auc_drop
    masks: list[tuple[str, np.ndarray, float]] = []
    for slices, key in ((HISTORY_SLICES, rank), (EXPOSURE_SLICES, exposure)):
        for name, lo, hi in slices:
            masks.append((name, scored & (key >= lo) & (key < (hi if hi is not None
                                                               else np.inf)), mark))
    if answer_skill is not None:
        skill = np.asarray(answer_skill, dtype=object)[order]
        for name in sorted({str(k) for k in skill[scored] if k is not None}):
            masks.append((f"skill {name}", scored & (skill == name), mark))
    masks.append(("cold start", rank < COLD_START_ANSWERS, cold_mark))
    figures: dict[str, Any] = {}
    for name, mask, _ in masks:
        n = int(mask.sum())
        entry: dict[str, Any] = {"n": n}
        if n >= config.min_slice_answers:
            m = metrics(y[mask], p[mask])
            se = auc_standard_error(m["auc"], int(y[mask].sum()), int(n - y[mask].sum()))
            entry.update(auc=m["auc"], log_loss=m["log_loss"], ece=m["ece"], auc_se=se)
        figures[name] = entry
    # A skill slice is compared with the typical skill: the AUC over all answers also rewards
    # knowing which skills are harder, which no single skill's answers can show.
    skill_aucs = [v["auc"] for k, v in figures.items() if k.startswith("skill ") and "auc" in v
                  and math.isfinite(v["auc"])]
    skill_reference = float(np.median(skill_aucs)) if skill_aucs else overall_auc
    problems = []
    for name, _, drop in masks:
        entry = figures[name]
        if "auc" not in entry:
            continue
        reference = skill_reference if name.startswith("skill ") else overall_auc
        floor = max(config.min_slice_auc, reference - drop - config.slice_noise_z
                    * entry["auc_se"]) if relative else config.min_slice_auc
        entry.update(mark=floor, reference=reference if relative else None)
        if not entry["auc"] >= floor:
            problems.append(f"slice '{name}': AUC {entry['auc']:.4f} below {floor:.4f} on "
                            f"{entry['n']} answers (reference "
                            f"{reference if relative else float('nan'):.4f}, floor "
                            f"{config.min_slice_auc})")
    return figures, problems


# --------------------------------------------------------------------------- served data
AGE_BUCKETS = (("0-6 days", 0, 7), ("7-29 days", 7, 30), ("30+ days", 30, None))


def served_quality(serving: ItemModel, served_since: float, offline_auc: float | None,
                   student: np.ndarray, item_ids: np.ndarray, correct: np.ndarray,
                   order_key: np.ndarray, student_ids: Sequence[str], config: MonitorConfig,
                   holdout_last: float = 0.2) -> tuple[dict[str, Any], list[str]]:
    """The serving model on served data: the answers given since the end of its training
    window (while it served), each predicted from the student's earlier answers - as
    ``predict`` answered the LMS - broken down by the model's age at the answer (the cost of
    staleness) and by the student's history length.

    Offline vs. online: the gate measured the model at publication on the latest
    ``holdout_last`` share of each sampled student's answers; ``online_gate_protocol`` is the
    same measure on served data (each student's latest share, among the answers since the
    window), so that the two compare like with like - all served answers include students'
    first answers, which no model predicts as well. An alert when it is more than
    ``served_max_auc_drop`` below the offline figure."""
    n_students = len(student_ids)
    after = order_key >= served_since
    eligible = np.zeros(n_students, dtype=bool)
    eligible[student[after]] = True
    chosen = sample_students(student_ids, eligible, config.max_students)
    in_sample = np.zeros(n_students, dtype=bool)
    in_sample[chosen] = True
    rows = np.flatnonzero(in_sample[student])
    mask_rows = after[rows]
    figures: dict[str, Any] = {"served_since": _iso(served_since), "students": int(chosen.size),
                               "answers": int(mask_rows.sum()), "offline_auc": offline_auc}
    if mask_rows.sum() < config.min_slice_answers:
        figures["note"] = "too few answers since the serving model's window to judge"
        return figures, []
    order, p, rank = _replay(serving, student, item_ids, correct, order_key, rows)
    scored = after[order]
    y = correct[order].astype(float)
    overall = metrics(y[scored], p[scored])
    figures["online"] = {k: overall[k] for k in ("auc", "log_loss", "ece", "mean_probability",
                                                 "mean_correct")}
    age_days = (order_key[order] - served_since) / 86400.0
    by_age = {}
    for name, lo, hi in AGE_BUCKETS:
        mask = scored & (age_days >= lo) & (age_days < (hi if hi is not None else np.inf))
        entry: dict[str, Any] = {"n": int(mask.sum())}
        if mask.sum() >= config.min_slice_answers:
            m = metrics(y[mask], p[mask])
            entry.update(auc=m["auc"], log_loss=m["log_loss"])
        by_age[name] = entry
    figures["by_model_age"] = by_age
    by_history = {}
    for name, lo, hi in HISTORY_SLICES:
        mask = scored & (rank >= lo) & (rank < (hi if hi is not None else np.inf))
        entry = {"n": int(mask.sum())}
        if mask.sum() >= config.min_slice_answers:
            entry.update(auc=metrics(y[mask], p[mask])["auc"])
        by_history[name] = entry
    figures["by_history"] = by_history
    s = student[order]
    starts = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1]
    lengths = np.diff(np.r_[starts, s.size])
    take = np.clip(np.ceil(holdout_last * lengths).astype(np.int64), 1,
                   np.maximum(lengths - 1, 1))
    latest = scored & (rank >= np.repeat(lengths - take, lengths))
    protocol: dict[str, Any] = {"n": int(latest.sum())}
    if latest.sum() >= config.min_slice_answers:
        m = metrics(y[latest], p[latest])
        protocol.update(auc=m["auc"], log_loss=m["log_loss"])
    figures["online_gate_protocol"] = protocol
    alerts = []
    online = protocol.get("auc")
    if offline_auc is not None and math.isfinite(offline_auc) and online is not None:
        figures["online_minus_offline_auc"] = online - offline_auc
        if not online >= offline_auc - config.served_max_auc_drop:
            alerts.append(f"served-data quality: the serving model's AUC on the latest answers "
                          f"since {figures['served_since']} is {online:.4f} against "
                          f"{offline_auc:.4f} at publication (allowed drop "
                          f"{config.served_max_auc_drop})")
    return figures, alerts


def served_trend(history: Any, auc: float | None, version: str | None,
                 config: MonitorConfig) -> tuple[dict[str, Any], list[str]]:
    """A slow leak: this refresh's served AUC against the trailing median of the served AUCs
    of the last ``served_trend_versions`` published versions.

    :func:`served_quality` compares a model with itself at publication; a quality that falls
    a little with every version passes that check and the gate's fixed floor for a long
    time.  Each version's ``metrics.json`` carries ``monitoring.served_trend.history``, the
    served AUCs measured by the refreshes that led to it (``[{"version", "auc"}]``, oldest
    first); a refresh reads the serving version's, compares and appends its own.

    Args:
        history: the serving version's ``monitoring.served_trend.history`` (anything else,
            e.g. ``None`` for a version published before this check, is an empty history).
        auc: this refresh's served AUC of the serving model (``online_gate_protocol``, the
            gate's protocol), ``None`` when not measured.
        version: the serving version that AUC is of.
        config: ``served_trend_versions``, ``served_trend_min_versions``,
            ``served_trend_margin``.

    Returns:
        ``(figures, alerts)``: ``figures`` with ``history`` (the last
        ``served_trend_versions`` entries, this one included), ``auc``, and, when judged,
        ``median`` and ``floor``; an alert sentence when ``auc`` is below ``floor``.
    """
    entries = [{"version": h.get("version"), "auc": float(h["auc"])}
               for h in (history if isinstance(history, list) else [])
               if isinstance(h, Mapping) and isinstance(h.get("auc"), int | float)
               and math.isfinite(h["auc"])][-config.served_trend_versions:]
    figures: dict[str, Any] = {"auc": auc, "versions": len(entries)}
    alerts: list[str] = []
    if auc is not None and math.isfinite(auc):
        if len(entries) >= config.served_trend_min_versions:
            median = float(np.median([e["auc"] for e in entries]))
            figures.update(median=median, floor=median - config.served_trend_margin)
            if not auc >= median - config.served_trend_margin:
                alerts.append(f"served-data quality trend: the serving model {version}'s AUC "
                              f"on served answers is {auc:.4f}, below the median "
                              f"{median:.4f} of the last {len(entries)} versions by more "
                              f"than {config.served_trend_margin} (a slow leak)")
        entries.append({"version": version, "auc": float(auc)})
    figures["history"] = entries[-config.served_trend_versions:]
    return figures, alerts


# --------------------------------------------------------------------------- staleness
#: Model ages (days before the new window's end) of the staleness curve.
STALENESS_AGES = (7, 30)


def staleness_curve(new_scores: Mapping[str, float],
                    aged: Sequence[tuple[int, str, float, ItemModel]], student: np.ndarray,
                    item_ids: np.ndarray, correct: np.ndarray, order_key: np.ndarray,
                    held_out: np.ndarray) -> dict[str, Any]:
    """Model quality by model age on the newest real answers (the cost of staleness).

    Each stored version of ``aged`` - ``(target age in days, version, its age in days, its
    model)``: the published version whose window ended closest to ``target`` days before
    the new window's end (:func:`irt.refresh.pipeline.stored_versions_by_age`) - is scored
    on the gate's held-out answers, each predicted online from the student's earlier
    answers (:func:`irt.refresh.quality.holdout_scores`), exactly as the new model was
    (``new_scores``, age 0).  A model that is still as good as a fresh one says the refresh
    interval could be longer; a steep curve, that it must not be.

    Returns:
        ``{"ages": [...], "curve": {age: {"version", "age_days", "n", "auc", "log_loss"}}}``
        with age ``"0"`` the new model and one entry per target age found in the store.
    """
    n = int(np.asarray(held_out).sum())
    curve: dict[str, Any] = {"0": {"version": None, "age_days": 0.0, "n": n,
                                   "auc": new_scores["auc"],
                                   "log_loss": new_scores["log_loss"]}}
    for target, version, age, model in aged:
        scores = holdout_scores(model, student, item_ids, correct, order_key, held_out)
        curve[str(target)] = {"version": version, "age_days": round(age, 3), "n": n,
                              "auc": scores["auc"], "log_loss": scores["log_loss"]}
    return {"ages": [0, *(t for t, *_ in aged)], "curve": curve}


# --------------------------------------------------------------------------- canary
def canary(model_bytes: bytes, expected: ItemModel, version: str) -> tuple[dict[str, Any],
                                                                         list[str]]:
    """The artifact as ``predict`` will load it, through the serving code, before it serves.

    Checks: it loads (strict JSON, schema); it holds exactly the calibrated parameters; then
    the canary answers of :func:`irt.serving.probe.probe`, the same that ``predict``'s loader
    asks a new version before it swaps it in (no answers gives the prior, all right above all
    wrong item by item, a batch as the single requests, next-items, finite numbers and
    probabilities in [0, 1]).
    """
    from irt.serving.probe import probe

    problems: list[str] = []
    try:
        model = load_model(model_bytes)
    except ModelFormatError as exc:
        return {"loaded": False, "passed": False}, [
            f"canary: the stored model does not load: {exc}"]
    if model.item_ids != expected.item_ids:
        problems.append("canary: the stored model's items differ from the calibrated ones")
    for name in ("a", "b", "c"):
        if not np.array_equal(getattr(model, name), getattr(expected, name)):
            problems.append(f"canary: stored {name} differs from the calibrated values")
    if model.population_sd != expected.population_sd:
        problems.append("canary: stored population SD differs")
    if problems:
        return {"loaded": True, "n_items": model.n_items, "passed": False}, problems
    figures, found = probe(model, version)
    problems = [f"canary: {p}" for p in found]
    if figures["n_items"] != expected.n_items:
        problems.append("canary: metadata or version wrong")
    return {"loaded": True, **figures, "bytes": len(model_bytes),
            "passed": not problems}, problems


# --------------------------------------------------------------------------- all together
@dataclass
class Checks:
    """What :func:`run_checks` found: ``figures`` for ``metrics.json``, ``profile`` for
    ``report.json``, ``problems`` (reject the model), ``alerts`` (log for the alert)."""

    figures: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    alerts: list[dict[str, str]] = field(default_factory=list)

    def alert(self, check: str, messages: list[str]) -> None:
        self.alerts += [{"check": check, "message": m} for m in messages]


def _parse_time(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def run_checks(config: MonitorConfig, *, new_model: ItemModel, history: Sequence[float],
               log_likelihood: float, converged: bool, responses: Any,
               answered_at: np.ndarray | None, held_out: np.ndarray,
               new_scores: Mapping[str, float] | None, serving_model: ItemModel | None,
               serving_report: Mapping[str, Any] | None,
               serving_metrics: Mapping[str, Any] | None, holdout_last: float = 0.2,
               model_type: str = "2pl",
               fit_simpler: Callable[[str], ItemModel] | None = None,
               item_skills: Sequence[str | None] | None = None,
               aged_models: Sequence[tuple[int, str, float, ItemModel]] = (),
               new_replay: Replay | None = None) -> Checks:
    """Every check of this module that a refresh runs before the decision.

    Args:
        config: thresholds.
        new_model: the calibrated model; ``history``, ``log_likelihood``, ``converged``:
            from its :class:`~irt.engine.calibrate.FitResult`.
        responses: the prepared answers (:class:`~irt.engine.responses.Responses`).
        answered_at: their times in epoch seconds (``None``: no times).
        held_out: the gate's hold-out mask; ``new_scores``: the gate's metrics of the new
            model on it (``None`` when nothing was held out).
        serving_model: the model serving now, with its ``report.json`` and ``metrics.json``.
        holdout_last: the gate's share of each student's latest answers (the protocol of
            the offline figure that served-data quality is compared with).
        model_type: the new model's type; ``fit_simpler(type)``: fits the challenger on the
            same training answers (``None``: no challenger).
        item_skills: the skill id of each item of ``responses.item_ids`` (``None``: the item
            has none), from the log's skill column; ``None`` without one (no skill slices).
        aged_models: the stored versions of the staleness curve (:func:`staleness_curve`).
        new_replay: the gate's online replay of ``new_model`` on the held-out students
            (:func:`irt.refresh.quality.holdout_replay`), reused by :func:`slice_scores`
            (``None``: the slices replay them).

    Returns:
        :class:`Checks`.
    """
    out = Checks()
    student = np.asarray(responses.student, dtype=np.int64)
    answer_skill = None if item_skills is None else \
        np.asarray(list(item_skills), dtype=object)[responses.item]
    item_ids = np.asarray(responses.item_ids, dtype=object)[responses.item]
    correct = np.asarray(responses.correct)
    order_key = answered_at if answered_at is not None else np.arange(student.size, dtype=float)
    out.profile = data_profile(student, responses.item, correct, len(responses.student_ids),
                               len(responses.item_ids))
    previous = (serving_report or {}).get("profile")
    out.figures["drift"], alerts = drift(out.profile, previous, config)
    out.alert("data_drift", alerts)

    figures, problems, warnings = numerical_checks(new_model, history, log_likelihood,
                                                   converged)
    out.figures["numerical"] = figures
    out.problems += problems
    out.alert("numerical", warnings)

    figures, problems = skew_check(new_model, student, item_ids, correct, order_key,
                                   responses.student_ids, config)
    out.figures["skew"] = figures
    out.problems += problems

    if new_scores and held_out.any():
        codes = np.asarray(responses.item)
        base = baseline_scores(codes[~held_out], correct[~held_out], codes[held_out],
                               correct[held_out])
        out.figures["baseline"] = {"item_proportion": base}
        out.problems += beats_baseline(new_scores, base, config.baseline_tolerance)
        counts = np.bincount(codes[~held_out], minlength=len(responses.item_ids))
        figures, problems = slice_scores(new_model, student, item_ids, correct, order_key,
                                         held_out, dict(zip(responses.item_ids, counts.tolist(),
                                                            strict=True)), config,
                                         new_scores.get("auc"), answer_skill,
                                         replay=new_replay)
        out.figures["slices"] = figures
        out.problems += problems
        out.figures["staleness"] = staleness_curve(new_scores, aged_models, student, item_ids,
                                                   correct, order_key, held_out)
        if fit_simpler is not None:
            figures, alerts = simpler_model(config, model_type, fit_simpler, new_scores,
                                            student, item_ids, correct, order_key, held_out)
            out.figures["simpler_model"] = figures
            out.alert("simpler_model", alerts)

    served_auc = None
    if serving_model is not None and answered_at is not None:
        since = _parse_time(serving_model.data_summary.get("window_end"))
        offline = ((serving_metrics or {}).get("gate") or {}).get("new") or {}
        if since is not None:
            figures, alerts = served_quality(serving_model, since, offline.get("auc"),
                                             student, item_ids, correct, order_key,
                                             responses.student_ids, config, holdout_last)
            out.figures["served_quality"] = figures
            out.alert("served_quality", alerts)
            served_auc = (figures.get("online_gate_protocol") or {}).get("auc")
    trend = ((serving_metrics or {}).get("monitoring") or {}).get("served_trend") or {}
    figures, alerts = served_trend(trend.get("history"), served_auc,
                                   serving_model.version if serving_model else None, config)
    out.figures["served_trend"] = figures
    out.alert("served_quality_trend", alerts)
    out.figures["config"] = asdict(config)
    out.figures = _clean(out.figures)
    out.profile = _clean(out.profile)
    return out
