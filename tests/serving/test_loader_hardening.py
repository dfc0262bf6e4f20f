"""Issue #17 items 7 and 8 in predict's loader: a version rejected once is read again with
backoff (it may be fixed in place), and a deeply nested model.json is a rejected model."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

import irt.serving.loader as loader
from irt.engine.model import ItemModel
from irt.serving.loader import ModelCache
from irt.serving.requests import Limits
from irt.store import LocalStore


def _model_json() -> bytes:
    one = np.ones(3)
    return ItemModel("2pl", ("q0", "q1", "q2"), one, one * 0, one * 0, one * 0.1, one * 0.1,
                     one * np.nan).to_json().encode()


@pytest.fixture
def store(tmp_path) -> LocalStore:
    s = LocalStore(tmp_path)
    s.put("v1", "model.json", _model_json(), "application/json")
    s.move_pointer("v1", None)
    return s


def test_a_version_rejected_once_is_read_again_after_a_backoff(store, monkeypatch, caplog):
    monkeypatch.setattr(loader, "REJECTED_BACKOFF_SECONDS", 0.05)
    cache = ModelCache(store, Limits(), refresh_seconds=0, retry_seconds=0,
                       log=logging.getLogger("t"))
    assert cache.load()[1] == "v1"
    store.put("v2", "model.json", _model_json()[:100], "application/json")  # a bad read
    store.move_pointer("v2", "v1")
    with caplog.at_level(logging.INFO):
        assert cache.load()[1] == "v1"
        assert "model rejected" in caplog.text
        store.put("v2", "model.json", _model_json(), "application/json")  # now valid
        assert cache.load()[1] == "v1"  # inside the backoff: not read again
        time.sleep(0.1)
        assert cache.load()[1] == "v2"


@pytest.mark.parametrize("depth", [100, 100_000])
def test_a_deeply_nested_model_is_rejected_not_a_storage_failure(store, caplog, depth):
    cache = ModelCache(store, Limits(), refresh_seconds=0, retry_seconds=0,
                       log=logging.getLogger("t"))
    cache.load()
    nested = _model_json().replace(b'"options": {}', b'"options": {"x": ' + b"[" * depth +
                                   b"]" * depth + b"}", 1)
    assert nested != _model_json()
    store.put("v2", "model.json", nested, "application/json")
    store.move_pointer("v2", "v1")
    with caplog.at_level(logging.INFO):
        assert cache.load()[1] == "v1"
    rejected = [r for r in caplog.records if r.getMessage().startswith("model rejected")]
    assert rejected and rejected[0].levelno == logging.ERROR, caplog.text
    assert "nested" in rejected[0].fields["error"]
