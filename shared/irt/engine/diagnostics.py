"""Model diagnostics: how well a calibrated bank fits a set of answers.

numpy and scipy only, no I/O.  :func:`diagnose` runs every statistic the design allows and
says, in a field and a message, what it could not compute and what it reports instead:

=====================  ============================  ===========================================
part                   complete design (a test)      incomplete design (a sparse LMS log)
=====================  ============================  ===========================================
item fit               S-X2, grouped X2,             grouped X2, infit/outfit (z), Zh
                       infit/outfit (z), Zh          (S-X2 needs sum scores over one form)
person fit             Zh, infit/outfit (z)          the same, over each student's answers
global fit             M2, RMSEA (90 % CI), SRMSR,   log-likelihood, AIC, BIC (M2 needs every
                       TLI, CFI; log-lik, AIC, BIC   item pair answered by every student)
local dependence       Q3, LD-X2 (all pairs)         Q3, LD-X2 over co-answered pairs of the
                                                     most-answered items
reliability            marginal, empirical           empirical (marginal needs one test form)
=====================  ============================  ===========================================

Formulas: :mod:`irt.engine.itemfit`, :mod:`irt.engine.globalfit`, :mod:`irt.engine.localdep`
and :mod:`irt.engine.fitdata` (the abilities, EAP on 121 nodes over +/- 6 prior SDs, the
61-node marginal quadrature, the log-likelihood), all following R mirt 1.45.1; with
``DiagnosticsConfig(grid="mirt")`` they reproduce mirt's numbers for any latent SD (mirt's
grids span +/- 6 logits, which cuts off a wide Rasch prior).  Reliability::

    marginal  = int sigma^2 I(t) / (sigma^2 I(t) + 1) dN(t; 0, sigma^2)   (Thissen-Wainer; for
                sigma = 1 mirt's marginal_rxx, I the test information)
    empirical = var(EAP) / (var(EAP) + mean(SE^2))                       (mirt's empirical_rxx)

Cost on a sparse log: O(answers x nodes) for the abilities and the log-likelihood, O(answers
log answers) for the rest; no students x items matrix is built (ASSISTments 2009, 220k
answers: ``benchmarks/bench_diagnostics.py``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from irt.engine.fitdata import (
    FitData,
    align,
    half_width,
    marginal_loglik,
    parameter_count,
)
from irt.engine.globalfit import (
    MAX_ITEMS,
    InformationCriteria,
    M2Result,
    information_criteria,
    m2,
)
from irt.engine.itemfit import ChiSquareFit, ResidualFit, grouped_x2, residual_fit, s_x2
from irt.engine.localdep import LocalDependence, local_dependence
from irt.engine.model import ItemModel
from irt.engine.responses import Responses

#: A pair is flagged when its Q3 exceeds the average Q3 by this much (Christensen et al. 2017).
Q3_FLAG = 0.2


@dataclass(frozen=True)
class DiagnosticsConfig:
    """Settings of :func:`diagnose` (mirt's defaults where mirt has one).

    Attributes:
        score_points: EAP nodes on ``[-bound, bound]`` for the abilities (mirt: 121).
        marginal_points: marginal quadrature nodes for S-X2, M2, LD-X2, log-likelihood
            (mirt: 61).
        bound: grid half-width: prior SDs (``grid="prior_sd"``) or logits (``"mirt"``).
        grid: ``"prior_sd"`` (default: grids over +/- ``bound`` prior SDs, abilities
            re-integrated where the grid is too coarse, the log-likelihood integrated
            per student) or ``"mirt"`` (R mirt's: +/- ``bound`` logits whatever the latent
            SD, plain grid sums); the same for ``sigma = 1`` (module
            :mod:`irt.engine.fitdata`).
        mincell: smallest expected S-X2 cell (mirt: 1).
        x2_groups: EAP groups of the grouped X2 (mirt: 10).
        x2_min_answers: items with fewer answers get no grouped X2.
        ld_max_items: local dependence over at most this many (most-answered) items.
        min_pair_answers: pairs answered by fewer students get no Q3/LD-X2.
        top_pairs: item pairs listed by LD-X2.
        person_min_answers: students with fewer answers are left out of the person-fit
            summary (their statistics are still computed).
        zh_flag: a student with ``Zh`` below this is counted as misfitting.
        m2_latent_in_delta: see :func:`irt.engine.globalfit.m2` (``False``: mirt 1.45.1).
    """

    score_points: int = 121
    marginal_points: int = 61
    bound: float = 6.0
    grid: str = "prior_sd"
    mincell: float = 1.0
    x2_groups: int = 10
    x2_min_answers: int = 20
    ld_max_items: int = 200
    min_pair_answers: int = 20
    top_pairs: int = 10
    person_min_answers: int = 5
    zh_flag: float = -1.96
    m2_latent_in_delta: bool = True


@dataclass(frozen=True)
class Reliability:
    """Attributes:
        marginal: Thissen-Wainer marginal reliability (``None`` for an incomplete design).
        empirical: ``var(EAP) / (var(EAP) + mean(SE^2))``.
        note: how they were computed, or why one is missing.
    """

    marginal: float | None
    empirical: float
    note: str


@dataclass(frozen=True)
class GlobalFit:
    """Attributes:
        criteria: log-likelihood, AIC and BIC (always).
        m2: M2 and its indices, or ``None``.
        limited_information: whether M2 was computed.
        reason: why not (``None`` when it was).
        instead: what is reported instead (``None`` when M2 was computed).
    """

    criteria: InformationCriteria
    m2: M2Result | None
    limited_information: bool
    reason: str | None
    instead: str | None


@dataclass
class Diagnostics:
    """Everything :func:`diagnose` found; :meth:`to_dict` gives the JSON form.

    Attributes:
        data: the answers as analysed (bank restricted to answered items, abilities).
        item_residuals: infit/outfit/Zh per item.
        person_residuals: infit/outfit/Zh per student.
        s_x2: S-X2 per item (``None`` for an incomplete design).
        x2: grouped X2 per item.
        global_fit: M2 or what replaces it, and the information criteria.
        local: Q3 and LD-X2.
        reliability: marginal and empirical reliability.
        config: the settings used.
        messages: what was not computed and why, in words.
        seconds: wall time of each part.
    """

    data: FitData
    item_residuals: ResidualFit
    person_residuals: ResidualFit
    s_x2: ChiSquareFit | None
    x2: ChiSquareFit
    global_fit: GlobalFit
    local: LocalDependence
    reliability: Reliability
    config: DiagnosticsConfig
    messages: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ summaries
    def design(self) -> dict[str, Any]:
        d = self.data
        per_student = d.answers_per_student()
        per_item = d.answers_per_item()
        return {
            "model_type": d.model.model_type, "n_students": d.n_students,
            "n_items": d.n_items, "n_answers": d.n_answers, "density": d.density,
            "complete": d.complete, "n_unknown_answers": d.n_unknown_answers,
            "n_items_unanswered": d.n_items_unanswered,
            "answers_per_student": _five(per_student), "answers_per_item": _five(per_item),
        }

    def person_summary(self) -> dict[str, Any]:
        """Zh quantiles (R ``summary``, type 7) and the count below ``zh_flag``, over students
        with at least ``person_min_answers`` answers (all of them in a short complete test)."""
        n = self.data.answers_per_student()
        least = min(self.config.person_min_answers, self.data.n_items)
        zh = self.person_residuals.zh[n >= least]
        zh = zh[~np.isnan(zh)]
        out: dict[str, Any] = {"n_summarised": int(zh.shape[0]), "min_answers": int(least)}
        if zh.shape[0]:
            q = np.quantile(zh, [0.0, 0.25, 0.5, 0.75, 1.0])
            out.update({"zh_min": q[0], "zh_q1": q[1], "zh_median": q[2], "zh_mean": zh.mean(),
                        "zh_q3": q[3], "zh_max": q[4],
                        "zh_sd": float(zh.std(ddof=1)) if zh.shape[0] > 1 else math.nan,
                        "zh_flag": self.config.zh_flag,
                        "n_flagged": int(np.count_nonzero(zh < self.config.zh_flag))})
            out["share_flagged"] = out["n_flagged"] / zh.shape[0]
        return out

    def q3_summary(self) -> dict[str, Any]:
        i, j = self.local.pairs()
        q = self.local.q3[i, j]
        out: dict[str, Any] = {"n_items": int(self.local.items.shape[0]),
                               "n_pairs": int(q.shape[0]),
                               "min_pair_answers": self.config.min_pair_answers}
        if q.shape[0]:
            mean = float(q.mean())
            out.update({"mean": mean, "min": float(q.min()), "max": float(q.max()),
                        "max_minus_mean": float(q.max() - mean), "flag": Q3_FLAG,
                        "n_flagged": int(np.count_nonzero(q - mean > Q3_FLAG))})
        return out

    @property
    def pairs_ranked_by(self) -> str:
        """``"ld_x2"`` for a complete design; ``"q3_minus_mean"`` for a sparse log, whose
        LD-X2 leans on a random-draw assumption (see :mod:`irt.engine.localdep`)."""
        return "ld_x2" if self.data.complete else "q3_minus_mean"

    def top_pairs(self, k: int | None = None) -> list[dict[str, Any]]:
        """The ``k`` pairs with the largest LD-X2 (complete design) or the largest Q3 above
        the mean Q3 (sparse log): :attr:`pairs_ranked_by`."""
        k = self.config.top_pairs if k is None else k
        i, j = self.local.pairs()
        key = self.local.ld_x2[i, j] if self.data.complete else self.local.q3[i, j]
        order = np.argsort(-np.nan_to_num(key, nan=-np.inf), kind="stable")[:k]
        ids = self.data.model.item_ids
        mean = self.q3_summary().get("mean", math.nan)
        L = self.local
        out = []
        for t in order.tolist():
            a, b = int(i[t]), int(j[t])
            out.append({"item_a": ids[L.items[a]], "item_b": ids[L.items[b]],
                        "n": int(L.n[a, b]), "ld_x2": L.ld_x2[a, b], "p": L.ld_p[a, b],
                        "cramers_v": L.cramers_v[a, b], "q3": L.q3[a, b],
                        "q3_minus_mean": L.q3[a, b] - mean})
        return out

    def item_table(self) -> list[dict[str, Any]]:
        """One row per item: answers, S-X2 (complete designs), grouped X2, infit/outfit, Zh."""
        m = self.data.model
        r = self.item_residuals
        # the columns as Python numbers once (the same values; indexing numpy arrays item
        # by item cost 0.15 s for 17,700 items)
        n = [int(v) for v in r.n_answers.tolist()]
        sx2 = None if self.s_x2 is None else (
            self.s_x2.stat.tolist(), [int(v) for v in self.s_x2.df.tolist()],
            self.s_x2.p.tolist(), self.s_x2.rmsea.tolist())
        cols = {"x2": self.x2.stat.tolist(), "x2_df": [int(v) for v in self.x2.df.tolist()],
                "x2_p": self.x2.p.tolist(), "x2_rmsea": self.x2.rmsea.tolist(),
                "outfit": r.outfit.tolist(), "z_outfit": r.z_outfit.tolist(),
                "infit": r.infit.tolist(), "z_infit": r.z_infit.tolist(), "zh": r.zh.tolist()}
        rows = []
        for k, item_id in enumerate(m.item_ids):
            row: dict[str, Any] = {"item_id": item_id, "n": n[k]}
            if sx2 is not None:
                row.update({"s_x2": sx2[0][k], "s_x2_df": sx2[1][k], "s_x2_p": sx2[2][k],
                            "s_x2_rmsea": sx2[3][k]})
            row.update({key: col[k] for key, col in cols.items()})
            rows.append(row)
        return rows

    def misfitting_persons(self, k: int = 10) -> list[dict[str, Any]]:
        """The ``k`` students with the lowest Zh (summarised students only)."""
        n = self.data.answers_per_student()
        least = min(self.config.person_min_answers, self.data.n_items)
        pr = self.person_residuals
        cand = np.flatnonzero((n >= least) & ~np.isnan(pr.zh))
        worst = cand[np.argsort(pr.zh[cand], kind="stable")[:k]]
        return [{"student_id": self.data.student_ids[s], "n": int(n[s]),
                 "theta": self.data.theta[s], "zh": pr.zh[s], "outfit": pr.outfit[s],
                 "infit": pr.infit[s]} for s in worst.tolist()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (nan and infinities as ``None``)."""
        g = self.global_fit
        doc = {
            "design": self.design(),
            "item_fit": {
                "s_x2_available": self.s_x2 is not None,
                "items": self.item_table(),
            },
            "person_fit": {"summary": self.person_summary(),
                           "most_misfitting": self.misfitting_persons()},
            "global_fit": {
                "limited_information": g.limited_information, "reason": g.reason,
                "instead": g.instead, **g.criteria.to_dict(),
                "m2": g.m2.to_dict() if g.m2 is not None else None,
            },
            "local_dependence": {"q3": self.q3_summary(), "ranked_by": self.pairs_ranked_by,
                                 "top_pairs": self.top_pairs()},
            "reliability": {"marginal": self.reliability.marginal,
                            "empirical": self.reliability.empirical,
                            "note": self.reliability.note},
            "messages": list(self.messages),
            "seconds": dict(self.seconds),
        }
        return _clean(doc)


def _five(v: np.ndarray) -> dict[str, float]:
    return {"min": int(v.min()), "median": float(np.median(v)), "max": int(v.max())}


def _clean(x: Any) -> Any:
    """Replace nan/inf by ``None`` and numpy scalars by Python numbers, recursively."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


# --------------------------------------------------------------------------- reliability
def marginal_reliability(model: ItemModel, n_points: int = 2001, half_width: float = 10.0
                         ) -> float:
    """Thissen-Wainer marginal reliability of the whole bank as one test form:
    ``int sigma^2 I(t) / (sigma^2 I(t) + 1) dN(t; 0, sigma^2)``, by the trapezoid rule over
    ``+/- half_width`` prior SDs (mirt's ``marginal_rxx`` when ``sigma = 1``)."""
    sigma = model.population_sd
    z = np.linspace(-half_width, half_width, n_points)
    info = model.test_information(sigma * z)
    f = sigma**2 * info / (sigma**2 * info + 1.0) * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return float(np.sum((f[1:] + f[:-1]) * np.diff(z)) / 2.0)


def empirical_reliability(theta: np.ndarray, se: np.ndarray) -> float:
    """``var(theta) / (var(theta) + mean(se^2))`` (variance with ``n - 1``) over finite
    estimates (mirt's ``empirical_rxx``)."""
    ok = np.isfinite(theta) & np.isfinite(se)
    if np.count_nonzero(ok) < 2:
        return math.nan
    v = float(np.var(theta[ok], ddof=1))
    return v / (v + float(np.mean(se[ok] ** 2)))


# --------------------------------------------------------------------------- orchestration
def _global(data: FitData, cfg: DiagnosticsConfig, messages: list[str]) -> GlobalFit:
    m = data.model
    ll = marginal_loglik(m, data.student, data.item, data.correct, data.n_students,
                         n_points=cfg.marginal_points, bound=cfg.bound,
                         adaptive=cfg.grid != "mirt")
    k = parameter_count(m.model_type, data.n_items)
    criteria = information_criteria(ll, k, data.n_students)
    instead = ("log-likelihood, AIC and BIC (compare models on the same answers with "
               "`irt compare`: likelihood-ratio test, online AUC/log-loss), the grouped X2 and "
               "infit/outfit item fit, and Q3 over co-answered item pairs")
    reason = None
    if not data.complete:
        reason = (f"design too sparse for a limited-information statistic: "
                  f"{100 * data.density:.4g}% of the {data.n_students} x {data.n_items} "
                  "student-item cells are answered; M2 compares every item's and every item "
                  "pair's proportion correct with the model's over one population answering all "
                  "items, so it needs a complete design")
    elif data.n_items > MAX_ITEMS:
        reason = (f"M2 is computed for at most {MAX_ITEMS} items ({data.n_items} here: its "
                  "covariance matrix would have "
                  f"{(data.n_items * (data.n_items + 1) // 2) ** 2:,} entries)")
    elif data.n_students < 2:
        reason = (f"too few students for M2: {data.n_students}; it compares the proportions "
                  "correct over a population of students, and its RMSEA divides by N - 1")
    elif data.n_items * (data.n_items + 1) // 2 <= k:
        reason = (f"too few items for M2: {data.n_items * (data.n_items + 1) // 2} margins for "
                  f"{k} parameters")
    if reason is not None:
        messages.append(f"M2 not computed: {reason}. Reported instead: {instead}.")
        return GlobalFit(criteria, None, False, reason, instead)
    result = m2(m, data.dense, n_points=cfg.marginal_points,
                bound=half_width(m, cfg.bound, cfg.grid),
                latent_in_delta=cfg.m2_latent_in_delta)
    return GlobalFit(criteria, result, True, None, None)


def diagnose(model: ItemModel, responses: Responses,
             config: DiagnosticsConfig | None = None) -> Diagnostics:
    """Every diagnostic the design of ``responses`` allows, for ``model`` (module docstring).

    Answers on items the model does not know are left out (counted in
    ``design.n_unknown_answers``), as are items nobody answered and students without answers.

    Args:
        model: a calibrated bank (plain IRT parameters are used; learning-aware options are
            ignored).
        responses: sparse answers, at most one per student-item pair.
        config: settings (default :class:`DiagnosticsConfig`).

    Raises:
        ValueError: if no answer falls on an item of the model, or a student answered an item
            twice.
    """
    cfg = config or DiagnosticsConfig()
    seconds: dict[str, float] = {}
    messages: list[str] = []

    def timed(name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds[name] = time.perf_counter() - start
        return out

    half = half_width(model, cfg.bound, cfg.grid)  # logits; checks cfg.grid
    data = timed("abilities", align, model, responses, n_points=cfg.score_points,
                 bound=cfg.bound, grid=cfg.grid)
    if data.n_unknown_answers:
        messages.append(f"{data.n_unknown_answers} answers on items unknown to the model "
                        "were left out.")
    items, persons = timed("residual_fit", residual_fit, data)
    sx2 = None
    if data.complete:
        sx2 = timed("s_x2", s_x2, data.model, data.dense, n_points=cfg.marginal_points,
                    bound=half, mincell=cfg.mincell)
    else:
        messages.append("S-X2 not computed: it groups students by total score over one test "
                        "form, and students here answered different items. Reported instead: "
                        f"grouped X2 ({cfg.x2_groups} groups by EAP per item, items with at "
                        f"least {cfg.x2_min_answers} answers) and infit/outfit.")
    x2 = timed("x2", grouped_x2, data, groups=cfg.x2_groups, min_answers=cfg.x2_min_answers)
    glob = timed("global_fit", _global, data, cfg, messages)
    local = timed("local_dependence", local_dependence, data, max_items=cfg.ld_max_items,
                  min_pair_answers=cfg.min_pair_answers, n_points=cfg.marginal_points,
                  bound=half)
    if data.n_items > cfg.ld_max_items:
        messages.append(f"Local dependence examined among the {cfg.ld_max_items} most-answered "
                        f"of {data.n_items} items (pairs answered by at least "
                        f"{cfg.min_pair_answers} students).")
    if not data.complete:
        messages.append("LD-X2 on a sparse log assumes each pair's students are a random draw "
                        "from the population; Q3 conditions on each student's ability.")
    start = time.perf_counter()
    empirical = empirical_reliability(data.theta, data.theta_se)
    if data.complete:
        rel = Reliability(marginal_reliability(data.model), empirical,
                          "marginal: Thissen-Wainer over N(0, sigma^2) with the test "
                          "information of all items; empirical: var(EAP) / (var(EAP) + "
                          "mean(SE^2))")
    else:
        rel = Reliability(None, empirical, "marginal reliability not computed: students "
                          "answered different items, so there is no one test information; "
                          "empirical: var(EAP) / (var(EAP) + mean(SE^2)) over the students")
    seconds["reliability"] = time.perf_counter() - start
    return Diagnostics(data=data, item_residuals=items, person_residuals=persons, s_x2=sx2,
                       x2=x2, global_fit=glob, local=local, reliability=rel, config=cfg,
                       messages=messages, seconds=seconds)
