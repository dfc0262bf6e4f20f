"""Issue #17: the artifact store survives a SIGKILL mid pointer move (5), a second refresh of
the same window never rewrites a published version (6), and hostile stored files (8, 13)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from answerlogs import simulated_rows, write_csv
from fresh_python import run_fresh
from refresh_run import Logs, config, run

from irt.engine.model import ItemModel
from irt.refresh.pipeline import CLAIM_LEASE_SECONDS
from irt.store import LocalStore
from irt.tools.ops import main as ops_main

ROOT = Path(__file__).resolve().parents[2]

DIES_MID_MOVE = """
import os, signal, sys
sys.path[:0] = [{shared!r}]
import numpy as np

from irt.engine.model import ItemModel
from irt.refresh.pipeline import CLAIM_LEASE_SECONDS
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
    proc = run_fresh(script, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
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
    run_fresh(script, timeout=60)
    t0 = time.monotonic()
    assert ops_main(["--dir", str(tmp_path), "rollback", "v1"]) == 0, capsys.readouterr().err
    assert time.monotonic() - t0 < 2
    assert store.read_pointer()[0] == "v1"


# --------------------------------------------------------------------------- 6: same window twice
@pytest.fixture
def log_file(tmp_path):
    return write_csv(simulated_rows(400, 25, 15, seed=11), tmp_path / "log.csv")


class OtherRunFirst(LocalStore):
    """Another run of the same window publishes while this one computes: this run's
    "already published?" check (its first ``versions()``) sees the store as it was before."""

    def __init__(self, root, other) -> None:
        super().__init__(root)
        self.other = other

    def versions(self):
        before = super().versions()
        if self.other is not None:
            other, self.other = self.other, None
            other()
        return before


def _stamps(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_a_second_run_of_the_same_window_never_rewrites_the_published_version(
        tmp_path, log_file):
    cfg = config(tmp_path, log_file)
    first: list[Any] = []
    logs = Logs()
    second = run(cfg, store=OtherRunFirst(cfg.model_dir, lambda: first.append(run(cfg))),
                 logs=logs)
    assert first[0].status == 200 and first[0].body["status"] == "published"
    assert second.status == 200 and second.body["status"] == "unchanged", second.body
    assert second.body["version"] == first[0].body["version"]
    assert "refresh_failed" not in logs.events()


def test_the_published_files_are_not_touched_by_the_loser(tmp_path, log_file):
    cfg = config(tmp_path, log_file)
    stamps: dict[Path, int] = {}

    def other() -> None:
        run(cfg)
        stamps.update(_stamps(Path(cfg.model_dir)))

    run(cfg, store=OtherRunFirst(cfg.model_dir, other))
    assert _stamps(Path(cfg.model_dir)) == stamps


def test_a_version_another_run_is_writing_is_a_409_and_left_alone(tmp_path, log_file):
    cfg = config(tmp_path, log_file)
    version = run(cfg, options={"dry_run": True}).body["version"]
    store = LocalStore(cfg.model_dir)
    report = Path(store.location) / version / "report.json"
    report.unlink()  # the other run is between its first upload and report.json
    stamps = _stamps(Path(cfg.model_dir))
    result = run(cfg)
    assert result.status == 409 and result.body["status"] == "version_busy", result.body
    assert _stamps(Path(cfg.model_dir)) == stamps and store.read_pointer()[0] is None
    # once its writer is surely dead (older than the lease), a run takes the version over
    old = time.time() - CLAIM_LEASE_SECONDS - 60
    os.utime(Path(store.location) / version / "prepared.csv.gz", (old, old))
    result = run(cfg)
    assert result.status == 200 and result.body["status"] == "published"


def test_a_dry_run_of_the_window_does_not_block_the_real_run(tmp_path, log_file):
    cfg = config(tmp_path, log_file)
    dry = run(cfg, options={"dry_run": True})
    real = run(cfg)
    assert real.status == 200 and real.body["status"] == "published"
    assert real.body["version"] == dry.body["version"]


def test_gcs_store_create_is_create_only(gcs_bucket):
    from irt.store import GCSStore

    store = GCSStore(gcs_bucket.name, client=gcs_bucket.client)
    assert store.created("v1", "prepared.csv.gz") is None
    assert store.create("v1", "prepared.csv.gz", b"first", "application/gzip") is True
    assert store.create("v1", "prepared.csv.gz", b"second", "application/gzip") is False
    assert store.get("v1", "prepared.csv.gz") == b"first"
    assert abs(store.created("v1", "prepared.csv.gz") - time.time()) < 600
