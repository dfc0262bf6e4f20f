# The operations dashboard, beside the alerts (monitoring.tf): predict's traffic, latency,
# errors and instances; prepare's runs, duration and decisions; the serving model's version
# and the quality gate's figures over time. Three log-based metrics feed the last row: the
# gate's held-out AUC and log-loss of each new model (prepare's `gate` line, fields
# new.auc / new.log_loss) and the versions predict instances load (its `model loaded` line).

locals {
  predict_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.function_names.predict}\""
  prepare_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.function_names.prepare}\""
  user_metric    = "metric.type=\"logging.googleapis.com/user"

  # One chart: a title and its series (filter, aligner, reducer, group-by labels, legend).
  charts = [
    { title = "predict: requests per second by response class", series = [
      { filter = "metric.type=\"run.googleapis.com/request_count\" AND ${local.predict_filter}", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group_by = ["metric.label.response_code_class"], legend = "" },
    ] },
    { title = "predict: latency p50 / p95 / p99 (ms)", series = [
      for p in ["50", "95", "99"] : { filter = "metric.type=\"run.googleapis.com/request_latencies\" AND ${local.predict_filter}", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_${p}", group_by = [], legend = "p${p}" }
    ] },
    { title = "predict: 4xx and 5xx per second", series = [
      for class in ["4xx", "5xx"] : { filter = "metric.type=\"run.googleapis.com/request_count\" AND ${local.predict_filter} AND metric.labels.response_code_class=\"${class}\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group_by = [], legend = class }
    ] },
    { title = "predict: instances", series = [
      { filter = "metric.type=\"run.googleapis.com/container/instance_count\" AND ${local.predict_filter}", aligner = "ALIGN_MAX", reducer = "REDUCE_SUM", group_by = ["metric.label.state"], legend = "" },
    ] },
    { title = "prepare: runs (published / failed)", series = [
      for m in [google_logging_metric.model_published, google_logging_metric.refresh_failed] : { filter = "${local.user_metric}/${m.name}\" AND resource.type=\"cloud_run_revision\"", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", group_by = [], legend = m.name }
    ] },
    { title = "prepare: run duration p50 / p99 (s)", series = [
      for p in ["50", "99"] : { filter = "${local.user_metric}/${google_logging_metric.refresh_seconds.name}\" AND resource.type=\"cloud_run_revision\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_${p}", group_by = [], legend = "p${p}" }
    ] },
    { title = "prepare: monitoring findings by check", series = [
      { filter = "${local.user_metric}/${google_logging_metric.monitoring_alert.name}\" AND resource.type=\"cloud_run_revision\"", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", group_by = ["metric.label.check"], legend = "" },
    ] },
    { title = "prepare: prepare's CPU and memory (p99 utilisation)", series = [
      for m in ["cpu", "memory"] : { filter = "metric.type=\"run.googleapis.com/container/${m}/utilizations\" AND ${local.prepare_filter}", aligner = "ALIGN_PERCENTILE_99", reducer = "REDUCE_MAX", group_by = [], legend = m }
    ] },
    { title = "model: versions loaded by predict instances", series = [
      { filter = "${local.user_metric}/${google_logging_metric.model_loaded.name}\" AND resource.type=\"cloud_run_revision\"", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", group_by = ["metric.label.model_version"], legend = "" },
    ] },
    { title = "model: quality gate, held-out AUC of each new model (by verdict)", series = [
      { filter = "${local.user_metric}/${google_logging_metric.gate_auc.name}\" AND resource.type=\"cloud_run_revision\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_50", group_by = ["metric.label.passed"], legend = "" },
    ] },
    { title = "model: quality gate, held-out log-loss of each new model (by verdict)", series = [
      { filter = "${local.user_metric}/${google_logging_metric.gate_log_loss.name}\" AND resource.type=\"cloud_run_revision\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_50", group_by = ["metric.label.passed"], legend = "" },
    ] },
  ]
}

resource "google_monitoring_dashboard" "irt" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "IRT ${var.environment}"
    labels      = { irt = "" }
    mosaicLayout = {
      columns = 12
      tiles = [for i, chart in local.charts : {
        xPos   = (i % 2) * 6
        yPos   = floor(i / 2) * 4
        width  = 6
        height = 4
        widget = {
          title = chart.title
          xyChart = {
            dataSets = [for s in chart.series : {
              plotType           = "LINE"
              legendTemplate     = s.legend
              minAlignmentPeriod = "60s"
              timeSeriesQuery = {
                timeSeriesFilter = {
                  filter = s.filter
                  aggregation = {
                    alignmentPeriod    = "60s"
                    perSeriesAligner   = s.aligner
                    crossSeriesReducer = s.reducer
                    groupByFields      = s.group_by
                  }
                }
              }
            }]
          }
        }
      }]
    }
  })

  # The log-based metrics it charts exist (and have propagated) first.
  depends_on = [time_sleep.log_metrics]
}

# --------------------------------------------------------------------------- its metrics
resource "google_logging_metric" "gate_auc" {
  project         = var.project_id
  name            = "${local.prefix}-gate-auc"
  description     = "Held-out AUC of each new model at the quality gate (event=gate, new.auc), by verdict."
  filter          = "${local.prepare_log_filter} AND jsonPayload.event=\"gate\""
  value_extractor = "EXTRACT(jsonPayload.new.auc)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "IRT gate AUC (${var.environment})"
    labels {
      key         = "passed"
      value_type  = "STRING"
      description = "true when the gate passed"
    }
  }
  label_extractors = {
    passed = "EXTRACT(jsonPayload.passed)"
  }
  bucket_options {
    linear_buckets {
      num_finite_buckets = 40
      width              = 0.025
      offset             = 0
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "gate_log_loss" {
  project         = var.project_id
  name            = "${local.prefix}-gate-log-loss"
  description     = "Held-out log-loss of each new model at the quality gate (event=gate, new.log_loss), by verdict."
  filter          = "${local.prepare_log_filter} AND jsonPayload.event=\"gate\""
  value_extractor = "EXTRACT(jsonPayload.new.log_loss)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "IRT gate log-loss (${var.environment})"
    labels {
      key         = "passed"
      value_type  = "STRING"
      description = "true when the gate passed"
    }
  }
  label_extractors = {
    passed = "EXTRACT(jsonPayload.passed)"
  }
  bucket_options {
    linear_buckets {
      num_finite_buckets = 40
      width              = 0.025
      offset             = 0
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "model_loaded" {
  project     = var.project_id
  name        = "${local.prefix}-model-loaded"
  description = "Model versions loaded by predict instances (message \"model loaded\"), by version."
  filter      = "${local.predict_filter} AND jsonPayload.message=\"model loaded\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "IRT model loaded by predict (${var.environment})"
    labels {
      key         = "model_version"
      value_type  = "STRING"
      description = "the version predict loaded"
    }
  }
  label_extractors = {
    model_version = "EXTRACT(jsonPayload.model_version)"
  }

  depends_on = [google_project_service.enabled]
}
