"""The window length on a log whose items drift (ML Test Score model 3's limit, measured).

The suite tunes ``WINDOW_DAYS`` on the bundled sample log, a stable bank where the longest
window wins (``tests/engine/test_model_quality.py``).  This script shows the other side: on
the drifting log of the staleness test (``tests/refresh/test_monitoring.py::drifting_log``:
60 days, difficulties moving 1-1.8 logits a month), dry-run refreshes with the window ending
2026-10-24 and 7, 14, 30 or all 53 days, each stored model scored online on the next week's
answers.  Not in ``make bench`` (~15 s).

    PYTHONPATH=shared .venv/bin/python benchmarks/tune_window_drift.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "refresh"), str(ROOT / "tests" / "support")]

from answerlogs import write_csv  # noqa: E402
from test_monitoring import drifting_log  # noqa: E402

from irt.engine.artifact import load_model  # noqa: E402
from irt.engine.evaluate import evaluate  # noqa: E402
from irt.engine.preprocess import prepare_rows  # noqa: E402
from irt.refresh.pipeline import RefreshConfig, RunOptions, run_refresh  # noqa: E402
from irt.refresh.sources import DuckDBSource  # noqa: E402
from irt.store import LocalStore  # noqa: E402

END = "2026-10-24T00:00:00Z"


def main() -> int:
    rows = drifting_log()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log = write_csv(rows, folder / "log.csv")
        later = prepare_rows([r for r in rows if r["answered_at"] >= END[:10]],
                             min_answers_per_item=1)
        r = later.responses
        order = np.lexsort((later.answered_at, r.student))
        item_ids = np.asarray(r.item_ids, dtype=object)[r.item][order]
        print("| window (days) | AUC | log-loss |\n|---|---|---|")
        for days in (7, 14, 30, 53):
            store_dir = folder / f"m{days}"
            cfg = RefreshConfig.from_env({"SOURCE_FILE": str(log), "MODEL_DIR": str(store_dir)})
            result = run_refresh(cfg, DuckDBSource(log), LocalStore(store_dir),
                                 RunOptions.from_json({"window_end": END, "window_days": days,
                                                       "dry_run": True}),
                                 log=lambda *a, **k: None)
            model = load_model(LocalStore(store_dir).get(result.body["version"], "model.json"))
            ev, _ = evaluate(model, r.student[order], item_ids, r.correct[order])
            print(f"| {days} | {ev.auc:.4f} | {ev.log_loss:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
