# Prod. Project ids, the BigQuery source, the invoker accounts and the notification channels are
# this deployment's own: replace them (README, Operations: bootstrap).

project_id  = "irt-prod"
environment = "prod"
region      = "europe-west1"
name_prefix = "irt"
labels = {
  team       = "learning-analytics"
  managed_by = "terraform"
}

# Model bucket
bucket_location                   = "europe-west1"
training_snapshot_retention_days  = 90
noncurrent_version_retention_days = 30

# Source data: the LMS answer log
bq_project  = "irt-prod"
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
prepare_window_days          = 365
prepare_max_answers_per_item = 5000
prepare_gate = {
  max_auc_drop     = 0.01
  max_logloss_rise = 0.01
}
prepare_env_overrides   = {}
prepare_memory          = "8Gi"
prepare_cpu             = "4"
prepare_timeout_seconds = 1770

# predict: always one warm instance (no cold start on the LMS path); 2 vCPUs = 2 gunicorn
# workers x 4 threads (benchmarks/README.md: best p99 at this concurrency).
predict_min_instances = 1
predict_max_instances = 50
predict_concurrency   = 8
predict_cpu           = 2
predict_memory        = "1Gi"
predict_invokers = [
  "serviceAccount:lms-backend@irt-prod.iam.gserviceaccount.com",
  # the Cloud Build deploy account: the pipeline's smoke test calls predict
  "serviceAccount:irt-deployer@irt-prod.iam.gserviceaccount.com",
]
predict_ingress       = "ALLOW_ALL"
model_refresh_seconds = 60
predict_env_overrides = {}

# No test build in prod (it applies release bundles tested in staging): no irt-tester account
test_build_account = false

# Refresh schedule
refresh_schedule  = "0 3 * * *"
refresh_time_zone = "Etc/UTC"
refresh_retry = {
  retry_count          = 2
  min_backoff_seconds  = 600
  max_backoff_seconds  = 3600
  max_doublings        = 2
  max_duration_seconds = 14400
}

# Monitoring: alerts must notify someone (validated): the placeholder on-call address below gets
# an email channel - replace it before the first apply; add existing channel ids
# (gcloud beta monitoring channels list).
notification_emails         = ["irt-oncall@example.com"]
notification_channels       = []
model_max_age_hours         = 30
predict_5xx_ratio_threshold = 0.01
predict_4xx_ratio_threshold = 0.05
predict_latency_p99_ms      = 250
