"""The floor: ``predict``'s answer to the benchmark request, and nothing else.

A reference for ``bench_predict.py``'s HTTP section, not a function to deploy.  It answers
a plain single-student request exactly as ``predict`` does - the body parsed with orjson,
the ids looked up, the EAP ability and P(correct) from the engine's own serving numerics,
the answer written with orjson - and skips everything else ``predict`` does for production:
content-type, size and schema checks with field-named errors, the duplicate-key check,
routing, the model refresh and the per-request log line.  It trusts the request to be
valid, to name only items the model knows and no item twice (the benchmark's request is).

Served with the same command and settings as ``predict`` and hello world, its throughput
is what this request's numerical work leaves of the framework's on this machine: the most
any ``predict`` on the same stack (functions-framework, Flask, numpy) could reach.
Configuration: ``MODEL_DIR`` holding ``models/LATEST`` and ``models/<version>/model.json``.
"""

from __future__ import annotations

import gc
import os
from operator import add, itemgetter
from pathlib import Path

import functions_framework
import numpy as np
import orjson
from flask import Request, Response

from irt.engine.ability import eap_rows
from irt.engine.artifact import load_model
from irt.serving import Limits, warm
from irt.serving.plain import _probabilities, _rows_index

_MODELS = Path(os.environ["MODEL_DIR"]) / "models"
VERSION = (_MODELS / "LATEST").read_text(encoding="utf-8").strip()
MODEL = load_model((_MODELS / VERSION / "model.json").read_bytes())
warm(MODEL, Limits())  # the same precomputed tables predict serves from
ROW = _rows_index(MODEL).get  # item id -> 2 * position (+ correct: the answer's table row)
POSITION = MODEL.index.get
ITEM_ID = itemgetter("item_id")
CORRECT = itemgetter("correct")
gc.freeze()  # as predict does after loading


@functions_framework.http
def floor(request: Request) -> Response:
    """Ability and P(correct) for one valid student, as ``predict`` computes them."""
    payload = orjson.loads(request.get_data())
    answers = payload["responses"]
    n = len(answers)
    rows = np.fromiter(map(add, map(ROW, map(ITEM_ID, answers)), map(CORRECT, answers)),
                       dtype=np.intp, count=n)
    theta, se = eap_rows(MODEL, rows)
    items = payload["items"]
    probs = _probabilities(MODEL, theta, list(map(POSITION, items)))
    body = {"model_version": VERSION,
            "ability": {"theta": round(theta, 6), "se": round(se, 6), "method": "EAP",
                        "n_answers": n},
            "probabilities": dict(zip(items, probs.round(6).tolist(), strict=True)),
            "unknown_items": []}
    return Response(orjson.dumps(body), 200, content_type="application/json")
