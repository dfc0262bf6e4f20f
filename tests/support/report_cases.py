"""Data for the model-report tests (``tests/tools/test_report*.py``): a complete test with
one planted misfitting item and an item id that is HTML, and headless Chromium as the
browser tests start it."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np

#: Items a 2PL cannot fit: a guessing floor, a U shape, a step, a weak reversal.
MISFITS = ("Q-guess", "Q-ushape", "Q-step", "Q-reversed")
#: An item id made of markup: the page must show it as text and run none of it.
EVIL = "<img src=x onerror=alert(1)></script>"
#: Debian's chromium (``make browser`` installs it); the flags keep it off the network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def planted_answers(path: Path, n_students: int = 1200, n_items: int = 17, seed: int = 5
                    ) -> Path:
    """A complete test: ``n_items`` 2PL items, :data:`EVIL` (a 2PL item too) and the four
    :data:`MISFITS` (``theta ~ N(0, 1)``), as an answers CSV with ``answered_at`` in answer
    order."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(n_students)
    b = rng.normal(0.0, 0.8, n_items + 1)
    curves = [1 / (1 + np.exp(-1.2 * (theta - bj))) for bj in b]
    curves += [0.4 + 0.6 / (1 + np.exp(-2.5 * (theta - 0.8))),   # guessing floor
               1 / (1 + np.exp(-3 * (np.abs(theta) - 1))),       # U shape
               np.where(theta < 0.5, 0.2, 0.95),                 # step
               1 / (1 + np.exp(0.3 * theta))]                    # weak reversal
    p = np.array(curves).T
    y = (rng.random(p.shape) < p).astype(int)
    names = [f"Q{j:02d}" for j in range(n_items)] + [EVIL, *MISFITS]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "item_id", "correct", "answered_at"])
        t = 0
        for s in range(n_students):
            for j in rng.permutation(len(names)).tolist():
                t += 1
                w.writerow([f"s{s}", names[j], int(y[s, j]), 1_700_000_000 + t])
    return path


def chromium() -> str | None:
    """The Chromium binary, or ``None`` when it is not installed."""
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def page_data(html: str) -> dict:
    """The JSON the page embeds for its script (items, theta, columns)."""
    import json
    import re

    found = re.search(r'<script type="application/json" id="irt-data">(.*?)</script>', html,
                      re.S)
    assert found, "no irt-data element"
    return json.loads(found.group(1))


def page_figures(html: str) -> dict:
    """The Plotly figures the page draws, ``{div id: figure}``."""
    import json
    import re

    found = re.search(r"<script>var IRT_FIGURES = (.*?);</script>", html, re.S)
    assert found, "no IRT_FIGURES"
    return json.loads(found.group(1))
