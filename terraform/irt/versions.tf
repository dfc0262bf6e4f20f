# The root of every environment: terraform/environments/<env>/ holds only its terraform.tfvars
# and backend.hcl (README, Operations):
#   terraform -chdir=terraform/irt init -reconfigure -backend-config=../environments/$ENV/backend.hcl
#   terraform -chdir=terraform/irt plan -var-file=../environments/$ENV/terraform.tfvars -out=tfplan
# The providers are pinned to the exact releases whose schema `make test` checks this
# configuration against (tests/deploy/test_provider_schema.py).
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

  # State: one bucket per project, <project_id>-tfstate, named in the environment's
  # backend.hcl (partial configuration: https://developer.hashicorp.com/terraform/language/backend#partial-configuration).
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}
