"""The data scientists' CLI: ``python -m irt fit|score|demo`` end to end on real files."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from irt.engine.artifact import load_model
from irt.engine.simulate import simulate
from irt.tools.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _write_answers(path: Path, n_students: int = 1500, n_items: int = 30, k: int = 20) -> None:
    sim = simulate(n_students, n_items, k, seed=11)
    r = sim.responses
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "item_id", "correct", "answered_at"])
        for n, (s, j, y) in enumerate(zip(r.student, r.item, r.correct, strict=True)):
            w.writerow([r.student_ids[s], r.item_ids[j], "true" if y else "false",
                        1_700_000_000 + n])


def test_fit_then_score_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answers = tmp_path / "answers.csv"
    _write_answers(answers)
    model_path = tmp_path / "model.json"
    assert main(["fit", str(answers), "--model", "2pl", "-o", str(model_path)]) == 0
    model = load_model(model_path.read_text())
    assert model.model_type == "2pl"
    assert model.n_items == 30
    assert model.fit["converged"] is True
    assert model.data_summary["preprocessing"]["rows_out"] == 1500 * 20
    scores = tmp_path / "scores.csv"
    assert main(["score", str(model_path), str(answers), "-o", str(scores)]) == 0
    rows = list(csv.DictReader(scores.open()))
    assert len(rows) == 1500
    assert set(rows[0]) == {"student_id", "theta", "se", "n_answers"}
    theta = np.array([float(r["theta"]) for r in rows])
    assert np.all(np.isfinite(theta))
    assert all(r["n_answers"] == "20" for r in rows)
    # Scores carry signal: they correlate with the true abilities used to simulate.
    truth = simulate(1500, 30, 20, seed=11).theta
    ids = [int(r["student_id"][1:]) for r in rows]
    assert np.corrcoef(theta, truth[ids])[0, 1] > 0.8


def test_bad_csv_names_line_and_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("student_id,item_id,correct\ns1,q1,1\ns1,q2,maybe\n")
    assert main(["fit", str(bad), "-o", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "correct" in err and "maybe" in err
    assert not (tmp_path / "m.json").exists()


def test_missing_column_and_invalid_model(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("student,item_id,correct\ns1,q1,1\n")
    assert main(["fit", str(bad), "-o", str(tmp_path / "m.json")]) == 2
    assert "student_id" in capsys.readouterr().err
    model = tmp_path / "model.json"
    model.write_text(json.dumps({"schema_version": 1, "model_type": "9pl"}))
    good = tmp_path / "good.csv"
    good.write_text("student_id,item_id,correct\ns1,q1,1\n")
    assert main(["score", str(model), str(good)]) == 2
    assert "model_type" in capsys.readouterr().err


def test_help_documents_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--model", "--min-answers-per-item", "--prior-c", "--no-priors",
                   "student_id,item_id,correct[,answered_at]"):
        assert option in out


def test_demo_runs_as_a_module() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "shared"))
    done = subprocess.run([sys.executable, "-m", "irt", "demo"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "converged=True" in done.stdout
    assert "RMSE(a)" in done.stdout
