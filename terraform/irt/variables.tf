# Inputs of the IRT service, declared once. Each environment (terraform/environments/<env>/
# terraform.tfvars) sets every one without a default explicitly (tests/deploy/test_terraform.py
# checks that), so nothing differs between staging and prod by accident of a default.

# --------------------------------------------------------------------------- project
variable "project_id" {
  description = "Project that holds the whole environment (functions, bucket, scheduler, alerts)."
  type        = string
}

variable "environment" {
  description = "Environment name, used in labels and alert names."
  type        = string
  validation {
    condition     = contains(["staging", "prod"], var.environment)
    error_message = "environment must be \"staging\" or \"prod\"."
  }
}

variable "region" {
  description = "Region of the functions, the scheduler job and the image repository."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, service accounts, buckets, metrics)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.name_prefix))
    error_message = "name_prefix: 2-15 characters, lowercase letters, digits and dashes."
  }
}

variable "labels" {
  description = "Labels added to every labelled resource."
  type        = map(string)
}

# --------------------------------------------------------------------------- model bucket
variable "bucket_location" {
  description = "Location of the model and source buckets (a region keeps data next to the functions)."
  type        = string
}

variable "training_snapshot_retention_days" {
  description = "Days after which a run's prepared.csv.gz (student answers) is deleted. model.json, metrics.json and report.json are kept for rollback and audit."
  type        = number
  validation {
    condition     = var.training_snapshot_retention_days >= 1
    error_message = "training_snapshot_retention_days must be at least 1."
  }
}

variable "noncurrent_version_retention_days" {
  description = "Days an overwritten or deleted object version (e.g. an older models/LATEST) stays restorable."
  type        = number
  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "noncurrent_version_retention_days must be at least 1."
  }
}

# --------------------------------------------------------------------------- source data
variable "bq_project" {
  description = "Project of the BigQuery answer-log table (may differ from project_id)."
  type        = string
}

variable "bq_dataset" {
  description = "Dataset of the answer-log table (prepare gets read access to that table only, not to the rest of the dataset: iam.tf)."
  type        = string
}

variable "bq_table" {
  description = "Answer-log table name."
  type        = string
}

variable "bq_location" {
  description = "BigQuery location of the dataset (e.g. EU, US, europe-west1)."
  type        = string
}

variable "bq_columns" {
  description = "Column names of the answer log; skill is optional (null: not used)."
  type = object({
    student     = string
    item        = string
    correct     = string
    answered_at = string
    skill       = optional(string)
  })
}

# --------------------------------------------------------------------------- prepare
variable "prepare_model_type" {
  description = "IRT model calibrated by prepare (MODEL_TYPE); null: the project's default, 2PL (irt.engine.defaults.DEFAULTS, shared with `python -m irt fit`)."
  type        = string
  default     = null
  validation {
    condition     = var.prepare_model_type == null ? true : contains(["RASCH", "1PL", "2PL", "3PL"], upper(var.prepare_model_type))
    error_message = "prepare_model_type must be one of Rasch, 1PL, 2PL, 3PL."
  }
}

# The limits below are the ones prepare and predict apply to their environment when they start
# (irt.refresh.config.RefreshConfig.from_env, irt.serving.config): out of them a function
# refuses to run, so a plan refuses them first.
variable "prepare_window_days" {
  description = "Days of answers read per refresh (WINDOW_DAYS: a whole number, 1 to 36500)."
  type        = number
  validation {
    condition     = floor(var.prepare_window_days) == var.prepare_window_days && var.prepare_window_days >= 1 && var.prepare_window_days <= 36500
    error_message = "prepare_window_days must be a whole number within [1, 36500]."
  }
}

variable "prepare_max_answers_per_item" {
  description = "Cap on answers per item read from BigQuery (bounds the fit input and memory; MAX_ANSWERS_PER_ITEM: a whole number, 1 to 1e9)."
  type        = number
  validation {
    condition     = floor(var.prepare_max_answers_per_item) == var.prepare_max_answers_per_item && var.prepare_max_answers_per_item >= 1 && var.prepare_max_answers_per_item <= 1000000000
    error_message = "prepare_max_answers_per_item must be a whole number within [1, 1000000000]."
  }
}

variable "prepare_min_answers_per_item" {
  description = "Items with fewer answers are excluded from calibration (MIN_ANSWERS_PER_ITEM: a whole number, 1 to 1e9); null: the project's default, 1 (every answered item; the priors shrink rare ones)."
  type        = number
  default     = null
  validation {
    condition     = var.prepare_min_answers_per_item == null ? true : floor(var.prepare_min_answers_per_item) == var.prepare_min_answers_per_item && var.prepare_min_answers_per_item >= 1 && var.prepare_min_answers_per_item <= 1000000000
    error_message = "prepare_min_answers_per_item must be a whole number within [1, 1000000000] (or null)."
  }
}

variable "prepare_min_answers_per_student" {
  description = "Students with fewer answers are dropped before calibration (MIN_ANSWERS_PER_STUDENT: a whole number, 1 to 1e9); null: the project's default, 2."
  type        = number
  default     = null
  validation {
    condition     = var.prepare_min_answers_per_student == null ? true : floor(var.prepare_min_answers_per_student) == var.prepare_min_answers_per_student && var.prepare_min_answers_per_student >= 1 && var.prepare_min_answers_per_student <= 1000000000
    error_message = "prepare_min_answers_per_student must be a whole number within [1, 1000000000] (or null)."
  }
}

variable "prepare_learning_max_answers" {
  description = "Cap on the training answers the learning-aware options (MODEL_OPTIONS) are calibrated on: a deterministic sample of whole students, items outside it keep the plain fit (LEARNING_MAX_ANSWERS); null: the project's default, 500,000 (README, Performance)."
  type        = number
  default     = null
  validation {
    condition     = var.prepare_learning_max_answers == null ? true : var.prepare_learning_max_answers >= 1000
    error_message = "prepare_learning_max_answers must be at least 1000 (or null)."
  }
}

variable "prepare_gate" {
  description = "Quality gate of prepare (GATE_MAX_AUC_DROP, GATE_MAX_LOGLOSS_RISE): how much worse than the serving model a new one may score before it is rejected (functions/prepare/README.md)."
  type = object({
    max_auc_drop     = number
    max_logloss_rise = number
  })
}

variable "prepare_env_overrides" {
  description = "Extra prepare environment (MODEL_OPTIONS e.g. auto, COLUMN_SKILL, DATA_* thresholds, GATE_MIN_AUC, GATE_HOLDOUT_*, GATE_MAX_ECE_OVER_PLAIN; see irt.refresh.RefreshConfig). Applied last."
  type        = map(string)
}

variable "prepare_memory" {
  description = "Memory of the prepare instance (Cloud Run units, e.g. 4Gi; above 4Gi needs at least 2 CPUs)."
  type        = string
}

variable "prepare_cpu" {
  description = "vCPUs of the prepare instance."
  type        = string
}

variable "prepare_timeout_seconds" {
  description = "Run time limit of one refresh (prepare's timeout). The scheduler's attempt deadline is 30 s longer (main.tf, scheduler_deadline_margin_seconds) and at most 1800 (Cloud Scheduler's HTTP limit), so at most 1770."
  type        = number
  validation {
    condition     = var.prepare_timeout_seconds >= 60 && var.prepare_timeout_seconds <= 1770
    error_message = "prepare_timeout_seconds must be within [60, 1770]: the scheduler's attempt deadline, 30 s longer, may not exceed 1800."
  }
}

# --------------------------------------------------------------------------- predict
variable "predict_min_instances" {
  description = "Warm instances kept for predict (at least 1 in prod: no cold start on the LMS path)."
  type        = number
}

variable "predict_max_instances" {
  description = "Upper bound on predict instances (cost and blast-radius cap); at least predict_min_instances."
  type        = number
  validation {
    condition     = var.predict_max_instances >= var.predict_min_instances
    error_message = "predict_max_instances must be at least predict_min_instances."
  }
}

variable "predict_concurrency" {
  description = "Requests one predict instance serves at once (Cloud Run concurrency)."
  type        = number
  validation {
    condition     = var.predict_concurrency >= 1 && var.predict_concurrency <= 1000
    error_message = "predict_concurrency must be within [1, 1000]."
  }
}

variable "predict_cpu" {
  description = "vCPUs per predict instance; also the number of gunicorn workers (WORKERS, read by functions/predict/gunicorn.conf.py), as the work is CPU-bound under the GIL; each worker listens on its own SO_REUSEPORT socket, so connections spread over them."
  type        = number
  validation {
    condition     = contains([1, 2, 4, 6, 8], var.predict_cpu)
    error_message = "predict_cpu must be 1, 2, 4, 6 or 8."
  }
}

variable "predict_memory" {
  description = "Memory per predict instance (Cloud Run units, e.g. 1Gi)."
  type        = string
}

variable "predict_invokers" {
  description = "Principals allowed to call predict (the LMS service accounts, and the deploy pipeline's account for the smoke test), e.g. serviceAccount:lms@project.iam.gserviceaccount.com."
  type        = list(string)
  validation {
    condition = alltrue([
      for m in var.predict_invokers : can(regex("^(serviceAccount|group|user):[^@]+@[^@]+$", m))
    ])
    error_message = "predict_invokers: serviceAccount:, group: or user: members only (never allUsers or allAuthenticatedUsers)."
  }
}

variable "predict_ingress" {
  description = "Ingress of predict: ALLOW_ALL (callers outside Google Cloud, still IAM-authenticated), ALLOW_INTERNAL_AND_GCLB or ALLOW_INTERNAL_ONLY (LMS in the same VPC / project, smoke test from a private pool)."
  type        = string
  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.predict_ingress)
    error_message = "predict_ingress must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "model_refresh_seconds" {
  description = "predict re-reads models/LATEST at most this often (MODEL_REFRESH_SECONDS: 0 to 86400)."
  type        = number
  validation {
    condition     = var.model_refresh_seconds >= 0 && var.model_refresh_seconds <= 86400
    error_message = "model_refresh_seconds must be within [0, 86400]."
  }
}

variable "predict_env_overrides" {
  description = "Extra predict environment (size caps such as MAX_BODY_BYTES, MAX_STUDENTS, see functions/predict/main.py; the server's read deadlines READ_HEADER_TIMEOUT_SECONDS (5) and READ_BODY_TIMEOUT_SECONDS (10), see functions/predict/server.py). Applied last."
  type        = map(string)
}

# --------------------------------------------------------------------------- scheduler
variable "refresh_schedule" {
  description = "Cron schedule of the model refresh (Cloud Scheduler syntax)."
  type        = string
}

variable "refresh_time_zone" {
  description = "Time zone of refresh_schedule (tz database name)."
  type        = string
}

variable "refresh_retry" {
  description = "Cloud Scheduler retry policy of a failed refresh call."
  type = object({
    retry_count          = number
    min_backoff_seconds  = number
    max_backoff_seconds  = number
    max_doublings        = number
    max_duration_seconds = number
  })
  validation {
    condition     = var.refresh_retry.retry_count >= 0 && var.refresh_retry.retry_count <= 5
    error_message = "refresh_retry.retry_count must be within [0, 5]."
  }
  validation {
    condition     = var.refresh_retry.min_backoff_seconds <= var.refresh_retry.max_backoff_seconds
    error_message = "refresh_retry.min_backoff_seconds must not exceed max_backoff_seconds."
  }
}

# --------------------------------------------------------------------------- monitoring
variable "notification_channels" {
  description = "Existing monitoring notification channel ids (projects/P/notificationChannels/N) named by every alert, beside those of notification_emails. No default: together with notification_emails at least one, in every environment (an alert that notifies no one is not monitoring)."
  type        = list(string)
  validation {
    condition     = length(var.notification_channels) + length(var.notification_emails) > 0
    error_message = "alerts must notify someone: set notification_channels or notification_emails (at least one, in every environment)."
  }
  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "notification_channels: channel ids projects/P/notificationChannels/N only."
  }
}

variable "notification_emails" {
  description = "Addresses that get an email notification channel (created here) named by every alert. No default; the committed tfvars hold a placeholder (irt-oncall@example.com) that the operator replaces (README, Operations: bootstrap)."
  type        = list(string)
  validation {
    condition     = alltrue([for e in var.notification_emails : can(regex("^[^@ ]+@[^@ ]+$", e))])
    error_message = "notification_emails: email addresses only."
  }
}

variable "model_max_age_hours" {
  description = "Alert when no new model has been published for this many hours (at most 48)."
  type        = number
  validation {
    condition     = var.model_max_age_hours >= 1 && var.model_max_age_hours <= 48
    error_message = "model_max_age_hours must be within [1, 48]."
  }
}

variable "predict_5xx_ratio_threshold" {
  description = "Alert when this fraction of predict responses are 5xx over 5 minutes (e.g. 0.01)."
  type        = number
  validation {
    condition     = var.predict_5xx_ratio_threshold > 0 && var.predict_5xx_ratio_threshold < 1
    error_message = "predict_5xx_ratio_threshold must be within (0, 1)."
  }
}

variable "predict_4xx_ratio_threshold" {
  description = "Alert when this fraction of predict responses are 4xx over 15 minutes: serving inputs that break the contract (e.g. 0.05)."
  type        = number
  validation {
    condition     = var.predict_4xx_ratio_threshold > 0 && var.predict_4xx_ratio_threshold < 1
    error_message = "predict_4xx_ratio_threshold must be within (0, 1)."
  }
}

variable "predict_latency_p99_ms" {
  description = "Alert when predict's p99 request latency stays above this many milliseconds for 10 minutes."
  type        = number
  validation {
    condition     = var.predict_latency_p99_ms > 0
    error_message = "predict_latency_p99_ms must be positive."
  }
}

variable "test_build_account" {
  description = "Create the test build's identity (irt-tester: build logs, tested/<commit> records in the releases bucket) - the environment whose trigger runs cloudbuild-test.yaml (staging). Elsewhere it would be an unused account with grants."
  type        = bool
  default     = false
}
