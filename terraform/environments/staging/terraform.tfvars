# Staging. Project ids, the BigQuery source and the invoker accounts are this deployment's own:
# replace them (README, Operations: bootstrap). Differences to prod are deliberate: scale to
# zero, smaller caps, shorter retention, looser alert thresholds.

project_id  = "irt-staging"
environment = "staging"
region      = "europe-west1"
name_prefix = "irt"
labels = {
  team       = "learning-analytics"
  managed_by = "terraform"
}

# Model bucket
bucket_location                   = "europe-west1"
training_snapshot_retention_days  = 30
noncurrent_version_retention_days = 14

# Source data: a staging copy of the LMS answer log
bq_project  = "irt-staging"
bq_dataset  = "lms_logs"
bq_table    = "answers"
bq_location = "EU"
bq_columns = {
  student     = "student_id"
  item        = "item_id"
  correct     = "correct"
  answered_at = "answered_at"
  skill       = null
}

# prepare (model type, minimum answers and priors: the project defaults,
# irt.engine.defaults.DEFAULTS, unless set here - see variables.tf)
prepare_window_days          = 180
prepare_max_answers_per_item = 2000
prepare_gate = {
  max_auc_drop     = 0.02
  max_logloss_rise = 0.02
}
prepare_env_overrides   = {}
prepare_memory          = "4Gi"
prepare_cpu             = "2"
prepare_timeout_seconds = 1770

# predict
predict_min_instances = 0
predict_max_instances = 5
predict_concurrency   = 8
predict_cpu           = 1
predict_memory        = "1Gi"
predict_invokers = [
  "serviceAccount:lms-backend@irt-staging.iam.gserviceaccount.com",
  # the Cloud Build deploy account: the pipeline's smoke test calls predict
  "serviceAccount:irt-deployer@irt-staging.iam.gserviceaccount.com",
]
predict_ingress       = "ALLOW_ALL"
model_refresh_seconds = 60
predict_env_overrides = {}

# The test build's identity (irt-tester): staging's trigger runs the suite of every push as it
test_build_account = true

# Refresh schedule
refresh_schedule  = "0 3 * * *"
refresh_time_zone = "Etc/UTC"
refresh_retry = {
  retry_count          = 1
  min_backoff_seconds  = 300
  max_backoff_seconds  = 1800
  max_doublings        = 2
  max_duration_seconds = 7200
}

# Monitoring: alerts must notify someone, in staging too (validated): the placeholder address
# below gets an email channel - replace it with the team's address before the first apply, or
# add existing channel ids (gcloud beta monitoring channels list).
notification_emails         = ["irt-staging-oncall@example.com"]
notification_channels       = []
model_max_age_hours         = 48
predict_5xx_ratio_threshold = 0.05
predict_4xx_ratio_threshold = 0.2
predict_latency_p99_ms      = 500
