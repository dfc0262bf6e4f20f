"""Differential item functioning (DIF): does an item favour one group of students over another
of the same ability? Mantel-Haenszel, with the ETS A/B/C classification.

    python -m irt.fairness ANSWERS.csv GROUPS.csv --reference F --focal M [--model model.json]
    python -m irt fairness ANSWERS.csv --group-column gender --reference F --focal M

``ANSWERS.csv``: ``student_id,item_id,correct[,answered_at]`` (as ``python -m irt fit``,
with the same column options); ``GROUPS.csv``: ``student_id,group`` (the student column as
named by ``--student-column``, the group column by ``--group-column``), or without it the
group column of the answers file itself. Without ``--model`` a 2PL is fitted on the answers.
The LMS answer log carries no group attribute (by design), so this is a procedure run by hand
on an export joined with one (ML Test Score, model 7; ``docs/ml-test-score.md``).

Method: students are matched on ability - the EAP estimate from all their answers, cut into
``strata`` quantile bins (a total score is no match on sparse logs, where students answer
different items). For each item and stratum ``k``, the 2x2 table reference/focal x
right/wrong gives the Mantel-Haenszel common odds ratio
``alpha = sum(A_k D_k / N_k) / sum(B_k C_k / N_k)`` (``A``, ``B``: reference right, wrong;
``C``, ``D``: focal right, wrong), ``MH D-DIF = -2.35 ln alpha`` (negative: the item is
harder for the focal group at equal ability) and the continuity-corrected MH chi-square.
ETS classes: **A** negligible (``|D| < 1`` or not significant at 5 %), **C** large
(``|D| >= 1.5`` and significantly beyond 1), **B** the rest.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from irt.engine.ability import eap_batch
from irt.engine.model import ItemModel
from irt.engine.responses import Responses
from irt.errors import CSVFormatError, ModelFormatError
from irt.tools.common import (
    ANSWERS_FORMAT,
    Messages,
    add_answers_arguments,
    add_quiet_argument,
    cannot_read,
    int_in,
    open_text,
    read_answers,
    read_bytes,
    require_answers,
    run_guarded,
)

#: The most ability strata ``--strata`` accepts.
MAX_STRATA = 1000


def _chi2_sf_1df(x: float) -> float:
    """P(chi-square with 1 df > x)."""
    return math.erfc(math.sqrt(max(x, 0.0) / 2.0))


def mantel_haenszel(model: ItemModel, responses: Responses, groups: Mapping[str, str],
                    reference: str, focal: str, strata: int = 10, min_per_group: int = 50
                    ) -> list[dict[str, Any]]:
    """MH DIF of every item of ``model`` answered by both groups.

    Args:
        model: calibrated items (the ability scale students are matched on).
        responses: the answers.
        groups: ``student_id -> group``; students in neither group are ignored.
        reference, focal: the two groups compared.
        strata: ability strata (quantile bins of the EAP estimates of both groups).
        min_per_group: items with fewer answers from either group are reported unclassified.

    Returns:
        One dict per item: ``item_id``, ``n_reference``, ``n_focal``, ``alpha``, ``delta``
        (MH D-DIF), ``chi2``, ``p_value``, ``ets`` (A/B/C, or ``None`` when unclassified).

    Raises:
        ValueError: ``strata`` is below 1, ``reference`` and ``focal`` are the same group, or
            no student of one of them answered an item of the model (a misspelt group, a
            wrong column).
    """
    if strata < 1:
        raise ValueError(f"strata must be at least 1, got {strata}")
    if reference == focal:
        raise ValueError(f"the reference and focal groups are the same: {reference!r}")
    label = np.array([{reference: 0, focal: 1}.get(groups.get(s, ""), -1)
                      for s in responses.student_ids])
    pos = model.positions(list(responses.item_ids))[responses.item]
    known = pos >= 0
    answered = np.zeros(len(responses.student_ids), dtype=bool)
    answered[responses.student[known]] = True
    for name, code in ((reference, 0), (focal, 1)):
        if not np.any(answered & (label == code)):
            found = Counter(groups.get(s) for s in responses.student_ids)
            found.pop(None, None)
            raise ValueError(
                f"no student of the {'reference' if code == 0 else 'focal'} group {name!r} "
                "answered an item of the model; groups of the answering students: "
                + (", ".join(f"{g!r} ({n})" for g, n in found.most_common(10)) or "none"))
    theta, _ = eap_batch(model, responses.student[known], pos[known],
                         responses.correct[known], len(responses.student_ids))
    in_groups = label >= 0
    edges = np.quantile(theta[in_groups], np.linspace(0, 1, strata + 1)[1:-1])
    stratum = np.searchsorted(edges, theta, side="right")
    rows = known & (label[responses.student] >= 0)
    s, j = responses.student[rows], pos[rows]
    g, y, k = label[s], responses.correct[rows].astype(np.int64), stratum[s]
    # counts[item, stratum, group, correct]
    counts = np.zeros((model.n_items, strata, 2, 2))
    np.add.at(counts, (j, k, g, y), 1.0)
    out = []
    for item in range(model.n_items):
        t = counts[item]
        n_ref, n_foc = int(t[:, 0].sum()), int(t[:, 1].sum())
        entry: dict[str, Any] = {"item_id": model.item_ids[item], "n_reference": n_ref,
                                 "n_focal": n_foc, "alpha": None, "delta": None, "chi2": None,
                                 "p_value": None, "ets": None}
        if n_ref < min_per_group or n_foc < min_per_group:
            out.append(entry)
            continue
        a, b = t[:, 0, 1], t[:, 0, 0]  # reference right, wrong
        c, d = t[:, 1, 1], t[:, 1, 0]  # focal right, wrong
        n = a + b + c + d
        use = n > 1
        a, b, c, d, n = a[use], b[use], c[use], d[use], n[use]
        num, den = float(np.sum(a * d / n)), float(np.sum(b * c / n))
        if num == 0 or den == 0:
            out.append(entry)
            continue
        alpha = num / den
        delta = -2.35 * math.log(alpha)
        m1, m0, n_r, n_f = a + c, b + d, a + b, c + d
        expected = float(np.sum(n_r * m1 / n))
        var = float(np.sum(n_r * n_f * m1 * m0 / (n * n * (n - 1))))
        chi2 = (abs(float(a.sum()) - expected) - 0.5) ** 2 / var if var > 0 else 0.0
        p_value = _chi2_sf_1df(chi2)
        # ETS: C needs |D| >= 1.5 and |D| significantly above 1 (a one-sided test on the
        # log odds ratio, SE by the Robins-Breslow-Greenland formula).
        se = _rbg_se(a, b, c, d, n) * 2.35
        if abs(delta) < 1.0 or p_value >= 0.05:
            ets = "A"
        elif abs(delta) >= 1.5 and (abs(delta) - 1.0) / se > 1.645:
            ets = "C"
        else:
            ets = "B"
        entry.update(alpha=alpha, delta=delta, chi2=chi2, p_value=p_value, ets=ets)
        out.append(entry)
    return out


def _rbg_se(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, n: np.ndarray
            ) -> float:
    """Robins-Breslow-Greenland standard error of ln(alpha_MH)."""
    p, q = (a + d) / n, (b + c) / n
    r, s = a * d / n, b * c / n
    sr, ss = r.sum(), s.sum()
    var = (np.sum(p * r) / (2 * sr ** 2) + np.sum(p * s + q * r) / (2 * sr * ss)
           + np.sum(q * s) / (2 * ss ** 2))
    return float(math.sqrt(var))


DESCRIPTION = __doc__.split("\n\n")[0]
EPILOG = ANSWERS_FORMAT + """\
Groups: GROUPS.csv (student column, group column), or --group-column of the answers file.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command line's arguments (``python -m irt.fairness`` and ``python -m irt
    fairness``)."""
    parser.add_argument("answers", type=Path, help="answers CSV")
    parser.add_argument("groups", type=Path, nargs="?",
                        help="CSV of each student's group: the student column and "
                        "--group-column (default: --group-column of the answers file)")
    parser.add_argument("--group-column", default="group", metavar="NAME",
                        help="the group column (default group)")
    parser.add_argument("--reference", required=True, help="the reference group")
    parser.add_argument("--focal", required=True, help="the focal group")
    parser.add_argument("--model", type=Path, help="model.json (default: fit a 2PL)")
    parser.add_argument("--strata", type=int_in(1, MAX_STRATA), default=10,
                        help="ability strata: quantile bins of the students' EAP abilities "
                        f"(default %(default)s, at most {MAX_STRATA})")
    add_answers_arguments(parser)
    add_quiet_argument(parser)


def _groups_of_file(path: Path, student_column: str, group_column: str) -> dict[str, str]:
    """``student_id -> group`` of a groups CSV (plain or gzip)."""
    with open_text(path) as f:
        reader = csv.reader(f)
        header = [h.strip().lstrip("\ufeff").strip().lower() for h in next(reader, [])]
        wanted = (student_column.strip().lower(), group_column.strip().lower())
        for name, option in zip(wanted, ("--student-column", "--group-column"), strict=True):
            if name not in header:
                raise CSVFormatError(f"missing column {name!r} in header (got "
                                     f"{', '.join(header)}); name it with {option}", 1,
                                     str(path))
        s, g = header.index(wanted[0]), header.index(wanted[1])
        groups: dict[str, str] = {}
        for fields in reader:
            if len(fields) > max(s, g) and fields[s].strip():
                groups[fields[s].strip()] = fields[g].strip()
    return groups


def _groups_of_rows(rows: list[dict], key: str, path: Path) -> dict[str, str]:
    """``student_id -> group`` from the group column of the answers rows; a student with
    two different groups is an error."""
    groups: dict[str, str] = {}
    for row in rows:
        student, group = (row["student_id"] or "").strip(), (row[key] or "").strip()
        if not student or not group:
            continue
        seen = groups.setdefault(student, group)
        if seen != group:
            raise ValueError(f"{path}: student {student!r} is in two groups of column "
                             f"{key!r}: {seen!r} and {group!r}")
    return groups


def run(args: argparse.Namespace) -> int:
    """Run the parsed command line; the exit status."""
    from irt.engine.artifact import load_model
    from irt.engine.calibrate import FitConfig, fit
    from irt.engine.preprocess import prepare_rows

    if args.reference == args.focal:  # before reading and fitting
        raise ValueError(f"--reference and --focal are the same group: {args.reference!r}")
    messages = Messages(args.quiet)
    key = args.group_column.strip().lower()
    rows = read_answers(args.answers, args, () if args.groups else (key,),
                        ("--group-column",))
    prepared = prepare_rows(rows)
    messages.bad_rows(args.answers, prepared.report)
    require_answers(args.answers, prepared.report, "no answers to examine")
    responses = prepared.responses
    if args.groups:
        try:
            groups = _groups_of_file(args.groups, args.student_column, args.group_column)
        except OSError as exc:
            raise cannot_read("groups file", args.groups, exc) from None
    else:
        groups = _groups_of_rows(rows, key, args.answers)
    if args.model:
        content = read_bytes(args.model, "model file")
        try:
            model = load_model(content)
        except ModelFormatError as exc:
            raise ValueError(f"{args.model}: invalid model: {exc}") from None
    else:
        model = fit(responses, FitConfig(compute_se=False),
                    progress=messages.em_progress("fit 2pl")).model
    results = mantel_haenszel(model, responses, groups, args.reference, args.focal,
                              args.strata)
    print(f"{'item':>16} {'n_ref':>6} {'n_foc':>6} {'MH D-DIF':>9} {'p':>8}  ETS")
    for r in sorted(results, key=lambda r: -abs(r["delta"] or 0.0)):
        delta = "-" if r["delta"] is None else f"{r['delta']:+.2f}"
        p_value = "-" if r["p_value"] is None else f"{r['p_value']:.4f}"
        print(f"{r['item_id']:>16} {r['n_reference']:>6} {r['n_focal']:>6} {delta:>9} "
              f"{p_value:>8}  {r['ets'] or '-'}")
    counts = {c: sum(r["ets"] == c for r in results) for c in "ABC"}
    unclassified = sum(r["ets"] is None for r in results)
    print(f"ETS classes: {counts}, unclassified (too few answers in a group): {unclassified} "
          f"(negative D-DIF: harder for {args.focal} at equal ability)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m irt.fairness", description=DESCRIPTION,
                                     epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
