#!/bin/sh
# The steps of the Cloud Build pipelines (cloudbuild-test.yaml, cloudbuild.yaml,
# cloudbuild-plan.yaml, cloudbuild-release-plan.yaml, cloudbuild-release-apply.yaml), one
# command each, POSIX sh: the terraform image is Alpine
# (busybox sh), the cloud-sdk image Debian. tests/deploy/test_release.py runs every command
# against stand-in terraform and gcloud executables.
#
#   check-state ENV PROJECT     refuse to go on while the environment's state is still under
#                               the prefix both environments once shared (irt/default.tfstate)
#                               and not yet under its own (backend.hcl's prefix): migrate first
#   init ENV PROJECT            terraform init with the environment's backend.hcl, refusing a
#                               state bucket or tfvars of another project
#   validate                    terraform validate
#   plan ENV                    plan to terraform/irt/tfplan, its text to terraform/irt/plan.txt
#   plan-readonly ENV           plan and print it, as the read-only planner account
#                               (cloudbuild-plan.yaml): no state lock (taking one writes an
#                               object to the state bucket, which the planner may only read)
#                               and no plan file (nothing this plan shows is ever applied)
#   apply                       apply terraform/irt/tfplan (a saved plan only), write predict_url,
#                               model_pointer (gs:// URI of the model bucket's LATEST) and
#                               scheduler_job_id (projects/P/locations/L/jobs/J, the refresh job)
#   mark-tested PROJECT COMMIT BUILD STATUS...   record the test build's outcome for COMMIT
#                               (the exit statuses `make test` and `make perf-release` wrote
#                               to the files STATUS...; passed only if each is 0) as
#                               gs://PROJECT-releases/tested/COMMIT; exit 1 unless it passed
#   wait-tested PROJECT COMMIT [TIMEOUT_S] [EVERY_S]   wait for that record: go on if COMMIT
#                               passed its tests, fail if they failed or no record came in time
#   refresh JOB_ID SMOKE [TIMEOUT_S] [EVERY_S]   run prepare once as the schedule does
#                               (gcloud scheduler jobs run: the scheduler's OIDC token, internal
#                               ingress) and wait at most TIMEOUT_S for that attempt's
#                               AttemptFinished log line; writes refresh_result "passed" when
#                               prepare answered 2xx. Skipped (refresh_result "skipped") unless
#                               the file SMOKE says "passed": a first deploy let through without
#                               a model (ALLOW_NO_MODEL) is not recorded anyway
#   mark-passed PROJECT COMMIT BUILD SMOKE REFRESH   record that COMMIT passed staging
#                               (gs://PROJECT-releases/passed/COMMIT), only if the smoke test
#                               wrote "passed" to the file SMOKE (it scored a request) and the
#                               refresh "passed" to the file REFRESH (prepare ran); the
#                               record holds the sha256 of each function zip staging deployed
#                               (build/bundles/PROJECT-<function>.zip, `source <function> <sha>`)
#   check-passed PROJECT COMMIT        refuse a COMMIT that did not pass staging
#   check-sources STAGING COMMIT PROJECT   after the plan: refuse unless the function zips this
#                               build planned (build/bundles/PROJECT-<function>.zip) are exactly
#                               those staging deployed and recorded for COMMIT (same functions,
#                               same sha256)
#   bundle TAG COMMIT           release/release.tgz: plan, plan text, configuration, lock file,
#                               function zips, manifest (sha256 of plan, text, lock file and
#                               zips); release/release.sha256
#   publish PROJECT TAG         upload the bundle and the plan text to gs://PROJECT-releases/TAG/
#   request-apply PROJECT TAG TRIGGER [ALLOW_NO_MODEL]  start the approval-gated apply build
#                               of this bundle
#   fetch URI SHA256 COMMIT     download a bundle, check its digest and commit, unpack it
#   smoke URL ALLOW_NO_MODEL [POINTER]   the deployed predict answers as it should; writes
#                               smoke_result: "passed", or "no-model" when ALLOW_NO_MODEL is
#                               true, predict answers 503 and no model is published (the object
#                               POINTER, models/LATEST, is absent: a first deploy)
set -eu

TF_ROOT=terraform/irt

die() {
  echo "pipeline: $*" >&2
  exit 1
}

backend_bucket() {
  sed -n 's/^bucket *= *"\([^"]*\)".*/\1/p' "terraform/environments/$1/backend.hcl"
}

backend_prefix() {
  sed -n 's/^prefix *= *"\([^"]*\)".*/\1/p' "terraform/environments/$1/backend.hcl"
}

# The prefix both environments used before each had its own (terraform/README.md).
LEGACY_STATE_PREFIX=irt

releases() {
  echo "gs://$1-releases"
}

# `source <function> <sha256>` of each function zip Terraform wrote for PROJECT
# (terraform/irt/functions.tf: build/bundles/<project_id>-<function>.zip, uploaded under a name
# made of the same sha256), in name order; fails when there is none (no plan ran).
source_sums() {
  found=false
  for zip in build/bundles/"$1"-*.zip; do
    [ -f "$zip" ] || continue
    name=${zip##*/}
    name=${name#"$1"-}
    printf 'source %s %s\n' "${name%.zip}" "$(sha256sum "$zip" | cut -d' ' -f1)"
    found=true
  done
  [ "$found" = true ] || die "no function zips build/bundles/$1-*.zip (terraform plan writes them)"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  init)
    env=$1 project=$2
    [ -f "terraform/environments/$env/backend.hcl" ] || die "no environment $env"
    bucket=$(backend_bucket "$env")
    [ "$bucket" = "$project-tfstate" ] ||
      die "terraform/environments/$env/backend.hcl names state bucket '$bucket'; this build's project $project keeps its state in $project-tfstate"
    grep -q "^project_id *= *\"$project\"" "terraform/environments/$env/terraform.tfvars" ||
      die "terraform/environments/$env/terraform.tfvars is not for project $project"
    terraform -chdir="$TF_ROOT" init -input=false -reconfigure \
      -backend-config="../environments/$env/backend.hcl"
    ;;
  check-state)
    env=$1 project=$2
    [ -f "terraform/environments/$env/backend.hcl" ] || die "no environment $env"
    bucket=$(backend_bucket "$env") prefix=$(backend_prefix "$env")
    [ "$bucket" = "$project-tfstate" ] ||
      die "terraform/environments/$env/backend.hcl names state bucket '$bucket', not $project-tfstate"
    [ -n "$prefix" ] && [ "$prefix" != "$LEGACY_STATE_PREFIX" ] ||
      die "terraform/environments/$env/backend.hcl must name the environment's own prefix, not '$prefix'"
    state="gs://$bucket/$prefix/default.tfstate"
    legacy="gs://$bucket/$LEGACY_STATE_PREFIX/default.tfstate"
    if gcloud storage objects describe "$state" >/dev/null 2>&1; then
      echo "state of $env: $state"
    elif gcloud storage objects describe "$legacy" >/dev/null 2>&1; then
      die "the state of $env is still $legacy (the prefix both environments shared) and $state does not exist: a plan now would create every resource anew. Migrate it once with terraform init -migrate-state (terraform/README.md, State prefixes), then run this build again"
    else
      echo "state of $env: none yet at $state (a first deploy)"
    fi
    ;;
  validate)
    terraform -chdir="$TF_ROOT" validate
    ;;
  plan)
    env=$1
    terraform -chdir="$TF_ROOT" plan -input=false -lock-timeout=5m \
      -var-file="../environments/$env/terraform.tfvars" -out=tfplan
    terraform -chdir="$TF_ROOT" show -no-color tfplan >"$TF_ROOT/plan.txt"
    cat "$TF_ROOT/plan.txt"
    ;;
  plan-readonly)
    env=$1
    [ -f "terraform/environments/$env/terraform.tfvars" ] || die "no environment $env"
    terraform -chdir="$TF_ROOT" plan -input=false -lock=false -no-color \
      -var-file="../environments/$env/terraform.tfvars"
    ;;
  apply)
    [ -f "$TF_ROOT/tfplan" ] || die "no saved plan $TF_ROOT/tfplan: apply runs a reviewed plan only"
    terraform -chdir="$TF_ROOT" apply -input=false -lock-timeout=5m tfplan
    terraform -chdir="$TF_ROOT" output -raw predict_url >predict_url
    terraform -chdir="$TF_ROOT" output -raw model_pointer >model_pointer
    terraform -chdir="$TF_ROOT" output -raw scheduler_job_id >scheduler_job_id
    ;;
  mark-tested)
    project=$1 commit=$2 build=$3
    shift 3
    [ $# -gt 0 ] || die "mark-tested: name at least one STATUS file"
    outcome=passed failures=""
    for status_file in "$@"; do
      status=$(cat "$status_file" 2>/dev/null || echo missing)
      [ "$status" = 0 ] || { outcome=failed; failures="$failures $status_file=$status"; }
    done
    if [ -z "$commit" ]; then
      echo "a build by hand (no COMMIT_SHA) is not recorded; tests $outcome"
    else
      {
        printf 'status %s\nbuild %s\n' "$outcome" "$build"
        for status_file in "$@"; do
          printf '%s %s\n' "$status_file" "$(cat "$status_file" 2>/dev/null || echo missing)"
        done
      } >tested.txt
      gcloud storage cp tested.txt "$(releases "$project")/tested/$commit"
      echo "commit $commit: tests $outcome (build $build)"
    fi
    [ "$outcome" = passed ] || die "tests failed (exit status:$failures)"
    ;;
  wait-tested)
    project=$1 commit=$2 timeout=${3:-1800} every=${4:-30}
    if [ -z "$commit" ]; then
      echo "a build by hand (no COMMIT_SHA): not gated on a test build (run make test first)"
      exit 0
    fi
    record="$(releases "$project")/tested/$commit"
    waited=0
    while :; do
      if gcloud storage cp "$record" tested.txt >/dev/null 2>&1; then
        grep -qx 'status passed' tested.txt && { echo "commit $commit passed its tests"; exit 0; }
        die "commit $commit failed its tests ($record: $(tr '\n' ' ' <tested.txt))"
      fi
      [ "$waited" -ge "$timeout" ] &&
        die "no test record $record after ${timeout}s (did the irt-staging-test build run?)"
      sleep "$every"
      waited=$((waited + every))
    done
    ;;
  mark-passed)
    project=$1 commit=$2 build=$3 smoke_file=${4:-} refresh_file=${5:-}
    if [ -z "$commit" ]; then
      echo "a build by hand (no COMMIT_SHA) is not recorded: only triggered builds release"
      exit 0
    fi
    smoke=$(cat "$smoke_file" 2>/dev/null || echo missing)
    [ "$smoke" = passed ] ||
      die "commit $commit is not recorded as passed: the smoke test did not score a request ($smoke_file: $smoke)"
    refresh=$(head -n1 "$refresh_file" 2>/dev/null || echo missing)
    [ "$refresh" = passed ] ||
      die "commit $commit is not recorded as passed: prepare did not run successfully in staging (${refresh_file:-REFRESH}: $refresh)"
    printf 'build %s\n' "$build" >passed.txt
    sed -n '2p' "$refresh_file" >>passed.txt
    # What staging deployed, by content: a release must deploy these very zips (check-sources).
    source_sums "$project" >>passed.txt
    gcloud storage cp passed.txt "$(releases "$project")/passed/$commit"
    echo "commit $commit passed staging with:"
    sed -n 's/^source /  /p' passed.txt
    ;;
  refresh)
    job_id=$1 smoke_file=$2 timeout=${3:-1800} every=${4:-15}
    rm -f refresh_result
    smoke=$(cat "$smoke_file" 2>/dev/null || echo missing)
    if [ "$smoke" != passed ]; then
      echo "refresh skipped: the smoke test did not score a request ($smoke_file: $smoke), so this deploy is not recorded as passed; the first refresh is run by hand (README, Operations)"
      echo skipped >refresh_result
      exit 0
    fi
    case "$job_id" in
      projects/*/locations/*/jobs/*) ;;
      *) die "'$job_id' is not a scheduler job id (projects/P/locations/L/jobs/J; apply writes it)" ;;
    esac
    job=${job_id##*/}
    rest=${job_id#projects/}
    project=${rest%%/*}
    rest=${rest#*/locations/}
    location=${rest%%/*}
    # A little before now: the build machine's clock against Cloud Logging's.
    start=$(date -u -d "@$(($(date +%s) - 60))" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null ||
      date -u +%Y-%m-%dT%H:%M:%SZ)
    gcloud scheduler jobs run "$job" --location="$location" --project="$project"
    echo "refresh started ($job_id): prepare runs as the schedule runs it; waiting up to ${timeout}s"
    filter="resource.type=\"cloud_scheduler_job\" AND resource.labels.job_id=\"$job\""
    filter="$filter AND resource.labels.location=\"$location\""
    filter="$filter AND jsonPayload.\"@type\"=\"type.googleapis.com/google.cloud.scheduler.logging.AttemptFinished\""
    filter="$filter AND timestamp>=\"$start\""
    waited=0
    while :; do
      line=$(gcloud logging read "$filter" --project="$project" --order=asc --limit=1 \
        --format='value(severity,httpRequest.status,jsonPayload.status)' 2>/dev/null || true)
      if [ -n "$line" ]; then
        severity=$(printf '%s\n' "$line" | cut -f1)
        http=$(printf '%s\n' "$line" | cut -f2)
        status=$(printf '%s\n' "$line" | cut -f3)
        case "$severity:$http" in
          ERROR:* | CRITICAL:* | ALERT:* | EMERGENCY:*)
            die "prepare failed in staging: the refresh attempt ended $severity (HTTP ${http:-none}, ${status:-no status}); prepare's log says why (event refresh_failed)" ;;
          *:2??)
            printf 'passed\nrefresh %s HTTP %s\n' "$start" "$http" >refresh_result
            echo "prepare ran in staging: HTTP $http"
            exit 0 ;;
          *)
            die "the refresh attempt ended without a 2xx ($severity, HTTP ${http:-none}, ${status:-no status})" ;;
        esac
      fi
      [ "$waited" -ge "$timeout" ] &&
        die "no finished refresh attempt of $job logged within ${timeout}s (prepare still running, or the job did not start): see gcloud scheduler jobs describe $job --location=$location --project=$project"
      sleep "$every"
      waited=$((waited + every))
    done
    ;;
  check-passed)
    project=$1 commit=$2
    [ -n "$commit" ] || die "no COMMIT_SHA: a release is built from a tagged commit"
    gcloud storage objects describe "$(releases "$project")/passed/$commit" >/dev/null 2>&1 ||
      die "commit $commit has not passed staging ($(releases "$project")/passed/$commit is absent)"
    echo "commit $commit passed staging"
    ;;
  check-sources)
    staging=$1 commit=$2 project=$3
    [ -n "$commit" ] || die "no COMMIT_SHA: a release is built from a tagged commit"
    record="$(releases "$staging")/passed/$commit"
    gcloud storage cp "$record" staging_passed.txt >/dev/null 2>&1 ||
      die "commit $commit has not passed staging ($record is absent)"
    grep '^source ' staging_passed.txt >staging_sources.txt ||
      die "staging's record $record names no function zips (recorded before zips were recorded): run staging's build for commit $commit again, then tag again"
    source_sums "$project" >release_sources.txt
    if ! cmp -s staging_sources.txt release_sources.txt; then
      echo "function zips that passed staging ($record):" >&2
      sed 's/^source /  /' staging_sources.txt >&2
      echo "function zips this release would deploy (build/bundles/$project-*.zip):" >&2
      sed 's/^source /  /' release_sources.txt >&2
      die "refusing to release commit $commit: its function zips are not the ones that passed staging (prod deploys only the exact bytes staging tested; a rebuild that differs means the build is not reproducible)"
    fi
    echo "function zips of commit $commit are those that passed staging:"
    sed 's/^source /  /' release_sources.txt
    ;;
  bundle)
    tag=$1 commit=$2
    [ -f "$TF_ROOT/tfplan" ] && [ -f "$TF_ROOT/plan.txt" ] || die "plan first"
    [ -f "$TF_ROOT/.terraform.lock.hcl" ] || die "no $TF_ROOT/.terraform.lock.hcl: init first"
    mkdir -p release
    {
      echo "tag $tag"
      echo "commit $commit"
      sha256sum "$TF_ROOT/tfplan" "$TF_ROOT/plan.txt" "$TF_ROOT/.terraform.lock.hcl" \
        build/bundles/*.zip
    } >"$TF_ROOT/MANIFEST"
    tar -czf release/release.tgz --exclude="$TF_ROOT/.terraform" "$TF_ROOT" \
      terraform/environments build/bundles
    sha256sum release/release.tgz | cut -d' ' -f1 >release/release.sha256
    cp "$TF_ROOT/plan.txt" release/plan.txt
    echo "release bundle sha256 $(cat release/release.sha256)"
    ;;
  publish)
    project=$1 tag=$2
    dest="$(releases "$project")/$tag"
    gcloud storage cp release/release.tgz release/plan.txt release/release.sha256 "$dest/"
    echo "$dest/release.tgz" >release/uri
    echo "published $dest/release.tgz (plan text: $dest/plan.txt)"
    ;;
  request-apply)
    project=$1 tag=$2 trigger=$3 allow_no_model=${4:-false}
    uri=$(cat release/uri)
    sha=$(cat release/release.sha256)
    gcloud builds triggers run "$trigger" --project="$project" --tag="$tag" \
      --substitutions="_RELEASE=$uri,_RELEASE_SHA256=$sha,_ALLOW_NO_MODEL=$allow_no_model"
    echo "apply build requested: approve it after reading $(dirname "$uri")/plan.txt"
    ;;
  fetch)
    uri=$1 want=$2 commit=$3
    [ -n "$uri" ] && [ -n "$want" ] || die "_RELEASE and _RELEASE_SHA256 are required"
    mkdir -p release
    gcloud storage cp "$uri" release/release.tgz
    got=$(sha256sum release/release.tgz | cut -d' ' -f1)
    [ "$got" = "$want" ] || die "bundle $uri has sha256 $got, the approved one is $want"
    tar -xzf release/release.tgz
    grep -qx "commit $commit" "$TF_ROOT/MANIFEST" ||
      die "bundle $uri was planned for another commit ($(grep '^commit' "$TF_ROOT/MANIFEST"))"
    (sed -n '3,$p' "$TF_ROOT/MANIFEST" | sha256sum -c -) || die "bundle contents altered"
    echo "bundle $uri: sha256 $got, commit $commit"
    ;;
  smoke)
    url=$1 allow_no_model=$2 pointer=${3:-}
    rm -f smoke_result
    echo "smoke test of $url"
    anon=$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz")
    [ "$anon" = 401 ] || [ "$anon" = 403 ] || die "unauthenticated call got $anon"
    token=$(gcloud auth print-identity-token --audiences="$url")
    call() { curl -s -o /tmp/body -w '%{http_code}' -H "Authorization: Bearer $token" "$@"; }
    code=""
    # New revisions and fresh IAM grants can take a minute or two to answer.
    for i in $(seq 1 30); do
      code=$(call "$url/healthz" || true)
      [ "$code" = 200 ] && break
      # A first deploy has no model: 503 is allowed then, and only then (no LATEST in the
      # model bucket); the deploy is not recorded as passed (mark-passed).
      if [ "$code" = 503 ] && [ "$allow_no_model" = true ]; then
        [ -n "$pointer" ] || die "ALLOW_NO_MODEL=true needs the model pointer (apply writes it)"
        if gcloud storage objects describe "$pointer" >/dev/null 2>&1; then
          echo "attempt $i: 503 although $pointer exists: a model is published, not allowed"
        else
          echo "no model published yet ($pointer absent; allowed for a first deploy, which" \
            "is not recorded as passed): $(cat /tmp/body)"
          echo no-model >smoke_result
          exit 0
        fi
      fi
      echo "attempt $i: /healthz -> $code"
      sleep 10
    done
    [ "$code" = 200 ] || die "predict is not healthy: $(cat /tmp/body)"
    [ "$(call "$url/model")" = 200 ] || die "/model failed: $(cat /tmp/body)"
    code=$(call -X POST "$url/predict" -H 'Content-Type: application/json' \
      -d '{"responses": [{"item_id": "__smoke__", "correct": true}], "items": ["__smoke__"]}')
    [ "$code" = 200 ] || die "/predict -> $code: $(cat /tmp/body)"
    python3 - /tmp/body <<'PY'
import json, sys
body = json.load(open(sys.argv[1]))
assert body["model_version"], body
assert body["unknown_items"] == ["__smoke__"], body
print("smoke test passed: model", body["model_version"])
PY
    echo passed >smoke_result
    ;;
  *)
    die "unknown command '$cmd' (see the head of $0)"
    ;;
esac
