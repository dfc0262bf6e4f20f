"""Vendoring (``make build`` = ``scripts/build_functions.py``): each built function folder holds
exactly ``main.py``, ``requirements.txt`` and a copy of ``shared/irt``, reproducibly, and runs on
its own.

The proof for ``predict`` is end to end: a fresh virtual environment with nothing but
``functions/predict/requirements.txt`` installed (cached under ``build/test-venvs/``, keyed by
the requirements' hash), the real ``functions-framework`` serving the built folder on 127.0.0.1
with ``shared/`` nowhere on the path, a model read from a local directory and from the Cloud
Storage emulator. Every built function is also imported and served (functions-framework's
test client) from its folder alone, and the third-party modules it imports at import time are
checked against its ``requirements.txt`` (with their dependencies).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata as md
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from emulators import CALL_TIMEOUT, PROJECT, free_port, short_retry
from locks import read_lock, read_pins
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from irt.engine.calibrate import FitConfig, fit
from irt.engine.model import ItemModel
from irt.engine.simulate import simulate

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared"
VENV_CACHE = ROOT / "build" / "test-venvs"
EXPECTED_FUNCTIONS = ("predict", "prepare")


def _load_build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_functions",
                                                  ROOT / "scripts" / "build_functions.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_functions = _load_build_script()
FUNCTIONS = build_functions.function_names()


def tree(folder: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build") / "functions"
    build_functions.build_all(out)
    return out


# --------------------------------------------------------------------------- layout
@pytest.mark.parametrize("name", EXPECTED_FUNCTIONS)
def test_expected_functions_exist(name: str) -> None:
    if name == "prepare" and not (ROOT / "functions" / "prepare" / "main.py").exists():
        pytest.skip("functions/prepare/main.py not written yet")
    assert name in FUNCTIONS


def test_build_writes_one_folder_per_function_and_nothing_else(built: Path) -> None:
    assert sorted(p.name for p in built.iterdir()) == FUNCTIONS


@pytest.mark.parametrize("name", FUNCTIONS)
def test_built_folder_is_main_requirements_and_irt_only(built: Path, name: str) -> None:
    folder = built / name
    server = ["gunicorn.conf.py", "server.py"] if name == "predict" else []  # its own server
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["irt", "main.py", "requirements.txt", *server])
    src = ROOT / "functions" / name
    for file in ["main.py", "requirements.txt", *server]:
        assert (folder / file).read_bytes() == (src / file).read_bytes(), file
    expected = {rel: data for rel, data in tree(SHARED / "irt").items()
                if "__pycache__" not in rel and not rel.endswith((".pyc", ".pyo"))
                and not any(part.startswith(".") for part in rel.split("/"))}
    assert tree(folder / "irt") == expected
    assert not [p for p in folder.rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"]


def test_build_is_reproducible_and_replaces_stale_output(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "functions"
    (out / "removed-function").mkdir(parents=True)
    (out / "predict" / "irt").mkdir(parents=True)
    (out / "predict" / "irt" / "stale.py").write_text("x = 1\n")
    build_functions.build_all(out)
    assert sorted(p.name for p in out.iterdir()) == FUNCTIONS
    for name in FUNCTIONS:
        assert tree(out / name) == tree(built / name)


def test_build_ignores_caches_in_shared(tmp_path: Path) -> None:
    functions, package = tmp_path / "functions", tmp_path / "irt"
    (functions / "f").mkdir(parents=True)
    (functions / "f" / "main.py").write_text("def f(request):\n    return 'ok'\n")
    (functions / "f" / "requirements.txt").write_text("")
    (functions / "f" / "notes.md").write_text("not deployed\n")
    (functions / "no_main").mkdir()
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (package / "sub").mkdir()
    (package / "sub" / "data.json").write_text("{}")
    (package / ".hidden").write_text("")
    out = tmp_path / "out"
    build_functions.build_all(out, functions, package)
    assert sorted(tree(out)) == ["f/irt/__init__.py", "f/irt/sub/data.json", "f/main.py",
                                 "f/requirements.txt"]


# --------------------------------------------------------------------------- import-time deps
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def _import_time_nodes(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports executed when the module loads: module and class level, not in functions,
    not under ``if TYPE_CHECKING``, not in ``try`` blocks that handle ImportError."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.ClassDef):
            yield from _import_time_nodes(node.body)
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                yield from _import_time_nodes(node.body)
            yield from _import_time_nodes(node.orelse)
        elif isinstance(node, ast.Try):
            handled = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
            if not any("ImportError" in h or "ModuleNotFoundError" in h for h in handled):
                yield from _import_time_nodes(node.body)
            yield from _import_time_nodes(node.finalbody)
        elif isinstance(node, (ast.With,)):
            yield from _import_time_nodes(node.body)


def import_time_third_party(folder: Path) -> dict[str, str]:
    """Top-level third-party module -> where it is imported, following ``irt`` imports from
    ``main.py`` through the vendored package."""
    found: dict[str, str] = {}
    queue, seen = [folder / "main.py"], set()
    while queue:
        path = queue.pop()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        rel = path.relative_to(folder)
        for node in _import_time_nodes(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.ImportFrom) and node.level:  # relative, inside irt
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
                parts = node.module.split(".") if node.module else []
                queue.append(base.joinpath(*parts).with_suffix(".py") if parts
                             else base / "__init__.py")
                queue.extend(base.joinpath(*parts, a.name).with_suffix(".py")
                             for a in node.names)
                continue
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""])
            for name in names:
                top = name.split(".")[0]
                if top == "irt":
                    parts = name.split(".")
                    for k in range(1, len(parts) + 1):  # each package's __init__ runs too
                        queue.append(folder.joinpath(*parts[:k], "__init__.py"))
                    queue.append(folder.joinpath(*parts).with_suffix(".py"))
                    if isinstance(node, ast.ImportFrom):
                        for a in node.names:
                            queue.append(folder.joinpath(*parts, a.name).with_suffix(".py"))
                            queue.append(folder.joinpath(*parts, a.name, "__init__.py"))
                elif top not in STDLIB:
                    found.setdefault(top, f"{rel}:{node.lineno}")
    return found


def requirement_closure(requirements: Path) -> set[str]:
    """Distributions named in ``requirements`` plus, as installed here, their dependencies."""
    env = default_environment()
    todo = list(read_lock(requirements))  # the lock (make lock): every package, with hashes
    closure: set[str] = set()
    while todo:
        name = canonicalize_name(todo.pop())
        if name in closure:
            continue
        closure.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for spec in requires:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
                todo.append(req.name)
    return closure


@pytest.mark.parametrize("name", FUNCTIONS)
def test_requirements_cover_import_time_imports(built: Path, name: str) -> None:
    providers = md.packages_distributions()
    closure = requirement_closure(built / name / "requirements.txt")
    missing = {}
    for module, where in import_time_third_party(built / name).items():
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if not dists & closure:
            missing[module] = (where, sorted(dists) or "not installed here")
    assert not missing, f"{name}: imported at import time but not in requirements.txt: {missing}"


def _bare_env(**extra: str) -> dict[str, str]:
    """An environment without PYTHONPATH (so no shared/), nor any user site-packages."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
           and not k.startswith(("MODEL_", "BQ_", "SOURCE_", "STORAGE_EMULATOR"))}
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


IMPORT_PROBE = """
import importlib.util, json, os, sys
import main, irt
import functions_framework
entry = os.environ["PROBE_ENTRY_POINT"]
app = functions_framework.create_app(target=entry, source=os.path.abspath("main.py"))
reply = app.test_client().get("/")
print(json.dumps({
    "entry_point": callable(getattr(main, entry, None)),
    "irt": irt.__file__, "main": main.__file__, "path": sys.path,
    "scipy": importlib.util.find_spec("scipy") is not None,
    "get": [reply.status_code, reply.is_json],
}))
"""


def _probe(python: Path | str, folder: Path, name: str, **env: str) -> dict:
    proc = subprocess.run([str(python), "-s", "-c", IMPORT_PROBE], cwd=folder,
                          env=_bare_env(PROBE_ENTRY_POINT=name, **env),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_self_contained(info: dict, folder: Path) -> None:
    assert info["entry_point"]
    status, is_json = info["get"]  # served by functions-framework: a JSON answer, no crash
    assert is_json and status in (200, 405, 503), info["get"]
    assert Path(info["irt"]).resolve().is_relative_to(folder.resolve())
    assert Path(info["main"]).resolve().is_relative_to(folder.resolve())
    shared = str(SHARED.resolve())
    assert not [p for p in info["path"] if p and str(Path(p).resolve()).startswith(shared)]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_built_function_imports_and_answers_from_its_folder_alone(built: Path, name: str,
                                                                  tmp_path: Path) -> None:
    info = _probe(sys.executable, built / name, name, MODEL_DIR=str(tmp_path))
    _assert_self_contained(info, built / name)


# --------------------------------------------------------------------------- predict, alone
@pytest.fixture(scope="module")
def predict_python() -> Path:
    """A venv with only functions/predict/requirements.txt installed (cached per hash)."""
    requirements = ROOT / "functions" / "predict" / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    venv = VENV_CACHE / f"predict-{digest}"
    python, stamp = venv / "bin" / "python", venv / ".installed"
    if not stamp.exists():
        uv = Path(sys.executable).with_name("uv")  # requirements-dev.txt; pip if absent
        venv_cmd = [sys.executable, "-m", "venv", "--clear", str(venv)]
        if uv.exists():
            install = [str(uv), "pip", "install", "--quiet", "--require-hashes",
                       "--python", str(python)]
            venv_cmd.append("--without-pip")
        else:
            install = [str(python), "-m", "pip", "install", "--quiet", "--require-hashes",
                       "--disable-pip-version-check"]
        subprocess.run(venv_cmd, check=True, timeout=120)
        proc = subprocess.run([*install, "-r", str(requirements)], env=_bare_env(),
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"install failed:\n{proc.stderr[-3000:]}"
        stamp.write_text(requirements.read_text())
    return python


@pytest.fixture(scope="module")
def fitted() -> ItemModel:
    return fit(simulate(1500, 30, 15, seed=11).responses, FitConfig(compute_se=False)).model


def _call(url: str, body: object | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def google_entrypoint() -> str:
    """predict's ``GOOGLE_ENTRYPOINT`` build variable in ``terraform/irt/functions.tf``."""
    text = (ROOT / "terraform" / "irt" / "functions.tf").read_text()
    match = re.search(r'GOOGLE_ENTRYPOINT\s*=\s*"([^"]+)"', text)
    assert match, "terraform/irt/functions.tf sets no GOOGLE_ENTRYPOINT for predict"
    return match.group(1)


def test_entrypoint_is_gunicorn_with_the_function_config() -> None:
    """Production's command names the files the build ships (gunicorn.conf.py, server.py)."""
    assert google_entrypoint() == "gunicorn -c gunicorn.conf.py server:app"
    assert {"server.py", "gunicorn.conf.py"} <= {p.name for p in
                                                  (ROOT / "functions" / "predict").iterdir()}


@pytest.fixture
def serve_built(built: Path, predict_python: Path):
    """Start the built predict from the bare venv as the buildpack does with Terraform's
    ``GOOGLE_ENTRYPOINT`` (read from ``terraform/irt/functions.tf``, run in the function's
    folder); yield its URL."""
    procs: list[subprocess.Popen[bytes]] = []
    entrypoint = google_entrypoint()

    def start(**env: str) -> str:
        port = free_port()
        argv = entrypoint.split()
        argv[0] = str(predict_python.parent / argv[0])  # the venv's gunicorn
        proc = subprocess.Popen(
            argv, cwd=built / "predict",
            env=_bare_env(**env, HOST="127.0.0.1", PORT=str(port)), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError("server exited: " + proc.stderr.read().decode()[-3000:])
            try:
                if _call(url + "/healthz")[0] == 200:
                    return url
            except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("built predict did not become healthy in 30 s")
            time.sleep(0.1)

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        proc.stderr.close()


def test_predict_venv_holds_only_its_requirements(built: Path, predict_python: Path,
                                                  tmp_path: Path) -> None:
    info = _probe(predict_python, built / "predict", "predict", MODEL_DIR=str(tmp_path))
    _assert_self_contained(info, built / "predict")
    assert not info["scipy"], "scipy is not a predict requirement and must not be needed"


ANSWERS = [{"item_id": f"q{j}", "correct": j % 3 != 0} for j in range(12)]


def _assert_serves(url: str, version: str) -> None:
    status, body = _call(url + "/model")
    assert status == 200 and body["model_version"] == version
    status, body = _call(url + "/predict", {"responses": ANSWERS, "items": ["q20", "nope"]})
    assert status == 200, body
    assert body["model_version"] == version
    assert 0 < body["probabilities"]["q20"] < 1
    assert body["unknown_items"] == ["nope"]
    status, body = _call(url + "/next-items", {"responses": ANSWERS, "k": 2})
    assert status == 200 and len(body["items"]) == 2


def test_built_predict_serves_alone_from_a_model_directory(serve_built, fitted: ItemModel,
                                                           tmp_path: Path) -> None:
    folder = tmp_path / "models" / "v-local"
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(fitted.to_json())
    (tmp_path / "models" / "LATEST").write_text("v-local\n")
    _assert_serves(serve_built(MODEL_DIR=str(tmp_path)), "v-local")


def test_built_predict_serves_alone_from_the_bucket(serve_built, fitted: ItemModel,
                                                    gcs_emulator, gcs_bucket) -> None:
    """MODEL_BUCKET: google-cloud-storage from predict's own requirements, emulator-backed."""
    kwargs = {"retry": short_retry(), "timeout": CALL_TIMEOUT}
    gcs_bucket.blob("models/v-bucket/model.json").upload_from_string(
        fitted.to_json(), content_type="application/json", **kwargs)
    gcs_bucket.blob("models/LATEST").upload_from_string("v-bucket", **kwargs)
    url = serve_built(MODEL_BUCKET=gcs_bucket.name, STORAGE_EMULATOR_HOST=gcs_emulator.url,
                      GOOGLE_CLOUD_PROJECT=PROJECT)
    _assert_serves(url, "v-bucket")


def test_requirements_files_are_pinned() -> None:
    """The input (requirements.in) pins exactly; the deployed lock pins every package with
    its hashes (read_lock refuses a line that is not ``name==version``; tests/deploy/
    test_locks.py checks the hashes and that the two agree)."""
    for name in FUNCTIONS:
        assert read_pins(ROOT / "functions" / name / "requirements.in")
        for entries in read_lock(ROOT / "functions" / name / "requirements.txt").values():
            assert all(e.hashes for e in entries), (name, entries)
