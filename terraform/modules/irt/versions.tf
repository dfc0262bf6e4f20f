terraform {
  # replace_triggered_by (1.2), optional() object attributes (1.3); Cloud Build runs 1.9.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "6.50.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "2.7.1"
    }
  }
}
