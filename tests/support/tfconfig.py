"""The Terraform configuration (``terraform/``) parsed with python-hcl2, for the deploy tests.

Blocks and attributes are not told apart here (``explicit_blocks=False``): the schema check
(``tfschema.py``) does that against the provider's schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "terraform"
CONFIG = TF / "irt"  # the one root configuration; an environment is a tfvars + a backend.hcl
ENVS = ("staging", "prod")
OPTIONS = hcl2.SerializationOptions(with_comments=False, explicit_blocks=False,
                                    strip_string_quotes=True)
PUBLIC = ("allusers", "allauthenticatedusers")
DOC_KEYS = {"description", "error_message", "content", "display_name"}


@cache
def parse(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return hcl2.load(f, serialization_options=OPTIONS)


def merged(folder: Path) -> dict[str, list]:
    """All top-level blocks of the folder's .tf files, by block type."""
    out: dict[str, list] = {}
    for path in sorted(folder.glob("*.tf")):
        for key, value in parse(path).items():
            out.setdefault(key, []).extend(value)
    return out


def resources(folder: Path = CONFIG) -> dict[tuple[str, str], dict]:
    """(type, name) -> body of every resource in the folder."""
    out = {}
    for block in merged(folder).get("resource", []):
        for rtype, named in block.items():
            for name, body in named.items():
                out[(rtype, name)] = body
    return out


def of_type(rtype: str) -> dict[str, dict]:
    return {name: body for (t, name), body in resources().items() if t == rtype}


# ``for_each`` over a map in ``locals``, as the alert policies use it: ``local.NAME``, or that
# map with defaults merged into each entry (``{for k, v in local.NAME : k => merge(local.D, v)}``).
_FOR_EACH_LOCAL = re.compile(r"\$\{local\.(\w+)\}")
_FOR_EACH_MERGE = re.compile(
    r"\$\{\{for (\w+), (\w+) in local\.(\w+) : \1 => merge\(local\.(\w+), \2\)\}\}")
_EACH = re.compile(r"\$\{each\.(?:(key)|value\.(\w+))\}")


def for_each_items(expr: Any, loc: dict[str, Any]) -> dict[str, dict] | None:
    """``{each.key: each.value}`` of a ``for_each`` over a ``locals`` map of objects (the two
    forms above); ``None`` for any other ``for_each``."""
    if not isinstance(expr, str):
        return None
    if m := _FOR_EACH_LOCAL.fullmatch(expr):
        items = loc.get(m.group(1))
        if isinstance(items, dict) and all(isinstance(v, dict) for v in items.values()):
            return dict(items)
        return None
    if m := _FOR_EACH_MERGE.fullmatch(expr):
        defaults = loc[m.group(4)]
        return {key: {**defaults, **value} for key, value in loc[m.group(3)].items()}
    return None


def substitute_each(value: Any, key: str, each: dict[str, Any], strict: bool = True) -> Any:
    """``value`` with ``each.key`` and ``each.value.X`` replaced as Terraform evaluates them: a
    whole ``${each.value.X}`` is X itself (any type), one inside a template is X's text; and
    with every attribute set to null dropped (null leaves an argument unset). ``strict``: any
    other use of ``each`` (``x[each.key]``, a number inside a template) is an error; otherwise
    it is left as written."""
    if isinstance(value, str):
        def item(m: re.Match) -> Any:
            return key if m.group(1) else each[m.group(2)]

        def text(m: re.Match) -> str:
            found = item(m)
            if isinstance(found, str):
                return found
            assert not strict, f"a {type(found).__name__} inside the template {value!r}"
            return m.group(0)

        if whole := _EACH.fullmatch(value):
            return item(whole)
        out = _EACH.sub(text, value)
        assert not strict or "each." not in out, f"unsupported use of each: {value!r}"
        return out
    if isinstance(value, dict):
        return {k: v for k, v in ((k, substitute_each(v, key, each, strict))
                                  for k, v in value.items()) if v is not None}
    if isinstance(value, list):
        return [substitute_each(v, key, each, strict) for v in value]
    return value


def instances(rtype: str, folder: Path = CONFIG) -> dict[str, dict]:
    """Every instance of a resource type by name: a resource with ``for_each`` over a
    ``locals`` map gives one body per key, ``each`` substituted and ``for_each`` dropped
    (keys must not repeat across resources); any other resource its body, under its name."""
    loc = locals_(folder)
    out: dict[str, dict] = {}
    for (t, name), body in resources(folder).items():
        if t != rtype:
            continue
        items = for_each_items(body.get("for_each"), loc)
        if items is None:
            assert name not in out, name
            out[name] = body
            continue
        template = {k: v for k, v in body.items() if k != "for_each"}
        for key, each in items.items():
            assert key not in out, f"{rtype}: key {key!r} twice"
            out[key] = substitute_each(template, key, each)
    return out


def alert_policies() -> dict[str, dict]:
    """The alert policies as Terraform plans them, by key (the for_each key, or the name)."""
    return instances("google_monitoring_alert_policy")


def join_list(expr: str, sep: str) -> list[str] | None:
    """The string list of ``${join("SEP", [...])}`` as python-hcl2 renders it, else None."""
    m = re.fullmatch(r'\$\{join\(' + re.escape(json.dumps(sep)) + r', (\[.*\])\)\}', expr, re.S)
    return json.loads(m.group(1)) if m else None


def variables(folder: Path) -> dict[str, dict]:
    return {name: body for block in merged(folder).get("variable", [])
            for name, body in block.items()}


def locals_(folder: Path = CONFIG) -> dict[str, Any]:
    return {k: v for block in merged(folder).get("locals", []) for k, v in block.items()}


def tfvars(env: str) -> dict[str, Any]:
    return parse(TF / "environments" / env / "terraform.tfvars")


def backend(env: str) -> dict[str, Any]:
    """The environment's backend.hcl (``-backend-config``): bucket and prefix."""
    return parse(TF / "environments" / env / "backend.hcl")


def strings(value: Any, skip: set[str] = DOC_KEYS) -> Iterator[str]:
    """Every string in a parsed value (and every dict key), except under documentation keys."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            if key not in skip:
                yield from strings(item, skip)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item, skip)


def one(value: list[dict]) -> dict:
    """A nested block (hcl2 gives a list of one dict)."""
    assert isinstance(value, list) and len(value) == 1, value
    return value[0]


def all_tf_files() -> list[Path]:
    return sorted([*TF.rglob("*.tf"), *TF.rglob("*.tfvars")])
