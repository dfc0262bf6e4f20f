"""The benchmark's floor reference (``benchmarks/floor/main.py``) answers exactly as predict.

``bench_predict.py`` reads the floor's throughput as what the request's numerical work alone
leaves of hello world's; that holds only while the floor computes predict's very answer.
The benchmark checks one request at start-up; this checks many, 2PL and 3PL.
"""

from __future__ import annotations

from pathlib import Path

import functions_framework
import numpy as np
import pytest

from irt.engine.calibrate import FitConfig, fit
from irt.engine.simulate import simulate

ROOT = Path(__file__).resolve().parents[2]
FLOOR = str(ROOT / "benchmarks" / "floor" / "main.py")
PREDICT = str(ROOT / "functions" / "predict" / "main.py")


@pytest.mark.parametrize("model_type", ["2pl", "3pl"])
def test_floor_answers_as_predict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  model_type: str) -> None:
    data = simulate(1500, 60, 30, seed=11, model=model_type)
    model = fit(data.responses, FitConfig(model=model_type, compute_se=False)).model
    (tmp_path / "models" / "v7").mkdir(parents=True)
    (tmp_path / "models" / "v7" / "model.json").write_text(model.to_json())
    (tmp_path / "models" / "LATEST").write_text("v7\n")
    monkeypatch.delenv("MODEL_BUCKET", raising=False)
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    floor = functions_framework.create_app(target="floor", source=FLOOR).test_client()
    predict = functions_framework.create_app(target="predict", source=PREDICT).test_client()
    rng = np.random.default_rng(3)
    for n_answers in (1, 2, 10, 40, 60):
        answered = rng.choice(model.n_items, n_answers, replace=False).tolist()
        body = {"responses": [{"item_id": model.item_ids[j], "correct": bool(rng.random() < 0.6)}
                              for j in answered],
                "items": [model.item_ids[j] for j in rng.choice(model.n_items, 25).tolist()]}
        want = predict.post("/predict", json=body)
        got = floor.post("/", json=body)
        assert want.status_code == got.status_code == 200
        assert got.get_json() == want.get_json()
        assert got.get_json()["ability"]["n_answers"] == n_answers
