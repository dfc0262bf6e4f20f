# Monitoring (ML Test Score, "monitoring" tests): a refresh that fails, a model that is not
# renewed, a predict API that answers 5xx. prepare logs one JSON line per run outcome on stdout:
# {"severity": "ERROR", "event": "refresh_failed", ...} or
# {"event": "model_published", "model_version": ..., "created_at": ...}; gen2 functions log
# under the monitored resource cloud_run_revision with service_name = the function name.

locals {
  # The function's name, not google_cloudfunctions2_function.prepare.name: the metrics then
  # do not wait for the builds, and their propagation wait (below) runs beside them.
  prepare_log_filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${local.function_names.prepare}\"",
  ])

  # Every alert names the environment's channels: the given ids and one email channel per
  # address in notification_emails (validation: at least one in prod).
  notification_channels = concat(
    var.notification_channels,
    [for channel in google_monitoring_notification_channel.email : channel.id],
  )

  # An alert policy aligns over at most 25 hours: a longer staleness threshold is the 25-hour
  # window plus a condition duration for the rest.
  stale_window_hours   = min(var.model_max_age_hours, 25)
  stale_duration_hours = var.model_max_age_hours - local.stale_window_hours

  alert_docs = "Runbook: README.md, section Operations (logs, manual refresh, model rollback)."
}

# A policy on a log-based metric created moments before fails with 404 "Cannot find metric(s)
# that match type ... If a metric was created recently, it could take up to 10 minutes to
# become available" (hashicorp/terraform-provider-google#11102, open: the provider does not
# retry). The policies therefore wait those 10 minutes after the metrics are created, with
# time_sleep (hashicorp/time) as the provider documents for eventual consistency; the wait runs
# beside the function builds (the metrics do not depend on the functions) and again only when
# a metric is added or replaced (triggers).
resource "time_sleep" "log_metrics" {
  create_duration = "600s"

  triggers = {
    refresh_failed   = google_logging_metric.refresh_failed.id
    model_published  = google_logging_metric.model_published.id
    monitoring_alert = google_logging_metric.monitoring_alert.id
    refresh_seconds  = google_logging_metric.refresh_seconds.id
    gate_auc         = google_logging_metric.gate_auc.id
    gate_log_loss    = google_logging_metric.gate_log_loss.id
    model_loaded     = google_logging_metric.model_loaded.id
    model_rejected   = google_logging_metric.model_rejected.id
    model_behind     = google_logging_metric.model_behind.id
    attempt_failed   = google_logging_metric.refresh_attempt_failed.id
  }
}

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.notification_emails)

  project      = var.project_id
  display_name = "IRT ${var.environment} on call: ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }
  user_labels = local.labels
}

resource "google_logging_metric" "refresh_failed" {
  project     = var.project_id
  name        = "${local.prefix}-refresh-failed"
  description = "prepare runs that failed (event=refresh_failed)."
  filter      = "${local.prepare_log_filter} AND severity>=ERROR AND jsonPayload.event=\"refresh_failed\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "IRT refresh failures (${var.environment})"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "model_published" {
  project     = var.project_id
  name        = "${local.prefix}-model-published"
  description = "New model versions published by prepare (event=model_published)."
  filter      = "${local.prepare_log_filter} AND jsonPayload.event=\"model_published\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "IRT models published (${var.environment})"
  }

  depends_on = [google_project_service.enabled]
}

# --------------------------------------------------------------------------- ML monitoring
# prepare's monitoring checks (shared/irt/refresh/monitoring.py, docs/ml-test-score.md) log one WARNING
# line per finding: {"event": "monitoring_alert", "check": "data_drift" | "served_quality" |
# "served_quality_trend" | "numerical" | "simpler_model", "detail": ...}. Findings that must block a model (training/serving skew, a
# simpler baseline winning, a slice below the floor, a failed canary) reject the run instead
# and reach the refresh_failed alert. The monitoring_alert alert fires on any finding.
resource "google_logging_metric" "monitoring_alert" {
  project     = var.project_id
  name        = "${local.prefix}-monitoring-alert"
  description = "prepare monitoring findings (event=monitoring_alert), labelled by check."
  filter      = "${local.prepare_log_filter} AND jsonPayload.event=\"monitoring_alert\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "IRT monitoring findings (${var.environment})"
    labels {
      key         = "check"
      value_type  = "STRING"
      description = "data_drift, served_quality, served_quality_trend, numerical or simpler_model"
    }
  }

  label_extractors = {
    check = "EXTRACT(jsonPayload.check)"
  }

  depends_on = [google_project_service.enabled]
}

# Training speed: the wall time of every refresh (prepare's refresh_finished line carries
# "seconds"); the refresh_slow alert fires when a run takes more than half of its timeout,
# before it starts to fail on it.
resource "google_logging_metric" "refresh_seconds" {
  project         = var.project_id
  name            = "${local.prefix}-refresh-seconds"
  description     = "Wall time of each finished refresh (event=refresh_finished, seconds)."
  filter          = "${local.prepare_log_filter} AND jsonPayload.event=\"refresh_finished\""
  value_extractor = "EXTRACT(jsonPayload.seconds)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "s"
    display_name = "IRT refresh duration (${var.environment})"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 32
      growth_factor      = 1.5
      scale              = 1
    }
  }

  depends_on = [google_project_service.enabled]
}

# --------------------------------------------------------------------------- predict's model
# predict's loader (shared/irt/serving/loader.py) logs at ERROR, one JSON line each:
# {"event": "model_rejected", "model_version", "reason", ...} when a new version fails
# validation or the canary answers prepare's canary asks (irt.serving.probe) and the old model
# keeps serving; {"event": "model_fetch_failed", ...} when the pointer or the model cannot be
# read after the storage client's retries; {"event": "model_behind", "seconds_behind",
# "serving_version", "latest_version"} when the version serving has not been the one LATEST
# names for at least MODEL_REFRESH_SECONDS.
resource "google_logging_metric" "model_rejected" {
  project     = var.project_id
  name        = "${local.prefix}-model-rejected"
  description = "New models predict refused or could not read (event=model_rejected or model_fetch_failed), labelled by event."
  filter      = "${local.predict_filter} AND severity>=ERROR AND jsonPayload.event=(\"model_rejected\" OR \"model_fetch_failed\")"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "IRT models predict rejected or could not fetch (${var.environment})"
    labels {
      key         = "event"
      value_type  = "STRING"
      description = "model_rejected or model_fetch_failed"
    }
  }

  label_extractors = {
    event = "EXTRACT(jsonPayload.event)"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "model_behind" {
  project     = var.project_id
  name        = "${local.prefix}-model-behind"
  description = "predict instances serving another version than LATEST for longer than MODEL_REFRESH_SECONDS (event=model_behind)."
  filter      = "${local.predict_filter} AND severity>=ERROR AND jsonPayload.event=\"model_behind\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "IRT predict behind LATEST (${var.environment})"
  }

  depends_on = [google_project_service.enabled]
}

# --------------------------------------------------------------------------- scheduler
# A refresh that dies before it logs - a timeout, an instance killed for memory, an import
# error, Cloud Run's 403 or 429 - leaves no refresh_failed line; only the model_stale alert
# would notice, 30 to 48 hours later. Cloud Scheduler logs every attempt of the job
# (resource cloud_scheduler_job, log cloudscheduler.googleapis.com/executions): a failed one -
# a non-2xx answer, or no answer by the attempt deadline - at ERROR, with jsonPayload.status
# (e.g. DEADLINE_EXCEEDED, UNAVAILABLE, PERMISSION_DENIED). Each retry that fails logs again.
resource "google_logging_metric" "refresh_attempt_failed" {
  project     = var.project_id
  name        = "${local.prefix}-refresh-attempt-failed"
  description = "Failed attempts of the refresh job (Cloud Scheduler, severity ERROR), labelled by status."
  filter      = "resource.type=\"cloud_scheduler_job\" AND resource.labels.job_id=\"${local.scheduler_job_name}\" AND resource.labels.location=\"${var.region}\" AND severity>=ERROR"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "IRT refresh attempts failed (${var.environment})"
    labels {
      key         = "status"
      value_type  = "STRING"
      description = "The attempt's status (DEADLINE_EXCEEDED, UNAVAILABLE, PERMISSION_DENIED, ...)"
    }
  }

  label_extractors = {
    status = "EXTRACT(jsonPayload.status)"
  }

  depends_on = [google_project_service.enabled]
}

# --------------------------------------------------------------------------- alert policies
# Eleven policies, written as data where they share a shape (Fabric's style: a locals map and
# one resource with for_each over it): seven on a log-based metric above (log_metric), two on
# the share of predict's responses in a class (predict_ratio); the p99 latency and memory
# policies, on Cloud Run's own metrics, are one of a kind each. Every policy notifies
# local.notification_channels and carries the environment's labels. The for_each keys are the
# policies' former resource names: the moved blocks at the end move the alerts applied in
# staging and prod to their keys instead of replacing them (terraform/README.md).

locals {
  # A policy on a log-based metric: one threshold condition on the metric, summed over 5
  # minutes; these are the defaults, each alert below names what it changes.
  log_metric_alert_defaults = {
    resource_type = "cloud_run_revision" # the functions' log lines
    comparison    = "COMPARISON_GT"
    threshold     = 0
    duration      = "0s"
    alignment     = "300s"
    aligner       = "ALIGN_SUM"
    reducer       = "REDUCE_SUM"
    group_by      = null
    missing_data  = "EVALUATION_MISSING_DATA_INACTIVE"
    auto_close    = "86400s"
  }

  log_metric_alerts = {
    refresh_failed = {
      metric        = google_logging_metric.refresh_failed.name
      display_name  = "model refresh failed"
      condition     = "prepare logged refresh_failed"
      documentation = "A scheduled model refresh failed; predict keeps serving the previous model. Read prepare's ERROR log line (jsonPayload.event=\"refresh_failed\") for the reason."
    }
    # No publish in the window leaves no data point at all: that is the alert (missing data
    # active); a threshold beyond the 25-hour alignment limit continues as a duration.
    model_stale = {
      metric        = google_logging_metric.model_published.name
      display_name  = "no new model for ${var.model_max_age_hours} h"
      condition     = "no model_published in ${var.model_max_age_hours} h"
      comparison    = "COMPARISON_LT"
      threshold     = 1
      duration      = "${local.stale_duration_hours * 3600}s"
      alignment     = "${local.stale_window_hours * 3600}s"
      missing_data  = "EVALUATION_MISSING_DATA_ACTIVE"
      auto_close    = "604800s"
      documentation = "No model has been published for ${var.model_max_age_hours} hours: refreshes fail, are rejected by the quality gate, or do not run (scheduler paused?). predict serves an ageing model."
    }
    monitoring_alert = {
      metric        = google_logging_metric.monitoring_alert.name
      display_name  = "model monitoring finding (drift, served quality, numerical)"
      condition     = "prepare logged monitoring_alert"
      group_by      = ["metric.label.check"]
      documentation = "A refresh's monitoring check fired (label check): data_drift - this window's answers are distributed unlike the serving model's (a broken export, a new population, a changed item bank); served_quality - the serving model predicts the answers given since its window worse than it did at publication; served_quality_trend - its served AUC is below the median of the last published versions' by more than MONITOR_SERVED_TREND_MARGIN (a slow leak across versions); numerical - EM did not converge or its objective fell; simpler_model - the next simpler IRT model predicts the held-out answers better (consider MODEL_TYPE). The model may still have been published (the quality gate decides). Read prepare's WARNING line (jsonPayload.event=\"monitoring_alert\") and the version's metrics.json (monitoring)."
    }
    refresh_slow = {
      metric        = google_logging_metric.refresh_seconds.name
      display_name  = "a refresh took over half its timeout"
      condition     = "refresh duration above ${var.prepare_timeout_seconds / 2} s"
      threshold     = var.prepare_timeout_seconds / 2
      alignment     = "3600s"
      aligner       = "ALIGN_PERCENTILE_99"
      reducer       = "REDUCE_MAX"
      documentation = "A refresh ran for more than half of prepare_timeout_seconds: the log grew (the per-item cap bounds it), BigQuery was slow, or calibration regressed (benchmarks/README.md has the expected times). The step times are in prepare's log lines (jsonPayload.seconds per event)."
    }
    model_rejected = {
      metric        = google_logging_metric.model_rejected.name
      display_name  = "predict rejected or could not fetch a model"
      condition     = "predict logged model_rejected or model_fetch_failed"
      group_by      = ["metric.label.event"]
      documentation = "A predict instance refused a new model (model_rejected: it failed validation or the canary answers, reason and error in the line) or could not read it (model_fetch_failed: storage unreachable, LATEST naming a missing version). The previous model keeps serving. Read predict's ERROR line (jsonPayload.event) and the version's report; roll back LATEST if the version is bad (python -m irt.ops rollback)."
    }
    model_behind = {
      metric        = google_logging_metric.model_behind.name
      display_name  = "predict serves another version than LATEST"
      condition     = "predict logged model_behind"
      documentation = "A predict instance has served another version than the one LATEST names for longer than MODEL_REFRESH_SECONDS (seconds_behind, serving_version, latest_version in the line): the new version is rejected or cannot be read (see the model_rejected alert), or storage is unreachable. The LMS gets answers from the older model."
    }
    refresh_attempt_failed = {
      metric        = google_logging_metric.refresh_attempt_failed.name
      resource_type = "cloud_scheduler_job"
      display_name  = "a scheduled refresh attempt failed"
      condition     = "the refresh job logged a failed attempt"
      documentation = "Cloud Scheduler's call to prepare failed (jsonPayload.status, httpRequest.status in the job's ERROR line: gcloud logging read 'resource.type=\"cloud_scheduler_job\" AND severity>=ERROR'). With a refresh_failed alert beside it, prepare logged why. Without one, prepare died before it could log: DEADLINE_EXCEEDED or 504 - it ran past prepare_timeout_seconds (see its last step line); 500/503 - a crash at start (import error) or killed for memory (the memory alert, prepare's stderr); 403 - the scheduler account lost run.invoker on prepare; 429 - another run still holds the single instance. The job retries per refresh_retry; predict keeps serving the previous model."
    }
  }
}

resource "google_monitoring_alert_policy" "log_metric" {
  for_each = { for key, alert in local.log_metric_alerts : key => merge(local.log_metric_alert_defaults, alert) }

  project               = var.project_id
  display_name          = "IRT ${var.environment}: ${each.value.display_name}"
  combiner              = "OR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = each.value.condition
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${each.value.metric}\" AND resource.type=\"${each.value.resource_type}\""
      comparison      = each.value.comparison
      threshold_value = each.value.threshold
      duration        = each.value.duration
      aggregations {
        alignment_period     = each.value.alignment
        per_series_aligner   = each.value.aligner
        cross_series_reducer = each.value.reducer
        group_by_fields      = each.value.group_by
      }
      trigger {
        count = 1
      }
      evaluation_missing_data = each.value.missing_data
    }
  }

  alert_strategy {
    auto_close = each.value.auto_close
  }

  documentation {
    mime_type = "text/markdown"
    content   = "${each.value.documentation} ${local.alert_docs}"
  }

  # The metrics' propagation wait (time_sleep.log_metrics, above).
  depends_on = [time_sleep.log_metrics]
}

locals {
  predict_requests = join(" AND ", [
    "metric.type=\"run.googleapis.com/request_count\"",
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${google_cloudfunctions2_function.predict.name}\"",
  ])

  # The share of predict's responses in one class, over all of its responses.
  predict_ratio_alerts = {
    predict_5xx = {
      code_class    = "5xx"
      display_name  = "predict 5xx ratio above ${var.predict_5xx_ratio_threshold}"
      condition     = "5xx / all predict responses over 5 min"
      threshold     = var.predict_5xx_ratio_threshold
      duration      = "60s"
      alignment     = "300s"
      auto_close    = "3600s"
      documentation = "predict answers 5xx: 503 while no model is loaded (model bucket unreadable or empty), 500 on a bug or crash, or Cloud Run could not start an instance."
    }
    # Serving inputs that break the contract (docs/predict-openapi.yaml): a rise in 4xx means
    # the LMS sends what predict refuses - an integration change or a data problem upstream.
    predict_4xx = {
      code_class    = "4xx"
      display_name  = "predict 4xx ratio above ${var.predict_4xx_ratio_threshold}"
      condition     = "4xx / all predict responses over 15 min"
      threshold     = var.predict_4xx_ratio_threshold
      duration      = "300s"
      alignment     = "900s"
      auto_close    = "86400s"
      documentation = "predict refuses an unusual share of requests: the serving inputs no longer match the contract (docs/predict-openapi.yaml). predict's WARNING request lines carry error_code and error_field (never the values): see which field."
    }
  }
}

resource "google_monitoring_alert_policy" "predict_ratio" {
  for_each = local.predict_ratio_alerts

  project               = var.project_id
  display_name          = "IRT ${var.environment}: ${each.value.display_name}"
  combiner              = "OR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = each.value.condition
    condition_threshold {
      filter             = "${local.predict_requests} AND metric.labels.response_code_class=\"${each.value.code_class}\""
      denominator_filter = local.predict_requests
      comparison         = "COMPARISON_GT"
      threshold_value    = each.value.threshold
      duration           = each.value.duration
      aggregations {
        alignment_period     = each.value.alignment
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = each.value.alignment
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
    }
  }

  alert_strategy {
    auto_close = each.value.auto_close
  }

  documentation {
    mime_type = "text/markdown"
    content   = "${each.value.documentation} ${local.alert_docs}"
  }
}

# Serving latency and memory: a regression shows here before the LMS notices
# (benchmarks/README.md and `make drills` give the figures measured before release).
resource "google_monitoring_alert_policy" "predict_latency" {
  project               = var.project_id
  display_name          = "IRT ${var.environment}: predict p99 latency above ${var.predict_latency_p99_ms} ms"
  combiner              = "OR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "p99 request latency over 5 min"
    condition_threshold {
      filter          = "metric.type=\"run.googleapis.com/request_latencies\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${google_cloudfunctions2_function.predict.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.predict_latency_p99_ms
      duration        = "600s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
      }
      trigger {
        count = 1
      }
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "predict's p99 latency is above the threshold for 10 minutes: a slower release, a larger model (n_items in GET /model), requests with more answers, or too few instances (predict_max_instances). Compare with benchmarks/README.md. ${local.alert_docs}"
  }
}

resource "google_monitoring_alert_policy" "memory" {
  project               = var.project_id
  display_name          = "IRT ${var.environment}: function memory above 90%"
  combiner              = "OR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  dynamic "conditions" {
    for_each = {
      predict = google_cloudfunctions2_function.predict.name
      prepare = google_cloudfunctions2_function.prepare.name
    }
    content {
      display_name = "${conditions.key}: p99 memory utilisation over 5 min"
      condition_threshold {
        filter          = "metric.type=\"run.googleapis.com/container/memory/utilizations\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${conditions.value}\""
        comparison      = "COMPARISON_GT"
        threshold_value = 0.9
        duration        = "300s"
        aggregations {
          alignment_period     = "300s"
          per_series_aligner   = "ALIGN_PERCENTILE_99"
          cross_series_reducer = "REDUCE_MAX"
        }
        trigger {
          count = 1
        }
        evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A function uses more than 90% of its memory: prepare on a larger log (raise prepare_memory or lower the cap MAX_ANSWERS_PER_ITEM), predict with a larger model or a leak (make drills measures RSS over time before release). ${local.alert_docs}"
  }
}

# Each policy was once a resource of its own: these move the alerts applied in staging and prod
# to their keys (terraform plan: "has moved to", nothing destroyed or created).
moved {
  from = google_monitoring_alert_policy.refresh_failed
  to   = google_monitoring_alert_policy.log_metric["refresh_failed"]
}

moved {
  from = google_monitoring_alert_policy.model_stale
  to   = google_monitoring_alert_policy.log_metric["model_stale"]
}

moved {
  from = google_monitoring_alert_policy.monitoring_alert
  to   = google_monitoring_alert_policy.log_metric["monitoring_alert"]
}

moved {
  from = google_monitoring_alert_policy.refresh_slow
  to   = google_monitoring_alert_policy.log_metric["refresh_slow"]
}

moved {
  from = google_monitoring_alert_policy.model_rejected
  to   = google_monitoring_alert_policy.log_metric["model_rejected"]
}

moved {
  from = google_monitoring_alert_policy.model_behind
  to   = google_monitoring_alert_policy.log_metric["model_behind"]
}

moved {
  from = google_monitoring_alert_policy.refresh_attempt_failed
  to   = google_monitoring_alert_policy.log_metric["refresh_attempt_failed"]
}

moved {
  from = google_monitoring_alert_policy.predict_5xx
  to   = google_monitoring_alert_policy.predict_ratio["predict_5xx"]
}

moved {
  from = google_monitoring_alert_policy.predict_4xx
  to   = google_monitoring_alert_policy.predict_ratio["predict_4xx"]
}
