"""Command line for data scientists: ``python -m irt {fit,score,demo} ...``.

The only module of the package that opens files (the engine itself is I/O free).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from irt import __version__
from irt.engine import defaults
from irt.engine.artifact import load_model
from irt.engine.model import MODEL_TYPES
from irt.errors import CSVFormatError, ModelFormatError
from irt.tools.csvio import read_answers_csv, write_scores_csv

EPILOG = """\
CSV format (header required, extra columns ignored):
  student_id,item_id,correct[,answered_at]
  correct: 1/0, true/false (also t/f, yes/no); answered_at: ISO-8601 or epoch seconds.
Only the first attempt per student-item pair is used (earliest answered_at, else file order).

Examples:
  python -m irt fit answers.csv --model 2pl -o model.json
  python -m irt score model.json answers.csv -o scores.csv
  python -m irt demo
"""


def _pair(text: str) -> tuple[float, float] | None:
    """``'x,y'`` as two finite numbers (the second positive), or ``'none'`` as ``None``."""
    if text.strip().lower() == "none":
        return None
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected two numbers 'x,y' or 'none', got {text!r}") from None
    if not (math.isfinite(x) and math.isfinite(y) and y > 0):
        raise argparse.ArgumentTypeError(f"needs finite numbers, the second positive: {text!r}")
    return x, y


def _cap(text: str) -> int | None:
    """A positive integer, or ``'none'`` as ``None``."""
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}"
                                         ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _show(pair: tuple[float, float] | None) -> str:
    return "none" if pair is None else f"{pair[0]:g},{pair[1]:g}"


def _add_calibration_arguments(p: argparse.ArgumentParser, what: str = "answers") -> None:
    """The calibration settings ``fit`` and ``evaluate`` share, defaulting to
    :data:`irt.engine.defaults.DEFAULTS` (as ``prepare`` does)."""
    d = defaults.DEFAULTS
    p.add_argument("--model", choices=MODEL_TYPES, default=d.model,
                   help="model type (default %(default)s)")
    p.add_argument("--min-answers-per-item", type=int, default=d.min_answers_per_item,
                   metavar="N", help=f"leave out items with fewer {what} (default %(default)s)")
    p.add_argument("--min-answers-per-student", type=int, default=d.min_answers_per_student,
                   metavar="N", help=f"leave out students with fewer {what} before "
                   "calibrating (default %(default)s)")
    p.add_argument("--quadrature-points", type=int, default=d.quadrature_points, metavar="Q",
                   help="quadrature nodes on [-6, 6] (default %(default)s)")
    p.add_argument("--tol", type=float, default=d.tol,
                   help="convergence: max parameter change per EM cycle (default %(default)s)")
    p.add_argument("--max-iter", type=int, default=d.max_iter,
                   help="EM cycle cap (default %(default)s; reaching it = not converged)")
    p.add_argument("--prior-a", type=_pair, default=d.prior_a, metavar="MEANLOG,SDLOG",
                   help=f"lognormal prior on slopes, or 'none' (default {_show(d.prior_a)})")
    p.add_argument("--prior-b", type=_pair, default=d.prior_b, metavar="MEAN,SD",
                   help=f"normal prior on difficulties, or 'none' (default {_show(d.prior_b)})")
    p.add_argument("--prior-c", type=_pair, default=d.prior_c, metavar="ALPHA,BETA",
                   help=f"beta prior on the 3pl's guessing, or 'none' "
                   f"(default {_show(d.prior_c)})")
    p.add_argument("--no-priors", action="store_true",
                   help="no priors at all: maximum likelihood, R mirt's default (sparse logs "
                   "may then not converge; the 3pl may be unstable)")


def _fit_config(args: argparse.Namespace, **settings: Any):
    """The :class:`~irt.engine.calibrate.FitConfig` of the parsed calibration arguments."""
    from irt.engine.calibrate import FitConfig, Priors, Quadrature

    if args.no_priors:
        priors = Priors()
    else:
        priors = Priors(a_lognormal=args.prior_a,
                        b_normal=args.prior_b,
                        c_beta=args.prior_c if args.model == "3pl" else None)
    return FitConfig(model=args.model, quadrature=Quadrature(args.quadrature_points),
                     priors=priors, tol=args.tol, max_iter=args.max_iter,
                     min_answers_per_item=args.min_answers_per_item, **settings)


def _defaults_epilog() -> str:
    return (EPILOG + "\nDefaults (irt.engine.defaults.DEFAULTS; prepare uses the same):\n"
            + defaults.DEFAULTS.describe() + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m irt", description="Calibrate IRT item parameters and score students.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"irt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    f = sub.add_parser("fit", help="calibrate a model from an answers CSV",
                       description="Calibrate item parameters by marginal maximum a posteriori "
                       "(EM; maximum likelihood with --no-priors) and write the model JSON. "
                       "The defaults are prepare's.", epilog=_defaults_epilog(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("answers", type=Path, help="answers CSV (see format below)")
    f.add_argument("-o", "--output", type=Path, required=True, help="model JSON to write")
    _add_calibration_arguments(f)
    f.add_argument("--no-se", action="store_true", help="skip standard errors")
    f.add_argument("--lenient", action="store_true",
                   help="drop and count bad CSV rows instead of stopping at the first one")

    s = sub.add_parser("score", help="score students with a model",
                       description="Estimate each student's ability; one output row per "
                       "student: student_id,theta,se,n_answers.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("model", type=Path, help="model JSON written by 'fit'")
    s.add_argument("answers", type=Path, help="answers CSV")
    s.add_argument("-o", "--output", type=Path, help="scores CSV to write (default stdout)")
    s.add_argument("--method", choices=("EAP", "MAP"), default=defaults.DEFAULTS.score_method,
                   help="EAP (posterior mean, SE = posterior SD) or MAP (default %(default)s)")
    s.add_argument("--lenient", action="store_true", help="drop and count bad CSV rows")

    e = sub.add_parser("evaluate", help="calibrate on a training log, predict a test log online",
                       description="Calibrate on TRAIN, then predict every answer of every TEST "
                       "student from only that student's earlier answers (as predict is used) "
                       "and report AUC, log-loss, Brier score, calibration error (ECE) and the "
                       "cost per prediction. Files may be gzip-compressed (.gz).",
                       epilog=_defaults_epilog(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("train", type=Path, help="training answers CSV")
    e.add_argument("test", type=Path, help="test answers CSV (students disjoint from TRAIN)")
    e.add_argument("--student-column", default="student_id",
                   help="student column (default student_id; ASSISTments files: user_id)")
    e.add_argument("--item-column", default="item_id",
                   help="item column (default item_id; for a log whose items are named "
                   "otherwise, e.g. problem_id)")
    e.add_argument("--order-column", default="answered_at",
                   help="column giving each student's answer order, numeric "
                   "(default answered_at; ASSISTments files: seq)")
    _add_calibration_arguments(e, "training answers")
    e.add_argument("--options", default=",".join(defaults.DEFAULTS.options),
                   help="learning-aware options, comma-separated: recency, skills, pfa "
                   "(default none: the plain model; formulas in irt.engine.learning)")
    e.add_argument("--skill-column", default=None,
                   help="skill column of TRAIN, for the item -> skill map that 'skills' and "
                   "'pfa' learn (ASSISTments files: skill_id)")
    e.add_argument("--recency-decay", type=float, default=defaults.DEFAULTS.recency_decay,
                   metavar="LAMBDA", help="recency weight per later answer (default %(default)s)")
    e.add_argument("--window", type=int, default=defaults.DEFAULTS.pfa_window,
                   help="answers in the recent window of the pfa covariates "
                   "(default %(default)s)")
    e.add_argument("--learning-max-answers", type=_cap,
                   default=defaults.DEFAULTS.learning_max_answers, metavar="N",
                   help="calibrate the options on at most N training answers, whole students "
                   "by MD5 of their id, as prepare does ('none': all; default %(default)s)")
    e.add_argument("--table", action="store_true",
                   help="evaluate the plain model and every option set, with predict's "
                   "per-request cost, against the published figures")
    e.add_argument("--json", action="store_true", help="print the report as JSON")

    d = sub.add_parser("demo", help="simulate a log, calibrate, score a few students")
    d.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    return parser


def _read_rows(path: Path, lenient: bool) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as stream:
        return read_answers_csv(stream, strict=not lenient)


def _fit(args: argparse.Namespace) -> int:
    from irt.engine.calibrate import fit
    from irt.engine.preprocess import prepare_rows

    rows = _read_rows(args.answers, args.lenient)
    prepared = prepare_rows(rows, min_answers_per_student=args.min_answers_per_student)
    _log(f"read {prepared.report.rows_in} rows, kept {prepared.report.rows_out}; dropped "
         f"{json.dumps({k: v for k, v in prepared.report.dropped.items() if v})}")
    config = _fit_config(args, compute_se=not args.no_se)
    start = time.perf_counter()
    result = fit(prepared.responses, config)
    model = result.model
    model.data_summary["preprocessing"] = prepared.report.to_dict()
    args.output.write_text(model.to_json(), encoding="utf-8")
    _log(f"{args.model}: {model.n_items} items, {len(model.excluded_items)} excluded, "
         f"{result.iterations} EM cycles, converged={result.converged}, "
         f"log-likelihood {result.log_likelihood:.3f}, {time.perf_counter() - start:.2f} s "
         f"-> {args.output}")
    return 0 if result.converged else 3


def _score(args: argparse.Namespace) -> int:
    from irt.engine.ability import eap_batch, map_batch
    from irt.engine.preprocess import prepare_rows

    model = load_model(args.model.read_bytes())
    prepared = prepare_rows(_read_rows(args.answers, args.lenient))
    resp = prepared.responses
    pos, unknown = model.lookup(resp.item_ids)
    known = pos[resp.item] >= 0
    if unknown:
        _log(f"ignored {len(unknown)} item(s) unknown to the model, e.g. {unknown[:3]}")
    student, item_pos, y = resp.student[known], pos[resp.item[known]], resp.correct[known]
    scorer = eap_batch if args.method == "EAP" else map_batch
    theta, se = scorer(model, student, item_pos, y, resp.n_students)
    n_answers = np.bincount(student, minlength=resp.n_students)
    out: TextIO = args.output.open("w", newline="", encoding="utf-8") if args.output else sys.stdout
    try:
        write_scores_csv(out, resp.student_ids, theta, se, n_answers)
    finally:
        if args.output:
            out.close()
    return 0


def _read_log(path: Path, student_col: str, order_col: str, skill_col: str | None = None,
              item_col: str = "item_id") -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Rows of a (possibly gzip) CSV as students, items, correct (0/1) and order keys (and,
    with ``skill_col``, the skills as a fifth list: ``""`` for none)."""
    import csv
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        for col in (student_col, item_col, "correct", order_col, *([skill_col] if skill_col
                                                                  else [])):
            if col not in header:
                raise CSVFormatError(f"missing column {col!r} (header: {', '.join(header)})", 1)
        students, items, correct, order, skills = [], [], [], [], []
        for line, row in enumerate(reader, start=2):
            y = row["correct"].strip().lower()
            if y not in ("0", "1", "true", "false"):
                raise CSVFormatError(f"correct must be 0, 1, true or false (got {y!r})", line)
            try:
                order.append(float(row[order_col]))
            except ValueError:
                raise CSVFormatError(f"{order_col} must be a number", line) from None
            students.append(row[student_col])
            items.append(row[item_col])
            correct.append(1 if y in ("1", "true") else 0)
            if skill_col:
                skills.append(row[skill_col].strip())
    out = (students, items, np.array(correct, dtype=np.int8), np.array(order))
    return (*out, skills) if skill_col else out  # type: ignore[return-value]


#: Published test AUCs on the same ASSISTments 2009 files (Gervet et al. 2020, README of
#: github.com/theophilegervet/learner-performance-prediction at a7ae193).
PUBLISHED_AUC = (("item-only IRT", 0.69), ("PFA", 0.72), ("DKT", 0.75), ("Best-LR", 0.77))
#: The option sets ``--table`` evaluates (besides the plain model).
TABLE_OPTIONS = (("recency",), ("skills",), ("pfa",), ("skills", "pfa"),
                 ("recency", "skills", "pfa"))


def _evaluate(args: argparse.Namespace) -> int:
    from irt.engine.calibrate import fit
    from irt.engine.evaluate import evaluate
    from irt.engine.learning import parse_options
    from irt.engine.learning_fit import with_recency
    from irt.engine.preprocess import prepare_rows

    options = parse_options(args.options)
    needs_skills = args.table or bool({"skills", "pfa"} & set(options))
    if needs_skills and not args.skill_column:
        raise ValueError("options 'skills' and 'pfa' (and --table) need --skill-column")
    skill_col = args.skill_column if needs_skills else None
    tr = _read_log(args.train, args.student_column, args.order_column, skill_col,
                   args.item_column)
    te_s, te_i, te_y, te_o = _read_log(args.test, args.student_column, args.order_column,
                                       item_col=args.item_column)[:4]
    published = _is_published_split(tr[0], tr[2], te_s, te_y)
    tr_s, tr_i, tr_y, tr_o = tr[:4]
    # First attempt per student-item, as in production (preprocess keeps the first).
    prepared = prepare_rows(zip(tr_s, tr_i, tr_y.tolist(), tr_o.tolist(), strict=True),
                            min_answers_per_student=args.min_answers_per_student)
    train = prepared.responses
    config = _fit_config(args, compute_se=False)
    start = time.perf_counter()
    result = fit(train, config)
    fit_s = time.perf_counter() - start
    t_index: dict[str, int] = {}
    t_student = np.array([t_index.setdefault(s, len(t_index)) for s in te_s])
    order = np.lexsort((te_o, t_student))
    test = (t_student[order], [te_i[k] for k in order], te_y[order])
    skills = _train_skills(train, tr_i, tr[4]) if skill_col else None
    runs = [(), *TABLE_OPTIONS] if args.table else [options]
    rows = []
    fitted: dict[tuple[str, ...], tuple] = {}
    for opts in runs:
        model, extra_s, info = result.model, 0.0, {}
        calibrated = tuple(o for o in opts if o != "recency")
        if calibrated in fitted:  # recency is not calibrated: reuse the fit without it
            model, extra_s, info = fitted[calibrated]
            model = with_recency(model, args.recency_decay)
        elif opts:
            model, extra_s, info = _fit_options(result.model, train, prepared.answered_at,
                                                skills, opts, args)
            fitted[opts] = (model, extra_s, info)
        report, _ = evaluate(model, *test)
        out = {"model": args.model, "options": list(opts), "train_answers": train.n_answers,
               "items_calibrated": model.n_items, "fit_seconds": round(fit_s + extra_s, 2),
               "fit_iterations": result.iterations, "fit_converged": result.converged,
               **info, **report.to_dict()}
        out["converged"] = bool(result.converged and info.get("em_converged", True))
        if args.table:
            out["predict_us_per_request"] = _predict_cost(model, *test)
        rows.append(out)
    if args.json:
        print(json.dumps(rows if args.table else rows[0], indent=1))
    elif args.table:
        _print_table(rows, published)
    else:
        out = rows[0]
        name = "+".join(out["options"]) or args.model
        print(f"{name}: calibrated {out['items_calibrated']} items on "
              f"{out['train_answers']} answers in {out['fit_seconds']:.1f} s; "
              f"{out['n_predictions']} online predictions for {out['n_students']} students "
              f"({out['n_unknown_item_predictions']} on items unknown to the model)")
        print(f"  AUC {out['auc']:.4f}  log-loss {out['log_loss']:.4f}  "
              f"Brier {out['brier']:.4f}  ECE {out['ece']:.4f}  "
              f"mean p {out['mean_probability']:.3f} vs {out['mean_correct']:.3f} correct  "
              f"{out['us_per_prediction']:.1f} us/prediction")
        print("  " + _convergence(out))
    for out in rows:
        if not out["converged"]:
            _log(f"warning: {'+'.join(out['options']) or args.model} did not converge: "
                 f"{_convergence(out)}")
    return 0


def _convergence(row: dict) -> str:
    """How a row's calibration ended, in words."""
    text = (f"2PL EM: {'converged' if row['fit_converged'] else 'NOT converged'} after "
            f"{row['fit_iterations']} cycles")
    if "em_converged" in row:
        text += (f"; options EM: {'converged' if row['em_converged'] else 'NOT converged'} "
                 f"after {row['em_iterations']} iterations")
    return text


#: The ASSISTments 2009 split the published figures were measured on (``make evaluate``):
#: train rows, train students, train correct, test rows, test students, test correct.
PUBLISHED_SPLIT = (220_070, 2_491, 144_847, 58_266, 623, 38_456)


def _is_published_split(train_students: list[str], train_y: np.ndarray,
                        test_students: list[str], test_y: np.ndarray) -> bool:
    """Whether TRAIN and TEST are the ASSISTments 2009 split of :data:`PUBLISHED_AUC` (by
    their counts, whatever the files' names, compression or line endings)."""
    return (len(train_students), len(set(train_students)), int(train_y.sum()),
            len(test_students), len(set(test_students)), int(test_y.sum())) == PUBLISHED_SPLIT


def _train_skills(train, items: list[str], skills: list[str]
                  ) -> tuple[np.ndarray, tuple[str, ...]]:
    """The item -> skill map of the training rows (each item's most frequent skill) as
    ``(skill index per item of train, skill ids)``."""
    from irt.engine.learning import skill_map

    item_index = {item: j for j, item in enumerate(train.item_ids)}
    skill_index: dict[str, int] = {}
    codes = np.array([skill_index.setdefault(k, len(skill_index)) if k else -1
                      for k in skills], dtype=np.int64)
    rows = np.array([item_index.get(i.strip(), -1) for i in items], dtype=np.int64)
    return skill_map(rows, codes, train.n_items), tuple(skill_index)


def _fit_options(base, train, answered_at, skills, options: tuple[str, ...],
                 args: argparse.Namespace):
    """``(model with the options, seconds, summary)`` by
    :func:`irt.engine.learning_fit.fit_learning`."""
    from irt.engine.learning import learning_of
    from irt.engine.learning_fit import LearningConfig, fit_learning

    item_skill, skill_ids = skills if skills is not None else (None, ())
    config = LearningConfig(options=options, decay=args.recency_decay, window=args.window,
                            prior_a=None if args.no_priors else args.prior_a,
                            prior_b=None if args.no_priors else args.prior_b,
                            max_answers=args.learning_max_answers)
    start = time.perf_counter()
    result = fit_learning(base, train, answered_at, item_skill, skill_ids, config)
    seconds = time.perf_counter() - start
    spec = learning_of(result.model)
    info = {"em_iterations": result.iterations, "em_converged": result.converged,
            "skill_sd": spec.skill_sd if spec else 0.0}
    sample = (spec.fit.get("sample") if spec else None) or {}
    if "n_answers_used" in sample:
        info["em_answers_used"] = sample["n_answers_used"]
    if spec is not None and spec.pfa:
        info["coefficients"] = dict(zip(("skill_successes", "skill_failures",
                                         "recent_successes", "recent_failures", "skill_last"),
                                        np.round(spec.beta, 4).tolist(), strict=True))
    return result.model, seconds, info


def _predict_cost(model, student: np.ndarray, item_ids: list[str], correct: np.ndarray,
                  n_requests: int = 300) -> float:
    """Median microseconds of one ``predict`` request (:func:`irt.serving.predict`, in
    process, no HTTP) that sends a test student's earlier answers and asks for the next item:
    the online protocol as the LMS uses it."""
    from irt.serving import Limits, predict

    rng = np.random.default_rng(0)
    starts = np.r_[0, np.flatnonzero(student[1:] != student[:-1]) + 1]
    ends = np.r_[starts[1:], student.shape[0]]
    picks = rng.integers(0, starts.shape[0], n_requests)
    limits = Limits()
    times = []
    for s in picks.tolist():
        lo, hi = int(starts[s]), int(ends[s])
        t = int(rng.integers(lo, min(hi, lo + limits.max_responses)))
        seen: set[str] = set()
        answers = []
        for k in range(lo, t):  # first attempts only, as the LMS would send them
            if item_ids[k] not in seen:
                seen.add(item_ids[k])
                answers.append({"item_id": item_ids[k], "correct": bool(correct[k])})
        payload = {"responses": answers, "items": [item_ids[t]]}
        begin = time.perf_counter()
        predict(model, payload, limits, "evaluate")
        times.append(time.perf_counter() - begin)
    return round(float(np.median(times)) * 1e6, 1)


def _print_table(rows: list[dict], published: bool) -> None:
    first = rows[0]
    print(f"calibrated {first['items_calibrated']} items on {first['train_answers']} answers; "
          f"{first['n_predictions']} online predictions for {first['n_students']} test "
          f"students ({first['n_unknown_item_predictions']} on items unknown to the model); "
          "each answer predicted from the same student's earlier answers only")
    print(f"{'model':<24}{'AUC':>8}{'log-loss':>10}{'Brier':>8}{'ECE':>8}"
          f"{'fit s':>8}{'us/pred':>9}{'predict us':>12}{'converged':>11}")
    for r in rows:
        name = "2pl" + ("+" + "+".join(r["options"]) if r["options"] else " (plain)")
        print(f"{name:<24}{r['auc']:>8.4f}{r['log_loss']:>10.4f}{r['brier']:>8.4f}"
              f"{r['ece']:>8.4f}{r['fit_seconds']:>8.1f}{r['us_per_prediction']:>9.1f}"
              f"{r['predict_us_per_request']:>12.1f}{'yes' if r['converged'] else 'NO':>11}")
    if published:
        print("published AUC on the same files (Gervet et al. 2020): " + ", ".join(
            f"{name} {auc:.2f}" for name, auc in PUBLISHED_AUC))
    print("us/pred: the online evaluation's cost per prediction (all students at once); "
          "predict us: median of one in-process predict request (history -> next item); "
          "converged: the 2PL EM and, with options, their EM stopped by their criterion")


def _demo(args: argparse.Namespace) -> int:
    """Synthetic log -> preprocessing -> 2PL calibration -> scores, printed."""
    from irt.engine.ability import estimate
    from irt.engine.calibrate import FitConfig, fit
    from irt.engine.preprocess import prepare_rows
    from irt.engine.simulate import simulate

    sim = simulate(2000, 60, 30, seed=args.seed)
    r = sim.responses
    rows = [{"student_id": r.student_ids[s], "item_id": r.item_ids[j], "correct": int(y)}
            for s, j, y in zip(r.student.tolist(), r.item.tolist(), r.correct.tolist(),
                                   strict=True)]
    rows += [{"student_id": None, "item_id": "q1", "correct": 1},
             {"student_id": "s1", "item_id": "q2", "correct": "maybe"}]
    start = time.perf_counter()
    d = defaults.DEFAULTS
    prepared = prepare_rows(rows, min_answers_per_item=d.min_answers_per_item,
                            min_answers_per_student=d.min_answers_per_student)
    result = fit(prepared.responses, FitConfig())
    model = result.model
    took = time.perf_counter() - start
    idx = np.array([int(i[1:]) for i in model.item_ids])
    rmse_a = float(np.sqrt(np.mean((model.a - sim.a[idx]) ** 2)))
    rmse_b = float(np.sqrt(np.mean((model.b - sim.b[idx]) ** 2)))
    print(f"simulated log: {len(rows)} rows, {r.n_students} students x {r.n_items} items "
          f"(30 answers each)")
    print(f"preprocessing: kept {prepared.report.rows_out}, dropped "
          f"{ {k: v for k, v in prepared.report.dropped.items() if v} }")
    print(f"2PL calibration: {result.iterations} EM cycles, converged={result.converged}, "
          f"log-likelihood {result.log_likelihood:.2f}, {took:.2f} s")
    print(f"recovery vs truth: RMSE(a) = {rmse_a:.3f}, RMSE(b) = {rmse_b:.3f}")
    print("\nfirst items:  item      a      b   se(a)  se(b)")
    for j in range(5):
        print(f"              {model.item_ids[j]:<6} {model.a[j]:6.3f} {model.b[j]:6.3f} "
              f"{model.se_a[j]:6.3f} {model.se_b[j]:6.3f}")
    print("\nscores: student  answers  true theta   EAP (se)         P(correct) on q0..q2")
    order, indptr = r.by_student()
    for s in range(5):
        sel = order[indptr[s]:indptr[s + 1]]
        ids = [r.item_ids[j] for j in r.item[sel]]
        est = estimate(model, ids, r.correct[sel].tolist())
        p = model.probability(est.theta, model.lookup(["q0", "q1", "q2"])[0])
        print(f"        {r.student_ids[s]:<8} {est.n_answers:>7}  {sim.theta[s]:10.2f}   "
              f"{est.theta:6.2f} ({est.se:.2f})   {np.round(p, 2).tolist()}")
    none = estimate(model, [], [])
    print(f"        (no answers) -> theta {none.theta:.2f}, se {none.se:.2f} (the prior)")
    return 0


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 = bad input, 3 = fit did not converge)."""
    args = build_parser().parse_args(argv)
    handlers = {"fit": _fit, "score": _score, "evaluate": _evaluate, "demo": _demo}
    try:
        return handlers[args.command](args)
    except CSVFormatError as exc:
        _log(f"error: {getattr(args, 'answers', '')}: {exc}")
    except ModelFormatError as exc:
        _log(f"error: {args.model}: invalid model: {exc}")
    except (OSError, ValueError) as exc:
        _log(f"error: {exc}")
    return 2
