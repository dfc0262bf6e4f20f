"""A refresh run on the local path (DuckDB over a CSV log, a local model directory) with its
log lines captured, as the refresh tests drive it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from irt.refresh.pipeline import RefreshConfig, RunOptions, run_refresh
from irt.refresh.sources import DuckDBSource
from irt.store import LocalStore

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
END = {"window_end": "2026-11-01T00:00:00Z", "window_days": 61}


class Logs:
    """Captures log calls as the JSON lines production writes."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def __call__(self, severity: str, message: str, **fields: Any) -> None:
        self.lines.append(json.loads(json.dumps(
            {"severity": severity, "message": message, **fields}, default=str)))

    def events(self) -> list[str]:
        return [line.get("event", "") for line in self.lines]


def config(tmp_path: Path, source_file: Path, **env: str) -> RefreshConfig:
    base = {"SOURCE_FILE": str(source_file), "MODEL_DIR": str(tmp_path / "models"),
            "COLUMN_SKILL": "skill_id", "MIN_ANSWERS_PER_ITEM": "5", "DATA_MIN_ANSWERS": "50",
            "GATE_HOLDOUT_STUDENTS": "0.3"}
    return RefreshConfig.from_env({**base, **env})


def run(cfg: RefreshConfig, store: Any = None, options: dict | None = None,
        logs: Logs | None = None, source: Any = None):
    store = store or LocalStore(cfg.model_dir)
    source = source or DuckDBSource(cfg.source_file, cfg.columns)
    return run_refresh(cfg, source, store, RunOptions.from_json({**END, **(options or {})}),
                       log=logs or Logs(), now=NOW)
