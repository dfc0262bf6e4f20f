output "predict_url" {
  description = "HTTPS endpoint of predict (IAM-authenticated; audience for identity tokens)."
  value       = google_cloudfunctions2_function.predict.service_config[0].uri
}

output "prepare_url" {
  description = "HTTPS endpoint of prepare (called by Cloud Scheduler only)."
  value       = google_cloudfunctions2_function.prepare.service_config[0].uri
}

output "model_bucket" {
  description = "Bucket holding models/LATEST and models/<version>/."
  value       = google_storage_bucket.models.name
}

output "model_pointer" {
  description = "gs:// URI of models/LATEST, the object naming the serving version (absent before the first refresh; the pipeline's smoke test reads it)."
  value       = "gs://${google_storage_bucket.models.name}/${local.model_prefix}/LATEST"
}

output "source_bucket" {
  description = "Bucket holding the function source zips."
  value       = google_storage_bucket.sources.name
}

output "service_accounts" {
  description = "Service account emails by role."
  value = {
    prepare   = google_service_account.prepare.email
    predict   = google_service_account.predict.email
    scheduler = google_service_account.scheduler.email
    build     = google_service_account.build.email
    tester    = var.test_build_account ? google_service_account.tester[0].email : null
  }
}

output "scheduler_job" {
  description = "Cloud Scheduler job that runs the refresh (gcloud scheduler jobs run <this> --location <region>)."
  value       = google_cloud_scheduler_job.refresh.name
}

output "scheduler_job_id" {
  description = "Full id of the refresh job (projects/<project>/locations/<region>/jobs/<name>): the staging build's refresh step runs it once (scripts/release/pipeline.sh refresh)."
  value       = google_cloud_scheduler_job.refresh.id
}
