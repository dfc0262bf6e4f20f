"""Each Terraform alert fires in the situation it is there for, and stays quiet in a healthy one.

The structural tests (``test_terraform.py``) check what an alert watches; these evaluate its
condition: the comparison, threshold, duration, alignment and missing-data rule of each
``condition_threshold``, resolved with each environment's tfvars (and the variables'
defaults), run over a simulated metric. A flipped comparison, a threshold raised out of
reach or a duration longer than the situation lasts fails here.

The evaluation is Cloud Monitoring's threshold rule in small: every ``STEP`` the aligned
value is computed over the trailing ``alignment_period`` (a sum for ``ALIGN_SUM`` and
``ALIGN_DELTA``, the largest sample for a percentile aligner; a ratio with a
``denominator_filter``); a window without points is missing data, violating only under
``EVALUATION_MISSING_DATA_ACTIVE``; the alert fires when every evaluation over ``duration``
violates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from tfconfig import CONFIG, ENVS, alert_policies, locals_, of_type, one, tfvars, variables

STEP = 60.0  # seconds between evaluations
HOUR, DAY = 3600.0, 86400.0
Events = Sequence[tuple[float, float]]  # (time in seconds, value) of each metric point


def resolve(value: Any, env: str) -> Any:
    """A parsed HCL value with ``${...}`` interpolations of ``var.*`` and ``local.*``
    evaluated (tfvars of ``env``, else the variable's default)."""
    if not isinstance(value, str) or "${" not in value:
        return value
    values = tfvars(env)
    defaults = variables(CONFIG)

    def expr(text: str) -> Any:
        def var(m: re.Match) -> str:
            name = m.group(1)
            return repr(values[name] if name in values else defaults[name]["default"])

        def local(m: re.Match) -> str:
            return repr(resolve(locals_()[m.group(1)], env))

        code = re.sub(r"\blocal\.(\w+)", local, re.sub(r"\bvar\.(\w+)", var, text))
        return eval(code, {"__builtins__": {}}, {"min": min, "max": max})

    whole = re.fullmatch(r"\$\{(.*)\}", value)
    if whole:
        return expr(whole.group(1))
    return re.sub(r"\$\{(.*?)\}", lambda m: str(expr(m.group(1))), value)


def seconds(text: str) -> float:
    assert text.endswith("s"), text
    return float(text[:-1])


def condition(alert: str, env: str) -> dict[str, Any]:
    """The alert's (first) ``condition_threshold``, every value resolved for ``env``."""
    body = alert_policies()[alert]
    if "conditions" in body:
        cond = one(one(body["conditions"])["condition_threshold"])
    else:  # dynamic "conditions" (memory): one per function, all alike
        cond = one(one(one(body["dynamic"])["conditions"]["content"])["condition_threshold"])
    keys = ("comparison", "threshold_value", "duration", "evaluation_missing_data")
    out = {k: resolve(cond[k], env) for k in keys}
    out["aggregation"] = {k: resolve(one(cond["aggregations"])[k], env)
                          for k in ("alignment_period", "per_series_aligner")}
    return out


def aligned(cond: dict[str, Any], events: Events, t: float) -> float | None:
    period = seconds(cond["aggregation"]["alignment_period"])
    window = [v for (s, v) in events if t - period < s <= t]
    if not window:
        return None
    aligner = cond["aggregation"]["per_series_aligner"]
    if aligner in ("ALIGN_SUM", "ALIGN_DELTA"):
        return float(sum(window))
    assert aligner.startswith("ALIGN_PERCENTILE"), aligner
    return float(max(window))


def violates(cond: dict[str, Any], value: float | None) -> bool:
    if value is None:
        return cond["evaluation_missing_data"] == "EVALUATION_MISSING_DATA_ACTIVE"
    threshold = float(cond["threshold_value"])
    compare: dict[str, Callable[[float, float], bool]] = {
        "COMPARISON_GT": lambda v, x: v > x, "COMPARISON_GE": lambda v, x: v >= x,
        "COMPARISON_LT": lambda v, x: v < x, "COMPARISON_LE": lambda v, x: v <= x}
    return compare[cond["comparison"]](value, threshold)


def fires_at(alert: str, env: str, events: Events, horizon: float,
             denominator: Events | None = None, start: float = 0.0) -> float | None:
    """When the alert first fires over ``[start, horizon]`` (``None``: it does not)."""
    cond = condition(alert, env)
    duration = seconds(cond["duration"])
    since = None
    t = start
    while t <= horizon:
        value = aligned(cond, events, t)
        if denominator is not None:
            total = aligned(cond, denominator, t)
            value = None if not total else \
                (value or 0.0) / total
        if violates(cond, value):
            since = t if since is None else since
            if t - since >= duration:
                return t
        else:
            since = None
        t += STEP
    return None


def every(period: float, until: float, value: float = 1.0, start: float = 0.0) -> Events:
    out, t = [], start
    while t <= until:
        out.append((t, value))
        t += period
    return out


# --------------------------------------------------------------------------- the alerts
@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("alert", ["refresh_failed", "monitoring_alert",
                                   "refresh_attempt_failed"])
def test_one_logged_line_fires_and_none_stays_quiet(alert: str, env: str) -> None:
    """refresh_failed, monitoring_alert, refresh_attempt_failed: a single log line (one failed
    refresh, one finding, one failed attempt of the refresh job) is the situation; it must
    fire within minutes, and no line must not fire."""
    assert fires_at(alert, env, [(600.0, 1.0)], 2 * HOUR) is not None
    assert fires_at(alert, env, [(600.0, 1.0)], 2 * HOUR) <= 600.0 + 10 * 60
    assert fires_at(alert, env, [], 2 * HOUR) is None


@pytest.mark.parametrize("env", ENVS)
def test_model_stale_fires_when_publishing_stops_and_not_while_it_goes_on(env: str) -> None:
    """model_stale: publishing daily (the schedule) or more often (manual runs, a shorter
    schedule) is healthy; no publish for ``model_max_age_hours`` fires, and not much
    earlier or later than that."""
    max_age = float(resolve("${var.model_max_age_hours}", env)) * HOUR
    horizon = 10 * DAY
    for period in (DAY, 6 * HOUR, HOUR):
        healthy = every(period, horizon)
        assert fires_at("model_stale", env, healthy, horizon, start=2 * DAY) is None, period
    last = 3 * DAY
    stopped = every(DAY, last)
    when = fires_at("model_stale", env, stopped, horizon, start=2 * DAY)
    assert when is not None, "publishing stopped and model_stale never fired"
    assert max_age - HOUR <= when - last <= max_age + HOUR, (when - last) / HOUR


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("alert", ["predict_5xx", "predict_4xx"])
def test_error_ratio_fires_above_its_threshold_only(alert: str, env: str) -> None:
    """predict_5xx / predict_4xx: 100 requests a minute; a sustained error share of twice
    the threshold fires within 20 minutes, half the threshold and none do not."""
    threshold = float(condition(alert, env)["threshold_value"])
    assert 0 < threshold < 1
    requests = every(60.0, 3 * HOUR, 100.0)
    for share, expected in ((2 * threshold, True), (threshold / 2, False), (0.0, False)):
        errors = every(60.0, 3 * HOUR, 100.0 * share, start=HOUR) if share else []
        when = fires_at(alert, env, errors, 3 * HOUR, denominator=requests)
        assert (when is not None) == expected, (share, when)
        if expected:
            assert when - HOUR <= 20 * 60, when


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize(("alert", "normal"), [("predict_latency", 40.0), ("memory", 0.5)])
def test_gauge_fires_when_high_for_its_duration(alert: str, normal: float, env: str) -> None:
    """predict_latency (p99 ms), memory (utilisation): a sustained value above the threshold
    fires within 20 minutes; the normal value, and a one-minute spike, do not."""
    threshold = float(condition(alert, env)["threshold_value"])
    assert normal < threshold
    base = every(60.0, 3 * HOUR, normal)
    high = [(t, 1.5 * threshold if t >= HOUR else v) for t, v in base]
    when = fires_at(alert, env, high, 3 * HOUR)
    assert when is not None and when - HOUR <= 20 * 60, when
    assert fires_at(alert, env, base, 3 * HOUR) is None
    spike = [(t, 1.5 * threshold if t == HOUR else v) for t, v in base]
    assert fires_at(alert, env, spike, 3 * HOUR) is None


@pytest.mark.parametrize("env", ENVS)
def test_refresh_slow_fires_on_a_run_over_half_its_timeout(env: str) -> None:
    timeout = float(resolve("${var.prepare_timeout_seconds}", env))
    assert fires_at("refresh_slow", env, [(HOUR, 0.8 * timeout)], 3 * HOUR) is not None
    assert fires_at("refresh_slow", env, [(HOUR, 0.1 * timeout)], 3 * HOUR) is None


# --------------------------------------------------------------------------- predict's model
def matches(log_filter: str, entry: dict[str, Any]) -> bool:
    """Whether a log-based metric's filter counts a line of predict's log (the resource
    clauses aside: the line is predict's): ``severity>=LEVEL``, ``jsonPayload.K="v"`` and
    ``jsonPayload.K=("v" OR "w")`` joined by ``AND``."""
    levels = ["DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"]
    for clause in log_filter.split(" AND "):
        if clause.startswith(("resource.", "${local.predict_filter}")):
            continue
        if m := re.fullmatch(r"severity>=(\w+)", clause):
            if levels.index(entry["severity"]) < levels.index(m.group(1)):
                return False
        elif m := re.fullmatch(r'jsonPayload\.(\w+)=\((.*)\)', clause):
            if entry.get(m.group(1)) not in re.findall(r'"([^"]*)"', m.group(2)):
                return False
        elif m := re.fullmatch(r'jsonPayload\.(\w+)="([^"]*)"', clause):
            if entry.get(m.group(1)) != m.group(2):
                return False
        else:
            raise AssertionError(f"clause not understood: {clause}")
    return True


@pytest.fixture(scope="module")
def loader_lines(tmp_path_factory) -> list[dict[str, Any]]:
    """What predict's real loader logs when a new version fails the canary answers, when
    ``LATEST`` names a version it cannot fetch, and after a refresh interval of that."""
    import json
    import logging
    import time

    from irt.engine.calibrate import FitConfig, fit
    from irt.engine.simulate import simulate
    from irt.serving import Limits
    from irt.serving.loader import ModelCache
    from irt.store import LocalStore

    root = tmp_path_factory.mktemp("store")
    models = root / "models"

    def publish(version: str, text: str | None) -> None:
        if text is not None:
            (models / version).mkdir(parents=True)
            (models / version / "model.json").write_text(text)
        (models / "LATEST").write_text(version)

    lines: list[dict[str, Any]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append({"severity": record.levelname, "message": record.getMessage(),
                          **getattr(record, "fields", {})})

    log = logging.getLogger("test-alert-semantics-loader")
    log.addHandler(Capture())
    log.propagate = False
    log.setLevel(logging.INFO)
    model = fit(simulate(600, 20, 10, seed=3).responses, FitConfig(compute_se=False)).model
    doc = json.loads(model.to_json())
    for spec in doc["items"].values():
        spec["a"] = 1e-9  # loads, but all right scores as all wrong
    publish("v1", model.to_json())
    cache = ModelCache(LocalStore(root), Limits(), refresh_seconds=0.05, retry_seconds=0.05,
                       log=log)
    assert cache.load()[1] == "v1"
    publish("v2", json.dumps(doc))
    cache.load()
    publish("ghost", None)
    cache.load()
    time.sleep(0.06)
    cache.load()
    assert cache.loaded[1] == "v1"
    return lines


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize(("alert", "counted"), [
    ("model_rejected", {"model_rejected", "model_fetch_failed"}),
    ("model_behind", {"model_behind"})])
def test_predict_model_alerts_fire_on_one_line_of_the_loader_and_not_on_none(
        alert: str, counted: set[str], env: str, loader_lines) -> None:
    """model_rejected (infrastructure 6), model_behind (monitoring 4): the lines predict's
    loader logs are counted by the alert's metric; one counted line fires within minutes,
    none (a loader that only loads) stays quiet."""
    log_filter = of_type("google_logging_metric")[alert]["filter"]
    assert log_filter.startswith("${local.predict_filter} AND ")
    found = {e.get("event") for e in loader_lines if matches(log_filter, e)}
    assert found == counted, found
    quiet = [e for e in loader_lines if e["message"] == "model loaded"]
    assert quiet and not any(matches(log_filter, e) for e in quiet)
    for event in counted:
        line = next(e for e in loader_lines if e.get("event") == event)
        when = fires_at(alert, env, [(600.0, 1.0)] if matches(log_filter, line) else [],
                        2 * HOUR)
        assert when is not None and when <= 600.0 + 10 * 60, (event, when)
    assert fires_at(alert, env, [], 2 * HOUR) is None


# --------------------------------------------------------------------------- the refresh job
def scheduler_entry(env: str, severity: str, status: str | None = None,
                    job: str | None = None, resource: str = "cloud_scheduler_job") -> dict:
    """A Cloud Scheduler execution log entry (log cloudscheduler.googleapis.com/executions)
    of an attempt of the refresh job: AttemptStarted at INFO, AttemptFinished at ERROR with
    the failure's status (or at INFO when it succeeded)."""
    name = job or resolve("${local.scheduler_job_name}", env)
    payload = {"@type": "type.googleapis.com/google.cloud.scheduler.logging.AttemptFinished",
               "jobName": f"projects/p/locations/{tfvars(env)['region']}/jobs/{name}"}
    if status:
        payload["status"] = status
    return {"resource": {"type": resource,
                         "labels": {"job_id": name, "location": tfvars(env)["region"]}},
            "severity": severity, "jsonPayload": payload}


def counts(log_filter: str, entry: dict[str, Any]) -> bool:
    """Whether a filter of ``resource.type="x"``, ``resource.labels.k="v"`` and
    ``severity>=LEVEL`` clauses joined by ``AND`` matches a log entry."""
    levels = ["DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"]
    for clause in log_filter.split(" AND "):
        if m := re.fullmatch(r"severity>=(\w+)", clause):
            if levels.index(entry["severity"]) < levels.index(m.group(1)):
                return False
        elif m := re.fullmatch(r'resource\.type="([^"]*)"', clause):
            if entry["resource"]["type"] != m.group(1):
                return False
        elif m := re.fullmatch(r'resource\.labels\.(\w+)="([^"]*)"', clause):
            if entry["resource"]["labels"].get(m.group(1)) != m.group(2):
                return False
        else:
            raise AssertionError(f"clause not understood: {clause}")
    return True


@pytest.mark.parametrize("env", ENVS)
def test_a_failed_attempt_of_the_refresh_job_is_counted_and_fires(env: str) -> None:
    """The deployment audit: a refresh that dies before it logs (timeout, OOM, an import
    error, Cloud Run's 403 or 429) raised nothing until model_stale, 30-48 hours on. The
    scheduler's failed attempt of the refresh job is counted (any status), its started and
    successful attempts, other jobs' failures and prepare's own lines are not, and one counted
    line fires the alert within minutes."""
    log_filter = resolve(of_type("google_logging_metric")["refresh_attempt_failed"]["filter"],
                         env)
    failed = [scheduler_entry(env, "ERROR", status) for status in
              ("DEADLINE_EXCEEDED", "UNAVAILABLE", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
               "INTERNAL")]
    assert all(counts(log_filter, e) for e in failed)
    quiet = [scheduler_entry(env, "INFO"),  # AttemptStarted, or a successful AttemptFinished
             scheduler_entry(env, "ERROR", "UNAVAILABLE", job="another-job"),
             scheduler_entry(env, "ERROR", "UNAVAILABLE", resource="cloud_run_revision")]
    assert not any(counts(log_filter, e) for e in quiet)
    when = fires_at("refresh_attempt_failed", env, [(600.0, 1.0)], 2 * HOUR)
    assert when is not None and when <= 600.0 + 10 * 60
