"""``scripts/akt_folds.py`` (``make evaluate-akt``): the AKT folds of ASSISTments 2009 as
TRAIN/TEST files, on a small hand-made file with the source's columns."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("akt_folds", ROOT / "scripts" / "akt_folds.py")
assert _spec and _spec.loader
akt = importlib.util.module_from_spec(_spec)
sys.modules["akt_folds"] = akt
_spec.loader.exec_module(akt)

COLUMNS = ["user_id", "problem_id", "skill_idx", "skill_name", "correct", "seq", "fold",
           "repeat_of_prev"]


def _source(path: Path, folds: list[str]) -> Path:
    """One user per fold value, three answers each, the second a multi-skill copy."""
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for u, fold in enumerate(folds):
            w.writerow([f"u{u}", "p1", "1", "A", "1", "0", fold, "0"])
            w.writerow([f"u{u}", "p1", "2", "B", "1", "1", fold, "1"])  # the copy
            w.writerow([f"u{u}", "p2", "1", "A", "0", "2", fold, "0"])
    return path


def _read(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="") as f:
        return list(csv.DictReader(f))


def test_each_fold_tests_its_users_and_trains_on_all_others(tmp_path: Path) -> None:
    source = _source(tmp_path / "long.csv.gz", ["0", "1", "2", "3", "4", "5", "1"])
    counts = akt.write_folds(source, tmp_path / "out")
    for k in akt.FOLDS:
        test = _read(tmp_path / "out" / f"test_f{k}.csv.gz")
        train = _read(tmp_path / "out" / f"train_f{k}.csv.gz")
        assert {r["fold"] for r in test} == {k}
        assert k not in {r["fold"] for r in train} and "0" in {r["fold"] for r in train}
        assert {r["user_id"] for r in test}.isdisjoint({r["user_id"] for r in train})
        # the copies are gone: two answers per user, every column kept
        assert all(r["repeat_of_prev"] == "0" for r in test + train)
        assert list(test[0]) == COLUMNS
        assert counts[k] == (len(train), len(test))
    assert counts["1"] == (2 * 5, 2 * 2)  # fold 1 has two users


def test_a_source_without_the_fold_columns_or_with_a_bad_fold_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv.gz"
    with gzip.open(plain, "wt") as f:
        f.write("user_id,problem_id,correct\nu1,p1,1\n")
    with pytest.raises(ValueError, match="fold, repeat_of_prev"):
        akt.write_folds(plain, tmp_path / "out")
    with pytest.raises(ValueError, match="outside 0-5"):
        akt.write_folds(_source(tmp_path / "bad.csv.gz", ["1", "7"]), tmp_path / "out")


def test_an_absent_source_is_skipped(tmp_path: Path, capsys) -> None:
    assert akt.main(["--source", str(tmp_path / "none.csv.gz"),
                     "--out", str(tmp_path / "out")]) == 0
    assert "skipped" in capsys.readouterr().out and not (tmp_path / "out").exists()
