"""Plain-text reports of ``python -m irt diagnose`` and ``python -m irt compare``.

Formatting only: the numbers come from :func:`irt.engine.diagnostics.diagnose` and
:func:`irt.engine.comparison.compare` (``--json`` prints their ``to_dict()`` instead).
"""

from __future__ import annotations

import math
from typing import Any

from irt.engine.comparison import Comparison
from irt.engine.diagnostics import Diagnostics

#: Tests with at most this many items list every item; longer banks list the worst ones.
ALL_ITEMS_UP_TO = 40
#: Items listed for a longer bank.
WORST_ITEMS = 15


def _f(x: Any, spec: str = ".3f") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec)


def _p(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return "<.001" if x < 0.001 else f"{x:.3f}"


def format_diagnostics(diag: Diagnostics) -> str:
    """The diagnostics as a text report (design, global fit, reliability, items, persons,
    local dependence, messages)."""
    doc = diag.to_dict()
    d = doc["design"]
    out = [f"{d['model_type']} model; {d['n_answers']} answers by {d['n_students']} students on "
           f"{d['n_items']} items ({'complete design' if d['complete'] else 'incomplete design'}"
           f", {100 * d['density']:.3g}% of cells answered)"]
    g = doc["global_fit"]
    out.append("")
    out.append(f"global fit: log-likelihood {g['log_likelihood']:.3f}, {g['n_parameters']} "
               f"parameters, AIC {g['aic']:.2f}, BIC {g['bic']:.2f}")
    if g["m2"] is not None:
        m = g["m2"]
        out.append(f"  M2 = {m['m2']:.3f}, df = {m['df']}, p = {_p(m['p'])}; RMSEA "
                   f"{_f(m['rmsea'], '.4f')} (90% CI {_f(m['rmsea_low'], '.4f')}-"
                   f"{_f(m['rmsea_high'], '.4f')}), SRMSR {_f(m['srmsr'], '.4f')}, TLI "
                   f"{_f(m['tli'], '.4f')}, CFI {_f(m['cfi'], '.4f')}")
    else:
        out.append(f"  M2: not computed ({g['reason']})")
    r = doc["reliability"]
    out.append(f"reliability: marginal {_f(r['marginal'])}, empirical {_f(r['empirical'])}")
    out.extend(["", *_item_lines(diag, doc)])
    s = doc["person_fit"]["summary"]
    out.append("")
    if s["n_summarised"]:
        out.append(f"person fit (Zh over {s['n_summarised']} students with >= "
                   f"{s['min_answers']} answers): min {_f(s['zh_min'], '.2f')}, quartiles "
                   f"{_f(s['zh_q1'], '.2f')} / {_f(s['zh_median'], '.2f')} / "
                   f"{_f(s['zh_q3'], '.2f')}, max {_f(s['zh_max'], '.2f')}; "
                   f"{s['n_flagged']} ({100 * s['share_flagged']:.1f}%) below "
                   f"{s['zh_flag']}")
    q = doc["local_dependence"]["q3"]
    out.append("")
    if q["n_pairs"]:
        out.append(f"local dependence ({q['n_pairs']} pairs of {q['n_items']} items): Q3 mean "
                   f"{q['mean']:.3f}, max {q['max']:.3f}; {q['n_flagged']} pairs with Q3 > "
                   f"mean + {q['flag']}; top pairs by "
                   f"{doc['local_dependence']['ranked_by'].replace('_', ' ')}:")
        out.append(f"  {'item a':<14}{'item b':<14}{'n':>7}{'LD-X2':>9}{'p':>7}{'V':>7}"
                   f"{'Q3':>7}")
        for t in doc["local_dependence"]["top_pairs"]:
            out.append(f"  {t['item_a']:<14.14}{t['item_b']:<14.14}{t['n']:>7}"
                       f"{_f(t['ld_x2'], '.2f'):>9}{_p(t['p']):>7}"
                       f"{_f(t['cramers_v'], '.2f'):>7}{_f(t['q3'], '.2f'):>7}")
    else:
        out.append(f"local dependence: no item pair answered by >= {q['min_pair_answers']} "
                   "students")
    if doc["messages"]:
        out.append("")
        out.extend(f"note: {m}" for m in doc["messages"])
    return "\n".join(out)


def _item_lines(diag: Diagnostics, doc: dict[str, Any]) -> list[str]:
    items = doc["item_fit"]["items"]
    sx2 = doc["item_fit"]["s_x2_available"]
    if len(items) <= ALL_ITEMS_UP_TO:
        shown, head = items, "item fit:"
    else:
        least = diag.config.x2_min_answers
        ranked = sorted((i for i in items if i["n"] >= least and i["z_outfit"] is not None),
                        key=lambda i: -i["z_outfit"])
        shown = ranked[:WORST_ITEMS]
        head = (f"item fit: the {len(shown)} of {len(items)} items with the largest outfit z "
                f"(items with >= {least} answers; --json lists all):")
    cols = f"  {'item':<14}{'n':>7}"
    if sx2:
        cols += f"{'S-X2':>9}{'df':>4}{'p':>7}"
    cols += f"{'X2':>9}{'df':>4}{'p':>7}{'outfit':>8}{'z':>7}{'infit':>7}{'z':>7}{'Zh':>7}"
    lines = [head, cols]
    for i in shown:
        row = f"  {i['item_id']:<14.14}{i['n']:>7}"
        if sx2:
            row += f"{_f(i['s_x2'], '.2f'):>9}{i['s_x2_df']:>4}{_p(i['s_x2_p']):>7}"
        row += (f"{_f(i['x2'], '.2f'):>9}{i['x2_df']:>4}{_p(i['x2_p']):>7}"
                f"{_f(i['outfit'], '.2f'):>8}{_f(i['z_outfit'], '.2f'):>7}"
                f"{_f(i['infit'], '.2f'):>7}{_f(i['z_infit'], '.2f'):>7}{_f(i['zh'], '.2f'):>7}")
        lines.append(row)
    return lines


def format_comparison(cmp: Comparison) -> str:
    """The comparison as a text report: one row per model, then the likelihood-ratio test."""
    doc = cmp.to_dict()
    out = [f"{doc['n_answers']} answers by {doc['n_students']} students on the items both "
           "models know"]
    online = all(m["online"] is not None for m in doc["models"])
    head = f"{'model':<28}{'type':<7}{'items':>6}{'params':>7}{'log-lik':>13}{'AIC':>12}"
    head += f"{'BIC':>12}"
    if online:
        head += f"{'AUC':>8}{'log-loss':>10}"
    out.append(head)
    for m in doc["models"]:
        c = m["criteria"]
        row = (f"{m['label']:<28.28}{m['model_type']:<7}{m['n_items']:>6}{c['n_parameters']:>7}"
               f"{c['log_likelihood']:>13.3f}{c['aic']:>12.2f}{c['bic']:>12.2f}")
        if online:
            row += f"{_f(m['online']['auc'], '.4f'):>8}{_f(m['online']['log_loss'], '.4f'):>10}"
        out.append(row)
    t = doc["lrt"]
    if t is not None:
        if t["p"] is None:
            out.append(f"likelihood-ratio test: {t['note']}")
        else:
            out.append(f"likelihood-ratio test {t['small']} vs {t['big']}: X2 = {t['x2']:.3f}, "
                       f"df = {t['df']}, p = {_p(t['p'])} ({t['note']})")
    out.extend(f"note: {n}" for n in doc["notes"])
    return "\n".join(out)
