"""Invariants of the Terraform configuration (``terraform/``), parsed with python-hcl2.

``terraform validate`` cannot run offline (it needs the provider plugins), so what matters for
safety is asserted here on the parsed configuration: no public principals, no project-level
owner/editor, one service account per function, the scheduler's OIDC audience, private
functions, buckets locked down, every module input set in both environments, and functions
that match ``functions/``. ``make test`` also runs ``terraform fmt -check`` (Terraform 1.0.3)
and checkov on the same files.
"""

from __future__ import annotations

import ast
import math
import re

import pytest
import yaml
from tfconfig import (
    CONFIG,
    ENVS,
    PUBLIC,
    ROOT,
    TF,
    alert_policies,
    all_tf_files,
    backend,
    locals_,
    merged,
    of_type,
    one,
    parse,
    resources,
    strings,
    tfvars,
    variables,
)


def function_dirs() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))


# --------------------------------------------------------------------------- layout
def test_every_file_parses_and_layout_is_one_root_two_environments() -> None:
    for path in all_tf_files():
        assert isinstance(parse(path), dict), path
    assert sorted(p.name for p in (TF / "environments").iterdir() if p.is_dir()) == sorted(ENVS)
    roots = sorted({p.parent for p in TF.rglob("*.tf")})
    assert roots == [CONFIG], "one Terraform configuration, no module copies"
    (terraform,) = [b for b in merged(CONFIG)["terraform"] if "backend" in b]
    assert one(terraform["backend"]) == {"gcs": {}}  # partial: bucket from backend.hcl


def test_no_workspaces_each_environment_has_its_own_state_bucket_and_project() -> None:
    """#14, 5: one state bucket per project, <project_id>-tfstate, created in that project
    (README bootstrap), so neither environment's deploy account can reach the other's state."""
    for path in all_tf_files():
        assert "terraform.workspace" not in path.read_text(), path
    buckets = {}
    for env in ENVS:
        config = backend(env)
        assert set(config) == {"bucket", "prefix"}, env
        assert config["bucket"] == f"{tfvars(env)['project_id']}-tfstate", env
        buckets[env] = config["bucket"]
    assert len(set(buckets.values())) == len(ENVS)
    projects = {tfvars(env)["project_id"] for env in ENVS}
    assert len(projects) == len(ENVS)
    assert {tfvars(env)["environment"] for env in ENVS} == set(ENVS)


def test_each_environment_has_its_own_state_prefix() -> None:
    """The deployment audit: both backend.hcl files named the prefix ``irt``, so the two
    environments' states were the same object path ``irt/default.tfstate`` in their buckets
    and only the bucket name kept them apart. Each has its own prefix now, ``irt/<env>``
    (terraform/README.md, "State prefixes", migrates an existing state)."""
    prefixes = {env: backend(env)["prefix"] for env in ENVS}
    assert len(set(prefixes.values())) == len(ENVS), prefixes
    for env, prefix in prefixes.items():
        assert prefix == f"irt/{env}", (env, prefix)
        assert prefix != "irt", env  # the shared one pipeline.sh check-state migrates from
    readme = (TF / "README.md").read_text()
    section = readme[readme.index("## State prefixes"):]
    assert "init -migrate-state" in section
    assert "-backend-config=prefix=irt" in section  # the old state is where it starts from


def test_environments_differ_only_in_tfvars_and_backend() -> None:
    """#14, thin environments: an environment is its terraform.tfvars and backend.hcl; the
    variables are declared once (terraform/irt/variables.tf)."""
    for env in ENVS:
        assert sorted(p.name for p in (TF / "environments" / env).iterdir()
                      if not p.name.startswith(".")) == ["backend.hcl", "terraform.tfvars"]


def test_every_variable_is_set_in_both_environments() -> None:
    declared = variables(CONFIG)
    for env in ENVS:
        values = tfvars(env)
        unset = [v for v, body in declared.items() if v not in values and "default" not in body]
        assert not unset, f"{env}: variables without a value in terraform.tfvars: {unset}"
        unknown = set(values) - set(declared)
        assert not unknown, f"{env}: tfvars for undeclared variables: {sorted(unknown)}"


def test_module_variables_used_and_referenced_ones_declared() -> None:
    declared = set(variables(CONFIG))
    text = "\n".join(strings({k: v for k, v in merged(CONFIG).items() if k != "variable"}))
    used = set(re.findall(r"\bvar\.([a-z0-9_]+)", text))
    assert used <= declared, sorted(used - declared)
    assert declared <= used, f"declared but unused: {sorted(declared - used)}"


# --------------------------------------------------------------------------- IAM
def test_no_public_principals_anywhere() -> None:
    for path in all_tf_files():
        for value in strings(parse(path)):
            assert not any(p in value.lower() for p in PUBLIC), f"{path}: {value}"


def test_invoker_variable_rejects_public_principals() -> None:
    (validation,) = variables(CONFIG)["predict_invokers"]["validation"]
    assert "serviceAccount|group|user" in validation["condition"]
    for env in ENVS:
        for member in tfvars(env)["predict_invokers"]:
            assert re.match(r"^(serviceAccount|group|user):[^@]+@[^@]+$", member), member


def test_project_level_roles_are_few_and_never_basic() -> None:
    project_roles = set()
    for (rtype, name), body in resources().items():
        assert rtype not in ("google_project_iam_policy", "google_project_iam_binding"), \
            f"authoritative project IAM ({rtype}.{name}) would strip others' grants"
        if rtype == "google_project_iam_member":
            project_roles.add(body["role"])
    assert not project_roles & {"roles/owner", "roles/editor", "roles/viewer"}
    assert project_roles == {"roles/bigquery.jobUser", "roles/bigquery.readSessionUser",
                             "roles/logging.logWriter", "roles/storage.objectViewer"}
    # the one project-level storage grant is held to Cloud Functions' source copy (#14, 1)
    storage = [b for (t, _), b in resources().items()
               if t == "google_project_iam_member" and b["role"] == "roles/storage.objectViewer"]
    assert [one(b["condition"])["expression"].count("gcf_sources_bucket") for b in storage] == [2]
    for (rtype, name), body in resources().items():
        if "_iam_" in rtype:
            role = body.get("role", "")
            assert role not in ("roles/owner", "roles/editor"), f"{rtype}.{name}"
            assert not role.startswith(("roles/iam.", "roles/resourcemanager.")), \
                f"{rtype}.{name}: {role}"


def _sa_ref(expr: str) -> str:
    # (``[0]``: the tester, made only where var.test_build_account)
    m = re.fullmatch(
        r"(?:serviceAccount:)?\$\{google_service_account\.([a-z_]+)(?:\[0\])?\.email\}", expr)
    assert m, f"not a reference to a module service account: {expr}"
    return m.group(1)


def test_each_function_has_its_own_service_account() -> None:
    functions = of_type("google_cloudfunctions2_function")
    accounts = {name: _sa_ref(one(body["service_config"])["service_account_email"])
                for name, body in functions.items()}
    assert accounts == {name: name for name in functions}
    sas = of_type("google_service_account")
    assert set(accounts.values()) < set(sas)
    ids = [body["account_id"] for body in sas.values()]
    assert len(ids) == len(set(ids))
    build_sa = {one(body["build_config"])["service_account"] for body in functions.values()}
    assert build_sa == {"${google_service_account.build.id}"}


def test_grants_follow_least_privilege_per_account() -> None:
    grants: dict[str, set[tuple[str, str]]] = {}
    for (rtype, _name), body in resources().items():
        if "_iam_member" in rtype and "google_service_account" in body["member"]:
            where = rtype.removeprefix("google_").removesuffix("_iam_member")
            grants.setdefault(_sa_ref(body["member"]), set()).add((where, body["role"]))
    assert grants["prepare"] == {
        ("project", "roles/bigquery.jobUser"),
        ("project", "roles/bigquery.readSessionUser"),
        ("bigquery_table", "roles/bigquery.dataViewer"),  # the answer table, not its dataset
        ("storage_bucket", "roles/storage.objectUser"),
    }
    assert grants["predict"] == {("storage_bucket", "roles/storage.objectViewer")}
    assert grants["scheduler"] == {("cloud_run_v2_service", "roles/run.invoker")}
    assert grants["build"] == {("project", "roles/logging.logWriter"),
                               ("project", "roles/storage.objectViewer"),
                               ("storage_bucket", "roles/storage.objectViewer"),
                               ("artifact_registry_repository", "roles/artifactregistry.writer")}
    assert grants["tester"] == {("project", "roles/logging.logWriter"),
                                ("storage_bucket", "roles/storage.objectUser")}
    buckets = {name: body["bucket"] for (t, name), body in resources().items()
               if t == "google_storage_bucket_iam_member"}
    assert buckets == {"prepare_writes_models": "${google_storage_bucket.models.name}",
                       "predict_reads_models": "${google_storage_bucket.models.name}",
                       "build_reads_sources": "${google_storage_bucket.sources.name}",
                       "tester_records_results": "${local.releases_bucket}"}
    # Issue 17 item 16: prepare could read the whole source dataset; it reads BQ_TABLE only
    assert not of_type("google_bigquery_dataset_iam_member")
    table = of_type("google_bigquery_table_iam_member")["prepare_reads_source"]
    assert (table["project"], table["dataset_id"], table["table_id"]) == (
        "${var.bq_project}", "${var.bq_dataset}", "${var.bq_table}")
    # and the variables say so (bq_dataset's said "read access to this dataset only")
    described = " ".join(variables(CONFIG)[v]["description"] for v in
                         ("bq_project", "bq_dataset", "bq_table"))
    assert "this dataset only" not in described and "that table only" in described


def test_tests_run_as_an_account_that_cannot_change_iam_or_deploy() -> None:
    """Issue 17 item 16: Cloud Build ran ``make test`` as the deploy account, which holds
    project IAM admin. The test build (cloudbuild-test.yaml) runs as ``tester``: it may write
    its logs and its ``tested/<commit>`` records, and nothing else."""
    grants = [(t, b) for (t, _), b in resources().items()
              if "_iam_member" in t and "google_service_account.tester[0]." in b["member"]]
    assert len(grants) == 2
    for rtype, body in grants:
        assert rtype in ("google_project_iam_member", "google_storage_bucket_iam_member")
        assert not re.search(r"admin|owner|editor|iam\.|serviceAccount|developer|invoker",
                             body["role"], re.I), body["role"]
    (records,) = [b for t, b in grants if t == "google_storage_bucket_iam_member"]
    expression = one(records["condition"])["expression"]
    assert expression == ('resource.name.startsWith("projects/_/buckets/'
                          '${local.releases_bucket}/objects/tested/")')
    assert locals_()["releases_bucket"] == "${var.project_id}-releases"
    # no other grant names it, and nothing (a function, the scheduler) runs as it
    text = "".join(p.read_text() for p in (ROOT / "terraform" / "irt").glob("*.tf"))
    uses = re.findall(r"google_service_account\.tester\[0\]\.(\w+)", text)
    assert sorted(uses) == ["email", "email", "email"]  # two grants and the output
    assert not re.search(r"google_service_account\.tester\.", text)


def test_the_test_build_account_exists_where_tests_run_only() -> None:
    """Only staging runs the test build (prod applies release bundles tested there): the
    tester account and its two grants exist where ``test_build_account`` is true, which only
    staging's tfvars sets; prod and the default have none (no unused identity with grants)."""
    tester = [(t, n) for (t, n), b in resources().items()
              if n == "tester" or n.startswith("tester_")]
    assert sorted(tester) == [("google_project_iam_member", "tester_log_writer"),
                              ("google_service_account", "tester"),
                              ("google_storage_bucket_iam_member", "tester_records_results")]
    for key in tester:
        assert resources()[key]["count"] == "${var.test_build_account ? 1 : 0}", key
    assert variables(CONFIG)["test_build_account"]["default"] is False
    assert tfvars("staging")["test_build_account"] is True
    assert tfvars("prod")["test_build_account"] is False


def test_invokers_on_the_cloud_run_service_follow_function_replacement() -> None:
    invokers = of_type("google_cloud_run_v2_service_iam_member")
    assert set(invokers) == {"prepare_invoker", "predict_invoker"}
    for name, body in invokers.items():
        fn = name.removesuffix("_invoker")
        assert body["role"] == "roles/run.invoker"
        function = f"google_cloudfunctions2_function.{fn}"
        assert body["name"] == f"${{{function}.service_config[0].service}}"
        assert one(body["lifecycle"])["replace_triggered_by"] == [f"${{{function}.id}}"]
    assert _sa_ref(invokers["prepare_invoker"]["member"]) == "scheduler"
    assert invokers["predict_invoker"]["for_each"] == "${toset(var.predict_invokers)}"
    assert not [t for t, _ in resources() if t.startswith("google_cloudfunctions2_function_iam")]


# --------------------------------------------------------------------------- scheduler
def test_scheduler_calls_prepare_with_oidc_audience_its_uri() -> None:
    (job,) = of_type("google_cloud_scheduler_job").values()
    target = one(job["http_target"])
    uri = "${google_cloudfunctions2_function.prepare.service_config[0].uri}"
    assert target["uri"] == uri
    assert "oauth_token" not in target
    token = one(target["oidc_token"])
    assert token["audience"] == uri
    assert _sa_ref(token["service_account_email"]) == "scheduler"
    assert job["schedule"] == "${var.refresh_schedule}"
    assert job["time_zone"] == "${var.refresh_time_zone}"
    assert "${var.refresh_retry." in str(one(job["retry_config"]))


def test_prepare_times_out_before_the_scheduler_gives_up() -> None:
    """The deployment audit: prepare's timeout and the scheduler's attempt deadline were the
    same number, so either could end a long run first; the scheduler, giving up on a run that
    was still going, would retry it beside itself. prepare's timeout is now a little below the
    deadline (it answers 504, the attempt fails with that), and the deadline stays within
    Cloud Scheduler's 30 minutes for every value the variable's validation accepts."""
    (job,) = of_type("google_cloud_scheduler_job").values()
    prepare = one(of_type("google_cloudfunctions2_function")["prepare"]["service_config"])
    assert prepare["timeout_seconds"] == "${var.prepare_timeout_seconds}"
    assert job["attempt_deadline"] == \
        "${var.prepare_timeout_seconds + local.scheduler_deadline_margin_seconds}s"
    margin = locals_()["scheduler_deadline_margin_seconds"]
    assert 10 <= margin <= 120
    (validation,) = variables(CONFIG)["prepare_timeout_seconds"]["validation"]
    for env in ENVS:
        timeout = tfvars(env)["prepare_timeout_seconds"]
        assert hcl_condition(validation["condition"], {"prepare_timeout_seconds": timeout})
        assert timeout + margin <= 1800, env
    largest = 1800 - margin
    assert hcl_condition(validation["condition"], {"prepare_timeout_seconds": largest})
    assert not hcl_condition(validation["condition"], {"prepare_timeout_seconds": largest + 1})
    assert not hcl_condition(validation["condition"], {"prepare_timeout_seconds": 59})
    # the job's name is the one its failed-attempt metric filters on (monitoring.tf)
    assert job["name"] == "${local.scheduler_job_name}"


# --------------------------------------------------------------------------- functions
def test_functions_match_the_functions_folder_and_the_build() -> None:
    table = locals_()["functions"]
    present = function_dirs()
    if "prepare" not in present:
        pytest.skip("functions/prepare/main.py not written yet")
    assert sorted(table) == present == sorted(of_type("google_cloudfunctions2_function"))
    for name, body in of_type("google_cloudfunctions2_function").items():
        build = one(body["build_config"])
        assert build["runtime"] == "python312"
        assert build["entry_point"] == f"${{local.functions.{name}.entry_point}}"
        assert table[name]["entry_point"] == name
        source = one(one(build["source"])["storage_source"])
        assert source["object"] == f'${{google_storage_bucket_object.source["{name}"].name}}'
        assert source["bucket"] == "${google_storage_bucket.sources.name}"
        tree = ast.parse((ROOT / "functions" / name / "main.py").read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert name in defined, f"functions/{name}/main.py has no top-level def {name}"


def test_sources_are_zipped_from_the_build_and_named_by_their_hash() -> None:
    (archive,) = [b["archive_file"]["source"] for b in merged(CONFIG)["data"]
                  if "archive_file" in b]
    assert archive["source_dir"] == "${local.source_root}/${each.key}"
    assert archive["output_file_mode"] == "0644"
    assert archive["type"] == "zip"
    assert not archive["output_path"].startswith("${local.source_root}/${each.key}")
    obj = of_type("google_storage_bucket_object")["source"]
    assert "${data.archive_file.source[each.key].output_sha256}" in obj["name"]
    assert locals_()["source_root"] == "${path.root}/../../build/functions"
    assert (CONFIG / "../../build/functions").resolve() == ROOT / "build" / "functions"
    script = (ROOT / "scripts" / "build_functions.py").read_text()
    assert 'DEFAULT_OUT = ROOT / "build" / "functions"' in script


def test_functions_are_private_and_sized_by_variables() -> None:
    fns = of_type("google_cloudfunctions2_function")
    prepare, predict = one(fns["prepare"]["service_config"]), one(fns["predict"]["service_config"])
    assert prepare["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
    assert prepare["max_instance_count"] == 1
    assert prepare["timeout_seconds"] == "${var.prepare_timeout_seconds}"
    assert predict["ingress_settings"] == "${var.predict_ingress}"
    assert predict["min_instance_count"] == "${var.predict_min_instances}"
    assert predict["max_instance_count"] == "${var.predict_max_instances}"
    assert predict["max_instance_request_concurrency"] == "${var.predict_concurrency}"
    assert tfvars("prod")["predict_min_instances"] >= 1
    for env in ENVS:
        assert tfvars(env)["predict_ingress"] in ("ALLOW_ALL", "ALLOW_INTERNAL_ONLY",
                                                  "ALLOW_INTERNAL_AND_GCLB")
        assert tfvars(env)["prepare_timeout_seconds"] <= 1770


def _env_keys(expr: str) -> set[str]:
    return set(re.findall(r"\b([A-Z][A-Z0-9_]+) =", expr))


def test_function_environment_names_are_read_by_the_code() -> None:
    env = locals_()
    prepare_keys, predict_keys = _env_keys(env["prepare_env"]), _env_keys(env["predict_env"])
    assert {"BQ_TABLE", "BQ_LOCATION", "MODEL_BUCKET", "MODEL_PREFIX", "MODEL_TYPE",
            "WINDOW_DAYS", "MAX_ANSWERS_PER_ITEM", "MIN_ANSWERS_PER_ITEM",
            "MIN_ANSWERS_PER_STUDENT", "COLUMN_STUDENT", "COLUMN_ITEM", "COLUMN_CORRECT",
            "COLUMN_ANSWERED_AT", "COLUMN_SKILL", "GATE_MAX_AUC_DROP",
            "GATE_MAX_LOGLOSS_RISE"} <= prepare_keys
    package = sorted((ROOT / "shared" / "irt").rglob("*.py"))
    code = {name: "\n".join(p.read_text() for p in [ROOT / "functions" / name / "main.py",
                                                    ROOT / "functions" / name / "server.py",
                                                    ROOT / "functions" / name /
                                                    "gunicorn.conf.py", *package]
                            if p.exists())
            for name in ("prepare", "predict")}
    if (ROOT / "functions" / "prepare" / "main.py").exists():
        unread = [k for k in prepare_keys if f'"{k}"' not in code["prepare"]]
        assert not unread, f"prepare never reads {unread}"
    unread = [k for k in predict_keys if f'"{k}"' not in code["predict"]]  # + gunicorn.conf.py
    assert not unread, f"predict never reads {unread}"


# --------------------------------------------------------------------------- storage
def test_buckets_are_private_versioned_and_expire_old_data() -> None:
    buckets = of_type("google_storage_bucket")
    assert set(buckets) == {"models", "sources"}
    for body in buckets.values():
        assert body["uniform_bucket_level_access"] is True
        assert body["public_access_prevention"] == "enforced"
        assert one(body["versioning"])["enabled"] is True
        assert body.get("force_destroy") is False
        assert body.get("lifecycle_rule")
    rules = [one(r["condition"]) for r in buckets["models"]["lifecycle_rule"]]
    snapshot = [c for c in rules if c.get("matches_suffix") == ["prepared.csv.gz"]]
    assert snapshot and snapshot[0]["age"] == "${var.training_snapshot_retention_days}"
    assert any("days_since_noncurrent_time" in c for c in rules)
    # model.json and the LATEST pointer are never deleted by age: only by being superseded
    assert not [c for c in rules if "age" in c and not c.get("matches_suffix")]


# --------------------------------------------------------------------------- monitoring
#: Log-based metrics on predict's log lines, on the refresh job's (Cloud Scheduler's); the
#: rest count prepare's.
PREDICT_METRICS = {"model_loaded", "model_rejected", "model_behind"}
SCHEDULER_METRICS = {"refresh_attempt_failed"}


def hcl_condition(condition: str, values: dict) -> bool:
    """A variable validation's ``condition`` (``length``, ``floor``, ``+``, comparisons,
    ``||``, ``&&``, ``null``, one ``c ? a : b``) evaluated with ``values`` for ``var.*``
    (``var.x.attr`` of an object too)."""
    expr = re.fullmatch(r"\$\{(.*)\}", condition, re.S).group(1)

    def var(m: re.Match) -> str:
        value = values[m.group(1)]
        for attr in filter(None, m.group(2).split(".")):
            value = value[attr]
        return repr(value)

    expr = re.sub(r"\bvar\.(\w+)((?:\.\w+)*)", var, expr)
    if ternary := re.fullmatch(r"(.+?) \? (.+?) : (.+)", expr, re.S):
        expr = "({1}) if ({0}) else ({2})".format(*ternary.groups())  # lazy, as HCL's
    expr = expr.replace("||", " or ").replace("&&", " and ").replace("length(", "len(")
    return bool(eval(expr, {"__builtins__": {}}, {"len": len, "floor": math.floor,
                                                  "null": None, "true": True,
                                                  "false": False}))


#: Terraform variable -> (the function, its environment key, values to try): each value must
#: pass the variable's validation exactly when the function's own configuration accepts it.
CODE_LIMITS = {
    "prepare_window_days": ("prepare", "WINDOW_DAYS", [1, 365, 36500, 0, -5, 36501, 30.5]),
    "prepare_max_answers_per_item": ("prepare", "MAX_ANSWERS_PER_ITEM",
                                     [1, 5000, 10**9, 0, 10**9 + 1, 2.5]),
    "prepare_min_answers_per_item": ("prepare", "MIN_ANSWERS_PER_ITEM",
                                     [None, 1, 2, 10**9, 0, -1, 10**9 + 1, 1.5]),
    "prepare_min_answers_per_student": ("prepare", "MIN_ANSWERS_PER_STUDENT",
                                        [None, 1, 2, 10**9, 0, 10**9 + 1, 2.5]),
    "model_refresh_seconds": ("predict", "MODEL_REFRESH_SECONDS",
                              [0, 0.5, 60, 86400, -1, 86400.5]),
}


def code_accepts(function: str, key: str, value: float | None) -> bool:
    """Whether the function starts with ``value`` in ``key`` (``None``: unset), as Terraform
    passes it (``tostring``)."""
    from irt.errors import ConfigError
    from irt.refresh.config import RefreshConfig
    from irt.serving.config import PredictConfig

    env = {} if value is None else {key: str(value)}
    try:
        if function == "prepare":
            RefreshConfig.from_env({"BQ_TABLE": "irt-test.logs.answers", "MODEL_BUCKET": "b",
                                    **env})
        else:
            PredictConfig.from_env({"MODEL_BUCKET": "b", **env}, "/nonexistent")
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(CODE_LIMITS))
def test_variables_refuse_what_the_functions_would_refuse(name: str) -> None:
    """The deployment audit: variables with limits in the code had none in Terraform, so a
    bad value planned and applied, and the function then refused to start (prepare: every
    refresh a misconfigured 500). Each validation now accepts exactly what the code accepts,
    and each environment's value (or the default, null) passes."""
    function, key, tries = CODE_LIMITS[name]
    (validation,) = variables(CONFIG)[name]["validation"]
    for value in tries:
        assert hcl_condition(validation["condition"], {name: value}) == \
            code_accepts(function, key, value), (name, value)
    assert {code_accepts(function, key, v) for v in tries} == {True, False}
    for env in ENVS:
        value = tfvars(env).get(name, variables(CONFIG)[name].get("default"))
        assert hcl_condition(validation["condition"], {name: value}), (env, name)


def test_instance_bounds_and_retry_backoffs_are_ordered() -> None:
    """predict's max instances below its min, or the scheduler's min backoff above its max,
    only failed at apply (Cloud Run, Cloud Scheduler); the plan refuses them now."""
    declared = variables(CONFIG)
    (instances,) = declared["predict_max_instances"]["validation"]
    ordered = [v["condition"] for v in declared["refresh_retry"]["validation"]
               if "backoff" in v["condition"]]
    assert len(ordered) == 1
    for env in ENVS:
        values = tfvars(env)
        assert hcl_condition(instances["condition"], values), env
        assert hcl_condition(ordered[0], values), env
        assert not hcl_condition(instances["condition"], {
            **values, "predict_max_instances": values["predict_min_instances"] - 1}), env
        assert hcl_condition(instances["condition"], {
            **values, "predict_max_instances": values["predict_min_instances"]}), env
        retry = values["refresh_retry"]
        swapped = {**retry, "min_backoff_seconds": retry["max_backoff_seconds"] + 1}
        assert not hcl_condition(ordered[0], {**values, "refresh_retry": swapped}), env


def test_every_alert_notifies_a_channel_required_in_every_environment() -> None:
    """Monitoring 1 (``docs/ml-test-score.md``): alerts reach someone. Every alert policy
    names ``local.notification_channels``; the variables have no default and their validation
    refuses an empty set in *every* environment (staging's alerts too); each environment's
    tfvars give an address, a placeholder the README tells the operator to replace."""
    declared = variables(CONFIG)
    assert "default" not in declared["notification_channels"]
    assert "default" not in declared["notification_emails"]
    required = declared["notification_channels"]["validation"][0]["condition"]
    readme = (ROOT / "README.md").read_text()
    for env in ENVS:
        values = tfvars(env)
        assert hcl_condition(required, values), env
        assert values["notification_emails"] or values["notification_channels"], env
        for address in values["notification_emails"]:
            assert f"`{address}`" in readme, f"README does not tell to replace {address}"
        for empty in ({"notification_channels": [], "notification_emails": []},):
            assert not hcl_condition(required, {**values, **empty}), env
        one_channel = {"notification_channels": ["projects/p/notificationChannels/1"],
                       "notification_emails": []}
        assert hcl_condition(required, {**values, **one_channel}), env
    policies = alert_policies()
    assert len(policies) >= 10
    for name, body in policies.items():
        assert body["notification_channels"] == "${local.notification_channels}", name
    channels = locals_()["notification_channels"]
    assert "var.notification_channels" in channels
    assert "google_monitoring_notification_channel.email" in channels


def test_alerts_watch_refresh_failures_model_age_and_predict_5xx() -> None:
    metrics = of_type("google_logging_metric")
    assert 'jsonPayload.event="refresh_failed"' in metrics["refresh_failed"]["filter"]
    assert "severity>=ERROR" in metrics["refresh_failed"]["filter"]
    assert 'jsonPayload.event="model_published"' in metrics["model_published"]["filter"]
    # a run that dies before it logs (timeout, OOM, import error, 403/429): the scheduler's
    # failed attempts of this job (tests/deploy/test_alert_semantics.py evaluates the filter)
    attempts = metrics["refresh_attempt_failed"]["filter"]
    assert 'resource.labels.job_id="${local.scheduler_job_name}"' in attempts
    assert "severity>=ERROR" in attempts
    assert locals_()["scheduler_job_name"] == "${local.prefix}-refresh"
    assert "local.function_names.prepare" in locals_()["prepare_log_filter"]
    for name, body in metrics.items():
        start = "${local.predict_filter} AND " if name in PREDICT_METRICS else \
            'resource.type="cloud_scheduler_job" AND ' if name in SCHEDULER_METRICS else \
            "${local.prepare_log_filter} AND "
        assert body["filter"].startswith(start), name
    policies = alert_policies()
    assert set(policies) == {"refresh_failed", "model_stale", "predict_5xx", "monitoring_alert",
                             "predict_4xx", "predict_latency", "memory", "refresh_slow",
                             "model_rejected", "model_behind", "refresh_attempt_failed"}
    for name, body in policies.items():
        assert body["notification_channels"] == "${local.notification_channels}"
        if "dynamic" in body:  # one condition per function (memory)
            continue
        cond = one(one(body["conditions"])["condition_threshold"])
        if name in metrics:
            assert f"google_logging_metric.{name}.name" in cond["filter"]
    stale = one(one(policies["model_stale"]["conditions"])["condition_threshold"])
    assert "google_logging_metric.model_published.name" in stale["filter"]
    assert stale["evaluation_missing_data"] == "EVALUATION_MISSING_DATA_ACTIVE"
    five = one(one(policies["predict_5xx"]["conditions"])["condition_threshold"])
    assert five["filter"] == \
        '${local.predict_requests} AND metric.labels.response_code_class="5xx"'
    assert five["denominator_filter"] == "${local.predict_requests}"
    assert "google_cloudfunctions2_function.predict.name" in locals_()["predict_requests"]


def test_ml_monitoring_alerts_watch_findings_inputs_latency_and_memory() -> None:
    """docs/ml-test-score.md, monitoring: prepare's monitoring findings, serving inputs that
    break the contract (4xx), p99 latency and memory of both functions, refresh duration."""
    metrics = of_type("google_logging_metric")
    finding = metrics["monitoring_alert"]
    assert 'jsonPayload.event="monitoring_alert"' in finding["filter"]
    assert finding["label_extractors"] == {"check": "EXTRACT(jsonPayload.check)"}
    source = (ROOT / "shared" / "irt" / "refresh" / "pipeline.py").read_text()
    assert 'event="monitoring_alert", check=' in source  # the line the metric counts
    policies = alert_policies()
    cond = one(one(policies["monitoring_alert"]["conditions"])["condition_threshold"])
    assert one(cond["aggregations"])["group_by_fields"] == ["metric.label.check"]
    four = one(one(policies["predict_4xx"]["conditions"])["condition_threshold"])
    assert 'metric.labels.response_code_class="4xx"' in four["filter"]
    assert four["denominator_filter"] == "${local.predict_requests}"
    assert four["threshold_value"] == "${var.predict_4xx_ratio_threshold}"
    assert "google_cloudfunctions2_function.predict.name" in locals_()["predict_requests"]
    latency = one(one(policies["predict_latency"]["conditions"])["condition_threshold"])
    assert "run.googleapis.com/request_latencies" in latency["filter"]
    assert one(latency["aggregations"])["per_series_aligner"] == "ALIGN_PERCENTILE_99"
    assert latency["threshold_value"] == "${var.predict_latency_p99_ms}"
    memory = one(policies["memory"]["dynamic"])["conditions"]
    functions = memory["for_each"]
    assert set(functions) == {"predict", "prepare"}
    mem_cond = one(one(memory["content"])["condition_threshold"])
    assert "container/memory/utilizations" in mem_cond["filter"]
    duration = metrics["refresh_seconds"]
    assert 'jsonPayload.event="refresh_finished"' in duration["filter"]
    assert duration["value_extractor"] == "EXTRACT(jsonPayload.seconds)"
    assert one(duration["metric_descriptor"])["value_type"] == "DISTRIBUTION"
    assert 'event="refresh_finished"' in source
    slow = one(one(policies["refresh_slow"]["conditions"])["condition_threshold"])
    assert "google_logging_metric.refresh_seconds.name" in slow["filter"]
    assert slow["threshold_value"] == "${var.prepare_timeout_seconds / 2}"
    for env in ENVS:
        assert 0 < tfvars(env)["predict_4xx_ratio_threshold"] < 1
        assert tfvars(env)["predict_latency_p99_ms"] > 0


def test_outputs_expose_urls_bucket_and_service_accounts() -> None:
    outputs = {k for block in merged(CONFIG)["output"] for k in block}
    assert {"predict_url", "prepare_url", "model_bucket", "service_accounts"} <= outputs
    # the staging build's refresh step runs the job by its full id (pipeline.sh refresh)
    (job_id,) = [b["scheduler_job_id"] for b in merged(CONFIG)["output"]
                 if "scheduler_job_id" in b]
    assert job_id["value"] == "${google_cloud_scheduler_job.refresh.id}"


def test_checkov_skips_are_justified() -> None:
    for path in all_tf_files():
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                m = re.search(r"#checkov:skip=(CKV2?_[A-Z]+_\d+):(.+)", line)
                assert m and len(m.group(2).strip()) > 40, f"{path}: unjustified skip {line!r}"


# --------------------------------------------------------------------------- Cloud Build
def test_staging_pipeline_validates_plans_applies_the_saved_plan_and_smoke_tests() -> None:
    """The staging build (cloudbuild.yaml); prod's two builds: tests/deploy/test_release.py."""
    config = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    steps = {s["id"]: s for s in config["steps"]}
    assert list(steps) == ["tested", "build", "fmt", "state", "init", "validate", "plan",
                           "apply", "smoke", "refresh", "passed"]
    # the suite runs in cloudbuild-test.yaml as the test account; this build waits for it
    assert steps["tested"]["args"][1] == "wait-tested"
    assert steps["build"]["args"] == ["scripts/build_functions.py"]
    assert steps["fmt"]["args"] == ["fmt", "-check", "-recursive", "terraform"]
    assert set(steps["plan"]["waitFor"]) == {"validate", "build", "tested"}
    assert steps["apply"]["waitFor"] == ["plan"]
    assert steps["smoke"]["waitFor"] == ["apply"]
    script = (ROOT / "scripts" / "release" / "pipeline.sh").read_text()
    assert 'terraform -chdir="$TF_ROOT" apply -input=false -lock-timeout=5m tfplan' in script
    assert "-out=tfplan" in script
    assert 'gcloud auth print-identity-token --audiences="$url"' in script
    assert "Authorization: Bearer" in script


# --------------------------------------------------------------------------- defaults
CALIBRATION_VARIABLES = {"prepare_model_type": "MODEL_TYPE",
                         "prepare_min_answers_per_item": "MIN_ANSWERS_PER_ITEM",
                         "prepare_min_answers_per_student": "MIN_ANSWERS_PER_STUDENT"}


def test_calibration_settings_are_the_project_defaults_unless_an_environment_sets_them() -> None:
    """#13: prepare calibrates with irt.engine.defaults.DEFAULTS, as `irt fit` does.  The
    Terraform variables for those settings default to null, an environment's tfvars leave them
    out, and a null one is not put in the function's environment (so from_env falls back to
    DEFAULTS) - rather than a fourth set of defaults in the tfvars."""
    declared = variables(CONFIG)
    for name in CALIBRATION_VARIABLES:
        assert declared[name].get("default", "missing") is None, name
    for env in ENVS:
        assert not set(CALIBRATION_VARIABLES) & set(tfvars(env)), env
    expr = str(locals_()["prepare_env"])
    for name, key in CALIBRATION_VARIABLES.items():
        # set only when not null
        assert re.search(rf"{key}\s*=\s*[^,}}]*var\.{name}", expr), key
    assert "if value != null" in expr.replace('"', ""), expr
