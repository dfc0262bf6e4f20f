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
    with pytest.raises(SystemExit, match="MAX_K: must be between 1 and"):
        functions_framework.create_app(target="predict", source=SOURCE)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{")]
    bad = [line for line in lines if line.get("event") == "misconfigured"]
    assert len(bad) == 1
    assert bad[0]["severity"] == "CRITICAL" and bad[0]["field"] == "MAX_K"
    assert "between 1 and" in bad[0]["error"]


@pytest.mark.parametrize("server", ["gunicorn", "functions-framework"])
def test_a_misconfigured_server_stops_with_one_line_not_a_traceback(server: str) -> None:
    """Under either production command a bad ``MAX_*`` stops the server as a bad
    ``READ_*_TIMEOUT_SECONDS`` does: the CRITICAL JSON line and the variable's rule, no
    Python traceback for an operator to read through."""
    from livesrv import ServerStartError, live_server

    with pytest.raises(ServerStartError) as err, \
            live_server(env={"MAX_K": "-3"}, start_timeout=30, server=server):
        pass
    assert "MAX_K: must be between 1 and 10000, got -3" in str(err.value)
    assert "Traceback" not in str(err.value)


# --------------------------------------------------------------------------- the server
GUNICORN_CONF = Path(__file__).resolve().parents[2] / "functions" / "predict" / "gunicorn.conf.py"


def _gunicorn_config(monkeypatch: pytest.MonkeyPatch, **env: str):
    """gunicorn's Config as ``gunicorn -c gunicorn.conf.py`` builds it under ``env``."""
    from gunicorn.config import Config

    for key in ("WORKERS", "THREADS", "PORT", "HOST", "GUNICORN_LOG_LEVEL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    namespace: dict = {"__file__": str(GUNICORN_CONF)}
    exec(compile(GUNICORN_CONF.read_text(), str(GUNICORN_CONF), "exec"), namespace)
    cfg = Config()
    for key, value in namespace.items():
        if key in cfg.settings:
            cfg.set(key, value)
    return cfg


def test_gunicorn_conf_reads_workers_threads_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """Terraform's WORKERS/THREADS and Cloud Run's PORT reach gunicorn; the request line is
    capped (functions-framework's own command line sets no cap: limit_request_line=0)."""
    cfg = _gunicorn_config(monkeypatch, WORKERS="2", THREADS="4", PORT="9000")
    assert (cfg.workers, cfg.threads, cfg.address) == (2, 4, [("0.0.0.0", 9000)])
    assert cfg.worker_class_str == "server.BoundedThreadWorker"
    assert cfg.reuse_port and cfg.preload_app and cfg.timeout == 0
    assert (cfg.limit_request_line, cfg.limit_request_fields,
            cfg.limit_request_field_size) == (8190, 100, 8190)
    defaults = _gunicorn_config(monkeypatch)
    assert (defaults.workers, defaults.threads, defaults.address) == (1, 8, [("0.0.0.0", 8080)])


@pytest.mark.parametrize(("key", "value"), [
    ("WORKERS", "1_0"), ("WORKERS", " 2 "), ("WORKERS", "0"), ("WORKERS", "65"),
    ("THREADS", "+4"), ("THREADS", "\u0664"), ("PORT", "80_80"), ("PORT", "70000")])
def test_gunicorn_conf_refuses_a_lenient_or_out_of_range_count(
        monkeypatch: pytest.MonkeyPatch, key: str, value: str) -> None:
    """int() would take each of these (or they are out of range): the server must not start
    with 10 workers from ``1_0``; it stops naming the variable and the rule."""
    with pytest.raises(SystemExit, match=f"^{key}: must be"):
        _gunicorn_config(monkeypatch, **{key: value})


@pytest.mark.parametrize("value", ["abc", "0", "-1", "601", "1_0", " 5"])
def test_a_bad_read_deadline_stops_the_server_naming_it(value: str) -> None:
    """READ_HEADER_TIMEOUT_SECONDS must be a number of seconds in [0.001, 600]: otherwise the
    server does not start and says which variable and why."""
    from livesrv import ServerStartError, live_server

    with pytest.raises(ServerStartError, match="READ_HEADER_TIMEOUT_SECONDS: must be"), \
            live_server(env={"READ_HEADER_TIMEOUT_SECONDS": value}, start_timeout=20):
        pass
