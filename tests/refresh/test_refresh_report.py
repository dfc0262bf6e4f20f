"""``prepare`` writes ``report.html`` beside each version's ``model.json`` (irt.refresh.pipeline
``build_report_html``): the new model against the serving one, the gate, the data and the
warnings; a rejected model's too; a failing report never fails a refresh; ``irt.ops show``
gives its address.  The page in a real browser: ``tests/tools/test_report_browser.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from answerlogs import simulated_rows, write_csv
from refresh_run import Logs, config, run
from report_cases import page_data, page_figures

from irt.engine.artifact import load_model
from irt.store import LocalStore
from irt.tools.ops import main as ops_main


@pytest.fixture(scope="module")
def two_windows(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A first window published, then a second gated against it (as make demo runs)."""
    tmp_path = tmp_path_factory.mktemp("windows")
    rows = simulated_rows(400, 25, 15, seed=11)
    rows += simulated_rows(400, 25, 15, seed=12, start=datetime(2026, 10, 25, tzinfo=UTC),
                           student_prefix="new")
    cfg = config(tmp_path, write_csv(rows, tmp_path / "log.csv"))
    first = run(cfg, options={"window_end": "2026-10-24T00:00:00Z"})
    logs = Logs()
    second = run(cfg, logs=logs)
    assert first.status == second.status == 200, (first.body, second.body)
    return {"tmp": tmp_path, "cfg": cfg, "first": first.body["version"],
            "second": second.body["version"], "logs": logs,
            "store": LocalStore(cfg.model_dir)}


def test_each_version_has_its_report(two_windows: dict) -> None:
    store = two_windows["store"]
    for version in (two_windows["first"], two_windows["second"]):
        assert "report.html" in store.versions()[version]
    built = [line for line in two_windows["logs"].lines if line.get("event") == "report_built"]
    assert len(built) == 1 and built[0]["severity"] == "INFO"
    html = store.get(two_windows["second"], "report.html")
    assert built[0]["report_html_bytes"] == len(html)


def test_the_report_compares_with_the_serving_model(two_windows: dict) -> None:
    store, first, second = two_windows["store"], two_windows["first"], two_windows["second"]
    html = store.get(second, "report.html").decode()
    report = json.loads(store.get(second, "report.json"))
    new, old = (load_model(store.get(v, "model.json")) for v in (second, first))
    assert f"<title>IRT model {second} (accepted)</title>" in html
    assert set(page_figures(html)) == {"fig-icc", "fig-iif", "fig-test", "fig-ability",
                                       "fig-calibration", "fig-drift"}
    drift = page_figures(html)["fig-drift"]["data"]
    points = [t for t in drift if t["mode"] == "markers"]
    b_trace = points[1]
    pos = old.positions(list(new.item_ids))
    by_id = dict(zip(b_trace["text"], zip(b_trace["x"], b_trace["y"], strict=True),
                     strict=True))
    for j, item_id in enumerate(new.item_ids):
        x, y = by_id[item_id]
        assert x == pytest.approx(old.b[pos[j]], abs=1e-3)
        assert y == pytest.approx(new.b[j], abs=1e-3)
    # the gate's held-out answers make the reliability diagram: its AUC is the gate's
    gate = report["gate"]
    assert (f"{gate['n_holdout_answers']} predictions: the held-out answers of the gate&#x27;s "
            f"{gate['n_holdout_students']} held-out students") in html
    auc = f"AUC {gate['new']['auc']:.4g}"
    assert auc in html
    assert "Quality gate: passed" in html and f"serving version</th><td>{first}" in html
    assert f"rows_out</th><td>{report['data']['rows_out']}" in html
    items = page_data(html)["items"]
    assert {r["id"] for r in items} == set(new.item_ids)
    train = report["data"]["rows_out"] - gate["n_holdout_answers"]
    assert sum(r["n"] for r in items) == train  # fit statistics on the training answers


def test_a_rejected_model_has_a_report_that_says_why(tmp_path: Path) -> None:
    cfg = config(tmp_path, write_csv(simulated_rows(300, 20, 12, seed=3), tmp_path / "l.csv"),
                 GATE_MIN_AUC="0.99")
    result = run(cfg)
    assert result.status == 422 and result.body["status"] == "rejected"
    html = LocalStore(cfg.model_dir).get(result.body["version"], "report.html").decode()
    assert "This refresh: <span class='bad'>rejected</span>" in html
    assert "Quality gate: FAILED" in html and "decision reason: " in html and "0.99" in html


def test_a_failing_report_never_fails_the_refresh(tmp_path: Path, monkeypatch) -> None:
    import irt.refresh.report

    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("planted")

    monkeypatch.setattr(irt.refresh.report, "build_report", broken)
    logs = Logs()
    cfg = config(tmp_path, write_csv(simulated_rows(300, 20, 12, seed=3), tmp_path / "l.csv"))
    result = run(cfg, logs=logs)
    assert result.status == 200 and result.body["status"] == "published"
    names = LocalStore(cfg.model_dir).versions()[result.body["version"]]
    assert "report.html" not in names and "report.json" in names
    failed = [line for line in logs.lines if line.get("event") == "report_failed"]
    assert len(failed) == 1 and failed[0]["severity"] == "WARNING"
    assert failed[0]["error"] == "LinAlgError: planted"


def test_the_gates_replay_serves_the_slices_and_the_report(tmp_path: Path,
                                                           monkeypatch) -> None:
    """The new model's held-out students are replayed online once, by the gate: the slices
    and the report's reliability diagram reuse that replay (the skew check replays its own
    students; the 1PL challenger is scored by the gate's code)."""
    from irt.refresh import monitoring, quality, report

    calls: dict[str, int] = {}
    for module in (quality, monitoring, report):
        def counted(*args, _name=module.__name__, _real=module.online_predictions, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, "online_predictions", counted)
    cfg = config(tmp_path, write_csv(simulated_rows(300, 20, 12, seed=3), tmp_path / "l.csv"))
    result = run(cfg)
    assert result.status == 200 and result.body["status"] == "published"
    assert calls == {"irt.refresh.quality": 2, "irt.refresh.monitoring": 1}
    html = LocalStore(cfg.model_dir).get(result.body["version"], "report.html").decode()
    assert f"AUC {result.body['gate']['new']['auc']:.4g}" in html


def test_the_fit_statistics_are_computed_beside_the_checks(tmp_path: Path,
                                                          monkeypatch) -> None:
    """The report's fit statistics (irt.refresh.report.report_diagnostics) are computed on
    the background thread after the calibration, once, and the page shows them."""
    import threading

    import irt.engine.diagnostics
    from irt.refresh import report
    from irt.refresh.pipeline import BACKGROUND

    threads: list[str] = []
    real = report.report_diagnostics

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(report, "report_diagnostics", spy)
    diagnosed = []
    real_diagnose = irt.engine.diagnostics.diagnose
    monkeypatch.setattr(irt.engine.diagnostics, "diagnose",
                        lambda *a, **k: diagnosed.append(1) or real_diagnose(*a, **k))
    cfg = config(tmp_path, write_csv(simulated_rows(300, 20, 12, seed=3), tmp_path / "l.csv"))
    result = run(cfg)
    assert result.status == 200 and result.body["status"] == "published"
    assert len(threads) == 1 and threads[0].startswith(BACKGROUND) and diagnosed == [1]
    html = LocalStore(cfg.model_dir).get(result.body["version"], "report.html").decode()
    assert "fig-ability" in html and page_data(html)["items"][0].get("outfit") is not None


def test_ops_show_links_the_report(two_windows: dict, capsys) -> None:
    root = ["--dir", str(two_windows["tmp"] / "models")]
    assert ops_main([*root, "show", two_windows["second"]]) == 0
    shown = json.loads(capsys.readouterr().out)
    link = shown["report_html"]
    assert link.startswith("file://") and link.endswith(f"/{two_windows['second']}/report.html")
    assert Path(link[len("file://"):]).read_bytes() == two_windows["store"].get(
        two_windows["second"], "report.html")


def test_ops_report_link_of_a_bucket() -> None:
    from irt.tools.ops import report_link

    class Bucket:
        location = "gs://irt-models-prod/models"

    assert report_link(Bucket(), "20261101T000000Z-abc") == (
        "https://storage.cloud.google.com/irt-models-prod/models/20261101T000000Z-abc/"
        "report.html")
