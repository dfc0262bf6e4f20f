"""``docs/ml-test-score.md`` stays honest: 28 rows (7 per section), every automated point names
tests that exist, every half point names a procedure (``Manual:``) or its tests and what is
missing (``Partial:``), the score table adds up on both scales, and every mutant of the
mutation check (``scripts/mutation.py``) is caught by a test its point names."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ml-test-score.md"
SECTIONS = ("Data", "Model", "Infrastructure", "Monitoring")


def rows() -> dict[str, list[list[str]]]:
    text = DOC.read_text(encoding="utf-8")
    out: dict[str, list[list[str]]] = {}
    for section in SECTIONS:
        body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
        out[section] = [[c.strip() for c in line.strip().strip("|").split("|")]
                        for line in body.splitlines()
                        if re.match(r"\|\s*\d+\s*\|", line)]
    return out


def defined(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_seven_tests_per_section_each_scored() -> None:
    for section, table in rows().items():
        assert [int(r[0]) for r in table] == list(range(1, 8)), section
        for row in table:
            assert len(row) == 5 and row[4] in ("0", "0.5", "1"), (section, row[0])


def test_every_named_test_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    refs = re.findall(r"`(tests/[\w/]+\.py)((?:::\w+)?)`", text)
    # "`tests/x.py::a`, `::b`" names b in the same file
    for section, table in rows().items():
        for row in table:
            current = None
            for path, name, short in re.findall(r"`(tests/[\w/]+\.py)(::\w+)?`|`::(\w+)`",
                                                row[3]):
                if path:
                    current = path
                    if name:
                        refs.append((path, name))
                elif short:
                    assert current, (section, row[0], short)
                    refs.append((current, "::" + short))
    assert len(refs) > 40
    missing = []
    for path, name in refs:
        file = ROOT / path
        if not file.is_file() or (name and name[2:] not in defined(file)):
            missing.append(path + name)
    assert not missing, missing


def test_automated_points_name_what_runs_and_manual_ones_a_procedure() -> None:
    for section, table in rows().items():
        for row in table:
            evidence, score = row[3], row[4]
            if score == "1":
                assert "tests/" in evidence, (section, row[0])
            elif score == "0.5":
                assert evidence.startswith(("Manual:", "Partial:")), (section, row[0])
                if evidence.startswith("Partial:"):
                    assert "tests/" in evidence and "Missing:" in evidence, (section, row[0])


def test_the_score_table_adds_up() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = rows()
    totals = {s: sum(float(r[4]) for r in table[s]) for s in SECTIONS}
    for section in SECTIONS:
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| {section} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert float(cells[-1].strip("*")) == totals[section], section
        assert int(cells[1]) == sum(r[4] == "1" for r in table[section]), section
    total = next(ln for ln in text.splitlines() if ln.startswith("| **total**"))
    assert f"**{sum(totals.values()):g}**" in total
    assert f"is **{min(totals.values()):g}**" in text
    assert f"the sum, {sum(totals.values()):g}," in text
    # the "now" line of the before/after table is this table
    now = next(ln for ln in text.splitlines() if ln.startswith("| now "))
    cells = [c.strip() for c in now.strip("|").split("|")]
    assert [float(c) for c in cells[1:7]] == [totals[s] for s in SECTIONS] + [
        sum(totals.values()), min(totals.values())]


def test_every_mutant_is_caught_by_a_test_its_point_names() -> None:
    """Each mutant of ``make mutation`` guards a row: that row names at least one of the
    tests the mutation check runs against it (so the table and the check stay together)."""
    spec = importlib.util.spec_from_file_location("mutation", ROOT / "scripts" / "mutation.py")
    assert spec and spec.loader
    mutation = importlib.util.module_from_spec(spec)
    sys.modules["mutation"] = mutation  # dataclasses look their module up there
    spec.loader.exec_module(mutation)
    table = rows()
    assert len(mutation.MUTANTS) >= 18  # the audit's 18, its Terraform change as two
    for mutant in mutation.MUTANTS:
        for point in mutant.point.split(", "):
            section, number = point.split()
            row = table[section.capitalize()][int(number) - 1]
            assert any(t.split("::")[-1] in row[3] or f"`{t.split('::')[0]}`" in row[3]
                       for t in mutant.tests), (mutant.name, point)  # a test, or its file
