"""The refresh pipeline (irt.refresh.pipeline) end to end on the local path - DuckDB over a CSV log,
a local model directory - and on the Cloud Storage emulator: publish, re-run, data checks,
quality gate, force, dry run, pointer race, crash before the pointer move, operator CLI."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from answerlogs import edge_rows, simulated_rows, write_csv
from fresh_python import run_fresh
from refresh_run import END, Logs, config, run

from irt.engine.artifact import load_model
from irt.errors import ConfigError, PointerConflictError, SourceError
from irt.refresh.pipeline import RefreshConfig, RunOptions
from irt.refresh.quality import GateConfig, gate, holdout_mask
from irt.refresh.sources import DuckDBSource
from irt.store import LocalStore, describe
from irt.tools.ops import main as ops_main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def log_file(tmp_path):
    return write_csv(simulated_rows(400, 25, 15, seed=11), tmp_path / "log.csv")


# --------------------------------------------------------------------------- publish
def test_every_step_logs_its_outcome_in_one_shape(tmp_path, log_file):
    """Each step of a publishing run logs one line: its event, the run id and the step's wall
    time in ``seconds`` (last), in the order the steps run."""
    logs = Logs()
    assert run(config(tmp_path, log_file), logs=logs).status == 200
    steps = ["queried", "prepared", "calibrated", "gate", "monitoring", "artifacts_written",
             "canary", "model_published"]
    lines = {line["event"]: line for line in logs.lines if line.get("event") in steps}
    assert [e for e in logs.events() if e in steps] == steps
    for event in steps:
        line = lines[event]
        assert list(line)[-1] == "seconds" or list(line)[-2:] == ["seconds", "run_id"], event
        assert isinstance(line["seconds"], float) and line["seconds"] >= 0, event


def test_first_run_publishes_complete_artifacts(tmp_path, log_file):
    logs = Logs()
    cfg = config(tmp_path, log_file)
    result = run(cfg, logs=logs)
    assert result.status == 200, result.body
    body = result.body
    assert body["status"] == "published" and body["decision"] == "accepted"
    store = LocalStore(cfg.model_dir)
    version, _ = store.read_pointer()
    assert version == body["version"]
    assert set(store.versions()[version]) == {"prepared.csv.gz", "model.json", "metrics.json",
                                              "report.html", "report.json", "PUBLISHED"}
    model = load_model(store.get(version, "model.json"))
    assert model.version == version and model.model_type == "2pl" and model.n_items == 25
    report = json.loads(store.get(version, "report.json"))
    assert report["data"]["rows_out"] == 6000 and report["decision"] == "accepted"
    assert report["gate"]["passed"] and report["gate"]["n_holdout_answers"] > 100
    csv_text = gzip.decompress(store.get(version, "prepared.csv.gz")).decode()
    lines = csv_text.splitlines()
    assert lines[0] == '"student_id","item_id","correct","answered_at","holdout"'
    assert len(lines) - 1 == 6000
    assert sum(line.endswith(",1") for line in lines[1:]) == report["gate"]["n_holdout_answers"]
    # logs: one JSON object per step, all with the run id, no student id anywhere
    assert {"refresh_started", "queried", "prepared", "calibrated", "gate",
            "artifacts_written", "model_published", "refresh_finished"} <= set(logs.events())
    assert {line["run_id"] for line in logs.lines} == {body["run_id"]}
    assert "stu-" not in json.dumps(logs.lines)
    calibrated = next(line for line in logs.lines if line.get("event") == "calibrated")
    assert calibrated["iterations"] > 0 and calibrated["log_likelihood"] < 0


def test_rerunning_the_same_window_changes_nothing(tmp_path, log_file):
    cfg = config(tmp_path, log_file)
    first = run(cfg)
    store = LocalStore(cfg.model_dir)
    stamp = {p: p.stat().st_mtime_ns for p in Path(store.location).rglob("*")}
    second = run(cfg)
    assert second.status == 200 and second.body["status"] == "unchanged"
    assert second.body["version"] == first.body["version"]
    assert {p: p.stat().st_mtime_ns for p in Path(store.location).rglob("*")} == stamp


def test_a_new_window_is_gated_against_the_serving_model(tmp_path):
    rows = simulated_rows(400, 25, 15, seed=11)
    rows += simulated_rows(400, 25, 15, seed=12, start=datetime(2026, 10, 25, tzinfo=UTC),
                           student_prefix="new")
    cfg = config(tmp_path, write_csv(rows, tmp_path / "log.csv"))
    first = run(cfg, options={"window_end": "2026-10-24T00:00:00Z"})
    second = run(cfg)
    assert first.status == second.status == 200
    gate_doc = second.body["gate"]
    assert gate_doc["serving"] is not None and gate_doc["passed"]
    assert abs(gate_doc["new"]["auc"] - gate_doc["serving"]["auc"]) < 0.05
    assert LocalStore(cfg.model_dir).read_pointer()[0] == second.body["version"]
    statuses = {v.version: v.status for v in describe(LocalStore(cfg.model_dir))}
    assert statuses == {first.body["version"]: "published", second.body["version"]: "serving"}


# --------------------------------------------------------------------------- rejections
def test_an_unconverged_fit_is_never_published(tmp_path, log_file, monkeypatch):
    """The real calibration, capped at 2 EM cycles: the run says why and is rejected, the
    served model stays; with the learning-aware options, their EM is held to the same rule."""
    from dataclasses import replace

    from irt.engine import learning_fit
    from irt.refresh import pipeline

    cfg = config(tmp_path, log_file)
    first = run(cfg, options={"window_days": 30})
    real_fit = pipeline.fit
    monkeypatch.setattr(pipeline, "fit", lambda responses, fit_config, *skills: real_fit(
        responses, replace(fit_config, max_iter=2), *skills))
    logs = Logs()
    failed = run(cfg, logs=logs)
    assert failed.status == 422 and failed.body["status"] == "rejected"
    assert "EM did not converge in 2 cycles" in failed.body["error"]
    calibrated = next(line for line in logs.lines if line.get("event") == "calibrated")
    assert calibrated["converged"] is False and calibrated["iterations"] == 2
    store = LocalStore(cfg.model_dir)
    assert store.read_pointer()[0] == first.body["version"]
    assert {v.version: v.status for v in describe(store)}[failed.body["version"]] == "rejected"
    monkeypatch.setattr(pipeline, "fit", real_fit)
    real_learning = learning_fit.fit_learning
    monkeypatch.setattr(learning_fit, "fit_learning", lambda *args: real_learning(
        *args[:-1], replace(args[-1], max_iter=1)))
    options = config(tmp_path, log_file, MODEL_OPTIONS="skills,pfa")
    failed = run(options)
    assert failed.status == 422, failed.body
    assert "learning options: EM did not converge in" in failed.body["error"]
    assert store.read_pointer()[0] == first.body["version"]


def test_failed_gate_keeps_the_old_model_and_force_overrides(tmp_path, log_file):
    cfg = config(tmp_path, log_file)
    first = run(cfg, options={"window_days": 30})
    strict = config(tmp_path, log_file, GATE_MIN_AUC="0.99")
    logs = Logs()
    failed = run(strict, logs=logs)
    assert failed.status == 422 and failed.body["status"] == "rejected"
    assert "AUC" in failed.body["error"] and "floor 0.99" in failed.body["error"]
    store = LocalStore(cfg.model_dir)
    assert store.read_pointer()[0] == first.body["version"]
    error = logs.lines[-1]
    assert error["severity"] == "ERROR" and error["event"] == "refresh_failed"
    assert error["gate"]["new"]["auc"] > 0.5  # the figures are in the log line
    statuses = {v.version: v.status for v in describe(store)}
    assert statuses[failed.body["version"]] == "rejected"
    forced = run(strict, options={"force": True})
    assert forced.status == 200 and forced.body["decision"] == "forced"
    assert store.read_pointer()[0] == forced.body["version"] == failed.body["version"]


def test_dry_run_writes_artifacts_but_does_not_publish(tmp_path, log_file):
    cfg = config(tmp_path, log_file)
    result = run(cfg, options={"dry_run": True})
    assert result.status == 200 and result.body["status"] == "dry_run"
    store = LocalStore(cfg.model_dir)
    assert store.read_pointer()[0] is None
    assert [v.status for v in describe(store)] == ["unpublished"]


def test_malformed_rows_beyond_the_threshold_stop_the_run(tmp_path):
    rows = simulated_rows(200, 20, 10, seed=2)
    for row in rows[::5]:
        row["correct"] = "maybe"
    cfg = config(tmp_path, write_csv(rows, tmp_path / "log.csv"))
    result = run(cfg)
    assert result.status == 422 and result.body["status"] == "invalid_data"
    assert "20.0% of 2000 rows are malformed (invalid_correct 400)" in result.body["error"]
    store = LocalStore(cfg.model_dir)
    assert store.read_pointer()[0] is None
    assert [(v.status, v.decision) for v in describe(store)] == [("rejected", "rejected")]
    assert not any("model.json" in names for names in store.versions().values())


def test_row_count_is_checked_against_the_previous_run(tmp_path, log_file):
    cfg = config(tmp_path, log_file)
    assert run(cfg).status == 200
    small = run(cfg, options={"window_end": "2026-10-05T00:00:00Z"})  # a fifth of the log
    assert small.status == 422 and "previous run" in small.body["error"]


def test_empty_window_and_bad_schema_are_refused(tmp_path, log_file):
    cfg = config(tmp_path, log_file)
    empty = run(cfg, options={"window_end": "2020-01-01T00:00:00Z"})
    assert empty.status == 422 and empty.body["status"] == "no_data"
    renamed = config(tmp_path, log_file, COLUMN_CORRECT="is_correct")
    bad = run(renamed)
    assert bad.status == 422 and bad.body["status"] == "invalid_schema"
    assert bad.body["error"].startswith("COLUMN_CORRECT: column 'is_correct' is not in the table")
    assert LocalStore(cfg.model_dir).versions() == {}


def test_a_header_only_csv_is_no_data_not_a_schema_error(tmp_path):
    """Issue 17 item 14: the local path read a header-only CSV's columns as text, so the run
    stopped as ``invalid_schema``; it is an empty log: 422 ``no_data``."""
    path = tmp_path / "log.csv"
    path.write_text("student_id,item_id,correct,answered_at,skill_id\n")
    result = run(config(tmp_path, path))
    assert result.status == 422 and result.body["status"] == "no_data", result.body


def test_one_bad_time_in_30k_rows_is_counted_and_the_run_goes_on(tmp_path):
    """Issue 17 item 14: one ``answered_at`` that is not a time in 30,000 rows made the sniffed
    column text and failed the run as ``invalid_schema``; now that row is dropped and counted."""
    rows = simulated_rows(2000, 25, 15, seed=11)
    rows[12345]["answered_at"] = "yesterday"
    result = run(config(tmp_path, write_csv(rows, tmp_path / "log.csv")))
    assert result.status == 200, result.body
    assert result.body["data"]["rows_in"] == 30000
    assert result.body["data"]["dropped"]["invalid_answered_at"] == 1


@pytest.mark.parametrize(("env", "cap"), [({"MAX_MODEL_ITEMS": "24"}, "MAX_MODEL_ITEMS"),
                                         ({"MAX_MODEL_BYTES": "2000"}, "MAX_MODEL_BYTES")])
def test_a_model_over_the_size_caps_is_never_published(tmp_path, log_file, env, cap):
    """Issue 17 item 4: a model over ``MAX_MODEL_ITEMS`` (25 items here) or
    ``MAX_MODEL_BYTES`` is refused before anything is written, even with ``force``: 422
    ``model_too_large`` naming the cap, ``LATEST`` unchanged."""
    cfg = config(tmp_path, log_file, **env)
    result = run(cfg, options={"force": True})
    assert result.status == 422, result.body
    assert result.body["status"] == "model_too_large"
    assert cap in result.body["error"]
    assert LocalStore(cfg.model_dir).versions() == {}
    assert run(config(tmp_path, log_file)).status == 200  # within the default caps


def test_bad_rows_are_dropped_and_counted(tmp_path):
    rows, expected = edge_rows()
    rows += simulated_rows(100, 10, 10, seed=4)
    cfg = config(tmp_path, write_csv(rows, tmp_path / "log.csv"), MIN_ANSWERS_PER_ITEM="2",
                 DATA_MIN_ANSWERS="10", DATA_MAX_INVALID_SHARE="0.5")
    result = run(cfg)
    assert result.status == 200, result.body
    dropped = result.body["data"]["dropped"]
    for reason in ("null_student_id", "null_item_id", "id_too_long", "invalid_correct",
                   "invalid_answered_at", "duplicate_attempt"):
        assert dropped[reason] == expected[reason], reason


class FailingSource(DuckDBSource):
    """Fails the answers query (the second query of a run): BigQuery dying mid-run."""

    def query(self, sql, params):
        if "FROM kept\n" in sql and "UNION ALL" not in sql:
            raise SourceError("query on answers failed: 503 backend error")
        return super().query(sql, params)


def test_source_error_mid_run_publishes_nothing(tmp_path, log_file):
    cfg = config(tmp_path, log_file)
    result = run(cfg, source=FailingSource(log_file))
    assert result.status == 503 and result.body["status"] == "source_unavailable"
    assert LocalStore(cfg.model_dir).versions() == {}


# --------------------------------------------------------------------------- races and crashes
class RacingStore(LocalStore):
    """Another run publishes between this run's uploads and its pointer move."""

    def put(self, version, name, data, content_type):
        super().put(version, name, data, content_type)
        if name == "report.json":
            _, token = self.read_pointer()
            super().put("other-run", "model.json", b"{}", "application/json")
            super().put("other-run", "report.json", b"{}", "application/json")
            LocalStore.move_pointer(self, "other-run", token)


def test_losing_the_pointer_race_is_a_409_and_leaves_the_winner(tmp_path, log_file):
    cfg = config(tmp_path, log_file)
    result = run(cfg, store=RacingStore(cfg.model_dir))
    assert result.status == 409 and result.body["status"] == "pointer_conflict"
    store = LocalStore(cfg.model_dir)
    assert store.read_pointer()[0] == "other-run"
    statuses = {v.version: v.status for v in describe(store)}
    assert statuses[result.body["version"]] == "unpublished"


class BarrierStore(LocalStore):
    """Both runs read the pointer before either moves it."""

    barrier = threading.Barrier(2)
    waited = False

    def read_pointer(self):
        out = super().read_pointer()
        if not self.waited:  # the run's first read (move_pointer reads again, under its lock)
            self.waited = True
            self.barrier.wait(timeout=60)
        return out


def test_two_concurrent_runs_publish_exactly_once(tmp_path, log_file):
    cfg = config(tmp_path, log_file)
    results: dict[str, Any] = {}

    def go(end: str) -> None:
        results[end] = run(cfg, store=BarrierStore(cfg.model_dir),
                           options={"window_end": end})

    threads = [threading.Thread(target=go, args=(end,))
               for end in ("2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    statuses = sorted(r.status for r in results.values())
    assert statuses == [200, 409]
    winner = next(r for r in results.values() if r.status == 200)
    assert LocalStore(cfg.model_dir).read_pointer()[0] == winner.body["version"]


KILL_SCRIPT = """
import os, signal, sys
sys.path[:0] = [{shared!r}]
from irt.refresh.pipeline import RefreshConfig, RunOptions, run_refresh
from irt.refresh.sources import DuckDBSource
from irt.store import LocalStore

class Dies(LocalStore):
    def move_pointer(self, version, token):
        os.kill(os.getpid(), signal.SIGKILL)   # the instance dies right here

cfg = RefreshConfig.from_env({env!r})
run_refresh(cfg, DuckDBSource(cfg.source_file), Dies(cfg.model_dir),
            RunOptions.from_json({options!r}), log=lambda *a, **k: None)
"""


def test_killed_between_upload_and_pointer_move(tmp_path, log_file):
    env = {"SOURCE_FILE": str(log_file), "MODEL_DIR": str(tmp_path / "models"),
           "MIN_ANSWERS_PER_ITEM": "5", "GATE_HOLDOUT_STUDENTS": "0.3"}
    cfg = RefreshConfig.from_env(env)
    first = run(cfg, options={"window_days": 30})
    script = KILL_SCRIPT.format(shared=str(ROOT / "shared"), env=env, options=END)
    proc = run_fresh(script)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    store = LocalStore(cfg.model_dir)
    assert store.read_pointer()[0] == first.body["version"]  # still the complete old model
    load_model(store.get(first.body["version"], "model.json"))
    orphans = [v for v in describe(store) if v.status == "unpublished"]
    assert len(orphans) == 1
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stdout", out)
        assert ops_main(["--dir", str(tmp_path / "models"), "list"]) == 0
    assert f"{orphans[0].version}" in out.getvalue() and "unpublished" in out.getvalue()


# --------------------------------------------------------------------------- operator CLI
def test_ops_show_and_rollback(tmp_path, log_file, capsys):
    cfg = config(tmp_path, log_file)
    old = run(cfg, options={"window_days": 30}).body["version"]
    new = run(cfg).body["version"]
    root = ["--dir", str(tmp_path / "models")]
    assert ops_main([*root, "show", old]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["report"]["decision"] == "accepted" and shown["serving"] is False
    assert ops_main([*root, "rollback", old]) == 0
    assert f"LATEST: {new} -> {old}" in capsys.readouterr().out
    assert LocalStore(cfg.model_dir).read_pointer()[0] == old
    assert ops_main([*root, "rollback", "no-such-version"]) == 1
    assert "no version no-such-version" in capsys.readouterr().err
    assert ops_main([*root, "rollback", "../etc"]) == 2


def test_ops_refuses_rejected_and_incomplete_versions(tmp_path, log_file, capsys):
    cfg = config(tmp_path, log_file, GATE_MIN_AUC="0.99")
    rejected = run(cfg).body["version"]
    store = LocalStore(cfg.model_dir)
    store.put("half-done", "prepared.csv.gz", b"", "application/gzip")
    root = ["--dir", str(tmp_path / "models")]
    assert ops_main([*root, "rollback", rejected]) == 1
    assert "was rejected" in capsys.readouterr().err
    assert ops_main([*root, "rollback", "half-done"]) == 1
    assert "incomplete" in capsys.readouterr().err
    assert ops_main([*root, "rollback", rejected, "--force"]) == 0
    assert store.read_pointer()[0] == rejected


def test_ops_module_runs_from_the_command_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "irt.tools.ops", "--dir", str(tmp_path), "list"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "shared")})
    assert proc.returncode == 0 and "no versions" in proc.stdout


# --------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(("env", "field"), [
    ({"BQ_TABLE": "proj.ds.t; DROP TABLE x"}, "BQ_TABLE"),
    ({"BQ_TABLE": "my-project.ds.answers", "MODEL_TYPE": "4pl"}, "MODEL_TYPE"),
    ({"BQ_TABLE": "my-project.ds.answers", "WINDOW_DAYS": "0"}, "WINDOW_DAYS"),
    ({"BQ_TABLE": "my-project.ds.answers", "GATE_MAX_AUC_DROP": "nan"}, "GATE_MAX_AUC_DROP"),
    ({"BQ_TABLE": "my-project.ds.answers", "COLUMN_ITEM": "item id"}, "COLUMN_ITEM"),
    ({"BQ_TABLE": "my-project.ds.answers", "MODEL_PREFIX": "../x"}, "MODEL_PREFIX"),
    ({"BQ_TABLE": "my-project.ds.answers", "MODEL_OPTIONS": "recency", "PRIOR_B": "none"},
     "PRIOR_B"),
    ({"BQ_TABLE": "my-project.ds.answers", "LEARNING_MAX_ANSWERS": "999"},
     "LEARNING_MAX_ANSWERS"),
    ({"BQ_TABLE": "my-project.ds.answers", "LEARNING_MAX_ANSWERS": "2e6"},
     "LEARNING_MAX_ANSWERS"),
    ({}, "BQ_TABLE"),
])
def test_configuration_errors_name_the_variable(env, field):
    base = {"MODEL_BUCKET": "b"}
    with pytest.raises(ConfigError) as err:
        RefreshConfig.from_env({**base, **env})
    assert err.value.field == field


@pytest.mark.parametrize(("raw", "cap"), [("", 500_000), ("800000", 800_000),
                                         ("none", None), ("NONE", None)])
def test_the_learning_cap_is_read_from_the_environment(raw, cap):
    config = RefreshConfig.from_env({"MODEL_BUCKET": "b", "BQ_TABLE": "my-project.ds.answers",
                                     "LEARNING_MAX_ANSWERS": raw})
    assert config.learning_max_answers == cap


@pytest.mark.parametrize(("body", "field"), [
    ({"force": "yes"}, "force"), ({"window_end": "yesterday"}, "window_end"),
    ({"window_end": "2026-11-01T00:00:00"}, "window_end"), ({"window_days": 0}, "window_days"),
    ({"model_type": "'; DROP TABLE x"}, "model_type"), ({"table": "x"}, "table"),
    ([], "body"),
])
def test_run_options_are_validated(body, field):
    with pytest.raises(ConfigError) as err:
        RunOptions.from_json(body)
    assert err.value.field == field


# --------------------------------------------------------------------------- gate units
def test_gate_compares_with_the_serving_model():
    new = {"auc": 0.70, "log_loss": 0.60}
    assert gate(new, {"auc": 0.702, "log_loss": 0.598}, GateConfig(), 100, 10).passed
    worse = gate(new, {"auc": 0.72, "log_loss": 0.55}, GateConfig(), 100, 10)
    assert not worse.passed and len(worse.reasons) == 2
    assert not gate(new, None, GateConfig(), 0, 0).passed


def test_gate_says_why_an_all_right_holdout_validates_nothing():
    # held-out answers all right (or all wrong): the AUC is NaN; the reason said "AUC nan
    # below the floor 0.55"
    result = gate({"auc": float("nan"), "log_loss": 0.1}, None, GateConfig(), 100, 10)
    assert not result.passed
    assert result.reasons == ["AUC undefined: the held-out answers are all right or all wrong "
                              "(the model cannot be validated on them)"]


def test_gate_compares_a_model_with_options_with_the_plain_challenger():
    new = {"auc": 0.75, "log_loss": 0.55, "ece": 0.040}
    plain = {"auc": 0.74, "log_loss": 0.56, "ece": 0.031}
    result = gate(new, None, GateConfig(), 100, 10, plain)
    assert result.passed and result.to_dict()["plain"] == plain
    worse_ece = gate({**new, "ece": 0.0415}, None, GateConfig(), 100, 10, plain)
    assert not worse_ece.passed
    assert worse_ece.reasons == ["calibration error (ECE) 0.0415 against 0.0310 for the plain "
                                 "2PL challenger (allowed rise 0.01)"]
    worse_auc = gate({**new, "auc": 0.73}, None, GateConfig(), 100, 10, plain)
    assert not worse_auc.passed and "plain 2PL challenger" in worse_auc.reasons[0]
    # the rise allowed is a setting (GATE_MAX_ECE_OVER_PLAIN), from the one defaults object
    loose = GateConfig(max_ece_over_plain=0.02)
    assert gate({**new, "ece": 0.0415}, None, loose, 100, 10, plain).passed
    # against_plain: the reasons against the plain challenger only (auto falls back on them)
    assert worse_ece.against_plain == worse_ece.reasons and result.against_plain == []
    serving = {"auc": 0.80, "log_loss": 0.50, "ece": 0.02}
    both = gate({**new, "ece": 0.0415}, serving, GateConfig(), 100, 10, plain)
    assert len(both.reasons) == 3 and both.against_plain == both.reasons[2:]
    assert all("serving" in r for r in both.reasons[:2])
    assert gate(new, serving, GateConfig(), 100, 10).against_plain == []


def test_holdout_is_the_latest_answers_of_a_deterministic_sample():
    student = np.repeat(np.arange(200), 10)
    order = np.tile(np.arange(10.0), 200)
    ids = [f"s{k}" for k in range(200)]
    cfg = GateConfig(holdout_students=0.25, holdout_last=0.2)
    mask = holdout_mask(student, ids, order, cfg)
    assert np.array_equal(mask, holdout_mask(student, ids, order, cfg))
    held = np.unique(student[mask])
    assert 30 < held.size < 70
    for s in held:
        assert np.array_equal(np.flatnonzero(mask[student == s]), [8, 9])
    capped = holdout_mask(student, ids, order, GateConfig(holdout_students=1.0,
                                                          holdout_max_students=7))
    assert np.unique(student[capped]).size == 7


def test_a_small_log_still_holds_out_its_minimum_of_students():
    """37 students of whom none hashes below the share (as the Spanish log's first attempts
    in prepare: the gate had nothing to judge and refused every refresh): the minimum, the
    lowest hashes, is held out, a superset of the share's sample; a student with one answer
    is never held out."""
    from irt.engine.hashing import unit_hash

    ids = [f"u{k}" for k in range(2000)]
    ids = [*[i for i in ids if unit_hash(i) >= 0.1][:36], "one"]
    student = np.r_[np.repeat(np.arange(36), 10), 36]
    order = np.r_[np.tile(np.arange(10.0), 36), 0.0]
    for name, gate_config in (("share", GateConfig()),
                              ("capped", GateConfig(holdout_max_students=3)),
                              ("none", GateConfig(holdout_min_students=1, holdout_students=1e-6))):
        mask = holdout_mask(student, ids, order, gate_config)
        held = np.unique(student[mask])
        want = {"share": 5, "capped": 3, "none": 1}[name]
        assert held.size == want, name
        lowest = np.argsort([unit_hash(i) for i in ids[:36]], kind="stable")[:want]
        assert set(held) == set(lowest), name
        assert 36 not in held
    # a share that samples enough keeps its own sample (the minimum adds nobody)
    many = [f"v{k}" for k in range(200)]
    big = np.repeat(np.arange(200), 10)
    order = np.tile(np.arange(10.0), 200)
    assert np.array_equal(holdout_mask(big, many, order, GateConfig(holdout_students=0.25)),
                          holdout_mask(big, many, order, GateConfig(holdout_students=0.25,
                                                                    holdout_min_students=1)))


def test_local_store_pointer_compare_and_swap(tmp_path):
    store = LocalStore(tmp_path)
    assert store.read_pointer() == (None, None)
    store.move_pointer("v1", None)
    with pytest.raises(PointerConflictError):
        store.move_pointer("v2", None)
    _, token = store.read_pointer()
    store.move_pointer("v2", token)
    assert store.read_pointer()[0] == "v2"
