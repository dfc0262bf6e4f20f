"""Calibration of the learning-aware model (:mod:`irt.engine.learning`) by marginal maximum
likelihood.

numpy only; used by ``prepare`` and the CLI, never by ``predict``.

Starting from a calibrated 2PL (:func:`irt.engine.calibrate.fit`), EM maximises over the item
parameters ``a_j, d_j = -a_j b_j``, the offset SD ``tau``, the covariate coefficients
``beta, gamma_k`` and the skill means of the difficulties ``mu_k``::

    l = sum_s log sum_q w_q prod_{k in K(s)} g_sk(x_q)
        + sum_j log LN(a_j; prior_a) + sum_j log N(b_j; mu_k(j), sigma_b^2)
        + sum_k log N(mu_k; prior_b) + sum_k log N(gamma_k; 0, sigma_g^2 I)
        + log N(beta; 0, sigma_beta^2 I)

    g_sk(x_q) = sum_r K_tau(x_q, x_r) prod_{i in A(s, k)} P(y_i | u = x_r, x_i)

on the fixed quadrature ``x_q`` (``w_q`` oc N(0, 1)), ``K_tau`` the discretised offset kernel
(rows normalised; the identity for items without a skill or without the "skills" option).
Without "skills" the difficulty prior is ``prior_b`` and there is no ``tau`` or ``mu``;
without "pfa" there are no covariates.  The coefficients are regularised: the shared
``beta`` by ``N(0, sigma_beta^2)`` (``beta_sd``, default 1: a weak prior that only matters
where the log says little, e.g. a feature that is constant in training), the per-skill
``gamma_k`` by ``N(0, sigma_g^2)`` (``coefficient_sd``, 0.3: they are deviations from
``beta``), and the skill offsets by their own ``N(0, tau^2)`` with ``tau`` in ``[0.05, 5]``.
The marginal likelihood of a student is the
product of the online predictive probabilities of their answers, so maximising it is
maximising the online (prequential) likelihood of the training students.

E-step, per student and (student, skill) pair: the pair's log-likelihood ``L_p`` at every
node (an ``np.add.reduceat`` of the answers' rows), ``log g_p`` by the convolution, the
general posterior ``pi_s(q) oc w_q prod_p g_p(q)``, the posterior of each pair's ``u``::

    rho_p(r) oc exp(L_p(r)) sum_q pi_s(q) / g_p(q) K(q, r)

and the joint ``(theta, u)`` statistic ``M(q, r) = K(q, r) sum_p pi_s(q) / g_p(q) exp(L_p(r))``.
Work is in chunks of whole students: memory O(chunk x nodes + pairs x nodes).

M-step: ``tau`` maximises ``sum_qr M(q, r) log K_tau(q, r)`` (golden section in ``log tau``);
the item parameters and coefficients take one Fisher-scoring step with step halving on the
expected complete-data log-likelihood ``sum_i sum_r rho_p(i)(r) log P(y_i | x_r)`` plus the
log-priors - one system coupling every item (2 x 2 blocks) to the shared ``beta`` and its
skill's ``gamma_k``, solved exactly through its arrowhead structure (a Schur complement of
size ``5 + 3 K``); then ``mu_k`` in closed form::

    mu_k = (sum_{j in k} b_j / sigma_b^2 + m_0 / s_0^2) / (n_k / sigma_b^2 + 1 / s_0^2)

SQUAREM (as :func:`irt.engine.calibrate.fit`) accelerates the EM map, with a fall-back to the plain
step whenever an extrapolation lowers the penalised objective.  Convergence: every
parameter moves less than ``tol`` in an E-step, or the objective rises by less than ``ftol``
per answer and E-step; ``max_iter`` caps the E-steps.  The answers x nodes arrays are
float32 during the iterations (sums in float64), the final log-likelihood float64.
Recency (``lambda``) is a prediction-time weighting, not part of the likelihood: it is set
by configuration, not calibrated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from irt.engine import defaults
from irt.engine.learning import (
    _SKILL_COLUMNS,
    DEFAULT_BOUND,
    DEFAULT_POINTS,
    FEATURES,
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


@dataclass(frozen=True)
class LearningConfig:
    """Settings of the learning-aware options.

    Attributes:
        options: subset of :data:`irt.engine.learning.OPTIONS` (``()``: the plain model).
        decay: recency weight ``lambda`` per later answer ("recency").
        window: ``w``, answers in the covariates' recent window ("pfa").
        difficulty_sd: ``sigma_b``, SD of item difficulties around their skill's mean
            ("skills"; measured on ASSISTments 2009: 1.0-1.3 best, 0.6 and 1.7 worse).
        coefficient_sd: ``sigma_g``, SD of the per-skill coefficients around 0 ("pfa").
        beta_sd: ``sigma_beta``, SD of the normal prior on the shared coefficients ``beta``
            ("pfa").
        skill_sd_start: starting ``tau``.
        prior_a: lognormal prior on slopes ``(meanlog, sdlog)`` or ``None``.
        prior_b: normal prior on difficulties ``(mean, sd)``: of every difficulty without
            "skills", of the skill means ``mu_k`` and of items without a skill with it.
        n_quadrature: calibration nodes on ``[-bound, bound]``.
        n_points: nodes of the prediction grid stored in the artifact.
        bound: grid half-width.
        tol: convergence: every parameter moves less than this in an E-step ...
        ftol: ... or the penalised log-likelihood rises by less than this per answer and
            E-step (over the last three; a slow drift along a flat ridge - measured on
            ASSISTments 2009: 30 or 90 E-steps change the online AUC by 0.0002).
        max_iter: cap on E-steps.
        accelerate: SQUAREM.
        chunk_answers: answers per chunk (whole students).
    """

    options: tuple[str, ...] = ()
    decay: float = field(default_factory=lambda: defaults.DEFAULTS.recency_decay)
    window: int = field(default_factory=lambda: defaults.DEFAULTS.pfa_window)
    difficulty_sd: float = 1.0
    coefficient_sd: float = 0.3
    beta_sd: float = field(default_factory=lambda: defaults.DEFAULTS.pfa_beta_sd)
    skill_sd_start: float = 0.8
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
        for name in ("difficulty_sd", "coefficient_sd", "beta_sd", "skill_sd_start", "tol",
                     "ftol", "bound"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
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
        A :class:`LearningFit`; with no option the base model unchanged.

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
    data = _Data.build(base, responses, order_key, model_skill, config)
    em = _EM(data, config, base, len(skill_ids), "skills" in options, "pfa" in options)
    v, iterations, converged, history, loglik = em.run()
    a, d, beta, gamma, tau, mu = em.split(v)
    b = -d / a
    fit_info = {"method": "MML-EM (two-tier quadrature" + (", SQUAREM" if config.accelerate
                                                           else "") + ")",
                "iterations": iterations, "converged": converged, "tol": config.tol,
                "log_likelihood": loglik, "n_answers": int(data.n),
                "n_students": int(data.n_students), "n_pairs": int(data.n_pairs),
                "n_quadrature": config.n_quadrature}
    if "skills" in options:
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


def with_recency(model: ItemModel, decay: float) -> ItemModel:
    """``model`` with recency weighting ``decay`` added to its learning-aware options
    (recency is a prediction-time weighting: nothing is recalibrated)."""
    doc = dict(model.options.get("learning") or {"options": []})
    doc["options"] = [o for o in ("recency", "skills", "pfa")
                      if o in doc["options"] or o == "recency"]
    doc["recency_decay"] = float(decay)
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
        """``log P(y_i | x_q)`` of each answer at each node (``self.dtype``)."""
        z = self._z(a, d, o, lo, hi)
        z *= (2.0 * self.data.y[lo:hi] - 1.0).astype(self.dtype)[:, None]
        np.negative(z, out=z)
        np.logaddexp(0.0, z, out=z)
        np.negative(z, out=z)
        return z

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
    def estep(self, v: np.ndarray) -> tuple[np.ndarray, float, np.ndarray | None, float]:
        """``(rho (pairs x nodes), log-likelihood, M (nodes x nodes) or None, expected
        complete-data log-likelihood)``."""
        a, d, beta, gamma, tau, _ = self.split(v)
        data, x = self.data, self.x
        kernel = skill_kernel(x, tau) if self.skills else None
        rho = np.empty((data.n_pairs, x.shape[0]), dtype=self.dtype)
        stat = np.zeros((x.shape[0], x.shape[0])) if self.skills else None
        loglik = expected = 0.0
        for lo, hi, p_lo, p_hi in data.chunks:
            ll = self._loglik(a, d, self._offsets(beta, gamma, lo, hi), lo, hi)
            L = np.add.reduceat(ll, data.pair_start[p_lo:p_hi] - lo, axis=0, dtype=np.float64)
            lg = L.copy()
            off = data.pair_offset[p_lo:p_hi]
            if self.skills and off.any():
                m = L[off].max(axis=1, keepdims=True)
                eL = np.exp(L[off] - m)
                g = eL @ kernel.T
                lg[off] = np.log(g) + m
            ps = data.pair_student[p_lo:p_hi]
            s_lo = ps[0]
            first = data.student_start[(data.student_start >= p_lo) & (data.student_start < p_hi)]
            lp = np.add.reduceat(lg, first - p_lo, axis=0) + self.log_w
            mp = lp.max(axis=1, keepdims=True)
            pi = np.exp(lp - mp)
            tot = pi.sum(axis=1, keepdims=True)
            loglik += float(np.sum(np.log(tot) + mp))
            pi /= tot
            rho[p_lo:p_hi] = pi[ps - s_lo]
            if self.skills and off.any():
                ratio = pi[ps[off] - s_lo] / g  # pi_s(q) / g_p(q), both scaled by exp(-m)
                r = eL * (ratio @ kernel)
                r /= r.sum(axis=1, keepdims=True)
                rho[np.flatnonzero(off) + p_lo] = r
                stat += ratio.T @ eL
            expected += float(np.einsum("nq,nq->n", rho[data.pair[lo:hi]], ll).sum(
                dtype=np.float64))
        if stat is not None:
            stat *= kernel
        return rho, loglik, stat, expected

    # ---------------------------------------------------------------- M-step
    def mstep(self, v: np.ndarray, rho: np.ndarray, stat: np.ndarray | None,
              expected: float) -> np.ndarray:
        a, d, beta, gamma, tau, mu = self.split(v)
        if self.skills and stat is not None:
            tau = self._tau_step(stat, tau)
        obj = expected + self.log_prior(a, d, beta, gamma, mu)
        a, d, beta, gamma = self._newton(a, d, beta, gamma, mu, rho, obj)
        if self.skills:
            b = -d / a
            m0, s0 = self.cfg.prior_b
            sb2 = self.cfg.difficulty_sd ** 2
            has = self.item_skill >= 0
            num = np.bincount(self.item_skill[has], weights=b[has], minlength=self.K) / sb2
            cnt = np.bincount(self.item_skill[has], minlength=self.K) / sb2
            mu = (num + m0 / s0**2) / (cnt + 1.0 / s0**2)
        return self.join(a, d, beta, gamma, tau, mu)

    def _tau_step(self, stat: np.ndarray, tau: float) -> float:
        """Maximise ``sum M log K_tau`` over ``log tau`` in ``[log 0.05, log 5]`` (golden
        section)."""
        x = self.x
        diff2 = (x[None, :] - x[:, None]) ** 2
        row = stat.sum(axis=1)

        def q(log_t: float) -> float:
            t2 = math.exp(2 * log_t)
            logk = -0.5 * diff2 / t2
            lse = np.logaddexp.reduce(logk, axis=1)
            return float(np.sum(stat * logk) - np.sum(row * lse))

        lo, hi = math.log(0.05), math.log(5.0)
        g = (math.sqrt(5) - 1) / 2
        c, e = hi - g * (hi - lo), lo + g * (hi - lo)
        fc, fe = q(c), q(e)
        for _ in range(40):
            if fc > fe:
                hi, e, fe = e, c, fc
                c = hi - g * (hi - lo)
                fc = q(c)
            else:
                lo, c, fc = c, e, fe
                e = lo + g * (hi - lo)
                fe = q(e)
        best = (lo + hi) / 2
        return math.exp(best) if q(best) >= q(math.log(tau)) else tau

    def _objective(self, a, d, beta, gamma, mu, rho) -> float:
        data = self.data
        total = 0.0
        for lo, hi, _, _ in data.chunks:
            ll = self._loglik(a, d, self._offsets(beta, gamma, lo, hi), lo, hi)
            total += float(np.einsum("nq,nq->n", rho[data.pair[lo:hi]], ll).sum(
                dtype=np.float64))
        return total + self.log_prior(a, d, beta, gamma, mu)

    def _newton(self, a, d, beta, gamma, mu, rho, obj: float):
        data, x, nI, K = self.data, self.x, self.nI, self.K
        ga, gd, iaa, iad, idd = (np.zeros(nI) for _ in range(5))
        n_f = self.n_f
        gf = np.zeros(n_f)
        iff = np.zeros((n_f, n_f))
        bmat = np.zeros((nI, 2, _NF + _NZ)) if self.pfa else None
        for lo, hi, _, _ in data.chunks:
            j = data.item[lo:hi]
            w = rho[data.pair[lo:hi]]
            o = self._offsets(beta, gamma, lo, hi)
            p = self._z(a, d, o, lo, hi)
            np.negative(p, out=p)
            np.exp(p, out=p)
            p += 1.0
            np.reciprocal(p, out=p)
            r = w * (data.y[lo:hi, None].astype(self.dtype) - p)
            vv = w * p * (1.0 - p)
            xs = x.astype(self.dtype)
            r0, r1 = r.sum(axis=1, dtype=np.float64), (r @ xs).astype(np.float64)
            v0 = vv.sum(axis=1, dtype=np.float64)
            v1, v2 = (vv @ xs).astype(np.float64), (vv @ (xs * xs)).astype(np.float64)
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
            gf[:_NF] += f.T @ r0
            iff[:_NF, :_NF] += f.T @ (v0[:, None] * f)
            gf[_NF:] += _sum_by(k, r0[:, None] * zf, K).ravel()
            # per-skill blocks: z z' and x z'
            wf = v0[:, None] * full
            acc = _sum_by(k, (wf[:, :, None] * zf[:, None, :]).reshape(-1, (_NF + _NZ) * _NZ),
                          K).reshape(K, _NF + _NZ, _NZ)
            for kk in range(K):
                g0 = _NF + _NZ * kk
                iff[g0:g0 + _NZ, g0:g0 + _NZ] += acc[kk, _NF:]
                iff[:_NF, g0:g0 + _NZ] += acc[kk, :_NF]
                iff[g0:g0 + _NZ, :_NF] += acc[kk, :_NF].T
            bmat[:, 0] += _sum_by(j, v1[:, None] * full, nI)
            bmat[:, 1] += _sum_by(j, wf, nI)
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
        det = iaa * idd - iad**2
        det = np.where(det > 1e-12, det, 1e-12)
        # C = A^-1
        c_aa, c_ad, c_dd = idd / det, -iad / det, iaa / det
        if self.pfa:
            # ridges: gamma ~ N(0, sigma_g^2), beta ~ N(0, sigma_beta^2)
            sg2 = self.cfg.coefficient_sd ** 2
            gvec = gamma.ravel()
            gf[_NF:] -= gvec / sg2
            iff[_NF:, _NF:] += np.eye(n_f - _NF) / sg2
            sb2 = self.cfg.beta_sd ** 2
            gf[:_NF] -= beta / sb2
            iff[:_NF, :_NF] += np.eye(_NF) / sb2
            # Schur complement: S = F - sum_j B_j' C_j B_j, rhs = g_f - sum_j B_j' C_j g_j
            cb0 = c_aa[:, None] * bmat[:, 0] + c_ad[:, None] * bmat[:, 1]  # C_j B_j rows
            cb1 = c_ad[:, None] * bmat[:, 0] + c_dd[:, None] * bmat[:, 1]
            t = bmat[:, 0, :, None] * cb0[:, None, :] + bmat[:, 1, :, None] * cb1[:, None, :]
            u = bmat[:, 0] * (c_aa * ga + c_ad * gd)[:, None] + \
                bmat[:, 1] * (c_ad * ga + c_dd * gd)[:, None]
            ks = np.where(self.item_skill >= 0, self.item_skill, K)
            t_k = _sum_by(ks, t.reshape(nI, -1), K + 1).reshape(K + 1, _NF + _NZ, _NF + _NZ)
            u_k = _sum_by(ks, u, K + 1)
            schur = iff.copy()
            rhs = gf.copy()
            schur[:_NF, :_NF] -= t_k[:, :_NF, :_NF].sum(axis=0)
            rhs[:_NF] -= u_k[:, :_NF].sum(axis=0)
            for kk in range(K):
                g0 = _NF + _NZ * kk
                schur[g0:g0 + _NZ, g0:g0 + _NZ] -= t_k[kk, _NF:, _NF:]
                schur[:_NF, g0:g0 + _NZ] -= t_k[kk, :_NF, _NF:]
                schur[g0:g0 + _NZ, :_NF] -= t_k[kk, _NF:, :_NF]
                rhs[g0:g0 + _NZ] -= u_k[kk, _NF:]
            step_f = np.linalg.solve(schur + 1e-9 * np.eye(n_f), rhs)
            # each item's share of the feature step: its x part and its skill's z part
            own = np.zeros((nI, _NF + _NZ))
            own[:, :_NF] = step_f[:_NF]
            gz_step = step_f[_NF:].reshape(K, _NZ)
            has = self.item_skill >= 0
            own[has, _NF:] = gz_step[self.item_skill[has]]
            ra = ga - np.einsum("jf,jf->j", bmat[:, 0], own)
            rd = gd - np.einsum("jf,jf->j", bmat[:, 1], own)
        else:
            step_f = np.zeros(0)
            ra, rd = ga, gd
        step_a = c_aa * ra + c_ad * rd
        step_d = c_ad * ra + c_dd * rd
        scale = 1.0
        for _ in range(12):
            a_new = a + scale * step_a
            d_new = d + scale * step_d
            if self.pfa:
                beta_new = beta + scale * step_f[:_NF]
                gamma_new = gamma + scale * step_f[_NF:].reshape(K, _NZ)
            else:
                beta_new, gamma_new = beta, gamma
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
        a, d, beta, gamma, _, mu = self.split(v)
        prior = self.log_prior(a, d, beta, gamma, mu)
        if not math.isfinite(prior):
            return v, -math.inf
        rho, loglik, stat, expected = self.estep(v)
        return self.mstep(v, rho, stat, expected), loglik + prior

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
        _, loglik, _, _ = self.estep(v)
        return v, iterations, converged, history, float(loglik)
