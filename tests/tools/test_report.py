"""The model report (irt.refresh.report, ``python -m irt report``) without a browser: what the
page holds against independent computations, its bounds, its escaping, the command line, and
that ``predict`` never loads the plotting library.  The browser checks are in
``test_report_browser.py``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from fresh_python import loaded_modules, predict_main_modules
from plotly.offline import get_plotlyjs
from report_cases import EVIL, MISFITS, page_data, page_figures, planted_answers

from irt.engine.artifact import load_model
from irt.engine.diagnostics import diagnose
from irt.engine.evaluate import evaluate
from irt.engine.model import ItemModel
from irt.engine.preprocess import prepare_rows
from irt.engine.responses import Responses
from irt.refresh.report import (
    ReportConfig,
    build_report,
    calibration_table,
    online_reliability,
    render_html,
)
from irt.tools.cli import build_parser, main
from irt.tools.common import read_answers

ROOT = Path(__file__).resolve().parents[2]
PLOTLY_JS = len(get_plotlyjs())


def read_answers_csv_file(path):
    """The rows of an answers file as every subcommand reads them (default options)."""
    args = build_parser().parse_args(["report", "model.json", str(path), "-o", "x.html"])
    return read_answers(path, args)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 2PL fitted by ``irt fit`` to a complete test with a reversed item, and its answers."""
    root = tmp_path_factory.mktemp("report")
    answers = planted_answers(root / "answers.csv")
    model_path = root / "model.json"
    assert main(["fit", str(answers), "-o", str(model_path)]) == 0
    prepared = prepare_rows(read_answers_csv_file(answers))
    return {"root": root, "answers": answers, "model_path": model_path,
            "model": load_model(model_path.read_bytes()), "responses": prepared.responses,
            "order": prepared.answered_at}


@pytest.fixture(scope="module")
def doc(planted: dict) -> dict:
    return build_report(planted["model"], planted["responses"], order=planted["order"])


def test_parameters_and_fit_flags_are_the_models_and_diagnoses(planted: dict, doc: dict
                                                               ) -> None:
    model: ItemModel = planted["model"]
    rows = {r["id"]: r for r in doc["items"]}
    assert set(rows) == set(model.item_ids) and doc["items_note"] == "All 22 items"
    for j, item_id in enumerate(model.item_ids):
        r = rows[item_id]
        assert r["a"] == pytest.approx(model.a[j], rel=1e-4)
        assert r["b"] == pytest.approx(model.b[j], rel=1e-4, abs=1e-5)
        assert r["se_b"] == pytest.approx(model.se_b[j], rel=1e-3)
        assert r["n"] == 1200
    fit = {row["item_id"]: row for row in diagnose(model, planted["responses"]).item_table()}
    for item_id, r in rows.items():
        assert r["outfit"] == pytest.approx(fit[item_id]["outfit"], rel=1e-3)
        assert r["s_x2_p"] == pytest.approx(fit[item_id]["s_x2_p"], rel=1e-3, abs=1e-12)
    # the planted misfits, and only they, are flagged, and come first in the table
    assert {r["id"] for r in doc["items"] if r["flags"]} == set(MISFITS)
    assert {r["id"] for r in doc["items"][:4]} == set(MISFITS)
    assert "X2" in rows["Q-reversed"]["flags"] and "low a" in rows["Q-reversed"]["flags"]
    assert {"S-X2", "X2"} <= set(rows["Q-step"]["flags"])
    assert rows["Q-ushape"]["a"] < 0.3 and "low a" in rows["Q-ushape"]["flags"]
    assert doc["diagnostics"]["design"]["complete"] is True and "m2" in doc["diagnostics"]


def test_curves_information_and_abilities_match_the_engine(planted: dict, doc: dict) -> None:
    model: ItemModel = planted["model"]
    theta = np.array(doc["theta"])
    assert theta[0] == -4 and theta[-1] == 4 and theta.shape == (161,)
    info = model.test_information(theta)
    np.testing.assert_allclose(doc["test_information"]["information"], info, rtol=1e-4)
    np.testing.assert_allclose(doc["test_information"]["se"], 1 / np.sqrt(info), rtol=1e-4)
    ability = doc["ability"]
    assert sum(ability["counts"]) == ability["n"] == 1200
    data = diagnose(model, planted["responses"]).data
    assert ability["mean"] == pytest.approx(data.theta.mean(), abs=1e-4)
    # the prior curve integrates to the students (a density scaled by n * bin width)
    x, y = np.array(ability["prior_x"]), np.array(ability["prior_y"])
    assert np.trapezoid(y, x) / ability["width"] == pytest.approx(1200, rel=1e-3)


def test_the_reliability_diagram_is_the_online_evaluation(planted: dict, doc: dict) -> None:
    """The page's online predictions are irt.engine.evaluate's, computed the other way
    round (the log ordered by hand); a model fitted to its own answers is calibrated."""
    model, r = planted["model"], planted["responses"]
    rows = np.lexsort((planted["order"], r.student))
    ev, p = evaluate(model, r.student[rows], [r.item_ids[j] for j in r.item[rows]],
                     r.correct[rows])
    c = doc["calibration"]
    assert c["n"] == ev.n_predictions == r.n_answers
    assert c["metrics"]["auc"] == pytest.approx(ev.auc, abs=1e-12)
    assert c["metrics"]["ece"] == pytest.approx(ev.ece, abs=1e-12)
    y = r.correct[rows].astype(float)
    k = np.minimum((p * 10).astype(int), 9)
    for b in c["bins"]:
        j = round(float(b["bin"].split("-")[0]) * 10)
        assert b["n"] == int(np.count_nonzero(k == j))
        assert b["observed"] == pytest.approx(y[k == j].mean())
        assert b["predicted"] == pytest.approx(p[k == j].mean())
        assert b["low"] <= b["observed"] <= b["high"]
        if b["n"] >= 1000:
            assert abs(b["observed"] - b["predicted"]) < 0.04, b


def test_a_long_log_is_sampled_by_student_and_says_so(planted: dict) -> None:
    """Above ``max_answers`` the fit statistics, abilities and online predictions use 1
    student in k (whole answer patterns); the answers column still counts every answer."""
    r = planted["responses"]
    doc = build_report(planted["model"], r, order=planted["order"],
                       config=ReportConfig(max_answers=10_000))
    keep = r.student % 3 == 0
    assert doc["ability"]["n"] == 400 and doc["calibration"]["n"] == int(keep.sum()) == 8800
    assert {row["n"] for row in doc["items"]} == {1200}
    assert ("Fit statistics, abilities and online predictions on 1 student in 3: 400 of 1200 "
            "students, 8800 of 26400 answers") in " ".join(doc["notes"])
    assert doc["diagnostics"]["design"]["n_students"] == 400


def test_calibration_table_counts_and_wilson_interval() -> None:
    y = np.array([1, 0, 1, 1, 0, 0, 1, 1], dtype=float)
    p = np.array([0.05, 0.05, 0.55, 0.55, 0.55, 0.95, 0.95, 1.0])
    bins = calibration_table(y, p)
    assert [b["bin"] for b in bins] == ["0.0-0.1", "0.5-0.6", "0.9-1.0"]
    assert [b["n"] for b in bins] == [2, 3, 3]
    assert bins[1]["observed"] == pytest.approx(2 / 3)
    # Wilson's 95 % interval of 2 out of 3 (z = 1.96): 0.2077 .. 0.9385
    assert (bins[1]["low"], bins[1]["high"]) == pytest.approx((0.2077, 0.9385), abs=1e-4)


def test_online_reliability_uses_answer_order() -> None:
    """Each prediction comes from the student's earlier answers by ``order``, whatever the
    row order: reversing the rows with the order kept gives the same predictions."""
    model = ItemModel("2pl", ("i0", "i1", "i2"), np.array([1.0, 1.5, 2.0]),
                      np.array([0.0, 0.5, -0.5]), np.zeros(3), *(np.full(3, np.nan),) * 3)
    r = Responses(np.array([0, 0, 0, 1, 1]), np.array([0, 1, 2, 2, 0]),
                  np.array([1, 0, 1, 0, 1]), ("s0", "s1"), ("i0", "i1", "i2"))
    y, p = online_reliability(model, r, np.array([1.0, 2, 3, 1, 2]))
    back = Responses(r.student[::-1], r.item[::-1], r.correct[::-1], r.student_ids,
                     r.item_ids)
    y2, p2 = online_reliability(model, back, np.array([2.0, 1, 3, 2, 1]))
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_allclose(p, p2)
    assert p[0] == pytest.approx(0.5) and p[3] == pytest.approx(1 / (1 + np.exp(-1.0))), p


def test_a_big_bank_is_bounded_and_says_so() -> None:
    """5,000 items and 20,000 students: the table and the selector keep ``max_items``, the
    drift scatter ``max_drift_points``; the page grows with neither students nor items."""
    rng = np.random.default_rng(1)
    n = 5000
    ids = tuple(f"item-{j:05d}" for j in range(n))
    model = ItemModel("2pl", ids, rng.lognormal(0, 0.3, n), rng.normal(0, 1, n), np.zeros(n),
                      *(np.full(n, 0.1),) * 2, np.full(n, np.nan), version="v-new")
    serving = ItemModel("2pl", ids[::-1], model.a[::-1] * 1.05, model.b[::-1] + 0.1,
                        np.zeros(n), *(np.full(n, np.nan),) * 3, version="v-old")
    sizes = []
    for n_students in (2_000, 20_000):
        student = np.repeat(np.arange(n_students), 10)
        item = (rng.zipf(1.5, student.shape[0]) - 1) % n  # a long tail of rare items
        keep = np.unique(student * n + item, return_index=True)[1]
        r = Responses(student[keep], item[keep], rng.integers(0, 2, keep.shape[0]),
                      tuple(f"s{s}" for s in range(n_students)), ids)
        cfg = ReportConfig(max_items=300, max_drift_points=400, diagnose=False)
        doc = build_report(model, r, serving_model=serving, config=cfg)
        assert len(doc["items"]) == 300 and doc["items_note"].startswith("300 of 5000 items")
        counts = np.bincount(r.item, minlength=n)
        assert [row["n"] for row in doc["items"]] == sorted(counts, reverse=True)[:300]
        d = doc["drift"]
        assert d["n_common"] == n and d["shown"] == 400 and len(d["points"]["id"]) == 400
        assert d["mean_abs_db"] == pytest.approx(0.1, abs=1e-6)
        sizes.append(len(render_html(doc).encode()) - PLOTLY_JS)
    assert max(sizes) < 250_000, sizes
    assert abs(sizes[1] - sizes[0]) < 2_000, sizes  # 10x the students: the same page


def test_text_from_the_data_is_escaped(planted: dict, doc: dict) -> None:
    """An item id made of markup never reaches the page as markup: the embedded JSON has no
    ``<``, the static HTML has only the escaped form."""
    html = render_html({**doc, "title": EVIL})
    ours = html.replace(get_plotlyjs(), "")
    assert EVIL not in ours and "<img" not in ours
    assert "&lt;img src=x onerror=alert(1)&gt;&lt;/script&gt;" in ours  # the title, escaped
    data = page_data(html)
    assert EVIL in {r["id"] for r in data["items"]}
    assert len(re.findall(r"</script>", ours)) == ours.count("<script")


def test_the_page_is_self_contained(planted: dict, doc: dict) -> None:
    html = render_html(doc)
    assert get_plotlyjs() in html  # plotly.js inlined once
    ours = html.replace(get_plotlyjs(), "")
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=", ours, re.I)
    assert "http://" not in ours and "https://" not in ours
    figures = page_figures(html)
    assert set(figures) == {"fig-icc", "fig-iif", "fig-test", "fig-ability", "fig-calibration"}
    assert all(figures[k]["data"] for k in figures if k not in ("fig-icc", "fig-iif"))


def test_cli_report_with_and_without_answers(planted: dict, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    model = str(planted["model_path"])
    other = tmp_path / "other.json"
    assert main(["fit", str(planted["answers"]), "--model", "1pl", "-o", str(other)]) == 0
    out = tmp_path / "full.html"
    assert main(["report", model, str(planted["answers"]), "--against", str(other),
                 "-o", str(out), "--max-items", "5", "--title", "LSAT-like"]) == 0
    err = capsys.readouterr().err
    assert f"wrote {out}: report of 5 of 22 items, 26400 answers (" in err
    html = out.read_text()
    assert "<title>LSAT-like</title>" in html
    assert set(page_figures(html)) == {"fig-icc", "fig-iif", "fig-test", "fig-ability",
                                       "fig-calibration", "fig-drift"}
    assert {r["id"] for r in page_data(html)["items"][:4]} == set(MISFITS)
    bare = tmp_path / "bare.html"
    assert main(["report", model, "-o", str(bare)]) == 0
    figures = page_figures(bare.read_text())
    assert set(figures) == {"fig-icc", "fig-iif", "fig-test"}
    assert "fit statistics need answers" in bare.read_text()
    with pytest.raises(SystemExit) as exit_:  # argparse's error, naming the option
        main(["report", model, "-o", str(bare), "--max-items", "0"])
    assert exit_.value.code == 2
    assert "error: argument --max-items: must be at least 1, got 0" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    assert main(["report", str(tmp_path / "bad.json"), "-o", str(bare)]) == 2
    assert main(["report", model, "-o", str(bare), "--against",
                 str(tmp_path / "bad.json")]) == 2
    assert "invalid model" in capsys.readouterr().err


def test_cli_help_names_report(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = capsys.readouterr().out
    assert "plotly.js inlined" in text and "--against" in text and "--max-items" in text


def test_predict_and_the_pipeline_import_no_plotting_library(tmp_path: Path) -> None:
    """predict's import path never loads plotly; prepare's pipeline loads it only when it
    renders a page."""
    loaded = predict_main_modules(tmp_path)
    assert "irt.serving.api" in loaded
    assert [m for m in loaded if m.split(".")[0] in ("plotly", "narwhals")] == []
    loaded = loaded_modules("import irt.refresh.pipeline, irt.refresh.report, irt.tools.cli",
                            extra_env={"MODEL_DIR": str(tmp_path)}, unset=("MODEL_BUCKET",))
    assert [m for m in loaded if m.split(".")[0] == "plotly"] == []


def test_holdout_predictions_replay_the_gate_and_sample_students(planted: dict) -> None:
    """Without sampling, the held-out predictions give the gate's own metrics
    (irt.refresh.quality.holdout_scores); above ``max_students``, 1 held-out student in k."""
    from irt.engine.evaluate import metrics
    from irt.refresh.quality import holdout_scores
    from irt.refresh.report import holdout_predictions

    model, r, order = planted["model"], planted["responses"], planted["order"]
    item_ids = np.asarray(r.item_ids, dtype=object)[r.item]
    rng = np.random.default_rng(0)
    held = (r.student % 7 == 0) & (rng.random(r.n_answers) < 0.3)
    y, p, what = holdout_predictions(model, r.student, item_ids, r.correct, order, held)
    gate = holdout_scores(model, r.student, item_ids, r.correct, order, held)
    assert y.shape[0] == int(held.sum())
    assert metrics(y, p) == pytest.approx(gate, abs=1e-12)
    assert what == "the held-out answers of the gate's 172 held-out students"
    y, p, what = holdout_predictions(model, r.student, item_ids, r.correct, order, held,
                                     max_students=50)
    assert what == "the held-out answers of 1 in 4 of the gate's 172 held-out students (43)"
    kept = np.unique(r.student[held])[::4]
    assert y.shape[0] == int((held & np.isin(r.student, kept)).sum())


def test_holdout_predictions_from_the_gates_replay(planted: dict, monkeypatch) -> None:
    """``prepare`` hands the gate's replay of the new model to the report: the same answers
    and probabilities as replaying them again (to rounding: a chunk's running sums start
    elsewhere), sampled students included, and no online prediction is made."""
    from irt.refresh import report
    from irt.refresh.quality import holdout_replay
    from irt.refresh.report import holdout_predictions

    model, r, order = planted["model"], planted["responses"], planted["order"]
    item_ids = np.asarray(r.item_ids, dtype=object)[r.item]
    held = (r.student % 7 == 0) & (np.random.default_rng(0).random(r.n_answers) < 0.3)
    replay = holdout_replay(model, r.student, item_ids, r.correct, order, held)
    replayed = {k: holdout_predictions(model, r.student, item_ids, r.correct, order, held,
                                       max_students=k) for k in (1000, 50)}
    monkeypatch.setattr(report, "online_predictions", lambda *a, **k: 1 / 0)
    for k, (y0, p0, what0) in replayed.items():
        y, p, what = holdout_predictions(model, r.student, item_ids, r.correct, order, held,
                                         max_students=k, replay=replay)
        assert what == what0
        np.testing.assert_array_equal(y, y0)
        np.testing.assert_allclose(p, p0, rtol=0, atol=1e-12)


def test_report_figures_are_the_engines_bit_for_bit(planted: dict, doc: dict,
                                                    monkeypatch) -> None:
    """The pieces computed in blocks for speed give the engine's own values exactly: the test
    information (a few abilities at a time), the item table's columns (as Python numbers),
    the students' log-likelihoods at the nodes (the log-probability table in blocks of
    items)."""
    from irt.engine import fitdata
    from irt.refresh.report import _round

    model: ItemModel = planted["model"]
    theta = np.linspace(-4.0, 4.0, 161)
    assert doc["test_information"]["information"] == _round(model.test_information(theta), 5)
    diag = diagnose(model, planted["responses"])
    rows = diag.item_table()
    r = diag.item_residuals
    for key, column in (("n", r.n_answers), ("outfit", r.outfit), ("zh", r.zh),
                        ("x2_p", diag.x2.p), ("x2_df", diag.x2.df), ("s_x2", diag.s_x2.stat)):
        got = np.array([row[key] for row in rows], dtype=float)
        np.testing.assert_array_equal(got, column.astype(float))
        assert all(type(row[key]) in (int, float) for row in rows)
    d = diag.data
    x = np.linspace(-6.0, 6.0, 61)
    whole = fitdata.node_loglik(d.model, d.student, d.item, d.correct, d.n_students, x)
    monkeypatch.setattr(fitdata, "TABLE_BLOCK", 5)
    np.testing.assert_array_equal(
        fitdata.node_loglik(d.model, d.student, d.item, d.correct, d.n_students, x), whole)


def test_diagnostics_computed_ahead_give_the_same_report(planted: dict) -> None:
    """``prepare`` computes the report's fit statistics in a background thread
    (report_diagnostics) and hands them to build_report: the same document as computing them
    there, sampled answers included; a design they cannot handle gives the same warning."""
    from irt.refresh.report import report_diagnostics

    model, r = planted["model"], planted["responses"]
    config = ReportConfig(max_answers=10_000)  # 1 student in 3: the sample's note too
    here = build_report(model, r, config=config)
    ahead = build_report(model, r, config=config,
                         diagnostics=report_diagnostics(model, r, config))
    here.pop("generated_at"), ahead.pop("generated_at")
    assert ahead == here and any("1 student in 3" in n for n in here["notes"])
    unknown = Responses.from_arrays(np.array([0, 1]), np.array([0, 0]), np.array([1, 0]),
                                    item_ids=["not-in-the-bank"])
    failed = report_diagnostics(model, unknown)
    assert isinstance(failed, ValueError)
    doc = build_report(model, unknown, diagnostics=failed)
    assert doc["warnings"] == [f"diagnostics not computed: {failed}"]
