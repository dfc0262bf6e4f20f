# The model refresh: Cloud Scheduler POSTs to prepare with an OIDC token minted for the
# scheduler account, audience = prepare's URI (what Cloud Run checks).

resource "google_cloud_scheduler_job" "refresh" {
  project     = var.project_id
  region      = var.region
  name        = local.scheduler_job_name
  description = "Refresh the IRT model (${var.environment}): calls prepare."
  schedule    = var.refresh_schedule
  time_zone   = var.refresh_time_zone
  # The call stays open while prepare runs; Cloud Scheduler allows at most 30 minutes. A little
  # longer than prepare's own timeout (main.tf, scheduler_deadline_margin_seconds): a run that
  # hits it ends with prepare's 504, not with the scheduler abandoning a live run.
  attempt_deadline = "${var.prepare_timeout_seconds + local.scheduler_deadline_margin_seconds}s"

  retry_config {
    retry_count          = var.refresh_retry.retry_count
    min_backoff_duration = "${var.refresh_retry.min_backoff_seconds}s"
    max_backoff_duration = "${var.refresh_retry.max_backoff_seconds}s"
    max_doublings        = var.refresh_retry.max_doublings
    max_retry_duration   = "${var.refresh_retry.max_duration_seconds}s"
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.prepare.service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.prepare.service_config[0].uri
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_cloud_run_v2_service_iam_member.prepare_invoker,
  ]
}
