"""The HTML of the model report (:mod:`irt.refresh.report`): Plotly figures, the parameter
table and the page around them, in one file with plotly.js inlined.

Every figure is a ``plotly.graph_objects.Figure`` serialised with :func:`plotly.io.to_json`
and drawn by ``Plotly.newPlot``; the item curves are drawn in the browser from the item
parameters (so the selector can offer every item of the table without shipping a curve per
item).  Text from the data (item ids, versions, messages) reaches the page only escaped:
``html.escape`` here, ``textContent`` in the script, ``\\u003c`` in embedded JSON.
"""

from __future__ import annotations

import html
import json
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

TEMPLATE = "plotly_white"
#: The parameter table's columns: (key, header, what it is).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "item", "item id"), ("flags", "flags", "fit flags (rules below)"),
    ("n", "answers", "answers to the item in the data"),
    ("a", "a", "slope (discrimination)"), ("se_a", "SE(a)", "standard error of a"),
    ("b", "b", "difficulty, logits"), ("se_b", "SE(b)", "standard error of b"),
    ("c", "c", "guessing (3PL)"), ("se_c", "SE(c)", "standard error of c"),
    ("infit", "infit", "infit mean-square"), ("outfit", "outfit", "outfit mean-square"),
    ("z_infit", "z infit", "infit z (Wilson-Hilferty)"),
    ("z_outfit", "z outfit", "outfit z (Wilson-Hilferty)"),
    ("x2_p", "X2 p", "grouped X2 p-value (10 groups by EAP)"),
    ("x2_rmsea", "X2 RMSEA", "grouped X2 RMSEA"),
    ("s_x2_p", "S-X2 p", "Orlando-Thissen S-X2 p-value (complete designs)"),
    ("s_x2_rmsea", "S-X2 RMSEA", "S-X2 RMSEA"),
)
METRICS = ("auc", "log_loss", "brier", "ece", "mean_probability", "mean_correct")


def escape(text: Any) -> str:
    """HTML text of any value (``-`` for ``None``)."""
    return "-" if text is None else html.escape(str(text))


def script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``<`` survives, so no ``</script>``)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")


def page(doc: dict[str, Any]) -> str:
    """The whole page of a :func:`irt.refresh.report.build_report` document."""
    figures = _figures(doc)
    columns = [c for c in COLUMNS
               if c[0] in ("id", "flags") or any(r.get(c[0]) is not None for r in doc["items"])]
    data = {"items": doc["items"], "theta": doc["theta"], "initial": doc["initial"],
            "columns": [[k, h, t] for k, h, t in columns]}
    figs_js = "{" + ",".join(f"{json.dumps(k)}:{pio.to_json(f, validate=True)}"
                             for k, f in figures.items()).replace("<", "\\u003c") + "}"
    body = "\n".join(part for part in (
        _header(doc), _run_section(doc), _curves_section(doc), _test_section(),
        _table_section(doc), _ability_section(doc), _calibration_section(doc),
        _drift_section(doc), _notes_section(doc)) if part)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(doc["title"])}</title>
<style>{CSS}</style>
<script>{get_plotlyjs()}</script>
</head><body>
{body}
<script type="application/json" id="irt-data">{script_json(data)}</script>
<script>var IRT_FIGURES = {figs_js};</script>
<script>{SCRIPT}</script>
</body></html>
"""


# --------------------------------------------------------------------------- figures
def _figures(doc: dict[str, Any]) -> dict[str, go.Figure]:
    theta = doc["theta"]
    figs: dict[str, go.Figure] = {}
    for key, ytitle, title in (("fig-icc", "P(correct)", "Item characteristic curves"),
                               ("fig-iif", "information", "Item information curves")):
        fig = go.Figure(layout={"template": TEMPLATE, "title": title, "height": 380,
                                "xaxis": {"title": "ability θ (logits)"},
                                "yaxis": {"title": ytitle}, "margin": {"t": 50}})
        if key == "fig-icc":
            fig.update_yaxes(range=[0, 1])
        figs[key] = fig
    t = doc["test_information"]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=theta, y=t["information"], name="test information",
                             mode="lines"), secondary_y=False)
    fig.add_trace(go.Scatter(x=theta, y=t["se"], name="SE = 1/√I", mode="lines",
                             line={"dash": "dash"}), secondary_y=True)
    fig.update_layout(template=TEMPLATE, height=380, title="Test information of the bank",
                      margin={"t": 50}, legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(title="ability θ (logits)")
    fig.update_yaxes(title="information", secondary_y=False)
    fig.update_yaxes(title="standard error", type="log", secondary_y=True)
    figs["fig-test"] = fig
    if "ability" in doc:
        ab = doc["ability"]
        fig = go.Figure(layout={"template": TEMPLATE, "height": 380, "bargap": 0.05,
                                "title": f"Ability distribution ({ab['n']} students, EAP)",
                                "xaxis": {"title": "ability θ (logits)"},
                                "yaxis": {"title": "students"}, "margin": {"t": 50},
                                "legend": {"orientation": "h", "y": -0.2}})
        fig.add_trace(go.Bar(x=ab["centres"], y=ab["counts"], width=ab["width"],
                             name="EAP estimates"))
        fig.add_trace(go.Scatter(x=ab["prior_x"], y=ab["prior_y"], mode="lines",
                                 name=f"prior N(0, {doc['model']['population_sd']:.3g}²)"))
        figs["fig-ability"] = fig
    if "calibration" in doc:
        bins = doc["calibration"]["bins"]
        fig = make_subplots(specs=[[{"secondary_y": True}]])
        fig.add_trace(go.Bar(x=[b["predicted"] for b in bins], y=[b["n"] for b in bins],
                             name="answers per bin", opacity=0.25, width=0.08,
                             hovertemplate="%{y} answers<extra></extra>"), secondary_y=True)
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                                 line={"dash": "dot", "color": "grey"}), secondary_y=False)
        fig.add_trace(go.Scatter(
            x=[b["predicted"] for b in bins], y=[b["observed"] for b in bins],
            mode="lines+markers", name="observed (95% Wilson interval)",
            customdata=[[b["n"], b["bin"]] for b in bins],
            hovertemplate="bin %{customdata[1]}: predicted %{x:.3f}, observed %{y:.3f}, "
                          "%{customdata[0]} answers<extra></extra>",
            error_y={"type": "data", "symmetric": False,
                     "array": [b["high"] - b["observed"] for b in bins],
                     "arrayminus": [b["observed"] - b["low"] for b in bins]}),
            secondary_y=False)
        fig.update_layout(template=TEMPLATE, height=420, margin={"t": 50},
                          title="Reliability diagram of the online predictions",
                          legend={"orientation": "h", "y": -0.2})
        fig.update_xaxes(title="mean predicted P(correct)", range=[0, 1])
        fig.update_yaxes(title="observed proportion correct", range=[0, 1], secondary_y=False)
        fig.update_yaxes(title="answers", showgrid=False, secondary_y=True)
        figs["fig-calibration"] = fig
    points = doc.get("drift", {}).get("points")
    if points:
        fig = make_subplots(rows=1, cols=2, subplot_titles=("slope a", "difficulty b"))
        for col, key in ((1, "a"), (2, "b")):
            x, y = points[f"{key}_serving"], points[f"{key}_new"]
            lo = min(v for v in x + y if v is not None)
            hi = max(v for v in x + y if v is not None)
            fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", showlegend=False,
                                     line={"dash": "dot", "color": "grey"},
                                     hoverinfo="skip"), row=1, col=col)
            fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name=key, showlegend=False,
                                     text=[escape(i) for i in points["id"]],
                                     marker={"size": 5, "opacity": 0.6},
                                     hovertemplate="%{text}: serving %{x:.3f}, new %{y:.3f}"
                                                   "<extra></extra>"), row=1, col=col)
            fig.update_xaxes(title="serving model", row=1, col=col)
            fig.update_yaxes(title="new model", row=1, col=col)
        fig.update_layout(template=TEMPLATE, height=420, margin={"t": 60},
                          title="Parameter drift: new against serving")
        figs["fig-drift"] = fig
    return figs


# --------------------------------------------------------------------------- sections
def _kv(rows: list[tuple[str, Any]]) -> str:
    return "<table class='kv'>" + "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(_fmt(v))}</td></tr>" for k, v in rows) + \
        "</table>"


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items()) or "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return v


def _header(doc: dict[str, Any]) -> str:
    m = doc["model"]
    rows = [("model type", m["model_type"]), ("version", m["version"] or "-"),
            ("created", m["created_at"] or "-"), ("items", m["n_items"]),
            ("items left out of calibration", m["excluded_items"]),
            ("latent SD", m["population_sd"])]
    fit = m["fit"]
    if fit:
        rows.append(("EM", f"{fit.get('iterations')} cycles, "
                           f"{'converged' if fit.get('converged') else 'NOT converged'}"
                           + (f", log-likelihood {fit['log_likelihood']:.6g}"
                              if isinstance(fit.get("log_likelihood"), float) else "")))
    if m["options"]:
        rows.append(("options", ", ".join(m["options"])))
    if "answers" in doc:
        a = doc["answers"]
        rows.append(("answers reported on", f"{a['n_answers']} answers of {a['n_students']} "
                     f"students on {a['n_items_answered']} items"
                     + (f" ({a['n_unknown_answers']} on unknown items)"
                        if a["n_unknown_answers"] else "")))
    d = doc.get("diagnostics")
    if d:
        r = d["reliability"]
        rows.append(("reliability", f"empirical {_fmt(r['empirical'])}" +
                     (f", marginal {_fmt(r['marginal'])}" if r["marginal"] is not None else "")))
        c = d["criteria"]
        rows.append(("log-likelihood / AIC / BIC", " / ".join(
            _fmt(c.get(k)) if c.get(k) is not None else "-"
            for k in ("log_likelihood", "aic", "bic"))))
        if "m2" in d:
            m2 = d["m2"]
            rows.append(("M2", f"{_fmt(m2.get('m2'))} (df {m2.get('df')}), RMSEA "
                               f"{_fmt(m2.get('rmsea'))}, SRMSR {_fmt(m2.get('srmsr'))}"))
    nav = [("curves", "Item curves"), ("test", "Test information"), ("items", "Parameters")]
    if "ability" in doc:
        nav.append(("ability", "Abilities"))
    if "calibration" in doc:
        nav.append(("calibration", "Reliability diagram"))
    if "drift" in doc:
        nav.append(("drift", "Drift"))
    links = " · ".join(f"<a href='#{k}'>{escape(v)}</a>" for k, v in nav)
    return (f"<header><h1>{escape(doc['title'])}</h1><nav>{links}</nav></header>"
            f"<section id='summary'><h2>Summary</h2>{_kv(rows)}"
            f"<p class='small'>Generated {escape(doc['generated_at'])} by irt "
            f"{escape(doc['code_version'])}.</p></section>")


def _run_section(doc: dict[str, Any]) -> str:
    run = doc.get("run")
    if not run:
        return ""
    decision = run.get("decision") or "-"
    cls = "ok" if decision in ("accepted", "forced", "dry_run") else "bad"
    rows = [("version", run.get("version")), ("serving version", run.get("serving_version")),
            ("window", f"{run.get('window_start')} .. {run.get('window_end')}"),
            ("source", run.get("source")), ("run id", run.get("run_id"))]
    parts = [f"<section id='run'><h2>This refresh: <span class='{cls}'>"
             f"{escape(decision)}</span></h2>", _kv(rows)]
    gate = run.get("gate")
    if gate:
        cols = [("new", gate.get("new")), ("serving", gate.get("serving")),
                ("plain 2PL", gate.get("plain"))]
        cols = [(n, v) for n, v in cols if v]
        head = "".join(f"<th>{escape(n)}</th>" for n, _ in cols)
        body = "".join(
            f"<tr><th>{escape(k)}</th>" + "".join(f"<td>{escape(_fmt(v.get(k)))}</td>"
                                                  for _, v in cols) + "</tr>"
            for k in METRICS if any(k in v for _, v in cols))
        parts.append(f"<h3>Quality gate: {'passed' if gate.get('passed') else 'FAILED'}</h3>"
                     f"<p>Held-out answers {escape(gate.get('n_holdout_answers'))} of "
                     f"{escape(gate.get('n_holdout_students'))} students, each predicted "
                     "online from the student's earlier answers.</p>"
                     f"<table class='grid'><tr><th>metric</th>{head}</tr>{body}</table>")
    data = run.get("data")
    if data:
        parts.append("<h3>Data</h3>" + _kv([(k, v) for k, v in data.items()]))
    warnings = run.get("warnings") or []
    parts.append("<h3>Warnings</h3>" + (
        "<ul class='warnings'>" + "".join(f"<li>{escape(w)}</li>" for w in warnings) + "</ul>"
        if warnings else "<p>None.</p>"))
    for key, name in (("report_json", "report.json"), ("metrics_json", "metrics.json")):
        if run.get(key) is not None:
            parts.append(f"<details><summary>{name}</summary><pre>"
                         f"{escape(json.dumps(run[key], indent=1))}</pre></details>")
    parts.append("</section>")
    return "".join(parts)


def _curves_section(doc: dict[str, Any]) -> str:
    return ("<section id='curves'><h2>Item curves</h2>"
            "<p>Choose one item or several (Ctrl/Shift-click, or click rows of the parameter "
            "table) among the items of the table "
            f"({escape(doc['items_note'][:1].lower() + doc['items_note'][1:])}). The browser "
            "draws P(correct) = c + (1 − c) / (1 + exp(−a (θ − b))) and the information "
            "a² (Q/P) ((P − c)/(1 − c))² from the parameters shown.</p>"
            "<div class='pick'><select id='irt-item-select' multiple size='8' "
            "aria-label='items to draw'></select><div class='buttons'>"
            "<button type='button' id='irt-pick-top'>first 5</button>"
            "<button type='button' id='irt-pick-flagged'>flagged (up to 10)</button>"
            "<button type='button' id='irt-pick-clear'>clear</button></div></div>"
            "<div class='row'><div id='fig-icc' class='irt-figure'></div>"
            "<div id='fig-iif' class='irt-figure'></div></div></section>")


def _test_section() -> str:
    return ("<section id='test'><h2>Test information</h2><p>The information of every item "
            "of the bank added up, and the standard error of a student who answered them "
            "all, 1/√I(θ) (a student who answers a few items has far less).</p>"
            "<div id='fig-test' class='irt-figure'></div></section>")


def _table_section(doc: dict[str, Any]) -> str:
    rules = "".join(f"<li>{escape(r)}</li>" for r in doc["flag_rules"])
    return ("<section id='items'><h2>Parameters</h2>"
            f"<p>{escape(doc['items_note'])}. Click a column header to sort, a row to draw "
            "its curves.</p>"
            "<div class='filters'><input id='irt-filter' type='search' "
            "placeholder='filter by item id' aria-label='filter by item id'> "
            "<label><input id='irt-flagged-only' type='checkbox'> flagged only</label> "
            "<span id='irt-count'></span></div>"
            "<div class='scroll'><table id='irt-items' class='grid sortable'><thead></thead>"
            "<tbody></tbody></table></div>"
            f"<p>Fit flags:</p><ul class='small'>{rules}</ul></section>")


def _ability_section(doc: dict[str, Any]) -> str:
    if "ability" not in doc:
        return ""
    ab = doc["ability"]
    return ("<section id='ability'><h2>Abilities</h2>"
            f"<p>EAP estimates of the {ab['n']} students with answers (mean "
            f"{escape(_fmt(ab['mean']))}, SD {escape(_fmt(ab['sd']))}), against the prior the "
            "model assumes. EAP shrinks toward the prior mean, the more so the fewer answers "
            "a student gave, so the bars are narrower than the prior.</p>"
            "<div id='fig-ability' class='irt-figure'></div></section>")


def _calibration_section(doc: dict[str, Any]) -> str:
    if "calibration" not in doc:
        return ""
    c = doc["calibration"]
    m = c["metrics"]
    rows = "".join(f"<tr><td>{escape(b['bin'])}</td><td>{b['n']}</td>"
                   f"<td>{b['predicted']:.3f}</td><td>{b['observed']:.3f}</td></tr>"
                   for b in c["bins"])
    return ("<section id='calibration'><h2>Reliability diagram</h2>"
            f"<p>{c['n']} predictions: {escape(c['note'])}. AUC {escape(_fmt(m.get('auc')))}, "
            f"log-loss {escape(_fmt(m.get('log_loss')))}, Brier {escape(_fmt(m.get('brier')))}"
            f", ECE {escape(_fmt(m.get('ece')))}.</p>"
            "<div id='fig-calibration' class='irt-figure'></div>"
            "<details><summary>bins</summary><table class='grid'><tr><th>predicted bin</th>"
            f"<th>answers</th><th>mean predicted</th><th>observed</th></tr>{rows}</table>"
            "</details></section>")


def _drift_section(doc: dict[str, Any]) -> str:
    d = doc.get("drift")
    if not d:
        return ""
    rows = [("serving version", d["serving_version"] or "-"),
            ("serving model type", d["serving_model_type"]),
            ("items in both", d["n_common"]), ("only in the new model", d["n_new_only"]),
            ("only in the serving model", d["n_serving_only"])]
    for key, name in (("mean_abs_db", "mean |Δb|"), ("max_abs_db", "max |Δb|"),
                      ("mean_abs_da", "mean |Δa|"), ("corr_b", "correlation of b")):
        if d.get(key) is not None:
            rows.append((name, d[key]))
    shown = ""
    if d.get("points"):
        shown = (f"<p>{d['shown']} of the {d['n_common']} common items drawn"
                 + (" (the most answered)." if d["shown"] < d["n_common"] else ".") + "</p>"
                 "<div id='fig-drift' class='irt-figure'></div>")
    return f"<section id='drift'><h2>New against serving</h2>{_kv(rows)}{shown}</section>"


def _notes_section(doc: dict[str, Any]) -> str:
    items = doc["warnings"] + doc["notes"]
    if not items:
        return ""
    return ("<section id='notes'><h2>Notes</h2><ul>" + "".join(
        f"<li>{escape(n)}</li>" for n in items) + "</ul></section>")


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1250px;padding:0 16px 40px;color:#222}
header{border-bottom:1px solid #ddd;margin-bottom:8px}h1{font-size:1.5em;margin:16px 0 4px}
nav{margin-bottom:8px}nav a{color:#1f5fa8}h2{font-size:1.2em;margin-top:28px}
h3{font-size:1.05em}.small{font-size:.85em;color:#555}
table{border-collapse:collapse;font-size:.88em}.kv th{text-align:left;padding:2px 12px 2px 0;
font-weight:600}.kv td{padding:2px 0}.grid th,.grid td{border:1px solid #ddd;padding:3px 6px;
text-align:right}.grid th{background:#f4f6f8}.grid td:first-child{text-align:left}
.sortable th{cursor:pointer;user-select:none;position:sticky;top:0}
.sortable th[aria-sort=ascending]::after{content:" ▲"}
.sortable th[aria-sort=descending]::after{content:" ▼"}
.sortable tbody tr{cursor:pointer}.sortable tbody tr:hover{background:#eef4fb}
tr.picked{background:#fff3cd}td.flags{color:#b3261e;text-align:left}
.scroll{max-height:520px;overflow:auto;border:1px solid #ddd}
.row{display:flex;flex-wrap:wrap}.row>div{flex:1 1 560px;min-width:0}
.irt-figure{min-height:380px}.pick{display:flex;gap:12px;align-items:flex-start}
.pick select{min-width:260px}.buttons button{display:block;margin-bottom:4px}
.filters{margin:6px 0}#irt-count{margin-left:12px;color:#555}.ok{color:#1b7a36}.bad{color:#b3261e}
.warnings li{color:#8a4b00}pre{max-height:360px;overflow:auto;background:#f6f8fa;padding:8px;
font-size:.8em}
"""

# Draws the figures, the item curves of the selection and the sortable parameter table.
SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("irt-data").textContent);
  var items = data.items, theta = data.theta, EPS = 1e-12;
  var config = {responsive: true, displaylogo: false};
  Object.keys(IRT_FIGURES).forEach(function (id) {
    var el = document.getElementById(id), fig = IRT_FIGURES[id];
    if (el && id !== "fig-icc" && id !== "fig-iif") {
      Plotly.newPlot(el, fig.data, fig.layout, config);
    }
  });
  // The formulas of irt.engine.model: irf and item_information.
  function logistic(x) {
    var e = Math.exp(-Math.abs(x)), r = 1 / (1 + e);
    return x >= 0 ? r : e * r;
  }
  function prob(it, t) { return it.c + (1 - it.c) * logistic(it.a * (t - it.b)); }
  function info(it, t) {
    var p = Math.min(Math.max(prob(it, t), EPS), 1 - EPS), r = (p - it.c) / (1 - it.c);
    return it.a * it.a * ((1 - p) / p) * r * r;
  }
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  var select = document.getElementById("irt-item-select");
  items.forEach(function (it, k) {
    var o = document.createElement("option");
    o.value = String(k);
    o.textContent = it.id + (it.flags.length ? "  [" + it.flags.join(", ") + "]" : "");
    o.selected = data.initial.indexOf(k) >= 0;
    select.appendChild(o);
  });
  function chosen() {
    return Array.prototype.filter.call(select.options, function (o) { return o.selected; })
      .map(function (o) { return items[+o.value]; });
  }
  function curves(fn) {
    return chosen().map(function (it) {
      return {type: "scatter", mode: "lines", name: esc(it.id), x: theta,
              y: theta.map(function (t) { return fn(it, t); })};
    });
  }
  var rowsByIndex = {};
  function redraw() {
    ["fig-icc", "fig-iif"].forEach(function (id) {
      var fig = IRT_FIGURES[id];
      Plotly.react(document.getElementById(id), curves(id === "fig-icc" ? prob : info),
                   fig.layout, config);
    });
    Array.prototype.forEach.call(select.options, function (o) {
      var tr = rowsByIndex[o.value];
      if (tr) { tr.classList.toggle("picked", o.selected); }
    });
  }
  function pick(indices) {
    Array.prototype.forEach.call(select.options, function (o) {
      o.selected = indices.indexOf(+o.value) >= 0;
    });
    redraw();
  }
  select.addEventListener("change", redraw);
  document.getElementById("irt-pick-top").addEventListener("click", function () {
    pick([0, 1, 2, 3, 4]);
  });
  document.getElementById("irt-pick-flagged").addEventListener("click", function () {
    pick(items.map(function (it, k) { return it.flags.length ? k : -1; })
      .filter(function (k) { return k >= 0; }).slice(0, 10));
  });
  document.getElementById("irt-pick-clear").addEventListener("click", function () { pick([]); });

  // The parameter table: rows built with textContent, sorted on a header click.
  var table = document.getElementById("irt-items");
  var head = document.createElement("tr"), tbody = table.tBodies[0];
  data.columns.forEach(function (col) {
    var th = document.createElement("th");
    th.textContent = col[1];
    th.title = col[2];
    th.dataset.key = col[0];
    th.setAttribute("aria-sort", "none");
    head.appendChild(th);
  });
  table.tHead.appendChild(head);
  function cell(v, key) {
    if (key === "flags") { return v.join(", "); }
    if (v === null || v === undefined) { return "–"; }
    if (typeof v === "number" && key !== "n") { return Number(v.toPrecision(4)).toString(); }
    return String(v);
  }
  var rows = items.map(function (it, k) {
    var tr = document.createElement("tr");
    data.columns.forEach(function (col) {
      var td = document.createElement("td");
      td.textContent = cell(it[col[0]], col[0]);
      if (col[0] === "flags") { td.className = "flags"; }
      tr.appendChild(td);
    });
    tr.dataset.index = String(k);
    tr.addEventListener("click", function () {
      select.options[k].selected = !select.options[k].selected;
      redraw();
    });
    rowsByIndex[String(k)] = tr;
    tbody.appendChild(tr);
    return tr;
  });
  function sortKey(it, key) {
    if (key === "flags") { return it.flags.length; }
    return it[key];
  }
  head.addEventListener("click", function (ev) {
    var th = ev.target.closest("th");
    if (!th) { return; }
    var key = th.dataset.key, asc = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(head.children, function (h) {
      h.setAttribute("aria-sort", "none");
    });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var order = items.map(function (_, k) { return k; });
    order.sort(function (i, j) {
      var x = sortKey(items[i], key), y = sortKey(items[j], key);
      if (x === null || x === undefined) { return (y === null || y === undefined) ? i - j : 1; }
      if (y === null || y === undefined) { return -1; }
      var c = typeof x === "string" ? x.localeCompare(y) : x - y;
      return (asc ? c : -c) || i - j;
    });
    order.forEach(function (k) { tbody.appendChild(rows[k]); });
  });
  var filter = document.getElementById("irt-filter");
  var flaggedOnly = document.getElementById("irt-flagged-only");
  var count = document.getElementById("irt-count");
  function applyFilter() {
    var text = filter.value.toLowerCase(), shown = 0;
    items.forEach(function (it, k) {
      var keep = it.id.toLowerCase().indexOf(text) >= 0 && (!flaggedOnly.checked ||
                                                             it.flags.length > 0);
      rows[k].hidden = !keep;
      shown += keep ? 1 : 0;
    });
    count.textContent = shown + " of " + items.length + " rows";
  }
  filter.addEventListener("input", applyFilter);
  flaggedOnly.addEventListener("change", applyFilter);
  applyFilter();
  redraw();
})();
"""
