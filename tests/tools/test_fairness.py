"""DIF (``irt.tools.fairness``, Mantel-Haenszel with ETS classes): found where it was planted,
not elsewhere, and on real data (VerbAgg, by gender) the pattern the literature reports."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from irt.engine.calibrate import FitConfig, fit
from irt.engine.model import irf
from irt.engine.responses import Responses
from irt.tools.fairness import mantel_haenszel

ROOT = Path(__file__).resolve().parents[2]


def two_groups(shift: float = 1.0, n: int = 3000, items: int = 20, seed: int = 1):
    """Two groups of the same ability distribution; item q3 harder by ``shift`` for the
    focal group."""
    rng = np.random.default_rng(seed)
    a, b = rng.lognormal(0, 0.3, items), rng.normal(0, 1, items)
    theta = rng.normal(0, 1, 2 * n)
    focal = np.arange(2 * n) >= n
    bb = np.where(focal[:, None] & (np.arange(items) == 3)[None, :], b + shift, b)
    y = (rng.random((2 * n, items)) < irf(theta[:, None], a, bb, 0.0)).astype(np.int8)
    s, j = np.nonzero(np.ones_like(y))
    ids = [f"s{i}" for i in range(2 * n)]
    responses = Responses.from_arrays(s, j, y[s, j], ids, [f"q{k}" for k in range(items)])
    return responses, {sid: ("focal" if f else "ref") for sid, f in zip(ids, focal, strict=True)}


def test_planted_dif_is_found_and_nothing_else() -> None:
    responses, groups = two_groups()
    model = fit(responses, FitConfig(compute_se=False)).model
    results = {r["item_id"]: r for r in mantel_haenszel(model, responses, groups, "ref",
                                                        "focal")}
    assert results["q3"]["ets"] == "C" and results["q3"]["delta"] < -1.5  # harder for focal
    assert [k for k, r in results.items() if r["ets"] != "A"] == ["q3"]
    none, _ = two_groups(shift=0.0)
    clean = mantel_haenszel(fit(none, FitConfig(compute_se=False)).model, none, groups, "ref",
                            "focal")
    assert all(r["ets"] == "A" for r in clean)


def test_small_groups_are_not_classified() -> None:
    responses, groups = two_groups(n=30)
    model = fit(responses, FitConfig(compute_se=False, min_answers_per_item=1)).model
    results = mantel_haenszel(model, responses, groups, "ref", "focal", min_per_group=50)
    assert all(r["ets"] is None for r in results)


@pytest.fixture(scope="module")
def verbagg():
    with (ROOT / "tests" / "data" / "verbagg_wide.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    items = [k for k in rows[0] if k not in ("id", "gender")]
    s, j = np.divmod(np.arange(len(rows) * len(items)), len(items))
    y = np.array([int(rows[a][items[b]]) for a, b in zip(s.tolist(), j.tolist(),
                                                         strict=True)])
    responses = Responses.from_arrays(s, j, y, [r["id"] for r in rows], items)
    return responses, {r["id"]: r["gender"] for r in rows}


def test_verbal_aggression_dif_by_gender(verbagg) -> None:
    """De Boeck & Wilson (2004): at equal verbal aggression, men more often say they would
    actually curse or scold ('Do' items), women that they would want to. MH on a 2PL, women
    as reference (243), men as focal (73), 5 ability strata."""
    responses, groups = verbagg
    model = fit(responses, FitConfig(compute_se=False)).model
    results = {r["item_id"]: r for r in mantel_haenszel(model, responses, groups, "F", "M",
                                                        strata=5, min_per_group=30)}
    flagged = {k: r for k, r in results.items() if r["ets"] in ("B", "C")}
    assert {"S2DoCurse", "S2DoScold", "S2WantShout"} <= set(flagged)
    assert all(r["delta"] > 0 for k, r in flagged.items() if "Do" in k)  # easier for men
    assert results["S2WantShout"]["delta"] < -1.5 and results["S2WantShout"]["ets"] == "C"
    assert sum(r["ets"] == "A" for r in results.values()) >= 18


def test_command_line(tmp_path) -> None:
    responses, groups = two_groups(n=600)
    answers, group_file = tmp_path / "answers.csv", tmp_path / "groups.csv"
    with answers.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "item_id", "correct"])
        for s, j, y in zip(responses.student, responses.item, responses.correct, strict=True):
            w.writerow([responses.student_ids[s], responses.item_ids[j], int(y)])
    with group_file.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "group"])
        w.writerows(groups.items())
    run = subprocess.run([sys.executable, "-m", "irt.tools.fairness", str(answers), str(group_file),
                          "--reference", "ref", "--focal", "focal"], capture_output=True,
                         text=True, timeout=120, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "shared")})
    assert run.returncode == 0, run.stderr
    first = run.stdout.splitlines()[1].split()
    assert first[0] == "q3" and first[-1] in ("B", "C")
    assert "ETS classes:" in run.stdout
