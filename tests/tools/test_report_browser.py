"""The model report in a real browser: headless Chromium (Debian's ``chromium``, installed by
``make browser``) driven by Playwright with ``executable_path`` (no browser download).

Each page must load from disk with no console error, no uncaught exception, no dialog and no
network request; every figure must be drawn (traces, a non-empty plot area, drawn paths);
the table must sort and filter; a clicked row must add its item's curves, which must be the
model's.  A screenshot of each page is saved (``IRT_REPORT_SCREENSHOT=path.png`` also writes
one of prepare's page, as ``docs/report.png`` was made)."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from answerlogs import simulated_rows, write_csv
from refresh_run import config, run
from report_cases import CHROMIUM_ARGS, EVIL, MISFITS, chromium, page_data, planted_answers

from irt.engine.artifact import load_model
from irt.engine.model import irf
from irt.store import LocalStore
from irt.tools.cli import main

FIGURES_JS = """() => Array.from(document.querySelectorAll('.irt-figure')).map(d => {
  const box = d.getBoundingClientRect();
  const paths = Array.from(d.querySelectorAll('.cartesianlayer .trace path'))
    .filter(p => (p.getAttribute('d') || '').length > 8);
  return {id: d.id, traces: (d.data || []).length, width: box.width, height: box.height,
          svg: d.querySelectorAll('svg.main-svg').length, paths: paths.length};
})"""


@pytest.fixture(scope="module")
def browser():
    path = chromium()
    if path is None:
        pytest.skip("Debian's chromium is not installed: `make browser` (part of `make test`) "
                    "installs it with apt-get as root; where neither is available the browser "
                    "checks cannot run")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Opened:
    """A report open in a page, with everything that went wrong while it loaded."""

    def __init__(self, browser, path: Path) -> None:
        self.problems: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        page = self.page
        page.on("console", lambda m: m.type == "error" and self.problems.append(
            f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"uncaught: {e}"))
        page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"),
                                     d.dismiss()))
        page.on("request", lambda r: r.url.startswith(("file:", "data:", "blob:", "about:"))
                or self.problems.append(f"network request: {r.url}"))
        page.goto(path.resolve().as_uri(), wait_until="load")
        page.wait_for_function("() => document.querySelectorAll('.irt-figure svg.main-svg')"
                               ".length >= document.querySelectorAll('.irt-figure').length")

    def figures(self) -> dict[str, dict]:
        return {f["id"]: f for f in self.page.evaluate(FIGURES_JS)}

    def assert_drawn(self, expected: set[str]) -> None:
        figures = self.figures()
        assert set(figures) == expected
        for f in figures.values():
            assert f["traces"] >= 1 and f["svg"] >= 1 and f["paths"] >= 1, f
            assert f["width"] > 300 and f["height"] > 300, f

    def column(self, header: str) -> list[str]:
        return self.page.evaluate("""(h) => {
          const t = document.getElementById('irt-items');
          const k = Array.from(t.tHead.rows[0].cells).findIndex(c => c.textContent === h);
          return Array.from(t.tBodies[0].rows).filter(r => !r.hidden)
            .map(r => r.cells[k].textContent);
        }""", header)


@pytest.fixture(scope="module")
def cli_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("browser")
    answers = planted_answers(root / "answers.csv")
    model, other = root / "model.json", root / "1pl.json"
    assert main(["fit", str(answers), "-o", str(model)]) == 0
    assert main(["fit", str(answers), "--model", "1pl", "-o", str(other)]) == 0
    out = root / "report.html"
    assert main(["report", str(model), str(answers), "--against", str(other),
                 "-o", str(out)]) == 0
    return {"root": root, "html": out, "model": load_model(model.read_bytes())}


def test_the_cli_report_renders_every_figure(browser, cli_report: dict) -> None:
    opened = Opened(browser, cli_report["html"])
    opened.assert_drawn({"fig-icc", "fig-iif", "fig-test", "fig-ability", "fig-calibration",
                         "fig-drift"})
    shot = cli_report["root"] / "report.png"
    opened.page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    # the markup item id is shown as text, and ran nothing (no dialog among the problems)
    assert EVIL in opened.column("item")
    assert opened.problems == []


def test_table_sorts_filters_and_draws_a_clicked_item(browser, cli_report: dict) -> None:
    opened = Opened(browser, cli_report["html"])
    page, model = opened.page, cli_report["model"]
    n_items = len(page_data(cli_report["html"].read_text())["items"])
    assert len(opened.column("item")) == n_items == 22
    page.click("#irt-items th:text-is('b')")
    b = [float(v) for v in opened.column("b")]
    assert b == sorted(b) and len(b) == n_items
    page.click("#irt-items th:text-is('b')")
    assert [float(v) for v in opened.column("b")] == sorted(b, reverse=True)
    page.fill("#irt-filter", "Q-")
    assert sorted(opened.column("item")) == sorted(MISFITS)
    assert page.inner_text("#irt-count") == "4 of 22 rows"
    page.fill("#irt-filter", "")
    page.check("#irt-flagged-only")
    assert sorted(opened.column("item")) == sorted(MISFITS)
    page.uncheck("#irt-flagged-only")
    # a click on Q03's row adds its curves; they are the model's P and information
    before = opened.figures()["fig-icc"]["traces"]
    page.click("#irt-items tbody tr:has(td:text-is('Q03'))")
    assert opened.figures()["fig-icc"]["traces"] == before + 1
    trace = page.evaluate("() => { const d = document.getElementById('fig-icc').data; "
                          "return d[d.length - 1]; }")
    info = page.evaluate("() => { const d = document.getElementById('fig-iif').data; "
                         "return d[d.length - 1]; }")
    assert trace["name"] == info["name"] == "Q03"
    j = model.item_ids.index("Q03")
    theta = np.array(trace["x"])
    np.testing.assert_allclose(trace["y"], irf(theta, model.a[j], model.b[j], model.c[j]),
                               atol=1e-4)
    np.testing.assert_allclose(info["y"], model.information_by_position(theta, np.array([j]))[:, 0],
                               atol=1e-4)
    page.click("#irt-pick-clear")
    assert opened.figures()["fig-icc"]["traces"] == 0
    page.click("#irt-pick-flagged")
    names = page.evaluate("() => document.getElementById('fig-icc').data.map(t => t.name)")
    assert sorted(names) == sorted(MISFITS)
    assert opened.problems == []


def test_a_report_without_answers(browser, cli_report: dict) -> None:
    bare = cli_report["root"] / "bare.html"
    assert main(["report", str(cli_report["root"] / "model.json"), "-o", str(bare)]) == 0
    opened = Opened(browser, bare)
    opened.assert_drawn({"fig-icc", "fig-iif", "fig-test"})
    opened.page.screenshot(path=str(cli_report["root"] / "bare.png"), full_page=True)
    assert opened.problems == []


def test_prepares_report_renders_every_figure(browser, tmp_path: Path) -> None:
    """The page ``prepare`` writes for a second window, gated against the first."""
    rows = simulated_rows(400, 25, 15, seed=11)
    rows += simulated_rows(400, 25, 15, seed=12, start=datetime(2026, 10, 25, tzinfo=UTC),
                           student_prefix="new")
    cfg = config(tmp_path, write_csv(rows, tmp_path / "log.csv"))
    assert run(cfg, options={"window_end": "2026-10-24T00:00:00Z"}).status == 200
    second = run(cfg)
    assert second.status == 200
    store = LocalStore(cfg.model_dir)
    path = Path(store.location) / second.body["version"] / "report.html"
    copy = tmp_path / "prepare-report.html"  # opened as a download from the bucket would be
    shutil.copyfile(path, copy)
    opened = Opened(browser, copy)
    opened.assert_drawn({"fig-icc", "fig-iif", "fig-test", "fig-ability", "fig-calibration",
                         "fig-drift"})
    text = opened.page.inner_text("#run")
    assert "This refresh: accepted" in text and "Quality gate: passed" in text
    opened.page.screenshot(path=str(tmp_path / "prepare-report.png"), full_page=True)
    if os.environ.get("IRT_REPORT_SCREENSHOT"):  # how docs/report.png was made
        top = opened.page.evaluate("() => document.getElementById('run')"
                                   ".getBoundingClientRect().top + window.scrollY")
        opened.page.screenshot(path=os.environ["IRT_REPORT_SCREENSHOT"], full_page=True,
                               clip={"x": 0, "y": top - 10, "width": 1280, "height": 1500})
    assert opened.problems == []


def test_the_checks_catch_a_broken_page(browser, cli_report: dict, tmp_path: Path) -> None:
    """The same checks on a page with a planted console error, network request, dialog and
    script error report all four, and a figure with no trace fails ``assert_drawn``."""
    bare = cli_report["root"] / "bare.html"
    if not bare.exists():
        assert main(["report", str(cli_report["root"] / "model.json"), "-o", str(bare)]) == 0
    planted = ("<script>console.error('planted'); fetch('http://127.0.0.1:9/x')"
               ".catch(() => {}); alert('planted'); undefinedFunction();</script></body>")
    broken = tmp_path / "broken.html"
    broken.write_text(bare.read_text().replace("</body>", planted))
    opened = Opened(browser, broken)
    problems = "\n".join(opened.problems)
    for found in ("console: planted", "network request: http://127.0.0.1:9/x",
                  "dialog: planted", "uncaught: ", "undefinedFunction"):
        assert found in problems, problems
    opened.page.click("#irt-pick-clear")
    with pytest.raises(AssertionError):
        opened.assert_drawn({"fig-icc", "fig-iif", "fig-test"})
