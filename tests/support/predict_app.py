"""``predict`` as the functions-framework test client builds it, over a local model directory.

``functions_framework.create_app`` executes ``functions/predict/main.py`` afresh on each call,
so every app built here reads the environment set by its test.
"""

from __future__ import annotations

from pathlib import Path

import functions_framework
import pytest

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
