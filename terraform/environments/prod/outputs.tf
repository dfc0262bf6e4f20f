output "predict_url" {
  description = "HTTPS endpoint of predict (the smoke test's target and token audience)."
  value       = module.irt.predict_url
}

output "prepare_url" {
  description = "HTTPS endpoint of prepare (Cloud Scheduler only)."
  value       = module.irt.prepare_url
}

output "model_bucket" {
  description = "Bucket holding models/LATEST and models/<version>/."
  value       = module.irt.model_bucket
}

output "source_bucket" {
  description = "Bucket holding the function source zips."
  value       = module.irt.source_bucket
}

output "service_accounts" {
  description = "Service account emails (prepare, predict, scheduler, build)."
  value       = module.irt.service_accounts
}

output "scheduler_job" {
  description = "Cloud Scheduler job of the refresh."
  value       = module.irt.scheduler_job
}
