"""One prediction, step by step: what ``predict`` computes for a request, shown and recomputed.

    python -m irt.explain MODEL.json REQUEST.json      # REQUEST: a file, '-' for stdin,
    python -m irt.explain MODEL.json '{"responses": [{"item_id": "q1", "correct": true}]}'
    python -m irt.explain MODEL.json REQUEST.json --json
    python -m irt explain MODEL.json ANSWERS.csv --student S1   # a student of an answers file

For debugging a single answer (ML Test Score, infrastructure 5). The steps:

1. **request** - the body validated exactly as ``predict`` validates it
   (:func:`irt.serving.parse_predict`): answers sent, answers counted (first attempt per item,
   by ``answered_at``), unknown item ids (ignored);
2. **answers** - each counted answer with its item's ``a``, ``b``, ``c``, the probability of
   a correct answer at the final ability and the answer's log-likelihood there;
3. **posterior** - recomputed here, independently of the serving code: prior N(0, sigma^2)
   and the log-likelihood of the answers on a fine grid (2,001 nodes over +-8 sigma), the
   posterior's mean (the EAP ability) and SD (its standard error), and the nodes that carry
   most of its weight;
4. **served** - what :func:`irt.serving.predict` answers for the same body, and its
   difference from step 3 (``predict`` rounds to 6 decimals);
5. **probabilities** - each requested item's parameters and P(correct) at the ability.

Only single-student EAP requests are explained (a batch: one student at a time).  From an
answers file (the same file, options and reader as ``python -m irt fit``), the request holds
the student's answers in file order with their ``answered_at`` (the order column) and asks
for ``--items`` (default: every item of the model).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from irt.engine.artifact import load_model
from irt.engine.model import ItemModel, irf
from irt.engine.preprocess import PrepareReport
from irt.errors import ModelFormatError, RequestError
from irt.serving import Limits, parse_predict, predict
from irt.tools.common import (
    ANSWERS_FORMAT,
    Messages,
    add_answers_arguments,
    add_quiet_argument,
    read_answers,
    read_bytes,
    run_guarded,
)

GRID_POINTS = 2001
GRID_BOUND = 8.0


def explain(model: ItemModel, payload: Any, limits: Limits | None = None,
            version: str = "explain") -> dict[str, Any]:
    """The steps of the module docstring for one request, as a JSON-ready dict.

    Raises:
        RequestError: the request is invalid (as ``predict`` would answer 4xx), a batch, or
            asks for MAP.
    """
    limits = limits or Limits()
    students, is_batch, method = parse_predict(payload, limits)
    if is_batch:
        raise RequestError("explain one student at a time", "students", status=400,
                           code="invalid_request")
    if method != "EAP":
        raise RequestError("only EAP is explained", "method", status=400, code="invalid_request")
    student = students[0]
    sent = len(payload.get("responses") or [])
    pos, unknown = model.lookup(student.item_ids)
    known = pos >= 0
    p_items = pos[known]
    y = np.asarray(student.correct, dtype=float)[known]

    sigma = model.population_sd
    x = np.linspace(-GRID_BOUND * sigma, GRID_BOUND * sigma, GRID_POINTS)
    log_prior = -0.5 * (x / sigma) ** 2
    if p_items.size:
        p = irf(x[:, None], model.a[p_items], model.b[p_items], model.c[p_items])
        p = np.clip(p, 1e-300, 1.0 - 1e-16)
        loglik_terms = y * np.log(p) + (1.0 - y) * np.log1p(-p)  # nodes x answers
        loglik = loglik_terms.sum(axis=1)
    else:
        loglik = np.zeros_like(x)
    log_post = log_prior + loglik
    w = np.exp(log_post - log_post.max())
    w /= w.sum()
    theta = float(w @ x)
    se = math.sqrt(max(float(w @ (x - theta) ** 2), 0.0))
    top = np.argsort(w)[::-1][:5]

    at_theta = irf(np.asarray(theta), model.a[p_items], model.b[p_items], model.c[p_items]) \
        if p_items.size else np.zeros(0)
    answers = [{"item_id": model.item_ids[j], "correct": int(c), "a": float(model.a[j]),
                "b": float(model.b[j]), "c": float(model.c[j]), "p_correct_at_theta": float(pj),
                "loglik_at_theta": float(math.log(pj) if c else math.log1p(-pj))}
               for j, c, pj in zip(p_items.tolist(), y.tolist(), at_theta.tolist(),
                                   strict=True)]
    served = predict(model, payload, limits, version)
    requested = model.item_ids if student.items is None else student.items
    req_pos = model.positions(list(requested))
    probabilities = [{"item_id": requested[k], "a": float(model.a[j]), "b": float(model.b[j]),
                      "c": float(model.c[j]),
                      "p_correct": float(irf(np.asarray(theta), model.a[j], model.b[j],
                                             model.c[j])),
                      "served": served["probabilities"].get(requested[k])}
                     for k, j in enumerate(req_pos.tolist()) if j >= 0]
    served_ability = served["ability"]
    return {
        "request": {"answers_sent": sent, "answers_counted": int(known.sum()),
                    "first_attempt_rule": "earliest answered_at, else first in the list",
                    "unknown_answered_items": list(unknown),
                    "requested_items": None if student.items is None else len(student.items),
                    "unknown_requested_items": [requested[k] for k in
                                                np.flatnonzero(req_pos < 0).tolist()]},
        "answers": answers,
        "posterior": {"prior": f"N(0, {sigma:g}^2)", "grid": {"nodes": GRID_POINTS,
                                                              "bound": GRID_BOUND * sigma},
                      "log_likelihood_at_theta": float(sum(a["loglik_at_theta"]
                                                           for a in answers)),
                      "theta": theta, "se": se,
                      "top_nodes": [{"theta": float(x[k]), "weight": float(w[k])} for k in top]},
        "served": {"ability": served_ability, "model_version": served["model_version"],
                   "theta_difference": served_ability["theta"] - theta,
                   "se_difference": served_ability["se"] - se},
        "probabilities": probabilities,
    }


def _text(report: dict[str, Any]) -> str:
    r = report["request"]
    lines = [f"1. request: {r['answers_sent']} answers sent, {r['answers_counted']} counted "
             f"({r['first_attempt_rule']}); unknown answered items: "
             f"{r['unknown_answered_items'] or 'none'}; unknown requested items: "
             f"{r['unknown_requested_items'] or 'none'}", "2. answers (at the final ability):"]
    for a in report["answers"]:
        lines.append(f"   {a['item_id']:>12}  correct={a['correct']}  a={a['a']:.3f} "
                     f"b={a['b']:+.3f} c={a['c']:.3f}  P={a['p_correct_at_theta']:.4f}  "
                     f"loglik={a['loglik_at_theta']:+.4f}")
    post = report["posterior"]
    lines += [f"3. posterior: prior {post['prior']}, {post['grid']['nodes']} nodes over "
              f"+-{post['grid']['bound']:g}; log-likelihood at theta "
              f"{post['log_likelihood_at_theta']:+.4f}; EAP theta {post['theta']:+.6f}, "
              f"SE {post['se']:.6f}; heaviest nodes "
              + ", ".join(f"{n['theta']:+.3f} ({n['weight']:.4f})" for n in post["top_nodes"])]
    s = report["served"]
    lines.append(f"4. predict answers theta {s['ability']['theta']:+.6f}, SE "
                 f"{s['ability']['se']:.6f} (differences {s['theta_difference']:+.1e}, "
                 f"{s['se_difference']:+.1e}), model {s['model_version']}")
    lines.append(f"5. probabilities ({len(report['probabilities'])} items):")
    for p in report["probabilities"][:50]:
        lines.append(f"   {p['item_id']:>12}  a={p['a']:.3f} b={p['b']:+.3f} c={p['c']:.3f}"
                     f"  P={p['p_correct']:.6f}  predict={p['served']}")
    return "\n".join(lines)


DESCRIPTION = __doc__.split("\n\n")[0]
EPILOG = ("REQUEST: a predict request body (a file, '-' for stdin, or JSON text), or with "
          "--student an answers file:\n" + ANSWERS_FORMAT)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command line's arguments (``python -m irt.explain`` and ``python -m irt
    explain``)."""
    parser.add_argument("model", type=Path, help="model.json (as predict loads it)")
    parser.add_argument("request", help="the predict request body: a file, '-', or JSON "
                        "text; with --student, an answers file")
    parser.add_argument("--student", metavar="ID",
                        help="explain this student of the answers file REQUEST")
    parser.add_argument("--items", metavar="ID,ID",
                        help="with --student: the items to predict, comma-separated "
                        "(default: every item of the model)")
    parser.add_argument("--json", action="store_true", help="print the steps as JSON")
    add_answers_arguments(parser)
    add_quiet_argument(parser)


def request_of_answers(rows: list[dict], student: str, items: list[str] | None = None
                       ) -> tuple[dict[str, Any], PrepareReport]:
    """The predict request of one student's answers (rows of
    :func:`irt.tools.csvio.read_answers_csv`), and what was left out: the student's rows go
    through :func:`~irt.engine.preprocess.prepare_rows`, as training's do, so a row it drops
    as invalid (read with ``--lenient``: an empty or too long id, a ``correct`` that is none
    of the accepted values or missing, an invalid ``answered_at``) is never an answer.  The
    kept answers in file order: ``correct`` as booleans, ``answered_at`` as epoch seconds
    where the row has one.

    Args:
        rows: the answers file's rows.
        student: the student's id (stripped).
        items: the items to ask for (``None``: every item of the model).

    Returns:
        ``(request, report)``: the request body, and preprocessing's report of the student's
        rows.

    Raises:
        ValueError: the student has no valid answer in ``rows``.
    """
    from irt.engine.preprocess import INVALID_REASONS, prepare_rows

    prepared = prepare_rows(row for row in rows if (row["student_id"] or "").strip() == student)
    report = prepared.report
    if not report.rows_out:
        bad = sum(report.dropped[k] for k in INVALID_REASONS)
        raise ValueError(f"student {student!r} has no " + (
            f"valid answers in the file ({bad} bad rows)" if bad else "answers in the file"))
    resp = prepared.responses
    stamps = prepared.answered_at
    responses = []
    for k, (item, correct) in enumerate(zip(resp.item.tolist(), resp.correct.tolist(),
                                            strict=True)):
        answer: dict[str, Any] = {"item_id": resp.item_ids[item], "correct": bool(correct)}
        if stamps is not None and not math.isnan(stamps[k]):
            answer["answered_at"] = float(stamps[k])
        responses.append(answer)
    body: dict[str, Any] = {"responses": responses}
    if items is not None:
        body["items"] = items
    return body, report


def run(args: argparse.Namespace) -> int:
    """Run the parsed command line; the exit status (2: an invalid request)."""
    content = read_bytes(args.model, "model file")
    try:
        model = load_model(content)
    except ModelFormatError as exc:
        raise ValueError(f"{args.model}: invalid model: {exc}") from None
    limits = Limits()
    items = None if args.items is None else [i.strip() for i in args.items.split(",")]
    if args.student is not None:
        rows = read_answers(Path(args.request), args)
        payload, report = request_of_answers(rows, args.student.strip(), items)
        Messages(args.quiet).bad_rows(args.request, report,
                                      f"of student {args.student.strip()!r} ")
        limits = Limits(max_responses=max(limits.max_responses, len(payload["responses"])),
                        max_items=max(limits.max_items, len(items or ())))
    else:
        if items is not None:
            raise ValueError("--items goes with --student (a request names its own items)")
        if args.request == "-":
            text = sys.stdin.read()
        elif args.request.lstrip().startswith("{"):
            text = args.request
        else:
            text = read_bytes(Path(args.request), "request file").decode("utf-8")
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{args.request}: not JSON: {exc}") from None
    try:
        report = explain(model, payload, limits, version=model.version or "explain")
    except RequestError as exc:
        print(f"invalid request ({exc.field}): {exc.message}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1) if args.json else _text(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m irt.explain", description=DESCRIPTION,
                                     epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_guarded(run, args)


if __name__ == "__main__":
    sys.exit(main())
