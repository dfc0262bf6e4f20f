"""The package's layers and the rules between them, checked from the code's own imports.

Every ``import`` and ``from ... import`` of every module under ``shared/irt`` counts, at the
top of the file or inside a function (a lazy import is still a dependency).  ``from P import
n`` depends on the module ``P.n`` when there is one, else on ``P``.

Layers (``LAYER_OF``) and what each may import (``ALLOWED``):

* ``errors``   - ``irt/errors.py``: nothing;
* ``settings`` - ``irt/settings.py`` (environment values, checked): errors;
* ``engine``   - ``irt/engine/``: errors (numpy and scipy only; no cloud client, HTTP
  framework or environment variable);
* ``store``    - ``irt/store.py`` (the artifact layout): errors;
* ``serving``  - ``irt/serving/``: engine, store, settings, errors (no HTTP framework);
* ``refresh``  - ``irt/refresh/``: engine, store, settings, errors, and serving only from
  ``irt/refresh/monitoring.py`` (the canary and the skew replay exercise predict's own
  answers);
* ``tools``    - ``irt/tools/`` and the command launchers: anything.

``irt/__init__.py`` (the version, no imports) may be imported by every layer.  No module may
take part in an import cycle.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "irt"

ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "settings": {"errors"},
    "engine": {"errors"},
    "store": {"errors"},
    "serving": {"engine", "store", "settings", "errors"},
    "refresh": {"engine", "store", "settings", "errors"},
    "tools": {"engine", "store", "settings", "errors", "serving", "refresh"},
}
#: The one module allowed to use the serving layer from the refresh layer.
REFRESH_USES_SERVING = {"irt.refresh.monitoring"}
#: Third-party packages the engine may import (beside the standard library).
ENGINE_THIRD_PARTY = {"numpy", "scipy"}
#: Never in the serving layer: it maps requests to answers without an HTTP framework.
HTTP_FRAMEWORKS = {"flask", "werkzeug", "functions_framework", "gunicorn"}


def layer_of(module: str) -> str:
    """The layer of a module name under :data:`PACKAGE` (``package`` for ``irt`` itself)."""
    parts = module.split(".")
    if parts == [PACKAGE]:
        return "package"
    if parts[1] in ("engine", "serving", "refresh", "tools"):
        return parts[1]
    if parts[1] in ("errors", "settings", "store"):
        return parts[1]
    return "tools"  # __main__ and the command launchers (ops, explain, fairness)


def modules(root: Path) -> dict[str, Path]:
    """``{module name: file}`` of every module of the package at ``root`` (``.../irt``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(tree: ast.AST, name: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """``(imported module name, line)`` of every import in ``tree`` (relative ones
    resolved against ``name``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno
            yield base, node.lineno


def graph(root: Path) -> dict[str, dict[str, int]]:
    """``{module: {module of the package it imports: line}}``."""
    mods = modules(root)
    out: dict[str, dict[str, int]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        by_statement: dict[int, list[str]] = {}
        for target, line in _imports(tree, name, path.name == "__init__.py"):
            by_statement.setdefault(line, []).append(target)
        deps: dict[str, int] = {}
        for line, targets in by_statement.items():
            # `from P import a, b` yields P.a, P.b, then P: depend on the modules named,
            # and on P itself only when it also gives a name that is not a module.
            *named, base = targets if len(targets) > 1 else (targets * 2)
            wanted = [t for t in named if t in mods]
            if base in mods and (not named or len(wanted) < len(named)):
                wanted.append(base)
            for target in wanted:
                if target != name:
                    deps.setdefault(target, line)
        out[name] = deps
    return out


def third_party(root: Path) -> dict[str, dict[str, int]]:
    """``{module: {top-level non-package import: line}}`` (standard library excluded)."""
    out: dict[str, dict[str, int]] = {}
    for name, path in modules(root).items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        found: dict[str, int] = {}
        for target, line in _imports(tree, name, path.name == "__init__.py"):
            top = target.split(".")[0]
            if top and top != PACKAGE and top != "__future__" and \
                    top not in sys.stdlib_module_names:
                found.setdefault(top, line)
        out[name] = found
    return out


def violations(root: Path) -> list[str]:
    """Every broken layer rule, as ``"module:line imports target (layer -> layer)"``."""
    problems = []
    for name, deps in graph(root).items():
        src = layer_of(name)
        for target, line in sorted(deps.items()):
            dst = layer_of(target)
            if dst in (src, "package"):
                continue
            if dst in ALLOWED[src] or (src == "refresh" and dst == "serving"
                                       and name in REFRESH_USES_SERVING):
                continue
            problems.append(f"{name}:{line} imports {target} ({src} -> {dst})")
    for name, found in third_party(root).items():
        src = layer_of(name)
        for top, line in sorted(found.items()):
            if src == "engine" and top not in ENGINE_THIRD_PARTY:
                problems.append(f"{name}:{line} imports {top} (the engine: numpy and scipy only)")
            if src == "serving" and top in HTTP_FRAMEWORKS:
                problems.append(f"{name}:{line} imports {top} (serving: no HTTP framework)")
    return problems


def cycles(root: Path) -> list[list[str]]:
    """The import cycles (strongly connected components of more than one module, or a module
    importing itself), each sorted; Tarjan's algorithm."""
    g = graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def uses_environment(root: Path, layer: str) -> list[str]:
    """``module:line`` of every ``os.environ`` / ``os.getenv`` in a layer's modules."""
    out = []
    for name, path in modules(root).items():
        if layer_of(name) != layer:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id == "os" and node.attr in ("environ", "getenv", "putenv"):
                out.append(f"{name}:{node.lineno}")
    return out
