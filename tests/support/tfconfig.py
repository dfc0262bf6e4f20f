"""The Terraform configuration (``terraform/``) parsed with python-hcl2, for the deploy tests.

Blocks and attributes are not told apart here (``explicit_blocks=False``): the schema check
(``tfschema.py``) does that against the provider's schema.
"""

from __future__ import annotations

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
