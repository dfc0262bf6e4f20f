# Two private buckets: the model bucket (prepare writes models/<version>/..., then moves the
# models/LATEST pointer; predict reads them) and the source bucket holding the function zips.
# Separate so that prepare, which may write the model bucket, can never touch deployed code.

resource "google_storage_bucket" "models" {
  #checkov:skip=CKV_GCP_62:Usage logs are not kept; object reads and writes are in Cloud Audit Logs (Data Access logs for Cloud Storage, enabled per org/project policy), and every publish is logged by prepare (event=model_published).
  project  = var.project_id
  name     = "${var.project_id}-${local.prefix}-models"
  location = var.bucket_location
  labels   = local.labels

  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Every overwrite of models/LATEST keeps the previous pointer as a noncurrent version: a
  # rollback can restore it (see README, Operations).
  versioning {
    enabled = true
  }

  # Old runs: the training snapshot (student answers) goes after N days; model.json,
  # metrics.json and report.json stay (small; needed to roll back and to audit a model).
  lifecycle_rule {
    condition {
      age            = var.training_snapshot_retention_days
      matches_prefix = ["${local.model_prefix}/"]
      matches_suffix = ["prepared.csv.gz"]
      with_state     = "ANY"
    }
    action {
      type = "Delete"
    }
  }

  # Overwritten or deleted versions of any object are kept for a rollback window, then removed.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_storage_bucket" "sources" {
  #checkov:skip=CKV_GCP_62:Holds only the function zips written by the deploy pipeline; writes are in the Admin Activity / Data Access audit logs, reads are Cloud Build's.
  project  = var.project_id
  name     = "${var.project_id}-${local.prefix}-sources"
  location = var.bucket_location
  labels   = local.labels

  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Zips are content-addressed (named by their hash): a new deploy adds one, none is ever
  # overwritten, so only versions left behind by a manual delete are cleaned up.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}
