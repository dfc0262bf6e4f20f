"""Drill: no student identifier in any log line of ``prepare`` or ``predict``.

``prepare`` is driven through the Functions Framework (as Cloud Scheduler calls it) over answer
logs whose student ids all carry the mark ``SID-``, through every outcome a run can have -
published, unchanged, dry run, malformed rows, a changed schema, an empty window, a rejected
gate, ids too long, a student id sent as an override - and everything it writes to stdout and
stderr is captured: every line must be one JSON object, and none may contain the mark. The
artifacts ``predict`` loads or an operator reads (``model.json``, ``metrics.json``,
``report.json``) must not carry it either; only ``prepared.csv.gz`` (the calibration answers,
deleted after ``training_snapshot_retention_days``) does.

``predict``'s side: ``tests/drills/test_drill_bad_input.py`` puts student ids everywhere in 10k
requests and scans the live server's log; ``tests/serving/test_predict.py`` checks the test-client
log.
One gap is pinned below: an unknown URL path is logged verbatim.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import functions_framework
import pytest
import requests
from answerlogs import simulated_rows, write_csv
from livesrv import live_server

pytestmark = pytest.mark.drills

ROOT = Path(__file__).resolve().parents[2]
SOURCE = str(ROOT / "functions" / "prepare" / "main.py")
MARK = "SID-"
BODY = {"window_end": "2026-11-01T00:00:00Z", "window_days": 61}
ENV_KEYS = ("BQ_TABLE", "SOURCE_FILE", "MODEL_BUCKET", "MODEL_DIR", "GATE_MIN_AUC",
            "MIN_ANSWERS_PER_ITEM", "GATE_HOLDOUT_STUDENTS", "DATA_MAX_INVALID_SHARE")


def rows() -> list[dict[str, Any]]:
    out = simulated_rows(250, 20, 12, seed=31, student_prefix="SID")
    assert all(r["student_id"].startswith(MARK) for r in out)
    return out


def prepare_app(monkeypatch: pytest.MonkeyPatch, tmp: Path, data: list[dict[str, Any]],
                **env: str):
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    settings = {"SOURCE_FILE": str(write_csv(data, tmp / "log.csv")),
                "MODEL_DIR": str(tmp / "models"), "MIN_ANSWERS_PER_ITEM": "5",
                "GATE_HOLDOUT_STUDENTS": "0.3", **env}
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    return functions_framework.create_app(target="prepare", source=SOURCE).test_client()


def malformed(data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in data[::4]:
        row["correct"] = f"maybe-{row['student_id']}"
    return data


def text_timestamps(data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    data[5]["answered_at"] = data[5]["student_id"]  # one value that is no time
    return data


def long_ids(data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in data[:30]:
        row["student_id"] = row["student_id"] + "x" * 300
    return data


#: name -> (rows, environment, request bodies in order, statuses expected in order)
SCENARIOS: dict[str, tuple[Any, dict[str, str], list[Any], list[int]]] = {
    "published, then unchanged": (rows, {}, [BODY, BODY], [200, 200]),
    "dry run": (rows, {}, [{**BODY, "dry_run": True}], [200]),
    "malformed rows beyond the threshold": (lambda: malformed(rows()), {}, [BODY], [422]),
    "malformed rows within a lax threshold": (lambda: malformed(rows()),
                                              {"DATA_MAX_INVALID_SHARE": "0.5"}, [BODY], [200]),
    # one row's answered_at is a student id: dropped and counted (invalid_answered_at), the
    # run goes on (issue 17 item 14; before, the local path refused the file: 422)
    "answered_at is no timestamp": (lambda: text_timestamps(rows()), {}, [BODY], [200]),
    "empty window": (rows, {}, [{**BODY, "window_end": "2020-01-01T00:00:00Z"}], [422]),
    "quality gate rejects": (rows, {"GATE_MIN_AUC": "0.99"}, [BODY], [422]),
    "ids too long": (lambda: long_ids(rows()), {}, [BODY], [200]),
    "student id as an override": (rows, {}, [{"SID-0001": True},
                                             {"window_end": "SID-0001"}], [400, 400]),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_prepare_logs_carry_no_student_id(monkeypatch, tmp_path, capfd, name) -> None:
    make_rows, env, bodies, expected = SCENARIOS[name]
    client = prepare_app(monkeypatch, tmp_path, make_rows(), **env)
    statuses = [client.post("/", json=body).status_code for body in bodies]
    out, err = capfd.readouterr()
    assert statuses == expected, (statuses, out[-2000:])
    lines = [line for line in (out + err).split("\n") if line.strip()]
    for line in lines:
        entry = json.loads(line)  # every line one JSON object (Cloud Logging parses it)
        assert isinstance(entry, dict) and entry.get("severity"), line[:300]
    assert MARK not in out + err
    if statuses[0] == 200 and name != "student id as an override":
        assert any(json.loads(line).get("event") == "refresh_finished" for line in lines)
    # Artifacts: only the calibration snapshot carries student ids.
    for path in sorted((tmp_path / "models").rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name == "prepared.csv.gz":
            assert MARK.encode() in gzip.decompress(data)  # the scan would see one
        else:
            assert MARK.encode() not in data, path


@pytest.fixture(scope="module")
def live_url():
    with live_server() as server:
        yield server


def test_predict_logs_no_student_id_from_a_wrong_url(live_url) -> None:
    server = live_url
    r = requests.post(f"{server.url}/students/SID-0042/predict", json={"responses": []},
                      timeout=10)
    assert r.status_code == 404
    assert MARK not in server.log_path.read_text(encoding="utf-8", errors="replace")


def test_predict_logs_no_student_id_from_bodies_or_query(live_url) -> None:
    server = live_url
    sent = [
        ("/predict", {"students": [{"student_id": "SID-0001", "responses": []}]}),
        ("/predict", {"students": [{"student_id": "SID-0002", "responses": [{"x": 1}]}]}),
        ("/predict", {"responses": [], "SID-0003": 1}),
        ("/predict", {"responses": [{"item_id": "SID-0004", "correct": 1}]}),
        ("/next-items", {"responses": [], "candidates": ["SID-0005"], "k": "SID-0006"}),
        ("/predict?student=SID-0007", {"responses": []}),
    ]
    statuses = [requests.post(server.url + path, json=body, timeout=10).status_code
                for path, body in sent]
    assert statuses == [200, 400, 400, 200, 400, 200]
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    requests_logged = [json.loads(line) for line in log.split("\n")
                       if line.startswith("{") and '"request"' in line]
    assert len(requests_logged) >= len(sent)
    assert "SID-000" not in log
