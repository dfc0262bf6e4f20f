"""R mirt reference values for the diagnostics and scoring tests, and the data they came from.

``tests/data/mirt_diagnostics_reference.json`` holds values copied unchanged from the shared
``<dataset>/mirt_reference.json`` files (mirt 1.45.1; written by
``tests/data/extract_mirt_reference.py``; sources in ``tests/data/SOURCE.md``).  Data sets
load from the CSVs in ``tests/data`` in mirt's row order (pattern tables expanded in table
order), so that person-level values line up row by row.

:func:`mirt_model` builds an :class:`~irt.engine.model.ItemModel` from mirt's own estimates,
which lets a test isolate a statistic from the estimation.
"""

from __future__ import annotations

import csv
import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from irt.engine.model import ItemModel
from irt.engine.responses import Responses

DATA = Path(__file__).resolve().parents[1] / "data"
DATASETS = ("lsat7", "lsat6", "deayala", "sat12", "verbagg")
#: mirt's item types -> this project's model types.
MODEL_TYPE = {"2PL": "2pl", "Rasch": "rasch"}


@functools.cache
def reference() -> dict[str, Any]:
    return json.loads((DATA / "mirt_diagnostics_reference.json").read_text(encoding="utf-8"))


def ref(dataset: str, model: str | None = None) -> dict[str, Any]:
    """The dataset's entry, or one model's (``"2PL"`` or ``"Rasch"``)."""
    entry = reference()["datasets"][dataset]
    return entry if model is None else entry["models"][model]


def num(values: Any) -> np.ndarray:
    """mirt's JSON numbers as floats: ``null`` -> nan, ``"Inf"``/``"-Inf"``/``"NaN"``."""
    def one(v: Any) -> float:
        if v is None:
            return math.nan
        if isinstance(v, str):
            return {"Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}[v]
        return float(v)

    if isinstance(values, list):
        return np.array([num(v) if isinstance(v, list) else one(v) for v in values], dtype=float)
    return np.array(one(values))


@functools.cache
def dense(dataset: str) -> np.ndarray:
    """The 0/1 students x items matrix in mirt's row order."""
    if dataset in ("lsat7", "lsat6", "deayala"):
        table = np.loadtxt(DATA / f"{dataset}_patterns.csv", delimiter=",", skiprows=1)
        return np.repeat(table[:, :-1], table[:, -1].astype(int), axis=0)
    if dataset == "sat12":
        return np.loadtxt(DATA / "sat12_scored.csv", delimiter=",", skiprows=1)
    if dataset == "verbagg":
        with (DATA / "verbagg_wide.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        rows.sort(key=lambda r: int(r["id"]))
        names = ref("verbagg")["item_names"]
        return np.array([[float(r[name]) for name in names] for r in rows])
    raise KeyError(dataset)


@functools.cache
def responses(dataset: str) -> Responses:
    """The dataset as sparse answers, items named as mirt names them."""
    return Responses.from_dense(dense(dataset), item_ids=ref(dataset)["item_names"])


def mirt_model(dataset: str, model: str) -> ItemModel:
    """An item bank holding mirt's estimates (IRT metric) of ``model`` on ``dataset``."""
    m = ref(dataset, model)
    a, b = num(m["parameters"]["a"]), num(m["parameters"]["b"])
    nan = np.full(a.shape[0], np.nan)
    sd = math.sqrt(float(m["parameters"]["latent_var"]))
    return ItemModel(model_type=MODEL_TYPE[model], item_ids=tuple(ref(dataset)["item_names"]),
                     a=a, b=b, c=np.zeros(a.shape[0]), se_a=nan, se_b=nan, se_c=nan,
                     population_sd=sd)
