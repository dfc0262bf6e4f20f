"""The operations dashboard (``terraform/irt/dashboard.tf``, #14): what it charts, and that its
aggregations are values the Monitoring API accepts.

The aligners and reducers are checked against the enums of the real provider schema
(hashicorp/google 6.50.0: ``per_series_aligner`` / ``cross_series_reducer`` of
google_monitoring_alert_policy, the same ``Aggregation`` message of the Monitoring API that a
dashboard's ``timeSeriesFilter.aggregation`` uses:
https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies#aggregation).
"""

from __future__ import annotations

import re

import pytest
import tfschema
from tfconfig import locals_, of_type

CHARTS = (
    "predict: requests per second by response class",
    "predict: latency p50 / p95 / p99 (ms)",
    "predict: 4xx and 5xx per second",
    "predict: instances",
    "prepare: runs (published / failed)",
    "prepare: run duration p50 / p99 (s)",
    "prepare: monitoring findings by check",
    "model: versions loaded by predict instances",
    "model: quality gate, held-out AUC of each new model (by verdict)",
    "model: quality gate, held-out log-loss of each new model (by verdict)",
)


def charts_text() -> str:
    return str(locals_()["charts"])


def test_dashboard_charts_serving_refresh_and_model() -> None:
    text = charts_text()
    for title in CHARTS:
        assert title in text, title
    for metric in ("run.googleapis.com/request_count", "run.googleapis.com/request_latencies",
                   "run.googleapis.com/container/instance_count"):
        assert metric in text, metric
    for name in ("model_published", "refresh_failed", "refresh_seconds", "monitoring_alert",
                 "model_loaded", "gate_auc", "gate_log_loss"):
        assert f"google_logging_metric.{name}" in text, name
    (dashboard,) = of_type("google_monitoring_dashboard").values()
    assert "local.charts" in dashboard["dashboard_json"]
    assert "${time_sleep.log_metrics}" in dashboard["depends_on"]


def test_dashboard_metrics_read_the_lines_the_code_logs() -> None:
    metrics = of_type("google_logging_metric")
    assert metrics["gate_auc"]["value_extractor"] == "EXTRACT(jsonPayload.new.auc)"
    assert metrics["gate_log_loss"]["value_extractor"] == "EXTRACT(jsonPayload.new.log_loss)"
    assert 'jsonPayload.event="gate"' in metrics["gate_auc"]["filter"]
    assert 'jsonPayload.message="model loaded"' in metrics["model_loaded"]["filter"]
    from tfconfig import ROOT
    pipeline = (ROOT / "shared/irt/refresh/pipeline.py").read_text()
    assert 'event="gate"' in pipeline and "**verdict.to_dict()" in pipeline
    evaluate = (ROOT / "shared/irt/engine/evaluate.py").read_text()
    assert '"auc":' in evaluate and '"log_loss":' in evaluate
    loader = (ROOT / "shared/irt/serving/loader.py").read_text()
    assert '"model loaded", model_version=version' in loader


def test_dashboard_aggregations_are_api_values() -> None:
    try:
        schema = tfschema.load_schemas()["google"]
    except tfschema.SchemaUnavailableError as exc:
        pytest.skip(f"provider schema package unavailable: {exc}")
    agg = schema.struct("MonitoringAlertPolicyConditionsConditionThresholdAggregations")
    aligners = set(agg["attributes"]["per_series_aligner"]["enum"])
    reducers = set(agg["attributes"]["cross_series_reducer"]["enum"])
    text = charts_text()
    used_aligners = set(re.findall(r'aligner = "?(ALIGN_\w+)', text))
    used_reducers = set(re.findall(r'reducer = "?(REDUCE_[A-Z_]+)', text))
    used_reducers |= {f"REDUCE_PERCENTILE_{p}" for p in ("50", "95", "99")
                      if "REDUCE_PERCENTILE_${p}" in text}
    used_reducers.discard("REDUCE_PERCENTILE_")
    assert used_aligners and used_aligners <= aligners, used_aligners - aligners
    assert used_reducers and used_reducers <= reducers, used_reducers - reducers
