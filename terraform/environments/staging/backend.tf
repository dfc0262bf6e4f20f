# State of the staging environment: its own prefix in the state bucket. The bucket is given at
# init (partial configuration), e.g.
#   terraform init -backend-config="bucket=$TF_STATE_BUCKET"
# (README, Operations: bootstrap). No workspaces: one folder, one state per environment.
terraform {
  backend "gcs" {
    prefix = "irt/staging"
  }
}
