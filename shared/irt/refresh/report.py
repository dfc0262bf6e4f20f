"""The model report: ``report.html``, one self-contained page per model.

Written by ``python -m irt report MODEL [ANSWERS] -o report.html`` and by ``prepare`` beside
each version's ``model.json`` (``models/<version>/report.html``).  The figures are Plotly
figures built here (``plotly``, pinned in the requirements files); plotly.js is inlined once,
so the page opens from disk or Cloud Storage with no network access.  Sections, each only
when its inputs exist:

1. summary: model type, items, fit (EM cycles, convergence, log-likelihood), reliability;
2. item characteristic and item information curves of one or several chosen items (a
   selector; the browser draws them from the parameters in the table with the formulas of
   :mod:`irt.engine.model`: ``P = c + (1 - c) logistic(a (theta - b))``,
   ``I = a^2 (Q / P) ((P - c) / (1 - c))^2``);
3. test information of the whole bank and its standard error ``1 / sqrt(I(theta))``;
4. the parameter table with standard errors, answers and fit flags (sortable, filterable),
   fit statistics from :func:`irt.engine.diagnostics.diagnose` on the answers;
5. the ability distribution: EAP of every student with answers, against the prior;
6. a reliability diagram of the online predictions (each answer predicted from the same
   student's earlier answers only, :func:`irt.engine.evaluate.online_predictions`): mean
   predicted vs observed proportion correct in ten probability bins, with counts;
7. in ``prepare``'s report: the new model against the serving one (parameter drift
   scatter), the quality gate's metrics, the data summary, the decision and every warning.

Size and time: plotly.js (about 4.8 MB) plus data bounded by :class:`ReportConfig`, whatever
the number of students or answers (the fit statistics, abilities and online predictions use
every k-th student above ``max_answers``): the table and the curve selector hold at most
``max_items`` items (flagged items first, then the most answered; the page says how many it
left out), the drift scatter at most ``max_drift_points`` items, the histograms are binned
here.

Fit flags (each documented in the page): infit or outfit mean-square outside
``mnsq_range`` (Linacre's range "productive for measurement") on an item with at least
``min_answers_mnsq`` answers; grouped X2 or S-X2 p-value
below ``alpha`` divided by the items tested (Bonferroni) with the item's RMSEA above
``max_rmsea`` (significant and not negligible); slope below ``min_a`` (2PL/3PL);
difficulty beyond ``max_abs_b`` prior SDs.

Plotly is imported only by :func:`render_html`; ``predict`` imports nothing of this layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from irt import __version__
from irt.engine.evaluate import metrics as prediction_metrics
from irt.engine.evaluate import online_predictions
from irt.engine.model import ItemModel
from irt.engine.responses import Responses

if TYPE_CHECKING:
    from irt.refresh.quality import Replay


@dataclass(frozen=True)
class ReportConfig:
    """What the report shows and how much of it.

    Attributes:
        max_items: items in the parameter table and the curve selector.
        max_answers: above it, the fit statistics, abilities and online predictions use every
            k-th student (at most about this many answers; the online predictions cost about
            20 us per answer, the diagnostics 3 us).
        max_drift_points: items in the drift scatter (the most answered common items).
        initial_curves: items drawn when the page opens.
        theta_sds: the curves span ``+/- theta_sds`` prior SDs (at least ``+/- 4`` logits).
        theta_points: points per curve.
        ability_bins: bars of the ability histogram.
        calibration_bins: equal-width probability bins of the reliability diagram (as the ECE
            of :func:`irt.engine.evaluate.calibration_error`).
        diagnose: run :func:`irt.engine.diagnostics.diagnose` for the fit flags and abilities.
        mnsq_range: infit/outfit mean-squares outside it are flagged...
        min_answers_mnsq: ...for items with at least this many answers (on a sparse log most
            items have a handful, whose mean-squares are noise).
        alpha: family-wise level of the X2 / S-X2 flags (Bonferroni over the items tested).
        max_rmsea: an X2 / S-X2 flag also needs the item's RMSEA above this (with thousands
            of answers a negligible misfit is significant; the grouped X2 on EAP groups is
            liberal besides).
        min_a: 2PL/3PL slopes below it are flagged.
        max_abs_b: difficulties beyond this many prior SDs are flagged.
    """

    max_items: int = 1000
    max_answers: int = 300_000
    max_drift_points: int = 2000
    initial_curves: int = 5
    theta_sds: float = 4.0
    theta_points: int = 161
    ability_bins: int = 40
    calibration_bins: int = 10
    diagnose: bool = True
    mnsq_range: tuple[float, float] = (0.5, 1.5)
    min_answers_mnsq: int = 30
    alpha: float = 0.05
    max_rmsea: float = 0.05
    min_a: float = 0.3
    max_abs_b: float = 4.0


# --------------------------------------------------------------------------- predictions
def online_reliability(model: ItemModel, responses: Responses,
                       order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(correct, P(correct))`` of every answer of ``responses``, each predicted from the
    same student's earlier answers only (by ``order``, e.g. ``answered_at``; else the order
    of ``responses``)."""
    key = np.arange(responses.n_answers, dtype=float)
    if order is not None and not np.isnan(order).all():
        key = np.where(np.isnan(order), np.inf, order)
    rows = np.lexsort((np.arange(responses.n_answers), key, responses.student))
    pos = model.positions(list(responses.item_ids))[responses.item[rows]]
    student = responses.student[rows].astype(np.int64)
    correct = responses.correct[rows]
    return correct.astype(float), online_predictions(model, student, pos, correct)


def holdout_predictions(model: ItemModel, student: np.ndarray, item_ids: np.ndarray,
                        correct: np.ndarray, order_key: np.ndarray, held_out: np.ndarray,
                        max_students: int = 1000, replay: Replay | None = None
                        ) -> tuple[np.ndarray, np.ndarray, str]:
    """``(correct, P(correct), what)`` of the held-out answers, replayed as the quality gate
    replays them (:func:`irt.refresh.quality.holdout_scores`): every answer of a sampled
    student in time order, a held-out answer predicted from that student's earlier ones.
    Of more than ``max_students`` held-out students, every k-th (by index) is replayed, so
    the cost stays bounded (the gate holds out up to 5,000); ``what`` says which.

    ``replay``: the gate's replay of ``model`` on these answers
    (:func:`irt.refresh.quality.holdout_replay`, as ``prepare`` keeps it): its probabilities
    of the same students' answers are taken instead of replaying them again (each
    student's predictions depend on that student's answers only)."""
    student = np.asarray(student, dtype=np.int64)
    if not held_out.any():
        return np.zeros(0), np.zeros(0), "no held-out answers"
    sampled = np.zeros(int(student.max()) + 1, dtype=bool)
    sampled[student[held_out]] = True
    ids = np.flatnonzero(sampled)
    what = f"the held-out answers of the gate's {ids.shape[0]} held-out students"
    if ids.shape[0] > max_students:
        k = math.ceil(ids.shape[0] / max_students)
        sampled[:] = False
        sampled[ids[::k]] = True
        what = (f"the held-out answers of 1 in {k} of the gate's {ids.shape[0]} held-out "
                f"students ({ids[::k].shape[0]})")
    if replay is not None:
        y, p = replay.scored(correct, held_out & sampled[student])
        return y.astype(float), p, what
    rows = np.flatnonzero(sampled[student])
    order = rows[np.lexsort((np.asarray(order_key)[rows], student[rows]))]
    pos = model.positions(list(np.asarray(item_ids, dtype=object)[order]))
    y = np.asarray(correct)[order]
    p = online_predictions(model, student[order], pos, y)
    scored = held_out[order]
    return y[scored].astype(float), p[scored], what


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Per equal-width probability bin: answers, mean predicted and observed proportion
    correct, and the observed proportion's 95 % Wilson interval (bins without answers are
    left out)."""
    k = np.minimum((np.asarray(p) * bins).astype(int), bins - 1)
    n = np.bincount(k, minlength=bins)
    sum_p = np.bincount(k, weights=p, minlength=bins)
    sum_y = np.bincount(k, weights=y, minlength=bins)
    out = []
    for j in np.flatnonzero(n).tolist():
        m, obs = int(n[j]), float(sum_y[j] / n[j])
        z = 1.959964
        centre = (obs + z * z / (2 * m)) / (1 + z * z / m)
        half = z * math.sqrt(obs * (1 - obs) / m + z * z / (4 * m * m)) / (1 + z * z / m)
        out.append({"bin": f"{j / bins:.1f}-{(j + 1) / bins:.1f}", "n": m,
                    "predicted": float(sum_p[j] / n[j]), "observed": obs,
                    "low": max(0.0, centre - half), "high": min(1.0, centre + half)})
    return out


# --------------------------------------------------------------------------- the document
def build_report(model: ItemModel, responses: Responses | None = None, *,
                 order: np.ndarray | None = None,
                 predictions: tuple[np.ndarray, np.ndarray] | None = None,
                 predictions_note: str | None = None,
                 serving_model: ItemModel | None = None, run: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None, title: str | None = None,
                 config: ReportConfig | None = None,
                 diagnostics: Any = None) -> dict[str, Any]:
    """Everything the page shows, JSON-ready and bounded in size (:class:`ReportConfig`).

    Args:
        model: the bank reported on.
        responses: answers (first attempts): the fit flags, answer counts, abilities and, when
            ``predictions`` is not given, the online predictions come from them.
        order: answer order of ``responses`` (epoch seconds; ``NaN`` = unknown).
        predictions: ``(correct, probability)`` of the reliability diagram (``prepare``: the
            held-out answers).
        predictions_note: where ``predictions`` come from, in words.
        serving_model: the model serving now, for the drift scatter.
        run: ``prepare``'s ``report.json`` (decision, reasons, data, gate, window).
        metrics: ``prepare``'s ``metrics.json`` (monitoring alerts and problems).
        diagnostics: what :func:`report_diagnostics` returned for ``model`` and
            ``responses`` (``prepare`` computes it beside the gate and the checks), used
            instead of computing it here; ``None``: computed here.
        title: the page title (default: the model's version or type).
        config: what to show and how much (default :class:`ReportConfig`).
    """
    cfg = config or ReportConfig()
    sigma = float(model.population_sd)
    name = model.version or model.model_type
    doc: dict[str, Any] = {"title": title or f"IRT model report: {name}",
                           "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                           "code_version": __version__, "notes": [], "warnings": []}
    doc["model"] = {"model_type": model.model_type, "version": model.version,
                    "created_at": model.created_at, "code_version": model.code_version,
                    "n_items": model.n_items, "population_sd": sigma,
                    "excluded_items": len(model.excluded_items),
                    "fit": {k: model.fit.get(k) for k in ("iterations", "converged",
                                                           "log_likelihood") if k in model.fit},
                    "options": sorted(k for k in model.options if model.options[k])}
    half = max(4.0, cfg.theta_sds * sigma)
    theta = np.linspace(-half, half, cfg.theta_points)
    # a few abilities at a time: each one's sum over the items as in one call, on arrays of
    # 8 x items that stay in cache (161 x 17,700 items made 23 MB arrays: 90 -> 48 ms)
    info = np.concatenate([model.test_information(theta[k:k + 8])
                           for k in range(0, theta.shape[0], 8)])
    doc["theta"] = _round(theta, 4)
    doc["test_information"] = {"information": _round(info, 5),
                               "se": _round(1.0 / np.sqrt(np.maximum(info, 1e-300)), 5)}

    counts = diag = None
    if responses is not None and responses.n_answers:
        pos = model.positions(list(responses.item_ids))[responses.item]
        counts = np.bincount(pos[pos >= 0], minlength=model.n_items)
        doc["answers"] = {"n_answers": int(responses.n_answers),
                          "n_students": int(np.unique(responses.student).shape[0]),
                          "n_items_answered": int(np.count_nonzero(counts)),
                          "n_unknown_answers": int(np.count_nonzero(pos < 0))}
        responses, order = _sample(responses, order, cfg.max_answers, doc)
        if cfg.diagnose:
            diag = _diagnose(model, responses, doc, diagnostics)
    if model.excluded_items:
        listed = list(model.excluded_items.items())[:50]
        doc["warnings"].append(
            f"{len(model.excluded_items)} items were left out of calibration"
            + (" (the first 50)" if len(model.excluded_items) > 50 else "") + ": "
            + "; ".join(f"{i}: {why}" for i, why in listed))
    items, shown_note = _item_rows(model, counts, diag, cfg)
    doc["items"] = items
    doc["items_note"] = shown_note
    doc["flag_rules"] = _flag_rules(model, cfg, diag)
    doc["initial"] = list(range(min(cfg.initial_curves, len(items))))
    if diag is not None:
        doc["ability"] = _ability(diag.data.theta, sigma, cfg.ability_bins)
        doc["diagnostics"] = _diagnostics_summary(diag)
    if predictions is None and responses is not None and responses.n_answers:
        predictions = online_reliability(model, responses, order)
        predictions_note = predictions_note or (
            "every answer of the given answers predicted from the same student's earlier "
            "answers only (in-sample when these answers calibrated the model: pass held-out "
            "students for an out-of-sample view)")
    if predictions is not None and predictions[0].shape[0]:
        y, p = predictions
        doc["calibration"] = {"bins": calibration_table(y, p, cfg.calibration_bins),
                              "metrics": _clean(prediction_metrics(y, p)),
                              "n": int(y.shape[0]), "note": predictions_note or ""}
    if serving_model is not None:
        doc["drift"] = _drift(model, serving_model, counts, cfg)
    if run is not None:
        doc["run"] = _run_summary(run, metrics)
    return doc


def _sample(responses: Responses, order: np.ndarray | None, limit: int, doc: dict[str, Any]
            ) -> tuple[Responses, np.ndarray | None]:
    """At most about ``limit`` answers for the fit statistics, abilities and online
    predictions: every k-th student (whole answer patterns, as the monitoring challenger
    samples), said in a note."""
    n = responses.n_answers
    if n <= limit:
        return responses, order
    k = math.ceil(n / limit)
    keep = responses.student % k == 0
    sample = responses.subset(keep)
    n_students = int(np.unique(responses.student).shape[0])
    doc["notes"].append(
        f"Fit statistics, abilities and online predictions on 1 student in {k}: "
        f"{np.unique(sample.student).shape[0]} of {n_students} students, "
        f"{sample.n_answers} of {n} answers (the page keeps its cost bounded: at most about "
        f"{limit} answers); the answers column counts every answer.")
    return sample, None if order is None else order[keep]


def report_diagnostics(model: ItemModel, responses: Responses,
                       config: ReportConfig | None = None) -> Any:
    """The fit statistics :func:`build_report` shows for ``model`` on ``responses``, ahead of
    it (``prepare`` computes them in a background thread while its gate and checks run):
    :func:`irt.engine.diagnostics.diagnose` on the answers the report samples
    (:func:`_sample`), or the ``ValueError`` it raised (the report then says why they are
    missing).  Pass the result to :func:`build_report` as ``diagnostics``."""
    from irt.engine.diagnostics import diagnose

    cfg = config or ReportConfig()
    sample, _ = _sample(responses, None, cfg.max_answers, {"notes": []})
    try:
        return diagnose(model, sample)
    except ValueError as exc:
        return exc


def _diagnose(model: ItemModel, responses: Responses, doc: dict[str, Any],
              computed: Any = None):
    """:func:`irt.engine.diagnostics.diagnose` (or ``computed``, from
    :func:`report_diagnostics`), or ``None`` with a warning when it cannot run on these
    answers."""
    from irt.engine.diagnostics import diagnose

    try:
        if isinstance(computed, ValueError):
            raise computed
        diag = computed if computed is not None else diagnose(model, responses)
    except ValueError as exc:
        doc["warnings"].append(f"diagnostics not computed: {exc}")
        return None
    doc["notes"].extend(diag.messages)
    return diag


def _item_rows(model: ItemModel, counts: np.ndarray | None, diag: Any, cfg: ReportConfig
               ) -> tuple[list[dict[str, Any]], str]:
    """The rows of the parameter table (flagged items first, then the most answered, then
    the bank's order), at most ``cfg.max_items``, and a sentence saying which are shown."""
    fit = {}
    n_tested = 0
    if diag is not None:
        for row in diag.item_table():
            fit[row["item_id"]] = row
        tested = [r for r in fit.values() if _finite(r.get("s_x2_p", r.get("x2_p")))]
        n_tested = len(tested)
    sigma = model.population_sd
    n_all = model.n_items
    flags = [_flags(model, j, fit.get(item_id, {}), n_tested, cfg, sigma)
             for j, item_id in enumerate(model.item_ids)]
    answers = np.zeros(n_all, dtype=np.int64) if counts is None else counts
    rank = sorted(range(n_all), key=lambda k: (not flags[k], -int(answers[k]), k))
    n_flagged = sum(1 for f in flags if f)
    shown = []
    for j in rank[:cfg.max_items]:
        f = fit.get(model.item_ids[j], {})
        row: dict[str, Any] = {
            "id": model.item_ids[j], "a": _num(model.a[j], 5), "b": _num(model.b[j], 5),
            "c": _num(model.c[j], 5), "se_a": _num(model.se_a[j], 4),
            "se_b": _num(model.se_b[j], 4), "se_c": _num(model.se_c[j], 4),
            "n": None if counts is None else int(counts[j])}
        for key in ("outfit", "infit", "z_outfit", "z_infit", "x2_p", "x2_rmsea", "s_x2_p",
                    "s_x2_rmsea"):
            if key in f:
                row[key] = _num(f[key], 4)
        row["flags"] = flags[j]
        shown.append(row)
    if n_all <= cfg.max_items:
        note = f"All {n_all} items"
    else:
        flagged_shown = sum(1 for r in shown if r["flags"])
        note = (f"{len(shown)} of {n_all} items (the page keeps at most {cfg.max_items}): "
                f"{flagged_shown} of the {n_flagged} flagged items, then the most answered; "
                "model.json has every item")
    return shown, note


def _flags(model: ItemModel, j: int, f: dict[str, Any], n_tested: int, cfg: ReportConfig,
           sigma: float) -> list[str]:
    out = []
    lo, hi = cfg.mnsq_range
    for key in ("infit", "outfit"):
        v = f.get(key)
        if _finite(v) and not lo <= v <= hi and f.get("n", 0) >= cfg.min_answers_mnsq:
            out.append(key)
    cut = cfg.alpha / max(n_tested, 1)
    for key, name in (("s_x2", "S-X2"), ("x2", "X2")):
        p, rmsea = f.get(f"{key}_p"), f.get(f"{key}_rmsea")
        if _finite(p) and p < cut and _finite(rmsea) and rmsea > cfg.max_rmsea:
            out.append(name)
    if model.model_type in ("2pl", "3pl") and model.a[j] < cfg.min_a:
        out.append("low a")
    if abs(model.b[j]) > cfg.max_abs_b * sigma:
        out.append("extreme b")
    return out


def _flag_rules(model: ItemModel, cfg: ReportConfig, diag: Any) -> list[str]:
    lo, hi = cfg.mnsq_range
    rules = [f"low a: slope below {cfg.min_a:g} (2PL/3PL)",
             f"extreme b: |b| above {cfg.max_abs_b:g} prior SDs "
             f"({cfg.max_abs_b * model.population_sd:g} logits)"]
    if diag is not None:
        rules[:0] = [f"infit / outfit: mean-square outside [{lo:g}, {hi:g}], items with at "
                     f"least {cfg.min_answers_mnsq} answers",
                     f"X2 / S-X2: p below {cfg.alpha:g} / items tested (Bonferroni) and "
                     f"RMSEA above {cfg.max_rmsea:g}"]
    else:
        rules.append("fit statistics need answers: run `irt report MODEL ANSWERS`")
    return rules


def _ability(theta: np.ndarray, sigma: float, bins: int) -> dict[str, Any]:
    """Histogram of the EAP estimates and the prior density scaled to the counts."""
    theta = theta[np.isfinite(theta)]
    half = max(4.0 * sigma, float(np.abs(theta).max()) if theta.size else 0.0)
    edges = np.linspace(-half, half, bins + 1)
    counts, _ = np.histogram(theta, edges)
    width = edges[1] - edges[0]
    x = np.linspace(-half, half, 121)
    density = theta.shape[0] * width * np.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(
        2 * math.pi))
    return {"centres": _round((edges[1:] + edges[:-1]) / 2, 4), "counts": counts.tolist(),
            "width": float(width), "prior_x": _round(x, 4), "prior_y": _round(density, 3),
            "n": int(theta.shape[0]), "mean": _num(theta.mean(), 4) if theta.size else None,
            "sd": _num(theta.std(ddof=1), 4) if theta.size > 1 else None}


def _diagnostics_summary(diag: Any) -> dict[str, Any]:
    g = diag.global_fit
    out = {"design": _clean(diag.design()),
           "reliability": {"marginal": _num(diag.reliability.marginal, 4),
                           "empirical": _num(diag.reliability.empirical, 4),
                           "note": diag.reliability.note},
           "criteria": _clean(g.criteria.to_dict())}
    if g.m2 is not None:
        out["m2"] = _clean(g.m2.to_dict())
    return out


def _drift(model: ItemModel, serving: ItemModel, counts: np.ndarray | None,
           cfg: ReportConfig) -> dict[str, Any]:
    """The common items' parameters, new against serving (at most ``max_drift_points``, the
    most answered), and summaries over all of them."""
    pos = serving.positions(list(model.item_ids))
    common = np.flatnonzero(pos >= 0)
    new_ids = set(model.item_ids)
    out: dict[str, Any] = {
        "serving_version": serving.version, "serving_model_type": serving.model_type,
        "n_common": int(common.shape[0]),
        "n_new_only": int(model.n_items - common.shape[0]),
        "n_serving_only": sum(1 for i in serving.item_ids if i not in new_ids)}
    if not common.shape[0]:
        return out
    sp = pos[common]
    db = model.b[common] - serving.b[sp]
    da = model.a[common] - serving.a[sp]
    out.update({"mean_abs_db": _num(np.abs(db).mean(), 4), "max_abs_db": _num(
        np.abs(db).max(), 4), "mean_abs_da": _num(np.abs(da).mean(), 4),
        "corr_b": _num(np.corrcoef(model.b[common], serving.b[sp])[0, 1], 4)
        if common.shape[0] > 2 else None})
    if counts is not None:
        rank = np.lexsort((common, -counts[common]))
    else:
        rank = np.arange(common.shape[0])
    keep = np.sort(rank[:cfg.max_drift_points])
    out["shown"] = int(keep.shape[0])
    c, s = common[keep], sp[keep]
    out["points"] = {"id": [model.item_ids[j] for j in c.tolist()],
                     "a_new": _round(model.a[c], 4), "a_serving": _round(serving.a[s], 4),
                     "b_new": _round(model.b[c], 4), "b_serving": _round(serving.b[s], 4)}
    return out


def _run_summary(run: dict[str, Any], metrics: dict[str, Any] | None) -> dict[str, Any]:
    """What ``prepare``'s page shows of ``report.json`` and ``metrics.json``."""
    m = metrics or {}
    warnings = [f"decision reason: {r}" for r in run.get("reasons") or []]
    warnings += [f"monitoring problem: {p}" for p in m.get("monitoring_problems") or []
                 if f"decision reason: {p}" not in warnings]
    warnings += [f"monitoring alert ({a.get('check')}): {a.get('message')}"
                 for a in m.get("monitoring_alerts") or []]
    fit = run.get("fit") or {}
    if fit and not fit.get("converged", True):
        warnings.append("the EM did not converge")
    return _clean({"version": run.get("version"), "decision": run.get("decision"),
                   "serving_version": run.get("serving_version"),
                   "window_start": run.get("window_start"), "window_end": run.get("window_end"),
                   "source": run.get("source"), "run_id": run.get("run_id"),
                   "data": run.get("data"), "fit": fit, "gate": run.get("gate"),
                   "warnings": warnings, "report_json": run, "metrics_json": metrics})


# --------------------------------------------------------------------------- helpers
def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _num(v: Any, digits: int) -> float | None:
    if v is None:
        return None
    v = float(v)
    return float(f"{v:.{digits}g}") if math.isfinite(v) else None


def _round(v: np.ndarray, digits: int) -> list[float | None]:
    return [_num(x, digits) for x in np.asarray(v, dtype=float).tolist()]


def _clean(x: Any) -> Any:
    """JSON-ready: numpy scalars as Python numbers, nan/inf as ``None``."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


# --------------------------------------------------------------------------- the page
def render_html(doc: dict[str, Any]) -> str:
    """The page of a :func:`build_report` document: one HTML file, plotly.js inlined."""
    from irt.refresh.report_page import page

    return page(doc)


def model_report(model: ItemModel, responses: Responses | None = None, **kwargs: Any) -> str:
    """:func:`build_report` then :func:`render_html`."""
    return render_html(build_report(model, responses, **kwargs))

