# The two gen2 functions, deployed from the vendored folders `make build` writes
# (build/functions/<name>: main.py, requirements.txt, irt/). As in Cloud Foundation Fabric's
# cloud-function-v2 module, each folder is zipped and uploaded under a name made of the zip's
# hash: a code change gives a new object name and so a new deployment; an unchanged tree gives
# the same bytes (archive_file zeroes timestamps, output_file_mode fixes the modes), the same
# name, and no change at all.

data "archive_file" "source" {
  for_each = local.functions

  type             = "zip"
  source_dir       = "${local.source_root}/${each.key}"
  output_path      = "${local.source_root}/../bundles/${var.project_id}-${each.key}.zip"
  output_file_mode = "0644"
}

resource "google_storage_bucket_object" "source" {
  for_each = local.functions

  bucket       = google_storage_bucket.sources.name
  name         = "${each.key}/${each.key}-${data.archive_file.source[each.key].output_sha256}.zip"
  source       = data.archive_file.source[each.key].output_path
  content_type = "application/zip"
}

# Images built from the zips; old ones are cleaned up, the newest few kept for rollbacks.
resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:The images hold only the function code and public PyPI packages, no data; Google-managed encryption suffices and no KMS key is run for this service.
  project       = var.project_id
  location      = var.region
  repository_id = "${local.prefix}-functions"
  description   = "Images of the IRT functions, built by Cloud Functions from the source zips."
  format        = "DOCKER"
  labels        = local.labels

  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "2592000s" # 30 days
    }
  }

  depends_on = [google_project_service.enabled]
}

# --------------------------------------------------------------------------- prepare
resource "google_cloudfunctions2_function" "prepare" {
  project     = var.project_id
  location    = var.region
  name        = local.function_names.prepare
  description = local.functions.prepare.description
  labels      = local.labels

  build_config {
    runtime           = "python312"
    entry_point       = local.functions.prepare.entry_point
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source["prepare"].name
        # The uploaded generation, not "the latest" the provider would compute.
        generation = google_storage_bucket_object.source["prepare"].generation
      }
    }
  }

  service_config {
    # One refresh at a time: a single instance serving a single request.
    min_instance_count               = 0
    max_instance_count               = 1
    max_instance_request_concurrency = 1
    available_memory                 = var.prepare_memory
    available_cpu                    = var.prepare_cpu
    timeout_seconds                  = var.prepare_timeout_seconds
    environment_variables            = local.prepare_env
    # Only Cloud Scheduler calls it. Cloud Run counts Cloud Scheduler in the same project as
    # internal traffic (https://cloud.google.com/run/docs/securing/ingress, "Internal").
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.prepare.email
  }

  # The build starts as soon as the function is created: its grants must have propagated.
  depends_on = [
    google_project_service.enabled,
    time_sleep.iam_propagation,
  ]
}

# --------------------------------------------------------------------------- predict
resource "google_cloudfunctions2_function" "predict" {
  #checkov:skip=CKV_GCP_124:Ingress is var.predict_ingress: ALLOW_ALL only because the LMS calls from outside Google Cloud; every request still needs an identity token of a predict_invokers member (no allUsers grant). Set ALLOW_INTERNAL_ONLY when the LMS runs in the project's VPC.
  project     = var.project_id
  location    = var.region
  name        = local.function_names.predict
  description = local.functions.predict.description
  labels      = local.labels

  build_config {
    runtime     = "python312"
    entry_point = local.functions.predict.entry_point
    # The buildpack's entrypoint variable
    # (https://cloud.google.com/docs/buildpacks/service-specific-configs#google_entrypoint):
    # gunicorn with predict's own settings (functions/predict/gunicorn.conf.py, server.py),
    # serving the same functions-framework app. The buildpacks' source skips it when the
    # target platform is Cloud Functions (cmd/config/entrypoint/lib/lib.go) and runs
    # functions-framework's command instead: main.py then applies the same settings to
    # functions-framework's gunicorn (server.harden_functions_framework), so predict is
    # served the same way either way (both commands are tested).
    environment_variables = {
      GOOGLE_ENTRYPOINT = "gunicorn -c gunicorn.conf.py server:app"
    }
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source["predict"].name
        # The uploaded generation, not "the latest" the provider would compute.
        generation = google_storage_bucket_object.source["predict"].generation
      }
    }
  }

  service_config {
    min_instance_count               = var.predict_min_instances
    max_instance_count               = var.predict_max_instances
    max_instance_request_concurrency = var.predict_concurrency
    available_memory                 = var.predict_memory
    available_cpu                    = tostring(var.predict_cpu)
    timeout_seconds                  = 30
    environment_variables            = local.predict_env
    ingress_settings                 = var.predict_ingress
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.predict.email
  }

  # The build starts as soon as the function is created: its grants must have propagated.
  depends_on = [
    google_project_service.enabled,
    time_sleep.iam_propagation,
  ]
}

# --------------------------------------------------------------------------- invokers
# Both functions are private. roles/run.invoker is granted on each function's underlying Cloud
# Run service (the role cannot be set on the function resource itself). If a function is ever
# replaced (destroyed and created), its new service starts with an empty policy: the grants are
# then replaced too. They follow the function's id, which is unknown in a plan only when the
# function is being replaced, so an ordinary code or config update never drops and re-adds
# them (no window in which callers get 403).

resource "google_cloud_run_v2_service_iam_member" "prepare_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.prepare.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"

  lifecycle {
    replace_triggered_by = [google_cloudfunctions2_function.prepare.id]
  }
}

resource "google_cloud_run_v2_service_iam_member" "predict_invoker" {
  for_each = toset(var.predict_invokers)

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.predict.service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value

  lifecycle {
    replace_triggered_by = [google_cloudfunctions2_function.predict.id]
  }
}
