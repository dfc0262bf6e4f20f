"""The layers of ``shared/irt`` hold, read from the code's own imports (rules:
``tests/support/layers.py``), and the checker catches a planted back-import or cycle."""

from __future__ import annotations

import shutil
from pathlib import Path

import layers
import pytest
from fresh_python import predict_main_modules

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "shared" / "irt"


def test_every_module_has_a_layer() -> None:
    found = {layers.layer_of(name) for name in layers.modules(PACKAGE)}
    assert found == {"package", "errors", "settings", "engine", "store", "serving",
                     "refresh", "tools"}
    assert layers.graph(PACKAGE)["irt"] == {}  # the version only: everybody may import it


def test_imports_go_one_way() -> None:
    assert layers.violations(PACKAGE) == []


def test_no_import_cycles() -> None:
    assert layers.cycles(PACKAGE) == []


def test_the_engine_reads_no_environment_and_imports_no_cloud_client() -> None:
    assert layers.uses_environment(PACKAGE, "engine") == []
    engine = {top for name, found in layers.third_party(PACKAGE).items()
              if layers.layer_of(name) == "engine" for top in found}
    assert engine <= {"numpy", "scipy"}
    assert "google" not in engine


def test_the_rules_are_what_the_issue_asks() -> None:
    """Serving never imports refresh; the engine imports no other layer; refresh reaches
    serving from monitoring alone."""
    assert "refresh" not in layers.ALLOWED["serving"]
    assert "serving" not in layers.ALLOWED["refresh"]
    assert layers.ALLOWED["engine"] == {"errors"}
    assert {"irt.refresh.monitoring"} == layers.REFRESH_USES_SERVING


def _planted(tmp_path: Path, module: str, line: str) -> Path:
    copy = tmp_path / "irt"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    path = copy.joinpath(*module.split(".")[1:]).with_suffix(".py")
    path.write_text(path.read_text(encoding="utf-8") + f"\n\ndef _planted():\n    {line}\n")
    return copy


@pytest.mark.parametrize(("module", "line", "expected"), [
    ("irt.engine.model", "from irt.refresh import pipeline", "engine -> refresh"),
    ("irt.engine.ability", "import irt.serving.plain", "engine -> serving"),
    ("irt.serving.plain", "from irt.refresh.sql import QueryParams", "serving -> refresh"),
    ("irt.store", "from irt.engine.model import ItemModel", "store -> engine"),
    ("irt.refresh.sql", "from irt.serving import predict", "refresh -> serving"),
    ("irt.engine.calibrate", "import google.cloud.storage", "numpy and scipy only"),
    ("irt.serving.api", "import flask", "no HTTP framework"),
])
def test_a_planted_back_import_is_caught(tmp_path: Path, module: str, line: str,
                                         expected: str) -> None:
    found = layers.violations(_planted(tmp_path, module, line))
    assert len(found) == 1 and expected in found[0], found
    assert found[0].startswith(module + ":")


def test_a_planted_cycle_is_caught(tmp_path: Path) -> None:
    copy = _planted(tmp_path, "irt.engine.model", "from irt.engine.learning import learning_of")
    assert layers.violations(copy) == []  # within the engine: no layer rule broken
    found = layers.cycles(copy)
    assert len(found) == 1 and {"irt.engine.learning", "irt.engine.model"} <= set(found[0])


def test_a_planted_environment_read_in_the_engine_is_caught(tmp_path: Path) -> None:
    copy = _planted(tmp_path, "irt.engine.preprocess", "return os.environ.get('X')")
    last = len((copy / "engine" / "preprocess.py").read_text().splitlines())
    assert layers.uses_environment(copy, "engine") == [f"irt.engine.preprocess:{last}"]


def test_predict_imports_nothing_from_refresh_or_tools(tmp_path: Path) -> None:
    """What ``functions/predict/main.py`` loads, in a fresh interpreter, as the deployed
    build does (no model: it logs that and starts)."""
    loaded = [m for m in predict_main_modules(tmp_path)
              if m.split(".")[0] in ("irt", "scipy", "pyarrow", "duckdb")]
    assert "irt.serving.api" in loaded and "irt.engine.model" in loaded
    assert [m for m in loaded if m.startswith(("irt.refresh", "irt.tools"))] == []
    assert [m for m in loaded if not m.startswith("irt")] == []  # no scipy, Arrow, DuckDB
