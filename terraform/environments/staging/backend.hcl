# State of staging: its own bucket in its own project (README, Operations: bootstrap), written
# only by staging's deploy account.
#   terraform -chdir=terraform/irt init -reconfigure -backend-config=../environments/staging/backend.hcl
bucket = "irt-staging-tfstate"
# This environment's own prefix (state object irt/staging/default.tfstate). Both
# environments once shared "irt": an existing state is moved once with `init -migrate-state`
# (terraform/README.md, "State prefixes"); the pipeline refuses to plan before that.
prefix = "irt/staging"
