# The IRT service in one project: `prepare` (scheduled calibration, BigQuery -> model bucket)
# and `predict` (the API the LMS calls, reads the model bucket), each a private gen2 function
# with its own service account; Cloud Scheduler calls prepare with an OIDC token; log-based
# metrics and alerts watch refreshes, model age and predict's 5xx rate.

locals {
  prefix = var.name_prefix

  # `make build` writes the vendored function folders here (run it before plan).
  source_root = "${path.root}/../../build/functions"

  labels = merge(var.labels, {
    app         = "irt"
    environment = var.environment
  })

  # One entry per function: the folder under local.source_root (= functions/<name>), the entry point
  # (the function of that name in main.py), and the Cloud Run shape.
  functions = {
    prepare = {
      entry_point = "prepare"
      description = "IRT model refresh: BigQuery answer log -> calibration -> quality gate -> model bucket."
    }
    predict = {
      entry_point = "predict"
      description = "IRT scoring API: a student's answers -> ability and P(correct) per item."
    }
  }

  # Function names, known before the functions exist: the log-based metrics filter on them
  # and so are created at the start of an apply, not after the builds (monitoring.tf).
  function_names = { for name in keys(local.functions) : name => "${local.prefix}-${name}" }

  # The refresh job's name, for the same reason: the metric of its failed attempts
  # (monitoring.tf) does not wait for prepare, whose URI the job needs (scheduler.tf).
  scheduler_job_name = "${local.prefix}-refresh"

  # Cloud Scheduler waits this much longer than prepare may run (scheduler.tf): prepare times
  # out first and answers 504, so the attempt fails with prepare's status, and the scheduler
  # never gives up on (and retries beside) a run that is still going.
  scheduler_deadline_margin_seconds = 30

  model_prefix = "models"

  # What predict may read of the model bucket (iam.tf): the pointer and the model files.
  model_objects = "projects/_/buckets/${google_storage_bucket.models.name}/objects/${local.model_prefix}"
  predict_objects_condition = join(" || ", [
    "resource.name == \"${local.model_objects}/LATEST\"",
    "(resource.name.startsWith(\"${local.model_objects}/\") && resource.name.endsWith(\"/model.json\"))",
  ])

  # Cloud Functions' own copy of the source zips, which the builds read (iam.tf).
  gcf_sources_bucket = "gcf-v2-sources-${data.google_project.this.number}-${var.region}"

  bq_table_id = "${var.bq_project}.${var.bq_dataset}.${var.bq_table}"

  prepare_env = merge(
    {
      BQ_TABLE              = local.bq_table_id
      BQ_LOCATION           = var.bq_location
      MODEL_BUCKET          = google_storage_bucket.models.name
      MODEL_PREFIX          = local.model_prefix
      WINDOW_DAYS           = tostring(var.prepare_window_days)
      MAX_ANSWERS_PER_ITEM  = tostring(var.prepare_max_answers_per_item)
      COLUMN_STUDENT        = var.bq_columns.student
      COLUMN_ITEM           = var.bq_columns.item
      COLUMN_CORRECT        = var.bq_columns.correct
      COLUMN_ANSWERED_AT    = var.bq_columns.answered_at
      GATE_MAX_AUC_DROP     = tostring(var.prepare_gate.max_auc_drop)
      GATE_MAX_LOGLOSS_RISE = tostring(var.prepare_gate.max_logloss_rise)
    },
    # Calibration settings left null are not set: prepare then uses the project's one default
    # configuration (irt.engine.defaults.DEFAULTS), the one `python -m irt fit` uses.
    { for name, value in {
      MODEL_TYPE              = var.prepare_model_type
      MIN_ANSWERS_PER_ITEM    = var.prepare_min_answers_per_item == null ? null : tostring(var.prepare_min_answers_per_item)
      MIN_ANSWERS_PER_STUDENT = var.prepare_min_answers_per_student == null ? null : tostring(var.prepare_min_answers_per_student)
      LEARNING_MAX_ANSWERS    = var.prepare_learning_max_answers == null ? null : tostring(var.prepare_learning_max_answers)
    } : name => value if value != null },
    var.bq_columns.skill == null ? {} : { COLUMN_SKILL = var.bq_columns.skill },
    var.prepare_env_overrides,
  )

  predict_env = merge(
    {
      MODEL_BUCKET          = google_storage_bucket.models.name
      MODEL_PREFIX          = local.model_prefix
      MODEL_REFRESH_SECONDS = tostring(var.model_refresh_seconds)
      PROJECT_ID            = var.project_id # the log line's trace: projects/<id>/traces/<trace>
      # predict's gunicorn (functions/predict/gunicorn.conf.py, GOOGLE_ENTRYPOINT in
      # functions.tf): one worker per vCPU (CPU-bound work under the GIL), threads so that
      # workers x threads covers the instance's request concurrency; each worker listens on its
      # own SO_REUSEPORT socket, so connections spread over the workers (issue 17, item 11).
      WORKERS = tostring(var.predict_cpu)
      THREADS = tostring(max(1, ceil(var.predict_concurrency / var.predict_cpu)))
    },
    var.predict_env_overrides,
  )

  services = [
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "bigquerystorage.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
  ]
}

data "google_project" "this" {
  project_id = var.project_id
}

resource "google_project_service" "enabled" {
  for_each = toset(local.services)

  project = var.project_id
  service = each.value
  # Other workloads in the project may use the same APIs: never switch them off on destroy.
  disable_on_destroy         = false
  disable_dependent_services = false
}
