terraform {
  # replace_triggered_by (1.2), optional() object attributes (1.3), a variable's validation
  # naming another variable (1.9: notification_channels in prod); Cloud Build runs 1.9.8.
  required_version = ">= 1.9.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "6.50.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "2.7.1"
    }
    # time_sleep: the waits of iam.tf (grants) and monitoring.tf (log-based metrics)
    time = {
      source  = "hashicorp/time"
      version = "0.13.1"
    }
  }
}
