# State of staging: its own bucket in its own project (README, Operations: bootstrap), written
# only by staging's deploy account.
#   terraform -chdir=terraform/irt init -reconfigure -backend-config=../environments/staging/backend.hcl
bucket = "irt-staging-tfstate"
prefix = "irt"
