"""Figures of a drill, for ``make drills`` (``scripts/drills.py``) to gather into one summary.

A drill calls :func:`record` with its name and a JSON-ready dict. With ``IRT_DRILL_REPORT_DIR``
set (``scripts/drills.py`` sets it) the dict is written to ``<dir>/<name>.json``; without it
(``make test``) nothing is written. Also :func:`scale`: how big a drill runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPORT_DIR_ENV = "IRT_DRILL_REPORT_DIR"
SCALE_ENV = "IRT_DRILLS"


def full() -> bool:
    """``IRT_DRILLS=full`` (``make drills``): the drills at release size; else the CI subset."""
    return os.environ.get(SCALE_ENV, "").strip().lower() == "full"


def record(name: str, figures: dict[str, Any]) -> Path | None:
    """Write ``figures`` as ``<IRT_DRILL_REPORT_DIR>/<name>.json`` (no-op when unset)."""
    folder = os.environ.get(REPORT_DIR_ENV)
    if not folder:
        return None
    path = Path(folder) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1, sort_keys=True, default=str) + "\n",
                    encoding="utf-8")
    return path
