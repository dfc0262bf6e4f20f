"""The report figures README.md quotes come with the command that measures them, and the ones
a test can afford still hold: plotly.js's size, and the sample log's page."""

from __future__ import annotations

import re
from pathlib import Path

from plotly.offline import get_plotlyjs

from irt.engine.artifact import load_model
from irt.tools.cli import main

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SAMPLE = ROOT / "samples" / "answers.csv.gz"


def test_the_plotly_bundle_size_is_the_one_quoted_with_its_command() -> None:
    found = re.search(r'`python -c "from plotly\.offline import get_plotlyjs;\s+'
                      r'print\(len\(get_plotlyjs\(\)\.encode\(\)\)\)"`: ([\d,]+) bytes', README)
    assert found, "README no longer quotes the plotly.js size with its command"
    assert int(found.group(1).replace(",", "")) == len(get_plotlyjs().encode())


def test_the_sample_page_size_is_the_one_quoted_with_its_commands(tmp_path: Path) -> None:
    found = re.search(r"`irt fit samples/answers\.csv\.gz --lenient\s+-o sample\.json`, then "
                      r"`irt report sample\.json samples/answers\.csv\.gz --lenient -o\s+"
                      r"sample\.html`: (\d+) items, 30k answers\): ([\d.]+) MB", README)
    assert found, "README no longer quotes the sample page with its commands"
    model, page = tmp_path / "sample.json", tmp_path / "sample.html"
    assert main(["fit", str(SAMPLE), "--lenient", "-o", str(model), "-q"]) in (0, 3)
    assert main(["report", str(model), str(SAMPLE), "--lenient", "-o", str(page), "-q"]) == 0
    assert load_model(model.read_bytes()).n_items == int(found.group(1))
    assert round(page.stat().st_size / 1e6, 2) == float(found.group(2))
