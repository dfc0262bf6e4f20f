"""``python -m irt diagnose`` and ``python -m irt compare`` end to end: a CSV in, the report
out, with models calibrated by ``python -m irt fit --no-priors`` (maximum likelihood, as R
mirt) on LSAT7, against mirt 1.45.1 (``tests/data/mirt_diagnostics_reference.json``).
Tolerances are those of our ML fits (see ``tests/engine/test_diagnostics.py``: estimates
within 3.4e-3 of mirt's)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from mirt_reference import dense, ref

from irt.engine.simulate import simulate
from irt.tools.cli import main


def write_answers(path: Path, X: np.ndarray, names: list[str]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "item_id", "correct"])
        for s, row in enumerate(X):
            for j, y in enumerate(row):
                if not np.isnan(y):
                    w.writerow([f"s{s}", names[j], int(y)])
    return path


@pytest.fixture(scope="module")
def lsat7(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lsat7")
    answers = write_answers(root / "lsat7.csv", dense("lsat7"), ref("lsat7")["item_names"])
    out = {"answers": answers}
    for model in ("rasch", "2pl"):
        out[model] = root / f"{model}.json"
        assert main(["fit", str(answers), "--model", model, "--no-priors",
                     "--quadrature-points", "61", "-o", str(out[model])]) == 0
    return out


def test_diagnose_json_on_lsat7(lsat7: dict[str, Path], capsys: pytest.CaptureFixture[str]
                                ) -> None:
    capsys.readouterr()
    assert main(["diagnose", str(lsat7["2pl"]), str(lsat7["answers"]), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    want = ref("lsat7", "2PL")
    g = doc["global_fit"]
    assert g["limited_information"] is True and g["reason"] is None
    assert g["m2"]["m2"] == pytest.approx(want["M2"]["M2"][0], rel=1e-3)
    assert g["m2"]["df"] == 5
    assert g["log_likelihood"] == pytest.approx(want["fit"]["logLik"], abs=0.01)
    sx2 = [row["s_x2"] for row in doc["item_fit"]["items"]]
    np.testing.assert_allclose(sx2, want["S_X2"]["S_X2"], rtol=2e-2)
    assert [row["item_id"] for row in doc["item_fit"]["items"]] == ref("lsat7")["item_names"]
    assert doc["reliability"]["marginal"] == pytest.approx(
        want["reliability"]["marginal_rxx"], rel=3e-3)
    assert doc["person_fit"]["summary"]["n_summarised"] == 1000
    assert len(doc["local_dependence"]["top_pairs"]) == 10
    assert doc["design"]["complete"] is True and doc["messages"] == []


def test_diagnose_text_on_lsat7(lsat7: dict[str, Path], capsys: pytest.CaptureFixture[str]
                                ) -> None:
    capsys.readouterr()
    assert main(["diagnose", str(lsat7["rasch"]), str(lsat7["answers"])]) == 0
    text = capsys.readouterr().out
    assert text.startswith("rasch model; 5000 answers by 1000 students on 5 items (complete")
    assert "M2 = 23.1" in text and "df = 9" in text  # mirt: 23.1729, df 9
    for item in ref("lsat7")["item_names"]:
        assert f"\n  {item} " in text
    assert "S-X2" in text and "top pairs by ld x2" in text


def test_compare_on_lsat7_reproduces_mirt_anova(lsat7: dict[str, Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    want = ref("lsat7")["anova_Rasch_vs_2PL"]
    capsys.readouterr()
    assert main(["compare", str(lsat7["2pl"]), str(lsat7["rasch"]), str(lsat7["answers"]),
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["lrt"]["small"] == "rasch" and doc["lrt"]["df"] == want["df"][1]
    assert doc["lrt"]["x2"] == pytest.approx(want["X2"][1], abs=0.01)
    aic = [m["criteria"]["aic"] for m in doc["models"]]
    np.testing.assert_allclose(aic, [want["AIC"][1], want["AIC"][0]], atol=0.02)
    assert all(0.5 < m["online"]["auc"] < 1 and m["online"]["n_predictions"] == 5000
               for m in doc["models"])
    assert main(["compare", str(lsat7["rasch"]), str(lsat7["2pl"]), str(lsat7["answers"])]) == 0
    text = capsys.readouterr().out
    assert "likelihood-ratio test rasch vs 2pl: X2 = 12.1" in text


def test_diagnose_a_sparse_log_says_what_it_replaces(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    sim = simulate(500, 60, 15, seed=3)
    X = np.full((500, 60), np.nan)
    r = sim.responses
    X[r.student, r.item] = r.correct
    answers = write_answers(tmp_path / "sparse.csv", X, list(r.item_ids))
    model = tmp_path / "m.json"
    assert main(["fit", str(answers), "-o", str(model)]) == 0
    capsys.readouterr()
    assert main(["diagnose", str(model), str(answers)]) == 0
    text = capsys.readouterr().out
    assert "incomplete design, 25% of cells answered" in text
    assert "M2: not computed (design too sparse for a limited-information statistic" in text
    assert "note: S-X2 not computed" in text and "S-X2" not in text.split("item fit")[1].split(
        "\n")[1]
    assert "reliability: marginal -, empirical 0." in text
    assert main(["diagnose", str(model), str(answers), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["global_fit"]["m2"] is None and "AIC" in doc["global_fit"]["instead"]


def test_compare_rejects_an_invalid_model(lsat7: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["compare", str(lsat7["2pl"]), str(bad), str(lsat7["answers"])]) == 2
    assert f"error: {bad}: invalid model" in capsys.readouterr().err
    assert main(["diagnose", str(bad), str(lsat7["answers"])]) == 2


def test_one_student_leaves_m2_out_and_says_why(lsat7: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """M2 (and its RMSEA, which divides by N - 1) needs a population of students: with the
    answers of one, ``diagnose`` and ``report`` leave it out with the reason instead of
    failing on a division by zero."""
    one = write_answers(tmp_path / "one.csv", np.zeros((1, 5)), ref("lsat7")["item_names"])
    capsys.readouterr()
    assert main(["diagnose", str(lsat7["2pl"]), str(one), "--json", "-q"]) == 0
    g = json.loads(capsys.readouterr().out)["global_fit"]
    assert g["m2"] is None and g["reason"].startswith("too few students for M2: 1;")
    assert main(["diagnose", str(lsat7["2pl"]), str(one), "-q"]) == 0
    out = capsys.readouterr()
    assert "M2: not computed (too few students for M2: 1;" in out.out and out.err == ""
    page = tmp_path / "one.html"
    assert main(["report", str(lsat7["2pl"]), str(one), "-o", str(page), "-q"]) == 0
    assert page.stat().st_size > 0 and capsys.readouterr().err == ""
