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

import re
from pathlib import Path
from typing import Any

import yaml
from tfconfig import alert_policies, join_list, locals_

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
