"""Every alert policy as Terraform plans it, attribute by attribute, against its inventory
(``tests/deploy/alert_policies.yaml``), as Fabric's ``tftest inventory`` files pin plan values.

The operators' alerts in staging and prod are these policies: a change to one (its display
name, filter, threshold, duration, aggregation, documentation, labels, channels, what it
waits for) shows here and is made in the inventory in the same commit. How the configuration
spells them does not: a policy written once per alert or as one key of a ``for_each`` over a
``locals`` map (``tfconfig.alert_policies``) is the same entry, and a filter that names
``local.predict_requests`` is compared with that local's text.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tfconfig import CONFIG, alert_policies, for_each_items, join_list, locals_, merged, of_type

INVENTORY = Path(__file__).with_name("alert_policies.yaml")


def planned() -> dict[str, dict]:
    """The alert policies by key, each ``${local.X}`` that is a ``join(" AND ", [...])`` of
    filter clauses replaced by its text."""
    joins = {name: " AND ".join(items) for name, value in locals_().items()
             if isinstance(value, str) and (items := join_list(value, " AND ")) is not None}

    def inline(value: Any) -> Any:
        if isinstance(value, str):
            return re.sub(r"\$\{local\.(\w+)\}", lambda m: joins.get(m.group(1), m.group(0)),
                          value)
        if isinstance(value, dict):
            return {k: inline(v) for k, v in value.items()}
        if isinstance(value, list):
            return [inline(v) for v in value]
        return value

    return {key: inline(body) for key, body in alert_policies().items()}


def test_alert_policies_are_those_of_the_inventory() -> None:
    expected = yaml.safe_load(INVENTORY.read_text())
    got = planned()
    assert sorted(got) == sorted(expected)
    for key, body in expected.items():
        assert got[key] == body, key


def test_the_inventory_is_read_as_written() -> None:
    """Negative control: a changed threshold, a dropped aggregation field or another
    documentation text is a difference."""
    expected = yaml.safe_load(INVENTORY.read_text())
    got = planned()
    condition = got["refresh_failed"]["conditions"][0]["condition_threshold"][0]
    for change in ({"threshold_value": 1}, {"duration": "60s"}):
        assert {**condition, **change} != \
            expected["refresh_failed"]["conditions"][0]["condition_threshold"][0]
    assert got["predict_4xx"]["documentation"] != expected["predict_5xx"]["documentation"]
    assert "local.predict_requests" not in str(got)


# --------------------------------------------------------------------------- moved, not replaced
#: The alert policies as resources of their own, before they became keys of a for_each:
#: applied so in staging and prod, so each needs a moved block to its key.
FORMER = {"refresh_failed", "model_stale", "predict_5xx", "monitoring_alert", "predict_4xx",
          "model_rejected", "model_behind", "refresh_attempt_failed", "refresh_slow"}
POLICY = "google_monitoring_alert_policy"
_MOVED_FROM = re.compile(rf"\$\{{{POLICY}\.(\w+)\}}")
_MOVED_TO = re.compile(rf'\$\{{{POLICY}\.(\w+)\["(\w+)"\]\}}')


def moved() -> dict[str, tuple[str, str]]:
    """former name -> (resource, key) of every moved block of an alert policy."""
    out = {}
    for block in merged(CONFIG).get("moved", []):
        source, target = _MOVED_FROM.fullmatch(block["from"]), _MOVED_TO.fullmatch(block["to"])
        assert source and target, block
        assert source.group(1) not in out, block
        out[source.group(1)] = (target.group(1), target.group(2))
    return out


def keyed() -> dict[str, str]:
    """key -> resource of every alert policy with a for_each over a locals map."""
    loc = locals_()
    return {key: name for name, body in of_type(POLICY).items()
            if (items := for_each_items(body.get("for_each"), loc)) is not None
            for key in items}


def test_every_former_alert_policy_is_moved_to_its_key() -> None:
    """The policies that became keys keep their former names as keys, and each former
    address moves to its key, so a plan after the change moves the alerts in the state and
    neither destroys nor creates one (terraform/README.md, "Alert policies")."""
    assert set(keyed()) == FORMER
    assert moved() == {key: (resource, key) for key, resource in keyed().items()}
    # a moved block may not start from a resource that is still declared
    assert not set(moved()) & set(of_type(POLICY))
    assert set(alert_policies()) == FORMER | {"predict_latency", "memory"}


def _stand_in(keys: dict[str, str], singles: list[str], with_moved: bool) -> str:
    """The alert policies' addresses as ``terraform_data`` (built into Terraform, no provider
    to download): one resource per former policy, or the for_each resources, the remaining
    singles and the configuration's moved blocks with the type renamed."""
    if not with_moved:
        return "".join(f'resource "terraform_data" "{name}" {{\n  input = "{name}"\n}}\n'
                       for name in sorted(keys) + singles)
    out = [f'resource "terraform_data" "{name}" {{\n  input = "{name}"\n}}\n' for name in singles]
    for resource in sorted(set(keys.values())):
        members = sorted(k for k, r in keys.items() if r == resource)
        out.append(f'resource "terraform_data" "{resource}" {{\n'
                   f"  for_each = toset({json.dumps(members)})\n  input    = each.key\n}}\n")
    for block in merged(CONFIG)["moved"]:
        source = block["from"].removeprefix("${").removesuffix("}")
        target = block["to"].removeprefix("${").removesuffix("}")
        out.append(f"moved {{\n  from = {source.replace(POLICY, 'terraform_data')}\n"
                   f"  to   = {target.replace(POLICY, 'terraform_data')}\n}}\n")
    return "".join(out)


def _terraform() -> str:
    """A Terraform that knows moved blocks and terraform_data (>= 1.4), else skip: the
    project's own is 1.0.3 (fmt only); Cloud Build's image has 1.9.8."""
    path = shutil.which("terraform")
    if path:
        out = subprocess.run([path, "version", "-json"], capture_output=True, text=True,
                             env=_env(), timeout=60)
        version = json.loads(out.stdout or "{}").get("terraform_version", "0")
        if tuple(int(p) for p in version.split(".")[:2]) >= (1, 4):
            return path
    pytest.skip("no Terraform >= 1.4 on PATH to plan the moved blocks with")


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "TF_IN_AUTOMATION": "1",
            "CHECKPOINT_DISABLE": "1"}


def test_a_plan_moves_every_former_policy_and_changes_nothing(tmp_path: Path) -> None:
    """The moved blocks as Terraform reads them: a state with one resource per former policy,
    then a plan with the for_each resources and the configuration's moved blocks (addresses
    kept, type renamed to terraform_data) shows each former address "has moved to" its key,
    and no create, update or destroy."""
    terraform = _terraform()
    keys = keyed()
    singles = sorted(set(alert_policies()) - set(keys))

    def tf(*args: str) -> str:
        proc = subprocess.run([terraform, *args], cwd=tmp_path, capture_output=True,
                              text=True, env=_env(), timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    (tmp_path / "main.tf").write_text(_stand_in(keys, singles, with_moved=False))
    tf("init", "-input=false")
    tf("apply", "-input=false", "-auto-approve")
    (tmp_path / "main.tf").write_text(_stand_in(keys, singles, with_moved=True))
    tf("plan", "-input=false", "-out=moved.tfplan")
    plan = json.loads(tf("show", "-json", "moved.tfplan"))
    changes = {c["address"]: c for c in plan["resource_changes"]}
    assert {a: c["change"]["actions"] for a, c in changes.items()} == \
        {a: ["no-op"] for a in changes}
    assert {c.get("previous_address") for c in changes.values()} - {None} == \
        {f"terraform_data.{name}" for name in FORMER}
    for key, resource in keys.items():
        assert changes[f'terraform_data.{resource}["{key}"]']["previous_address"] == \
            f"terraform_data.{key}"
