# Identities and least-privilege grants. No project-level owner/editor anywhere; every grant is
# a single additive member on the narrowest resource that works:
#
# | account   | may                                                                          |
# |-----------|------------------------------------------------------------------------------|
# | prepare   | run BigQuery jobs and read sessions (project), read the source dataset      |
# |           | (dataset), read/write objects of the model bucket (bucket)                   |
# | predict   | read objects of the model bucket (bucket)                                    |
# | scheduler | invoke prepare (prepare's Cloud Run service; see functions.tf)               |
# | build     | build the function images: write build logs (project), read the source       |
# |           | bucket (bucket), push to the functions' image repository (repository)        |

resource "google_service_account" "prepare" {
  project      = var.project_id
  account_id   = "${local.prefix}-prepare"
  display_name = "IRT prepare (${var.environment})"
  description  = "Runtime identity of the prepare function: BigQuery source dataset -> model bucket."
}

resource "google_service_account" "predict" {
  project      = var.project_id
  account_id   = "${local.prefix}-predict"
  display_name = "IRT predict (${var.environment})"
  description  = "Runtime identity of the predict function: reads the model bucket only."
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "${local.prefix}-scheduler"
  display_name = "IRT refresh scheduler (${var.environment})"
  description  = "Cloud Scheduler's OIDC identity; may only invoke prepare."
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${local.prefix}-build"
  display_name = "IRT function builds (${var.environment})"
  description  = "Cloud Build identity that turns the function zips into images."
}

# --------------------------------------------------------------------------- prepare
resource "google_project_iam_member" "prepare_bigquery_job_user" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.prepare.email}"
}

# prepare downloads query results through the BigQuery Storage Read API (read sessions).
resource "google_project_iam_member" "prepare_bigquery_read_session_user" {
  project = var.project_id
  role    = "roles/bigquery.readSessionUser"
  member  = "serviceAccount:${google_service_account.prepare.email}"
}

resource "google_bigquery_dataset_iam_member" "prepare_reads_source" {
  project    = var.bq_project
  dataset_id = var.bq_dataset
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.prepare.email}"
}

# objectUser: create, read, overwrite (models/LATEST) and list objects; unlike objectAdmin it
# cannot change object ACLs or IAM.
resource "google_storage_bucket_iam_member" "prepare_writes_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.prepare.email}"
}

# --------------------------------------------------------------------------- predict
resource "google_storage_bucket_iam_member" "predict_reads_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.predict.email}"
}

# --------------------------------------------------------------------------- build
resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "google_storage_bucket_iam_member" "build_reads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

resource "google_artifact_registry_repository_iam_member" "build_pushes_images" {
  project    = google_artifact_registry_repository.functions.project
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}
