"""The learning-aware options end to end: prepare's configuration (MODEL_OPTIONS) -> the
calibrated artifact's ``options`` -> the gate with the same online protocol -> predict."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
from answerlogs import T0, write_csv
from learning_sim import simulate_learning
from predict_app import make_client
from refresh_run import Logs, config, run

from irt.engine.artifact import load_model
from irt.engine.evaluate import metrics, plain_online_predictions
from irt.engine.learning import learning_of, predict_one
from irt.engine.learning import online_predictions as learning_online
from irt.errors import ConfigError
from irt.refresh.pipeline import RefreshConfig
from irt.store import LocalStore


def learning_rows(n_students: int = 400, seed: int = 31) -> list[dict[str, str]]:
    """A log from the learning-aware model, a minute between a student's answers."""
    from datetime import timedelta

    sim = simulate_learning(n_students, 24, 3, tau=0.8,
                            beta=np.array([0.3, -0.2, 0.2, -0.2, 0.3]), seed=seed, item_seed=3)
    r = sim.responses
    rows, step = [], {}
    for s, j, y in zip(r.student.tolist(), r.item.tolist(), r.correct.tolist(), strict=True):
        k = step[s] = step.get(s, -1) + 1
        t = T0 + timedelta(days=s % 20, minutes=k)
        rows.append({"student_id": f"stu-{s:04d}", "item_id": f"Q{j:02d}", "correct": str(y),
                     "answered_at": t.strftime("%Y-%m-%d %H:%M:%S"),
                     "skill_id": f"k{sim.item_skill[j]}"})
    return rows


@pytest.mark.parametrize(("env", "message"), [
    ({"MODEL_OPTIONS": "skills,bkt"}, "unknown model option"),
    ({"MODEL_OPTIONS": "pfa", "COLUMN_SKILL": ""}, "COLUMN_SKILL"),
    ({"MODEL_OPTIONS": "recency", "MODEL_TYPE": "3pl"}, "2pl"),
    ({"MODEL_OPTIONS": "auto,pfa"}, "give it alone"),
    ({"MODEL_OPTIONS": "auto", "MODEL_TYPE": "1pl"}, "2pl"),
])
def test_model_options_are_validated(tmp_path: Path, env: dict[str, str], message: str) -> None:
    base = {"SOURCE_FILE": "x.csv", "MODEL_DIR": str(tmp_path), "COLUMN_SKILL": "skill_id"}
    with pytest.raises(ConfigError) as info:
        RefreshConfig.from_env({**base, **env})
    assert info.value.field == "MODEL_OPTIONS" and message in str(info.value)


def test_model_options_are_read_and_shape_the_version(tmp_path: Path) -> None:
    base = {"SOURCE_FILE": "x.csv", "MODEL_DIR": str(tmp_path), "COLUMN_SKILL": "skill_id"}
    plain = RefreshConfig.from_env(base)
    learned = RefreshConfig.from_env({**base, "MODEL_OPTIONS": "pfa, skills",
                                      "RECENCY_DECAY": "0.9", "PFA_WINDOW": "5"})
    assert plain.model_options == () and learned.model_options == ("skills", "pfa")
    assert (learned.recency_decay, learned.pfa_window) == (0.9, 5)
    assert "model_options" not in plain.summary()  # plain digests as before
    assert learned.summary()["model_options"] == ("skills", "pfa")


def test_prepare_publishes_a_learning_model_gated_and_served(tmp_path: Path,
                                                             monkeypatch) -> None:
    log_file = write_csv(learning_rows(), tmp_path / "log.csv")
    cfg = config(tmp_path, log_file, MODEL_OPTIONS="skills,pfa", MIN_ANSWERS_PER_ITEM="5")
    logs = Logs()
    result = run(cfg, logs=logs)
    assert result.status == 200, result.body
    store = LocalStore(cfg.model_dir)
    version, _ = store.read_pointer()
    model = load_model(store.get(version, "model.json"))
    spec = learning_of(model)
    assert spec is not None and spec.options == ("skills", "pfa")
    assert set(model.options["learning"]["item_skills"].values()) == {"k0", "k1", "k2"}
    assert model.options["learning"]["item_skills"]["Q04"] == "k1"
    assert 0.3 < spec.skill_sd < 1.5
    learned = next(line for line in logs.lines if line.get("event") == "learning_calibrated")
    assert learned["options"] == ["skills", "pfa"] and learned["iterations"] > 0
    # the plain fit (the gate's challenger) has the skill prior; the options started from the
    # plain fit without it (base_for_options), and the model keeps a skills section
    calibrated = next(line for line in logs.lines if line.get("event") == "calibrated")
    assert calibrated["skill_prior"] is True and calibrated["n_skills"] == 3
    assert model.fit["skill_prior"] is False
    assert set(model.skills["parameters"]) == {"k0", "k1", "k2"}
    means = model.fit["learning"]["skill_difficulty_means"]
    assert {k: v["b"] for k, v in model.skills["parameters"].items()} == pytest.approx(means)
    # The gate scored the held-out answers with the learning-aware protocol: recompute it
    # from the published prepared answers (holdout column) independently of irt.refresh.quality.
    report = json.loads(store.get(version, "report.json"))
    with gzip.open(io.BytesIO(store.get(version, "prepared.csv.gz")), "rt") as f:
        lines = f.read().splitlines()[1:]
    rows = [line.replace('"', "").split(",") for line in lines]
    students = {r[0] for r in rows if r[4] == "1"}
    rows = sorted((r for r in rows if r[0] in students), key=lambda r: (r[0], r[3]))
    ids = sorted(students)
    student = np.array([ids.index(r[0]) for r in rows])
    pos = model.positions([r[1] for r in rows])
    y = np.array([int(r[2]) for r in rows])
    held = np.array([r[4] == "1" for r in rows])
    p = learning_online(model, student, pos, y)
    gate_auc = report["gate"]["new"]["auc"]
    assert gate_auc == pytest.approx(metrics(y[held], p[held])["auc"], abs=1e-12)
    plain = plain_online_predictions(model, student, pos, y)
    assert gate_auc != pytest.approx(metrics(y[held], plain[held])["auc"], abs=1e-6)
    # predict serves it: the same answers as the engine
    client = make_client(monkeypatch, Path(cfg.model_dir))
    answers = [{"item_id": "Q01", "correct": True}, {"item_id": "Q04", "correct": False}]
    body = client.post("/predict", json={"responses": answers, "items": ["Q07", "Q02"]})
    assert body.status_code == 200
    want = predict_one(model, ["Q01", "Q04"], [1, 0], ["Q07", "Q02"])
    assert body.get_json()["probabilities"] == want["probabilities"]
    assert body.get_json()["model_version"] == version


def test_model_options_auto_is_read(tmp_path: Path) -> None:
    base = {"SOURCE_FILE": "x.csv", "MODEL_DIR": str(tmp_path)}
    cfg = RefreshConfig.from_env({**base, "MODEL_OPTIONS": " Auto "})
    assert cfg.model_options == ("auto",) and cfg.summary()["model_options"] == ("auto",)
    with pytest.raises(ConfigError) as info:
        RefreshConfig.from_env({**base, "MODEL_OPTIONS": "auto", "PRIOR_B": "none"})
    assert info.value.field == "PRIOR_B"
    cfg = RefreshConfig.from_env({**base, "GATE_MAX_ECE_OVER_PLAIN": "0.02"})
    assert cfg.gate.max_ece_over_plain == 0.02


def test_prepare_with_auto_chooses_on_training_students_and_records_it(tmp_path: Path) -> None:
    log_file = write_csv(learning_rows(), tmp_path / "log.csv")
    cfg = config(tmp_path, log_file, MODEL_OPTIONS="auto")
    logs = Logs()
    result = run(cfg, logs=logs)
    assert result.status == 200, result.body
    store = LocalStore(cfg.model_dir)
    version, _ = store.read_pointer()
    model = load_model(store.get(version, "model.json"))
    report = json.loads(store.get(version, "report.json"))
    chosen = next(line for line in logs.lines if line.get("event") == "options_chosen")
    selection = report["option_selection"]
    assert selection == model.fit["option_selection"]
    assert selection["chosen"] == chosen["chosen"]
    # the log was generated with skill offsets and covariates: an option set wins
    assert {"skills", "pfa"} & set(selection["chosen"])
    spec = learning_of(model)
    assert spec is not None and list(spec.options) == selection["chosen"]
    rows = {tuple(r["options"]): r for r in selection["table"]}
    assert rows[tuple(selection["chosen"])]["verdict"] == "chosen"
    # served with the calibration fitted on the validation students for the chosen set
    cal = rows[tuple(selection["chosen"])]["calibration"]
    assert spec.calibration == (cal["intercept"], cal["slope"]) != (0.0, 1.0)
    assert model.to_dict()["options"]["learning"]["calibration"] == cal
    assert all(r["verdict"] != "chosen" for k, r in rows.items()
               if list(k) != selection["chosen"])
    # the gate compared the model with the plain 2PL challenger as well
    assert report["gate"]["plain"] is not None
    assert report["gate"]["new"]["ece"] <= report["gate"]["plain"]["ece"] + 0.01


def test_gate_rejects_options_that_calibrate_worse_than_plain(tmp_path: Path) -> None:
    """Recency with an extreme decay (almost only the last answer counts) on a log without
    any learning: its held-out predictions are worse calibrated than the plain 2PL's; with no
    tolerance the gate rejects it and nothing is published."""
    log_file = write_csv(learning_rows(), tmp_path / "log.csv")
    cfg = config(tmp_path, log_file, MODEL_OPTIONS="recency", RECENCY_DECAY="0.01",
                 GATE_MAX_ECE_OVER_PLAIN="0")
    result = run(cfg)
    assert result.status == 422, result.body
    assert any("plain 2PL challenger" in r for r in result.body["gate"]["reasons"])
    assert LocalStore(cfg.model_dir).read_pointer() == (None, None)


def test_auto_falls_back_to_plain_when_its_set_loses_to_plain_on_the_gate(
        tmp_path: Path) -> None:
    """``auto`` chose ``pfa`` on its validation students, but on the gate's held-out answers
    its calibration error is above the plain challenger's (no tolerance here): ``auto``
    never serves a set that lost to plain, so the plain 2PL fitted on the same answers is the
    candidate, gated and published, and the record says why.  An option set named
    explicitly is rejected instead (the test above)."""
    log_file = write_csv(learning_rows(seed=33), tmp_path / "log.csv")
    cfg = config(tmp_path, log_file, MODEL_OPTIONS="auto", GATE_MAX_ECE_OVER_PLAIN="0")
    logs = Logs()
    result = run(cfg, logs=logs)
    assert result.status == 200 and result.body["status"] == "published", result.body
    chosen = next(line for line in logs.lines if line.get("event") == "options_chosen")
    fallback = next(line for line in logs.lines if line.get("event") == "options_fallback")
    assert chosen["chosen"] and fallback["severity"] == "WARNING"
    assert fallback["options"] == chosen["chosen"]
    assert fallback["reasons"] and all("plain 2PL challenger" in r for r in fallback["reasons"])
    gates = [line for line in logs.lines if line.get("event") == "gate"]
    assert len(gates) == 2 and gates[0]["reasons"] == fallback["reasons"] and gates[1]["passed"]
    store = LocalStore(cfg.model_dir)
    version, _ = store.read_pointer()
    model = load_model(store.get(version, "model.json"))
    report = json.loads(store.get(version, "report.json"))
    assert learning_of(model) is None  # the plain 2PL serves
    selection = model.fit["option_selection"]
    assert selection == report["option_selection"]
    assert selection["chosen"] == [] and selection["gate_fallback"]["options"] == chosen["chosen"]
    lost = selection["gate_fallback"]
    assert lost["new"]["ece"] > lost["plain"]["ece"]  # why it lost
    assert report["gate"]["passed"] and report["gate"]["plain"] is None
