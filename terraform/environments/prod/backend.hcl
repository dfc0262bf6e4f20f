# State of prod: its own bucket in its own project (README, Operations: bootstrap), written
# only by prod's deploy account.
#   terraform -chdir=terraform/irt init -reconfigure -backend-config=../environments/prod/backend.hcl
bucket = "irt-prod-tfstate"
prefix = "irt"
