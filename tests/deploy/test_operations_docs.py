"""What the operator reads and runs: README.md (Operations), terraform/README.md, .gitignore
(#14, defect 6, and the Operations walkthrough).

The commands of the README's Operations section are parsed, not just searched for words: the
roles granted to each deploy account, the flags of every ``gcloud builds`` command, the
triggers, the state buckets.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from tfconfig import CONFIG, ENVS, alert_policies, backend, merged, of_type, tfvars

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def operations() -> str:
    text = README.read_text()
    start = text.index("\n## Operations")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def commands(text: str) -> list[list[str]]:
    """Every command of the ``sh`` blocks, continuation lines joined, as argv lists."""
    out = []
    for block in shell_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" # ")[0].strip()
            if line and not line.startswith("#"):
                for part in re.split(r"\s(?:&&|;)\s", line):
                    out.append(shlex.split(part, comments=True))
    return out


# --------------------------------------------------------------------------- defect 6
def test_git_ignores_saved_plans_and_release_files() -> None:
    """Defect 6: ``plan -out=tfplan`` wrote a file .gitignore did not match (``*.tfplan`` does
    not match ``tfplan``); a saved plan holds every value of the configuration in clear."""
    paths = ["terraform/irt/tfplan", "terraform/irt/plan.txt", "terraform/irt/MANIFEST",
             "release/release.tgz", "predict_url", "passed.txt", "terraform/irt/.terraform/x",
             ".provider-schema/google-6.50.0.json", "terraform/irt/staging.tfplan"]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT,
                          capture_output=True, text=True)
    assert sorted(proc.stdout.split()) == sorted(paths), proc.stdout


def test_terraform_readme_claims_only_steps_that_exist() -> None:
    """Defect 6: terraform/README.md said Cloud Build runs ``terraform validate``; no step did.
    Now every build that initialises Terraform validates before it plans, and the README
    names the offline schema check that ``make test`` runs."""
    text = (ROOT / "terraform" / "README.md").read_text()
    assert "`terraform validate`" in text
    for name in ("cloudbuild.yaml", "cloudbuild-release-plan.yaml"):
        steps = {s["id"]: s for s in yaml.safe_load((ROOT / name).read_text())["steps"]}
        assert steps["validate"]["args"][-1] == "validate", name
        assert "validate" in steps["plan"]["waitFor"], name
    assert "tests/deploy/test_provider_schema.py" in text
    assert "cdktf-cdktf-provider-google==16.12.1" in text
    for path in re.findall(r"`((?:tests|scripts|terraform)/[\w/.-]+)`", text):
        assert (ROOT / path).exists(), path
    # every build step it names exists in that build ("the `test` step of the staging
    # build" named one that cloudbuild.yaml does not have)
    build = r"`(cloudbuild[\w-]*\.yaml)`"
    named = re.findall(rf"step `([\w-]+)`\s+of\s+{build}(?: and {build})?", text)
    assert named
    for step, *files in named:
        for name in filter(None, files):
            ids = {s["id"] for s in yaml.safe_load((ROOT / name).read_text())["steps"]}
            assert step in ids, (step, name)
    assert "staging build" not in re.sub(r"\s+", " ", text)


def test_builds_by_hand_run_as_the_deploy_account() -> None:
    """Defect 6: the README's by-hand build omitted ``--service-account``, so it ran as the
    default Cloud Build account rather than the deploy account the triggers use
    (https://cloud.google.com/build/docs/securing-builds/configure-user-specified-service-accounts;
    a user-specified account needs a logging option, which every config sets)."""
    builds = [c for c in commands(operations()) if c[:3] == ["gcloud", "builds", "submit"]]
    assert builds, "the Operations section shows no by-hand build"
    for argv in builds:
        flags = " ".join(argv)
        assert re.search(r"--service-account[= ]projects/[^/ ]+/serviceAccounts/irt-deployer@",
                         flags), flags
        config = re.search(r"--config[= ](\S+)", flags).group(1)
        assert yaml.safe_load((ROOT / config).read_text())["options"]["logging"] == \
            "CLOUD_LOGGING_ONLY"
    triggers = [c for c in commands(operations())
                if c[:4] == ["gcloud", "builds", "triggers", "create"]]
    assert len(triggers) == 5
    for argv in triggers:
        assert any(a.startswith("--service-account") for a in argv), argv
    # issue 17 item 16: the test build runs as the test account, the plan-only build as the
    # planner, every other as the deployer
    accounts = {"cloudbuild-test.yaml": "irt-tester", "cloudbuild-plan.yaml": "irt-planner"}
    for argv in triggers:
        flags = " ".join(argv)
        account = re.search(r"serviceAccounts/([a-z-]+)@", flags).group(1)
        config = re.search(r"--build-config[= ](\S+)", flags).group(1)
        assert account == accounts.get(config, "irt-deployer"), (config, account)
    assert any("cloudbuild-test.yaml" in " ".join(t) for t in triggers)


# --------------------------------------------------------------------------- deploy account
def project_grants(text: str) -> list[tuple[str, str, str]]:
    """``(member variable, role, condition or "")`` of every project-level grant, those of a
    ``for role in ...; do gcloud projects add-iam-policy-binding ... --role=roles/$role``
    loop included (each role of the loop, with the loop's condition)."""
    out = []
    for block in shell_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for m in re.finditer(r"^for role in ([^;]*); do\n(.*?)^done$", joined, re.M | re.S):
            for argv in commands(f"```sh\n{m.group(2)}```"):
                opts = dict(re.match(r"--([\w-]+)[= ]?(.*)", a).groups() for a in argv
                            if a.startswith("--") and "=" in a)
                assert opts["role"] == "roles/$role", opts
                for role in m.group(1).split():
                    out.append((opts.get("member", ""), f"roles/{role}",
                                "" if opts.get("condition") == "None" else
                                opts.get("condition", "")))
    for argv in commands(text):
        if argv[:3] == ["gcloud", "projects", "add-iam-policy-binding"]:
            opts = dict(re.match(r"--([\w-]+)[= ]?(.*)", a).groups() for a in argv
                        if a.startswith("--") and "=" in a)
            if opts["role"] != "roles/$role":  # the loops, above
                out.append((opts.get("member", ""), opts["role"],
                            "" if opts.get("condition") == "None" else
                            opts.get("condition", "")))
    return out


def terraform_project_roles() -> set[str]:
    return {b["role"] for b in of_type("google_project_iam_member").values()}


def test_deploy_account_cannot_make_itself_owner() -> None:
    """Defect 6: the deploy account's roles added up to owner: an unconditional
    roles/resourcemanager.projectIamAdmin lets it grant itself any role. It now holds that role
    only with a condition that limits the grants it may change to the project roles the
    configuration grants (``api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', [])
    .hasOnly([...])``: https://cloud.google.com/iam/docs/setting-limits-on-granting-roles), and
    none of the roles that are owner in all but name."""
    grants = [g for g in project_grants(operations()) if g[0] == "$DEPLOYER"]
    assert grants, "no deploy account grants in the Operations section"
    roles = {role for _, role, _ in grants}
    assert not roles & {"roles/owner", "roles/editor", "roles/iam.securityAdmin",
                        "roles/iam.serviceAccountTokenCreator"}
    unconditional = {role for _, role, condition in grants if not condition}
    assert "roles/browser" in unconditional  # the loop's roles are read
    assert not unconditional & {"roles/resourcemanager.projectIamAdmin", "roles/storage.admin",
                                "roles/run.admin"}, unconditional
    (iam_admin,) = [g for g in grants if g[1] == "roles/resourcemanager.projectIamAdmin"]
    condition = iam_admin[2]
    m = re.search(r"modifiedGrantsByRole', \[\]\)\.hasOnly\(\[([^\]]*)\]\)", condition)
    assert m, f"projectIamAdmin without a role limit: {condition!r}"
    allowed = set(re.findall(r"'([^']+)'", m.group(1)))
    assert allowed == terraform_project_roles(), (allowed, terraform_project_roles())


def _deployer_condition(role: str, project_id: str) -> str:
    (grant,) = [g for g in project_grants(operations()) if g[0] == "$DEPLOYER" and g[1] == role]
    m = re.fullmatch(r"title=[\w-]+,expression=(.*)", grant[2])
    assert m, f"{role} without a condition: {grant}"
    return m.group(1).replace("$PROJECT", project_id).replace("'", '"')


@pytest.mark.parametrize("env", ENVS)
def test_deployer_storage_and_run_admin_hold_to_the_service_resources(env: str) -> None:
    """The deployment audit: the deploy account held roles/storage.admin and roles/run.admin on
    the whole project (every bucket's objects and IAM, every Cloud Run service). Each is now
    held by a condition on the resource name to what Terraform manages: the model and source
    buckets (names from storage.tf and the tfvars) and their objects; the two functions'
    services (names from main.tf). Bucket creation, which no bucket-level grant can give, is a
    custom role with ``storage.buckets.create`` only."""
    from test_first_apply import cel
    project_id, prefix = tfvars(env)["project_id"], tfvars(env)["name_prefix"]
    region = tfvars(env)["region"]
    buckets = [b["name"].replace("${var.project_id}", project_id)
               .replace("${local.prefix}", prefix)
               for b in of_type("google_storage_bucket").values()]
    assert len(buckets) == 2 and all("${" not in b for b in buckets), buckets
    storage = _deployer_condition("roles/storage.admin", project_id)
    for bucket in buckets:
        assert cel(storage, f"projects/_/buckets/{bucket}"), bucket
        assert cel(storage, f"projects/_/buckets/{bucket}/objects/models/LATEST"), bucket
    for other in (f"{project_id}-tfstate", f"{project_id}-releases",
                  f"gcf-v2-sources-123456789012-{region}", "someone-elses-bucket"):
        assert not cel(storage, f"projects/_/buckets/{other}"), other
        assert not cel(storage, f"projects/_/buckets/{other}/objects/x"), other
    functions = {k for block in merged(CONFIG)["locals"] for k in block.get("functions", {})}
    assert functions == {"predict", "prepare"}
    run_admin = _deployer_condition("roles/run.admin", project_id)
    for name in functions:
        assert cel(run_admin, f"projects/{project_id}/locations/{region}/services/{prefix}-{name}")
    for other in ("other-service", f"{prefix}-predict-canary", "irt"):
        assert not cel(run_admin, f"projects/{project_id}/locations/{region}/services/{other}")
    creator = [g for g in project_grants(operations())
               if g[0] == "$DEPLOYER" and g[1].endswith("/roles/irtBucketCreator")]
    assert creator == [("$DEPLOYER", "projects/$PROJECT/roles/irtBucketCreator", "")]
    (create,) = [c for c in commands(operations()) if c[:4] == ["gcloud", "iam", "roles",
                                                                  "create"]]
    assert create[create.index("--permissions") + 1] == "storage.buckets.create"


def test_least_privilege_table_lists_every_account_and_grant() -> None:
    """The README's table names every service account, each of its roles, where and why:
    every grant of the configuration is a row (and no row is a grant it does not make)."""
    text = operations()
    start = text.index("### Least privilege")
    section = text[start:text.index("\n### ", start + 1)]
    table = [line for line in section.splitlines() if line.startswith("| `")]
    rows = {(cells[0], cells[1]) for cells in
            ([c.strip(" `") for c in line.strip("|").split("|")] for line in table)}
    for (rtype, _name), body in _iam_members():
        m = re.search(r"google_service_account\.(\w+)(?:\[0\])?\.email", body["member"])
        if m:
            assert (m.group(1), body["role"].removeprefix("roles/")) in rows, (rtype, body)
    accounts = {name for name in of_type("google_service_account")}
    assert accounts | {"irt-deployer"} <= {a for a, _ in rows}
    for line in table:
        assert len([c for c in line.strip("|").split("|")]) == 4, line
        assert len(line.strip("|").split("|")[3].strip()) > 15, f"no reason given: {line}"


def _iam_members():
    from tfconfig import resources
    return [(k, b) for k, b in resources().items() if k[0].endswith("_iam_member")]


# --------------------------------------------------------------------------- state buckets
def test_each_environment_keeps_its_state_in_its_own_project() -> None:
    """Defect 5: the state bucket is created in the environment's own project, and only that
    project's deploy account is granted on it (bucket level, objectAdmin)."""
    text = operations()
    creates = [c for c in commands(text) if c[:4] == ["gcloud", "storage", "buckets", "create"]]
    assert creates[0][4:7] == ["gs://$PROJECT-tfstate", "--project", "$PROJECT"]
    grants = [c for c in commands(text)
              if c[:4] == ["gcloud", "storage", "buckets", "add-iam-policy-binding"]]
    state = [c for c in grants if c[4] == "gs://$PROJECT-tfstate"]
    # the deployer reads and writes it; the planner (plan-only builds) only reads it
    assert sorted((c[5], c[6]) for c in state) == [
        ("--member=$DEPLOYER", "--role=roles/storage.objectAdmin"),
        ("--member=$PLANNER", "--role=roles/storage.objectViewer")]
    for env in ENVS:
        assert backend(env)["bucket"] == f"{tfvars(env)['project_id']}-tfstate"
    assert "one bucket for both environments" not in text


# --------------------------------------------------------------------------- walkthrough
def test_operations_walkthrough_covers_the_whole_path() -> None:
    """From an empty organisation to a served model in staging and prod: every step has its
    own heading and copy-pasteable commands."""
    text = operations()
    headings = re.findall(r"^### (.+)$", text, re.M)
    for needed in ("From an empty organisation", "Bootstrap", "First deploy of staging",
                   "First refresh and smoke test", "Promoting to prod", "Rolling a model back",
                   "Rolling code back", "Least privilege", "Logs, alerts and the dashboard"):
        assert any(h.startswith(needed) for h in headings), (needed, headings)
    for block in shell_blocks(text):
        for line in block.splitlines():
            assert "<" not in line.split(" # ")[0] or "<<" in line, \
                f"placeholder in a command, not copy-pasteable: {line!r}"
    # every Terraform command the walkthrough runs uses the thin layout
    for argv in commands(text):
        if argv and argv[0] == "terraform":
            assert argv[1] == "-chdir=terraform/irt", argv
    assert {"cloudbuild.yaml", "cloudbuild-release-plan.yaml",
            "cloudbuild-release-apply.yaml"} <= set(re.findall(r"cloudbuild[\w-]*\.yaml", text))


def test_readme_paths_exist() -> None:
    for path in set(re.findall(r"`((?:terraform|scripts|tests|functions|docs)/[\w/.<>-]+)`",
                               operations())):
        if "<" not in path:
            assert (ROOT / path).exists(), path
    assert (CONFIG / "versions.tf").exists()
    assert merged(CONFIG)["output"]


def test_readme_counts_the_metrics_and_alerts_and_tables_every_alert() -> None:
    """The deployment audit: the Operations section said "six log-based metrics" where the
    configuration had nine. Its counts are the configuration's, and the alerts table has a
    row per alert policy, the Cloud Scheduler one (a refresh attempt that failed) included."""
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
             "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen"]
    text = operations()
    m = re.search(r"\b(\w+) log-based metrics, (\w+) alert\s+policies", text)
    assert m, "the Operations section no longer counts its metrics and alerts"
    assert words.index(m.group(1)) == len(of_type("google_logging_metric"))
    assert words.index(m.group(2)) == len(alert_policies())
    start = text.index("| alert policy | fires when | first look |")
    rows = re.findall(r"^\| `IRT <env>: ([^`]+)` \|", text[start:], re.M)
    assert len(rows) == len(alert_policies()), rows
    names = [re.sub(r"\$\{[^}]+\}", "X", b["display_name"].split(": ", 1)[1])
             for b in alert_policies().values()]
    for row in rows:
        row = re.sub(r"\b[NX]\b", "X", row)
        assert [n for n in names if n.startswith(row)], (row, names)


def test_paths_cited_by_the_deployment_code_exist() -> None:
    """The deployment audit: scripts/build_functions.py cited
    ``terraform/modules/irt/functions.tf``, a layout this repository no longer has. Every
    repository path the deployment code cites (scripts, the Makefile, the build configs, the
    Terraform) exists, or is one the pipeline writes (git ignores those)."""
    sources = [*ROOT.glob("scripts/**/*.py"), *ROOT.glob("scripts/**/*.sh"), ROOT / "Makefile",
               *ROOT.glob("cloudbuild*.yaml"), *ROOT.glob("terraform/**/*.tf"),
               *ROOT.glob("terraform/**/*.md")]
    pattern = re.compile(r"(?<![\w/.$-])((?:terraform|scripts|tests|functions|docs|benchmarks"
                         r"|shared)/[\w/.-]*\w\.(?:tf|py|sh|yaml|md|json|txt|lock|in|hcl|tfvars))"
                         r"(?![\w.])")
    cited = {m.group(1) for path in sources for m in pattern.finditer(path.read_text())}
    assert "terraform/irt/functions.tf" in cited
    missing = sorted(p for p in cited if not (ROOT / p).exists())
    if missing:
        proc = subprocess.run(["git", "check-ignore", "--no-index", *missing], cwd=ROOT,
                              capture_output=True, text=True)
        missing = sorted(set(missing) - set(proc.stdout.split()))
    assert not missing, missing


def test_operations_commands_take_resource_names_from_terraform_outputs() -> None:
    """The deployment audit: the commands hard-coded ``BUCKET=$PROJECT-irt-models``, the job
    ``irt-refresh`` and the function ``irt-predict``, names that follow ``name_prefix``
    ("irt" in the committed tfvars). They read the Terraform outputs instead, each of which
    exists."""
    text = operations()
    blocks = "\n".join(shell_blocks(text))
    inline = "\n".join(re.findall(r"`((?:gcloud|BUCKET=)[^`]+)`", text))
    for name in ("-irt-models", "jobs run irt-", "jobs pause irt-", "jobs describe irt-",
                 "functions describe irt-"):
        assert name not in blocks and name not in inline, name
    outputs = {k for block in merged(CONFIG)["output"] for k in block}
    used = set(re.findall(r"terraform -chdir=terraform/irt output -raw (\w+)", text))
    assert {"model_bucket", "scheduler_job", "predict_url"} <= used <= outputs, used
    prepare = (ROOT / "functions" / "prepare" / "README.md").read_text()
    assert "jobs run irt-refresh" not in prepare and "output -raw scheduler_job" in prepare


# --------------------------------------------------------------------------- planner account
#: What a read-only role is called: Google's viewer, reader and reviewer roles, plus the
#: planner's own build logs.
READ_ONLY_ROLE = re.compile(r"roles/(?:[\w.]+\.(?:\w*[vV]iewer|reader|securityReviewer)|browser"
                            r"|logging\.logWriter)")


def _planner_grants() -> tuple[list[tuple[str, str, str]], list[list[str]]]:
    """The planner's project grants and its bucket grants (argv) in the bootstrap."""
    text = operations()
    project = [g for g in project_grants(text) if g[0] == "$PLANNER"]
    buckets = [c for c in commands(text)
               if c[:4] == ["gcloud", "storage", "buckets", "add-iam-policy-binding"]
               and "--member=$PLANNER" in c]
    return project, buckets


@pytest.mark.parametrize("env", ENVS)
def test_the_planner_reads_and_changes_nothing(env: str) -> None:
    """The plan-only builds (cloudbuild-plan.yaml, pull requests) run as irt-planner: every role
    it holds is a viewer, reader or reviewer role (and its build logs); its storage grants reach
    the service's bucket settings, the source zips and the state, read only, and no object of
    the model bucket (the training snapshots, student answers), of the release records or of
    any other bucket."""
    from test_first_apply import cel
    project_id, prefix = tfvars(env)["project_id"], tfvars(env)["name_prefix"]
    grants, buckets = _planner_grants()
    assert grants, "no planner grants in the Operations section"
    for _, role, _ in grants:
        assert READ_ONLY_ROLE.fullmatch(role), role
    assert not READ_ONLY_ROLE.fullmatch("roles/storage.objectAdmin")  # negative controls
    assert not READ_ONLY_ROLE.fullmatch("roles/cloudbuild.builds.editor")
    assert [(c[4], c[6]) for c in buckets] == [("gs://$PROJECT-tfstate",
                                                "--role=roles/storage.objectViewer")]

    def condition(role: str) -> str:
        (grant,) = [g for g in grants if g[1] == role]
        m = re.fullmatch(r"title=[\w-]+,expression=(.*)", grant[2])
        assert m, f"{role} without a condition: {grant}"
        return m.group(1).replace("$PROJECT", project_id).replace("'", '"')

    models, sources = f"{project_id}-{prefix}-models", f"{project_id}-{prefix}-sources"
    bucket_names = {b["name"].replace("${var.project_id}", project_id)
                    .replace("${local.prefix}", prefix)
                    for b in of_type("google_storage_bucket").values()}
    assert bucket_names == {models, sources}
    settings = condition("roles/storage.bucketViewer")
    for bucket in (models, sources):
        assert cel(settings, f"projects/_/buckets/{bucket}"), bucket
    for other in (f"{project_id}-tfstate", f"{project_id}-releases", "someone-elses-bucket"):
        assert not cel(settings, f"projects/_/buckets/{other}"), other
    objects = condition("roles/storage.objectViewer")
    assert cel(objects, f"projects/_/buckets/{sources}")
    assert cel(objects, f"projects/_/buckets/{sources}/objects/predict/predict-abc.zip")
    for other in (f"{models}/objects/models/v1/prepared.csv.gz", f"{models}/objects/x",
                  f"{sources}-other/objects/x", f"{project_id}-releases/objects/passed/c"):
        assert not cel(objects, f"projects/_/buckets/{other}"), other
    # it calls no function: not an invoker of predict
    assert not [m for m in tfvars(env)["predict_invokers"] if "irt-planner@" in m]


def test_least_privilege_table_lists_every_planner_grant() -> None:
    text = operations()
    start = text.index("### Least privilege")
    section = text[start:text.index("\n### ", start + 1)]
    rows = {tuple(c.strip(" `") for c in line.strip("|").split("|")[:2])
            for line in section.splitlines() if line.startswith("| `irt-planner`")}
    grants, buckets = _planner_grants()
    listed = {("irt-planner", role.removeprefix("roles/")) for _, role, _ in grants}
    listed |= {("irt-planner", c[6].removeprefix("--role=roles/")) for c in buckets}
    listed.add(("irt-planner", "bigquery.metadataViewer"))  # on the table, by hand
    assert rows == listed, rows ^ listed
