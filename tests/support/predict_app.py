"""``predict`` as the functions-framework test client builds it, over a local model directory
or a Cloud Storage emulator's bucket.

``functions_framework.create_app`` executes ``functions/predict/main.py`` afresh on each call,
so every app built here reads the environment set by its test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import functions_framework
import pytest
from emulators import GCSEmulator
from google.cloud import storage

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "predict" / "main.py")


def publish(root: Path, version: str, text: str) -> None:
    """Write a model version and move LATEST to it (the layout prepare publishes)."""
    folder = root / "models" / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(text)
    (root / "models" / "LATEST").write_text(version + "\n")


def make_client(monkeypatch: pytest.MonkeyPatch, model_dir: Path, **env: str):
    monkeypatch.delenv("MODEL_BUCKET", raising=False)
    monkeypatch.setenv("MODEL_DIR", str(model_dir))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return functions_framework.create_app(target="predict", source=SOURCE).test_client()


def publish_to_bucket(bucket: storage.Bucket, version: str, text: str | None) -> None:
    """Upload a model version (``None``: none, a pointer to a missing object) and move
    LATEST to it, through the real ``google-cloud-storage`` client."""
    if text is not None:
        bucket.blob(f"models/{version}/model.json").upload_from_string(
            text, content_type="application/json")
    bucket.blob("models/LATEST").upload_from_string(version, content_type="text/plain")


def make_bucket_client(monkeypatch: pytest.MonkeyPatch, emulator: GCSEmulator, bucket: str,
                       **env: str):
    """predict reading ``bucket`` on the emulator (storage calls time out after 1 s)."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    monkeypatch.setenv("MODEL_BUCKET", bucket)
    monkeypatch.delenv("MODEL_DIR", raising=False)
    monkeypatch.setenv("STORAGE_TIMEOUT_SECONDS", "1")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return functions_framework.create_app(target="predict", source=SOURCE).test_client()


def served_version(client: Any, request: dict[str, Any]) -> str | None:
    """The model version that answers ``request`` (``None`` when it is not a 200)."""
    r = client.post("/", json=request)
    return r.get_json()["model_version"] if r.status_code == 200 else None
