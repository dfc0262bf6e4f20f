"""The CLI as a data scientist meets it (#15): every subcommand reads the same answers files
(column options, gzip, the values ``fit`` accepts), says what it does on stderr (quiet with
``-q``), names the file in errors, and behaves in a pipe."""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from irt.engine.artifact import load_model
from irt.engine.simulate import simulate
from irt.tools import common
from irt.tools.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "shared")}
COLUMNS = ["--student-column", "User", "--item-column", "problem",
           "--correct-column", "IS_CORRECT", "--order-column", "seq"]


def _write(path: Path, rows: list[tuple], header: list[str], compress: bool = False) -> Path:
    opener = gzip.open if compress else open
    with opener(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same answers twice: the standard layout (numbers, epoch seconds) and a renamed,
    gzip-compressed one with yes/no-style values and ISO-8601 times in another order of
    columns; a test split of other students; a group per student; a 2PL of the answers."""
    root = tmp_path_factory.mktemp("cli_input")
    sim = simulate(1400, 25, 15, seed=5)
    r = sim.responses
    order, indptr = r.by_student()
    words = [("no", "yes"), ("False", "TRUE"), ("f", "T"), ("0", "1")]
    plain, renamed, groups = {}, {}, []
    for name, students in (("train", range(1200)), ("test", range(1200, 1400))):
        plain[name], renamed[name] = [], []
        for s in students:
            for t, k in enumerate(order[indptr[s]:indptr[s + 1]].tolist()):
                sid, item, y = r.student_ids[s], r.item_ids[r.item[k]], int(r.correct[k])
                plain[name].append((sid, item, y, 1_700_000_000 + 60 * t))
                renamed[name].append((f"x{t}", words[(s + t) % 4][y], item, sid,
                                      f"2023-11-14T22:{13 + t:02d}:20Z", "F" if s % 3 else "M"))
            groups.append((r.student_ids[s], "F" if s % 3 else "M"))
    out = {}
    for name in ("train", "test"):
        out[name] = _write(root / f"{name}.csv", plain[name],
                           ["student_id", "item_id", "correct", "answered_at"])
        # a .csv name for gzip data: recognised by its content
        out[f"{name}_renamed"] = _write(root / f"{name}_renamed.csv", renamed[name],
                                        ["session", "IS_CORRECT", "problem", "User", "seq",
                                         "gender"], compress=True)
    out["groups"] = _write(root / "groups.csv", groups, ["student_id", "group"])
    out["model"] = root / "model.json"
    assert main(["fit", str(out["train"]), "-o", str(out["model"]), "-q"]) == 0
    return out


def _untimed(doc):
    """A JSON report without its timings (which differ from run to run)."""
    if isinstance(doc, dict):
        return {k: _untimed(v) for k, v in doc.items()
                if not any(t in k for t in ("second", "timing", "us_per"))}
    if isinstance(doc, list):
        return [_untimed(v) for v in doc]
    return doc


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_subcommand_reading_answers_has_the_column_options() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    names = set(sub.choices)
    assert {"fit", "score", "evaluate", "diagnose", "compare", "explain", "fairness"} <= names
    for name, p in sub.choices.items():
        if name in ("demo", "exposure"):  # they read no answers file (a model, a simulation)
            options = set(p._option_string_actions)
            assert not {"--student-column", "--lenient"} & options, name
            continue
        options = set(p._option_string_actions)
        assert {"--student-column", "--item-column", "--correct-column", "--order-column",
                "--lenient", "-q", "--quiet"} <= options, name


@pytest.mark.parametrize("command", ["fit", "score", "evaluate", "diagnose", "compare",
                                     "explain", "fairness"])
def test_renamed_gzip_file_gives_what_the_standard_file_gives(
        command: str, files: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Each subcommand on the renamed, compressed, yes/no + ISO-time file (column options)
    answers exactly as on the standard file."""
    model = str(files["model"])

    def args(kind: str) -> list[str]:
        train = str(files["train" if kind == "plain" else "train_renamed"])
        test = str(files["test" if kind == "plain" else "test_renamed"])
        extra = [] if kind == "plain" else COLUMNS
        return {
            "fit": ["fit", train, "-o", str(tmp_path / f"{kind}.json"), "--no-se"],
            "score": ["score", model, train, "-o", str(tmp_path / f"{kind}.csv")],
            "evaluate": ["evaluate", train, test, "--json"],
            "diagnose": ["diagnose", model, test, "--json"],
            "compare": ["compare", model, model, test, "--json"],
            "explain": ["explain", model, test, "--student", "s1200", "--json"],
            "fairness": (["fairness", train, str(files["groups"])] if kind == "plain"
                         else ["fairness", train, "--group-column", "GENDER"])
            + ["--reference", "F", "--focal", "M", "--model", model],
        }[command] + extra + ["-q"]

    results = []
    for kind in ("plain", "renamed"):
        code, out, err = _run(args(kind), capsys)
        assert code == 0, err
        assert err == ""  # -q
        if command == "fit":
            out = json.dumps({k: v for k, v in load_model(
                (tmp_path / f"{kind}.json").read_text()).to_dict().items()
                if k not in ("created_at", "data_summary")}, sort_keys=True)
        elif command == "score":
            out = (tmp_path / f"{kind}.csv").read_text()
        elif out.startswith("{"):
            out = json.dumps(_untimed(json.loads(out)))
        results.append(out)
    assert results[0] == results[1]
    assert len(results[0]) > 100


def test_evaluate_accepts_what_fit_accepts(files: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """evaluate refused yes/no, ISO-8601 times and a file without an order column, which fit
    reads: now the same report as with 0/1 and epoch seconds (file order when no column)."""
    want = json.loads(_run(["evaluate", str(files["train"]), str(files["test"]), "--json",
                            "-q"], capsys)[1])
    for name in ("train", "test"):
        with files[name].open(newline="") as f:
            rows = list(csv.reader(f))[1:]
        _write(tmp_path / f"{name}_words.csv",
               [(s, i, "Yes" if y == "1" else "no",
                 f"2023-11-14T{int(t) // 3600 % 24:02d}:{int(t) // 60 % 60:02d}:00+00:00")
                for s, i, y, t in rows], ["student_id", "item_id", "correct", "answered_at"])
        _write(tmp_path / f"{name}_unordered.csv", [(s, i, y) for s, i, y, _ in rows],
               ["student_id", "item_id", "correct"])
    for variant in ("words", "unordered"):
        code, out, err = _run(["evaluate", str(tmp_path / f"train_{variant}.csv"),
                               str(tmp_path / f"test_{variant}.csv"), "--json", "-q"], capsys)
        assert code == 0, err
        got = json.loads(out)
        for key in ("auc", "log_loss", "n_predictions", "items_calibrated", "fit_iterations"):
            assert got[key] == want[key], (variant, key)


def test_an_order_column_named_on_the_command_line_must_exist(
        files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["evaluate", str(files["train"]), str(files["test"]),
                         "--order-column", "seq"], capsys)
    assert code == 2
    assert str(files["train"]) in err and "'seq'" in err and "--order-column" in err


@pytest.mark.parametrize(("command", "option", "value", "message"), [
    ("fit", "--tol", "inf", "must be a finite number above 0, got inf"),
    ("fit", "--tol", "nan", "must be a finite number above 0, got nan"),
    ("evaluate", "--tol", "0", "must be a finite number above 0, got 0"),
    ("fit", "--skill-difficulty-sd", "-1", "must be a finite number above 0, got -1"),
    ("fit", "--min-answers-per-item", "0", "must be at least 1, got 0"),
    ("evaluate", "--min-answers-per-student", "-1", "must be at least 0, got -1"),
    ("fit", "--quadrature-points", "2", "must be at least 5, got 2"),
    ("fit", "--quadrature-points", "100000", "must be at most 401, got 100000"),
    ("evaluate", "--max-iter", "0", "must be at least 1, got 0"),
    ("fit", "--max-iter", "10001", "must be at most 10000, got 10001"),
    ("evaluate", "--max-iter", "5000000", "must be at most 10000, got 5000000"),
    ("report", "--max-items", "0", "must be at least 1, got 0"),
    ("report", "--max-items", "ten", "expected an integer, got 'ten'"),
    ("evaluate", "--recency-decay", "1.5", "must be a number in (0, 1), got 1.5"),
    ("evaluate", "--recency-decay", "0", "must be a number in (0, 1), got 0"),
    # 1 is no recency: a model with the option refuses it (options.learning.recency_decay),
    # after the whole fit; prepare's RECENCY_DECAY stops at 0.9999
    ("evaluate", "--recency-decay", "1", "must be a number in (0, 1), got 1"),
    ("evaluate", "--window", "0", "must be at least 1, got 0"),
    ("demo", "--seed", "-1", "must be at least 0, got -1"),
])
def test_option_out_of_range_is_refused_before_reading_naming_the_option(
        command: str, option: str, value: str, message: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A number out of its range (``--tol inf`` ran the whole fit and then failed writing
    the JSON) is argparse's error naming the option, before any file is opened: the files
    named here do not exist."""
    missing = str(tmp_path / "missing.csv")
    args = {"fit": ["fit", missing, "-o", str(tmp_path / "m.json")],
            "evaluate": ["evaluate", missing, missing], "demo": ["demo"],
            "report": ["report", missing, missing, "-o", str(tmp_path / "r.html")]}[command]
    with pytest.raises(SystemExit) as exit_:
        main([*args, option, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert f"error: argument {option}: {message}" in err and "missing.csv" not in err


def test_evaluate_options_need_a_2pl_before_reading(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.csv")
    code, _, err = _run(["evaluate", missing, missing, "--model", "3pl", "--options",
                         "recency"], capsys)
    assert code == 2
    assert err == ("error: --options recency needs --model 2pl (the learning-aware options "
                   "are a 2pl's), not --model 3pl\n")
    code, _, err = _run(["evaluate", missing, missing, "--options", "speed"], capsys)
    assert code == 2 and err.startswith("error: --options: unknown model option 'speed'")


def test_progress_on_stderr_and_quiet_with_q(files: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.json"
    code, stdout, err = _run(["fit", str(files["train"]), "-o", str(out)], capsys)
    assert code == 0 and stdout == ""
    assert f"{files['train']}: read 18000 rows" in err
    assert "fit 2pl: EM cycle 1, log-posterior -" in err and "change " in err
    assert f"wrote {out}: 2pl, 25 items" in err
    code, stdout, err = _run(["fit", str(files["train"]), "-o", str(out), "-q"], capsys)
    assert code == 0 and (stdout, err) == ("", "")
    code, _, err = _run(["fit", str(files["train"]), "-o", str(out), "--no-priors"], capsys)
    assert "EM cycle 1, log-likelihood -" in err


def test_progress_lines_are_throttled() -> None:
    stream = io.StringIO()
    every = common.Messages(interval=0.0, stream=stream)
    report = every.em_progress("fit 2pl")
    for cycle in range(1, 6):
        report(cycle, -100.0 + cycle, 0.1 / cycle)
    assert stream.getvalue().count("EM cycle") == 5
    assert "fit 2pl: EM cycle 5, log-posterior -95.000, change 2.00e-02" in stream.getvalue()
    stream = io.StringIO()
    rare = common.Messages(interval=3600.0, stream=stream)
    report = rare.em_progress("fit 2pl")
    for cycle in range(1, 6):
        report(cycle, -1.0, 0.1)
    assert stream.getvalue().count("EM cycle") == 1  # the first only
    stream = io.StringIO()
    quiet = common.Messages(quiet=True, interval=0.0, stream=stream)
    quiet.em_progress("x")(1, 0.0, 0.0)
    quiet.info("hello")
    quiet.warning("careful")
    assert stream.getvalue() == "warning: careful\n"


def test_fit_table(files: dict[str, Path], tmp_path: Path,
                   capsys: pytest.CaptureFixture[str]) -> None:
    """--table prints a, b, c with their SEs, the answers and flags per item, and the items
    left out with the reason."""
    with files["train"].open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    rows += [("s1", "rare", "1", "1")] + [(f"s{k}", "easy", "1", "1") for k in range(40)]
    answers = _write(tmp_path / "a.csv", rows, ["student_id", "item_id", "correct",
                                                "answered_at"])
    code, out, _ = _run(["fit", str(answers), "-o", str(tmp_path / "m.json"), "--table", "-q",
                         "--min-answers-per-item", "2"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["item", "n", "a", "se(a)", "b", "se(b)", "c", "se(c)", "flags"]
    model = load_model((tmp_path / "m.json").read_text())
    by_item = {line.split()[0]: line.split() for line in lines[1:model.n_items + 1]}
    assert set(by_item) == set(model.item_ids)
    j = model.item_ids.index("q0")
    row = by_item["q0"]
    assert float(row[2]) == pytest.approx(model.a[j], abs=5e-4)
    assert float(row[3]) == pytest.approx(model.se_a[j], abs=5e-4)
    assert float(row[4]) == pytest.approx(model.b[j], abs=5e-4)
    assert row[6:8] == ["0.000", "-"]  # 2pl: c = 0, no SE
    assert "extreme-b" in by_item["easy"] and by_item["easy"][1] == "40"
    assert "left out (1):" in out and "  rare: fewer than 2 answers (1)" in out
    assert "flagged: " in out and "  extreme-b: |b| > 3" in out


def test_score_and_fit_say_what_they_wrote(files: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    scores = tmp_path / "scores.csv"
    code, stdout, err = _run(["score", str(files["model"]), str(files["test"]), "-o",
                              str(scores)], capsys)
    assert code == 0 and stdout == ""
    assert f"wrote {scores}: 200 students' EAP scores from 3000 answers" in err
    assert len(scores.read_text().splitlines()) == 201


def test_output_into_a_missing_folder_fails_before_the_work(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import irt.engine.calibrate

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted before checking the output")

    monkeypatch.setattr(irt.engine.calibrate, "fit", no_fit)
    target = tmp_path / "missing" / "model.json"
    code, _, err = _run(["fit", str(files["train"]), "-o", str(target)], capsys)
    assert code == 2
    assert err == f"error: cannot write {target}: folder {target.parent} does not exist\n"
    code, _, err = _run(["score", str(files["model"]), str(files["test"]), "-o",
                         str(tmp_path / "missing" / "s.csv")], capsys)
    assert code == 2 and "does not exist" in err
    code, _, err = _run(["fit", str(files["train"]), "-o", str(tmp_path)], capsys)
    assert code == 2 and "it is a folder" in err


def test_output_that_is_an_input_is_refused_before_the_work(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``fit in.csv -o in.csv`` overwrote the answers with the model (exit 0), ``report`` and
    ``score`` their inputs likewise: an ``-o`` that is an input, by any path, is an error."""
    answers = tmp_path / "in.csv"
    answers.write_bytes(files["test"].read_bytes())
    model = tmp_path / "model.json"
    model.write_bytes(files["model"].read_bytes())
    (tmp_path / "link.csv").symlink_to(answers)
    monkeypatch.chdir(tmp_path)
    for args, what, source in [
            (["fit", str(answers), "-o", str(answers)], "answers file", answers),
            (["fit", "link.csv", "-o", "../" + tmp_path.name + "/in.csv"], "answers file",
             "link.csv"),
            (["score", str(model), "in.csv", "-o", "model.json"], "model file", model),
            (["report", "model.json", "in.csv", "-o", "in.csv"], "answers file", "in.csv"),
            (["report", str(files["model"]), "--against", "model.json", "-o", "model.json"],
             "--against model file", "model.json"),
            (["exposure", "model.json", "-o", str(model)], "model file", "model.json")]:
        code, out, err = _run([*args, "-q"], capsys)
        assert code == 2 and out == "", args
        assert err == (f"error: -o {args[args.index('-o') + 1]} is the {what} ({source}): it "
                       "would be overwritten; write to another file\n"), args
    assert answers.read_bytes() == files["test"].read_bytes()
    assert model.read_bytes() == files["model"].read_bytes()


def test_output_dash_is_stdout_for_score_and_refused_elsewhere(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``-o -`` wrote a file named '-': ``score`` (whose default is stdout) writes stdout,
    the subcommands that write a file refuse it."""
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(["score", str(files["model"]), str(files["test"]), "-o", "-", "-q"],
                        capsys)
    assert code == 0 and out.startswith("student_id,theta,se,n_answers\n")
    assert len(out.splitlines()) == 201
    for args in (["fit", str(files["test"])], ["report", str(files["model"])],
                 ["exposure", str(files["model"])]):
        code, _, err = _run([*args, "-o", "-", "-q"], capsys)
        assert code == 2, args
        assert err == "error: -o -: this command writes a file, not standard output; name one\n"
    assert not (tmp_path / "-").exists()


def test_errors_name_the_file(files: dict[str, Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad_test.csv"
    bad.write_text("student_id,item_id,correct\ns1,q1,1\ns1,q2,maybe\n")
    code, _, err = _run(["evaluate", str(files["train"]), str(bad), "-q"], capsys)
    assert code == 2  # errors are not quietened
    assert err.startswith(f"error: {bad}: line 3: correct must be one of")
    model = tmp_path / "broken.json"
    model.write_text("{")
    code, _, err = _run(["compare", str(files["model"]), str(model), str(files["test"])],
                        capsys)
    assert code == 2 and err.startswith(f"error: {model}: invalid model")
    code, _, err = _run(["diagnose", str(model), str(files["test"])], capsys)
    assert code == 2 and err.startswith(f"error: {model}: invalid model")
    damaged = tmp_path / "damaged.csv.gz"
    damaged.write_bytes(gzip.compress(files["test"].read_bytes())[:300])
    code, _, err = _run(["score", str(files["model"]), str(damaged)], capsys)
    assert code == 2 and err.startswith(f"error: {damaged}: line ") and "gzip" in err
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("student_id,item_id,correct\nZo\xeb,q1,1\n".encode("latin-1"))
    code, _, err = _run(["fit", str(latin), "-o", str(tmp_path / "m.json")], capsys)
    assert code == 2 and err.startswith(f"error: {latin}: line 1") and "UTF-8" in err


def test_an_id_too_long_stops_a_strict_run_and_is_counted_under_lenient(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An id longer than 256 characters was dropped silently even in strict mode (``score``
    wrote a header only, ``fit`` said 'no item left'): now a bad row like any other."""
    answers = tmp_path / "long.csv"
    answers.write_text(f"student_id,item_id,correct\ns1,q1,1\n{'x' * 300},q1,1\ns2,q2,0\n")
    code, out, err = _run(["score", str(files["model"]), str(answers)], capsys)
    assert code == 2 and out == ""
    assert err == f"error: {answers}: line 3: student_id longer than 256 characters (300)\n"
    code, _, err = _run(["fit", str(answers), "-o", str(tmp_path / "m.json")], capsys)
    assert code == 2 and "line 3: student_id longer than 256 characters" in err
    code, out, err = _run(["score", str(files["model"]), str(answers), "--lenient", "-q"],
                          capsys)
    assert code == 0 and [line.split(",")[0] for line in out.splitlines()] == [
        "student_id", "s1", "s2"]
    assert err == f"warning: {answers}: left out 1 bad rows (--lenient): id_too_long 1\n"


def test_nothing_to_calibrate_says_why(files: dict[str, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """'no item left to calibrate: ' ended with an empty reason when no answer was left."""
    header = tmp_path / "header.csv"
    header.write_text("student_id,item_id,correct\n")
    model = str(tmp_path / "m.json")
    code, _, err = _run(["fit", str(header), "-o", model, "-q"], capsys)
    assert code == 2
    assert err == f"error: {header}: no item left to calibrate: the file has no answers\n"
    code, _, err = _run(["evaluate", str(header), str(files["test"]), "-q"], capsys)
    assert code == 2
    assert err == f"error: {header}: no item left to calibrate: the file has no answers\n"
    code, _, err = _run(["diagnose", str(files["model"]), str(header), "-q"], capsys)
    assert code == 2
    assert err == f"error: {header}: no answers to diagnose: the file has no answers\n"
    dropped = tmp_path / "dropped.csv"
    dropped.write_text("student_id,item_id,correct\ns1,q1,1\ns2,q1,maybe\n")
    code, _, err = _run(["fit", str(dropped), "-o", model, "--lenient", "-q"], capsys)
    assert code == 2
    assert err.endswith(f"error: {dropped}: no item left to calibrate: 2 rows read, all "
                        "dropped: invalid_correct 1, student_below_min_answers 1 "
                        "(--min-answers-per-student 2)\n")


def test_an_input_that_cannot_be_read_is_named(files: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """'[Errno 2] No such file or directory: ...' did not say which argument it was."""
    nope = tmp_path / "nope"
    model, train, test = str(files["model"]), str(files["train"]), str(files["test"])
    ref = ["--reference", "F", "--focal", "M"]
    for args, what in [
            (["score", str(nope), test], "model file"),
            (["score", model, str(nope)], "answers file"),
            (["fit", str(tmp_path), "-o", str(tmp_path / "m.json")], "answers file"),
            (["evaluate", str(nope), test], "training answers file"),
            (["evaluate", train, str(nope)], "test answers file"),
            (["report", model, "--against", str(nope), "-o", str(tmp_path / "r.html")],
             "--against model file"),
            (["fairness", train, str(nope), *ref], "groups file"),
            (["fairness", train, str(files["groups"]), "--model", str(nope), *ref],
             "model file"),
            (["explain", model, str(nope)], "request file"),
            (["explain", model, str(nope), "--student", "s1"], "answers file")]:
        code, _, err = _run([*args, "-q"], capsys)
        path = tmp_path if what == "answers file" and args[0] == "fit" else nope
        reason = "Is a directory" if path == tmp_path else "No such file or directory"
        assert code == 2, args
        assert err == f"error: cannot read the {what} {path}: {reason}\n", args


def test_a_closed_pipe_ends_quietly(files: dict[str, Path], tmp_path: Path) -> None:
    """``python -m irt score ... | head -1``: no broken-pipe error, status 141 (as a command
    killed by SIGPIPE). The scores are longer than a pipe's buffer."""
    rows = [(f"student-with-a-long-id-{k}", f"q{k % 25}", k % 2, k) for k in range(6000)]
    answers = _write(tmp_path / "many.csv", rows, ["student_id", "item_id", "correct",
                                                   "answered_at"])
    proc = subprocess.Popen([sys.executable, "-m", "irt", "score", str(files["model"]),
                             str(answers)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=ENV)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"student_id,theta,se,n_answers\n"
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Broken pipe" not in err and "Traceback" not in err and "Exception" not in err


def test_run_guarded_turns_expected_errors_into_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    def broken(args):
        raise BrokenPipeError

    def bad(args):
        raise ValueError("x.csv: nothing to do")

    assert common.run_guarded(broken, None) == 141
    assert capsys.readouterr().err == ""
    assert common.run_guarded(bad, None) == 2
    assert capsys.readouterr().err == "error: x.csv: nothing to do\n"


def test_run_guarded_turns_running_out_of_memory_into_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    def greedy(args):
        return np.zeros(1 << 58)  # 2 EiB: numpy's MemoryError, nothing allocated

    assert common.run_guarded(greedy, None) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: not enough memory: Unable to allocate ") and err.count(
        "\n") == 1


# --------------------------------------------------------------------------- fairness

def test_fairness_group_from_the_answers_file_and_clear_errors(
        files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from irt.tools.fairness import main as fairness_main

    common_args = ["--reference", "F", "--focal", "M", "--model", str(files["model"]), "-q"]
    code, out, err = _run(["fairness", str(files["train_renamed"]), *COLUMNS,
                           "--group-column", "gender", *common_args], capsys)
    assert code == 0, err
    assert "ETS classes:" in out and len(out.splitlines()) == 27
    # a missing group column: an error naming the file, the column and the option
    code, out, err = _run(["fairness", str(files["train_renamed"]), *COLUMNS,
                           "--group-column", "sex", *common_args], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {files['train_renamed']}: line 1: missing required column "
                          "'sex'") and "--group-column" in err
    code, _, err = _run(["fairness", str(files["train"]), str(files["groups"]),
                         "--group-column", "sex", *common_args], capsys)
    assert code == 2 and f"{files['groups']}: line 1" in err and "'sex'" in err
    # an empty focal group (a misspelt label): an error listing the groups found
    capsys.readouterr()
    code = fairness_main([str(files["train"]), str(files["groups"]), "--reference", "F",
                          "--focal", "m", "--model", str(files["model"])])
    out = capsys.readouterr()
    assert code == 2 and out.out == ""
    assert "no student of the focal group 'm'" in out.err and "'M' (400)" in out.err
    assert "Traceback" not in out.err


@pytest.mark.parametrize(("value", "message"), [
    ("0", "must be at least 1, got 0"), ("-2", "must be at least 1, got -2"),
    ("1001", "must be at most 1000, got 1001"), ("ten", "expected an integer, got 'ten'")])
def test_fairness_refuses_strata_out_of_range_naming_the_option(
        files: dict[str, Path], value: str, message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--strata 0`` failed deep in numpy (an IndexError), ``-2`` with numpy's words:
    argparse refuses them before any file is read, naming the option."""
    with pytest.raises(SystemExit) as exit_:
        main(["fairness", str(files["train"]), str(files["groups"]), "--reference", "F",
              "--focal", "M", "--model", str(files["model"]), "--strata", value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert f"error: argument --strata: {message}" in err and "Traceback" not in err


def test_fairness_refuses_the_same_group_twice_before_reading(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["fairness", str(tmp_path / "missing.csv"), "--reference", "F",
                         "--focal", "F"], capsys)
    assert code == 2 and err == "error: --reference and --focal are the same group: 'F'\n"


def test_mantel_haenszel_refuses_an_empty_group() -> None:
    from irt.engine.calibrate import FitConfig, fit
    from irt.tools.fairness import mantel_haenszel

    responses = simulate(300, 10, 10, seed=2).responses
    model = fit(responses, FitConfig(compute_se=False)).model
    groups = {s: "a" for s in responses.student_ids}
    with pytest.raises(ValueError, match="no student of the focal group 'b'"):
        mantel_haenszel(model, responses, groups, "a", "b")
    with pytest.raises(ValueError, match="the same"):
        mantel_haenszel(model, responses, groups, "a", "a")
    with pytest.raises(ValueError, match="strata must be at least 1"):
        mantel_haenszel(model, responses, groups, "a", "b", strata=0)


def test_explain_a_student_of_an_answers_file(files: dict[str, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``explain MODEL ANSWERS --student S`` explains the request of S's answers."""
    with files["test"].open(newline="") as f:
        mine = [r for r in csv.DictReader(f) if r["student_id"] == "s1300"]
    request = {"responses": [{"item_id": r["item_id"], "correct": r["correct"] == "1",
                              "answered_at": float(r["answered_at"])} for r in mine],
               "items": ["q1", "q2"]}
    code, want, err = _run(["explain", str(files["model"]), json.dumps(request), "--json"],
                           capsys)
    assert code == 0, err
    code, got, err = _run(["explain", str(files["model"]), str(files["test"]), "--student",
                           "s1300", "--items", "q1,q2", "--json"], capsys)
    assert code == 0, err
    assert json.loads(got) == json.loads(want)
    assert json.loads(got)["request"]["answers_counted"] == 15
    code, _, err = _run(["explain", str(files["model"]), str(files["test"]), "--student",
                         "nobody"], capsys)
    assert code == 2 and "'nobody' has no answers" in err
    np.testing.assert_allclose(json.loads(got)["posterior"]["theta"],
                               json.loads(want)["posterior"]["theta"])


def test_explain_lenient_leaves_bad_rows_out(files: dict[str, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Under ``--lenient`` a row with ``correct`` 'maybe' or missing was explained as a wrong
    answer (``bool(None)``); now it is left out, as every other subcommand drops it, and said
    so on stderr."""
    answers = tmp_path / "some_bad.csv"
    answers.write_text("student_id,item_id,correct\ns1,q1,1\ns1,q2,maybe\ns1,q3\n"
                       "s1,q4,1\ns1,,0\ns2,q2,0\n")
    request = {"responses": [{"item_id": "q1", "correct": True},
                             {"item_id": "q4", "correct": True}], "items": ["q2"]}
    code, want, err = _run(["explain", str(files["model"]), json.dumps(request), "--json"],
                           capsys)
    assert code == 0, err
    code, got, err = _run(["explain", str(files["model"]), str(answers), "--student", "s1",
                           "--items", "q2", "--json", "--lenient"], capsys)
    assert code == 0
    assert json.loads(got) == json.loads(want)
    assert json.loads(got)["request"]["answers_sent"] == 2
    assert err == (f"warning: {answers}: left out 3 bad rows of student 's1' (--lenient): "
                   "null_item_id 1, invalid_correct 2\n")
    code, _, err = _run(["explain", str(files["model"]), str(answers), "--student", "s1",
                         "--items", "q2"], capsys)
    assert code == 2 and "line 3: correct must be" in err  # strict: the first bad row stops
    answers.write_text("student_id,item_id,correct\ns1,q2,maybe\n")
    code, _, err = _run(["explain", str(files["model"]), str(answers), "--student", "s1",
                         "--lenient", "-q"], capsys)
    assert code == 2 and "student 's1' has no valid answers in the file (1 bad rows)" in err
