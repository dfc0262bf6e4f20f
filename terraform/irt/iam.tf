# Identities and least-privilege grants. No project-level owner/editor anywhere; every grant is
# a single additive member on the narrowest resource that works:
#
# | account   | may                                                                          |
# |-----------|------------------------------------------------------------------------------|
# | prepare   | run BigQuery jobs and read sessions (project), read the answer table        |
# |           | (table), read/write objects of the model bucket (bucket)                     |
# | predict   | read models/LATEST and models/*/model.json of the model bucket (condition)   |
# | scheduler | invoke prepare (prepare's Cloud Run service; see functions.tf)               |
# | build     | build the function images: write build logs (project), read the source       |
# |           | bucket (bucket) and Cloud Functions' copy of it (gcf-v2-sources-*, condition),|
# |           | push to the functions' image repository (repository)                         |
# | tester    | run the test build (cloudbuild-test.yaml): write build logs (project), write |
# |           | tested/<commit> records in the releases bucket (bucket, condition); no IAM,  |
# |           | no deploy rights; only where var.test_build_account (staging)                |
#
# README.md, Operations, "Least privilege", has the same table with the reasons.

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

# The test build's identity: `make test` (lint, Terraform checks, the suite and its ~130
# third-party packages) runs as this account, never as the deploy account that may change IAM.
# Cloud Build runs cloudbuild-test.yaml as it (trigger irt-staging-test, README Operations);
# it records the outcome as gs://<project>-releases/tested/<commit>, which the deploy build
# (cloudbuild.yaml, as the deploy account) waits for before it plans. Only staging tests
# commits (prod applies release bundles that passed there): elsewhere the account is not made.
resource "google_service_account" "tester" {
  count        = var.test_build_account ? 1 : 0
  project      = var.project_id
  account_id   = "${local.prefix}-tester"
  display_name = "IRT test builds (${var.environment})"
  description  = "Cloud Build identity of the test build: writes its logs and tested/<commit> records only."
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

# Read access to the answer table only (BQ_TABLE), not to the rest of its dataset: a
# table-level grant (https://cloud.google.com/bigquery/docs/control-access-to-resources-iam).
# The query job runs in this project (jobUser above) and reads that one table.
resource "google_bigquery_table_iam_member" "prepare_reads_source" {
  project    = var.bq_project
  dataset_id = var.bq_dataset
  table_id   = var.bq_table
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
# predict reads two kinds of object only: the pointer models/LATEST and a version's
# models/<version>/model.json (irt.store.GCSStore.read_pointer / get). The condition keeps it
# from the rest of the bucket, above all the training snapshots models/<version>/prepared.csv.gz
# (student answers). Cloud Storage IAM conditions on the object name:
# https://cloud.google.com/storage/docs/access-control/iam#conditions and
# https://cloud.google.com/iam/docs/conditions-resource-attributes#resource-name
# (format projects/_/buckets/BUCKET/objects/OBJECT; needs uniform bucket-level access).
resource "google_storage_bucket_iam_member" "predict_reads_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.predict.email}"

  condition {
    title       = "serving-objects-only"
    description = "models/LATEST and models/<version>/model.json; never the training snapshots."
    expression  = local.predict_objects_condition
  }
}

# --------------------------------------------------------------------------- build
# The build account's roles are those Google lists for a function's build account
# (https://cloud.google.com/functions/docs/securing/build-custom-sa: logging.logWriter,
# artifactregistry.writer, storage.objectViewer "for retrieving the function source"), each on
# the narrowest resource.
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

# Cloud Functions copies the zip named in storage_source into its own bucket
# gcf-v2-sources-<project number>-<region> (https://cloud.google.com/functions/docs/building)
# and the build fetches it from there: without read access there every build fails with
# "Access to bucket gcf-v2-sources-... denied. You must grant Storage Object Viewer permission"
# (hashicorp/terraform-provider-google#20571). Cloud Functions creates that bucket itself on
# the first deployment, so it cannot carry a bucket-level grant before then: the grant is on
# the project, held by a condition to that one bucket and its objects.
resource "google_project_iam_member" "build_reads_function_sources" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = "serviceAccount:${google_service_account.build.email}"

  condition {
    title       = "gcf-v2-sources-bucket-only"
    description = "Cloud Functions' copy of the source zips (${local.gcf_sources_bucket})."
    expression  = "resource.name == \"projects/_/buckets/${local.gcf_sources_bucket}\" || resource.name.startsWith(\"projects/_/buckets/${local.gcf_sources_bucket}/objects/\")"
  }
}

resource "google_artifact_registry_repository_iam_member" "build_pushes_images" {
  project    = google_artifact_registry_repository.functions.project
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

# --------------------------------------------------------------------------- tester
locals {
  # Created by the bootstrap (README, Operations): staging's passed commits, prod's bundles,
  # and the test build's records under tested/.
  releases_bucket = "${var.project_id}-releases"
}

# A build with a user-specified account and CLOUD_LOGGING_ONLY writes its logs as that account
# (https://cloud.google.com/build/docs/securing-builds/configure-user-specified-service-accounts).
resource "google_project_iam_member" "tester_log_writer" {
  count   = var.test_build_account ? 1 : 0
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.tester[0].email}"
}

# objectUser (create and overwrite: a re-run of the same commit replaces its record), held by
# the condition to tested/ only: the tester cannot touch passed/ or the release bundles.
resource "google_storage_bucket_iam_member" "tester_records_results" {
  count  = var.test_build_account ? 1 : 0
  bucket = local.releases_bucket
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.tester[0].email}"

  condition {
    title       = "tested-records-only"
    description = "gs://${local.releases_bucket}/tested/<commit>: the test build's outcome."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${local.releases_bucket}/objects/tested/\")"
  }
}

# --------------------------------------------------------------------------- propagation
# A new grant takes effect within about 2 minutes, sometimes 7 or more
# (https://cloud.google.com/iam/docs/access-change-propagation). The functions' builds run
# as the build account the moment the functions are created, so they wait for its grants (and
# the runtime grants) as the provider's own example does ("builder permissions need to
# stabilize before it can pull the source zip": time_sleep.wait_60s before the function,
# website/docs/r/cloudfunctions2_function, example cloudfunctions2_basic_builder). Any changed
# grant (triggers) waits again; an apply that changes no grant does not wait.
resource "time_sleep" "iam_propagation" {
  create_duration = "120s"

  triggers = {
    build_log_writer             = google_project_iam_member.build_log_writer.id
    build_reads_sources          = google_storage_bucket_iam_member.build_reads_sources.id
    build_reads_function_sources = google_project_iam_member.build_reads_function_sources.id
    build_pushes_images          = google_artifact_registry_repository_iam_member.build_pushes_images.id
    predict_reads_models         = google_storage_bucket_iam_member.predict_reads_models.id
    prepare_writes_models        = google_storage_bucket_iam_member.prepare_writes_models.id
    prepare_reads_source         = google_bigquery_table_iam_member.prepare_reads_source.id
    prepare_bigquery_job_user    = google_project_iam_member.prepare_bigquery_job_user.id
    prepare_read_session_user    = google_project_iam_member.prepare_bigquery_read_session_user.id
  }
}
