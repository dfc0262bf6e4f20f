"""Command line for data scientists: ``python -m irt {fit,score,evaluate,diagnose,compare,
explain,fairness,report,exposure,demo} ...``.

With :mod:`irt.tools.common`, the only modules of the package that open files (the engine
itself is I/O free).  Every subcommand reads answers files with the same options and the same
reader (:func:`irt.tools.common.read_answers`).
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
from irt.settings import NUMBER_RULE, parse_int, parse_number, shown
from irt.tools.common import (
    ANSWERS_FORMAT,
    Messages,
    add_answers_arguments,
    add_quiet_argument,
    check_output,
    int_in,
    is_stdout,
    number_in,
    read_answers,
    read_bytes,
    require_answers,
    run_guarded,
)
from irt.tools.csvio import Columns, read_answers_csv, write_scores_csv

EPILOG = ANSWERS_FORMAT + """\
Only the first attempt per student-item pair is used (earliest answered_at, the incorrect
one at equal times, else file order).

Examples:
  python -m irt fit answers.csv --model 2pl -o model.json --table
  python -m irt score model.json answers.csv -o scores.csv
  python -m irt fit log.csv.gz --student-column user_id --order-column seq -o model.json
  python -m irt demo
"""


def _pair(text: str) -> tuple[float, float] | None:
    """``'x,y'`` as two finite numbers (the second positive), or ``'none'`` as ``None``."""
    if text.strip().lower() == "none":
        return None
    try:
        x, y = (parse_number(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected two numbers 'x,y' ({NUMBER_RULE}) or 'none', got {shown(text)}"
        ) from None
    if not (math.isfinite(x) and math.isfinite(y) and y > 0):
        raise argparse.ArgumentTypeError(
            f"needs finite numbers, the second positive: {shown(text)}")
    return x, y


def _cap(text: str) -> int | None:
    """A positive integer, or ``'none'`` as ``None``."""
    if text.strip().lower() == "none":
        return None
    try:
        value = parse_int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', {exc}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {shown(text, False)}")
    return value


#: The most quadrature nodes ``--quadrature-points`` accepts (the learning-aware grid's most).
MAX_QUADRATURE_POINTS = 401
#: The most EM cycles ``--max-iter`` accepts: 20 times the default (500,
#: :data:`irt.engine.defaults.DEFAULTS`), as the quadrature cap is about 10 times its default
#: and exposure's ``--iterations`` 33 times; a fit not converged by then will not converge
#: with more cycles, and a typo (``--max-iter 5000000``) does not run for days.
MAX_EM_CYCLES = 10_000
#: The most answers in the pfa covariates' recent window (``--window``; the model format's).
MAX_WINDOW = 10_000


def _show(pair: tuple[float, float] | None) -> str:
    return "none" if pair is None else f"{pair[0]:g},{pair[1]:g}"


def _add_calibration_arguments(p: argparse.ArgumentParser, what: str = "answers") -> None:
    """The calibration settings ``fit`` and ``evaluate`` share, defaulting to
    :data:`irt.engine.defaults.DEFAULTS` (as ``prepare`` does)."""
    d = defaults.DEFAULTS
    p.add_argument("--model", choices=MODEL_TYPES, default=d.model,
                   help="model type (default %(default)s)")
    p.add_argument("--min-answers-per-item", type=int_in(1), default=d.min_answers_per_item,
                   metavar="N", help=f"leave out items with fewer {what} (default %(default)s)")
    p.add_argument("--min-answers-per-student", type=int_in(0),
                   default=d.min_answers_per_student,
                   metavar="N", help=f"leave out students with fewer {what} before "
                   "calibrating (default %(default)s)")
    p.add_argument("--quadrature-points", type=int_in(5, MAX_QUADRATURE_POINTS),
                   default=d.quadrature_points, metavar="Q",
                   help=f"quadrature nodes on [-6, 6], 5 to {MAX_QUADRATURE_POINTS} "
                   "(default %(default)s)")
    p.add_argument("--tol", type=number_in(0.0, low_open=True), default=d.tol,
                   help="convergence: max parameter change per EM cycle, a positive number "
                   "(default %(default)s)")
    p.add_argument("--max-iter", type=int_in(1, MAX_EM_CYCLES), default=d.max_iter,
                   metavar="N", help=f"EM cycle cap, 1 to {MAX_EM_CYCLES} (default "
                   "%(default)s; reaching it = not converged)")
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
    p.add_argument("--skill-difficulty-sd", type=number_in(0.0, low_open=True),
                   default=d.skill_difficulty_sd,
                   metavar="SD", help="with --skill-column: SD of the difficulties around "
                   "their skill's mean (default %(default)s)")
    p.add_argument("--no-skill-prior", action="store_true", default=not d.skill_prior,
                   help="with --skill-column: keep the population difficulty prior for every "
                   "item (default: each item's is centred on its skill's estimated mean)")


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
                     min_answers_per_item=args.min_answers_per_item,
                     skill_prior=not args.no_skill_prior,
                     skill_difficulty_sd=args.skill_difficulty_sd, **settings)


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
                       "The defaults are prepare's.",
                       epilog=_defaults_epilog() + "\nfit --table flags (rules of thumb):\n"
                       + "".join(f"  {k}: {v}\n" for k, v in TABLE_FLAGS.items()),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("answers", type=Path, help="answers CSV (see format below)")
    f.add_argument("-o", "--output", type=Path, required=True, help="model JSON to write")
    _add_calibration_arguments(f)
    f.add_argument("--skill-column", default=None, metavar="COL",
                   help="column naming each answer's skill: the item -> skill map (each "
                   "item's most frequent skill) of the skill prior and of the model's "
                   "'skills' section, which predict uses for items it has no parameters for")
    f.add_argument("--no-se", action="store_true", help="skip standard errors")
    f.add_argument("--table", action="store_true",
                   help="print the item table on stdout: answers, a, b, c with their standard "
                   "errors and flags (below), then the items left out with the reason")
    add_answers_arguments(f)
    add_quiet_argument(f)

    s = sub.add_parser("score", help="score students with a model",
                       description="Estimate each student's ability; one output row per "
                       "student: student_id,theta,se,n_answers.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("model", type=Path, help="model JSON written by 'fit'")
    s.add_argument("answers", type=Path, help="answers CSV")
    s.add_argument("-o", "--output", type=Path,
                   help="scores CSV to write (default, or '-': stdout)")
    s.add_argument("--method", choices=("EAP", "MAP", "ML", "WLE"),
                   default=defaults.DEFAULTS.score_method,
                   help="EAP (posterior mean, SE = posterior SD), MAP (posterior mode), ML "
                   "(maximum likelihood: +/-inf for all-right/all-wrong, as mirt) or WLE "
                   "(Warm's weighted likelihood) (default %(default)s)")
    add_answers_arguments(s)
    add_quiet_argument(s)

    e = sub.add_parser("evaluate", help="calibrate on a training log, predict a test log online",
                       description="Calibrate on TRAIN, then predict every answer of every TEST "
                       "student from only that student's earlier answers (as predict is used) "
                       "and report AUC, log-loss, Brier score, calibration error (ECE) and the "
                       "cost per prediction.",
                       epilog=_defaults_epilog(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("train", type=Path, help="training answers CSV")
    e.add_argument("test", type=Path, help="test answers CSV (students disjoint from TRAIN: "
                   "a student in both files is an error)")
    _add_calibration_arguments(e, "training answers")
    e.add_argument("--options", default=",".join(defaults.DEFAULTS.options),
                   help="learning-aware options, comma-separated: recency, skills, pfa "
                   "(default none: the plain model; formulas in irt.engine.learning), or "
                   "'auto': choose them on 20%% of the training students, keeping plain "
                   "unless a set wins by more than its noise (irt.engine.auto)")
    e.add_argument("--skill-column", default=None,
                   help="skill column of TRAIN, for the item -> skill map that 'skills' and "
                   "'pfa' learn (ASSISTments files: skill_id)")
    e.add_argument("--recency-decay", type=number_in(0.0, 1.0, low_open=True, high_open=True),
                   default=defaults.DEFAULTS.recency_decay, metavar="LAMBDA",
                   help="recency weight per later answer, in (0, 1) (default %(default)s)")
    e.add_argument("--window", type=int_in(1, MAX_WINDOW), default=defaults.DEFAULTS.pfa_window,
                   help="answers in the recent window of the pfa covariates, 1 to "
                   f"{MAX_WINDOW} (default %(default)s)")
    e.add_argument("--learning-max-answers", type=_cap,
                   default=defaults.DEFAULTS.learning_max_answers, metavar="N",
                   help="calibrate the options on at most N training answers, whole students "
                   "by MD5 of their id, as prepare does ('none': all; default %(default)s)")
    e.add_argument("--table", action="store_true",
                   help="evaluate the plain model, every option set and auto, with "
                   "predict's per-request cost, against the published figures")
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    add_answers_arguments(e)
    add_quiet_argument(e)

    d = sub.add_parser("demo", help="simulate a log, calibrate, score a few students")
    d.add_argument("--seed", type=int_in(0), default=7,
                   help="random seed, a non-negative integer (default 7)")
    _add_diagnostics_parsers(sub)
    _add_tool_parsers(sub)
    _add_report_parser(sub)
    _add_exposure_parser(sub)
    return parser


#: The most simulated sessions per iteration ``exposure --examinees`` accepts (memory grows
#: as about 70 x examinees x items bytes).
MAX_EXAMINEES = 100_000
#: The most iterations ``exposure --iterations`` accepts.
MAX_EXPOSURE_ITERATIONS = 1000


def _add_exposure_parser(sub) -> None:
    """``exposure`` (irt.engine.exposure): Sympson-Hetter parameters into a model JSON."""
    x = sub.add_parser("exposure", help="add Sympson-Hetter exposure-control parameters to a "
                       "model (for /next-items exposure.method sympson-hetter)",
                       description="Compute each item's Sympson-Hetter exposure-control "
                       "parameter K by the standard iterative simulation (simulated students "
                       "drawn from the model's ability prior take fixed-length "
                       "maximum-information sessions scored by EAP; K = r_max / P(selected) "
                       "for items selected more often than r_max, until the largest exposure "
                       "rate is within the tolerance of r_max) and write the model with its "
                       "'exposure' section. predict serves it as it serves any model. "
                       "Memory: about 70 x examinees x items bytes (2000 x 10,000 items: "
                       "1.4 GB; lower --examinees for a large bank).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    x.add_argument("model", type=Path, help="model JSON written by 'fit' (or prepare)")
    x.add_argument("-o", "--output", type=Path, required=True,
                   help="model JSON to write (the input's content plus 'exposure')")
    x.add_argument("--r-max", type=number_in(0.0, 1.0, low_open=True), default=0.25,
                   help="target largest exposure rate, in (0, 1] (default %(default)s)")
    x.add_argument("--test-length", type=int_in(1), default=20,
                   help="items per simulated session, at most the bank's items "
                   "(default %(default)s)")
    x.add_argument("--examinees", type=int_in(1, MAX_EXAMINEES), default=2000,
                   help="simulated sessions per iteration, at most "
                   f"{MAX_EXAMINEES} (default %(default)s)")
    x.add_argument("--iterations", type=int_in(1, MAX_EXPOSURE_ITERATIONS), default=30,
                   help=f"most iterations, at most {MAX_EXPOSURE_ITERATIONS} "
                   "(default %(default)s)")
    x.add_argument("--tolerance", type=number_in(0.0, 1.0, high_open=True), default=None,
                   help="slack over r_max that counts as met, in [0, 1) (default: 3 binomial "
                   "SEs, 3 sqrt(r_max (1 - r_max) / examinees))")
    x.add_argument("--seed", type=int_in(0), default=0,
                   help="random seed, a non-negative integer (default 0)")
    add_quiet_argument(x)


def _add_tool_parsers(sub) -> None:
    """``explain`` and ``fairness``: the same commands as ``python -m irt.explain`` and
    ``python -m irt.fairness``."""
    from irt.tools import explain, fairness

    x = sub.add_parser("explain", help="one prediction, step by step",
                       description=explain.DESCRIPTION, epilog=explain.EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    explain.add_arguments(x)
    r = sub.add_parser("fairness", help="differential item functioning between two groups",
                       description=fairness.DESCRIPTION, epilog=fairness.EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    fairness.add_arguments(r)


def _add_diagnostics_parsers(sub) -> None:
    """``diagnose`` and ``compare`` (irt.engine.diagnostics, irt.engine.comparison)."""
    g = sub.add_parser("diagnose", help="item, person and global fit of a model on answers",
                       description="Item fit (S-X2 on a complete test, grouped X2, infit/outfit "
                       "with z, Zh), person fit (Zh, infit/outfit), global fit (M2 with RMSEA, "
                       "SRMSR, TLI, CFI on a complete test; log-likelihood, AIC, BIC), local "
                       "dependence (Q3, LD-X2) and reliability, as R mirt computes them. On a "
                       "sparse log the statistics that need every student to answer every "
                       "item are not computed, and the report says what replaces them.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("model", type=Path, help="model JSON written by 'fit'")
    g.add_argument("answers", type=Path, help="answers CSV")
    g.add_argument("--json", action="store_true", help="print every statistic as JSON")
    add_answers_arguments(g)
    add_quiet_argument(g)
    c = sub.add_parser("compare", help="compare two models on the same answers",
                       description="Log-likelihood, AIC and BIC of two models on the answers "
                       "to the items both know, the likelihood-ratio test when their types "
                       "nest (rasch = 1pl < 2pl < 3pl; valid for maximum-likelihood fits, "
                       "--no-priors, to these answers), and each model's online AUC and "
                       "log-loss (every answer predicted from the student's earlier ones; pass "
                       "held-out students for an out-of-sample comparison).", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("model_a", type=Path, help="first model JSON")
    c.add_argument("model_b", type=Path, help="second model JSON")
    c.add_argument("answers", type=Path, help="answers CSV (answered_at orders each student's "
                   "answers for the online metrics; else the file order)")
    c.add_argument("--json", action="store_true", help="print the comparison as JSON")
    add_answers_arguments(c)
    add_quiet_argument(c)


def _read_rows(path: Path, args: argparse.Namespace, messages: Messages | None = None,
               extra_columns: tuple[str, ...] = (), extra_options: tuple[str, ...] = (),
               what: str = "answers file") -> list[dict]:
    """The rows of an answers file (:func:`irt.tools.common.read_answers`), said on stderr."""
    start = time.perf_counter()
    rows = read_answers(path, args, extra_columns, extra_options, what)
    if messages is not None:
        messages.info(f"{path}: read {len(rows)} rows in {time.perf_counter() - start:.1f} s")
    return rows


def _load_model(path: Path, what: str = "model file"):
    """The model JSON at ``path``; an invalid or unreadable one is an error naming the file
    (and ``what`` it is, when it cannot be read)."""
    content = read_bytes(path, what)
    try:
        return load_model(content)
    except ModelFormatError as exc:
        raise ValueError(f"{path}: invalid model: {exc}") from None


def _minimum_options(args: argparse.Namespace) -> dict[str, str]:
    """The option behind preprocessing's student minimum, for :func:`require_answers`."""
    return {"student_below_min_answers":
            f"--min-answers-per-student {args.min_answers_per_student}"}


def _dropped(report) -> str:
    return json.dumps({k: v for k, v in report.dropped.items() if v})


def _add_report_parser(sub) -> None:
    """``report`` (irt.refresh.report): the model report as one self-contained HTML file."""
    r = sub.add_parser("report", help="write the model report: one self-contained HTML page",
                       description="Write one HTML file (plotly.js inlined: it opens from "
                       "disk with no network access) with the item characteristic and "
                       "information curves of chosen items, the test information and its "
                       "standard error, the sortable parameter table with standard errors "
                       "and, with ANSWERS, fit flags (as 'diagnose'), the ability "
                       "distribution and a reliability diagram of the online predictions "
                       "(each answer predicted from the student's earlier answers). With "
                       "--against, the parameter drift from another model. A large bank "
                       "shows at most --max-items items in the table and the curve "
                       "selector (flagged first, then the most answered).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("model", type=Path, help="model JSON written by 'fit' (or prepare)")
    r.add_argument("answers", type=Path, nargs="?",
                   help="answers CSV (optional; answered_at orders each student's answers "
                   "for the online predictions, else the file order)")
    r.add_argument("-o", "--output", type=Path, required=True, help="HTML file to write")
    r.add_argument("--against", type=Path, metavar="MODEL",
                   help="another model JSON (e.g. the one serving): drift scatter of a and b")
    r.add_argument("--max-items", type=int_in(1), default=1000, metavar="N",
                   help="items in the table and the curve selector, at least 1 "
                   "(default %(default)s)")
    r.add_argument("--title", help="page title (default: the model's version or type)")
    add_answers_arguments(r)
    add_quiet_argument(r)


def _fit(args: argparse.Namespace) -> int:
    from irt.engine.calibrate import fit
    from irt.engine.preprocess import prepare_rows

    check_output(args.output, {"answers file": args.answers})
    messages = Messages(args.quiet)
    column = args.skill_column.strip().lower() if args.skill_column else None
    rows = _read_rows(args.answers, args, messages, (column,) if column else (),
                      ("--skill-column",))
    prepared = prepare_rows(rows, min_answers_per_student=args.min_answers_per_student)
    messages.info(f"kept {prepared.report.rows_out} answers; dropped "
                  f"{_dropped(prepared.report)}")
    require_answers(args.answers, prepared.report, options=_minimum_options(args))
    config = _fit_config(args, compute_se=not args.no_se)
    objective = "log-likelihood" if args.no_priors else "log-posterior"
    skills: tuple[Any, ...] = ()
    if column:
        skills = _train_skills(prepared.responses, [r["item_id"] or "" for r in rows],
                               [(r[column] or "").strip() for r in rows], sort=True)
    start = time.perf_counter()
    result = fit(prepared.responses, config, *skills,
                 progress=messages.em_progress(f"fit {args.model}", objective))
    model = result.model
    model.data_summary["preprocessing"] = prepared.report.to_dict()
    args.output.write_text(model.to_json(), encoding="utf-8")
    messages.info(f"wrote {args.output}: {args.model}, {model.n_items} items, "
                  f"{len(model.excluded_items)} left out, {result.iterations} EM cycles, "
                  f"converged={result.converged}, log-likelihood {result.log_likelihood:.3f}, "
                  f"{time.perf_counter() - start:.2f} s{_skill_note(model)}")
    if not result.converged:
        messages.warning(f"EM did not converge in {result.iterations} cycles (--max-iter); "
                         "the model is written with fit.converged = false")
    if args.table:
        print(item_table(model, prepared.responses))
    return 0 if result.converged else 3


#: ``fit --table`` flags: rules of thumb for an item to look at, not verdicts.
TABLE_FLAGS = {
    "low-a": "slope a < 0.5: the item separates strong from weak students poorly",
    "extreme-b": "|b| > 3 population SDs: almost everyone (or no one) answers it right",
    "imprecise": "SE(a) or SE(b) > 1: too few or too uninformative answers to pin it down",
    "high-c": "guessing c > 0.35 (3pl)",
    "few": "fewer than 20 answers: its parameters lean on the prior",
}


def item_table(model, responses=None) -> str:
    """The items of ``model`` as a text table: ``item, n, a, se(a), b, se(b), c, se(c),
    flags`` (:data:`TABLE_FLAGS`), then the items left out with the reason.  ``n`` (the
    answers of each item) needs the calibration's ``responses``."""
    n_of: dict[str, int] = {}
    if responses is not None:
        n_of = dict(zip(responses.item_ids, responses.answers_per_item().tolist(),
                        strict=True))

    def num(x: float) -> str:
        return f"{x:8.3f}" if math.isfinite(x) else f"{'-':>8}"

    width = max([12, *(len(i) for i in model.item_ids)]) + 2
    lines = [f"{'item':<{width}}{'n':>7}{'a':>8}{'se(a)':>8}{'b':>8}{'se(b)':>8}{'c':>8}"
             f"{'se(c)':>8}  flags"]
    free_slope = model.model_type in ("2pl", "3pl")
    counts = dict.fromkeys(TABLE_FLAGS, 0)
    for j, item in enumerate(model.item_ids):
        a, b, c = float(model.a[j]), float(model.b[j]), float(model.c[j])
        se_a, se_b, se_c = float(model.se_a[j]), float(model.se_b[j]), float(model.se_c[j])
        n = n_of.get(item)
        flags = [name for name, on in (
            ("low-a", free_slope and a < 0.5),
            ("extreme-b", abs(b) > 3 * model.population_sd),
            ("imprecise", (math.isfinite(se_a) and se_a > 1) or
             (math.isfinite(se_b) and se_b > 1)),
            ("high-c", c > 0.35),
            ("few", n is not None and n < 20)) if on]
        for name in flags:
            counts[name] += 1
        lines.append(f"{item:<{width}}{'-' if n is None else n:>7}{num(a)}{num(se_a)}"
                     f"{num(b)}{num(se_b)}{num(c)}{num(se_c)}  {' '.join(flags)}".rstrip())
    lines.append(f"{model.n_items} items; flagged: " + (", ".join(
        f"{name} {k}" for name, k in counts.items() if k) or "none"))
    for name, k in counts.items():
        if k:
            lines.append(f"  {name}: {TABLE_FLAGS[name]}")
    if model.excluded_items:
        lines.append(f"left out ({len(model.excluded_items)}):")
        lines += [f"  {item}: {why}" for item, why in model.excluded_items.items()]
    return "\n".join(lines)


def _skill_note(model) -> str:
    """``", skill prior on (N skills)"`` (or off), for the reports; ``""`` without a skill
    map."""
    if "skill_prior" not in model.fit:
        return ""
    n = len(model.skills.get("parameters", {}))
    return f", skill prior {'on' if model.fit['skill_prior'] else 'off'} ({_count(n, 'skill')})"


def _count(n: int, noun: str) -> str:
    """``"1 skill"``, ``"12 skills"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _score(args: argparse.Namespace) -> int:
    from irt.engine.preprocess import prepare_rows
    from irt.engine.scoring import score_batch

    check_output(args.output, {"model file": args.model, "answers file": args.answers},
                 stdout=True)
    messages = Messages(args.quiet)
    model = _load_model(args.model)
    prepared = prepare_rows(_read_rows(args.answers, args, messages))
    messages.bad_rows(args.answers, prepared.report)
    resp = prepared.responses
    pos, unknown = model.lookup(resp.item_ids)
    known = pos[resp.item] >= 0
    if unknown:
        messages.warning(f"ignored {len(unknown)} item(s) unknown to the model, "
                         f"e.g. {unknown[:3]}")
    student, item_pos, y = resp.student[known], pos[resp.item[known]], resp.correct[known]
    theta, se = score_batch(model, student, item_pos, y, resp.n_students, args.method)
    n_answers = np.bincount(student, minlength=resp.n_students)
    to_file = args.output is not None and not is_stdout(args.output)
    out: TextIO = args.output.open("w", newline="", encoding="utf-8") if to_file else sys.stdout
    try:
        write_scores_csv(out, resp.student_ids, theta, se, n_answers)
    finally:
        if to_file:
            out.close()
    if to_file:
        messages.info(f"wrote {args.output}: {resp.n_students} students' {args.method} "
                      f"scores from {int(known.sum())} answers")
    return 0


def _log_arrays(rows: list[dict], skill_col: str | None = None) -> tuple:
    """Rows of :func:`irt.tools.csvio.read_answers_csv` as students, items (stripped ids),
    correct (0/1) and order keys (epoch seconds or the order column's numbers; ``NaN``
    where absent: the file order), and with ``skill_col`` the skills as a fifth list (``""``
    for none).  Rows :func:`~irt.engine.preprocess.prepare_rows` would drop as invalid
    (possible with ``--lenient``) are left out."""
    from irt.engine.preprocess import parse_correct, timestamp_or_nan

    students, items, correct, order, skills = [], [], [], [], []
    for row in rows:
        s, i = (row["student_id"] or "").strip(), (row["item_id"] or "").strip()
        y = parse_correct(row["correct"])
        t = timestamp_or_nan(row.get("answered_at") or None)
        if not s or not i or y is None or t is None:
            continue
        students.append(s)
        items.append(i)
        correct.append(y)
        order.append(t)
        if skill_col:
            skills.append((row[skill_col] or "").strip())
    out = (students, items, np.array(correct, dtype=np.int8), np.array(order, dtype=float))
    return (*out, skills) if skill_col else out


def _read_log(path: Path, student_col: str = "student_id", order_col: str | None = None,
              skill_col: str | None = None, item_col: str = "item_id",
              correct_col: str = "correct") -> tuple:
    """An answers file (plain or gzip) as :func:`_log_arrays` (for scripts and benchmarks;
    the subcommands read with :func:`irt.tools.common.read_answers`)."""
    from irt.tools.common import open_text

    columns = Columns(student_id=student_col, item_id=item_col, correct=correct_col,
                      answered_at=order_col or "answered_at",
                      answered_at_required=order_col is not None)
    extra = (skill_col.strip().lower(),) if skill_col else ()
    try:
        with open_text(path) as stream:
            rows = read_answers_csv(stream, columns=columns, extra_columns=extra)
    except CSVFormatError as exc:
        raise CSVFormatError(exc.reason, exc.line, str(path)) from None
    return _log_arrays(rows, extra[0] if extra else None)


#: Published test AUCs on the same ASSISTments 2009 files (Gervet et al. 2020, README of
#: github.com/theophilegervet/learner-performance-prediction at a7ae193).
PUBLISHED_AUC = (("item-only IRT", 0.69), ("PFA", 0.72), ("DKT", 0.75), ("Best-LR", 0.77))
#: The option sets ``--table`` evaluates (besides the plain model).
TABLE_OPTIONS = (("recency",), ("skills",), ("pfa",), ("skills", "pfa"),
                 ("recency", "skills", "pfa"))


def _evaluate(args: argparse.Namespace) -> int:
    from irt.engine.calibrate import fit
    from irt.engine.evaluate import evaluate
    from irt.engine.learning import AUTO, parse_options
    from irt.engine.learning_fit import base_for_options, with_recency
    from irt.engine.preprocess import prepare_rows

    try:
        options = parse_options(args.options, allow_auto=True)
    except ValueError as exc:
        raise ValueError(f"--options: {exc}") from None
    if (options or args.table) and args.model != "2pl":
        what = "--table" if args.table else f"--options {args.options}"
        raise ValueError(f"{what} needs --model 2pl (the learning-aware options are a 2pl's), "
                         f"not --model {args.model}")
    needs_skills = args.table or bool({"skills", "pfa"} & set(options))
    if needs_skills and not args.skill_column:
        raise ValueError("options 'skills' and 'pfa' (and --table) need --skill-column")
    skill_col = args.skill_column  # also the plain calibration's skill prior
    skill_key = skill_col.strip().lower() if skill_col else None
    messages = Messages(args.quiet)
    train_rows = _read_rows(args.train, args, messages, (skill_key,) if skill_key else (),
                            ("--skill-column",), "training answers file")
    test_rows = _read_rows(args.test, args, messages, what="test answers file")
    tr = _log_arrays(train_rows, skill_key)
    te_s, te_i, te_y, te_o = _log_arrays(test_rows)
    if not te_s:
        raise ValueError(f"{args.test}: no test answers ("
                         + (f"{len(test_rows)} rows read, all invalid)" if test_rows
                            else "the file has no answers)"))
    _check_disjoint(tr[0], te_s, args.train, args.test)
    published = _is_published_split(tr[0], tr[2], te_s, te_y)
    tr_i = tr[1]
    # First attempt per student-item, as in production (preprocess keeps the first).
    prepared = prepare_rows(train_rows, min_answers_per_student=args.min_answers_per_student)
    train = prepared.responses
    messages.bad_rows(args.train, prepared.report)
    require_answers(args.train, prepared.report, options=_minimum_options(args))
    if len(te_s) < len(test_rows):
        messages.warning(f"{args.test}: left out {len(test_rows) - len(te_s)} invalid rows")
    config = _fit_config(args, compute_se=False)
    skills = _train_skills(train, tr_i, tr[4]) if skill_col else None
    start = time.perf_counter()
    objective = "log-likelihood" if args.no_priors else "log-posterior"
    result = fit(train, config, *(skills or ()),
                 progress=messages.em_progress(f"fit {args.model}", objective))
    fit_s = time.perf_counter() - start
    test = _ordered(te_s, te_i, te_y, te_o)
    runs = [(), *TABLE_OPTIONS, (AUTO,)] if args.table else [options]
    rows = []
    fitted: dict[tuple[str, ...], tuple] = {}
    start_for: list[tuple] = []  # the calibrated options' start and its seconds, made once
    for opts in runs:
        model, extra_s, info = result.model, 0.0, {}
        calibrated = tuple(o for o in opts if o != "recency")
        if opts == (AUTO,):
            messages.info("choosing the options (auto) ...")
            model, extra_s, info = _fit_auto(result.model, train, prepared.answered_at,
                                             skills, config, args, tr, fitted)
        elif calibrated in fitted:  # recency is not calibrated: reuse the fit without it
            model, extra_s, info = fitted[calibrated]
            model = with_recency(model, args.recency_decay)
        elif opts:
            messages.info(f"fitting the options {'+'.join(opts)} ...")
            if not start_for and calibrated:
                begin = time.perf_counter()
                start_for.append((base_for_options(result.model, calibrated, train, config,
                                                   *(skills or (None, ()))),
                                  time.perf_counter() - begin))
            base, base_s = start_for[0] if calibrated else (result.model, 0.0)
            model, extra_s, info = _fit_options(base, train, prepared.answered_at,
                                                skills, opts, args)
            extra_s += base_s
            fitted[opts] = (model, extra_s, info)
        messages.info(f"predicting {len(te_s)} test answers online with "
                      f"{_row_name({'options': list(opts)})} ...")
        report, _ = evaluate(model, *test)
        out = {"model": args.model, "options": list(opts), "train_answers": train.n_answers,
               "items_calibrated": model.n_items, "fit_seconds": round(fit_s + extra_s, 2),
               "fit_iterations": result.iterations, "fit_converged": result.converged,
               "skill_prior": bool(result.model.fit.get("skill_prior", False)),
               **info, **report.to_dict()}
        out["converged"] = bool(result.converged and info.get("em_converged", True))
        if args.table:
            out["predict_us_per_request"] = _predict_cost(model, *test)
        rows.append(out)
    if args.json:  # an undefined metric (NaN) is null, as in compare --json
        from irt.engine.comparison import json_ready

        print(json.dumps(json_ready(rows if args.table else rows[0]), indent=1,
                         allow_nan=False))
    elif args.table:
        _print_table(rows, published)
    else:
        out = rows[0]
        print(f"{_row_name(out)}: calibrated {_count(out['items_calibrated'], 'item')} on "
              f"{_count(out['train_answers'], 'answer')} in {out['fit_seconds']:.1f} s"
              f"{_skill_note(result.model)}; "
              f"{_count(out['n_predictions'], 'online prediction')} for "
              f"{_count(out['n_students'], 'student')} "
              f"({out['n_unknown_item_predictions']} on items unknown to the model)")
        print(f"  AUC {_metric(out['auc'])}  log-loss {_metric(out['log_loss'])}  "
              f"Brier {_metric(out['brier'])}  ECE {_metric(out['ece'])}  "
              f"mean p {out['mean_probability']:.3f} vs {out['mean_correct']:.3f} correct  "
              f"{out['us_per_prediction']:.1f} us/prediction")
        if not math.isfinite(out["auc"]):
            print("  " + _undefined_auc(out))
        print("  " + _convergence(out))
        if "option_selection" in out:
            _print_selection(out["option_selection"])
    for out in rows:
        if not out["converged"]:
            messages.warning(f"{_row_name(out)} did not converge: {_convergence(out)}")
    return 0


def _check_disjoint(train_students: list[str], test_students: list[str], train: Path,
                    test: Path) -> None:
    """TEST's students must not be TRAIN's (``evaluate``'s contract, in its help): a student
    the model was calibrated on makes the online predictions in-sample.

    Raises:
        ValueError: naming how many students the files share, and a few of them.
    """
    both = set(train_students) & set(test_students)
    if both:
        shared = sorted(both)
        raise ValueError(
            f"{test}: {len(both)} of its {len(set(test_students))} students are also in "
            f"{train} (e.g. {', '.join(repr(s) for s in shared[:3])}); the test students "
            "must be disjoint from the training students, or the predictions are in-sample")


def _metric(x: float, width: int = 0) -> str:
    """A metric with four decimals, ``-`` when it is undefined (NaN)."""
    return f"{x:{width}.4f}" if math.isfinite(x) else f"{'-':>{width}}"


def _undefined_auc(row: dict) -> str:
    """Why a report's AUC is ``-``: every test answer is right (or every one wrong)."""
    kind = "right" if row["mean_correct"] == 1 else "wrong"
    return (f"AUC undefined: every test answer is {kind} (it needs right and wrong answers; "
            "null in --json)")


def _ordered(students: list[str], items: list[str], correct: np.ndarray, order: np.ndarray
             ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """A log as ``(student index, item ids, correct)``, each student's answers contiguous
    and in answer order (the online protocol's layout)."""
    index: dict[str, int] = {}
    code = np.array([index.setdefault(s, len(index)) for s in students], dtype=np.int64)
    rows = np.lexsort((order, code))
    return code[rows], [items[k] for k in rows], correct[rows]


def _row_name(row: dict) -> str:
    """A table row's model name: ``2pl``, ``2pl+skills+pfa``, ``2pl+auto -> pfa``."""
    name = "2pl" + ("+" + "+".join(row["options"]) if row["options"] else "")
    if "chosen" in row:
        name += " -> " + ("+".join(row["chosen"]) or "plain")
    return name


def _fit_auto(base, train, answered_at, skills, config, args: argparse.Namespace, tr: tuple,
              fitted: dict) -> tuple:
    """``(model, seconds, summary)`` of ``--options auto``: the choice on validation students
    of TRAIN (:func:`irt.engine.auto.choose_options`, predicting every attempt of theirs in
    TRAIN, as the test protocol predicts TEST), then the chosen set on every training
    answer (reusing a fit of the same set when the table already made one)."""
    from irt.engine.auto import AutoConfig, choose_options, fit_chosen
    from irt.engine.learning_fit import base_for_options, with_recency

    start = time.perf_counter()
    item_skill, skill_ids = skills if skills is not None else (None, ())
    auto = AutoConfig()
    # every attempt of the training students, by their index in TRAIN (choose_options keeps
    # those of the students it validates on)
    index = {s: k for k, s in enumerate(train.student_ids)}
    code = np.array([index.get(s, -1) for s in tr[0]], dtype=np.int64)
    keep = np.flatnonzero(code >= 0)
    rows = keep[np.lexsort((tr[3][keep], code[keep]))]
    validation = (code[rows], [tr[1][k] for k in rows], tr[2][rows])
    learning = _learning_config(args, ())
    choice = choose_options(train, answered_at, item_skill, skill_ids, config, learning, auto,
                            validation)
    calibrated = tuple(o for o in choice.options if o != "recency")
    info: dict[str, Any] = {}
    if calibrated in fitted:
        model, _, info = fitted[calibrated]
        if "recency" in choice.options:
            model = with_recency(model, args.recency_decay)
        model = choice.attach(model)
    else:
        first = base_for_options(base, calibrated, train, config, item_skill, skill_ids)
        result = fit_chosen(first, train, answered_at, item_skill, skill_ids, learning, choice)
        model = result.model
        if calibrated:
            info = {"em_iterations": result.iterations, "em_converged": result.converged}
    info = {**info, "chosen": list(choice.options), "option_selection": choice.to_dict()}
    return model, time.perf_counter() - start, info


def _print_selection(selection: dict) -> None:
    factor = selection.get("noise_factor")  # None when no option set was tried
    folds = selection.get("n_folds", 1)
    fitted = f"fitted on {selection['n_fit_students']}" if folds == 1 else \
        f"in {folds} folds, each predicted by a fit on the others"
    print(f"  auto: validated on "
          f"{_count(selection['n_validation_students'], 'training student')} "
          f"({_count(selection['n_validation_answers'], 'answer')}), {fitted}; "
          f"chosen: {'+'.join(selection['chosen']) or 'plain'}"
          + ("" if factor is None else f"; a gain must exceed {factor:.3g} x its noise"))
    for row in selection["table"]:
        auc = "-" if row.get("auc") is None else f"{row['auc']:.4f}"
        ece = "-" if row.get("ece") is None else f"{row['ece']:.4f}"
        gain = "" if row.get("gain") is None else \
            f" gain {row['gain']:+.5f} (noise {row['noise']:.5f})"
        cal = row.get("calibration")
        if cal is not None:  # a candidate, judged with its calibration (irt.engine.auto)
            before = row.get("ece_uncalibrated")
            ece += (f" (uncalibrated {'-' if before is None else f'{before:.4f}'}; "
                    f"calibration {cal['intercept']:+.3f} + {cal['slope']:.3f} z)")
        print(f"    {'+'.join(row['options']) or 'plain':<22} AUC {auc} ECE {ece}{gain}: "
              f"{row['verdict']}")


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


def _train_skills(train, items: list[str], skills: list[str], *, sort: bool = False
                  ) -> tuple[np.ndarray, tuple[str, ...]]:
    """The item -> skill map of the training rows (each item's most frequent skill) as
    ``(skill index per item of train, skill ids)``.  Ties go to the skill seen first, or
    with ``sort`` (``irt fit``) to the smallest skill id, as ``prepare`` breaks them."""
    from irt.engine.learning import skill_map

    item_index = {item: j for j, item in enumerate(train.item_ids)}
    names = sorted(set(skills) - {""}) if sort else dict.fromkeys(k for k in skills if k)
    skill_index = {k: q for q, k in enumerate(names)}
    codes = np.array([skill_index[k] if k else -1 for k in skills], dtype=np.int64)
    rows = np.array([item_index.get(i.strip(), -1) for i in items], dtype=np.int64)
    return skill_map(rows, codes, train.n_items), tuple(skill_index)


def _fit_options(base, train, answered_at, skills, options: tuple[str, ...],
                 args: argparse.Namespace):
    """``(model with the options, seconds, summary)`` by
    :func:`irt.engine.learning_fit.fit_learning`."""
    from irt.engine.learning import learning_of
    from irt.engine.learning_fit import fit_learning

    item_skill, skill_ids = skills if skills is not None else (None, ())
    config = _learning_config(args, options)
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


def _learning_config(args: argparse.Namespace, options: tuple[str, ...]):
    """The learning-aware options' settings from the command line."""
    from irt.engine.learning_fit import LearningConfig

    return LearningConfig(options=options, decay=args.recency_decay, window=args.window,
                          prior_a=None if args.no_priors else args.prior_a,
                          prior_b=None if args.no_priors else args.prior_b,
                          max_answers=args.learning_max_answers)


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
    print(f"calibrated {_count(first['items_calibrated'], 'item')} on "
          f"{_count(first['train_answers'], 'answer')}; "
          f"{_count(first['n_predictions'], 'online prediction')} for "
          f"{_count(first['n_students'], 'test student')} "
          f"({first['n_unknown_item_predictions']} on items unknown to the model); "
          "each answer predicted from the same student's earlier answers only")
    print(f"{'model':<32}{'AUC':>8}{'log-loss':>10}{'Brier':>8}{'ECE':>8}"
          f"{'fit s':>8}{'us/pred':>9}{'predict us':>12}{'converged':>11}")
    for r in rows:
        name = _row_name(r) if r["options"] else "2pl (plain)"
        print(f"{name:<32}{_metric(r['auc'], 8)}{_metric(r['log_loss'], 10)}"
              f"{_metric(r['brier'], 8)}{_metric(r['ece'], 8)}"
              f"{r['fit_seconds']:>8.1f}{r['us_per_prediction']:>9.1f}"
              f"{r['predict_us_per_request']:>12.1f}{'yes' if r['converged'] else 'NO':>11}")
    for r in rows:
        if "option_selection" in r:
            _print_selection(r["option_selection"])
    if not math.isfinite(first["auc"]):
        print(_undefined_auc(first))
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
        p = model.probability(est.theta, ["q0", "q1", "q2"])
        print(f"        {r.student_ids[s]:<8} {est.n_answers:>7}  {sim.theta[s]:10.2f}   "
              f"{est.theta:6.2f} ({est.se:.2f})   {np.round(p, 2).tolist()}")
    none = estimate(model, [], [])
    print(f"        (no answers) -> theta {none.theta:.2f}, se {none.se:.2f} (the prior)")
    return 0


def _diagnose(args: argparse.Namespace) -> int:
    from irt.engine.diagnostics import diagnose
    from irt.engine.preprocess import prepare_rows
    from irt.tools.diagnostics_report import format_diagnostics

    messages = Messages(args.quiet)
    model = _load_model(args.model)
    prepared = prepare_rows(_read_rows(args.answers, args, messages))
    messages.bad_rows(args.answers, prepared.report)
    require_answers(args.answers, prepared.report, "no answers to diagnose")
    messages.info(f"diagnosing {args.model} on {prepared.responses.n_answers} answers ...")
    result = diagnose(model, prepared.responses)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1, allow_nan=False))
    else:
        print(format_diagnostics(result))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from irt.engine.comparison import compare
    from irt.engine.preprocess import prepare_rows
    from irt.tools.diagnostics_report import format_comparison

    messages = Messages(args.quiet)
    models = [_load_model(path) for path in (args.model_a, args.model_b)]
    prepared = prepare_rows(_read_rows(args.answers, args, messages))
    messages.bad_rows(args.answers, prepared.report)
    require_answers(args.answers, prepared.report, "no answers to compare the models on")
    messages.info(f"comparing on {prepared.responses.n_answers} answers ...")
    order = prepared.answered_at
    result = compare(*models, prepared.responses, labels=(str(args.model_a), str(args.model_b)),
                     order=None if order is None or np.isnan(order).all() else order)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1, allow_nan=False))
    else:
        print(format_comparison(result))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from irt.tools.explain import run

    return run(args)


def _fairness(args: argparse.Namespace) -> int:
    from irt.tools.fairness import run

    return run(args)


def _report(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from irt.engine.preprocess import prepare_rows
    from irt.refresh.report import ReportConfig, build_report, render_html

    check_output(args.output, {"model file": args.model, "answers file": args.answers,
                               "--against model file": args.against})
    messages = Messages(args.quiet)
    model = _load_model(args.model)
    against = None
    if args.against is not None:
        against = _load_model(args.against, "--against model file")
        against = against if against.version else replace(against, version=str(args.against))
    responses = order = None
    if args.answers is not None:
        prepared = prepare_rows(_read_rows(args.answers, args, messages))
        messages.bad_rows(args.answers, prepared.report)
        responses, order = prepared.responses, prepared.answered_at
    doc = build_report(model, responses, order=order, serving_model=against, title=args.title,
                       config=ReportConfig(max_items=args.max_items))
    text = render_html(doc)
    args.output.write_text(text, encoding="utf-8")
    messages.info(f"wrote {args.output}: report of {len(doc['items'])} of {model.n_items} items"
                  + (f", {doc['answers']['n_answers']} answers" if "answers" in doc else "")
                  + f" ({len(text.encode()) / 1e6:.1f} MB)")
    return 0


def _exposure(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from irt.engine.exposure_fit import exposure_section, sympson_hetter

    check_output(args.output, {"model file": args.model})
    messages = Messages(args.quiet)
    model = _load_model(args.model)
    result = sympson_hetter(model, r_max=args.r_max, test_length=args.test_length,
                            n_examinees=args.examinees, max_iterations=args.iterations,
                            tolerance=args.tolerance, seed=args.seed)
    section = exposure_section(model, result, r_max=args.r_max, test_length=args.test_length,
                               n_examinees=args.examinees, seed=args.seed)
    out = replace(model, exposure=section, _cache={})
    args.output.write_text(out.to_json(), encoding="utf-8")
    messages.info(f"wrote {args.output}: Sympson-Hetter parameters of {model.n_items} items, "
                  f"{int((result.k < 1).sum())} below 1 (smallest {result.k.min():.3f}); largest "
                  f"exposure {result.max_exposure[0]:.3f} without control, "
                  f"{result.max_exposure[-1]:.3f} after {len(result.max_exposure)} "
                  f"iteration(s) ({'met' if result.converged else 'NOT met'}: r_max "
                  f"{args.r_max})")
    return 0 if result.converged else 3


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 = bad input, 3 = fit (or exposure's
    simulation) did not converge, 141 = stdout closed early)."""
    args = build_parser().parse_args(argv)
    handlers = {"fit": _fit, "score": _score, "evaluate": _evaluate, "demo": _demo,
                "diagnose": _diagnose, "compare": _compare, "explain": _explain,
                "fairness": _fairness, "report": _report, "exposure": _exposure}
    return run_guarded(handlers[args.command], args)
