"""The release pipelines (#14, defect 4): prod applies exactly the plan its approver saw, for a
commit that passed staging.

Cloud Build's "approval required" holds a build before any step runs
(https://cloud.google.com/build/docs/securing-builds/gate-builds-on-approval), so an approval
on the one prod build that planned and applied was given blind. Now prod is two builds:
``cloudbuild-release-plan.yaml`` (tag trigger, no approval) checks that the commit passed
staging, saves the plan, its text and everything the apply needs as a bundle, and starts
``cloudbuild-release-apply.yaml`` (manual trigger, approval required) with the bundle's URI and
sha256 (``gcloud builds triggers run --substitutions``:
https://cloud.google.com/sdk/gcloud/reference/builds/triggers/run); that build applies the
saved plan (``terraform apply PLANFILE`` applies exactly the saved plan and refuses a stale
one: https://developer.hashicorp.com/terraform/cli/commands/apply#apply-saved-plan).

The steps are ``scripts/release/pipeline.sh`` commands. These tests run them with ``sh``
(dash, as strict as Alpine's busybox sh) against stand-ins for ``terraform`` and ``gcloud``
that log their calls and keep Cloud Storage in a folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "release" / "pipeline.sh"
CONFIGS = {"test": "cloudbuild-test.yaml", "staging": "cloudbuild.yaml",
           "plan": "cloudbuild-release-plan.yaml", "apply": "cloudbuild-release-apply.yaml",
           "pr": "cloudbuild-plan.yaml"}
COMMIT = "0123456789abcdef0123456789abcdef01234567"

FAKE_TERRAFORM = r'''
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
cwd = Path.cwd()
if args and args[0].startswith("-chdir="):
    cwd = cwd / args.pop(0).split("=", 1)[1]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"tool": "terraform", "dir": str(cwd), "args": args}) + "\n")
cmd = args[0]
if cmd == "init":
    lock = cwd / ".terraform.lock.hcl"
    if not lock.exists():
        lock.write_text('provider "registry.terraform.io/hashicorp/google" {}\n')
elif cmd == "plan":
    out = next((a.split("=", 1)[1] for a in args if a.startswith("-out=")), None)
    var_file = next(a.split("=", 1)[1] for a in args if a.startswith("-var-file="))
    if out is None:  # a plan that is only shown (plan-readonly)
        print("Plan: 0 to add, 1 to change, 0 to destroy.", (cwd / var_file).exists())
    else:
        (cwd / out).write_bytes(b"PLAN of " + (cwd / var_file).read_bytes()[:40])
elif cmd == "show":
    print("  # google_cloudfunctions2_function.predict will be updated in-place")
    print("Plan: 0 to add, 1 to change, 0 to destroy.")
elif cmd == "apply":
    if not (cwd / args[-1]).exists():
        sys.exit("no plan file " + args[-1])
elif cmd == "output":
    print({"predict_url": "https://irt-predict.example.run.app",
           "model_pointer": "gs://irt-models/models/LATEST",
           "scheduler_job_id": "projects/irt-staging/locations/europe-west1/jobs/irt-refresh",
           }[args[-1]], end="")
'''

FAKE_GCLOUD = r'''
import json, os, shutil, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"tool": "gcloud", "args": args}) + "\n")
gcs = Path(os.environ["FAKE_GCS"])
def local(uri):
    return gcs / uri.removeprefix("gs://") if uri.startswith("gs://") else Path(uri)
if args[:2] == ["storage", "cp"]:
    *srcs, dst = args[2:]
    for src in srcs:
        target = local(dst)
        if dst.endswith("/"):
            target = target / local(src).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local(src), target)
elif args[:3] == ["storage", "objects", "describe"]:
    sys.exit(0 if local(args[3]).exists() else 1)
elif args[:3] == ["builds", "triggers", "run"]:
    pass
elif args[:3] == ["scheduler", "jobs", "run"]:
    pass
elif args[:2] == ["logging", "read"]:
    # the refresh attempt's AttemptFinished line (severity, http status, status), once
    # FAKE_REFRESH_AFTER reads have returned nothing (the attempt still running)
    reads = gcs.parent / "logging_reads"
    n = int(reads.read_text()) if reads.exists() else 0
    reads.write_text(str(n + 1))
    if n >= int(os.environ.get("FAKE_REFRESH_AFTER", "0")):
        print(os.environ.get("FAKE_REFRESH", ""))
elif args[:2] == ["auth", "print-identity-token"]:
    print("token-for-" + args[2].split("=", 1)[1])
else:
    sys.exit("fake gcloud: unsupported " + " ".join(args))
'''


# predict as the smoke test sees it: 401 without a token; with one, /healthz answers
# FAKE_HEALTHZ (200 or 503), /model and /predict a model's answers. Writes -o, prints -w.
FAKE_CURL = r'''
import json, os, sys
args = sys.argv[1:]
out, headers, url = None, [], None
i = 0
while i < len(args):
    if args[i] in ("-o", "-w", "-H", "-X", "-d"):
        if args[i] == "-o":
            out = args[i + 1]
        elif args[i] == "-H":
            headers.append(args[i + 1])
        i += 2
    elif args[i].startswith("-"):
        i += 1
    else:
        url = args[i]
        i += 1
answer = {"model_version": "v7", "unknown_items": ["__smoke__"]}
if not any(h.startswith("Authorization: Bearer ") for h in headers):
    code, body = 401, "unauthenticated"
elif url.endswith("/healthz"):
    code = int(os.environ.get("FAKE_HEALTHZ", "200"))
    body = "ok" if code == 200 else "no model loaded"
else:
    code, body = 200, json.dumps(answer)
if out:
    with open(out, "w") as f:
        f.write(body)
print(code, end="")
'''


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("terraform", FAKE_TERRAFORM), ("gcloud", FAKE_GCLOUD),
                       ("curl", FAKE_CURL), ("sleep", "")):
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{body}")
        path.chmod(0o755)
    (tmp_path / "gcs").mkdir()
    return {"bin": bin_dir, "gcs": tmp_path / "gcs", "log": tmp_path / "calls.jsonl"}


def checkout(tmp_path: Path, name: str) -> Path:
    """A fresh copy of what a build sees: the repository's terraform/ and scripts/."""
    ws = tmp_path / name
    shutil.copytree(ROOT / "terraform", ws / "terraform",
                    ignore=shutil.ignore_patterns(".terraform", "*.tfplan", "tfplan"))
    shutil.copytree(ROOT / "scripts" / "release", ws / "scripts" / "release")
    return ws


def run(ws: Path, tools: dict[str, Path], *args: str, ok: bool = True, **extra: str
        ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{tools['bin']}:{os.environ['PATH']}",
           "FAKE_GCS": str(tools["gcs"]), "FAKE_LOG": str(tools["log"]), **extra}
    proc = subprocess.run(["sh", "scripts/release/pipeline.sh", *args], cwd=ws, env=env,
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode == 0) is ok, (args, proc.stdout, proc.stderr)
    return proc


def calls(tools: dict[str, Path], tool: str) -> list[dict]:
    if not tools["log"].exists():
        return []
    return [c for c in map(json.loads, tools["log"].read_text().splitlines())
            if c["tool"] == tool]


def project(env: str) -> str:
    text = (ROOT / "terraform" / "environments" / env / "terraform.tfvars").read_text()
    return re.search(r'^project_id\s*=\s*"([^"]+)"', text, re.M).group(1)


#: What a staging refresh that prepare answered with 200 leaves (pipeline.sh refresh).
REFRESHED = "passed\nrefresh 2026-12-07T10:00:00Z HTTP 200\n"

#: The function zips as Terraform writes them (functions.tf: build/bundles/<project>-<name>.zip).
ZIPS = {"predict": b"predict zip bytes", "prepare": b"prepare zip bytes"}


def write_zips(ws: Path, env: str, zips: dict[str, bytes] = ZIPS) -> None:
    """The zips ``terraform plan`` writes for ``env`` (the stand-in terraform writes none)."""
    (ws / "build" / "bundles").mkdir(parents=True, exist_ok=True)
    for name, data in zips.items():
        (ws / "build" / "bundles" / f"{project(env)}-{name}.zip").write_bytes(data)


def pass_staging(tmp_path: Path, tools: dict[str, Path], zips: dict[str, bytes] = ZIPS) -> None:
    """Staging's last step for COMMIT, after a smoke test that scored a request."""
    staging = checkout(tmp_path, "staging")
    write_zips(staging, "staging", zips)
    (staging / "smoke_result").write_text("passed\n")
    (staging / "refresh_result").write_text(REFRESHED)
    run(staging, tools, "mark-passed", project("staging"), COMMIT, "build-1", "smoke_result",
        "refresh_result")


def plan_release(tmp_path: Path, tools: dict[str, Path], tag: str = "v1.4.0") -> Path:
    """Stage 1 as cloudbuild-release-plan.yaml runs it, after staging passed COMMIT."""
    pass_staging(tmp_path, tools)
    ws = checkout(tmp_path, "plan")
    run(ws, tools, "check-passed", project("staging"), COMMIT)
    run(ws, tools, "init", "prod", project("prod"))
    run(ws, tools, "validate")
    shown = run(ws, tools, "plan", "prod").stdout
    assert "Plan: 0 to add, 1 to change" in shown  # the plan text is in the build log
    write_zips(ws, "prod")
    run(ws, tools, "check-sources", project("staging"), COMMIT, project("prod"))
    run(ws, tools, "bundle", tag, COMMIT)
    run(ws, tools, "publish", project("prod"), tag)
    run(ws, tools, "request-apply", project("prod"), tag, "irt-prod-apply")
    return ws


def test_prod_applies_exactly_the_saved_plan_of_a_commit_that_passed_staging(
        tmp_path: Path, tools: dict[str, Path]) -> None:
    planned = plan_release(tmp_path, tools)
    releases = tools["gcs"] / f"{project('prod')}-releases" / "v1.4.0"
    assert (releases / "plan.txt").read_text().startswith("  # google_cloudfunctions2_function")
    (trigger,) = [c["args"] for c in calls(tools, "gcloud") if c["args"][:3] == ["builds",
                                                                                  "triggers",
                                                                                  "run"]]
    assert trigger[3] == "irt-prod-apply" and "--tag=v1.4.0" in trigger
    subs = dict(kv.split("=", 1) for kv in
                next(a for a in trigger if a.startswith("--substitutions=")).split("=", 1)[1]
                .split(","))
    assert subs["_RELEASE"] == f"gs://{project('prod')}-releases/v1.4.0/release.tgz"
    assert subs["_RELEASE_SHA256"] == (releases / "release.sha256").read_text().strip()
    assert subs["_ALLOW_NO_MODEL"] == "false"

    # stage 2, after approval, in a fresh checkout of the same commit
    tools["log"].unlink()
    ws = checkout(tmp_path, "apply")
    run(ws, tools, "fetch", subs["_RELEASE"], subs["_RELEASE_SHA256"], COMMIT)
    run(ws, tools, "init", "prod", project("prod"))
    run(ws, tools, "apply")
    terraform = [c["args"] for c in calls(tools, "terraform")]
    assert [a[0] for a in terraform] == ["init", "apply", "output", "output", "output"]  # no plan
    assert terraform[1][-1] == "tfplan"
    plan = ws / "terraform" / "irt" / "tfplan"
    assert plan.read_bytes() == (planned / "terraform" / "irt" / "tfplan").read_bytes()
    assert (ws / "build" / "bundles" / f"{project('prod')}-predict.zip").read_bytes() == \
        ZIPS["predict"]
    assert (ws / "predict_url").read_text() == "https://irt-predict.example.run.app"
    assert (ws / "model_pointer").read_text() == "gs://irt-models/models/LATEST"


def test_a_commit_that_did_not_pass_staging_is_not_released(
        tmp_path: Path, tools: dict[str, Path]) -> None:
    ws = checkout(tmp_path, "plan")
    err = run(ws, tools, "check-passed", project("staging"), COMMIT, ok=False).stderr
    assert f"commit {COMMIT} has not passed staging" in err
    assert "no COMMIT_SHA" in run(ws, tools, "check-passed", project("staging"), "",
                                  ok=False).stderr
    # a build by hand (gcloud builds submit: no COMMIT_SHA) passes but records nothing
    assert "not recorded" in run(ws, tools, "mark-passed", project("staging"), "", "b").stdout
    assert not list(tools["gcs"].rglob("*"))
    (ws / "smoke_result").write_text("passed\n")
    (ws / "refresh_result").write_text(REFRESHED)
    write_zips(ws, "staging")
    run(ws, tools, "mark-passed", project("staging"), COMMIT, "build-7", "smoke_result",
        "refresh_result")
    run(ws, tools, "check-passed", project("staging"), COMMIT)
    run(ws, tools, "check-passed", project("staging"), "f" * 40, ok=False)


def test_only_a_smoke_test_that_scored_a_request_marks_the_commit_passed(
        tmp_path: Path, tools: dict[str, Path]) -> None:
    """The deployment audit: with ``_ALLOW_NO_MODEL=true`` the smoke test accepted any 503 and
    the staging build then recorded the commit as passed, releasable to prod without predict
    ever having answered. Now a 503 is let through only while the model bucket has no
    ``models/LATEST`` (a first deploy), the smoke test says so in ``smoke_result``, and
    ``mark-passed`` records a commit only when the smoke test scored a request."""
    ws = checkout(tmp_path, "staging")
    write_zips(ws, "staging")
    (ws / "refresh_result").write_text(REFRESHED)
    url, pointer = "https://irt-predict.example.run.app", "gs://irt-models/models/LATEST"
    staging = project("staging")
    passed = tools["gcs"] / f"{staging}-releases" / "passed" / COMMIT

    def smoke(allow: str, healthz: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return run(ws, tools, "smoke", url, allow, pointer, ok=ok, FAKE_HEALTHZ=healthz)

    # no model yet, first deploy: the 503 is let through, the commit is not recorded
    out = smoke("true", "503")
    assert "no model published yet" in out.stdout
    assert (ws / "smoke_result").read_text() == "no-model\n"
    err = run(ws, tools, "mark-passed", staging, COMMIT, "b1", "smoke_result",
              "refresh_result", ok=False).stderr
    assert "not recorded as passed" in err and not passed.exists()
    run(ws, tools, "check-passed", staging, COMMIT, ok=False)
    # a model is published (LATEST exists) but predict answers 503: a failure, allowed or not
    latest = tools["gcs"] / "irt-models" / "models" / "LATEST"
    latest.parent.mkdir(parents=True)
    latest.write_text("v7")
    for allow in ("true", "false"):
        assert "predict is not healthy" in smoke(allow, "503", ok=False).stderr
        assert not (ws / "smoke_result").exists()
        run(ws, tools, "mark-passed", staging, COMMIT, "b2", "smoke_result", "refresh_result",
            ok=False)
    assert not passed.exists()
    # without ALLOW_NO_MODEL a 503 fails even with an empty bucket
    latest.unlink()
    assert "predict is not healthy" in smoke("false", "503", ok=False).stderr
    # predict answers: the smoke test scored a request, the commit is recorded
    for allow in ("true", "false"):
        assert "smoke test passed: model v7" in smoke(allow, "200").stdout
        assert (ws / "smoke_result").read_text() == "passed\n"
    run(ws, tools, "mark-passed", staging, COMMIT, "b3", "smoke_result", "refresh_result")
    assert passed.read_text().startswith("build b3\n")
    run(ws, tools, "check-passed", staging, COMMIT)
    # no smoke result at all (the step did not run): not recorded
    (ws / "smoke_result").unlink()
    run(ws, tools, "mark-passed", staging, "f" * 40, "b4", "smoke_result", "refresh_result",
        ok=False)
    # the builds pass the pointer to the smoke test and its result to mark-passed
    for name in ("staging", "apply"):
        (smoke_step,) = [s for s in config(name)["steps"] if s["id"] == "smoke"]
        assert smoke_step["args"][-1].endswith(
            'smoke "$$(cat predict_url)" "${_ALLOW_NO_MODEL}" "$$(cat model_pointer)"'), name
    assert pipeline_commands(config("staging"))["passed"][1:] == [
        "$PROJECT_ID", "$COMMIT_SHA", "$BUILD_ID", "smoke_result", "refresh_result"]


def test_apply_refuses_any_bundle_but_the_approved_one(
        tmp_path: Path, tools: dict[str, Path]) -> None:
    plan_release(tmp_path, tools)
    uri = f"gs://{project('prod')}-releases/v1.4.0/release.tgz"
    sha = (tools["gcs"] / f"{project('prod')}-releases/v1.4.0/release.sha256").read_text().strip()
    ws = checkout(tmp_path, "apply")
    err = run(ws, tools, "fetch", uri, "0" * 64, COMMIT, ok=False).stderr
    assert "the approved one is" in err
    err = run(ws, tools, "fetch", uri, sha, "e" * 40, ok=False).stderr
    assert "planned for another commit" in err
    err = run(ws, tools, "fetch", uri, "", COMMIT, ok=False).stderr
    assert "_RELEASE_SHA256 are required" in err
    # a replaced bundle (same name, other bytes) no longer matches the approved digest
    tgz = tools["gcs"] / f"{project('prod')}-releases/v1.4.0/release.tgz"
    tgz.write_bytes(tgz.read_bytes() + b"\0")
    assert "the approved one is" in run(ws, tools, "fetch", uri, sha, COMMIT, ok=False).stderr


JOB_ID = "projects/irt-staging/locations/europe-west1/jobs/irt-refresh"
ATTEMPT_FINISHED = "type.googleapis.com/google.cloud.scheduler.logging.AttemptFinished"


@pytest.mark.parametrize("attempt, ok, says", [
    ("INFO\t200\t", True, "prepare ran in staging: HTTP 200"),
    ("ERROR\t422\tINVALID_ARGUMENT", False, "prepare failed in staging"),
    ("ERROR\t\tDEADLINE_EXCEEDED", False, "DEADLINE_EXCEEDED"),
    ("INFO\t302\t", False, "without a 2xx"),
    ("", False, "no finished refresh attempt"),
])
def test_staging_runs_prepare_once_before_the_commit_is_marked_passed(
        tmp_path: Path, tools: dict[str, Path], attempt: str, ok: bool, says: str) -> None:
    """The deployment audit: the staging build smoke-tested predict only; prepare, the other
    half of the service, reached prod without having run once on the commit's code. Staging
    now runs the refresh job once (as the schedule would: the scheduler's OIDC token, since
    prepare's ingress is internal) and waits, bounded, for the attempt's AttemptFinished log
    line; mark-passed requires its 2xx as it requires the smoke test's."""
    ws = checkout(tmp_path, "staging")
    write_zips(ws, "staging")
    (ws / "smoke_result").write_text("passed\n")
    proc = run(ws, tools, "refresh", JOB_ID, "smoke_result", "60", "15", ok=ok,
               FAKE_REFRESH=attempt, FAKE_REFRESH_AFTER="2")
    assert says in (proc.stdout + proc.stderr)
    gcloud = [c["args"] for c in calls(tools, "gcloud")]
    assert gcloud[0] == ["scheduler", "jobs", "run", "irt-refresh", "--location=europe-west1",
                         "--project=irt-staging"]
    reads = [a for a in gcloud if a[:2] == ["logging", "read"]]
    assert 3 <= len(reads) <= 5  # polled until the line came, at most TIMEOUT / EVERY + 1
    assert 'resource.labels.job_id="irt-refresh"' in reads[0][2]
    assert f'jsonPayload."@type"="{ATTEMPT_FINISHED}"' in reads[0][2]
    assert re.search(r'timestamp>="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"', reads[0][2])
    passed = tools["gcs"] / f"{project('staging')}-releases" / "passed" / COMMIT
    marked = run(ws, tools, "mark-passed", project("staging"), COMMIT, "b", "smoke_result",
                 "refresh_result", ok=ok)
    assert passed.exists() is ok
    if ok:
        assert "HTTP 200" in passed.read_text().splitlines()[1]
    else:
        assert "prepare did not run successfully in staging" in marked.stderr


def test_a_first_deploy_without_a_model_skips_the_refresh_and_is_not_recorded(
        tmp_path: Path, tools: dict[str, Path]) -> None:
    """_ALLOW_NO_MODEL as before: a deploy whose smoke test was let through on a 503 (no model
    yet) is not recorded as passed; the refresh step does not run prepare then (the first
    refresh is run by hand, README Operations) and says so."""
    ws = checkout(tmp_path, "staging")
    write_zips(ws, "staging")
    (ws / "smoke_result").write_text("no-model\n")
    out = run(ws, tools, "refresh", JOB_ID, "smoke_result", "60", "15").stdout
    assert "refresh skipped" in out and (ws / "refresh_result").read_text() == "skipped\n"
    assert not calls(tools, "gcloud")
    run(ws, tools, "mark-passed", project("staging"), COMMIT, "b", "smoke_result",
        "refresh_result", ok=False)
    # a smoke test that passed without a refresh record is not enough either
    (ws / "smoke_result").write_text("passed\n")
    err = run(ws, tools, "mark-passed", project("staging"), COMMIT, "b", "smoke_result",
              "refresh_result", ok=False).stderr
    assert "prepare did not run successfully" in err
    (ws / "refresh_result").unlink()
    run(ws, tools, "mark-passed", project("staging"), COMMIT, "b", "smoke_result", ok=False)
    assert not (tools["gcs"] / f"{project('staging')}-releases").exists()


def test_the_refresh_step_waits_long_enough_and_the_build_outlasts_it() -> None:
    """The refresh waits for prepare's whole timeout plus the scheduler's margin (a slower
    run fails the step); the build's own timeout covers that, the test record's wait and a
    first apply (~15 min)."""
    from tfconfig import locals_
    cfg = config("staging")
    subs = cfg["substitutions"]
    margin = int(locals_()["scheduler_deadline_margin_seconds"])
    assert int(subs["_REFRESH_TIMEOUT"]) >= tfvars_value("staging",
                                                         "prepare_timeout_seconds") + margin
    build = int(cfg["timeout"].removesuffix("s"))
    assert build >= int(subs["_TESTED_TIMEOUT"]) + int(subs["_REFRESH_TIMEOUT"]) + 15 * 60
    steps = {s["id"]: s for s in cfg["steps"]}
    assert steps["refresh"]["waitFor"] == ["smoke"] and steps["passed"]["waitFor"] == ["refresh"]
    assert steps["refresh"]["args"][-1].endswith(
        'refresh "$$(cat scheduler_job_id)" smoke_result "${_REFRESH_TIMEOUT}"')


def tfvars_value(env: str, name: str) -> int:
    text = (ROOT / "terraform" / "environments" / env / "terraform.tfvars").read_text()
    return int(re.search(rf"^{name}\s*=\s*(\d+)", text, re.M).group(1))


def sha256(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


def test_staging_records_the_sha256_of_the_zips_it_deployed(
        tmp_path: Path, tools: dict[str, Path]) -> None:
    """The deployment audit: staging's passed record named the build only, so prod rebuilt the
    functions from the commit and deployed whatever that gave. The record now holds the
    sha256 of each zip staging deployed (the hash its object name carries, functions.tf)."""
    pass_staging(tmp_path, tools)
    record = tools["gcs"] / f"{project('staging')}-releases" / "passed" / COMMIT
    assert record.read_text() == ("build build-1\n"
                                  "refresh 2026-12-07T10:00:00Z HTTP 200\n"
                                  f"source predict {sha256(ZIPS['predict'])}\n"
                                  f"source prepare {sha256(ZIPS['prepare'])}\n")
    # no zips (no plan ran in this workspace): nothing is recorded
    ws = checkout(tmp_path, "nozips")
    (ws / "smoke_result").write_text("passed\n")
    (ws / "refresh_result").write_text(REFRESHED)
    err = run(ws, tools, "mark-passed", project("staging"), "f" * 40, "b", "smoke_result",
              "refresh_result", ok=False).stderr
    assert "no function zips" in err
    assert not (record.parent / ("f" * 40)).exists()


@pytest.mark.parametrize("change", ["other bytes", "missing function", "extra function",
                                    "old record"])
def test_prod_refuses_zips_other_than_those_that_passed_staging(
        tmp_path: Path, tools: dict[str, Path], change: str) -> None:
    """The deployment audit: prod rebuilt from source; a rebuild that differs (another
    Python, a changed vendoring, a tampered checkout) was released unchecked. The plan build
    now refuses unless its zips have exactly the sha256 staging recorded, and the bundle's
    manifest carries them so that the apply build checks them again after the download."""
    pass_staging(tmp_path, tools)
    ws = checkout(tmp_path, "plan")
    zips = dict(ZIPS)
    if change == "other bytes":
        zips["predict"] = b"rebuilt predict"
    elif change == "missing function":
        del zips["prepare"]
    elif change == "extra function":
        zips["report"] = b"new function"
    else:  # staging recorded the commit before it recorded zips
        record = tools["gcs"] / f"{project('staging')}-releases" / "passed" / COMMIT
        record.write_text("build build-1\n")
    write_zips(ws, "prod", zips)
    proc = run(ws, tools, "check-sources", project("staging"), COMMIT, project("prod"), ok=False)
    if change == "old record":
        assert "names no function zips" in proc.stderr and "run staging's build" in proc.stderr
    else:
        assert "not the ones that passed staging" in proc.stderr
        assert f"predict {sha256(ZIPS['predict'])}" in proc.stderr
    # the same zips pass; another commit, never passed, does not
    write_zips(ws, "prod")
    if change != "old record":
        for name in set(zips) - set(ZIPS):
            (ws / "build" / "bundles" / f"{project('prod')}-{name}.zip").unlink()
        out = run(ws, tools, "check-sources", project("staging"), COMMIT, project("prod")).stdout
        assert f"prepare {sha256(ZIPS['prepare'])}" in out
    err = run(ws, tools, "check-sources", project("staging"), "e" * 40, project("prod"),
              ok=False).stderr
    assert "has not passed staging" in err


def test_apply_refuses_a_bundle_whose_zips_were_altered(
        tmp_path: Path, tools: dict[str, Path]) -> None:
    """The bundle's manifest holds the zips' sha256 (checked against staging's at plan time):
    a bundle repacked with another zip is refused even under a digest that matches it."""
    import tarfile
    planned = plan_release(tmp_path, tools)
    manifest = (planned / "terraform" / "irt" / "MANIFEST").read_text()
    assert f"{sha256(ZIPS['predict'])}  build/bundles/{project('prod')}-predict.zip" in manifest
    zip_path = planned / "build" / "bundles" / f"{project('prod')}-predict.zip"
    zip_path.write_bytes(b"tampered")
    forged = tools["gcs"] / "forged.tgz"
    with tarfile.open(forged, "w:gz") as tar:
        for top in ("terraform", "build/bundles"):
            tar.add(planned / top, arcname=top)
    ws = checkout(tmp_path, "apply")
    err = run(ws, tools, "fetch", "gs://forged.tgz", sha256(forged.read_bytes()), COMMIT,
              ok=False).stderr
    assert "bundle contents altered" in err


def test_a_state_under_the_old_shared_prefix_is_refused_until_migrated(
        tmp_path: Path, tools: dict[str, Path]) -> None:
    """The state prefix is the environment's own now (``irt/<env>``, it was ``irt`` in both):
    a project whose state is still under ``irt`` would otherwise plan to create every
    resource anew. The builds refuse it, naming the one-time migration; a first deploy (no
    state anywhere) and a migrated state go on."""
    ws = checkout(tmp_path, "state")
    for env in ("staging", "prod"):
        bucket = tools["gcs"] / f"{project(env)}-tfstate"
        assert "a first deploy" in run(ws, tools, "check-state", env, project(env)).stdout
        legacy = bucket / "irt" / "default.tfstate"
        legacy.parent.mkdir(parents=True)
        legacy.write_text("{}")
        err = run(ws, tools, "check-state", env, project(env), ok=False).stderr
        assert "init -migrate-state" in err and f"gs://{project(env)}-tfstate/irt/" in err
        own = bucket / "irt" / env / "default.tfstate"
        own.parent.mkdir(parents=True)
        own.write_text("{}")
        assert f"irt/{env}/default.tfstate" in run(ws, tools, "check-state", env,
                                                   project(env)).stdout
    other = run(ws, tools, "check-state", "prod", project("staging"), ok=False).stderr
    assert "names state bucket" in other
    # a backend.hcl put back to the shared prefix is refused outright
    hcl = ws / "terraform" / "environments" / "staging" / "backend.hcl"
    hcl.write_text(re.sub(r'^prefix = .*$', 'prefix = "irt"', hcl.read_text(), flags=re.M))
    err = run(ws, tools, "check-state", "staging", project("staging"), ok=False).stderr
    assert "own prefix" in err
    # both builds that plan check the state before init
    for name in ("staging", "plan"):
        commands = pipeline_commands(config(name))
        assert commands["state"] == ["check-state", "${_ENV}", "$PROJECT_ID"], name
        assert "state" in upstream(config(name), "init"), name


def test_apply_without_a_saved_plan_does_nothing(tmp_path: Path,
                                                 tools: dict[str, Path]) -> None:
    ws = checkout(tmp_path, "apply")
    assert "apply runs a reviewed plan only" in run(ws, tools, "apply", ok=False).stderr
    assert not calls(tools, "terraform")


def test_init_refuses_the_state_or_tfvars_of_another_project(
        tmp_path: Path, tools: dict[str, Path]) -> None:
    """#14, defect 5: each project keeps its state in its own bucket; a staging build cannot be
    pointed at prod's state (or the reverse) by a substitution."""
    ws = checkout(tmp_path, "init")
    err = run(ws, tools, "init", "prod", project("staging"), ok=False).stderr
    assert f"this build's project {project('staging')} keeps its state in" in err
    assert not calls(tools, "terraform")
    run(ws, tools, "init", "staging", project("staging"))
    (init,) = [c["args"] for c in calls(tools, "terraform")]
    assert "-backend-config=../environments/staging/backend.hcl" in init


# --------------------------------------------------------------------------- the YAML
def config(name: str) -> dict:
    return yaml.safe_load((ROOT / CONFIGS[name]).read_text())


def pipeline_commands(cfg: dict) -> dict[str, list[str]]:
    """step id -> the pipeline.sh command line it runs."""
    out = {}
    for step in cfg["steps"]:
        words = " ".join(step.get("args", [])).split()
        if "scripts/release/pipeline.sh" in words:
            out[step["id"]] = words[words.index("scripts/release/pipeline.sh") + 1:]
    return out


def upstream(cfg: dict, step_id: str) -> set[str]:
    steps = {s["id"]: s for s in cfg["steps"]}
    seen, todo = set(), [step_id]
    while todo:
        for dep in steps[todo.pop()].get("waitFor", []):
            if dep != "-" and dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_release_configs_plan_then_apply_the_saved_plan_only() -> None:
    script = SCRIPT.read_text()
    known = set(re.findall(r"^  ([a-z-]+)\)$", script, re.M))
    for name in CONFIGS:
        cfg = config(name)
        assert all("waitFor" in s for s in cfg["steps"]), name
        for step, command in pipeline_commands(cfg).items():
            assert command[0] in known, (name, step, command)
    plan = pipeline_commands(config("plan"))
    assert plan["staging-passed"][:2] == ["check-passed", "${_STAGING_PROJECT}"]
    for step in ("init", "plan", "bundle", "publish", "request-apply"):
        assert "staging-passed" in upstream(config("plan"), step), step
    # the zips are checked against staging's record after the plan made them, before the bundle
    assert plan["staging-sources"] == ["check-sources", "${_STAGING_PROJECT}", "$COMMIT_SHA",
                                       "$PROJECT_ID"]
    assert "plan" in upstream(config("plan"), "staging-sources")
    assert "staging-sources" in upstream(config("plan"), "bundle")
    assert {"plan", "bundle", "publish"} <= upstream(config("plan"), "request-apply")
    apply = pipeline_commands(config("apply"))
    assert [c[0] for c in apply.values()] == ["fetch", "init", "apply", "smoke"]
    assert apply["fetch"][1:] == ["${_RELEASE}", "${_RELEASE_SHA256}", "$COMMIT_SHA"]
    for step in config("apply")["steps"]:  # nothing in stage 2 plans anew
        assert "plan" not in step.get("args", []), step["id"]
    staging = pipeline_commands(config("staging"))
    assert [c[0] for c in staging.values()] == ["wait-tested", "check-state", "init",
                                                "validate", "plan", "apply", "smoke",
                                                "refresh", "mark-passed"]
    for step in ("build", "plan", "apply", "passed"):
        assert "tested" in upstream(config("staging"), step), step
    assert "smoke" in upstream(config("staging"), "passed")
    assert config("staging")["substitutions"]["_ENV"] == "staging"
    assert config("plan")["substitutions"]["_ENV"] == "prod"


def test_every_shell_variable_is_escaped_in_the_yaml() -> None:
    """In Cloud Build ``$X`` is a substitution: shell variables are written ``$$X``; only the
    user substitutions ``$_X`` and the built-ins below may appear unescaped."""
    builtins = {"PROJECT_ID", "COMMIT_SHA", "BUILD_ID", "TAG_NAME"}
    for name in CONFIGS:
        text = (ROOT / CONFIGS[name]).read_text()
        for m in re.finditer(r"(?<!\$)\$(?!\$|_|\{_)\{?([A-Za-z(][A-Za-z_]*)", text):
            assert m.group(1) in builtins, (name, m.group(0))


# --------------------------------------------------------------------------- issue 17 item 16
DIGEST = re.compile(r"^[a-z0-9.\-/]+(:[\w.\-]+)?@sha256:[0-9a-f]{64}$")


def step_images(cfg: dict) -> dict[str, str]:
    """step id -> its image, ``${_X}`` substitutions resolved from the file's defaults."""
    subs = cfg.get("substitutions", {})
    return {s["id"]: re.sub(r"\$\{(_[A-Z_]+)\}|\$(_[A-Z_]+)",
                            lambda m: subs[m.group(1) or m.group(2)], s["name"])
            for s in cfg["steps"]}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_step_image_is_pinned_by_digest(name: str) -> None:
    """Issue 17 item 16: the builds ran ``python:3.12-slim``, ``hashicorp/terraform:1.9.8`` and
    ``cloud-sdk:slim`` by tag, which the registry can point at other bytes at any time."""
    images = step_images(config(name))
    assert images
    for step, image in images.items():
        assert DIGEST.match(image), f"{CONFIGS[name]} step {step}: {image} is not pinned by digest"


def test_the_same_images_everywhere() -> None:
    subs = [{k: v for k, v in config(n)["substitutions"].items() if k.endswith("_IMAGE")}
            for n in CONFIGS]
    assert all(s == subs[0] for s in subs) and set(subs[0]) == {"_PY_IMAGE", "_TF_IMAGE",
                                                                "_SDK_IMAGE"}


#: Builds run as a deploy account (the test build runs as the test account).
DEPLOY_BUILDS = ("staging", "plan", "apply")
#: Builds run as the read-only planner account (README, Operations; terraform/README.md).
PLANNER_BUILDS = ("pr",)
#: What installs a package: pip in any form, uv, apt, npm.
INSTALLS = re.compile(r"\bpip3? install\b|-m pip\b|\buv (?:pip|sync|add|tool)\b"
                      r"|\bapt(?:-get)? install\b|\bnpm (?:install|ci)\b")


def makefile_rules() -> dict[str, tuple[list[str], list[str]]]:
    """target -> (prerequisites, recipe lines) of the Makefile, its variables expanded."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    names = dict(re.findall(r"^([A-Z_]+)\s*[:?]?=\s*(.*)$", text, re.M))

    def expand(value: str) -> str:
        for _ in range(5):
            value = re.sub(r"\$\(([A-Z_]+)\)", lambda m: names.get(m.group(1), ""), value)
        return value

    rules: dict[str, tuple[list[str], list[str]]] = {}
    target = None
    for line in text.splitlines():
        if line.startswith("\t") and target is not None:
            rules[target][1].append(expand(line.strip()))
        elif m := re.match(r"^([^\s#:=][^:=]*):(?!=)(.*)$", line):
            target = expand(m.group(1).strip())
            rules[target] = (expand(m.group(2)).split(), [])
        elif not line.startswith("#"):
            target = None
    return rules


def make_recipes(command: str, rules: dict[str, tuple[list[str], list[str]]]) -> list[str]:
    """Every recipe line ``make TARGET...`` in ``command`` would run: the targets, their
    prerequisites (files made by a rule, e.g. the venv stamp), and any ``$(MAKE) X`` inside."""
    todo = [t for m in re.finditer(r"\bmake((?:\s+[\w.-]+)*)", command)
            for t in m.group(1).split()] if re.search(r"\bmake\b", command) else []
    if re.search(r"\bmake\s*(?:$|[;&|])", command):
        # the default goal: the first target not starting with "." unless it holds a "/"
        todo.append(next(t for t in rules if not t.startswith(".") or "/" in t))
    seen: set[str] = set()
    lines: list[str] = []
    while todo:
        target = todo.pop()
        if target in seen or target not in rules:
            continue
        seen.add(target)
        prereqs, recipe = rules[target]
        todo.extend(prereqs)
        lines.extend(recipe)
        for line in recipe:
            todo.extend(t for m in re.finditer(r"\$\(MAKE\)((?:\s+[\w.-]+)*)", line)
                        for t in m.group(1).split())
    return lines


def installs(command: str, rules: dict[str, tuple[list[str], list[str]]]) -> list[str]:
    """The parts of a step's command, directly or through the make targets it calls, that
    install packages."""
    return [line for line in [command, *make_recipes(command, rules)] if INSTALLS.search(line)]


def step_command(step: dict) -> str:
    return " ".join([step.get("entrypoint", ""), *map(str, step.get("args", []))]).strip()


def test_installs_are_found_through_make_prerequisites() -> None:
    """Negative controls of the check below: the prod plan build's old perf step (apt-get,
    then ``make perf-release``, whose prerequisite, the venv stamp, pip-installs the dev lock)
    is caught, and so is ``make perf-release`` alone, which names no installer itself - what
    the earlier word search (``"pip install" in text``) let through."""
    rules = makefile_rules()
    assert any("pip install" in line for line in rules[".venv/.installed"][1])
    old = ("bash -c apt-get update -qq && apt-get install -y -qq make wrk >/dev/null && "
           "make perf-release")
    assert installs(old, rules)
    indirect = installs("bash -c make perf-release", rules)
    assert indirect and all("make" not in line for line in indirect)
    assert installs("bash -c make tf-check", rules)  # through two stamps
    assert installs("bash -c make", rules)  # the default goal: the venv stamp
    assert not installs("python3 scripts/build_functions.py", rules)
    assert not installs("bash -c make build", rules)  # the standard library only


@pytest.mark.parametrize("name", DEPLOY_BUILDS + PLANNER_BUILDS)
def test_no_build_run_as_a_deploy_account_installs_or_runs_project_code(name: str) -> None:
    """Issue 17 item 16 and the deployment audit: ``make test`` (the suite and ~130
    third-party packages) ran as the deploy account, which may change IAM; then the prod plan
    build ran ``make perf-release``, whose prerequisite installs the whole dev lock, as prod's
    deploy account. A build run as a deploy account runs only ``pipeline.sh`` commands,
    ``terraform fmt`` and the standard-library vendoring script; no step installs a package,
    neither itself nor through a make target (prerequisites followed), and the ``pipeline.sh``
    commands it runs install nothing either. The suite and the performance check run in
    cloudbuild-test.yaml, as the test account (terraform/irt/iam.tf,
    tests/deploy/test_terraform.py). The plan-only build, run as the planner, follows the same
    rule: its account reads the state and every managed resource."""
    rules = makefile_rules()
    script = SCRIPT.read_text()
    branches = dict(re.findall(r"^  ([a-z-]+)\)\n(.*?)^    ;;$", script, re.M | re.S))
    for step in config(name)["steps"]:
        command = step_command(step)
        assert not installs(command, rules), (CONFIGS[name], step["id"], installs(command,
                                                                                  rules))
        args = [str(a) for a in step.get("args", [])]
        words = " ".join(args).split()
        if "scripts/release/pipeline.sh" in words:
            sub = words[words.index("scripts/release/pipeline.sh") + 1]
            code = re.sub(r'"[^"]*"', '""', branches[sub])  # its messages aside
            assert not INSTALLS.search(code), (sub, code)
            assert not re.search(r"\bmake\b|pytest|bench", code), (sub, code)
            assert not re.search(r"\bmake\b|pytest|bench", command), (name, step["id"])
        else:
            assert args in (["scripts/build_functions.py"],
                            ["fmt", "-check", "-recursive", "terraform"]), \
                (CONFIGS[name], step["id"], command)


def test_the_suite_and_the_performance_check_run_as_the_test_account() -> None:
    test = config("test")
    steps = {s["id"]: s for s in test["steps"]}
    assert "make test" in steps["test"]["args"][-1]
    assert "make perf-release" in steps["perf"]["args"][-1]
    assert pipeline_commands(test)["record"][:2] == ["mark-tested", "$PROJECT_ID"]
    assert {"test", "perf"} <= upstream(test, "record")
    assert test["options"]["logging"] == "CLOUD_LOGGING_ONLY"


def test_deploy_goes_on_only_after_its_commit_passed_the_test_build(
        tmp_path: Path, tools: dict[str, Path]) -> None:
    ws = checkout(tmp_path, "ws")
    staging = project("staging")
    # no record yet: the deploy waits, then gives up
    out = run(ws, tools, "wait-tested", staging, COMMIT, "0", "0", ok=False)
    assert "no test record" in out.stderr
    # the test build failed: recorded, the test build fails, the deploy refuses
    (ws / "test_status").write_text("2\n")
    (ws / "perf_status").write_text("0\n")
    err = run(ws, tools, "mark-tested", staging, COMMIT, "build-7", "test_status",
              "perf_status", ok=False).stderr
    assert "test_status=2" in err and "perf_status" not in err
    record = tools["gcs"] / f"{staging}-releases" / "tested" / COMMIT
    assert record.read_text() == "status failed\nbuild build-7\ntest_status 2\nperf_status 0\n"
    out = run(ws, tools, "wait-tested", staging, COMMIT, "0", "0", ok=False)
    assert "failed its tests" in out.stderr
    # the tests passed but the performance check found a regression (or did not run): the
    # same, a commit that regressed is neither deployed nor released
    (ws / "test_status").write_text("0\n")
    for perf in ("1\n", None):
        if perf is None:
            (ws / "perf_status").unlink()
        else:
            (ws / "perf_status").write_text(perf)
        err = run(ws, tools, "mark-tested", staging, COMMIT, "build-8", "test_status",
                  "perf_status", ok=False).stderr
        assert "perf_status=" in err and "test_status" not in err
        assert record.read_text().startswith("status failed\n")
        run(ws, tools, "wait-tested", staging, COMMIT, "0", "0", ok=False)
    # a re-run passed both: the record is replaced and the deploy goes on
    (ws / "perf_status").write_text("0\n")
    run(ws, tools, "mark-tested", staging, COMMIT, "build-9", "test_status", "perf_status")
    assert record.read_text() == "status passed\nbuild build-9\ntest_status 0\nperf_status 0\n"
    assert "passed its tests" in run(ws, tools, "wait-tested", staging, COMMIT, "0", "0").stdout
    # another commit is not covered by this one's record
    run(ws, tools, "wait-tested", staging, "f" * 40, "0", "0", ok=False)


def test_pin_images_resolves_each_tag_to_its_digest(tmp_path: Path) -> None:
    """scripts/release/pin_images.sh against a stand-in ``crane`` that knows two digests."""
    ws = tmp_path / "ws"
    (ws / "scripts").mkdir(parents=True)
    shutil.copytree(ROOT / "scripts" / "release", ws / "scripts" / "release")
    for name in CONFIGS.values():
        shutil.copy(ROOT / name, ws / name)
    images = {k: v.split("@")[0] for k, v in config("staging")["substitutions"].items()
              if k.endswith("_IMAGE")}
    new = {ref: "sha256:" + f"{k:x}" * 64 for k, ref in enumerate(sorted(images.values()), 10)}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    crane = bin_dir / "crane"
    crane.write_text(f"#!{sys.executable}\nimport sys\nprint({new!r}[sys.argv[2]])\n")
    crane.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    def pin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "scripts/release/pin_images.sh", *args], cwd=ws, env=env,
                              capture_output=True, text=True, timeout=60)

    assert pin("--check").returncode == 1  # the tags "moved": --check changes nothing
    assert (ws / "cloudbuild.yaml").read_text() == (ROOT / "cloudbuild.yaml").read_text()
    assert pin().returncode == 0
    for name in CONFIGS.values():
        cfg = yaml.safe_load((ws / name).read_text())
        for key, ref in images.items():
            assert cfg["substitutions"][key] == f"{ref}@{new[ref]}", (name, key)
    checked = pin("--check")
    assert checked.returncode == 0 and checked.stdout.count("(unchanged)") == 3 * len(CONFIGS)


# --------------------------------------------------------------------------- the planner
#: The pipeline commands the read-only planner account can run: they read, never write.
READ_ONLY_COMMANDS = {"check-state", "init", "validate", "plan-readonly"}


def test_the_plan_only_build_reads_and_writes_nothing(tmp_path: Path,
                                                      tools: dict[str, Path]) -> None:
    """cloudbuild-plan.yaml (pull requests, as irt-planner): every step is a reading command,
    run here in the build's order. Its plan takes no state lock (the gcs backend locks by
    writing an object to the state bucket, which the planner may only read; -lock=false:
    https://developer.hashicorp.com/terraform/cli/commands/plan#lock-false) and saves no plan
    file; nothing is written to Cloud Storage and nothing applied. The deploy builds' plan,
    by contrast, locks and saves the plan it applies."""
    cfg = config("pr")
    commands = pipeline_commands(cfg)
    assert {c[0] for c in commands.values()} == READ_ONLY_COMMANDS
    assert cfg["substitutions"]["_ENV"] == "staging"
    assert cfg["options"]["logging"] == "CLOUD_LOGGING_ONLY"
    assert {"validate", "build"} <= upstream(cfg, "plan")
    ws = checkout(tmp_path, "pr")
    subs = {"${_ENV}": "staging", "$PROJECT_ID": project("staging")}
    for step in cfg["steps"]:
        if step["id"] in commands:
            run(ws, tools, *[subs.get(a, a) for a in commands[step["id"]]])
    terraform = [c["args"] for c in calls(tools, "terraform")]
    assert [a[0] for a in terraform] == ["init", "validate", "plan"]
    plan = terraform[-1]
    assert "-lock=false" in plan and "-var-file=../environments/staging/terraform.tfvars" in plan
    assert not [a for a in plan if a.startswith("-out")]
    assert not (ws / "terraform" / "irt" / "tfplan").exists()
    gcloud = [c["args"] for c in calls(tools, "gcloud")]
    assert gcloud and all(a[:3] == ["storage", "objects", "describe"] for a in gcloud), gcloud
    assert not [p for p in tools["gcs"].rglob("*") if p.is_file()]
    # the deploy builds' plan locks the state and saves what it applies
    run(ws, tools, "plan", "staging")
    deploy_plan = calls(tools, "terraform")[-2]["args"]  # then `show`
    assert deploy_plan[0] == "plan" and "-lock=false" not in deploy_plan
    assert "-out=tfplan" in deploy_plan
    run(ws, tools, "plan-readonly", "nowhere", ok=False)


def test_only_the_plan_only_build_runs_as_the_planner() -> None:
    """The planner runs cloudbuild-plan.yaml and no build that applies, records or publishes:
    those stay with the deploy account (terraform/README.md, "The planner account")."""
    for name in CONFIGS:
        used = {c[0] for c in pipeline_commands(config(name)).values()}
        if name in PLANNER_BUILDS:
            assert used <= READ_ONLY_COMMANDS, name
        else:
            assert "plan-readonly" not in used, name
