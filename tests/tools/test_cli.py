"""The data scientists' CLI: ``python -m irt fit|score|demo`` end to end on real files."""

from __future__ import annotations

import csv
import json
import math
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


def _write_split(folder: Path, item_column: str = "item_id") -> list[str]:
    """A train/test pair (students disjoint) in the ASSISTments layout; the common arguments."""
    sim = simulate(1200, 40, 20, seed=23)
    r = sim.responses
    order, indptr = r.by_student()
    for name, students in (("train.csv", range(0, 1000)), ("test.csv", range(1000, 1200))):
        with (folder / name).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["user_id", item_column, "correct", "seq"])
            for s in students:
                for t, k in enumerate(order[indptr[s]:indptr[s + 1]]):
                    w.writerow([f"u{s}", r.item_ids[r.item[k]], int(r.correct[k]), t])
    return [str(folder / "train.csv"), str(folder / "test.csv"), "--student-column",
            "user_id", "--order-column", "seq"]


def test_evaluate_reads_another_item_column(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = _write_split(tmp_path / "a")
    renamed = _write_split(tmp_path / "b", item_column="problem_id")
    assert main(["evaluate", *plain, "--json"]) == 0
    want = json.loads(capsys.readouterr().out)
    assert main(["evaluate", *renamed, "--json"]) == 2  # no item_id column
    assert "item_id" in capsys.readouterr().err
    assert main(["evaluate", *renamed, "--item-column", "problem_id", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    for key in ("auc", "log_loss", "items_calibrated", "n_predictions"):
        assert got[key] == want[key], key


def test_evaluate_reports_convergence_in_text_and_json(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    common = _write_split(tmp_path)
    assert main(["evaluate", *common, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["fit_converged"] is True and row["converged"] is True
    assert 1 < row["fit_iterations"] < 500
    assert main(["evaluate", *common]) == 0
    out = capsys.readouterr()
    assert f"2PL EM: converged after {row['fit_iterations']} cycles" in out.out
    assert "did not converge" not in out.err
    # stopped at the cap: said in the text, on stderr and in the JSON
    assert main(["evaluate", *common, "--max-iter", "2"]) == 0
    out = capsys.readouterr()
    assert "2PL EM: NOT converged after 2 cycles" in out.out
    assert "warning: 2pl did not converge" in out.err
    assert main(["evaluate", *common, "--max-iter", "2", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["fit_converged"] is False and row["converged"] is False
    assert row["fit_iterations"] == 2


def test_evaluate_reports_an_undefined_auc_as_null_and_says_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every test answer right: the AUC is undefined. ``--json`` printed ``NaN`` (not JSON);
    it is null, as in ``compare --json``, and the text says why instead of ``nan``."""
    train, _, *columns = _write_split(tmp_path)
    right = tmp_path / "right.csv"
    right.write_text("user_id,item_id,correct,seq\n" + "".join(
        f"v{s},q{j},1,{j}\n" for s in range(3) for j in range(5)))
    capsys.readouterr()
    assert main(["evaluate", train, str(right), *columns, "--json", "-q"]) == 0
    out = capsys.readouterr().out

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    row = json.loads(out, parse_constant=refuse)
    assert row["auc"] is None and row["log_loss"] > 0 and row["n_predictions"] == 15
    assert main(["evaluate", train, str(right), *columns, "-q"]) == 0
    text = capsys.readouterr().out
    assert "  AUC -  log-loss 0." in text and "nan" not in text
    assert "AUC undefined: every test answer is right" in text


def test_evaluate_refuses_a_test_file_without_answers(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """A header-only TEST exited 0 with nan figures and numpy's RuntimeWarnings."""
    train, _, *columns = _write_split(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("user_id,item_id,correct,seq\n")
    capsys.readouterr()
    assert main(["evaluate", train, str(empty), *columns, "-q"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == f"error: {empty}: no test answers (the file has no answers)\n"
    empty.write_text("user_id,item_id,correct,seq\nu1,q1,maybe,1\n,q2,1,2\n")
    assert main(["evaluate", train, str(empty), *columns, "-q", "--lenient"]) == 2
    assert capsys.readouterr().err == (f"error: {empty}: no test answers (2 rows read, all "
                                       "invalid)\n")


def test_evaluate_refuses_test_students_that_are_training_students(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The help promises TEST's students are disjoint from TRAIN's; the same file twice gave
    an in-sample AUC of 0.96 with exit 0. Now an error saying how many students overlap."""
    train, test, *columns = _write_split(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", train, train, *columns, "-q"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith(f"error: {train}: 1000 of its 1000 students are also in {train}"
                              " (e.g. 'u0', 'u1', 'u10'); the test students must be disjoint")
    with open(test, "a") as f:  # one training student among the 200 test students
        f.write("u7,q3,1,99\n")
    assert main(["evaluate", train, test, *columns, "-q"]) == 2
    assert "1 of its 201 students are also in" in capsys.readouterr().err


def test_published_figures_only_for_the_published_split(tmp_path: Path) -> None:
    from irt.tools.cli import PUBLISHED_SPLIT, _is_published_split, _read_log

    common = _write_split(tmp_path)
    train = _read_log(Path(common[0]), "user_id", "seq")
    test = _read_log(Path(common[1]), "user_id", "seq")
    assert not _is_published_split(train[0], train[2], test[0], test[2])
    assist = ROOT.parent / "shared" / "datasets" / "assistments2009_lpp"
    if not (assist / "assistments2009_lpp_train.csv.gz").exists():
        pytest.skip(f"{assist} absent: the positive case needs the published split")
    train = _read_log(assist / "assistments2009_lpp_train.csv.gz", "user_id", "seq")
    test = _read_log(assist / "assistments2009_lpp_test.csv.gz", "user_id", "seq")
    assert _is_published_split(train[0], train[2], test[0], test[2])
    assert PUBLISHED_SPLIT[0] == len(train[0]) and PUBLISHED_SPLIT[3] == len(test[0])
    # the same split with one test answer flipped is not it
    flipped = test[2].copy()
    flipped[0] = 1 - flipped[0]
    assert not _is_published_split(train[0], train[2], test[0], flipped)


# --------------------------------------------------------------------------- skill column
def _write_skilled(path: Path) -> tuple[object, tuple[str, ...]]:
    """A sparse log with a ``Skill`` column (simulate_sparse's map, ids ``k<index>``)."""
    from irt.engine.simulate import simulate_sparse

    sim = simulate_sparse(6000, bank=3000, n_skills=12, seed=5)
    r = sim.responses
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "item_id", "correct", "Skill"])
        for s, j, y in zip(r.student, r.item, r.correct, strict=True):
            w.writerow([r.student_ids[s], r.item_ids[j], int(y), f"k{sim.item_skill[j]}"])
    return sim, tuple(f"k{k}" for k in range(12))


def test_fit_with_a_skill_column_uses_the_skill_prior(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """``--skill-column`` gives the engine's fit with the log's item -> skill map (the same
    parameters), a ``skills`` section, and items below ``--min-answers-per-item`` listed as
    provisional with their skill; ``--no-skill-prior`` keeps the population prior."""
    from irt.engine.calibrate import FitConfig, fit

    answers = tmp_path / "answers.csv"
    sim, ids = _write_skilled(answers)
    out = tmp_path / "model.json"
    assert main(["fit", str(answers), "-o", str(out), "--skill-column", "skill",
                 "--min-answers-per-student", "1", "--no-se"]) == 0
    assert "skill prior on (12 skills)" in capsys.readouterr().err
    model = load_model(out.read_text())
    want = fit(sim.responses, FitConfig(compute_se=False), sim.item_skill, ids).model
    assert model.fit["skill_prior"] is True and model.priors["skill_difficulty_sd"] == 1.0
    np.testing.assert_allclose(model.b[model.positions(list(want.item_ids))], want.b,
                               atol=1e-6)
    assert model.skills["parameters"].keys() == want.skills["parameters"].keys()
    for skill, spec in want.skills["parameters"].items():
        assert model.skills["parameters"][skill] == pytest.approx(spec, abs=1e-6), skill
    skill_of = {i: f"k{k}" for i, k in zip(sim.responses.item_ids, sim.item_skill, strict=True)}
    assert model.skills["item_skills"] == {i: skill_of[i] for i in model.item_ids}
    # a minimum of 3 answers: the rarer items are provisional, with their skill
    assert main(["fit", str(answers), "-o", str(out), "--skill-column", "Skill",
                 "--min-answers-per-student", "1", "--min-answers-per-item", "3",
                 "--no-se"]) == 0
    model = load_model(out.read_text())
    counts = np.bincount(sim.responses.item)
    rare = {sim.responses.item_ids[j] for j in np.flatnonzero(counts < 3)}
    assert len(rare) > 1000
    assert model.skills["provisional_items"] == {i: skill_of[i] for i in rare}
    # switched off: the population prior, the skills still described
    assert main(["fit", str(answers), "-o", str(out), "--skill-column", "skill",
                 "--min-answers-per-student", "1", "--no-se", "--no-skill-prior"]) == 0
    assert "skill prior off (12 skills)" in capsys.readouterr().err
    off = load_model(out.read_text())
    plain = fit(sim.responses, FitConfig(compute_se=False)).model
    assert off.fit["skill_prior"] is False and off.skills["parameters"]
    np.testing.assert_allclose(off.b[off.positions(list(plain.item_ids))], plain.b, atol=1e-6)
    # a column the file lacks: a CSV error naming it
    assert main(["fit", str(answers), "-o", str(out), "--skill-column", "topic"]) == 2
    assert "'topic'" in capsys.readouterr().err


def test_evaluate_calibrates_with_the_skill_prior_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = _write_split(tmp_path)
    for name in ("train.csv", "test.csv"):  # add a skill column: three skills by item number
        rows = list(csv.reader((tmp_path / name).open()))
        with (tmp_path / name).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow([*rows[0], "skill_id"])
            w.writerows([*row, f"s{int(row[1][1:]) % 3}"] for row in rows[1:])
    assert main(["evaluate", *common, "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["skill_prior"] is False
    assert main(["evaluate", *common, "--skill-column", "skill_id", "--json"]) == 0
    skilled = json.loads(capsys.readouterr().out)
    assert skilled["skill_prior"] is True and skilled["converged"] is True
    assert skilled["log_loss"] != plain["log_loss"]
    assert main(["evaluate", *common, "--skill-column", "skill_id"]) == 0
    assert "skill prior on (3 skills)" in capsys.readouterr().out
    assert main(["evaluate", *common, "--skill-column", "skill_id", "--no-skill-prior",
                 "--json"]) == 0
    off = json.loads(capsys.readouterr().out)
    assert off["skill_prior"] is False and off["log_loss"] == plain["log_loss"]


def test_score_offers_ml_and_wle_as_the_engine_computes_them(tmp_path: Path) -> None:
    """``score --method ML|WLE`` writes :mod:`irt.engine.scoring`'s estimates (mirt's rules:
    ML is +/-inf for an all-right or all-wrong student, WLE is finite)."""
    from irt.engine.scoring import ml_batch, wle_batch

    answers = tmp_path / "answers.csv"
    _write_answers(answers, n_students=300)
    items = simulate(300, 30, 20, seed=11).responses.item_ids
    with answers.open("a", newline="") as f:  # a student who got ten items right
        csv.writer(f).writerows(["ace", i, "true", 1_800_000_000 + k]
                                for k, i in enumerate(items[:10]))
    model_path = tmp_path / "model.json"
    assert main(["fit", str(answers), "-o", str(model_path), "-q"]) == 0
    model = load_model(model_path.read_text())
    rows = {}
    for method in ("EAP", "ML", "WLE"):
        out = tmp_path / f"{method}.csv"
        assert main(["score", str(model_path), str(answers), "--method", method, "-o",
                     str(out), "-q"]) == 0
        rows[method] = {r["student_id"]: float(r["theta"]) for r in csv.DictReader(out.open())}
    assert rows["ML"]["ace"] == math.inf
    assert math.isfinite(rows["WLE"]["ace"]) and math.isfinite(rows["EAP"]["ace"])
    # the same numbers as the engine's, student by student
    lines = list(csv.DictReader(answers.open()))
    for sid in ("s0", "s1", "s2"):
        mine = [r for r in lines if r["student_id"] == sid]
        pos = model.positions([r["item_id"] for r in mine])
        y = np.array([r["correct"] == "true" for r in mine], dtype=np.int8)
        zero = np.zeros(len(mine), dtype=np.int64)
        for method, scorer in (("ML", ml_batch), ("WLE", wle_batch)):
            theta, _ = scorer(model, zero, pos, y, 1)
            assert rows[method][sid] == pytest.approx(float(theta[0]), abs=1e-6), method
        assert rows["ML"][sid] != pytest.approx(rows["WLE"][sid], abs=1e-3)


def test_counts_in_the_reports_are_singular_for_one() -> None:
    """'1 student', '1 skill': the reports said '1 students' and '(1 skills)'."""
    from irt.tools.cli import _count

    assert _count(1, "test student") == "1 test student"
    assert _count(0, "skill") == "0 skills" and _count(12, "skill") == "12 skills"
