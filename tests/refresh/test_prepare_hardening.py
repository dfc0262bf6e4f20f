"""Issue #17 items 8 and 9 at prepare's door and in the refresh: a nested or duplicate-key
body is a JSON 400 logged as ``refresh_failed``; a window_end whose window cannot be a date
range is a 400; a nested serving model.json or report.json ends no refresh and no rollback
with a RecursionError."""

from __future__ import annotations

import json

import functions_framework
import pytest
from answerlogs import simulated_rows, write_csv
from refresh_run import Logs, config, run
from test_prepare_function import ENV_KEYS, SOURCE

from irt.errors import ConfigError
from irt.refresh.config import RunOptions
from irt.store import LocalStore
from irt.tools.ops import main as ops_main


@pytest.fixture
def app(monkeypatch, tmp_path):
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    log = write_csv(simulated_rows(300, 20, 12, seed=21), tmp_path / "log.csv")
    monkeypatch.setenv("SOURCE_FILE", str(log))
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "md"))
    return functions_framework.create_app(target="prepare", source=SOURCE).test_client()


@pytest.mark.parametrize(("body", "code"), [
    ("[" * 30_000 + "]" * 30_000, "invalid_json"),
    ('{"force": false, "force": true, "dry_run": true}', "invalid_json"),
    ('{"window_end": "0001-01-01T00:00:00Z"}', "invalid_field"),
    ('{"window_end": "9999-12-31T23:00:00-05:00"}', "invalid_field"),
], ids=["nested", "duplicate_key", "year_1", "past_9999"])
def test_a_hostile_body_is_a_json_400_and_a_refresh_failed_line(app, capsys, body, code):
    r = app.post("/", data=body, content_type="application/json")
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    assert r.get_json()["error"]["code"] == code
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert any(x.get("event") == "refresh_failed" and x["severity"] == "ERROR" for x in lines)


@pytest.mark.parametrize("end", ["0001-01-01T00:00:00Z", "1969-12-31T23:00:00Z",
                                 "9999-12-31T23:00:00-05:00"])
def test_window_end_out_of_range_is_a_config_error(end):
    with pytest.raises(ConfigError) as err:
        RunOptions.from_json({"window_end": end})
    assert err.value.field == "window_end"


NESTED = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("name", ["model.json", "report.json"])
def test_a_nested_serving_file_does_not_end_the_refresh_with_a_500(tmp_path, name):
    log = write_csv(simulated_rows(400, 25, 15, seed=11), tmp_path / "log.csv")
    cfg = config(tmp_path, log)
    store = LocalStore(cfg.model_dir)
    store.put("v0", name, NESTED.encode(), "application/json")
    store.move_pointer("v0", None)
    logs = Logs()
    result = run(cfg, logs=logs)
    assert result.status != 500, result.body
    if name == "model.json":  # a rejected serving model: the gate compares with nothing
        assert result.status == 200 and "serving_model_invalid" in logs.events()


def test_ops_list_show_and_rollback_survive_a_nested_report(tmp_path, capsys):
    store = LocalStore(tmp_path)
    for v in ("v1", "v2"):
        store.put(v, "model.json", b"{}", "application/json")
        store.put(v, "report.json", NESTED.encode(), "application/json")
    store.move_pointer("v2", None)
    assert ops_main(["--dir", str(tmp_path), "list"]) == 0
    assert ops_main(["--dir", str(tmp_path), "show", "v1"]) == 0
    assert ops_main(["--dir", str(tmp_path), "rollback", "v1", "--force"]) == 1  # {} is no model
    assert "does not load" in capsys.readouterr().err


# --------------------------------------------------------------------------- 13: full matches
@pytest.mark.parametrize(("env", "field"), [
    ({"BQ_TABLE": "proj-123.ds\n.tbl"}, "BQ_TABLE"),
    ({"BQ_TABLE": "proj-123.ds.tbl\n"}, "BQ_TABLE"),
    ({"BQ_TABLE": "proj-123\n.ds.tbl"}, "BQ_TABLE"),
    ({"BQ_TABLE": "proj-123.ds.tbl", "COLUMN_STUDENT": "student_id\n"}, "COLUMN_STUDENT"),
], ids=["dataset", "table", "project", "column"])
def test_a_trailing_newline_is_not_a_valid_name(env, field):
    from irt.refresh.config import RefreshConfig

    with pytest.raises(ConfigError) as err:
        RefreshConfig.from_env({"MODEL_BUCKET": "b", **env})
    assert err.value.field == field


def test_a_version_id_with_a_trailing_newline_is_refused(tmp_path, capsys):
    from irt.store import check_version

    with pytest.raises(ValueError):
        check_version("v1\n")
    assert ops_main(["--dir", str(tmp_path), "rollback", "v1\n"]) == 2


def test_an_unreadable_log_file_is_a_503_and_a_fixed_one_is_read_next_time(
        monkeypatch, tmp_path):
    # A ragged CSV (DuckDB cannot sniff its dialect) failed when the instance started: a 500
    # "misconfigured" carrying DuckDB's whole message, kept until the instance restarted.
    # Now the file is read at the request: 503 source_unavailable with the first line of
    # the message, and the next request reads the fixed file.
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    good = write_csv(simulated_rows(300, 20, 12, seed=21), tmp_path / "log.csv").read_text()
    log = tmp_path / "log.csv"
    log.write_text(good + "s0,i0\ns1,i1,1,2026-10-15 10:00:00,extra,more\n" + "\xff\n")
    monkeypatch.setenv("SOURCE_FILE", str(log))
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "md"))
    monkeypatch.setenv("DATA_MIN_ANSWERS", "50")
    app = functions_framework.create_app(target="prepare", source=SOURCE).test_client()
    r = app.post("/", json={"window_end": "2026-11-01T00:00:00Z", "window_days": 61})
    assert r.status_code == 503, r.get_data(as_text=True)[:300]
    body = r.get_json()
    assert body["status"] == "source_unavailable"
    assert body["error"].startswith("cannot read log.csv: ") and "\n" not in body["error"]
    log.write_text(good)
    r = app.post("/", json={"window_end": "2026-11-01T00:00:00Z", "window_days": 61})
    assert r.status_code == 200 and r.get_json()["status"] == "published", r.get_json()


def test_window_end_takes_a_lowercase_z_as_rfc_3339_allows():
    want = RunOptions.from_json({"window_end": "2026-11-01T00:00:00Z"}).window_end
    for raw in ("2026-11-01t00:00:00z", "2026-11-01T00:00:00z", "2026-11-01t01:00:00+01:00"):
        assert RunOptions.from_json({"window_end": raw}).window_end == want
