"""The drill registry (``tests/support/drill_registry.py``) names tests that exist, and ``-m
drills``
selects them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from drill_registry import DRILLS, is_drill, node_ids

TESTS = Path(__file__).resolve().parents[1]


def _defined(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_every_registered_drill_names_an_existing_test() -> None:
    missing = []
    for node in sorted(node_ids()):
        path, _, name = node.partition("::")
        file = TESTS / path
        if not file.is_file() or (name and name not in _defined(file)):
            missing.append(node)
    assert not missing, f"drill registry names tests that do not exist: {missing}"
    assert all(expected and nodes for expected, nodes in DRILLS.values())


@pytest.mark.parametrize(("nodeid", "expected"), [
    ("tests/refresh/test_refresh.py::test_two_concurrent_runs_publish_exactly_once", True),
    ("tests/serving/test_predict_live.py::test_schemathesis_live[POST /predict]", True),
    ("tests/deploy/test_terraform.py::test_no_public_principals_anywhere", True),
    ("tests/refresh/test_refresh.py::test_ops_show_and_rollback", False),
    ("tests/serving/test_predict_live.py::test_smoke_batch", False),
])
def test_registry_matches_node_ids(nodeid: str, expected: bool) -> None:
    assert is_drill(nodeid) is expected


def test_drills_marker_is_applied(request: pytest.FixtureRequest) -> None:
    """This very session marked a registered test (when it collected one)."""
    marked = [item for item in request.session.items
              if item.get_closest_marker("drills") is not None]
    registered = [item for item in request.session.items if is_drill(item.nodeid)]
    assert all(item in marked for item in registered)
