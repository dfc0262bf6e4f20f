"""A first ``terraform apply`` on a fresh project succeeds (#14, defects 1, 2, 3 and the
Terraform parts of 6).

Each test names the provider code or Google documentation it relies on. They read the
configuration parsed with python-hcl2 (``tests/support/tfconfig.py``); the IAM conditions are
evaluated on object names with a small evaluator of the CEL subset they use (``==``,
``startsWith``, ``endsWith``, ``&&``, ``||``, parentheses).
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from tfconfig import (
    CONFIG,
    ENVS,
    alert_policies,
    locals_,
    merged,
    of_type,
    one,
    resources,
    tfvars,
    variables,
)

PROJECT_NUMBER = "123456789012"
REGION = "europe-west1"
MODEL_BUCKET = "irt-prod-irt-models"


def cel(expression: str, name: str) -> bool:
    """Evaluate an IAM condition on ``resource.name == name`` (the CEL subset above only)."""
    bare = re.sub(r'"[^"]*"', '""', expression)
    allowed = re.sub(r"resource\.name|\.startsWith|\.endsWith|==|&&|\|\||[()\s]|\"\"", "", bare)
    assert not allowed, f"condition uses more than the tested CEL subset: {allowed!r}"
    python = (expression.replace("&&", " and ").replace("||", " or ")
              .replace(".startsWith(", ".startswith(").replace(".endsWith(", ".endswith("))
    return bool(eval(python, {"__builtins__": {}},
                     {"resource": SimpleNamespace(name=name)}))


def _join_list(expr: str) -> list[str]:
    """The string list of ``${join(" || ", [...])}`` as python-hcl2 renders it."""
    m = re.fullmatch(r'\$\{join\(" \|\| ", (\[.*\])\)\}', expr, re.S)
    assert m, expr
    return json.loads(m.group(1))


def _interpolate(expr: str, values: dict[str, str]) -> str:
    for _ in range(3):
        for key, value in values.items():
            expr = expr.replace("${" + key + "}", value)
    assert "${" not in expr, expr
    return expr


def _values() -> dict[str, str]:
    loc = locals_()
    values = {"data.google_project.this.number": PROJECT_NUMBER, "var.region": REGION,
              "google_storage_bucket.models.name": MODEL_BUCKET,
              "local.model_prefix": loc["model_prefix"]}
    values["local.model_objects"] = _interpolate(loc["model_objects"], values)
    values["local.gcf_sources_bucket"] = _interpolate(loc["gcf_sources_bucket"], values)
    return values


# --------------------------------------------------------------------------- 1. build source
def test_build_account_reads_cloud_functions_copy_of_the_sources() -> None:
    """Defect 1. Cloud Functions copies the zip of ``storage_source`` into its own bucket
    ``gcf-v2-sources-<project number>-<region>`` (https://cloud.google.com/functions/docs/
    building) and the build fetches it there as the build account; without object read there
    the build fails "Access to bucket gcf-v2-sources-... denied. You must grant Storage Object
    Viewer permission to <build account>" (hashicorp/terraform-provider-google#20571, the
    provider's own cloudfunctions2_basic_builder example failing the same way). Google's
    build-account page lists roles/storage.objectViewer "for retrieving the function source"
    (https://cloud.google.com/functions/docs/securing/build-custom-sa)."""
    grants = [b for b in of_type("google_project_iam_member").values()
              if b["member"] == "serviceAccount:${google_service_account.build.email}"
              and b["role"] == "roles/storage.objectViewer"]
    assert len(grants) == 1, "the build account cannot read gcf-v2-sources-*"
    assert locals_()["gcf_sources_bucket"] == \
        "gcf-v2-sources-${data.google_project.this.number}-${var.region}"
    condition = one(grants[0]["condition"])
    expr = _interpolate(condition["expression"], _values())
    bucket = f"projects/_/buckets/gcf-v2-sources-{PROJECT_NUMBER}-{REGION}"
    assert cel(expr, f"{bucket}/objects/irt-predict/function-source.zip")
    assert cel(expr, bucket)
    for other in (f"{bucket}-other/objects/x.zip", f"projects/_/buckets/{MODEL_BUCKET}/objects/"
                  "models/LATEST", "projects/_/buckets/gcf-v2-sources-999-europe-west1/objects/a"):
        assert not cel(expr, other), other
    data = [b["google_project"]["this"] for b in merged(CONFIG)["data"] if "google_project" in b]
    assert data == [{"project_id": "${var.project_id}"}]


# --------------------------------------------------------------------------- 2. log metrics
def test_alert_policies_wait_for_their_log_based_metrics() -> None:
    """Defect 2. A policy on a log-based metric created moments before fails with 404 "Cannot
    find metric(s) ... If a metric was created recently, it could take up to 10 minutes to
    become available" (hashicorp/terraform-provider-google#11102, open; the provider does not
    retry it). Every policy that reads a ``logging.googleapis.com/user/`` metric depends on a
    ``time_sleep`` (hashicorp/time) of those 10 minutes that follows every metric; the metrics
    filter on the function names, not on the function resources, so the wait starts with the
    apply and runs beside the builds."""
    metrics = of_type("google_logging_metric")
    (sleep,) = [b for (t, n), b in resources().items() if (t, n) == ("time_sleep", "log_metrics")]
    assert sleep["create_duration"] == "600s"
    assert set(sleep["triggers"].values()) == {f"${{google_logging_metric.{m}.id}}"
                                               for m in metrics}
    waiting = set()
    for name, body in alert_policies().items():
        if "logging.googleapis.com/user/" in json.dumps(body):
            assert "${time_sleep.log_metrics}" in body.get("depends_on", []), name
            waiting.add(name)
    assert waiting == {"refresh_failed", "model_stale", "monitoring_alert", "refresh_slow",
                       "model_rejected", "model_behind", "refresh_attempt_failed"}
    for name, body in metrics.items():
        assert "google_cloudfunctions2_function" not in json.dumps(body), name
        assert "google_cloud_scheduler_job" not in json.dumps(body), name  # waits for prepare
    assert "google_cloudfunctions2_function" not in locals_()["prepare_log_filter"]


# --------------------------------------------------------------------------- 3. IAM propagation
def _build_and_runtime_grants() -> set[str]:
    members = {"build", "predict", "prepare"}
    out = set()
    for (rtype, name), body in resources().items():
        if not rtype.endswith("_iam_member"):
            continue
        m = re.search(r"google_service_account\.(\w+)\.email", body["member"])
        if m and m.group(1) in members:
            out.add(f"${{{rtype}.{name}.id}}")
    return out


def test_functions_are_built_after_their_grants_propagated() -> None:
    """Defect 3. IAM grants take effect "typically within 2 minutes", sometimes 7 or more
    (https://cloud.google.com/iam/docs/access-change-propagation); the provider's own example of
    a function built by a custom account waits with ``time_sleep`` before creating it ("builder
    permissions need to stabilize before it can pull the source zip", magic-modules
    mmv1/templates/terraform/examples/cloudfunctions2_basic_builder.tf.tmpl, rendered in
    website/docs/r/cloudfunctions2_function). Both functions depend on a ``time_sleep`` that
    follows every grant of the build and runtime accounts."""
    (sleep,) = [b for (t, n), b in resources().items()
                if (t, n) == ("time_sleep", "iam_propagation")]
    seconds = int(sleep["create_duration"].removesuffix("s"))
    assert seconds >= 120, "less than the 2 minutes Google gives for most grants"
    assert set(sleep["triggers"].values()) == _build_and_runtime_grants()
    for name, body in of_type("google_cloudfunctions2_function").items():
        assert "${time_sleep.iam_propagation}" in body["depends_on"], name


# --------------------------------------------------------------------------- 6. the rest
def _predict_condition() -> str:
    (grant,) = [b for b in of_type("google_storage_bucket_iam_member").values()
                if b["member"] == "serviceAccount:${google_service_account.predict.email}"]
    assert grant["role"] == "roles/storage.objectViewer"
    assert one(grant["condition"])["expression"] == "${local.predict_objects_condition}"
    return _interpolate(" || ".join(_join_list(locals_()["predict_objects_condition"])),
                        _values())


@pytest.mark.parametrize(("name", "readable"), [
    ("models/LATEST", True),
    ("models/20261201T030000Z-3f2a1c/model.json", True),
    ("models/20261201T030000Z-3f2a1c/prepared.csv.gz", False),  # student answers
    ("models/20261201T030000Z-3f2a1c/metrics.json", False),
    ("models/20261201T030000Z-3f2a1c/report.json", False),
    ("models/20261201T030000Z-3f2a1c/PUBLISHED", False),
    ("models/LATEST.bak", False),
    ("other/x/model.json", False),
])
def test_predict_reads_only_the_pointer_and_model_files(name: str, readable: bool) -> None:
    """Defect 6: predict could read the whole model bucket, the training snapshots
    ``prepared.csv.gz`` (student answers) included. Its grant now carries an IAM condition on
    the object name, as Cloud Storage documents (resource.name
    ``projects/_/buckets/BUCKET/objects/OBJECT``, startsWith/endsWith:
    https://cloud.google.com/storage/docs/access-control/iam#conditions,
    https://cloud.google.com/iam/docs/conditions-resource-attributes#resource-name). predict
    reads nothing else (``irt.store.GCSStore.read_pointer``/``get``, ``model.json`` only)."""
    expr = _predict_condition()
    assert cel(expr, f"projects/_/buckets/{MODEL_BUCKET}/objects/{name}") is readable


def test_model_bucket_conditions_need_uniform_access() -> None:
    """IAM conditions on a bucket need uniform bucket-level access (Cloud Storage IAM
    conditions page above)."""
    assert of_type("google_storage_bucket")["models"]["uniform_bucket_level_access"] is True


def test_prod_alerts_name_a_notification_channel() -> None:
    """Defect 6: prod had no notification channel. Every alert names
    ``local.notification_channels`` (the given channel ids plus one email channel per address
    of ``notification_emails``), the module refuses an empty set in every environment (a
    validation that names another variable: Terraform >= 1.9; evaluated in
    ``test_terraform.py::test_every_alert_notifies_a_channel_required_in_every_environment``),
    and prod's tfvars give one."""
    validation = variables(CONFIG)["notification_channels"]["validation"][0]
    assert validation["condition"] == ('${length(var.notification_channels) + '
                                       'length(var.notification_emails) > 0}')
    prod = tfvars("prod")
    assert len(prod["notification_channels"]) + len(prod["notification_emails"]) > 0
    for env in ENVS:
        assert "notification_emails" in tfvars(env)
    expr = locals_()["notification_channels"]
    assert "var.notification_channels" in expr
    assert "google_monitoring_notification_channel.email" in expr
    channel = of_type("google_monitoring_notification_channel")["email"]
    assert channel["type"] == "email"
    assert channel["for_each"] == "${toset(var.notification_emails)}"
    for name, body in alert_policies().items():
        assert body["notification_channels"] == "${local.notification_channels}", name


def test_functions_build_the_uploaded_generation() -> None:
    """Defect 6: ``storage_source.generation`` was left to the provider, whose schema says "If
    the generation is omitted, the latest generation will be used" (hashicorp/google 6.50.0,
    google_cloudfunctions2_function build_config.source.storage_source.generation). The
    functions name the generation Terraform uploaded (google_storage_bucket_object exports
    ``generation``)."""
    for name, body in of_type("google_cloudfunctions2_function").items():
        source = one(one(one(body["build_config"])["source"])["storage_source"])
        assert source["generation"] == \
            f'${{google_storage_bucket_object.source["{name}"].generation}}', name
