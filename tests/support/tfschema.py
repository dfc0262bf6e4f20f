"""Offline schema validation of a Terraform configuration against the real provider schemas.

``terraform validate`` needs the provider plugins; here the schemas come from the pinned
registry packages that ``scripts/provider_schema.py`` reads (hashicorp/google 6.50.0 from
``cdktf-cdktf-provider-google==16.12.1``, time 0.13.1, archive 2.7.1).  For every
``resource``, ``data`` and ``provider`` block of the ``.tf`` files this checks, as the
provider would at ``validate``/``plan``:

* the type exists in its provider;
* every argument is one the schema has (a misspelling gets a did-you-mean), every nested
  block is written as a block (``x { }``) and every attribute as an attribute (``x = ...``),
  a ``max_one`` block appears at most once, ``dynamic`` blocks name a real block;
* every required argument and required block is present, at every level of nesting;
* a literal string given to an attribute whose schema lists ``Possible values: [...]`` (the
  enum the provider validates) is one of them, also in ``cond ? "A" : "B"``, and also where
  it comes from a ``locals`` map through ``each.value`` (a resource with ``for_each`` over
  such a map is checked once per key, as ``tfconfig.instances`` expands it);
* a reference ``google_x.name.attr`` / ``data.google_x.name.attr`` names a resource declared
  in the configuration and an attribute that resource type exports.

It does not evaluate expressions (a value computed from a variable is checked by the
provider at plan time) nor check types beyond block/attribute.
"""

from __future__ import annotations

import difflib
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
from tfconfig import for_each_items, substitute_each

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import provider_schema  # noqa: E402  (scripts/ is not a package)

OPTIONS = hcl2.SerializationOptions(with_comments=False, explicit_blocks=True,
                                    strip_string_quotes=True)
BLOCK = "__is_block__"
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider"}
META_BLOCKS = {"lifecycle", "provisioner", "connection"}
_REFERENCE = re.compile(r"(?<![\w.])(data\.)?((?:google|time|archive)_\w+)\.(\w+)"
                        r"(?:\[[^\]]*\])?\.(\w+)")
_CONDITIONAL = re.compile(r'^\$\{[^"]*\?\s*"([^"]*)"\s*:\s*"([^"]*)"\s*\}$')


@dataclass(frozen=True)
class Schema:
    """One provider's compact schema (see ``scripts/provider_schema.py``)."""

    data: dict[str, Any]

    @property
    def version(self) -> str:
        return self.data["version"]

    def struct(self, name: str) -> dict[str, dict]:
        return self.data["structs"][name]


class SchemaUnavailableError(RuntimeError):
    """The pinned package could not be downloaded (no registry reachable)."""


@cache
def load_schemas(cache_dir: Path = provider_schema.DEFAULT_CACHE) -> dict[str, Schema]:
    """``{provider local name: Schema}``, built from the pinned packages if not cached."""
    out = {}
    for package in provider_schema.PACKAGES:
        try:
            path = provider_schema.ensure(package, cache_dir)
        except Exception as exc:  # pip could not reach PyPI, or the download was cut
            raise SchemaUnavailableError(
                f"{package.pypi}=={package.pypi_version}: {exc}".strip()) from exc
        out[package.provider] = Schema(json.loads(path.read_text()))
    return out


def parse(text: str) -> dict[str, Any]:
    return hcl2.load(io.StringIO(text), serialization_options=OPTIONS)


def _is_block(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(v, dict) and v.get(BLOCK) for v in value))


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _literals(value: Any) -> list[str]:
    """The literal strings an enum attribute may take from this value (none for expressions
    other than a conditional between two literals)."""
    if not isinstance(value, str):
        return []
    if "${" not in value:
        return [value]
    m = _CONDITIONAL.match(value)
    return [m.group(1), m.group(2)] if m else []


class Validator:
    """Collects the problems of one configuration (a folder of ``.tf`` files)."""

    def __init__(self, schemas: dict[str, Schema]) -> None:
        self.schemas = schemas
        self.errors: list[str] = []

    def _error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def body(self, schema: Schema, struct_name: str, body: dict[str, Any], where: str,
             meta: bool = False) -> None:
        struct = schema.struct(struct_name)
        attributes, blocks = struct["attributes"], struct["blocks"]
        seen_blocks: dict[str, int] = {}
        for key, value in body.items():
            if key == BLOCK:
                continue
            here = f"{where}.{key}"
            if meta and key in META_ARGUMENTS:
                continue
            if meta and key in META_BLOCKS:
                continue
            if key == "dynamic" and isinstance(value, list):
                for dyn in value:
                    for label, spec in dyn.items():
                        if label == BLOCK:
                            continue
                        if label not in blocks:
                            self._error(f"{where}.dynamic.{label}",
                                        f"no block {label!r} in {struct_name}"
                                        + _suggest(label, blocks))
                            continue
                        seen_blocks[label] = seen_blocks.get(label, 0) + 2  # any number
                        for content in spec.get("content", []):
                            self.body(schema, blocks[label]["struct"], content,
                                      f"{where}.dynamic.{label}.content")
                continue
            if key in blocks:
                if not _is_block(value):
                    self._error(here, f"{key!r} is a block: write `{key} {{ ... }}`, "
                                      f"not `{key} = ...`")
                    continue
                seen_blocks[key] = seen_blocks.get(key, 0) + len(value)
                if blocks[key]["max_one"] and len(value) > 1:
                    self._error(here, f"at most one {key!r} block ({len(value)} given)")
                for i, item in enumerate(value):
                    self.body(schema, blocks[key]["struct"], item, f"{here}[{i}]")
            elif key in attributes:
                if _is_block(value):
                    self._error(here, f"{key!r} is an attribute: write `{key} = ...`, "
                                      "not a block")
                    continue
                enum = attributes[key].get("enum")
                if enum:
                    for literal in _literals(value):
                        if literal not in enum:
                            self._error(here, f"{literal!r} is not one of {enum}"
                                        + _suggest(literal, enum))
            else:
                self._error(here, f"unsupported argument {key!r} in {struct_name}"
                            + _suggest(key, [*attributes, *blocks]))
        for name, attr in attributes.items():
            if attr["required"] and name not in body:
                self._error(where, f"missing required argument {name!r}")
        for name, block in blocks.items():
            if block["required"] and not seen_blocks.get(name):
                self._error(where, f"missing required block {name!r}")

    def top_level(self, kind: str, tf_type: str, name: str, body: dict[str, Any],
                  file: str) -> None:
        where = f"{file}: {'data.' if kind == 'data' else ''}{tf_type}.{name}"
        provider = tf_type.split("_", 1)[0]
        schema = self.schemas.get(provider)
        if schema is None:
            self._error(where, f"no schema for provider {provider!r} (add its package to "
                               "scripts/provider_schema.py)")
            return
        types = schema.data["resource" if kind == "resource" else "data"]
        if tf_type not in types:
            self._error(where, f"{schema.data['provider']} {schema.version} has no "
                               f"{kind} type {tf_type!r}" + _suggest(tf_type, types))
            return
        self.body(schema, types[tf_type], body, where, meta=True)

    def provider_block(self, name: str, body: dict[str, Any], file: str) -> None:
        schema = self.schemas.get(name)
        if schema is None:
            self._error(f"{file}: provider.{name}", "no schema for this provider")
            return
        struct = schema.data["provider_config"][name]
        body = {k: v for k, v in body.items() if k != "alias"}
        self.body(schema, struct, body, f"{file}: provider.{name}")


def _blocks(parsed: dict[str, Any], kind: str) -> Iterator[tuple[str, str, dict]]:
    for block in parsed.get(kind, []):
        for tf_type, named in block.items():
            if tf_type == BLOCK:
                continue
            for name, body in named.items():
                if name != BLOCK:
                    yield tf_type, name, body


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def validate_texts(texts: dict[str, str], schemas: dict[str, Schema]) -> list[str]:
    """Every problem found in one configuration, given as ``{file name: HCL text}``."""
    validator = Validator(schemas)
    parsed = {name: parse(text) for name, text in texts.items()}
    loc = {key: value for tree in parsed.values() for block in tree.get("locals", [])
           for key, value in block.items() if key != BLOCK}
    declared: dict[tuple[str, str, str], str] = {}
    for file, tree in parsed.items():
        for kind in ("resource", "data"):
            for tf_type, name, body in _blocks(tree, kind):
                declared[(kind, tf_type, name)] = file
                items = for_each_items(body.get("for_each"), loc)
                if items is None:
                    validator.top_level(kind, tf_type, name, body, file)
                    continue
                for key, each in items.items():
                    validator.top_level(kind, tf_type, f'{name}["{key}"]',
                                        substitute_each(body, key, each, strict=False), file)
        for block in tree.get("provider", []):
            for name, body in block.items():
                if name != BLOCK:
                    validator.provider_block(name, body, file)
    for file, tree in parsed.items():
        for text in _strings(tree):
            for m in _REFERENCE.finditer(text):
                kind = "data" if m.group(1) else "resource"
                tf_type, name, attr = m.group(2), m.group(3), m.group(4)
                ref = f"{'data.' if m.group(1) else ''}{tf_type}.{name}"
                if (kind, tf_type, name) not in declared:
                    validator._error(f"{file}: {ref}", "referenced but not declared")
                    continue
                schema = schemas.get(tf_type.split("_", 1)[0])
                if schema is None:
                    continue
                struct = schema.struct(schema.data[kind][tf_type])
                known = {*struct["attributes"], *struct["blocks"],
                         *schema.data["exported"][f"{kind}.{tf_type}"]}
                if attr not in known:
                    validator._error(f"{file}: {ref}.{attr}",
                                     f"{tf_type} exports no attribute {attr!r}"
                                     + _suggest(attr, known))
    return sorted(set(validator.errors))


def validate_dir(folder: Path, schemas: dict[str, Schema]) -> list[str]:
    texts = {str(p.relative_to(ROOT)): p.read_text() for p in sorted(folder.glob("*.tf"))}
    return validate_texts(texts, schemas)


def required_providers(folder: Path) -> dict[str, dict[str, str]]:
    """``{local name: {source, version}}`` of the folder's ``terraform`` blocks."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted(folder.glob("*.tf")):
        for block in parse(path.read_text()).get("terraform", []):
            for req in block.get("required_providers", []):
                for name, spec in req.items():
                    if name != BLOCK:
                        out[name] = spec
    return out
