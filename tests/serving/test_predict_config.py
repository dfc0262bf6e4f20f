"""``predict``'s configuration (:class:`irt.serving.config.PredictConfig`): read once at start,
each rule broken named by its variable, and a misconfigured instance never serves."""

from __future__ import annotations

import json
from pathlib import Path

import functions_framework
import pytest
from predict_app import SOURCE

from irt.errors import ConfigError
from irt.serving import Limits
from irt.serving.config import MAX_BODY_LIMIT, PredictConfig


def test_defaults_are_the_documented_ones() -> None:
    config = PredictConfig.from_env({}, "/srv/model")
    assert config.bucket is None and config.model_dir == "/srv/model"
    assert config.prefix == "models"
    assert (config.refresh_seconds, config.retry_seconds, config.storage_timeout_seconds) == (
        60.0, 5.0, 2.0)
    assert config.max_body_bytes == 1 << 20
    assert config.limits == Limits()
    assert config.retry_after_seconds == 5


def test_values_are_read() -> None:
    config = PredictConfig.from_env({
        "MODEL_BUCKET": " b1 ", "MODEL_PREFIX": "/a/b-c/", "MODEL_REFRESH_SECONDS": "0.5",
        "MODEL_RETRY_SECONDS": "0.3", "STORAGE_TIMEOUT_SECONDS": "1", "MAX_BODY_BYTES": "2000",
        "MAX_RESPONSES": "5", "MAX_ITEMS": "3", "MAX_STUDENTS": "2", "MAX_K": "4"}, "unused")
    assert (config.bucket, config.prefix) == ("b1", "a/b-c")
    assert (config.refresh_seconds, config.retry_seconds) == (0.5, 0.3)
    assert config.retry_after_seconds == 1  # never 0
    assert config.max_body_bytes == 2000
    assert config.limits == Limits(max_responses=5, max_items=3, max_students=2, max_k=4)


@pytest.mark.parametrize(("key", "value", "rule"), [
    ("MAX_K", "0", "between 1 and"),
    ("MAX_STUDENTS", "ten", "must be an integer"),
    ("MAX_RESPONSES", "1.5", "must be an integer"),
    ("MAX_BODY_BYTES", str(MAX_BODY_LIMIT + 1), "between 1 and"),
    ("MODEL_REFRESH_SECONDS", "-1", "between 0.0 and"),
    ("MODEL_RETRY_SECONDS", "nan", "between 0.0 and"),
    ("STORAGE_TIMEOUT_SECONDS", "soon", "must be a number"),
    ("MODEL_PREFIX", "models/../x", "letters, digits"),
    ("MODEL_PREFIX", "a b", "letters, digits"),
])
def test_a_broken_rule_names_the_variable(key: str, value: str, rule: str) -> None:
    with pytest.raises(ConfigError) as err:
        PredictConfig.from_env({key: value}, "unused")
    assert err.value.field == key
    assert rule in err.value.message
    assert str(err.value).startswith(f"{key}: ")


def test_a_misconfigured_instance_does_not_start(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The framework's app creation fails (so Cloud Run never routes to the revision) after
    one CRITICAL JSON log line naming the variable."""
    monkeypatch.delenv("MODEL_BUCKET", raising=False)
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("MAX_K", "-3")
    with pytest.raises(Exception) as err:
        functions_framework.create_app(target="predict", source=SOURCE)
    assert "MAX_K" in str(err.value) or "MAX_K" in repr(err.value.__cause__)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{")]
    bad = [line for line in lines if line.get("event") == "misconfigured"]
    assert len(bad) == 1
    assert bad[0]["severity"] == "CRITICAL" and bad[0]["field"] == "MAX_K"
    assert "between 1 and" in bad[0]["error"]
