"""Calibration of the learning-aware model (:mod:`irt.engine.learning`) by marginal maximum
likelihood (with priors: a posterior mode).

numpy and scipy.sparse; used by ``prepare`` and the CLI, never by ``predict``.

Starting from a calibrated 2PL (:func:`irt.engine.calibrate.fit`), EM maximises over the item
parameters ``a_j, d_j = -a_j b_j``, the offset SD ``tau``, the covariate coefficients
``beta, gamma_k`` and the skill means of the difficulties ``mu_k``::

    l = sum_s log sum_q w_q prod_{k in K(s)} g_sk(x_q)
        + sum_j log LN(a_j; prior_a) + sum_j log N(b_j; mu_k(j), sigma_b^2)
        + sum_k log N(mu_k; prior_b) + sum_k log N(gamma_k; 0, sigma_g^2 I)
        + log N(beta; 0, sigma_beta^2 I) + log N(log tau; skill_sd_prior)

    g_sk(x_q) = sum_r K_tau(x_q, x_r) prod_{i in A(s, k)} P(y_i | u = x_r, x_i)

on the fixed quadrature ``x_q`` (``w_q`` oc N(0, 1)), ``K_tau`` the discretised offset kernel
(rows normalised; the identity for items without a skill or without the "skills" option).
Without "skills" the difficulty prior is ``prior_b`` and there is no ``tau`` or ``mu``;
without "pfa" there are no covariates.  The coefficients are regularised: the shared
``beta`` by ``N(0, sigma_beta^2)`` (``beta_sd``, default 1: a weak prior that only matters
where the log says little, e.g. a feature that is constant in training), the per-skill
``gamma_k`` by ``N(0, sigma_g^2)`` (``coefficient_sd``, 0.3: they are deviations from
``beta``), and the offset SD ``tau`` by its lognormal prior (below).  The marginal
likelihood of a student is the product of the online predictive probabilities of their
answers, so maximising it is maximising the online (prequential) likelihood of the training
students.

The prior on ``tau`` (lognormal, median 0.8, ``sdlog`` 0.25): when students answer about one
item per skill - first attempts on a log where item = skill (ASSISTments 2015), or a bank of
rarely served items - the likelihood hardly tells ``tau`` from the slopes, and its maximum
drifts toward 0 along a flat ridge; the prior keeps ``tau`` where such data cannot place it
(on ASSISTments 2009, where they can, it moves ``tau`` by 0.001).

E-step, per student and (student, skill) pair.  Pass 1 over the answers: each pair's
log-likelihood ``L_p`` at every node (a sparse sum of the answers' rows); with "skills",
also the marginal log-likelihood's first and second derivatives in ``log tau`` at the
current items, from which ``tau`` takes one Newton step (ECME, Liu & Rubin 1994: a
conditional maximisation of the observed posterior rather than of the expected complete-data
one, which moves ``tau`` by only a fraction of the way when students have few answers per
skill - on the extremely sparse benchmark log ``tau`` moved by about 0.001 per E-step
from 0.8 toward its maximum near 0.1, and EM stopped after 87 E-steps still at 0.44; the
step is halved until the posterior does not fall).  Pass 2 over the pairs, at the new
``tau``: ``log g_p`` by the convolution, the general posterior
``pi_s(q) oc w_q prod_p g_p(q)``, the posterior of each pair's ``u``::

    rho_p(r) oc exp(L_p(r)) sum_q pi_s(q) / g_p(q) K(q, r)

Work is in chunks of whole students: memory O(chunk x nodes + pairs x nodes).  The answers
x nodes and pairs x nodes arrays are float32 during the iterations (sums in float64;
``exp`` floored at ``e^-80`` and kernel entries below ``1e-30`` zeroed, as subnormal floats
make the products dozens of times slower), the final log-likelihood float64.

M-step: the item parameters and coefficients take one Fisher-scoring step with step halving
on the expected complete-data log-likelihood ``sum_p sum_r rho_p(r) L_p(r)`` plus the
log-priors - one system coupling every item (2 x 2 blocks) to the shared ``beta`` and its
skill's ``gamma_k``, solved exactly as a two-level arrowhead (items, then skills, then a
5 x 5 system in ``beta``; each item's step kept within a trust region, at most
``MAX_ITEM_STEP`` logits of its linear predictor on the grid); then
``mu_k`` in closed form::

    mu_k = (sum_{j in k} b_j / sigma_b^2 + m_0 / s_0^2) / (n_k / sigma_b^2 + 1 / s_0^2)

(Moving ``mu_k`` jointly with the items converges in fewer E-steps on the sparse benchmark,
12 instead of 18, but on ASSISTments 2009 with skills and pfa it reaches another local
maximum whose online AUC is 0.005 lower: the objective there has several.)

SQUAREM (as :func:`irt.engine.calibrate.fit`) accelerates the EM map, with a fall-back to the plain
step whenever an extrapolation lowers the penalised objective.  Convergence (unchanged):
every parameter moves less than ``tol`` in an E-step, or the penalised objective rises by
less than ``ftol`` per answer and E-step over the last three; ``max_iter`` caps the E-steps.
Recency (``lambda``) is a prediction-time weighting, not part of the likelihood: it is set
by configuration, not calibrated.

Size: with more than ``max_answers`` training answers (default
:data:`irt.engine.defaults.DEFAULTS` ``.learning_max_answers``) the options are calibrated on
a deterministic sample of whole students (:func:`sample_students`: the smallest
``MD5(student_id)``, as ``prepare``'s per-item cap); items nobody in the sample answered keep
the plain fit's parameters.  The fit summary records the rule and the answers before and
after.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from irt.engine import defaults
from irt.engine.hashing import id_hash
from irt.engine.learning import (
    _SKILL_COLUMNS,
    DEFAULT_BOUND,
    DEFAULT_POINTS,
    FEATURES,
    IDENTITY,
    SKILL_FEATURES,
    Learning,
    history_features,
    learning_to_dict,
    skill_kernel,
)
from irt.engine.model import ItemModel
from irt.engine.responses import Responses
from irt.engine.squarem import squarem

_NF = len(FEATURES)
_NZ = len(SKILL_FEATURES)
#: ``tau`` stays in ``[0.05, 5]``; one Newton step moves ``log tau`` by at most 1.
_LOG_TAU_MIN, _LOG_TAU_MAX = math.log(0.05), math.log(5.0)
_TAU_MAX_STEP = 1.0


@dataclass(frozen=True)
class LearningConfig:
    """Settings of the learning-aware options.

    Attributes:
        options: subset of :data:`irt.engine.learning.OPTIONS` (``()``: the plain model).
        decay: recency weight ``lambda`` per later answer ("recency").
        window: ``w``, answers in the covariates' recent window ("pfa").
        difficulty_sd: ``sigma_b``, SD of item difficulties around their skill's mean
            ("skills"; default ``DEFAULTS.learning_difficulty_sd``, 1.5).  It sets how hard the
            joint maximum pulls each difficulty to its skill's mean, not an estimate of the
            spread (about 0.8 on ASSISTments 2009, from the plain fit's well-answered items).
            At 1 the penalised maximum lay far from the data's: on the AKT folds of
            ASSISTments 2009 (16,500 items, about 13 answers each) the EM crept for 100-210
            E-steps while the difficulties rose by 1.65 on average, the log-likelihood fell
            and the priors' terms rose, and the maximum predicted new students worse (fold
            2: test log-loss 0.5353 against 0.5195 at 100 E-steps); on the Gervet split of
            ASSISTments 2009 only the early stop below kept it near the data.  At 2 every fit
            converged in 21-52 E-steps (fold 2: to the same point with and without the
            objective stop) and ``auto`` chose ``recency,skills,pfa`` on all five folds
            (README "Sparse logs and skills"); ASSISTments 2009 (Gervet) lost 0.0009 AUC, and
            on the simulated sparse log (truth: 0.5) the RMSE of ``b`` on items with 20+
            answers rose from 0.46 to 0.59 (``benchmarks/bench_learning_sparse.py``).  At 1.5
            (the default since 2026-12-07) every fit converged as well, ``auto``'s AUC rose
            on 6 of the 8 ASSISTments 2009/2015/Spanish logs and AKT folds (0.0008-0.0015;
            equal on 2015, 0.0004 lower on Spanish), the option sets' AUC with ``skills``
            rose by 0.005-0.008 on the synthetic long-tail and small logs of
            ``benchmarks/auto_sweep.py`` and fell on none of its 42, and the sparse RMSE
            of ``b`` was 0.51 (``skills``; 0.57 at 2).
        coefficient_sd: ``sigma_g``, SD of the per-skill coefficients around 0 ("pfa").
        beta_sd: ``sigma_beta``, SD of the normal prior on the shared coefficients ``beta``
            ("pfa").
        skill_sd_start: starting ``tau``.
        skill_sd_prior: ``(meanlog, sdlog)`` of the lognormal prior on ``tau`` ("skills"),
            or ``None`` (maximum likelihood: ``tau`` may then drift to its lower bound 0.05
            where the data cannot place it).
        prior_a: lognormal prior on slopes ``(meanlog, sdlog)`` or ``None``.
        prior_b: normal prior on difficulties ``(mean, sd)``: of every difficulty without
            "skills", of the skill means ``mu_k`` and of items without a skill with it.
        n_quadrature: calibration nodes on ``[-bound, bound]``.
        n_points: nodes of the prediction grid stored in the artifact.
        bound: grid half-width.
        tol: convergence: every parameter moves less than this in an E-step ...
        ftol: ... or the penalised log-likelihood (log-priors included, that of ``tau``
            too) rises by less than this per answer and E-step (over the last three; a slow
            drift along a flat ridge).  ASSISTments 2009 with skills and pfa stops so after
            27 E-steps (AUC 0.7830); the old EM run on to 297 E-steps reaches a higher
            maximum with AUC 0.7778: the objective has several maxima and the stop is part of
            the estimator.
        max_iter: cap on E-steps.
        accelerate: SQUAREM.
        chunk_answers: answers per chunk (whole students).
        max_answers: calibrate on at most this many answers, a deterministic sample of whole
            students (:func:`sample_students`); ``None``: all.
    """

    options: tuple[str, ...] = ()
    decay: float = field(default_factory=lambda: defaults.DEFAULTS.recency_decay)
    window: int = field(default_factory=lambda: defaults.DEFAULTS.pfa_window)
    difficulty_sd: float = field(
        default_factory=lambda: defaults.DEFAULTS.learning_difficulty_sd)
    coefficient_sd: float = 0.3
    beta_sd: float = field(default_factory=lambda: defaults.DEFAULTS.pfa_beta_sd)
    skill_sd_start: float = 0.8
    skill_sd_prior: tuple[float, float] | None = (math.log(0.8), 0.25)
    prior_a: tuple[float, float] | None = field(default_factory=lambda: defaults.DEFAULTS.prior_a)
    prior_b: tuple[float, float] = field(
        default_factory=lambda: defaults.DEFAULTS.prior_b)  # type: ignore[arg-type, return-value]
    n_quadrature: int = 41
    n_points: int = DEFAULT_POINTS
    bound: float = DEFAULT_BOUND
    tol: float = 1e-3
    ftol: float = 1e-5
    max_iter: int = 100
    accelerate: bool = True
    chunk_answers: int = 50_000
    max_answers: int | None = field(
        default_factory=lambda: defaults.DEFAULTS.learning_max_answers)

    def __post_init__(self) -> None:
        from irt.engine.learning import OPTIONS

        if not set(self.options) <= set(OPTIONS):
            raise ValueError(f"options must be among {', '.join(OPTIONS)}")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError("decay must be in (0, 1]")
        if self.window < 1:
            raise ValueError("window must be at least 1")
        if self.prior_b is None:
            raise ValueError("the learning-aware options need a difficulty prior (prior_b): "
                             "it is the prior of the skill means")
        for name in ("difficulty_sd", "coefficient_sd", "beta_sd", "skill_sd_start", "tol", "ftol",
                     "bound"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.skill_sd_prior is not None and not self.skill_sd_prior[1] > 0:
            raise ValueError("skill_sd_prior needs a positive sdlog")
        if self.max_answers is not None and self.max_answers < 1:
            raise ValueError("max_answers must be at least 1 (or None: no cap)")
        if self.max_iter < 1 or self.n_quadrature < 11:
            raise ValueError("max_iter must be >= 1 and n_quadrature >= 11")


@dataclass
class LearningFit:
    """Outcome of :func:`fit_learning`.

    Attributes:
        model: the item model with ``options["learning"]``.
        iterations: E-steps run (0 when nothing is calibrated: recency alone).
        converged: whether ``tol`` was reached.
        log_likelihood: marginal log-likelihood at the estimates (without priors).
        history: the penalised objective after each E-step.
    """

    model: ItemModel
    iterations: int
    converged: bool
    log_likelihood: float
    history: list[float] = field(default_factory=list)


def fit_learning(base: ItemModel, responses: Responses, order_key: np.ndarray | None,
                 item_skill: np.ndarray | None, skill_ids: Sequence[str],
                 config: LearningConfig) -> LearningFit:
    """Calibrate the learning-aware options on top of a calibrated model.

    Args:
        base: the plain calibrated model (2PL; its parameters are the starting values).
        responses: the training answers (those of items ``base`` left out are ignored).
        order_key: answer time of each answer (``None``: the given order); each
            student's answers are taken in this order.
        item_skill: skill index of each item of ``responses.item_ids`` (``-1``: none);
            ``None`` with no skill map (only "recency" is then possible).
        skill_ids: external id of each skill index.
        config: the options and their settings.

    Returns:
        A :class:`LearningFit`; with no option the base model unchanged.  Above
        ``config.max_answers`` answers, calibrated on a sample of whole students
        (:func:`sample_students`; the summary is ``fit["sample"]`` of the options); the items
        outside it keep ``base``'s parameters.

    Raises:
        ValueError: "skills" or "pfa" without a skill map, or a base model other than 2pl.
    """
    options = tuple(config.options)
    if not options:
        return LearningFit(base, 0, True, float(base.fit.get("log_likelihood", math.nan)))
    if base.model_type != "2pl":
        raise ValueError(f"learning options need a 2pl model, not {base.model_type}")
    needs_map = "skills" in options or "pfa" in options
    if needs_map and (item_skill is None or not len(skill_ids) or not np.any(
            np.asarray(item_skill) >= 0)):
        raise ValueError("options 'skills' and 'pfa' need an item -> skill map (a skill column)")
    # the model's items: skill of each model position
    model_skill = np.full(base.n_items, -1, dtype=np.int64)
    pos_of = base.positions(list(responses.item_ids))
    if item_skill is not None:
        sk = np.asarray(item_skill, dtype=np.int64)
        ok = pos_of >= 0
        model_skill[pos_of[ok]] = sk[ok]
    skill_ids = tuple(skill_ids) if item_skill is not None else ()
    used = np.unique(model_skill[model_skill >= 0])
    # keep only the skills of the model's items, renumbered
    renumber = np.full(len(skill_ids) + 1, -1, dtype=np.int64)
    renumber[used] = np.arange(used.shape[0])
    model_skill = np.where(model_skill >= 0, renumber[model_skill], -1)
    skill_ids = tuple(skill_ids[k] for k in used.tolist())
    spec = Learning(options=options, decay=config.decay if "recency" in options else 1.0,
                    skill_sd=0.0, window=config.window, skill_ids=skill_ids,
                    item_skill=model_skill if needs_map else np.full(base.n_items, -1),
                    gamma=np.zeros((len(skill_ids), _NZ)), n_points=config.n_points,
                    bound=config.bound)
    if not needs_map:  # recency alone: a prediction-time weighting of the same items
        spec = replace(spec, skill_ids=(), gamma=np.zeros((0, _NZ)),
                       fit={"method": "none (recency is set, not calibrated)"})
        return LearningFit(_with_options(base, spec, base.a, base.b), 0, True,
                           float(base.fit.get("log_likelihood", math.nan)))
    responses, order_key, sample = sample_students(responses, order_key, pos_of,
                                                   config.max_answers)
    data = _Data.build(base, responses, order_key, model_skill, config)
    em = _EM(data, config, base, len(skill_ids), "skills" in options, "pfa" in options)
    v, iterations, converged, history, loglik = em.run()
    a, d, beta, gamma, tau, mu = em.split(v)
    b = -d / a
    # items without an answer in the sample keep the base model's parameters (exactly)
    a[~em.active], b[~em.active] = base.a[~em.active], base.b[~em.active]
    sample["n_items_calibrated"] = int(em.active.sum())
    fit_info = {"method": "MML-EM (two-tier quadrature" + (", SQUAREM" if config.accelerate
                                                           else "") + ")",
                "iterations": iterations, "converged": converged, "tol": config.tol,
                "log_likelihood": loglik, "n_answers": int(data.n),
                "n_students": int(data.n_students), "n_pairs": int(data.n_pairs),
                "n_quadrature": config.n_quadrature, "sample": sample}
    if "skills" in options:
        fit_info["skill_sd_prior"] = None if config.skill_sd_prior is None else list(
            config.skill_sd_prior)
        fit_info.update(difficulty_sd=config.difficulty_sd,
                        skill_difficulty_means={s: float(m) for s, m in
                                                zip(skill_ids, mu, strict=True)})
    if "pfa" in options:
        fit_info.update(coefficient_sd=config.coefficient_sd, beta_sd=config.beta_sd)
    spec = replace(spec, skill_sd=float(tau) if "skills" in options else 0.0,
                   beta=beta if "pfa" in options else np.zeros(_NF),
                   gamma=gamma if "pfa" in options else np.zeros((len(skill_ids), _NZ)),
                   fit=fit_info)
    model = _with_options(base, spec, a, b)
    if base.skills:
        means = dict(zip(skill_ids, mu.tolist(), strict=True)) if "skills" in options else {}
        model = replace(model, skills=_skills_after(model, base.skills, means), _cache={})
    return LearningFit(model, iterations, converged, loglik, history)


def _skills_after(model: ItemModel, before: dict[str, Any], means: dict[str, float]
                  ) -> dict[str, Any]:
    """The ``skills`` section (:func:`irt.engine.calibrate.skills_section`) of the model the
    options recalibrated: its items' slopes and difficulties, and as a skill's typical
    difficulty the options' skill mean ``mu_k`` ("skills") where it has one, else the mean
    difficulty of the skill's items.  The item -> skill map and the provisional items are
    the plain fit's."""
    from irt.engine.calibrate import skills_section

    skill_ids = list(before["parameters"])
    index = {k: q for q, k in enumerate(skill_ids)}
    own = before.get("item_skills", {})
    item_skill = np.array([index[own[i]] if i in own else -1 for i in model.item_ids],
                          dtype=np.int64)
    doc = skills_section(model.model_type, model.a, model.b, model.c, model.item_ids,
                         item_skill, skill_ids, None, before.get("provisional_items"))
    for skill, spec in doc.get("parameters", {}).items():
        if skill in means:
            spec["b"] = float(means[skill])
    return doc


def base_for_options(base: ItemModel, options: Sequence[str], train: Responses,
                     fit_config: Any, item_skill: np.ndarray | None,
                     skill_ids: Sequence[str]) -> ItemModel:
    """The plain model calibrated options ("skills", "pfa") start from: ``base`` itself,
    unless it was fitted with the plain skill prior (``fit["skill_prior"]``); then the same
    plain fit (``fit_config``, the map kept for the ``skills`` section) without it.

    The options model the skills their own way (per-student skill offsets, a hierarchical
    difficulty prior of their own); from the skill prior's difficulties their EM creeps along
    a flat ridge (measured on ASSISTments 2009, ``skills,pfa`` on 80 % of the training
    students: 100 E-steps, the cap, without converging, against 36 from the population
    prior's).  Recency alone is a prediction-time weighting of ``base`` and keeps it.
    """
    if not set(options) - {"recency"} or base.fit.get("skill_prior") is not True:
        return base
    from irt.engine.calibrate import fit

    return fit(train, replace(fit_config, skill_prior=False, compute_se=False), item_skill,
               skill_ids).model




#: How :func:`sample_students` chooses (recorded in the fit summary).
SAMPLE_RULE = ("whole students with the smallest MD5(student_id) (first 8 bytes, big-endian; "
               "ties by id) whose answers add up to at most max_answers")


def student_hash(student_ids: Sequence[str]) -> np.ndarray:
    """A stable 64-bit hash of each id: the first 8 bytes of its MD5, big-endian (the same
    order as ``prepare``'s per-item cap and hold-out sample; not Python's salted ``hash``)."""
    return np.fromiter((id_hash(str(s)) for s in student_ids), dtype=np.uint64,
                       count=len(student_ids))


def sample_students(responses: Responses, order_key: np.ndarray | None, pos_of: np.ndarray,
                    max_answers: int | None
                    ) -> tuple[Responses, np.ndarray | None, dict[str, Any]]:
    """At most ``max_answers`` answers (of the model's items) by :data:`SAMPLE_RULE`:
    ``(responses, order_key, summary)``, unchanged when they fit under the cap.

    Deterministic (the same ids give the same sample whatever their order or the run), and
    stable as a log grows: a student in the sample stays in it while the cap is not
    reached.  ``summary`` records the rule, the cap and the answers and students before and
    after."""
    used = pos_of[responses.item] >= 0
    n_total = int(used.sum())
    counts = np.bincount(responses.student[used], minlength=len(responses.student_ids))
    n_students = int((counts > 0).sum())
    summary: dict[str, Any] = {"rule": SAMPLE_RULE, "max_answers": max_answers,
                               "n_answers_total": n_total, "n_answers_used": n_total,
                               "n_students_total": n_students, "n_students_used": n_students}
    if max_answers is None or n_total <= max_answers:
        summary["rule"] = "all answers (under the cap)" if max_answers else "all answers"
        return responses, order_key, summary
    present = np.flatnonzero(counts > 0)
    ids = [responses.student_ids[s] for s in present.tolist()]
    order = present[np.lexsort((np.array(ids, dtype=object), student_hash(ids)))]
    take = int(np.searchsorted(np.cumsum(counts[order]), max_answers, side="right"))
    if take == 0:
        raise ValueError(f"max_answers {max_answers} is below the answers of the first "
                         "student of the sample: raise the cap")
    chosen = np.zeros(len(responses.student_ids), dtype=bool)
    chosen[order[:take]] = True
    rows = np.flatnonzero(chosen[responses.student] & used)
    summary.update(n_answers_used=int(rows.shape[0]), n_students_used=take)
    sub = Responses(responses.student[rows], responses.item[rows], responses.correct[rows],
                    responses.student_ids, responses.item_ids)
    return sub, None if order_key is None else np.asarray(order_key)[rows], summary


def with_recency(model: ItemModel, decay: float) -> ItemModel:
    """``model`` with recency weighting ``decay`` added to its learning-aware options
    (recency is a prediction-time weighting: nothing is recalibrated)."""
    doc = dict(model.options.get("learning") or {"options": []})
    doc["options"] = [o for o in ("recency", "skills", "pfa")
                      if o in doc["options"] or o == "recency"]
    doc["recency_decay"] = float(decay)
    return replace(model, options={**model.options, "learning": doc}, _index=None, _cache={})


def with_calibration(model: ItemModel, calibration: tuple[float, float]) -> ItemModel:
    """``model`` (with learning-aware options) served with ``calibration`` ``(c_0, c_1)`` on
    its next-answer logits (:func:`irt.engine.learning.calibrated`); the identity removes it.
    Nothing is recalibrated."""
    doc = dict(model.options["learning"])
    doc.pop("calibration", None)
    if tuple(calibration) != IDENTITY:
        doc["calibration"] = {"intercept": float(calibration[0]), "slope": float(calibration[1])}
    return replace(model, options={**model.options, "learning": doc}, _index=None, _cache={})


def _with_options(base: ItemModel, spec: Learning, a: np.ndarray, b: np.ndarray) -> ItemModel:
    """A new model with parameters ``a, b`` and ``options["learning"]`` (SEs dropped when the
    parameters changed: they were those of the plain fit)."""
    same = np.array_equal(a, base.a) and np.array_equal(b, base.b)
    nan = np.full(base.n_items, np.nan)
    fit = dict(base.fit)
    if not same:
        fit["se_method"] = "none"
        fit["learning"] = spec.fit
    return replace(base, a=np.asarray(a, dtype=float), b=np.asarray(b, dtype=float),
                   se_a=base.se_a if same else nan, se_b=base.se_b if same else nan,
                   se_c=base.se_c if same else nan, fit=fit,
                   options={**base.options, "learning": learning_to_dict(spec, base.item_ids)},
                   _index=None, _cache={})


# --------------------------------------------------------------------------- data layout
@dataclass
class _Data:
    """Training answers in (student, skill, time) order, with pairs and chunks."""

    n: int
    n_students: int
    n_pairs: int
    item: np.ndarray          # model position per answer
    y: np.ndarray             # 0/1 float per answer
    feats: np.ndarray         # covariates x per answer (n, 5)
    skill: np.ndarray         # skill per answer (-1 none)
    pair: np.ndarray          # pair per answer
    pair_start: np.ndarray    # first answer of each pair
    pair_student: np.ndarray  # student (0..) of each pair
    pair_offset: np.ndarray   # pair has a skill offset (skills option and a skill)
    student_start: np.ndarray  # first pair of each student
    chunks: list[tuple[int, int, int, int]]  # (answer lo, hi, pair lo, hi), whole students

    @classmethod
    def build(cls, base: ItemModel, responses: Responses, order_key: np.ndarray | None,
              model_skill: np.ndarray, config: LearningConfig) -> _Data:
        pos = base.positions(list(responses.item_ids))[responses.item]
        keep = np.flatnonzero(pos >= 0)
        student = responses.student[keep].astype(np.int64)
        key = np.arange(keep.shape[0], dtype=float) if order_key is None else \
            np.asarray(order_key, dtype=float)[keep]
        t_order = np.lexsort((np.arange(keep.shape[0]), key, student))
        student, item = student[t_order], pos[keep][t_order]
        y = responses.correct[keep][t_order].astype(np.float64)
        skill = model_skill[item]
        feats = history_features(student, skill, y, np.ones(y.shape[0], dtype=bool),
                                 config.window) if "pfa" in config.options else np.zeros(
                                     (y.shape[0], _NF))
        # (student, skill, time) order: each pair contiguous, students contiguous
        p_order = np.lexsort((np.arange(y.shape[0]), skill, student))
        student, item, y, skill, feats = (student[p_order], item[p_order], y[p_order],
                                          skill[p_order], feats[p_order])
        n = y.shape[0]
        new_pair = np.r_[True, (student[1:] != student[:-1]) | (skill[1:] != skill[:-1])]
        pair_start = np.flatnonzero(new_pair)
        pair = np.cumsum(new_pair) - 1
        ps = student[pair_start]
        new_student = np.r_[True, ps[1:] != ps[:-1]]
        student_start = np.flatnonzero(new_student)
        pair_student = np.cumsum(new_student) - 1
        pair_offset = ("skills" in config.options) & (skill[pair_start] >= 0)
        # chunks of whole students, about chunk_answers answers each
        answer_of_student = np.r_[pair_start[student_start], n]
        chunks = []
        lo_s = 0
        n_s = student_start.shape[0]
        while lo_s < n_s:
            hi_s = int(np.searchsorted(answer_of_student,
                                       answer_of_student[lo_s] + config.chunk_answers, "right"))
            hi_s = min(max(hi_s - 1, lo_s + 1), n_s)
            p_lo = int(student_start[lo_s])
            p_hi = int(student_start[hi_s]) if hi_s < n_s else pair_start.shape[0]
            chunks.append((int(answer_of_student[lo_s]), int(answer_of_student[hi_s]), p_lo,
                           p_hi))
            lo_s = hi_s
        return cls(n, n_s, pair_start.shape[0], item, y, feats, skill, pair, pair_start,
                   pair_student, pair_offset, student_start, chunks)


def _sum_by(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """``out[g] = sum of values[i] over index[i] == g``: (n, columns), one bincount a column
    (much faster than ``np.add.at``)."""
    return np.stack([np.bincount(index, weights=values[:, c], minlength=n)
                     for c in range(values.shape[1])], axis=1)


@dataclass
class _Chunk:
    """Whole students' answers ``lo:hi`` and pairs ``p_lo:p_hi``, with the sparse sums
    answers -> pairs, pairs -> students and offset pairs -> students (``np.add.reduceat``
    over many short runs is ten times slower)."""

    lo: int
    hi: int
    p_lo: int
    p_hi: int
    student: np.ndarray  # student (0.. in the chunk) of each pair
    off: np.ndarray      # the pairs with an offset (positions in the chunk)
    _sums: dict = field(default_factory=dict)

    @classmethod
    def build(cls, data: _Data, lo: int, hi: int, p_lo: int, p_hi: int) -> _Chunk:
        student = data.pair_student[p_lo:p_hi] - data.pair_student[p_lo]
        return cls(lo, hi, p_lo, p_hi, student, np.flatnonzero(data.pair_offset[p_lo:p_hi]),
                   {"pair": data.pair[lo:hi] - data.pair[lo]})

    def sums(self, dtype: type) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
        """``(answers -> pairs, pairs -> students, offset pairs -> students)`` in ``dtype``."""
        if dtype not in self._sums:
            pair = self._sums["pair"]
            n_p, n_s = self.p_hi - self.p_lo, int(self.student[-1]) + 1

            def ones(rows: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
                return sp.csr_matrix((np.ones(rows.shape[0], dtype=dtype),
                                      (rows, np.arange(rows.shape[0]))), shape=shape)

            self._sums[dtype] = (ones(pair, (n_p, self.hi - self.lo)),
                                 ones(self.student, (n_s, n_p)),
                                 ones(self.student[self.off], (n_s, self.off.shape[0])))
        return self._sums[dtype]


#: ``exp`` below ``exp(-80)`` is taken as ``exp(-80)`` in the float32 pair arithmetic, and
#: kernel entries below ``1e-30`` as 0: subnormal floats (below ~1e-38) make the products
#: dozens of times slower on x86 and change nothing that matters.
_LOG_FLOOR = -80.0
#: The largest change of an item's linear predictor (logits, at the grid's edge) in one
#: M-step (see ``_newton``): far above any step of the logs measured (at most 52, on the
#: AKT folds of ASSISTments 2009), far below an uninformative item's (1e4-1e6).
MAX_ITEM_STEP = 1000.0


def _flush(kernel: np.ndarray, dtype: type) -> np.ndarray:
    """``kernel`` as a contiguous ``dtype`` array with entries below ``1e-30`` set to 0."""
    out = np.ascontiguousarray(kernel, dtype=dtype)
    out[np.abs(out) < 1e-30] = 0.0
    return out


def _expected(rho: np.ndarray, L: np.ndarray) -> float:
    """``sum_p sum_q rho_p(q) L_p(q)``: the expected complete-data log-likelihood of pairs."""
    return float(np.einsum("nq,nq->n", rho, L).sum(dtype=np.float64))


def _kernel_derivatives(x: np.ndarray, tau: float) -> np.ndarray:
    """``(K, dK/ds, d2K/ds2)`` of the offset kernel (:func:`irt.engine.learning.skill_kernel`)
    in ``s = log tau``, shape ``(3, Q, Q)``.  With ``u = (x_r - x_q)^2 / tau^2`` and
    ``c_q = sum_r K_qr u_qr``: ``K' = K (u - c)``, ``K'' = K' (u - c) - K (2 u + c')`` where
    ``c'_q = sum_r K'_qr u_qr - 2 c_q``."""
    k = skill_kernel(x, tau)
    u = (x[None, :] - x[:, None]) ** 2 / tau**2
    c = np.sum(k * u, axis=1, keepdims=True)
    k1 = k * (u - c)
    c1 = np.sum(k1 * u, axis=1, keepdims=True) - 2.0 * c
    k2 = k1 * (u - c) - k * (2.0 * u + c1)
    return np.stack([k, k1, k2])


# --------------------------------------------------------------------------- EM
class _EM:
    def __init__(self, data: _Data, config: LearningConfig, base: ItemModel, n_skills: int,
                 skills: bool, pfa: bool) -> None:
        self.data, self.cfg, self.K = data, config, n_skills
        self.skills, self.pfa = skills, pfa
        self.nI = base.n_items
        x = np.linspace(-config.bound, config.bound, config.n_quadrature)
        lw = -0.5 * x * x
        self.x, self.log_w = x, lw - np.logaddexp.reduce(lw)
        self.base = base
        self.item_skill = np.full(self.nI, -1, dtype=np.int64)
        self.item_skill[data.item] = data.skill
        self.n_f = (_NF + _NZ * n_skills) if pfa else 0
        # float32 for the answers x nodes arrays during the iterations (sums in float64);
        # the final log-likelihood in float64
        self.dtype: type = np.float32
        self.has_z = data.skill >= 0
        self.chunks = [_Chunk.build(data, *bounds) for bounds in data.chunks]
        # items answered in the data: the others (outside a capped sample) stay fixed
        self.active = np.bincount(data.item, minlength=self.nI) > 0

    # parameter vector: [a, d, beta, gamma, log tau, mu]
    def split(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                            float, np.ndarray]:
        nI, K = self.nI, self.K
        a, d = v[:nI], v[nI:2 * nI]
        k = 2 * nI
        beta = v[k:k + _NF] if self.pfa else np.zeros(_NF)
        k += _NF if self.pfa else 0
        gamma = v[k:k + _NZ * K].reshape(K, _NZ) if self.pfa else np.zeros((K, _NZ))
        k += _NZ * K if self.pfa else 0
        tau = math.exp(v[k]) if self.skills else 0.0
        mu = v[k + 1:k + 1 + K] if self.skills else np.zeros(K)
        return a, d, beta, gamma, tau, mu

    def join(self, a, d, beta, gamma, tau, mu) -> np.ndarray:
        parts = [a, d]
        if self.pfa:
            parts += [beta, gamma.ravel()]
        if self.skills:
            parts += [[math.log(tau)], mu]
        return np.concatenate([np.asarray(p, dtype=float).ravel() for p in parts])

    def _offsets(self, beta: np.ndarray, gamma: np.ndarray, lo: int, hi: int) -> np.ndarray:
        if not self.pfa:
            return np.zeros(hi - lo)
        f = self.data.feats[lo:hi]
        o = f @ beta
        sel = self.has_z[lo:hi]
        if sel.any():
            o[sel] += np.einsum("nf,nf->n", f[sel][:, _SKILL_COLUMNS],
                                gamma[self.data.skill[lo:hi][sel]])
        return o

    def _z(self, a, d, o, lo: int, hi: int) -> np.ndarray:
        """Linear predictor of each answer at each node (``self.dtype``)."""
        j = self.data.item[lo:hi]
        z = np.multiply.outer(a[j].astype(self.dtype), self.x.astype(self.dtype))
        z += (d[j] + o).astype(self.dtype)[:, None]
        return z

    def _loglik(self, a, d, o, lo: int, hi: int) -> np.ndarray:
        """``log P(y_i | x_q)`` of each answer at each node (``self.dtype``): ``-softplus(u)``
        with ``u = -(2 y - 1) z``, as ``-(max(u, 0) + log1p(exp(-|u|)))`` (six times faster
        than ``np.logaddexp`` in float32)."""
        u = self._z(a, d, o, lo, hi)
        u *= (1.0 - 2.0 * self.data.y[lo:hi]).astype(self.dtype)[:, None]
        e = np.abs(u)
        np.negative(e, out=e)
        np.exp(e, out=e)
        np.log1p(e, out=e)
        np.maximum(u, 0.0, out=u)
        u += e
        np.negative(u, out=u)
        return u

    def _b_prior(self, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and SD of each item's difficulty prior."""
        m0, s0 = self.cfg.prior_b
        mean = np.full(self.nI, m0)
        sd = np.full(self.nI, s0)
        if self.skills:
            has = self.item_skill >= 0
            mean[has] = mu[self.item_skill[has]]
            sd[has] = self.cfg.difficulty_sd
        return mean, sd

    def log_prior(self, a, d, beta, gamma, mu) -> float:
        if np.any(a <= 0):
            return -math.inf
        out = 0.0
        if self.cfg.prior_a is not None:
            m, s = self.cfg.prior_a
            la = np.log(a)
            out += float(np.sum(-la - 0.5 * ((la - m) / s) ** 2))
        mean, sd = self._b_prior(mu)
        out += float(np.sum(-0.5 * ((-d / a - mean) / sd) ** 2))
        if self.skills:
            m0, s0 = self.cfg.prior_b
            out += float(np.sum(-0.5 * ((mu - m0) / s0) ** 2))
        if self.pfa:
            out += float(-0.5 * np.sum(gamma**2) / self.cfg.coefficient_sd**2)
            out += float(-0.5 * np.sum(beta**2) / self.cfg.beta_sd**2)
        return out

    # ---------------------------------------------------------------- E-step
    def _pair_logliks(self, a, d, beta, gamma, c: _Chunk) -> np.ndarray:
        """Each pair's log-likelihood ``L_p`` at every node (the chunk's pairs x nodes)."""
        ll = self._loglik(a, d, self._offsets(beta, gamma, c.lo, c.hi), c.lo, c.hi)
        return np.asarray(c.sums(self.dtype)[0] @ ll)

    def _student_logs(self, L: np.ndarray, c: _Chunk, kernel: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``(log pi_s unnormalised (students x nodes, float64), exp(L - m) and g of the
        offset pairs)``: ``log g_p = log(exp(L_p) K')`` for pairs with an offset, ``L_p``
        for the others (``kernel``: ``K'``, or ``K'`` and its derivatives side by side, as
        ``g`` then has them)."""
        to_student = c.sums(self.dtype)[1]
        lg = L
        el = g = None
        if kernel is not None and c.off.size:
            every = c.off.shape[0] == L.shape[0]  # (the usual case: no gather, no scatter)
            lo = L if every else L[c.off]
            m = lo.max(axis=1, keepdims=True)
            el = np.exp(np.maximum(lo - m, _LOG_FLOOR))
            g = el @ kernel
            # a node far from every answer's likelihood underflows (float32): keep g > 0
            np.maximum(g[:, :self.x.shape[0]], np.finfo(g.dtype).tiny,
                       out=g[:, :self.x.shape[0]])
            log_g = np.log(g[:, :self.x.shape[0]])
            log_g += m
            if every:
                lg = log_g
            else:
                lg = L.copy()
                lg[c.off] = log_g
        return np.asarray(to_student @ lg, dtype=np.float64) + self.log_w, el, g

    def _tau_terms(self, L: np.ndarray, c: _Chunk, kern: np.ndarray
                   ) -> tuple[float, float, float]:
        """A chunk's marginal log-likelihood and its first and second derivatives in
        ``s = log tau`` (``kern``: :func:`_kernel_derivatives` stacked)::

            dl/ds = sum_s E_pi[h1_s],   d2l/ds2 = sum_s E_pi[h2_s + h1_s^2] - E_pi[h1_s]^2

        ``h1_s(q) = sum_p g'_p(q) / g_p(q)``, ``h2_s(q) = sum_p g''_p / g_p - (g'_p / g_p)^2``
        over the student's pairs with an offset (``g' = exp(L) K'^T``)."""
        nq = self.x.shape[0]
        lp, _, g = self._student_logs(L, c, kern)
        mp = lp.max(axis=1, keepdims=True)
        pi = np.exp(lp - mp)
        tot = pi.sum(axis=1, keepdims=True)
        value = float(np.sum(np.log(tot) + mp))
        if g is None:
            return value, 0.0, 0.0
        pi /= tot
        r1 = g[:, nq:2 * nq] / g[:, :nq]
        r2 = g[:, 2 * nq:] / g[:, :nq] - r1 * r1
        to_student = c.sums(self.dtype)[2]
        e1 = np.asarray(to_student @ r1, dtype=np.float64)
        e2 = np.asarray(to_student @ r2, dtype=np.float64)
        m1 = np.einsum("sq,sq->s", pi, e1)
        return value, float(m1.sum()), float(np.einsum("sq,sq->s", pi, e2 + e1 * e1).sum()
                                             - m1 @ m1)

    def tau_log_prior(self, tau: float) -> float:
        """``log N(log tau; m, s^2)`` of ``skill_sd_prior`` (0 without one or without
        "skills")."""
        if not self.skills or self.cfg.skill_sd_prior is None:
            return 0.0
        m, s = self.cfg.skill_sd_prior
        return -0.5 * ((math.log(tau) - m) / s) ** 2

    def _tau_step(self, grad: float, hess: float, tau: float) -> float:
        """A Newton step on ``log tau`` of the marginal log-likelihood plus the log-prior of
        ``log tau`` (ascent of at most :data:`_TAU_MAX_STEP` where the curvature is not
        negative), within the bounds."""
        s = math.log(tau)
        if self.cfg.skill_sd_prior is not None:
            m, sd = self.cfg.skill_sd_prior
            grad -= (s - m) / sd**2
            hess -= 1.0 / sd**2
        step = -grad / hess if hess < 0 else math.copysign(_TAU_MAX_STEP, grad)
        step = max(min(step, _TAU_MAX_STEP), -_TAU_MAX_STEP)
        return math.exp(min(max(s + step, _LOG_TAU_MIN), _LOG_TAU_MAX))

    def estep(self, v: np.ndarray, tau_step: bool = True
              ) -> tuple[np.ndarray, float, float, float]:
        """``(rho (pairs x nodes), log-likelihood at v, tau, expected complete-data
        log-likelihood)``.

        Pass 1 (answers): each pair's ``L_p`` and, with "skills" and ``tau_step``, the
        marginal log-likelihood's derivatives in ``log tau``; then ``tau`` takes one Newton
        step (ECME: a conditional maximisation of the observed likelihood, items fixed -
        not of the expected complete-data one, which moves ``tau`` by a fraction of the way
        when students have few answers per skill); pass 2 (pairs): the posteriors ``rho``
        at that ``tau``, in place of ``L``.  If the likelihood is lower at the new ``tau``
        the step is halved (the ``L`` recomputed), at worst ``tau`` kept."""
        a, d, beta, gamma, tau, _ = self.split(v)
        data, x = self.data, self.x
        rho = np.empty((data.n_pairs, x.shape[0]), dtype=self.dtype)
        stepping = self.skills and tau_step
        kern = _flush(np.concatenate(_kernel_derivatives(x, tau), axis=0).T, self.dtype) \
            if stepping else None
        loglik = grad = hess = 0.0
        for c in self.chunks:
            L = rho[c.p_lo:c.p_hi] = self._pair_logliks(a, d, beta, gamma, c)
            if stepping:
                val, g1, h1 = self._tau_terms(L, c, kern)
                loglik, grad, hess = loglik + val, grad + g1, hess + h1
        new_tau = self._tau_step(grad, hess, tau) if stepping else tau
        for attempt in range(6):
            if not stepping or attempt == 5 or abs(math.log(new_tau / tau)) < 1e-6:
                new_tau = tau
            value, expected = self._posteriors(rho, new_tau)
            if not stepping:
                loglik = value
            if not stepping or new_tau == tau or \
                    value + self.tau_log_prior(new_tau) >= loglik + self.tau_log_prior(tau):
                return rho, loglik, new_tau, expected
            # lower at the new tau: the L again, half the step
            for c in self.chunks:
                rho[c.p_lo:c.p_hi] = self._pair_logliks(a, d, beta, gamma, c)
            new_tau = math.sqrt(new_tau * tau)
        raise AssertionError("unreachable")  # pragma: no cover

    def _posteriors(self, rho: np.ndarray, tau: float) -> tuple[float, float]:
        """Replace each pair's ``L_p`` in ``rho`` by its posterior at ``tau``;
        ``(marginal log-likelihood, expected complete-data log-likelihood)``."""
        kernel = _flush(skill_kernel(self.x, tau).T, self.dtype) if self.skills else None
        total = expected = 0.0
        for c in self.chunks:
            L = rho[c.p_lo:c.p_hi]
            lp, el, g = self._student_logs(L, c, kernel)
            mp = lp.max(axis=1, keepdims=True)
            pi = np.exp(np.maximum(lp - mp, _LOG_FLOOR))
            tot = pi.sum(axis=1, keepdims=True)
            total += float(np.sum(np.log(tot) + mp))
            pi /= tot
            post = pi.astype(self.dtype)[c.student]
            if g is not None:
                ratio = post[c.off] / g  # pi_s(q) / g_p(q), both scaled by exp(-m)
                r = el * (ratio @ kernel.T)
                r /= r.sum(axis=1, keepdims=True)
                post[c.off] = r
            expected += _expected(post, L)
            rho[c.p_lo:c.p_hi] = post
        return total, expected

    # ---------------------------------------------------------------- M-step
    def mstep(self, v: np.ndarray, rho: np.ndarray, tau: float, expected: float
              ) -> np.ndarray:
        """The items, coefficients and skill means given the posteriors ``rho`` (at ``tau``,
        which the E-step has set)."""
        a, d, beta, gamma, _, mu = self.split(v)
        obj = expected + self.log_prior(a, d, beta, gamma, mu)
        a, d, beta, gamma = self._newton(a, d, beta, gamma, mu, rho, obj)
        if self.skills:  # then mu given the new items (closed form)
            b = -d / a
            m0, s0 = self.cfg.prior_b
            sb2 = self.cfg.difficulty_sd ** 2
            has = self.item_skill >= 0
            num = np.bincount(self.item_skill[has], weights=b[has], minlength=self.K) / sb2
            cnt = np.bincount(self.item_skill[has], minlength=self.K) / sb2
            mu = (num + m0 / s0**2) / (cnt + 1.0 / s0**2)
        return self.join(a, d, beta, gamma, tau, mu)

    def _objective(self, a, d, beta, gamma, mu, rho) -> float:
        """Expected complete-data log-likelihood plus log-priors (computed as the E-step
        computes it: by pair, so that equal parameters give the same value)."""
        total = 0.0
        for c in self.chunks:
            total += _expected(rho[c.p_lo:c.p_hi], self._pair_logliks(a, d, beta, gamma, c))
        return total + self.log_prior(a, d, beta, gamma, mu)

    def _newton(self, a, d, beta, gamma, mu, rho, obj: float):
        """One Fisher-scoring step with step halving on the expected complete-data
        log-likelihood plus log-priors, jointly in the items ``(a_j, d_j)``, ``beta`` and
        the ``gamma_k`` (``mu`` fixed): ``(a, d, beta, gamma)``, each item's step within
        its trust region (:data:`MAX_ITEM_STEP`).

        The system is a two-level arrowhead: each item couples to ``beta`` and to its
        skill's ``gamma_k``; the ``gamma_k`` couple only to ``beta``.  The items are
        eliminated (2 x 2 inverses), then the skills (3 x 3 inverses), leaving a 5 x 5
        system in ``beta``: O(items + skills) work (the system was solved densely in
        ``5 + 3 K`` unknowns before)."""
        data, x, nI, K = self.data, self.x, self.nI, self.K
        ga, gd, iaa, iad, idd = (np.zeros(nI) for _ in range(5))
        nb = _NF if self.pfa else 0  # beta
        ng = _NZ if self.pfa else 0  # gamma_k in a skill block
        g_beta = np.zeros(nb)
        f_bb = np.zeros((nb, nb))
        g_phi = np.zeros((K, ng))
        f_pp = np.zeros((K, ng, ng))
        f_pb = np.zeros((K, ng, nb))
        b_beta = np.zeros((nI, 2, nb))
        b_phi = np.zeros((nI, 2, ng))
        moments = np.stack([np.ones_like(x), x, x * x], axis=1).astype(self.dtype)  # (Q, 3)
        for lo, hi, _, _ in data.chunks:
            j = data.item[lo:hi]
            w = rho[data.pair[lo:hi]]
            o = self._offsets(beta, gamma, lo, hi)
            p = self._z(a, d, o, lo, hi)
            np.negative(p, out=p)
            # exp(-z) overflows to inf where z < -88 (float32; an item far harder than every
            # node, as a sparse item's difficulty may start): p = 1 / (1 + inf) = 0 is the
            # limit, so the overflow changes nothing and is not worth a warning
            with np.errstate(over="ignore"):
                np.exp(p, out=p)
            p += 1.0
            np.reciprocal(p, out=p)
            # r = w (y - p), v = w p (1 - p): their sums and moments in x from three
            # (answers x 2 or 3) products rather than ten answers x nodes passes
            wp = w * p
            y = data.y[lo:hi]
            w1 = (w @ moments[:, :2]).astype(np.float64)
            p1 = (wp @ moments[:, :2]).astype(np.float64)
            r0, r1 = y * w1[:, 0] - p1[:, 0], y * w1[:, 1] - p1[:, 1]
            np.subtract(1.0, p, out=p)
            p *= wp  # v = w p (1 - p)
            v = (p @ moments).astype(np.float64)
            v0, v1, v2 = v[:, 0], v[:, 1], v[:, 2]
            ga += np.bincount(j, r1, nI)
            gd += np.bincount(j, r0, nI)
            iaa += np.bincount(j, v2, nI)
            iad += np.bincount(j, v1, nI)
            idd += np.bincount(j, v0, nI)
            if not self.pfa:
                continue
            f = data.feats[lo:hi]
            zf = np.where(self.has_z[lo:hi, None], f[:, _SKILL_COLUMNS], 0.0)
            k = np.maximum(data.skill[lo:hi], 0)
            full = np.concatenate([f, zf], axis=1)  # (n, 8): x then z
            g_beta += f.T @ r0
            f_bb += f.T @ (v0[:, None] * f)
            g_phi[:, :ng] += _sum_by(k, r0[:, None] * zf, K)
            # per-skill blocks: z z' and z x'
            wf = v0[:, None] * full
            acc = _sum_by(k, (wf[:, :, None] * zf[:, None, :]).reshape(-1, (_NF + _NZ) * _NZ),
                          K).reshape(K, _NF + _NZ, _NZ)
            f_pp[:, :ng, :ng] += acc[:, _NF:]
            f_pb[:, :ng, :] += acc[:, :_NF].transpose(0, 2, 1)
            b_a, b_d = _sum_by(j, v1[:, None] * full, nI), _sum_by(j, wf, nI)
            b_beta[:, 0] += b_a[:, :_NF]
            b_beta[:, 1] += b_d[:, :_NF]
            b_phi[:, 0, :ng] += b_a[:, _NF:]
            b_phi[:, 1, :ng] += b_d[:, _NF:]
        # priors on the items
        if self.cfg.prior_a is not None:
            m, s = self.cfg.prior_a
            la = np.log(a)
            ga += (-1.0 - (la - m) / s**2) / a
            iaa += (1.0 + 1.0 / s**2) / a**2
        mean, sd = self._b_prior(mu)
        b = -d / a
        jac_a, jac_d = d / a**2, -1.0 / a
        g_b = -(b - mean) / sd**2
        ga += g_b * jac_a
        gd += g_b * jac_d
        iaa += jac_a**2 / sd**2
        iad += jac_a * jac_d / sd**2
        idd += jac_d**2 / sd**2
        has = self.item_skill >= 0
        ks = np.where(has, self.item_skill, K)  # items without a skill: a block dropped
        if self.pfa:  # the ridges: gamma ~ N(0, sigma_g^2), beta ~ N(0, sigma_beta^2)
            sg2 = self.cfg.coefficient_sd ** 2
            g_phi[:, :ng] -= gamma / sg2
            f_pp[:, :ng, :ng] += np.eye(ng) / sg2
            sb2 = self.cfg.beta_sd ** 2
            g_beta -= beta / sb2
            f_bb += np.eye(nb) / sb2
        det = iaa * idd - iad**2
        det = np.where(det > 1e-12, det, 1e-12)
        c_aa, c_ad, c_dd = idd / det, -iad / det, iaa / det  # C = A^-1 per item

        def c_times(m: np.ndarray) -> np.ndarray:  # C_j M_j for M (items, 2, cols)
            return np.stack([c_aa[:, None] * m[:, 0] + c_ad[:, None] * m[:, 1],
                             c_ad[:, None] * m[:, 0] + c_dd[:, None] * m[:, 1]], axis=1)

        def by_skill(m: np.ndarray) -> np.ndarray:  # sum over the items of each skill
            return _sum_by(ks, m.reshape(nI, -1), K + 1)[:K].reshape((K, *m.shape[1:]))

        cg = np.stack([c_aa * ga + c_ad * gd, c_ad * ga + c_dd * gd], axis=1)  # C_j g_j
        rest = np.stack([ga, gd], axis=1)  # g_j - B_j (step of beta and of gamma_k(j))
        step_b, step_g = np.zeros(nb), np.zeros((K, ng))
        if self.pfa:
            # eliminate the items: skill blocks S_k (3 x 3), their coupling to beta, and
            # beta's block (5 x 5)
            cb_phi, cb_beta = c_times(b_phi), c_times(b_beta)
            s_pp = f_pp - by_skill(np.einsum("jai,jak->jik", b_phi, cb_phi))
            s_pp += 1e-9 * np.eye(ng)
            r_p = g_phi - by_skill(np.einsum("jai,ja->ji", b_phi, cg))
            s_pb = f_pb - by_skill(np.einsum("jai,jak->jik", b_phi, cb_beta))
            s_bb = f_bb - np.einsum("jai,jak->ik", b_beta, cb_beta)
            r_b = g_beta - np.einsum("jai,ja->i", b_beta, cg)
            # eliminate the skill blocks: a 5 x 5 system in beta
            inv_pb = np.linalg.solve(s_pp, s_pb)
            inv_rp = np.linalg.solve(s_pp, r_p[:, :, None])[:, :, 0]
            s_bb -= np.einsum("kib,kic->bc", s_pb, inv_pb)
            r_b -= np.einsum("kib,ki->b", s_pb, inv_rp)
            step_b = np.linalg.solve(s_bb + 1e-9 * np.eye(nb), r_b)
            step_g = inv_rp - inv_pb @ step_b
            own = np.zeros((nI, ng))
            own[has] = step_g[self.item_skill[has]]
            rest -= np.einsum("jab,b->ja", b_beta, step_b)
            rest -= np.einsum("jai,ji->ja", b_phi, own)
        step_a = np.where(self.active, c_aa * rest[:, 0] + c_ad * rest[:, 1], 0.0)
        step_d = np.where(self.active, c_ad * rest[:, 0] + c_dd * rest[:, 1], 0.0)
        # A trust region per item: no step may move an item's linear predictor by more than
        # MAX_ITEM_STEP logits on the grid.  An item whose answers carry no information
        # (every node far from its difficulty: its log-likelihood is linear in (a, d)) has a
        # Newton step of 1e4-1e6 from the priors' curvature alone; 12 halvings of the joint
        # step never brought its slope above 0, so that no parameter of any item moved and
        # the fit "converged" at its start.  Ordinary steps are far inside the region (the
        # fits of the logs measured are unchanged, bit for bit).
        reach = np.abs(step_a) * float(np.abs(x).max()) + np.abs(step_d)
        shrink = np.minimum(1.0, MAX_ITEM_STEP / np.maximum(reach, 1e-300))
        step_a *= shrink
        step_d *= shrink
        scale = 1.0
        for _ in range(12):
            a_new = a + scale * step_a
            d_new = d + scale * step_d
            beta_new = beta + scale * step_b if self.pfa else beta
            gamma_new = gamma + scale * step_g if self.pfa else gamma
            if np.all(a_new > 0):
                new = self._objective(a_new, d_new, beta_new, gamma_new, mu, rho)
                if new >= obj - 1e-10 * abs(obj):
                    return a_new, d_new, beta_new, gamma_new
            scale *= 0.5
        return a, d, beta, gamma

    # ---------------------------------------------------------------- EM loop
    def em_map(self, v: np.ndarray) -> tuple[np.ndarray, float]:
        """One EM step: ``(next v, log posterior at v)`` (see
        :func:`irt.engine.squarem.squarem`)."""
        a, d, beta, gamma, tau, mu = self.split(v)
        prior = self.log_prior(a, d, beta, gamma, mu)
        if not math.isfinite(prior):
            return v, -math.inf
        prior += self.tau_log_prior(tau)
        rho, loglik, tau, expected = self.estep(v)
        return self.mstep(v, rho, tau, expected), loglik + prior

    def run(self) -> tuple[np.ndarray, int, bool, list[float], float]:
        base = self.base
        beta = np.zeros(_NF)
        gamma = np.zeros((self.K, _NZ))
        mu = np.zeros(self.K)
        if self.skills:
            b = base.b
            has = self.item_skill >= 0
            cnt = np.bincount(self.item_skill[has], minlength=self.K)
            mu = np.bincount(self.item_skill[has], weights=b[has], minlength=self.K) / \
                np.maximum(cnt, 1)
        v = self.join(base.a.copy(), -base.a * base.b, beta, gamma,
                      self.cfg.skill_sd_start, mu)
        cfg = self.cfg
        n_answers = self.data.n
        v, iterations, converged, history = squarem(
            self.em_map, v, tol=cfg.tol, max_iter=cfg.max_iter, accelerate=cfg.accelerate,
            # the objective hardly rises any more: per answer and E-step, below ftol
            stop=lambda h: len(h) >= 4 and h[-1] - h[-4] < 3 * cfg.ftol * n_answers)
        # the log-likelihood at the final parameters, in float64
        self.dtype = np.float64
        _, loglik, _, _ = self.estep(v, tau_step=False)
        return v, iterations, converged, history, float(loglik)
