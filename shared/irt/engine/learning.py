"""Learning-aware ability: recency weighting, per-skill offsets, performance-factor covariates.

numpy only (this module is on ``predict``'s path).  A model carries these options in its
artifact (``options["learning"]``, see :func:`learning_to_dict`); a model without them is the
plain IRT model of :mod:`irt.engine.model` and is served and evaluated exactly as before.

The model.  Student ``s`` answers item ``j`` of skill ``k = k(j)`` at step ``t``::

    logit P(y_t = 1) = a_j (theta_s + delta_sk - b_j) + beta . x_t + gamma_k . z_t

    theta_s  ~ N(0, 1)            general ability (the population of the calibration)
    delta_sk ~ N(0, tau^2)        per-skill offset around it      (option "skills")
    b_j      ~ N(mu_k, sigma_b^2) difficulties pooled by skill    (option "skills")
    gamma_k  ~ N(0, sigma_g^2 I)  per-skill covariate coefficients (option "pfa")

``x_t`` and ``z_t`` are performance-factor covariates of the student's history *before* step
``t`` (option "pfa"; :func:`history_features`)::

    x_t = [log(1 + S_k), log(1 + F_k), log(1 + S_w), log(1 + F_w), L_k]
    z_t = [log(1 + S_k), log(1 + F_k), L_k]

with ``S_k``/``F_k`` the earlier right/wrong answers on the item's skill, ``S_w``/``F_w`` the
right/wrong answers among the last ``w`` answers (``window``, default 10), and ``L_k`` the
previous answer on the skill (+1 right, -1 wrong, 0 none).  Items without a skill have
``delta = 0`` and ``S_k = F_k = L_k = 0``.  The item -> skill map, ``tau``, ``beta``,
``gamma`` and the item parameters are calibrated together by :mod:`irt.engine.learning_fit`.

Recency (option "recency"): an earlier answer's log-likelihood is weighted by
``lambda^m`` (``recency_decay``), ``m`` the number of the student's later answers in the
same skill (with an item -> skill map; all later answers without one), so older answers
count less::

    log post(theta, delta) = log N(theta; 0, 1) + sum_k log N(delta_k; 0, tau^2)
                             + sum_{i < t} lambda^{m_i} log P(y_i | theta + delta_{k_i}, x_i)

Prediction (``predict`` and the online evaluation alike): the posterior above is computed on
a grid of ``n_points`` nodes over ``[-bound, bound]`` (default 41 on +/- 6, the calibration's
quadrature; on ASSISTments 2009 31, 41 and 61 nodes give the same online AUC and log-loss
to 1e-5, and 41 keeps a 1,000-answer request under a millisecond).  The per-skill
offsets are integrated out exactly by a convolution with the discretised ``N(0, tau^2)``
kernel ``K`` (rows normalised)::

    L_k(u)    = sum_{i in k} lambda^{m_i} log P(y_i | u, x_i)      the skill's answers at u
    g_k(th)   = sum_u K(th, u) exp(L_k(u))                          delta_k integrated out
    pi(th)    oc N(th; 0, 1) prod_k g_k(th)                         general ability posterior
    rho_k(u)  oc exp(L_k(u)) sum_th pi(th) / g_k(th) K(th, u)       posterior of theta + delta_k
    u_k       = sum_u u rho_k(u)   (a skill with no answers: rho_k = pi K)

and the probability of item ``j`` is the plug-in ``logistic(c_0 + c_1 z_j)``,
``z_j = a_j (u_k - b_j) + beta . x + gamma_k . z`` with the covariates of the next step (without
skills, ``u_k`` is the general EAP).  ``(c_0, c_1)`` is the model's ``calibration`` (default
``(0, 1)``: none): ``auto`` fits it by logistic regression of the answers on ``z`` over its
held-out validation students (:func:`irt.engine.auto.fit_calibration`), because the plug-in
of a model calibrated in-sample on sparse items is over-confident on new students.  The
reported ability is the general ``theta`` (EAP: posterior mean and SD; MAP: the posterior
mode, parabola through the grid's best three nodes, SE from its curvature).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from irt.engine.ability import SIGNS, affine_rows, eap_batch, log_logistic_sums
from irt.engine.model import ItemModel, _finite, skill_table
from irt.engine.online import answer_runs, plain_online_predictions, student_chunks
from irt.errors import ModelFormatError, shown

#: The options a model may carry, in their canonical order.
OPTIONS: tuple[str, ...] = ("recency", "skills", "pfa")
#: The option setting that chooses among the option sets (:mod:`irt.engine.auto`).
AUTO = "auto"
#: Shared covariates ``x`` (coefficients ``beta``), in order.
FEATURES: tuple[str, ...] = ("skill_successes", "skill_failures", "recent_successes",
                             "recent_failures", "skill_last")
#: Per-skill covariates ``z`` (coefficients ``gamma_k``): columns of ``x``.
SKILL_FEATURES: tuple[str, ...] = ("skill_successes", "skill_failures", "skill_last")
_SKILL_COLUMNS = np.array([FEATURES.index(f) for f in SKILL_FEATURES])
#: The covariates' window of an artifact that does not state one (the artifact format's
#: value; calibration takes its settings from :data:`irt.engine.defaults.DEFAULTS`).
DEFAULT_WINDOW = 10
DEFAULT_POINTS = 41
DEFAULT_BOUND = 6.0
#: ``(c_0, c_1)`` of a model without a probability calibration.
IDENTITY: tuple[float, float] = (0.0, 1.0)
#: The ranges an artifact's calibration must lie in (the slope positive: the calibration
#: keeps the order of the probabilities).
CALIBRATION_INTERCEPT = (-10.0, 10.0)
CALIBRATION_SLOPE = (0.0, 10.0)


def parse_options(text: str | Sequence[str] | None, allow_auto: bool = False
                  ) -> tuple[str, ...]:
    """Canonical option tuple from ``"skills,pfa"`` (any order, case, spaces) or a sequence.

    ``""``, ``"none"``, ``"2pl"`` or ``None`` mean the plain model: ``()``.  With
    ``allow_auto``, ``"auto"`` alone gives ``(AUTO,)``: choose the options on validation
    students (:mod:`irt.engine.auto`).

    Raises:
        ValueError: an unknown option (the message lists the known ones), or ``auto``
            combined with other options.
    """
    if text is None:
        return ()
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = {p.strip().lower() for p in parts} - {"", "none", "2pl", "plain"}
    if allow_auto and AUTO in names:
        if names != {AUTO}:
            raise ValueError("'auto' chooses the options itself: give it alone")
        return (AUTO,)
    known = (*OPTIONS, AUTO) if allow_auto else OPTIONS
    unknown = sorted(names - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown model option {shown(unknown[0])}; known: {', '.join(known)}")
    return tuple(o for o in OPTIONS if o in names)


@dataclass(frozen=True)
class Learning:
    """The learning-aware settings of a model (``options["learning"]`` parsed).

    Attributes:
        options: subset of :data:`OPTIONS`.
        decay: recency weight ``lambda`` per later answer (1: no recency weighting).
        skill_sd: ``tau``, SD of the per-skill offsets (0: no offsets).
        window: ``w``, answers in the recent window of the covariates.
        beta: shared covariate coefficients, shape ``(len(FEATURES),)`` (zeros without pfa).
        gamma: per-skill coefficients, shape ``(n_skills, len(SKILL_FEATURES))``.
        skill_ids: external skill ids.
        item_skill: skill index of each model item (``-1``: none), shape ``(n_items,)``.
        n_points: grid nodes; ``bound``: grid half-width.
        fit: calibration summary (free-form, kept in the artifact).
        calibration: ``(c_0, c_1)``, intercept and slope applied to the next answer's logit
            (``(0, 1)``: none; see the module docstring).
    """

    options: tuple[str, ...]
    decay: float = 1.0
    skill_sd: float = 0.0
    window: int = DEFAULT_WINDOW
    beta: np.ndarray = field(default_factory=lambda: np.zeros(len(FEATURES)))
    gamma: np.ndarray = field(default_factory=lambda: np.zeros((0, len(SKILL_FEATURES))))
    skill_ids: tuple[str, ...] = ()
    item_skill: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n_points: int = DEFAULT_POINTS
    bound: float = DEFAULT_BOUND
    fit: dict[str, Any] = field(default_factory=dict)
    calibration: tuple[float, float] = IDENTITY

    @property
    def grouped(self) -> bool:
        """Whether answers are grouped by skill (the model has an item -> skill map)."""
        return bool(self.skill_ids)

    @property
    def pfa(self) -> bool:
        return "pfa" in self.options

    @property
    def skills(self) -> bool:
        return "skills" in self.options and self.skill_sd > 0

    def grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(nodes, log prior, kernel)``: ``kernel[q, r]`` oc ``N(x_r - x_q; 0, tau^2)``,
        rows summing to one (the identity without skill offsets)."""
        x = np.linspace(-self.bound, self.bound, self.n_points)
        return x, -0.5 * x * x, skill_kernel(x, self.skill_sd)


def skill_kernel(x: np.ndarray, sd: float) -> np.ndarray:
    """Discretised ``N(0, sd^2)`` offset kernel on nodes ``x``, rows normalised (identity
    for ``sd = 0``)."""
    if sd <= 0:
        return np.eye(x.shape[0])
    d = x[None, :] - x[:, None]
    k = np.exp(-0.5 * (d / sd) ** 2)
    k /= k.sum(axis=1, keepdims=True)
    k[k < KERNEL_FLOOR] = 0.0  # no subnormal products (see LOG_FLOOR)
    return k


# --------------------------------------------------------------------------- artifact
def learning_to_dict(spec: Learning, item_ids: Sequence[str]) -> dict[str, Any]:
    """The JSON form of ``spec`` stored under ``options["learning"]`` of the artifact::

        {"options": ["skills", "pfa"], "recency_decay": 1.0, "skill_sd": 0.68,
         "window": 10, "grid": {"n_points": 61, "bound": 6.0},
         "coefficients": {"skill_successes": 0.2, ...},          # beta, pfa only
         "skills": {"k1": {"skill_successes": 0.1, ...}, ...},    # gamma_k, pfa only
         "item_skills": {"Q1": "k1", ...},                        # skills or pfa
         "calibration": {"intercept": 0.1, "slope": 0.8},          # when not (0, 1)
         "fit": {...}}
    """
    out: dict[str, Any] = {
        "options": list(spec.options), "recency_decay": float(spec.decay),
        "skill_sd": float(spec.skill_sd), "window": int(spec.window),
        "grid": {"n_points": int(spec.n_points), "bound": float(spec.bound)},
    }
    if spec.pfa:
        out["coefficients"] = {f: float(v) for f, v in zip(FEATURES, spec.beta, strict=True)}
        out["skills"] = {s: {f: float(v) for f, v in zip(SKILL_FEATURES, row, strict=True)}
                         for s, row in zip(spec.skill_ids, spec.gamma, strict=True)}
    if spec.grouped:
        out["item_skills"] = {item_ids[j]: spec.skill_ids[k]
                              for j, k in enumerate(spec.item_skill.tolist()) if k >= 0}
    if spec.calibration != IDENTITY:
        out["calibration"] = {"intercept": float(spec.calibration[0]),
                              "slope": float(spec.calibration[1])}
    if spec.fit:
        out["fit"] = spec.fit
    return out


def _number(value: Any, path: str, lo: float, hi: float, *, open_lo: bool = False) -> float:
    """A finite number in ``[lo, hi]`` (``(lo, hi]`` with ``open_lo``), as the item bank's
    fields are read (:func:`irt.engine.model._finite`)."""
    return _finite(value, path, lo, hi, closed_lo=not open_lo)


def learning_from_dict(doc: Any, item_ids: Sequence[str], model_type: str) -> Learning:
    """Validate ``options["learning"]`` of an artifact and build a :class:`Learning`.

    Rules: ``options`` a non-empty list of distinct :data:`OPTIONS`; ``recency_decay`` in
    ``(0, 1)`` with "recency", else 1 (or absent); ``skill_sd`` in ``(0, 10]`` with "skills",
    else 0 (or absent); "skills" and "pfa" need ``item_skills`` (model item ids -> non-empty
    skill ids); "pfa" needs every coefficient of :data:`FEATURES` (finite) and per skill the
    :data:`SKILL_FEATURES` (a skill left out has zeros); ``window`` an integer in
    ``[1, 10000]``; ``grid.n_points`` in ``[21, 401]``, ``grid.bound`` in ``(0, 20]``;
    ``calibration`` optional, but when present an object with ``intercept`` in ``[-10, 10]``
    and ``slope`` in ``(0, 10]`` (``null`` is refused, as for ``fit`` and ``grid``); the model
    has no guessing parameter (not ``3pl``).

    Raises:
        ModelFormatError: naming the offending field (``options.learning.<field>``).
    """
    base = "options.learning"
    if not isinstance(doc, dict):
        raise ModelFormatError("must be an object", base)
    known = {"options", "recency_decay", "skill_sd", "window", "grid", "coefficients", "skills",
             "item_skills", "calibration", "fit"}
    for key in doc:
        if key not in known:
            raise ModelFormatError(f"unknown field; allowed: {', '.join(sorted(known))}",
                                   f"{base}.{key}")
    raw = doc.get("options")
    if not isinstance(raw, list) or not raw or not all(isinstance(o, str) for o in raw):
        raise ModelFormatError(f"must be a non-empty array of {', '.join(OPTIONS)}",
                               f"{base}.options")
    if len(set(raw)) != len(raw) or not set(raw) <= set(OPTIONS):
        raise ModelFormatError(f"must hold distinct values of {', '.join(OPTIONS)}",
                               f"{base}.options")
    options = tuple(o for o in OPTIONS if o in raw)
    if model_type == "3pl":
        raise ModelFormatError("learning options need a model without guessing (not 3pl)",
                               f"{base}.options")
    decay = _number(doc.get("recency_decay", 1.0), f"{base}.recency_decay", 0.0, 1.0,
                    open_lo=True)
    if ("recency" in options) != (decay < 1.0):
        raise ModelFormatError("must be below 1 exactly when 'recency' is an option",
                               f"{base}.recency_decay")
    skill_sd = _number(doc.get("skill_sd", 0.0), f"{base}.skill_sd", 0.0, 10.0)
    if ("skills" in options) != (skill_sd > 0):
        raise ModelFormatError("must be positive exactly when 'skills' is an option",
                               f"{base}.skill_sd")
    window = doc.get("window", DEFAULT_WINDOW)
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 10_000:
        raise ModelFormatError("must be an integer in [1, 10000]", f"{base}.window")
    grid = doc.get("grid", {})
    if not isinstance(grid, dict):
        raise ModelFormatError("must be an object", f"{base}.grid")
    n_points = grid.get("n_points", DEFAULT_POINTS)
    if isinstance(n_points, bool) or not isinstance(n_points, int) or not 21 <= n_points <= 401:
        raise ModelFormatError("must be an integer in [21, 401]", f"{base}.grid.n_points")
    bound = _number(grid.get("bound", DEFAULT_BOUND), f"{base}.grid.bound", 0.0, 20.0,
                    open_lo=True)
    skill_ids: tuple[str, ...] = ()
    item_skill = np.full(len(item_ids), -1, dtype=np.int64)
    needs_map = "skills" in options or "pfa" in options
    mapping = doc.get("item_skills")
    if needs_map or mapping is not None:
        if not isinstance(mapping, dict) or (needs_map and not mapping):
            raise ModelFormatError("must be a non-empty object {item_id: skill_id}",
                                   f"{base}.item_skills")
        index = {item: j for j, item in enumerate(item_ids)}
        skills: dict[str, int] = {}
        for item, skill in mapping.items():
            if item not in index:
                raise ModelFormatError("is not an item of the model",
                                       f"{base}.item_skills.{item}")
            if not isinstance(skill, str) or not skill:
                raise ModelFormatError("must be a non-empty string", f"{base}.item_skills.{item}")
            item_skill[index[item]] = skills.setdefault(skill, len(skills))
        skill_ids = tuple(skills)
    beta = np.zeros(len(FEATURES))
    gamma = np.zeros((len(skill_ids), len(SKILL_FEATURES)))
    if "pfa" in options:
        coef = doc.get("coefficients")
        if not isinstance(coef, dict):
            raise ModelFormatError("must be an object of the covariate coefficients",
                                   f"{base}.coefficients")
        for f_idx, name in enumerate(FEATURES):
            if name not in coef:
                raise ModelFormatError("is required", f"{base}.coefficients.{name}")
            beta[f_idx] = _number(coef[name], f"{base}.coefficients.{name}", -100.0, 100.0)
        per_skill = doc.get("skills", {})
        if not isinstance(per_skill, dict):
            raise ModelFormatError("must be an object {skill_id: coefficients}", f"{base}.skills")
        position = {s: k for k, s in enumerate(skill_ids)}
        for skill, values in per_skill.items():
            path = f"{base}.skills.{skill}"
            if skill not in position:
                raise ModelFormatError("is not a skill of item_skills", path)
            if not isinstance(values, dict):
                raise ModelFormatError("must be an object", path)
            for f_idx, name in enumerate(SKILL_FEATURES):
                gamma[position[skill], f_idx] = _number(values.get(name, 0.0), f"{path}.{name}",
                                                        -100.0, 100.0)
    fit = doc.get("fit", {})
    if not isinstance(fit, dict):
        raise ModelFormatError("must be an object", f"{base}.fit")
    return Learning(options=options, decay=decay, skill_sd=skill_sd, window=window, beta=beta,
                    gamma=gamma, skill_ids=skill_ids, item_skill=item_skill, n_points=n_points,
                    bound=bound, fit=fit, calibration=_calibration_from(doc, base))


def _calibration_from(doc: dict[str, Any], base: str) -> tuple[float, float]:
    """``(c_0, c_1)`` of an artifact's ``calibration`` object (absent: :data:`IDENTITY`; a
    ``null`` is refused, as for ``fit`` and ``grid``: the writer leaves the identity out)."""
    if "calibration" not in doc:
        return IDENTITY
    raw = doc["calibration"]
    path = f"{base}.calibration"
    if not isinstance(raw, dict) or set(raw) != {"intercept", "slope"}:
        raise ModelFormatError("must be an object with exactly intercept and slope", path)
    return (_number(raw["intercept"], f"{path}.intercept", *CALIBRATION_INTERCEPT),
            _number(raw["slope"], f"{path}.slope", *CALIBRATION_SLOPE, open_lo=True))


def calibrated(spec: Learning, z: np.ndarray) -> np.ndarray:
    """``logistic(c_0 + c_1 z)``: the probabilities of logits ``z`` under the model's
    calibration (``z`` is overwritten).  A logit below about -709 (a slope of 10 makes one of
    -71 so) overflows ``exp`` to ``inf``, whose probability is exactly 0."""
    c0, c1 = spec.calibration
    if (c0, c1) != IDENTITY:
        z *= c1
        z += c0
    np.negative(z, out=z)
    with np.errstate(over="ignore"):
        np.exp(z, out=z)
    z += 1.0
    return np.reciprocal(z, out=z)


def learning_of(model: ItemModel) -> Learning | None:
    """The model's learning-aware settings (parsed once, cached), or ``None`` for a plain
    model.

    Raises:
        ModelFormatError: if ``options["learning"]`` is invalid.
    """
    cached = model._cache.get("learning")
    if cached is None:
        doc = model.options.get("learning")
        spec = None if doc is None else learning_from_dict(doc, model.item_ids, model.model_type)
        cached = model._cache["learning"] = (spec,)  # type: ignore[assignment]
    return cached[0]  # type: ignore[index]


def skill_map(items: np.ndarray, skills: np.ndarray, n_items: int) -> np.ndarray:
    """The item -> skill map of a log: each item's most frequent skill code.

    Args:
        items: item code ``0..n_items-1`` of each row (``-1``: none, ignored).
        skills: skill code of each row (``-1``: none, ignored).
        n_items: number of item codes.

    Returns:
        Skill code per item, ``-1`` for items never seen with a skill; ties go to the
        smallest code.
    """
    items = np.asarray(items, dtype=np.int64)
    skills = np.asarray(skills, dtype=np.int64)
    out = np.full(n_items, -1, dtype=np.int64)
    sel = (skills >= 0) & (items >= 0)
    if not sel.any():
        return out
    n_skills = int(skills.max()) + 1
    pairs, counts = np.unique(items[sel] * n_skills + skills[sel], return_counts=True)
    item, skill = pairs // n_skills, pairs % n_skills
    # per item the largest count, then the smallest skill: sort by (item, -count, skill)
    order = np.lexsort((skill, -counts, item))
    first = np.r_[True, item[order][1:] != item[order][:-1]]
    out[item[order][first]] = skill[order][first]
    return out


# --------------------------------------------------------------------------- covariates
def history_features(student: np.ndarray, skill: np.ndarray, correct: np.ndarray,
                     known: np.ndarray, window: int) -> np.ndarray:
    """Covariates ``x`` (:data:`FEATURES`) of every answer from the same student's earlier
    answers only.

    Args:
        student: student of each answer; each student's answers contiguous, in order.
        skill: skill index of each answer's item (``-1``: none or unknown item).
        correct: 0/1 answers.
        known: answers the model uses (items it knows); only they make up the history.
        window: ``w``, answers in the recent window.

    Returns:
        Array ``(n, len(FEATURES))``: ``log1p`` of the earlier right and wrong answers on
        the skill, ``log1p`` of the right and wrong answers among the last ``w`` (known)
        answers, and the previous answer on the skill (+1, -1, 0 for none).
    """
    student = np.asarray(student)
    skill = np.asarray(skill, dtype=np.int64)
    y = np.asarray(correct, dtype=np.float64)
    known = np.asarray(known, dtype=bool)
    n = y.shape[0]
    out = np.zeros((n, len(FEATURES)))
    if n == 0:
        return out
    kn = known.astype(np.int64)
    before = np.cumsum(kn) - kn  # known answers (anyone's) before each answer
    starts = np.flatnonzero(np.r_[True, student[1:] != student[:-1]])
    owner_start = np.repeat(before[starts], np.diff(np.r_[starts, n]))
    lo = np.maximum(before - window, owner_start)
    right = np.r_[0.0, np.cumsum(y[known])]
    recent_right = right[before] - right[lo]
    out[:, 2] = np.log1p(recent_right)
    out[:, 3] = np.log1p(before - lo - recent_right)
    sel = np.flatnonzero((skill >= 0) & known)
    if sel.size:
        # group the answers with a skill by (student, skill), in answer order
        owner = np.repeat(np.arange(starts.shape[0]), np.diff(np.r_[starts, n]))
        order = sel[np.lexsort((sel, skill[sel], owner[sel]))]
        key_s, key_k = owner[order], skill[order]
        new = np.r_[True, (key_s[1:] != key_s[:-1]) | (key_k[1:] != key_k[:-1])]
        group_start = np.flatnonzero(new)
        lengths = np.diff(np.r_[group_start, order.shape[0]])
        yo = y[order]
        cum = np.cumsum(yo) - yo
        succ = cum - np.repeat(cum[group_start], lengths)
        rank = np.arange(order.shape[0]) - np.repeat(group_start, lengths)
        last = np.r_[0.0, 2.0 * yo[:-1] - 1.0]
        last[new] = 0.0
        out[order, 0] = np.log1p(succ)
        out[order, 1] = np.log1p(rank - succ)
        out[order, 4] = last
    return out


def next_features(skill: np.ndarray, correct: np.ndarray, window: int, n_skills: int
                  ) -> np.ndarray:
    """Covariates of a next answer on each skill from one student's (known) history.

    Args:
        skill: skill index of each history answer (``-1``: none), in answer order.
        correct: 0/1 answers.
        window: ``w``.
        n_skills: number of skills.

    Returns:
        Array ``(n_skills + 1, len(FEATURES))``: row ``k`` for an item of skill ``k``, the
        last row for an item without a skill.
    """
    skill = np.asarray(skill, dtype=np.int64)
    y = np.asarray(correct, dtype=np.float64)
    out = np.zeros((n_skills + 1, len(FEATURES)))
    recent = y[-window:] if y.shape[0] else y
    out[:, 2] = math.log1p(float(recent.sum()))
    out[:, 3] = math.log1p(float(recent.shape[0] - recent.sum()))
    has = skill >= 0
    if has.any():
        ks, ys = skill[has], y[has]
        right = np.bincount(ks, weights=ys, minlength=n_skills)
        total = np.bincount(ks, minlength=n_skills)
        out[:n_skills, 0] = np.log1p(right)
        out[:n_skills, 1] = np.log1p(total - right)
        # the last answer per skill: the first occurrence in reversed order
        rev_k, first = np.unique(ks[::-1], return_index=True)
        out[rev_k, 4] = 2.0 * ys[::-1][first] - 1.0
    return out


def offsets(spec: Learning, features: np.ndarray, skill: np.ndarray) -> np.ndarray:
    """``beta . x + gamma_k . z`` of each row (zeros without pfa)."""
    if not spec.pfa:
        return np.zeros(features.shape[0])
    out = features @ spec.beta
    has = skill >= 0
    if has.any() and spec.gamma.shape[0]:
        out[has] += np.einsum("nf,nf->n", features[has][:, _SKILL_COLUMNS],
                              spec.gamma[skill[has]])
    return out


def _answer_loglik(a: np.ndarray, b: np.ndarray, o: np.ndarray, y: np.ndarray,
                   x: np.ndarray) -> np.ndarray:
    """``log P(y_i | u = x_r)`` for every answer and node: ``(n, n_nodes)``.

    ``log logistic(z) = min(z, 0) - log1p(exp(-|z|))``: exact in both tails, and about twice
    as fast as ``np.logaddexp`` (which has no vectorised loop).
    """
    z = np.multiply.outer(a, x)
    z -= (a * b - o)[:, None]
    z *= (2.0 * np.asarray(y, dtype=np.float64) - 1.0)[:, None]
    out = np.abs(z)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    np.minimum(z, 0.0, out=z)
    z -= out
    return z


#: Log-weights (relative to the largest, 0) are raised to this before ``exp``: a weight of
#: 5e-131 beside the largest, 1, is nothing in a float64 sum, and no product of such a
#: weight and a kernel entry (those below :data:`KERNEL_FLOOR` are zero) is subnormal -
#: x86 multiplies with subnormal operands or results take ~100 times as long (a
#: 1,000-answer request spent 0.1 ms on them).
LOG_FLOOR = -300.0
_WEIGHT_FLOOR = math.exp(LOG_FLOOR)
#: Kernel entries below this are zero (see :data:`LOG_FLOOR`).
KERNEL_FLOOR = 1e-150


def _exp_floored(logw: np.ndarray) -> np.ndarray:
    """``exp(max(logw, LOG_FLOOR))``: weights from log-weights at most 0, none subnormal."""
    return np.exp(np.maximum(logw, LOG_FLOOR))


def _logconv(loglik: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``log sum_u K(th, u) exp(L(u))`` per row, stable."""
    m = loglik.max(axis=1, keepdims=True)
    return np.log(_exp_floored(loglik - m) @ kernel.T) + m


def _decayed_sums(ll: np.ndarray, group_start: np.ndarray, decay: float, weight: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per group (rows contiguous from ``group_start``), the decayed sums of the rows before
    and up to each row: ``E_i = sum_{i' < i} decay^{m(i', i)} ll_i'`` where ``m`` counts the
    rows after ``i'`` up to ``i`` with ``weight`` 1 (rows with weight 0 do not age the sum).
    """
    n = ll.shape[0]
    lengths = np.diff(np.r_[group_start, n])
    if decay == 1.0:
        # exclusive sums from the shifted running sum: bit for bit independent of row i
        inclusive = np.cumsum(ll, axis=0)
        exclusive = np.zeros_like(ll)
        exclusive[1:] = inclusive[:-1]
        base = np.repeat(exclusive[group_start], lengths, axis=0)
        inclusive -= base
        exclusive -= base
        return exclusive, inclusive
    exclusive = np.empty_like(ll)
    inclusive = np.empty_like(ll)
    state = np.zeros((group_start.shape[0], ll.shape[1]))
    factor = np.where(weight > 0, decay, 1.0)
    for t in range(int(lengths.max(initial=0))):
        act = np.flatnonzero(lengths > t)
        idx = group_start[act] + t
        exclusive[idx] = state[act]
        state[act] *= factor[idx, None]
        state[act] += ll[idx]
        inclusive[idx] = state[act]
    return exclusive, inclusive


# --------------------------------------------------------------------------- online harness
def online_predictions(model: ItemModel, student: np.ndarray, item_pos: np.ndarray,
                       correct: np.ndarray, *, chunk_answers: int = 20_000) -> np.ndarray:
    """P(correct) of every answer from the same student's earlier answers only, with the
    model's learning-aware options (see the module docstring); the plain model's
    :func:`irt.engine.evaluate.online_predictions` when it has none.

    Args:
        model: calibrated items (and options).
        student: student index of each answer; each student's answers contiguous and in
            answer order.
        item_pos: item position in ``model`` (``-1``: unknown item: predicted with the bank's
            typical item (median ``a`` and ``b``) and no skill, and left out of the history).
        correct: 0/1 answers.
        chunk_answers: answers per chunk (whole students), bounding memory.

    Returns:
        Probabilities aligned with the input.

    Raises:
        ValueError: if a student's answers are not contiguous.
    """
    spec = learning_of(model)
    if spec is None:
        return plain_online_predictions(model, student, item_pos, correct,
                                        chunk_answers=chunk_answers)
    student, pos, y, starts = answer_runs(student, item_pos, correct)
    n = student.shape[0]
    if n == 0:
        return np.zeros(0)
    known = pos >= 0
    safe = np.maximum(pos, 0)
    a = np.where(known, model.a[safe], float(np.median(model.a)))
    b = np.where(known, model.b[safe], float(np.median(model.b)))
    skill = np.where(known, spec.item_skill[safe], -1) if spec.grouped else np.full(n, -1)
    o = offsets(spec, history_features(student, skill, y, known, spec.window), skill) \
        if spec.pfa else np.zeros(n)
    out = np.empty(n)
    bounds = np.r_[starts, n]
    for lo_k, hi_k in pairwise(student_chunks(bounds, chunk_answers)):
        lo, hi = int(bounds[lo_k]), int(bounds[hi_k])
        out[lo:hi] = _online_chunk(spec, a[lo:hi], b[lo:hi], o[lo:hi], y[lo:hi],
                                   known[lo:hi], skill[lo:hi], bounds[lo_k:hi_k + 1] - lo)
    return out


def _online_chunk(spec: Learning, a: np.ndarray, b: np.ndarray, o: np.ndarray, y: np.ndarray,
                  known: np.ndarray, skill: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """:func:`online_predictions` for whole students (``bounds``: their first rows and the
    end)."""
    n = y.shape[0]
    x, log_prior, kernel = spec.grid()
    ll = _answer_loglik(a, b, o, y, x)
    ll[~known] = 0.0
    lengths = np.diff(bounds)
    owner = np.repeat(np.arange(lengths.shape[0]), lengths)
    # Groups: (student, skill) with an item -> skill map, else the student.
    order = np.lexsort((np.arange(n), skill, owner)) if spec.grouped else np.arange(n)
    go, gs = owner[order], skill[order]
    new = np.r_[True, (go[1:] != go[:-1]) | (gs[1:] != gs[:-1])]
    group_start = np.flatnonzero(new)
    exc_g, inc_g = _decayed_sums(ll[order], group_start, spec.decay, known[order])
    exclusive = np.empty_like(ll)
    exclusive[order] = exc_g
    offset_rows = spec.skills & (skill >= 0)  # answers whose skill has an offset
    if spec.skills:
        conv = offset_rows[order]
        lg_exc, lg_inc = exc_g.copy(), inc_g.copy()
        lg_exc[conv] = _logconv(exc_g[conv], kernel)
        lg_inc[conv] = _logconv(inc_g[conv], kernel)
        delta_g = lg_inc - lg_exc
        log_g_before = np.empty_like(ll)
        log_g_before[order] = lg_exc
    else:
        delta_g = inc_g - exc_g
    # Each group's contribution changes only at its own answers: the general posterior
    # before answer i is the prior plus the student-exclusive running sum of the changes.
    delta = np.empty_like(ll)
    delta[order] = delta_g
    run = np.zeros_like(delta)
    np.cumsum(delta[:-1], axis=0, out=run[1:])
    run -= np.repeat(run[bounds[:-1]], lengths, axis=0)
    log_pi = run + log_prior
    u = np.empty(n)
    plain = ~offset_rows
    if plain.any():
        w = log_pi[plain]
        w -= w.max(axis=1, keepdims=True)
        np.exp(w, out=w)
        u[plain] = (w @ x) / w.sum(axis=1)
    if offset_rows.any():
        rest = log_pi[offset_rows] - log_g_before[offset_rows]  # pi without skill k
        rest -= rest.max(axis=1, keepdims=True)
        h = np.exp(rest) @ kernel
        lr = exclusive[offset_rows]
        lr = lr - lr.max(axis=1, keepdims=True)
        w = np.exp(lr) * h
        u[offset_rows] = (w @ x) / w.sum(axis=1)
    return calibrated(spec, a * (u - b) + o)


# --------------------------------------------------------------------------- one student
class _SkillAbilities:
    """``u_k`` of every skill row, the answered skills' computed when first asked for
    (:func:`student_posterior`'s last step; a request for a few items needs a few rows)."""

    def __init__(self, base: np.ndarray, codes: np.ndarray, lg: np.ndarray,
                 e_own: np.ndarray, log_post: np.ndarray, kernel_t: np.ndarray,
                 x: np.ndarray) -> None:
        # lg, e_own: nodes by answered skills (columns in the order of codes)
        self.base, self.codes, self.lg, self.e_own = base, codes, lg, e_own
        self.log_post, self.kernel_t, self.x = log_post, kernel_t, x
        self.full: np.ndarray | None = None if codes.size else base
        self.offsets: tuple[Learning, np.ndarray] | None = None

    def _rho_means(self, sel: np.ndarray | slice) -> np.ndarray:
        """``u_k`` of the answered skills ``codes[sel]``: the means of
        ``rho_k oc exp(L_k) sum_th pi(th) / g_k(th) K(th, u)``."""
        rest = self.log_post[:, None] - self.lg[:, sel]  # pi without each answered skill
        rest -= rest.max(axis=0)
        h = self.kernel_t @ _exp_floored(rest)  # each column's largest entry >= K(t, t) (t:
        # its best node; columns of exp(rest) peak at 1)
        # rho_k oc exp(L_k) h: both factors floored at exp(LOG_FLOOR), so that their
        # product is never subnormal
        np.maximum(h, _WEIGHT_FLOOR, out=h)
        h *= self.e_own[:, sel]
        return (self.x @ h) / h.sum(axis=0)  # type: ignore[no-any-return]

    def all(self) -> np.ndarray:
        if self.full is None:
            full = self.base.copy()
            full[self.codes] = self._rho_means(slice(None))
            self.full = full
        return self.full

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """``u_k`` at skill rows ``rows`` (any order, repeats allowed)."""
        if self.full is not None or rows.shape[0] > _FEW_ROWS:
            return self.all()[rows]
        out = self.base[rows]
        at = np.searchsorted(self.codes, rows)
        np.minimum(at, self.codes.shape[0] - 1, out=at)
        hit = self.codes[at] == rows
        if hit.any():
            out[hit] = self._rho_means(at[hit])
        return out  # type: ignore[no-any-return]


#: Up to this many requested rows, :class:`_SkillAbilities` computes only those.
_FEW_ROWS = 16


@dataclass(frozen=True)
class StudentPosterior:
    """One student's learning-aware posterior.

    Attributes:
        theta: general ability (EAP or MAP).
        se: its standard error.
        n_answers: known answers used.
        features: covariates of a next answer per skill (rows: skill indices, the last one
            for items without a skill).
        skill_ability: ``u_k`` per skill row (same rows; computed when first read), see
            :meth:`abilities` for a few rows.
    """

    theta: float
    se: float
    n_answers: int
    features: np.ndarray
    _skills: _SkillAbilities = field(repr=False, compare=False)

    @property
    def skill_ability(self) -> np.ndarray:
        return self._skills.all()

    def abilities(self, rows: np.ndarray) -> np.ndarray:
        """``u_k`` at skill rows ``rows``: ``skill_ability[rows]``, the answered skills'
        computed for those rows only when they are few (equal to about 1e-15: BLAS may sum
        a product of fewer rows in another order)."""
        return self._skills.rows(np.asarray(rows, dtype=np.intp))


def student_posterior(model: ItemModel, spec: Learning, item_pos: np.ndarray,
                      correct: np.ndarray, method: str = "EAP") -> StudentPosterior:
    """The posterior of one student from known answers in answer order.

    The serving path: the answers are grouped once (a stable sort by skill), and the
    covariates, the decayed log-likelihood sums and the next answer's covariates all come
    from that order - the same values as :func:`history_features`, :func:`next_features`
    and the online harness (the tests hold them equal).

    Args:
        model: calibrated items.
        spec: ``learning_of(model)``.
        item_pos: positions of the answered (known) items, in answer order.
        correct: 0/1 answers.
        method: ``"EAP"`` or ``"MAP"`` for the reported general ability.
    """
    pos = np.asarray(item_pos, dtype=np.intp)
    y = np.asarray(correct).astype(np.intp, copy=False)
    n = pos.shape[0]
    x, log_prior, kernel = _grid_cached(model, spec)
    n_skills = len(spec.skill_ids)
    nf = np.zeros((n_skills + 1, len(FEATURES)))  # covariates of a next answer, per skill
    log_post = log_prior.copy()
    with_offset = np.zeros(0, dtype=np.int64)
    tables = _serving_tables(model, spec)
    if n:
        # groups: the skills (code n_skills: items without one), or all answers without a map
        order: np.ndarray | slice = slice(None)
        if spec.grouped:
            group = tables.group.take(pos)
            # by group, in answer order within (a stable sort; radix on 16-bit codes); the
            # groups' sizes by counting, in code order (the sorted order)
            order = np.argsort(group, kind="stable")
            g_sorted = group.take(order)
            counts = np.bincount(group, minlength=n_skills + 1)
            codes = counts.nonzero()[0]
            lengths = counts.take(codes)
        else:
            g_sorted = np.zeros(n, dtype=np.intp)
            codes = np.zeros(1, dtype=np.intp)  # n_skills == 0: the group without a skill
            lengths = np.array([n])
        ends = lengths.cumsum()
        starts = ends - lengths
        ys = y[order]  # everything below is in group order
        s = SIGNS.take(ys)  # 2 y - 1
        # -z = s (a b - o) - s a x: the rows [s a b - s o; -s a], by nodes [1, x] below
        left = tables.slope_terms.take(pos[order], axis=1)  # (take: a fifth of [:, idx])
        left *= s
        if spec.pfa:
            left[0] -= s * _sorted_offsets(spec, y, ys, s, order, starts, lengths, ends, codes,
                                           tables.coef.take(g_sorted, axis=1), nf,
                                           _counting(model, n))
        shift = left[0]
        if spec.decay < 1.0:  # lambda^m, m: later answers of the same group
            later = np.repeat(ends - 1, lengths)
            later -= _counting(model, n)[0][:n]
            # |z| <= |a| max|x| + |shift|: below 700 exp(-z) cannot overflow, and
            # log P = -log1p(exp(-z)) is exact in both tails (4 passes over the entries, not 8)
            if tables.a_max * spec.bound + max(float(shift.max()), -float(shift.min())) < 700.0:
                # -z, nodes by answers: the weights scale contiguous rows (a third faster
                # than scaling each answer's row of 41 nodes; the same sums, bit for bit)
                ll = tables.nodes @ left
                np.exp(ll, out=ll)
                # -log P = log(1 + exp(-z)): numpy's log is vectorised, its log1p is not; where
                # exp(-z) < 1e-16 the two differ by less than 1e-16
                ll += 1.0
                np.log(ll, out=ll)
                ll *= _decay_powers(model, spec, n, negative=True).take(later)  # log P, weighted
                sums = np.add.reduceat(ll, starts, axis=1)
            else:
                ll = affine_rows(-shift, -left[1], x)
                _log_logistic(ll)
                ll *= _decay_powers(model, spec, n)[later][:, None]
                sums = np.add.reduceat(ll, starts, axis=0).T
        else:
            sums = log_logistic_sums(affine_rows(-shift, -left[1], x), starts, lengths).T
        # sums: L_g at each node, nodes by groups
        if spec.skills:
            # codes increase: every group a skill (the usual case) when the last one is
            every = bool(codes[-1] < n_skills)
            with_offset = codes if every else codes[codes < n_skills]
            own = sums if every else sums[:, :with_offset.shape[0]]
            if with_offset.size:  # _logconv, keeping exp(L_k - max L_k) for rho_k below
                top = own.max(axis=0)
                e_own = _exp_floored(own - top)
                lg = np.log(kernel @ e_own)
                lg += top
            else:
                lg = own
            log_post += lg.sum(axis=1)
            if not every:
                log_post += sums[:, -1]  # the group without a skill: no offset
        else:
            log_post += sums.sum(axis=1)
    w = _exp_floored(log_post - log_post.max())
    # sum w, sum w x, sum w x^2 and, for a skill without answers (theta + delta, delta from
    # its prior), sum w (K x): one product
    total, first, second, prior_u = (tables.moments @ w).tolist()
    mean = first / total
    sd = math.sqrt(max(second / total - mean * mean, 0.0))
    skill_u = np.full(n_skills + 1, mean)
    answered, lg_rows, e_rows = np.zeros(0, dtype=np.intp), np.zeros((0, 0)), np.zeros((0, 0))
    if spec.skills and n_skills:
        skill_u[:n_skills] = prior_u / total
        if with_offset.size:  # the answered skills: rho_k, when first asked for
            answered, lg_rows, e_rows = with_offset, lg, e_own
    theta, se = mean, sd
    if method == "MAP":
        theta, se = _grid_mode(x, log_post)
    return StudentPosterior(theta, se, n, nf, _SkillAbilities(
        skill_u, answered, lg_rows, e_rows, log_post, tables.kernel_t, x))


def _sorted_offsets(spec: Learning, y: np.ndarray, ys: np.ndarray, s: np.ndarray,
                    order: np.ndarray | slice, starts: np.ndarray, lengths: np.ndarray,
                    ends: np.ndarray, codes: np.ndarray, coef: np.ndarray, nf: np.ndarray,
                    counting: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """:func:`student_posterior`'s covariate offsets ``beta . x + gamma_k . z`` of each answer
    in group order (the values of :func:`history_features` and :func:`offsets`), and the
    covariates of a next answer written into ``nf`` (those of :func:`next_features`).

    ``y``: the 0/1 answers (integers) in answer order; ``ys``: in group order
    (``y[order]``), ``s``: their signs ``2 ys - 1`` (float); ``starts``, ``lengths``,
    ``ends``, ``codes``: each group's first row, size, end and skill (``n_skills``: none;
    increasing); ``coef``: the skill covariates' coefficients of each answer, shape
    ``(3, n)`` (columns of :func:`_serving_tables`' coefficients); ``counting``:
    :func:`_counting`'s ``(0, 1, 2, ...)`` and ``log1p`` of them.  Counts are integers, their
    ``log1p`` looked up: the values of ``np.log1p`` on the same counts, bit for bit.
    """
    n = ys.shape[0]
    n_skills = nf.shape[0] - 1
    window = spec.window
    ramp, log1p = counting
    # running counts with a leading zero: cs[i] = sum(ys[:i]) (group order), cy (answer order)
    cs = np.empty(n + 1, dtype=np.intp)
    cs[0] = 0
    np.add.accumulate(ys, out=cs[1:])
    first = np.repeat(starts, lengths)  # each answer's group's first row
    # The skill covariates of each answer as rows of one array: log1p of the earlier right
    # and wrong answers in its group, and the previous answer there (+1, -1, 0 for none).
    right = cs[:-1] - cs[first]
    wrong = ramp[:n] - first
    wrong -= right
    cov = np.empty((3, n))
    np.take(log1p, right, out=cov[0])
    np.take(log1p, wrong, out=cov[1])
    cov[2, 1:] = s[:-1]
    cov[2, starts] = 0.0
    cov *= coef
    o = cov.sum(axis=0)
    # the recent window, in answer order: log1p of its right and wrong answers
    cy = np.empty(n + 1, dtype=np.intp)
    cy[0] = 0
    np.add.accumulate(y, out=cy[1:])
    recent = cy[:-1].copy()
    if n > window:
        recent[window:] -= cy[:n - window]
    seen = np.minimum(ramp[:n], window)
    seen -= recent
    late = log1p[recent]
    late *= spec.beta[2]
    late += spec.beta[3] * log1p[seen]
    o += late[order]
    # the next answer: totals and last answer per group (codes increase: the last one tells
    # whether every group is a skill), recent window
    every = codes[-1] < n_skills
    k = codes if every else codes[codes < n_skills]
    if k.shape[0]:
        sel: slice | np.ndarray = slice(None) if every else slice(0, k.shape[0])
        total = cs[ends[sel]] - cs[starts[sel]]
        nf[k, 0] = log1p[total]
        nf[k, 1] = log1p[lengths[sel] - total]
        nf[k, 4] = s[ends[sel] - 1]
    right_now = int(cy[n] - cy[max(n - window, 0)])
    nf[:, 2] = log1p[right_now]
    nf[:, 3] = log1p[min(n, window) - right_now]
    return o


def _counting(model: ItemModel, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(0, 1, ..., m - 1)`` (``intp``) and ``np.log1p`` of them (float64), ``m >= n + 1``
    (cached on the model, grown as needed): counts of answers look their ``log1p`` up."""
    cached = model._cache.get("learning_counting")
    if cached is None or cached[0].shape[0] <= n:
        ramp = np.arange(max(n + 1, 1024), dtype=np.intp)
        cached = model._cache["learning_counting"] = (  # type: ignore[assignment]
            ramp, np.log1p(ramp.astype(np.float64)))
    return cached  # type: ignore[return-value]


@dataclass(frozen=True)
class _Tables:
    """:func:`student_posterior`'s per-model constants, built by :func:`_serving_tables`.

    Attributes:
        group: each item's group: its skill index, ``n_skills`` for an item without a skill
            (``int16`` below 32,767 skills: numpy sorts 16-bit codes by radix).
        coef: each group's coefficients of the skill covariates, ``beta``'s plus the skill's
            own ``gamma`` (zeros for the group without a skill, which has none of these
            covariates), shape ``(len(SKILL_FEATURES), n_skills + 1)``.
        slope_terms: ``[a b; -a]`` of each item, shape ``(2, n_items)``: an answer's
            ``-z / s = a b - a x`` (``s = 2 y - 1``) by :attr:`nodes`.
        a_max: the largest ``|a|``.
        nodes: the grid's ``[1, x]`` columns: ``nodes @ [c; d]`` is ``c + x d`` at every
            node, shape ``(nodes, n)``, in one product.
        kernel_t: the transpose of the skill-offset kernel ``K``, contiguous.
        moments: ``[1; x; x^2; K x]``, shape ``(4, nodes)``: by posterior weights ``w``, the
            sums ``sum w``, ``sum w x``, ``sum w x^2`` and ``sum w (K x)`` (a skill without
            answers: ``theta + delta``, ``delta`` from its prior) in one product.
        next_coef: each skill row's coefficients of a next answer's covariates, shape
            ``(n_skills + 1, len(FEATURES))``: ``beta``, plus the skill's ``gamma`` on the
            skill covariates (:func:`offsets` as one product per row).
    """

    group: np.ndarray
    coef: np.ndarray
    slope_terms: np.ndarray
    a_max: float
    nodes: np.ndarray
    kernel_t: np.ndarray
    moments: np.ndarray
    next_coef: np.ndarray


def _serving_tables(model: ItemModel, spec: Learning) -> _Tables:
    """The :class:`_Tables` of ``model`` for ``spec``, cached on the model; built again for
    another ``spec`` than the cached one's (serving passes ``learning_of(model)``, itself
    cached: built once)."""
    cached = model._cache.get("learning_tables")
    if cached is None or cached[0] is not spec:
        n_skills = len(spec.skill_ids)
        group = np.where(spec.item_skill < 0, n_skills, spec.item_skill) if spec.grouped \
            else np.zeros(model.n_items, dtype=np.int64)
        coef = np.zeros((n_skills + 1, len(SKILL_FEATURES)))
        next_coef = np.tile(spec.beta, (n_skills + 1, 1))
        if spec.gamma.shape[0]:
            coef[:n_skills] = spec.beta[_SKILL_COLUMNS] + spec.gamma[:n_skills]
            next_coef[:n_skills, _SKILL_COLUMNS] = coef[:n_skills]
        x, _, kernel = _grid_cached(model, spec)
        tables = _Tables(group.astype(np.int16 if n_skills < 32767 else np.intp),
                         np.ascontiguousarray(coef.T), np.vstack([model.a * model.b, -model.a]),
                         float(np.abs(model.a).max(initial=0.0)),
                         np.vstack([np.ones(x.shape[0]), x]).T,
                         np.ascontiguousarray(kernel.T),
                         np.vstack([np.ones(x.shape[0]), x, x * x, kernel @ x]), next_coef)
        cached = model._cache["learning_tables"] = (spec, tables)  # type: ignore[assignment]
    return cached[1]  # type: ignore[no-any-return]


def warm_serving(model: ItemModel, max_answers: int) -> None:
    """Build, before ``model`` serves, the per-model tables that :func:`student_posterior`
    and :func:`probabilities` read (cached on the model): the settings, the grid, the
    :class:`_Tables`, and the counts and decay powers of histories up to ``max_answers``
    answers.  Otherwise the first request builds them (about 2 ms on the ASSISTments 2009
    bank).  Nothing for a model without learning-aware options."""
    spec = learning_of(model)
    if spec is None:
        return
    _grid_cached(model, spec)
    _serving_tables(model, spec)
    _counting(model, max_answers)
    if spec.decay < 1.0:  # both branches of student_posterior's weighting
        _decay_powers(model, spec, max_answers, negative=True)
        _decay_powers(model, spec, max_answers)


def _decay_powers(model: ItemModel, spec: Learning, n: int, negative: bool = False
                  ) -> np.ndarray:
    """``decay ** m`` (``-decay ** m`` with ``negative``) for ``m`` in ``0..n-1`` at least
    (cached on the model by decay, grown as needed)."""
    key = ("learning_decay", spec.decay, negative)
    cached = model._cache.get(key)
    if cached is None or cached.shape[0] < n:
        cached = np.power(spec.decay, np.arange(max(n, 1024)))
        if negative:
            np.negative(cached, out=cached)
        model._cache[key] = cached
    return cached


def _log_logistic(z: np.ndarray) -> np.ndarray:
    """``log logistic(z)`` in place: ``min(z, 0) - log1p(exp(-|z|))``, exact in both tails."""
    e = np.abs(z)
    np.negative(e, out=e)
    np.exp(e, out=e)
    np.log1p(e, out=e)
    np.minimum(z, 0.0, out=z)
    z -= e
    return z


def _grid_mode(x: np.ndarray, log_post: np.ndarray) -> tuple[float, float]:
    """Posterior mode: the parabola through the best node and its neighbours (in log
    space); SE = ``1 / sqrt(-curvature)``."""
    q = int(np.argmax(log_post))
    q = min(max(q, 1), x.shape[0] - 2)
    h = float(x[1] - x[0])
    lm, l0, lp = (float(v) for v in log_post[q - 1:q + 2])
    curv = (lp - 2 * l0 + lm) / (h * h)
    if not curv < 0:
        return float(x[q]), h
    shift = -(lp - lm) / (2 * h) / curv
    return float(x[q] + max(min(shift, h), -h)), 1.0 / math.sqrt(-curv)


def _grid_cached(model: ItemModel, spec: Learning) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``spec.grid()``, cached on the model (built again for another ``spec`` than the
    cached one's: the kernel depends on ``skill_sd``)."""
    cached = model._cache.get("learning_grid")
    if cached is None or cached[0] is not spec:
        cached = model._cache["learning_grid"] = (spec, *spec.grid())  # type: ignore
    return cached[1:]  # type: ignore[return-value]


def probabilities(model: ItemModel, spec: Learning, post: StudentPosterior,
                  item_pos: np.ndarray) -> np.ndarray:
    """P(correct) of the next answer to each item at ``item_pos`` (known positions)."""
    pos = np.asarray(item_pos, dtype=np.intp)
    # each item's skill row (the last one, n_skills: items without a skill)
    row = _serving_tables(model, spec).group[pos].astype(np.intp)
    z = post.abilities(row)
    z -= model.b[pos]
    z *= model.a[pos]
    if spec.pfa:
        z += _row_offsets(model, spec, post, row)
    return calibrated(spec, z)


def _row_offsets(model: ItemModel, spec: Learning, post: StudentPosterior, rows: np.ndarray
                 ) -> np.ndarray:
    """:func:`offsets` of a next answer in skill rows ``rows`` of ``post.features`` (the last
    row: items without a skill), every row's computed once per posterior (an item's offset
    is its row's): ``sum_f x_f c_{k f}`` with :func:`_serving_tables`' ``next_coef``, the
    coefficients of each row (``beta``, plus the skill's ``gamma`` on the skill covariates)."""
    state = post._skills
    if state.offsets is None or state.offsets[0] is not spec:
        each = post.features * _serving_tables(model, spec).next_coef
        state.offsets = (spec, each.sum(axis=1))
    return state.offsets[1].take(rows)  # type: ignore[no-any-return]


def predict_one(model: ItemModel, item_ids: Sequence[str], correct: Sequence[int],
                items: Sequence[str] | None, method: str = "EAP",
                provisional: Callable[[str], int | None] | None = None, *,
                positions: np.ndarray | None = None,
                item_positions: np.ndarray | None = None) -> dict[str, Any]:
    """The ``predict`` answer for one student with a learning-aware model (the same keys as
    the plain model's: ``ability``, ``probabilities``, ``unknown_items``, and
    ``provisional_items`` when some items are known only through their skill).

    Args:
        model: a model with learning options.
        item_ids: answered item ids, in answer order (first attempts only).
        correct: 0/1 answers.
        items: requested item ids (``None``: every item).
        method: ``"EAP"`` or ``"MAP"`` (the reported general ability).
        provisional: row of the model's skill table
            (:func:`irt.engine.model.skill_table`) of an item without parameters whose skill
            is known, else ``None`` (``irt.serving.plain.provisional_lookup``).  Such an
            item's answers are not used; a requested one gets :func:`skill_probabilities`.
        positions: ``model.positions(item_ids)`` when the caller has looked them up already.
        item_positions: ``model.positions(items)`` likewise.
    """
    spec = learning_of(model)
    assert spec is not None
    pos = model.positions(item_ids) if positions is None else positions
    y = np.asarray(correct, dtype=np.int64)
    known = pos >= 0
    unknown = [] if known.all() else [item_ids[k] for k in np.flatnonzero(~known).tolist()]
    provisional_items: list[str] = []
    if unknown:
        pos, y = pos[known], y[known]
        if provisional is not None:
            provisional_items = [i for i in unknown if provisional(i) is not None]
            unknown = [i for i in unknown if provisional(i) is None]
    post = student_posterior(model, spec, pos, y, method)
    by_skill: dict[str, int] = {}
    if items is None:
        names: Sequence[str] = model.item_ids
        sel = np.arange(model.n_items)
    else:
        sel = model.positions(items) if item_positions is None else item_positions
        names = items
        if not (sel >= 0).all():
            for k in np.flatnonzero(sel < 0).tolist():
                item = items[k]
                q = None if provisional is None else provisional(item)
                if q is not None:
                    by_skill[item] = q
                    provisional_items.append(item)
                else:
                    unknown.append(item)
            # each id once, in first-seen order (a list scanned per id was quadratic)
            provisional_items = list(dict.fromkeys(provisional_items))
            unknown = list(dict.fromkeys(unknown))
            names = [items[k] for k in np.flatnonzero(sel >= 0).tolist()]
            sel = sel[sel >= 0]
    probs = probabilities(model, spec, post, sel) if sel.size else np.zeros(0)
    found = dict(zip(names, np.round(probs, 6).tolist(), strict=True))
    if by_skill:  # in request order, among the calibrated items
        extra = dict(zip(by_skill, np.round(skill_probabilities(
            model, spec, post, list(by_skill.values())), 6).tolist(), strict=True))
        found = {i: found[i] if i in found else extra[i] for i in items  # type: ignore[union-attr]
                 if i in found or i in extra}
    out = {
        "ability": {"theta": round(post.theta, 6), "se": round(post.se, 6), "method": method,
                    "n_answers": post.n_answers},
        "probabilities": found,
        "unknown_items": unknown,
    }
    if provisional_items:
        out["provisional_items"] = provisional_items
    return out


def skill_probabilities(model: ItemModel, spec: Learning, post: StudentPosterior,
                        rows: Sequence[int]) -> np.ndarray:
    """P(correct) of the next answer to items known only through their skill: the skill's
    typical parameters (``rows`` of :func:`irt.engine.model.skill_table`), at the student's
    ability in that skill (``u_k``) with that skill's covariates when the learning options
    have the skill (else the general ability, no skill covariates)."""
    table = skill_table(model)
    assert table is not None
    q = np.asarray(rows, dtype=np.intp)
    n_skills = len(spec.skill_ids)
    own = _skill_positions(model, spec)
    skill = np.array([own.get(table.skill_ids[k], -1) for k in q.tolist()], dtype=np.int64)
    row = np.where(skill >= 0, skill, n_skills)
    z = table.a[q] * (post.abilities(row) - table.b[q])
    if spec.pfa:
        z += _row_offsets(model, spec, post, row)
    p = calibrated(spec, z)
    return table.c[q] + (1.0 - table.c[q]) * p


def _skill_positions(model: ItemModel, spec: Learning) -> dict[str, int]:
    """``skill_id -> index`` of the learning options' skills (cached)."""
    cached = model._cache.get("learning_skill_index")
    if cached is None:
        cached = model._cache["learning_skill_index"] = {  # type: ignore[assignment]
            k: q for q, k in enumerate(spec.skill_ids)}
    return cached  # type: ignore[return-value]


def describe(spec: Learning) -> dict[str, Any]:
    """A short JSON summary (``GET /model``): options, scalar settings, the ``pfa``
    coefficients and the probability calibration (when not the identity)."""
    out: dict[str, Any] = {"options": list(spec.options), "recency_decay": float(spec.decay),
                           "skill_sd": float(spec.skill_sd), "n_skills": len(spec.skill_ids)}
    if spec.calibration != IDENTITY:
        out["calibration"] = {"intercept": spec.calibration[0], "slope": spec.calibration[1]}
    if spec.pfa:
        out["window"] = spec.window
        out["coefficients"] = {f: float(v) for f, v in zip(FEATURES, spec.beta, strict=True)}
    return out


def abilities(model: ItemModel, student: np.ndarray, item_pos: np.ndarray,
              correct: np.ndarray, n_students: int) -> tuple[np.ndarray, np.ndarray]:
    """General ability (EAP) of many students by the model's own protocol: what ``predict``
    reports.  :func:`irt.engine.ability.eap_batch` for a plain model; for a learning-aware one
    :func:`student_posterior` per student (answers of each student in answer order).

    Returns:
        ``(theta, se)``, each of shape ``(n_students,)``.
    """
    spec = learning_of(model)
    if spec is None:

        return eap_batch(model, student, item_pos, correct, n_students)
    student = np.asarray(student, dtype=np.int64)
    pos = np.asarray(item_pos, dtype=np.int64)
    y = np.asarray(correct, dtype=np.int64)
    theta = np.zeros(n_students)
    se = np.ones(n_students)
    order = np.argsort(student, kind="stable")
    bounds = np.searchsorted(student[order], np.arange(n_students + 1))
    for s in range(n_students):
        rows = order[bounds[s]:bounds[s + 1]]
        post = student_posterior(model, spec, pos[rows], y[rows])
        theta[s], se[s] = post.theta, post.se
    return theta, se
