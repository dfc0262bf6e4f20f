"""Write the five AKT folds of ASSISTments 2009 as TRAIN/TEST files for ``irt evaluate``
(``make evaluate-akt``).

The source is ``../shared/datasets/assistments2009_akt/assistments2009_akt_long.csv.gz``
(its ``SOURCE.md``: the AKT repository's ``assist2009_pid`` split, original user and problem
ids, a ``fold`` column 1-5, 0 for one user found only in the training files).  For fold
``k``: TEST = the users with ``fold == k``, TRAIN = every other user (AKT's validation fold
included: ``irt evaluate`` does its own validation split when it needs one).  Rows with
``repeat_of_prev == 1`` - the multi-skill copies of the answer before them, same user and
problem - are dropped, so each answer counts once.  Nothing is written, and the exit status
is 0, when the source is absent.

    python scripts/akt_folds.py [--source PATH] [--out build/akt]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "datasets" / "assistments2009_akt" / \
    "assistments2009_akt_long.csv.gz"
FOLDS = ("1", "2", "3", "4", "5")


def write_folds(source: Path, out: Path) -> dict[str, tuple[int, int]]:
    """Write ``train_f{k}.csv.gz`` and ``test_f{k}.csv.gz`` for each fold into ``out``.

    Returns:
        ``{fold: (train rows, test rows)}``.

    Raises:
        ValueError: if the source lacks the ``fold`` or ``repeat_of_prev`` column, or has a
            fold outside 0-5.
    """
    with gzip.open(source, "rt", newline="") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        missing = {"fold", "repeat_of_prev"} - set(columns)
        if missing:
            raise ValueError(f"{source}: no column {', '.join(sorted(missing))}")
        rows = [r for r in reader if r["repeat_of_prev"] != "1"]
    bad = {r["fold"] for r in rows} - {"0", *FOLDS}
    if bad:
        raise ValueError(f"{source}: fold values {sorted(bad)} outside 0-5")
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for k in FOLDS:
        parts = {"train": [r for r in rows if r["fold"] != k],
                 "test": [r for r in rows if r["fold"] == k]}
        for name, part in parts.items():
            with gzip.open(out / f"{name}_f{k}.csv.gz", "wt", newline="") as f:
                writer = csv.DictWriter(f, columns)
                writer.writeheader()
                writer.writerows(part)
        counts[k] = (len(parts["train"]), len(parts["test"]))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "akt")
    args = parser.parse_args(argv)
    if not args.source.exists():
        print(f"skipped: {args.source} not found")
        return 0
    for k, (train, test) in write_folds(args.source, args.out).items():
        print(f"fold {k}: {train} training rows, {test} test rows -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
