"""The monitoring checks and the canary of a refresh (``irt.refresh.monitoring``), alone and inside
``run_refresh``: each check passes on sound data and fires on the fault it is there for."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from answerlogs import simulated_rows, write_csv

import irt.serving
from irt.engine.artifact import load_model
from irt.engine.calibrate import FitConfig, fit
from irt.engine.simulate import simulate
from irt.errors import ConfigError
from irt.refresh.monitoring import (
    MonitorConfig,
    baseline_scores,
    beats_baseline,
    canary,
    data_profile,
    drift,
    numerical_checks,
    psi,
    served_quality,
    served_trend,
    simpler_model,
    skew_check,
    slice_scores,
)
from irt.refresh.pipeline import RefreshConfig, RunOptions, run_refresh
from irt.refresh.quality import GateConfig, holdout_mask
from irt.refresh.sources import DuckDBSource
from irt.store import LocalStore, describe

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
CFG = MonitorConfig()


@pytest.fixture(scope="module")
def sim():
    return simulate(1500, 40, 20, seed=3)


@pytest.fixture(scope="module")
def fitted(sim):
    return fit(sim.responses, FitConfig(compute_se=False))


def columns(responses) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    student = responses.student.astype(np.int64)
    item_ids = np.asarray(responses.item_ids, dtype=object)[responses.item]
    order = np.arange(student.size, dtype=float) * 60.0 + 1.8e9  # a minute apart
    return student, item_ids, responses.correct, order


def reversed_model(model):
    """A broken model: difficulties mirrored, so it ranks answers the wrong way round."""
    return replace(model, b=-model.b, _cache={})


# --------------------------------------------------------------------------- drift
def test_psi_is_zero_for_equal_histograms_and_grows_with_the_shift() -> None:
    base = [0.1] * 10
    assert psi(base, base) == 0.0
    small = psi(base, [0.12, 0.08] * 5)
    large = psi(base, [0.5, 0.5] + [0.0] * 8)
    assert 0 < small < 0.05 < 0.25 < large


def test_drift_alerts_on_a_shifted_population(sim) -> None:
    r = sim.responses
    old = data_profile(r.student, r.item, r.correct, len(r.student_ids), len(r.item_ids))
    same, alerts = drift(old, old, CFG)
    assert same["psi_item_p"] == 0.0 and not alerts
    # Two halves of the same students and items: no drift.
    half = r.student < 750
    first = data_profile(r.student[half], r.item[half], r.correct[half], 1500, 40)
    second = data_profile(r.student[~half], r.item[~half], r.correct[~half], 1500, 40)
    figures, alerts = drift(second, first, CFG)
    assert not alerts and figures["psi_student_score"] < 0.1 and figures["psi_item_p"] < 0.1
    # A population that gets 90% right (a broken export: only correct answers kept, say)
    y = (np.random.default_rng(0).random(r.correct.size) < 0.9).astype(np.int8)
    shifted = data_profile(r.student, r.item, y, len(r.student_ids), len(r.item_ids))
    figures, alerts = drift(shifted, old, CFG)
    assert figures["share_correct_shift"] > 0.3
    assert any("share correct" in a for a in alerts) and any("psi" in a for a in alerts)
    assert drift(second, None, CFG) == ({"compared_with": None}, [])


# --------------------------------------------------------------------------- numerical
def test_numerical_checks_pass_a_fit_and_catch_broken_parameters(fitted) -> None:
    figures, problems, warnings = numerical_checks(fitted.model, fitted.history,
                                                   fitted.log_likelihood, fitted.converged)
    assert not problems and not warnings
    assert figures["converged"] and figures["objective_falls"] == 0
    assert 0 < figures["a_range"][0] <= figures["a_range"][1]
    b = fitted.model.b.copy()
    b[3] = np.nan
    a = fitted.model.a.copy()
    a[5] = -0.5
    broken = replace(fitted.model, b=b, a=a, _cache={})
    _, problems, _ = numerical_checks(broken, fitted.history, float("nan"), True)
    assert any("non-finite b (first: item q3)" in p for p in problems)
    assert any("slopes not positive" in p for p in problems)
    assert any("log-likelihood nan" in p for p in problems)
    history = [*fitted.history[:3], fitted.history[2] - 5.0, *fitted.history[3:]]
    _, problems, warnings = numerical_checks(fitted.model, history, fitted.log_likelihood,
                                             True)
    assert not problems
    assert any("fell in 1 cycles" in w for w in warnings)
    # an unconverged fit is a problem (the run is rejected), not just an alert
    _, problems, warnings = numerical_checks(fitted.model, fitted.history,
                                             fitted.log_likelihood, False)
    assert problems == [f"EM did not converge in {len(fitted.history)} cycles"]
    assert not any("converge" in w for w in warnings)


# --------------------------------------------------------------------------- skew
def test_skew_check_finds_none_between_the_serving_path_and_training(sim, fitted) -> None:
    student, item_ids, correct, order = columns(sim.responses)
    figures, problems = skew_check(fitted.model, student, item_ids, correct, order,
                                   sim.responses.student_ids, CFG)
    assert not problems, figures
    assert figures["students"] == CFG.skew_students
    assert figures["max_abs_theta_diff"] <= 1e-6 and figures["max_abs_p_diff_vs_gate"] < 1e-5


def test_skew_check_catches_a_serving_path_that_drops_an_answer(monkeypatch, sim,
                                                                fitted) -> None:
    real = irt.serving.predict

    def lossy(model, payload, limits, version):  # e.g. a parser that loses the last answer
        if payload.get("responses"):
            payload = {**payload, "responses": payload["responses"][:-1]}
        return real(model, payload, limits, version)

    monkeypatch.setattr(irt.serving, "predict", lossy)
    student, item_ids, correct, order = columns(sim.responses)
    figures, problems = skew_check(fitted.model, student, item_ids, correct, order,
                                   sim.responses.student_ids, CFG)
    assert figures["max_abs_theta_diff"] > 0.01
    assert any("ability differs" in p for p in problems)
    assert any("P differs" in p for p in problems)


# --------------------------------------------------------------------------- baseline, slices
def _holdout(sim):
    student, item_ids, correct, order = columns(sim.responses)
    held = holdout_mask(student, sim.responses.student_ids, order,
                        GateConfig(holdout_students=0.3, holdout_last=0.3))
    return student, item_ids, correct, order, held


def test_the_model_beats_the_item_proportion_baseline(sim) -> None:
    student, item_ids, correct, order, held = _holdout(sim)
    model = fit(sim.responses.subset(~held), FitConfig(compute_se=False)).model
    from irt.refresh.quality import holdout_scores

    new = holdout_scores(model, student, item_ids, correct, order, held)
    base = baseline_scores(item_ids[~held], correct[~held], item_ids[held], correct[held])
    assert new["auc"] > base["auc"] + 0.05
    assert not beats_baseline(new, base, 0.0)
    assert len(beats_baseline(base, new, 0.0)) == 2  # the other way round: both rules fire


def test_slices_pass_a_sound_model_and_fail_a_broken_one(sim) -> None:
    student, item_ids, correct, order, held = _holdout(sim)
    model = fit(sim.responses.subset(~held), FitConfig(compute_se=False)).model
    ids, counts = np.unique(item_ids[~held].astype(str), return_counts=True)
    train_counts = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    cfg = MonitorConfig(min_slice_answers=50)
    figures, problems = slice_scores(model, student, item_ids, correct, order, held,
                                     train_counts, cfg)
    assert not problems
    judged = {k: v for k, v in figures.items() if "auc" in v}
    assert "history 5-19" in judged and all(v["auc"] > 0.6 for v in judged.values())
    assert sum(figures[k]["n"] for k in ("history 0-4", "history 5-19", "history 20+")) == \
        int(held.sum())
    _, problems = slice_scores(reversed_model(model), student, item_ids, correct, order, held,
                               train_counts, cfg)
    assert problems and all("below 0.5" in p for p in problems)


def test_slices_reuse_the_gates_replay(sim, monkeypatch) -> None:
    """Given the gate's replay of the model (``prepare`` keeps it), the slices are the same
    figures as replaying the held-out students again, without an online prediction; the
    gate's metrics from that replay are ``holdout_scores``' own."""
    from irt.refresh import monitoring
    from irt.refresh.quality import holdout_replay, holdout_scores

    student, item_ids, correct, order, held = _holdout(sim)
    model = fit(sim.responses.subset(~held), FitConfig(compute_se=False)).model
    ids, counts = np.unique(item_ids[~held].astype(str), return_counts=True)
    train_counts = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    cfg = MonitorConfig(min_slice_answers=50)
    replayed = slice_scores(model, student, item_ids, correct, order, held, train_counts, cfg,
                            0.7)
    replay = holdout_replay(model, student, item_ids, correct, order, held)
    assert holdout_scores(model, student, item_ids, correct, order, held, replay) == \
        holdout_scores(model, student, item_ids, correct, order, held)
    monkeypatch.setattr(monitoring, "online_predictions", lambda *a, **k: 1 / 0)
    reused = slice_scores(model, student, item_ids, correct, order, held, train_counts, cfg,
                          0.7, replay=replay)
    assert reused == replayed


# --------------------------------------------------------------------------- slices (model 6)
def skill_log(flat_skill: bool = False, random_start: int = 0, n_students: int = 1500,
              seed: int = 21) -> list[dict[str, Any]]:
    """A 2PL log of 30 items in three skills (``k0``-``k2``), 20 answers per student, a
    minute apart. ``flat_skill``: the items of skill ``k2`` barely depend on ability (slope
    0.25), as items whose key or content is broken for everyone; ``random_start``: each
    student's first that many answers are coin flips (a warm-up the model cannot know)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.8, 2.0, 30)
    b = rng.normal(0.0, 1.0, 30)
    if flat_skill:
        a[20:] = 0.25
    theta = rng.normal(0.0, 1.0, n_students)
    rows = []
    start = datetime(2026, 10, 1, 9, tzinfo=UTC)
    for s in range(n_students):
        for k, j in enumerate(rng.choice(30, 20, replace=False).tolist()):
            p = 0.5 if k < random_start else 1 / (1 + np.exp(-a[j] * (theta[s] - b[j])))
            rows.append({"student_id": f"sk-{s:05d}", "item_id": f"Q{j:02d}",
                         "correct": str(int(rng.random() < p)), "skill_id": f"k{j // 10}",
                         "answered_at": (start + timedelta(days=s % 20, minutes=k)).strftime(
                             "%Y-%m-%d %H:%M:%S")})
    return rows


def slice_inputs(rows: list[dict[str, Any]]):
    """The log as a refresh sees it: prepared answers, the gate's hold-out, a fit on the
    rest, the gate's overall AUC and each answer's skill."""
    from irt.engine.preprocess import prepare_rows
    from irt.refresh.quality import holdout_scores

    prepared = prepare_rows(rows, min_answers_per_item=1)
    r = prepared.responses
    student = r.student.astype(np.int64)
    item_ids = np.asarray(r.item_ids, dtype=object)[r.item]
    order = prepared.answered_at
    held = holdout_mask(student, r.student_ids, order, GateConfig(holdout_students=0.3))
    model = fit(r.subset(~held), FitConfig(compute_se=False)).model
    overall = holdout_scores(model, student, item_ids, r.correct, order, held)["auc"]
    skill_of = {row["item_id"]: row["skill_id"] for row in rows}
    ids, counts = np.unique(item_ids[~held].astype(str), return_counts=True)
    return {"model": model, "student": student, "item_ids": item_ids, "correct": r.correct,
            "order": order, "held": held, "overall": overall,
            "counts": dict(zip(ids.tolist(), counts.tolist(), strict=True)),
            "skill": np.array([skill_of[i] for i in item_ids], dtype=object)}


def judge(d: dict[str, Any], config: MonitorConfig = CFG, relative: bool = True):
    return slice_scores(d["model"], d["student"], d["item_ids"], d["correct"], d["order"],
                        d["held"], d["counts"], config, d["overall"] if relative else None,
                        d["skill"])


def test_slice_marks_are_relative_to_the_overall_auc_and_slices_include_skills() -> None:
    """A skill whose items barely depend on ability: its slice is above chance (the old
    absolute floor of 0.5 passes it) but far below the overall AUC and the other skills',
    and the relative mark rejects it; the sound skills pass. Each judged figure equals an
    independent recomputation on the same answers; the mark is reference - margin - z * SE,
    the reference the overall AUC, for skill slices the median skill slice's AUC."""
    from irt.engine.evaluate import auc as plain_auc
    from irt.engine.evaluate import online_predictions
    from irt.refresh.monitoring import auc_standard_error

    d = slice_inputs(skill_log(flat_skill=True))
    figures, problems = judge(d)
    assert {"skill k0", "skill k1", "skill k2", "cold start"} <= set(figures)
    flat = figures["skill k2"]
    assert 0.55 < flat["auc"] < d["overall"] - 0.1, (flat, d["overall"])
    assert problems == [p for p in problems if "slice 'skill k2'" in p] and problems
    assert figures["skill k0"]["auc"] > figures["skill k0"]["mark"]
    assert figures["skill k1"]["auc"] > figures["skill k1"]["mark"]
    # independent recomputation of the skill-k2 figure and its mark
    s, order = d["student"], d["order"]
    rows = np.flatnonzero(np.isin(s, np.unique(s[d["held"]])))
    rows = rows[np.lexsort((order[rows], s[rows]))]
    p = online_predictions(d["model"], s[rows], d["model"].positions(list(d["item_ids"][rows])),
                           d["correct"][rows])
    mask = d["held"][rows] & (d["skill"][rows] == "k2")
    y = d["correct"][rows][mask].astype(float)
    assert flat["n"] == int(mask.sum())
    assert flat["auc"] == pytest.approx(plain_auc(y, p[mask]), abs=1e-12)
    se = auc_standard_error(flat["auc"], int(y.sum()), int(y.size - y.sum()))
    median = float(np.median([figures[f"skill k{k}"]["auc"] for k in range(3)]))
    assert flat["reference"] == median == figures["skill k1"]["auc"]
    assert flat["mark"] == pytest.approx(median - CFG.slice_max_auc_drop
                                         - CFG.slice_noise_z * se, abs=1e-12)
    history = figures["history 5-19"]
    assert history["reference"] == d["overall"]
    assert history["mark"] == pytest.approx(d["overall"] - CFG.slice_max_auc_drop
                                            - CFG.slice_noise_z * history["auc_se"], abs=1e-12)
    # the absolute floor alone (no overall figure) passes the same slice
    _, absolute = judge(d, relative=False)
    assert not absolute
    # a sound log: every slice passes its relative mark
    sound = slice_inputs(skill_log())
    figures, problems = judge(sound)
    assert not problems, figures
    assert all(figures[f"skill k{k}"]["n"] >= CFG.min_slice_answers for k in range(3))


def test_the_cold_start_slice_is_judged() -> None:
    """Students whose first five answers are coin flips: the gate's held-out answers (their
    latest) look sound, the cold-start slice (their first answers) fails its mark; on a
    sound log it passes. Its size is every held-out student's first five answers."""
    d = slice_inputs(skill_log(random_start=5))
    figures, problems = judge(d)
    cold = figures["cold start"]
    assert cold["n"] == 5 * len(np.unique(d["student"][d["held"]]))
    assert cold["auc"] < cold["mark"] and cold["auc"] < 0.6
    assert [p for p in problems if "slice 'cold start'" in p]
    assert not [p for p in problems if "cold start" not in p]  # the rest is sound
    sound = slice_inputs(skill_log())
    figures, problems = judge(sound)
    assert figures["cold start"]["auc"] >= figures["cold start"]["mark"] and not problems


# --------------------------------------------------------------------------- served data
def test_served_quality_compares_online_with_offline_and_by_age(sim, fitted) -> None:
    student, item_ids, correct, order = columns(sim.responses)
    since = float(np.quantile(order, 0.5))
    figures, alerts = served_quality(fitted.model, since, 0.75, student, item_ids, correct,
                                     order, sim.responses.student_ids, CFG)
    assert not alerts
    assert figures["answers"] > 1000 and figures["online"]["auc"] > 0.7
    assert figures["online_gate_protocol"]["n"] < figures["answers"] / 2
    assert abs(figures["online_minus_offline_auc"]) < 0.05
    assert set(figures["by_model_age"]) == {"0-6 days", "7-29 days", "30+ days"}
    figures, alerts = served_quality(reversed_model(fitted.model), since, 0.75, student,
                                     item_ids, correct, order, sim.responses.student_ids, CFG)
    assert figures["online_gate_protocol"]["auc"] < 0.5
    assert alerts and "served-data quality" in alerts[0]
    late, alerts = served_quality(fitted.model, order.max() + 1, 0.75, student, item_ids,
                                  correct, order, sim.responses.student_ids, CFG)
    assert late["answers"] == 0 and "too few" in late["note"] and not alerts


def test_served_quality_counts_each_answer_at_the_model_age_it_was_served(sim, fitted) -> None:
    """Model staleness (model 4): each served answer is counted in the bucket of the model's
    age when it was given. Students answer from 5 days before the window's end to 45 days
    after it, so every bucket has answers; a miscomputed age (e.g. every answer 0 days old)
    moves them between buckets."""
    student, item_ids, correct, _ = columns(sim.responses)
    since = 1.8e9
    rank = np.arange(student.size) - np.searchsorted(student, student)  # k-th answer
    order = since + ((student % 50) - 5) * 86400.0 + rank * 60.0
    figures, _ = served_quality(fitted.model, since, 0.75, student, item_ids, correct, order,
                                sim.responses.student_ids, CFG)
    age = (order - since) / 86400.0
    expected = {"0-6 days": int(((age >= 0) & (age < 7)).sum()),
                "7-29 days": int(((age >= 7) & (age < 30)).sum()),
                "30+ days": int((age >= 30).sum())}
    assert {k: v["n"] for k, v in figures["by_model_age"].items()} == expected
    assert min(expected.values()) > 4000 and sum(expected.values()) == figures["answers"]
    assert all("auc" in v for v in figures["by_model_age"].values())


# --------------------------------------------------------------------------- canary
def test_canary_passes_the_artifact_and_fails_a_tampered_one(fitted) -> None:
    model = replace(fitted.model, version="v9")
    text = model.to_json()
    figures, problems = canary(text.encode(), model, "v9")
    assert not problems and figures["passed"]
    assert figures["theta_all_right"] > 0 > figures["theta_all_wrong"]
    _, problems = canary(text[:1000].encode(), model, "v9")
    assert problems and "does not load" in problems[0]
    doc = json.loads(text)
    doc["items"]["q7"]["a"] *= 1.01
    _, problems = canary(json.dumps(doc).encode(), model, "v9")
    assert problems == ["canary: stored a differs from the calibrated values"]


def test_the_simpler_challenger_alerts_only_when_it_predicts_better(sim) -> None:
    student, item_ids, correct, order, held = _holdout(sim)
    train = sim.responses.subset(~held)
    from irt.refresh.quality import holdout_scores

    new = fit(train, FitConfig(compute_se=False)).model
    scores = holdout_scores(new, student, item_ids, correct, order, held)
    calls = []

    def fit_simpler(kind):
        calls.append(kind)
        return fit(train, FitConfig(model=kind, compute_se=False)).model

    figures, alerts = simpler_model(CFG, "2pl", fit_simpler, scores, student, item_ids,
                                    correct, order, held)
    assert calls == ["1pl"] and figures["model_type"] == "1pl" and not alerts
    assert figures["log_loss"] > figures["new_log_loss"]  # 2PL data: the 2PL predicts better
    worse = {**scores, "log_loss": figures["log_loss"] + 0.01}  # pretend the 2PL were worse
    _, alerts = simpler_model(CFG, "2pl", fit_simpler, worse, student, item_ids, correct,
                              order, held)
    assert alerts and "consider MODEL_TYPE=1pl" in alerts[0]
    assert simpler_model(CFG, "1pl", fit_simpler, scores, student, item_ids, correct, order,
                         held) == ({"model_type": None}, [])
    off = MonitorConfig(simpler_model="none")
    assert simpler_model(off, "2pl", fit_simpler, scores, student, item_ids, correct, order,
                         held)[0] == {"model_type": None}
    assert calls == ["1pl", "1pl"]


def test_monitor_configuration_is_validated() -> None:
    cfg = MonitorConfig.from_env({"MONITOR_MAX_PSI": "0.5", "MONITOR_SKEW_STUDENTS": "10"})
    assert cfg.max_drift_psi == 0.5 and cfg.skew_students == 10
    with pytest.raises(ConfigError) as err:
        MonitorConfig.from_env({"MONITOR_SERVED_MAX_AUC_DROP": "nan"})
    assert err.value.field == "MONITOR_SERVED_MAX_AUC_DROP"
    with pytest.raises(ConfigError) as err:
        MonitorConfig.from_env({"MONITOR_MAX_STUDENTS": "1.5"})
    assert err.value.field == "MONITOR_MAX_STUDENTS"
    with pytest.raises(ConfigError) as err:
        MonitorConfig.from_env({"MONITOR_SIMPLER_MODEL": "4pl"})
    assert err.value.field == "MONITOR_SIMPLER_MODEL"
    assert MonitorConfig.from_env({"MONITOR_SIMPLER_MODEL": " None "}).simpler_model == "none"
    assert MonitorConfig.from_env({}).simpler_fit_tol == 1e-3
    assert MonitorConfig.from_env({"MONITOR_SIMPLER_FIT_TOL": "1e-4"}).simpler_fit_tol == 1e-4
    for bad in ("0", "-1e-3", "2", "nan"):
        with pytest.raises(ConfigError) as err:
            MonitorConfig.from_env({"MONITOR_SIMPLER_FIT_TOL": bad})
        assert err.value.field == "MONITOR_SIMPLER_FIT_TOL"


# --------------------------------------------------------------------------- in a refresh
class Logs(list):
    def __call__(self, severity: str, message: str, **fields: Any) -> None:
        self.append(json.loads(json.dumps({"severity": severity, "message": message,
                                           **fields}, default=str)))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self if e.get("event") == name]


def refresh(tmp: Path, log: Path, end: str, days: int = 61, store=None, **env: str):
    cfg = RefreshConfig.from_env({"SOURCE_FILE": str(log), "MODEL_DIR": str(tmp / "models"),
                                  "MIN_ANSWERS_PER_ITEM": "5", "GATE_HOLDOUT_STUDENTS": "0.3",
                                  **env})
    logs = Logs()
    result = run_refresh(cfg, DuckDBSource(log), store or LocalStore(cfg.model_dir),
                         RunOptions.from_json({"window_end": end, "window_days": days}),
                         log=logs, now=NOW)
    return result, logs


def two_windows(tmp: Path) -> Path:
    """Two windows of the same item bank (and abilities), new students in the second."""
    rows = simulated_rows(400, 25, 15, seed=11)
    rows += simulated_rows(400, 25, 15, seed=11, start=datetime(2026, 10, 25, tzinfo=UTC),
                           student_prefix="new")
    return write_csv(rows, tmp / "log.csv")


def test_a_refresh_records_every_check(tmp_path) -> None:
    log = two_windows(tmp_path)
    first, _ = refresh(tmp_path, log, "2026-10-24T00:00:00Z")
    assert first.status == 200, first.body
    second, logs = refresh(tmp_path, log, "2026-11-01T00:00:00Z")
    assert second.status == 200, second.body
    store = LocalStore(tmp_path / "models")
    metrics_doc = json.loads(store.get(second.body["version"], "metrics.json"))
    mon = metrics_doc["monitoring"]
    assert {"drift", "numerical", "skew", "baseline", "slices", "served_quality",
            "config"} <= set(mon)
    assert mon["skew"]["students"] > 0 and metrics_doc["monitoring_problems"] == []
    assert mon["served_quality"]["answers"] > 0 and mon["served_quality"]["offline_auc"]
    assert mon["drift"]["psi_item_p"] < 0.25
    report = json.loads(store.get(second.body["version"], "report.json"))
    assert report["profile"]["n_answers"] == report["data"]["rows_out"]
    (canary_line,) = logs.events("canary")
    assert canary_line["passed"] and canary_line["version"] == second.body["version"]
    assert not logs.events("monitoring_alert")


def test_new_items_enter_the_model_on_the_next_refresh(tmp_path) -> None:
    """Items added to the bank need no code change: the next scheduled refresh calibrates
    them and predict serves them (ML Test Score, data 6)."""
    rows = simulated_rows(400, 25, 15, seed=11)
    later = simulated_rows(400, 25, 15, seed=11, start=datetime(2026, 10, 25, tzinfo=UTC),
                           student_prefix="new")
    for row in later[::2]:  # half the new answers are to ten new items N00..N09
        row["item_id"] = "N0" + row["item_id"][-1]
    log = write_csv(rows + later, tmp_path / "log.csv")
    first, _ = refresh(tmp_path, log, "2026-10-24T00:00:00Z")
    second, _ = refresh(tmp_path, log, "2026-11-01T00:00:00Z")
    assert first.status == second.status == 200, second.body
    store = LocalStore(tmp_path / "models")
    old = load_model(store.get(first.body["version"], "model.json"))
    new = load_model(store.get(second.body["version"], "model.json"))
    added = sorted(set(new.item_ids) - set(old.item_ids))
    assert added == [f"N0{k}" for k in range(10)]
    answer = irt.serving.predict(new, {"responses": [{"item_id": "N03", "correct": True}],
                                       "items": added}, irt.serving.Limits(), "v")
    assert answer["unknown_items"] == [] and set(answer["probabilities"]) == set(added)
    assert answer["ability"]["n_answers"] == 1


def test_input_drift_is_alerted_but_does_not_block(tmp_path) -> None:
    rows = simulated_rows(400, 25, 15, seed=11)
    later = simulated_rows(400, 25, 15, seed=11, start=datetime(2026, 10, 25, tzinfo=UTC),
                           student_prefix="new")
    for row in later[::3]:  # a third of the new answers flipped to correct
        row["correct"] = "1"
    log = write_csv(rows + later, tmp_path / "log.csv")
    assert refresh(tmp_path, log, "2026-10-24T00:00:00Z")[0].status == 200
    result, logs = refresh(tmp_path, log, "2026-11-01T00:00:00Z",
                           MONITOR_MAX_CORRECT_SHIFT="0.05")
    alerts = logs.events("monitoring_alert")
    assert alerts and {a["check"] for a in alerts} >= {"data_drift"}
    assert all(a["severity"] == "WARNING" for a in alerts)
    assert result.status in (200, 422)  # the gate decides on quality, drift only alerts


def test_a_degraded_serving_model_raises_the_served_quality_alert(tmp_path) -> None:
    log = two_windows(tmp_path)
    first, _ = refresh(tmp_path, log, "2026-10-24T00:00:00Z")
    store = LocalStore(tmp_path / "models")
    served = load_model(store.get(first.body["version"], "model.json"))
    store.put(first.body["version"], "model.json",
              reversed_model(served).to_json().encode(), "application/json")
    result, logs = refresh(tmp_path, log, "2026-11-01T00:00:00Z")
    alerts = [a for a in logs.events("monitoring_alert") if a["check"] == "served_quality"]
    assert alerts and "allowed drop" in alerts[0]["detail"]
    assert result.status == 200  # the new model is fine; the alert is about the old one


class SkewedServing(LocalStore):
    """A store whose readers see a different model.json than the one written."""

    def get(self, version, name):
        data = super().get(version, name)
        if name == "model.json" and data and self.tamper:
            doc = json.loads(data)
            doc["items"][sorted(doc["items"])[0]]["b"] += 0.5
            return json.dumps(doc).encode()
        return data

    tamper = True


def test_a_canary_failure_stops_the_publish(tmp_path) -> None:
    log = two_windows(tmp_path)
    first, _ = refresh(tmp_path, log, "2026-10-24T00:00:00Z")
    store = SkewedServing(tmp_path / "models")
    store.tamper = False
    result, logs = refresh(tmp_path, log, "2026-11-01T00:00:00Z", store=store)
    assert result.status == 200  # untampered: published
    LocalStore(tmp_path / "models").move_pointer(first.body["version"],
                                                 LocalStore(tmp_path / "models").read_pointer()[1])
    store.tamper = True
    again, logs = refresh(tmp_path, log, "2026-11-01T00:00:00Z", days=60, store=store)
    assert again.status == 422 and again.body["status"] == "canary_failed", again.body
    assert "stored b differs" in again.body["error"]
    assert LocalStore(tmp_path / "models").read_pointer()[0] == first.body["version"]
    (line,) = logs.events("canary")
    assert line["severity"] == "ERROR" and not line["passed"]
    statuses = {v.version: v.status for v in describe(LocalStore(tmp_path / "models"))}
    assert statuses[again.body["version"]] == "unpublished"
    # the version's report records the failure, so a rerun of the same window and data takes
    # it over at once (it answered 409 version_busy for 30 minutes: the report said accepted)
    report = json.loads(LocalStore(tmp_path / "models").get(again.body["version"],
                                                            "report.json"))
    assert report["canary_failed"] == again.body["error"].split("; ")
    retry, _ = refresh(tmp_path, log, "2026-11-01T00:00:00Z", days=60, store=store)
    assert retry.status == 422 and retry.body["status"] == "canary_failed", retry.body
    store.tamper = False
    fixed, _ = refresh(tmp_path, log, "2026-11-01T00:00:00Z", days=60, store=store)
    assert fixed.status == 200 and fixed.body["status"] == "published", fixed.body
    assert fixed.body["version"] == again.body["version"]
    assert LocalStore(tmp_path / "models").read_pointer()[0] == again.body["version"]
    assert "canary_failed" not in json.loads(LocalStore(tmp_path / "models").get(
        again.body["version"], "report.json"))


def test_a_rasch_model_passes_the_canary_and_is_published(tmp_path) -> None:
    # A Rasch fit estimates the population SD (not 1): the canary compared the served SD of
    # no answers, rounded to 6 decimals, with the unrounded SD to 1e-9, so no Rasch model
    # could ever be published (422 canary_failed).
    result, logs = refresh(tmp_path, two_windows(tmp_path), "2026-10-24T00:00:00Z",
                           MODEL_TYPE="rasch")
    assert result.status == 200 and result.body["status"] == "published", result.body
    (line,) = logs.events("canary")
    assert line["passed"]
    model = json.loads(LocalStore(tmp_path / "models").get(result.body["version"],
                                                           "model.json"))
    assert model["model_type"] == "rasch" and model["population"]["sd"] != 1.0


def test_a_refresh_alerts_when_a_simpler_model_predicts_better(tmp_path) -> None:
    """A log from a 1PL world, sparse per item: the 2PL's extra slopes are noise, the 1PL
    challenger predicts the held-out answers better, and the run says so."""
    r = simulate(600, 60, 12, model="1pl", seed=4).responses
    rows, seen = [], {}
    start = datetime(2026, 10, 1, tzinfo=UTC)
    for s, j, y in zip(r.student.tolist(), r.item.tolist(), r.correct.tolist(), strict=True):
        k = seen[s] = seen.get(s, -1) + 1
        rows.append({"student_id": f"stu-{s:05d}", "item_id": f"Q{j:03d}", "correct": str(y),
                     "answered_at": (start + timedelta(days=s % 20, minutes=k)).strftime(
                         "%Y-%m-%d %H:%M:%S"), "skill_id": "k"})
    result, logs = refresh(tmp_path, write_csv(rows, tmp_path / "log.csv"),
                           "2026-11-01T00:00:00Z")
    assert result.status == 200, result.body  # an alert, not a rejection
    (alert,) = [a for a in logs.events("monitoring_alert") if a["check"] == "simpler_model"]
    assert "consider MODEL_TYPE=1pl" in alert["detail"]
    (mon,) = logs.events("monitoring")
    assert mon["simpler_model"]["log_loss"] < mon["simpler_model"]["new_log_loss"]
    # the challenger's EM at its own tolerance (MONITOR_SIMPLER_FIT_TOL), the calibration's
    # at FitConfig's
    challenger = mon["simpler_model"]["fit"]
    assert challenger["tol"] == 1e-3 and challenger["converged"]
    store = LocalStore(tmp_path / "models")
    assert load_model(store.get(result.body["version"], "model.json")).fit["tol"] == 1e-4
    strict, _ = refresh(tmp_path / "strict", write_csv(rows, tmp_path / "log2.csv"),
                        "2026-11-01T00:00:00Z", MONITOR_SIMPLER_FIT_TOL="1e-4")
    strict_fit = json.loads(LocalStore(tmp_path / "strict" / "models").get(
        strict.body["version"], "metrics.json"))["monitoring"]["simpler_model"]["fit"]
    assert strict_fit["tol"] == 1e-4
    assert strict_fit["iterations"] >= challenger["iterations"]


def test_the_challenger_is_fitted_beside_the_calibration(tmp_path, monkeypatch) -> None:
    """The 1PL challenger is fitted in a background thread started after the hold-out
    (pipeline.start_challenger): the same figures as fitting it in the monitoring step; a
    fit that fails still fails the run (500, as when it was fitted in the step)."""
    import threading

    from irt.refresh import pipeline

    log = write_csv(simulated_rows(300, 25, 12, seed=9), tmp_path / "log.csv")
    threads = []
    real = pipeline._fit_simpler

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_fit_simpler", spy)
    result, logs = refresh(tmp_path / "beside", log, "2026-11-01T00:00:00Z")
    assert result.status == 200, result.body
    assert len(threads) == 1 and threads[0].startswith(pipeline.BACKGROUND)
    (beside,) = logs.events("monitoring")
    monkeypatch.setattr(pipeline, "start_challenger", lambda run, holdout, background: None)
    result, logs = refresh(tmp_path / "in_step", log, "2026-11-01T00:00:00Z")
    assert threads[1] == threading.current_thread().name
    (in_step,) = logs.events("monitoring")
    for key in ("model_type", "auc", "log_loss", "new_auc", "new_log_loss"):
        assert beside["simpler_model"][key] == in_step["simpler_model"][key]
    assert {k: v for k, v in beside["simpler_model"]["fit"].items() if k != "seconds"} == \
        {k: v for k, v in in_step["simpler_model"]["fit"].items() if k != "seconds"}
    monkeypatch.undo()

    def broken(responses, config, *args, **kwargs):
        if config.model == "1pl":
            raise FloatingPointError("planted")
        return fit(responses, config, *args, **kwargs)

    monkeypatch.setattr(pipeline, "fit", broken)
    result, _ = refresh(tmp_path / "broken", log, "2026-11-01T00:00:00Z")
    assert result.status == 500 and result.body["error"] == "FloatingPointError: planted"


def test_no_background_work_outlives_a_failed_run(tmp_path, monkeypatch) -> None:
    """A calibration that fails while the challenger is being fitted beside it: the run
    answers 500 only once the background thread is done (no thread of the run left behind
    to compete with the next one), and the report's fit statistics are never started."""
    import threading

    from irt.refresh import pipeline

    log = write_csv(simulated_rows(300, 25, 12, seed=9), tmp_path / "log.csv")
    started = threading.Event()
    real = pipeline._fit_simpler

    def slow(*args, **kwargs):
        started.set()
        time.sleep(0.5)  # still fitting when the calibration fails
        return real(*args, **kwargs)

    def failing(run, prepared, holdout):
        assert started.wait(10)
        raise FloatingPointError("planted")

    diagnosed = []
    monkeypatch.setattr(pipeline, "_fit_simpler", slow)
    monkeypatch.setattr(pipeline, "calibrate", failing)
    monkeypatch.setattr(pipeline, "start_report_diagnostics",
                        lambda *args: diagnosed.append(1))
    result, _ = refresh(tmp_path / "failed", log, "2026-11-01T00:00:00Z")
    assert result.status == 500 and result.body["error"] == "FloatingPointError: planted"
    assert [t.name for t in threading.enumerate() if t.name.startswith(pipeline.BACKGROUND)] \
        == []
    assert diagnosed == []


def test_a_model_no_better_than_item_proportions_is_rejected(tmp_path) -> None:
    """Students who all have the same ability: the IRT model has nothing to add to item
    difficulty, and its noisy ability estimates make it worse than the baseline."""
    rng = np.random.default_rng(5)
    p_item = rng.uniform(0.2, 0.8, 25)
    rows = []
    start = datetime(2026, 10, 1, 9, tzinfo=UTC)
    for s in range(600):
        for k, j in enumerate(rng.choice(25, 15, replace=False).tolist()):
            rows.append({"student_id": f"flat-{s:04d}", "item_id": f"Q{j:02d}",
                         "correct": str(int(rng.random() < p_item[j])),
                         "answered_at": (start + timedelta(days=s % 20, minutes=k)).strftime(
                             "%Y-%m-%d %H:%M:%S"), "skill_id": "k0"})
    log = write_csv(rows, tmp_path / "log.csv")
    result, _ = refresh(tmp_path, log, "2026-11-01T00:00:00Z", GATE_MIN_AUC="0.5")
    assert result.status == 422 and result.body["status"] == "rejected", result.body
    assert "a simpler model is better" in result.body["error"]
    mon = json.loads(LocalStore(tmp_path / "models").get(result.body["version"],
                                                         "metrics.json"))["monitoring"]
    assert mon["baseline"]["item_proportion"]["log_loss"] < \
        json.loads(LocalStore(tmp_path / "models").get(result.body["version"],
                                                       "metrics.json"))["gate"]["new"]["log_loss"]


# --------------------------------------------------------------------------- consequences
def assert_rejected_for(tmp: Path, log: Path, first: Any, result: Any, reason: str) -> None:
    """The run is a 422 ``rejected`` that names ``reason``; ``LATEST`` still names the first
    version; the rejected version's report and metrics say why."""
    assert result.status == 422 and result.body["status"] == "rejected", result.body
    assert reason in result.body["error"], result.body["error"]
    store = LocalStore(tmp / "models")
    assert store.read_pointer()[0] == first.body["version"]
    version = result.body["version"]
    assert {v.version: v.status for v in describe(store)}[version] == "rejected"
    report = json.loads(store.get(version, "report.json"))
    assert report["decision"] == "rejected" and any(reason in r for r in report["reasons"])
    metrics_doc = json.loads(store.get(version, "metrics.json"))
    assert any(reason in p for p in metrics_doc["monitoring_problems"])


def test_a_skew_failure_rejects_the_refresh(tmp_path) -> None:
    """The real serving path differs from ``eap_batch`` by predict's rounding (~5e-7); with
    the ability tolerance at 0 that is skew, and skew must stop the model (monitoring 3)."""
    log = two_windows(tmp_path)
    first, _ = refresh(tmp_path, log, "2026-10-24T00:00:00Z")
    assert first.status == 200, first.body
    result, logs = refresh(tmp_path, log, "2026-11-01T00:00:00Z", MONITOR_SKEW_THETA_TOL="0")
    assert_rejected_for(tmp_path, log, first, result, "between eap_batch and predict")
    (line,) = logs.events("monitoring")
    assert line["severity"] == "WARNING" and max(line["skew"]["max_abs_theta_diff"],
                                              line["skew"]["max_abs_se_diff"]) > 0


def test_a_slice_failure_rejects_the_refresh(tmp_path) -> None:
    """A sound model on real slices, held to AUC 0.99 per slice: a failing slice must stop
    the model (model 6), although the gate's overall floor passes."""
    log = two_windows(tmp_path)
    first, _ = refresh(tmp_path, log, "2026-10-24T00:00:00Z")
    assert first.status == 200, first.body
    result, _ = refresh(tmp_path, log, "2026-11-01T00:00:00Z", MONITOR_MIN_SLICE_AUC="0.99",
                        MONITOR_MIN_SLICE_ANSWERS="20")
    assert_rejected_for(tmp_path, log, first, result, "below 0.99")
    assert "slice 'history" in result.body["error"]


def test_a_numerical_failure_rejects_the_refresh(tmp_path, monkeypatch) -> None:
    """The calibration (the real one) hands back a model with one slope below zero, as a
    broken EM could: the numerical check must stop it (monitoring 5). Only the engine's
    output is altered; the refresh's checks and decision run as in production."""
    from irt.refresh import pipeline

    log = two_windows(tmp_path)
    first, _ = refresh(tmp_path, log, "2026-10-24T00:00:00Z")
    assert first.status == 200, first.body
    real_fit = pipeline.fit

    def broken_fit(*args: Any, **kwargs: Any):
        result = real_fit(*args, **kwargs)
        a = result.model.a.copy()
        a[0] = -abs(a[0])
        return replace(result, model=replace(result.model, a=a, _cache={}))

    monkeypatch.setattr(pipeline, "fit", broken_fit)
    result, _ = refresh(tmp_path, log, "2026-11-01T00:00:00Z")
    assert_rejected_for(tmp_path, log, first, result, "1 slopes not positive")


def rejected_first_run(tmp: Path, result: Any, reason: str) -> dict[str, Any]:
    """A first run (nothing serves) rejected for ``reason``: 422, no ``LATEST``, and the
    rejected version's report names it. Returns its metrics.json."""
    assert result.status == 422 and result.body["status"] == "rejected", result.body
    assert reason in result.body["error"], result.body["error"]
    store = LocalStore(tmp / "models")
    assert store.read_pointer()[0] is None
    version = result.body["version"]
    assert {v.version: v.status for v in describe(store)}[version] == "rejected"
    report = json.loads(store.get(version, "report.json"))
    assert any(reason in r for r in report["reasons"])
    return json.loads(store.get(version, "metrics.json"))


def test_a_skill_slice_below_the_relative_mark_rejects_the_refresh(tmp_path) -> None:
    """Model 6 end to end, with the default thresholds: a log whose skill ``k2`` items barely
    depend on ability. The gate's overall figures pass; the skill slice is above chance but
    below overall AUC - margin, and the refresh is rejected for it. The same log without
    the flaw publishes."""
    log = write_csv(skill_log(flat_skill=True), tmp_path / "log.csv")
    result, _ = refresh(tmp_path, log, "2026-11-01T00:00:00Z", COLUMN_SKILL="skill_id")
    metrics_doc = rejected_first_run(tmp_path, result, "slice 'skill k2'")
    slices = metrics_doc["monitoring"]["slices"]
    assert 0.5 < slices["skill k2"]["auc"] < slices["skill k2"]["mark"]
    assert metrics_doc["gate"]["passed"]  # the overall figure alone would have published
    assert [p for p in metrics_doc["monitoring_problems"] if "slice" in p] == [
        p for p in metrics_doc["monitoring_problems"] if "slice 'skill k2'" in p]
    sound = tmp_path / "sound"
    sound.mkdir()
    result, _ = refresh(sound, write_csv(skill_log(), sound / "log.csv"),
                        "2026-11-01T00:00:00Z", COLUMN_SKILL="skill_id")
    assert result.status == 200, result.body


def test_a_cold_start_failure_rejects_the_refresh(tmp_path) -> None:
    """Model 6 end to end: students whose first answers the model cannot predict (coin
    flips) - the held-out latest answers are fine, the cold-start slice rejects the run."""
    log = write_csv(skill_log(random_start=5), tmp_path / "log.csv")
    result, _ = refresh(tmp_path, log, "2026-11-01T00:00:00Z")
    metrics_doc = rejected_first_run(tmp_path, result, "slice 'cold start'")
    cold = metrics_doc["monitoring"]["slices"]["cold start"]
    assert cold["auc"] < cold["mark"] and metrics_doc["gate"]["passed"]


# --------------------------------------------------------------------------- staleness (model 4)
def drifting_log(seed: int = 8) -> list[dict[str, Any]]:
    """60 days of a 2PL log (from 2026-09-01) whose items drift: each difficulty moves
    1-1.8 logits per 30 days, up or down, so a model calibrated a month ago mis-ranks
    today's answers. 60 students a day, 20 of 30 items each, a minute apart."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.8, 1.8, 30)
    b0 = rng.normal(0.0, 0.8, 30)
    speed = rng.choice([-1.0, 1.0], 30) * rng.uniform(1.0, 1.8, 30) / 30.0  # per day
    start = datetime(2026, 9, 1, 9, tzinfo=UTC)
    rows = []
    for day in range(60):
        for s in range(60):
            theta = rng.normal()
            for k, j in enumerate(rng.choice(30, 20, replace=False).tolist()):
                p = 1 / (1 + np.exp(-a[j] * (theta - b0[j] - speed[j] * (day - 30))))
                rows.append({"student_id": f"d{day:02d}-{s:02d}", "item_id": f"Q{j:02d}",
                             "correct": str(int(rng.random() < p)), "skill_id": "",
                             "answered_at": (start + timedelta(days=day, minutes=k)).strftime(
                                 "%Y-%m-%d %H:%M:%S")})
    return rows


def test_staleness_is_measured_with_the_stored_versions_on_the_newest_answers(tmp_path) -> None:
    """Model 4: three refreshes of 7-day windows of a drifting log, ending 2026-10-01,
    -10-24 and -10-31. The third scores the stored versions from 30 and 7 days before on
    its held-out answers: the curve (metrics.json and report.json) names those versions,
    gets worse with age, and each point equals an independent recomputation from the
    stored model.json and the held-out answers in prepared.csv.gz."""
    import csv
    import gzip
    import io

    from irt.engine.evaluate import metrics as eval_metrics
    from irt.engine.evaluate import online_predictions

    log = write_csv(drifting_log(), tmp_path / "log.csv")
    ends = ("2026-10-01T00:00:00Z", "2026-10-24T00:00:00Z", "2026-10-31T00:00:00Z")
    versions = []
    for end in ends:
        result, _ = refresh(tmp_path, log, end, days=7)
        assert result.status == 200, result.body
        versions.append(result.body["version"])
    store = LocalStore(tmp_path / "models")
    mon = json.loads(store.get(versions[2], "metrics.json"))["monitoring"]
    staleness = mon["staleness"]
    assert json.loads(store.get(versions[2], "report.json"))["staleness"] == staleness
    curve = staleness["curve"]
    assert staleness["ages"] == [0, 7, 30]
    assert (curve["7"]["version"], curve["30"]["version"]) == (versions[1], versions[0])
    assert (curve["7"]["age_days"], curve["30"]["age_days"]) == (7.0, 30.0)
    print({k: (round(v["auc"], 4), round(v["log_loss"], 4)) for k, v in curve.items()})
    # staleness hurts, monotonically, by more than the noise of a paired comparison
    assert curve["0"]["log_loss"] < curve["7"]["log_loss"] < curve["30"]["log_loss"] - 0.02
    assert curve["0"]["auc"] > curve["30"]["auc"] + 0.02
    assert curve["7"]["auc"] > curve["30"]["auc"]
    # independent recomputation: the stored models on the held-out answers as stored
    with gzip.open(io.BytesIO(store.get(versions[2], "prepared.csv.gz")), "rt") as f:
        rows = list(csv.DictReader(f))
    held_students = {r["student_id"] for r in rows if r["holdout"] == "1"}
    rows = sorted((r for r in rows if r["student_id"] in held_students),
                  key=lambda r: (r["student_id"], r["answered_at"]))
    ids = sorted(held_students)
    student = np.array([ids.index(r["student_id"]) for r in rows])
    y = np.array([int(r["correct"]) for r in rows], dtype=np.int8)
    held = np.array([r["holdout"] == "1" for r in rows])
    assert curve["0"]["n"] == curve["30"]["n"] == int(held.sum())
    for age, version in (("0", versions[2]), ("7", versions[1]), ("30", versions[0])):
        model = load_model(store.get(version, "model.json"))
        p = online_predictions(model, student, model.positions([r["item_id"] for r in rows]),
                               y)
        expected = eval_metrics(y[held].astype(float), p[held])
        assert curve[age]["auc"] == pytest.approx(expected["auc"], abs=1e-9), age
        assert curve[age]["log_loss"] == pytest.approx(expected["log_loss"], abs=1e-9), age


def test_the_staleness_points_are_the_published_versions_closest_to_7_and_30_days(
        tmp_path, fitted) -> None:
    """Which stored versions the curve uses: published (or serving) only, the closest window
    end to 7 and to 30 days before the new one, within half that age; rejected and
    unpublished versions never."""
    from types import SimpleNamespace

    from irt.refresh.pipeline import Serving, stored_versions_by_age

    store = LocalStore(tmp_path / "models")
    body = fitted.model.to_json().encode()
    end = datetime(2026, 11, 1, tzinfo=UTC)

    def version(days: float, published: bool = True, tag: str = "abc") -> str:
        v = f"{end - timedelta(days=days):%Y%m%dT%H%M%SZ}-{tag}"
        store.put(v, "model.json", body, "application/json")
        store.put(v, "report.json", b"{}", "application/json")
        if published:
            store.put(v, "PUBLISHED", b"", "text/plain")
        return v

    version(1)
    v6 = version(6)
    version(7, published=False, tag="rejected-x")  # nearer, never published
    version(12)  # 5 from 7 (> 3.5), 18 from 30 (> 15): neither
    v26 = version(26)
    version(30, published=False, tag="dryrun")
    serving = version(33, published=False, tag="serving")  # serving, not yet marked
    run = SimpleNamespace(store=store, window_end=end, say=lambda *a, **k: None)
    picked = stored_versions_by_age(run, Serving(serving, None))
    assert [(t, v, age) for t, v, age, _ in picked] == [(7, v6, 6.0), (30, serving, 33.0)]
    picked = stored_versions_by_age(run, Serving(None, None))  # were it not serving
    assert [(t, v, age) for t, v, age, _ in picked] == [(7, v6, 6.0), (30, v26, 26.0)]
    version(29.5, tag="later")
    picked = stored_versions_by_age(run, Serving(serving, None))
    assert [(t, age) for t, _, age, _ in picked] == [(7, 6.0), (30, 29.5)]
    assert all(m.item_ids == fitted.model.item_ids for *_, m in picked)
    only_old = SimpleNamespace(store=LocalStore(tmp_path / "empty"), window_end=end,
                               say=run.say)
    assert stored_versions_by_age(only_old, Serving(None, None)) == []


# --------------------------------------------------------------------------- slow leak
def blurred(model, sd: float, seed: int):
    """The model with noise of SD ``sd`` on every difficulty: a version that ranks answers
    a little worse than the fitted one."""
    noise = np.random.default_rng(seed).normal(0.0, sd, model.b.size)
    return replace(model, b=model.b + noise, _cache={})


def served_chain(sim, fitted, sds, config=CFG):
    """Publish a version per ``sds`` (difficulty noise), each serving after the one before:
    its served AUC (on the latest half of the answers) and its offline AUC at publication
    (the earlier half, as the gate saw it); the trend history carried from version to
    version as ``metrics.json`` carries it.  Returns per version ``(served AUC, the
    served_quality alerts, the trend alerts)``."""
    student, item_ids, correct, order = columns(sim.responses)
    since = float(np.quantile(order, 0.5))
    history, out = None, []
    for k, sd in enumerate(sds):
        model = blurred(fitted.model, sd, seed=k)
        offline, _ = served_quality(model, float(order.min()), None, student, item_ids, correct,
                                    np.where(order < since, order, np.inf), sim.responses
                                    .student_ids, config)
        figures, alerts = served_quality(model, since, offline["online_gate_protocol"]["auc"],
                                         student, item_ids, correct, order,
                                         sim.responses.student_ids, config)
        auc = figures["online_gate_protocol"]["auc"]
        trend, trend_alerts = served_trend(history, auc, f"v{k}", config)
        history = json.loads(json.dumps(trend["history"]))  # through metrics.json
        out.append((auc, alerts, trend_alerts))
    return out


def test_a_slow_leak_across_versions_raises_the_trend_alert_the_fixed_floor_misses(
        sim, fitted) -> None:
    """Monitoring 7: 14 versions, each a little worse than the one before (difficulty noise
    growing by 0.08 a version).  Every version's served AUC stays far above the gate's
    fixed floor (0.55) and equals its own AUC at publication (served_quality stays quiet),
    so neither notices; the trailing median across versions does.  Versions of steady
    quality (the same noise, other draws) raise nothing."""
    leak = served_chain(sim, fitted, [0.08 * k for k in range(14)])
    aucs = [auc for auc, _, _ in leak]
    assert aucs[0] - aucs[-1] > 0.03  # a real leak ...
    assert min(aucs) > GateConfig().min_auc + 0.1  # ... that the fixed floor never sees
    assert not any(alerts for _, alerts, _ in leak)  # nor each version against itself
    fired = [k for k, (_, _, trend) in enumerate(leak) if trend]
    assert fired, f"no trend alert over served AUCs {[round(a, 4) for a in aucs]}"
    assert fired[0] >= CFG.served_trend_min_versions
    assert "slow leak" in leak[fired[0]][2][0] and f"v{fired[0]}'s AUC" in leak[fired[0]][2][0]
    steady = served_chain(sim, fitted, [0.3] * 14)
    assert not any(trend for _, _, trend in steady), [round(a, 4) for a, _, _ in steady]


def test_served_trend_keeps_the_last_versions_and_needs_enough_of_them() -> None:
    config = MonitorConfig(served_trend_versions=4, served_trend_min_versions=3,
                           served_trend_margin=0.02)
    history = [{"version": f"v{k}", "auc": 0.80} for k in range(6)]
    figures, alerts = served_trend(history, 0.77, "v6", config)
    assert alerts and figures["median"] == 0.80 and figures["floor"] == pytest.approx(0.78)
    assert [h["version"] for h in figures["history"]] == ["v3", "v4", "v5", "v6"]
    assert served_trend(history, 0.785, "v6", config)[1] == []
    assert served_trend(history[:2], 0.5, "v2", config)[1] == []  # too few to judge
    figures, alerts = served_trend(None, None, None, config)  # nothing served yet
    assert figures["history"] == [] and not alerts
    figures, _ = served_trend(history, None, "v6", config)  # not measured: carried on
    assert [h["version"] for h in figures["history"]] == ["v2", "v3", "v4", "v5"]


def test_a_refresh_compares_served_auc_with_the_history_of_published_versions(
        tmp_path) -> None:
    """End to end: the serving version's metrics.json in the model store says the versions
    before it served at an AUC 0.1 above what it serves now: the refresh raises
    ``monitoring_alert`` (check ``served_quality_trend``) and its own metrics.json carries
    the history on with this refresh's figure; a history at the level it serves now raises
    nothing."""
    log = two_windows(tmp_path)
    first, _ = refresh(tmp_path, log, "2026-10-24T00:00:00Z")
    version = first.body["version"]
    store = LocalStore(tmp_path / "models")
    metrics_before = json.loads(store.get(version, "metrics.json"))
    assert metrics_before["monitoring"]["served_trend"]["history"] == []  # nothing served
    probe_run, _ = refresh(tmp_path, log, "2026-11-01T00:00:00Z",
                           MONITOR_SERVED_TREND_MIN_VERSIONS="1000")  # measure only
    served = json.loads(store.get(probe_run.body["version"], "metrics.json"))
    (entry,) = served["monitoring"]["served_trend"]["history"]
    assert entry["version"] == version and 0.6 < entry["auc"] < 0.95
    store.move_pointer(version, store.read_pointer()[1])  # back to the first version

    def rerun(level: float, end: str):
        metrics = {**metrics_before, "monitoring": {
            **metrics_before["monitoring"], "served_trend": {"history": [
                {"version": f"older-{k}", "auc": level} for k in range(5)]}}}
        store.put(version, "metrics.json", json.dumps(metrics).encode(), "application/json")
        return refresh(tmp_path, log, end)

    result, logs = rerun(entry["auc"] + 0.1, "2026-11-02T00:00:00Z")
    alerts = [a for a in logs.events("monitoring_alert") if a["check"] == "served_quality_trend"]
    assert alerts and "slow leak" in alerts[0]["detail"], logs.events("monitoring_alert")
    assert result.status == 200  # an alert about the serving model, not a rejection
    trend = json.loads(store.get(result.body["version"], "metrics.json"))["monitoring"][
        "served_trend"]
    assert [h["version"] for h in trend["history"]] == [f"older-{k}" for k in range(5)] + [
        version]
    assert trend["median"] == pytest.approx(entry["auc"] + 0.1)
    store.move_pointer(version, store.read_pointer()[1])
    result, logs = rerun(entry["auc"], "2026-11-03T00:00:00Z")
    assert result.status == 200
    assert not [a for a in logs.events("monitoring_alert")
                if a["check"] == "served_quality_trend"]
