"""Issue #17: the artifact store survives a SIGKILL mid pointer move (5), a second refresh of
the same window never rewrites a published version (6), and hostile stored files (8, 13)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from irt.engine.model import ItemModel
from irt.store import LocalStore
from irt.tools.ops import main as ops_main

ROOT = Path(__file__).resolve().parents[2]

DIES_MID_MOVE = """
import os, signal, sys
sys.path[:0] = [{shared!r}]
import numpy as np

from irt.engine.model import ItemModel
from irt.store import LocalStore

class Dies(LocalStore):
    def _write(self, path, data):
        if path.name == "LATEST":
            os.kill(os.getpid(), signal.SIGKILL)   # killed holding the pointer lock
        super()._write(path, data)

store = Dies({root!r})
store.move_pointer("v2", store.read_pointer()[1])
"""


def _model_json(n: int = 2) -> bytes:
    one = np.ones(n)
    model = ItemModel("2pl", tuple(f"q{i}" for i in range(n)), one, one * 0, one * 0,
                      one * 0.1, one * 0.1, one * np.nan)
    return model.to_json().encode()


def _two_versions(root: Path) -> LocalStore:
    store = LocalStore(root)
    for v in ("v1", "v2"):
        store.put(v, "model.json", b"{}", "application/json")
    store.move_pointer("v1", None)
    return store


def test_a_sigkill_during_the_pointer_move_does_not_wedge_the_store(tmp_path):
    store = _two_versions(tmp_path)
    script = DIES_MID_MOVE.format(shared=str(ROOT / "shared"), root=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert store.read_pointer()[0] == "v1"
    t0 = time.monotonic()
    store.move_pointer("v2", store.read_pointer()[1])  # no 10 s wait, no false conflict
    assert time.monotonic() - t0 < 2
    assert store.read_pointer()[0] == "v2"


def test_rollback_works_after_a_killed_move(tmp_path, capsys):
    store = _two_versions(tmp_path)
    store.put("v1", "model.json", _model_json(), "application/json")
    store.put("v1", "report.json", b'{"decision": "accepted"}', "application/json")
    store.move_pointer("v2", "v1")
    (tmp_path / "models" / ".LATEST.lock").write_text("pid 1\n")  # left by an older release
    script = DIES_MID_MOVE.format(shared=str(ROOT / "shared"), root=str(tmp_path))
    subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    t0 = time.monotonic()
    assert ops_main(["--dir", str(tmp_path), "rollback", "v1"]) == 0, capsys.readouterr().err
    assert time.monotonic() - t0 < 2
    assert store.read_pointer()[0] == "v1"
