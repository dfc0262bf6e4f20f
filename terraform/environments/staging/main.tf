# One environment = one project, one state (backend.tf), one terraform.tfvars. This file is the
# same in every environment (tests/deploy/test_terraform.py checks it); the differences live in
# terraform.tfvars and backend.tf only.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 7.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

module "irt" {
  source = "../../modules/irt"

  # `make build` writes the vendored function folders here (run it before plan).
  project_id                        = var.project_id
  environment                       = var.environment
  region                            = var.region
  name_prefix                       = var.name_prefix
  labels                            = var.labels
  source_root                       = "${path.root}/../../../build/functions"
  bucket_location                   = var.bucket_location
  training_snapshot_retention_days  = var.training_snapshot_retention_days
  noncurrent_version_retention_days = var.noncurrent_version_retention_days
  bq_project                        = var.bq_project
  bq_dataset                        = var.bq_dataset
  bq_table                          = var.bq_table
  bq_location                       = var.bq_location
  bq_columns                        = var.bq_columns
  prepare_model_type                = var.prepare_model_type
  prepare_window_days               = var.prepare_window_days
  prepare_max_answers_per_item      = var.prepare_max_answers_per_item
  prepare_min_answers_per_item      = var.prepare_min_answers_per_item
  prepare_min_answers_per_student   = var.prepare_min_answers_per_student
  prepare_learning_max_answers      = var.prepare_learning_max_answers
  prepare_gate                      = var.prepare_gate
  prepare_env_overrides             = var.prepare_env_overrides
  prepare_memory                    = var.prepare_memory
  prepare_cpu                       = var.prepare_cpu
  prepare_timeout_seconds           = var.prepare_timeout_seconds
  predict_min_instances             = var.predict_min_instances
  predict_max_instances             = var.predict_max_instances
  predict_concurrency               = var.predict_concurrency
  predict_cpu                       = var.predict_cpu
  predict_memory                    = var.predict_memory
  predict_invokers                  = var.predict_invokers
  predict_ingress                   = var.predict_ingress
  model_refresh_seconds             = var.model_refresh_seconds
  predict_env_overrides             = var.predict_env_overrides
  refresh_schedule                  = var.refresh_schedule
  refresh_time_zone                 = var.refresh_time_zone
  refresh_retry                     = var.refresh_retry
  notification_channels             = var.notification_channels
  model_max_age_hours               = var.model_max_age_hours
  predict_5xx_ratio_threshold       = var.predict_5xx_ratio_threshold
  predict_4xx_ratio_threshold       = var.predict_4xx_ratio_threshold
  predict_latency_p99_ms            = var.predict_latency_p99_ms
}
