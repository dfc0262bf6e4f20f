"""The calibrated item bank: parameters, probabilities, information and the JSON artifact.

numpy only (this module is on ``predict``'s import path).

Model, traditional parameterisation on the logistic metric::

    P_j(theta) = c_j + (1 - c_j) / (1 + exp(-a_j * (theta - b_j)))

with ``theta ~ N(mu, sigma^2)`` in the calibration population (``mu = 0``;
``sigma = 1`` except for the Rasch model, whose slopes are fixed at 1 and whose
latent standard deviation is estimated).

Parameters and units (the logistic metric, no 1.7 factor):

* ``theta`` - ability in logits on the calibration's scale (mostly within +/- 3 sigma);
* ``a_j``   - slope (discrimination), ``a > 0``, per logit of ability; usually 0.3-2.5, and
  an artifact allows ``(0, 1000]``;
* ``b_j``   - difficulty in logits (the ``theta`` where ``P = (1 + c) / 2``); usually
  -3 to 3, an artifact allows ``[-1000, 1000]``;
* ``c_j``   - lower asymptote (pseudo-guessing), ``0 <= c < 1``; usually below 0.35.

Model types (``ModelType``):

* ``rasch`` - ``a_j = 1``, ``c_j = 0``, ``sigma`` estimated (R mirt ``itemtype='Rasch'``).
* ``1pl``   - one common slope ``a`` for every item, ``c_j = 0``, ``sigma = 1``.
* ``2pl``   - ``a_j``, ``b_j`` free, ``c_j = 0``.
* ``3pl``   - ``a_j``, ``b_j``, ``c_j`` free (pseudo-guessing lower asymptote).
"""

from __future__ import annotations

import json
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Literal

import numpy as np

from irt.errors import ModelFormatError

ModelType = Literal["rasch", "1pl", "2pl", "3pl"]
MODEL_TYPES: tuple[ModelType, ...] = typing.get_args(ModelType)
#: The artifact's schema versions this code reads.  Version 2 is version 1 plus
#: ``options.learning``: a learning-aware model is written as 2, so that a reader from before
#: learning-aware models (which accepts exactly 1, and would otherwise ignore the options and
#: serve the model as a plain one) rejects it and keeps its previous model.  A plain model is
#: still written as 1, which every reader takes.
SCHEMA_VERSIONS = (1, 2)

#: Probabilities are clipped to ``[P_EPS, 1 - P_EPS]`` before taking logs.
P_EPS = 1e-12




def logistic(x: np.ndarray) -> np.ndarray:
    """Numerically stable ``1 / (1 + exp(-x))`` (full relative precision in both tails)."""
    x = np.asarray(x, dtype=float)
    e = np.exp(-np.abs(x))
    r = 1.0 / (1.0 + e)
    return np.where(x >= 0, r, e * r)


def softplus_tail(z: np.ndarray) -> np.ndarray:
    """``log1p(exp(-|z|))`` as a new array: the part of ``softplus(z) = max(z, 0) +
    log1p(exp(-|z|))`` and of ``log logistic(z) = min(z, 0) - log1p(exp(-|z|))`` that keeps
    both tails exact (one ``exp`` and one ``log1p`` per entry, in place)."""
    soft = np.abs(z)
    np.negative(soft, out=soft)
    np.exp(soft, out=soft)
    np.log1p(soft, out=soft)
    return soft


def irf(theta: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Item response function, broadcast over ``theta`` and the item arrays.

    ``P(correct | theta) = c + (1 - c) * logistic(a * (theta - b))``.
    """
    return c + (1.0 - c) * logistic(a * (np.asarray(theta, dtype=float) - b))


def item_information(theta: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Fisher information of an item at ``theta`` (Birnbaum's 3PL formula).

    ``I(theta) = a^2 * (Q / P) * ((P - c) / (1 - c))^2`` with ``Q = 1 - P``;
    for ``c = 0`` this is ``a^2 P Q``.
    """
    p = np.clip(irf(theta, a, b, c), P_EPS, 1 - P_EPS)
    return a**2 * ((1.0 - p) / p) * ((p - c) / (1.0 - c)) ** 2


@dataclass
class ItemModel:
    """A calibrated item bank.

    Attributes:
        model_type: one of ``MODEL_TYPES``.
        item_ids: external ids, in the order of the parameter arrays.
        a, b, c: item parameters, each of shape ``(n_items,)``.
        se_a, se_b, se_c: standard errors (NaN where not estimated, e.g. a fixed slope).
        population_sd: latent standard deviation ``sigma`` (1 except for ``rasch``).
        quadrature: quadrature settings used in calibration.
        priors: prior settings used in calibration (JSON-ready dict).
        fit: fit statistics (iterations, converged, log_likelihood, ...).
        data_summary: counts describing the calibration data.
        excluded_items: items left out of the fit, ``{item_id: reason}``.
        created_at: ISO-8601 UTC timestamp.
        code_version: version of the ``irt`` package that produced the model.
        version: optional model version label assigned by the publisher.
        options: free-form, documented model options (kept for forward compatibility).
        skills: the ``skills`` section (JSON-ready, see :func:`skills_from_dict`): typical
            parameters per skill and the item -> skill map; ``{}`` without a skill map.
        exposure: the ``exposure`` section (JSON-ready, see :func:`exposure_from_dict`): the
            Sympson-Hetter parameters of ``/next-items``; ``{}`` without one.

    A model is treated as immutable once built: lookups and per-grid tables are cached.
    """

    model_type: str
    item_ids: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    se_a: np.ndarray
    se_b: np.ndarray
    se_c: np.ndarray
    population_sd: float = 1.0
    quadrature: dict[str, Any] = field(default_factory=dict)
    priors: dict[str, Any] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)
    data_summary: dict[str, Any] = field(default_factory=dict)
    excluded_items: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    code_version: str = ""
    version: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    skills: dict[str, Any] = field(default_factory=dict)
    exposure: dict[str, Any] = field(default_factory=dict)
    _index: dict[str, int] | None = field(default=None, repr=False, compare=False)
    _cache: dict[Any, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.item_ids = tuple(self.item_ids)
        n = len(self.item_ids)
        for name in ("a", "b", "c", "se_a", "se_b", "se_c"):
            arr = np.asarray(getattr(self, name), dtype=float).reshape(-1)
            if arr.shape[0] != n:
                raise ValueError(f"{name} has {arr.shape[0]} values for {n} items")
            setattr(self, name, arr)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def index(self) -> dict[str, int]:
        """``item_id -> position`` map (built once)."""
        if self._index is None:
            self._index = {item_id: j for j, item_id in enumerate(self.item_ids)}
        return self._index

    def positions(self, item_ids: Sequence[str]) -> np.ndarray:
        """Position of each id in ``item_ids``; ``-1`` where the model does not know it."""
        n = len(item_ids)
        return np.fromiter(map(self.index.get, item_ids, repeat(-1, n)), dtype=np.int64,
                           count=n)

    def lookup(self, item_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Positions of known ``item_ids`` and the list of unknown ones (in input order).

        Returns:
            ``(positions, unknown)`` where ``positions`` has ``-1`` for unknown ids.
        """
        pos = self.positions(item_ids)
        unknown = [item_ids[k] for k in np.flatnonzero(pos < 0).tolist()]
        return pos, unknown

    def _positions_of(self, items: str | Sequence[str] | None) -> np.ndarray | None:
        """Positions of the item ids ``items`` (``None``: every item)."""
        if items is None:
            return None
        ids = [items] if isinstance(items, str) else list(items)
        bad = next((i for i in ids if not isinstance(i, str)), None)
        if bad is not None:
            raise TypeError(f"items are item ids (str), got {type(bad).__name__} {bad!r}; for "
                            "positions use probability_by_position / information_by_position")
        pos, unknown = self.lookup(ids)
        if unknown:
            raise KeyError(f"{len(unknown)} item id(s) not in the model: {unknown[:5]}")
        return pos

    def probability(self, theta: float | np.ndarray,
                    items: str | Sequence[str] | None = None) -> np.ndarray:
        """P(correct) of the items named ``items`` at ``theta``.

        Args:
            theta: ability, a scalar or an array of shape ``(m,)`` (logits).
            items: item ids (one id counts as a list of one); ``None``: every item, in
                :attr:`item_ids` order.

        Returns:
            Shape ``(n,)`` for a scalar ``theta``, ``(m, n)`` for an array, ``n`` the items.

        Raises:
            KeyError: an id the model does not know (:meth:`lookup` tells them apart).
            TypeError: ``items`` holds positions: use :meth:`probability_by_position`.
        """
        return self.probability_by_position(theta, self._positions_of(items))

    def probability_by_position(self, theta: float | np.ndarray,
                                positions: np.ndarray | None = None) -> np.ndarray:
        """P(correct) of the items at ``positions`` (indices into :attr:`item_ids`, as
        :meth:`lookup` returns them; all if None) at ``theta``: the serving path's form.

        A scalar ``theta`` gives shape ``(n,)``; an array of shape ``(m,)`` gives ``(m, n)``.
        """
        sel = slice(None) if positions is None else positions
        a, b, c = self.a[sel], self.b[sel], self.c[sel]
        th = np.asarray(theta, dtype=float)
        if th.ndim:
            return irf(th[:, None], a, b, c)
        return irf(th, a, b, c)

    def information(self, theta: float | np.ndarray,
                    items: str | Sequence[str] | None = None) -> np.ndarray:
        """Item information of the items named ``items`` at ``theta`` (ids and shapes as
        :meth:`probability`)."""
        return self.information_by_position(theta, self._positions_of(items))

    def information_by_position(self, theta: float | np.ndarray,
                                positions: np.ndarray | None = None) -> np.ndarray:
        """Item information of the items at ``positions`` at ``theta`` (as
        :meth:`probability_by_position`)."""
        sel = slice(None) if positions is None else positions
        a, b, c = self.a[sel], self.b[sel], self.c[sel]
        th = np.asarray(theta, dtype=float)
        if th.ndim:
            return item_information(th[:, None], a, b, c)
        return item_information(th, a, b, c)

    def test_information(self, theta: float | np.ndarray,
                         items: str | Sequence[str] | None = None) -> np.ndarray:
        """Test information: the sum of item information over the items named ``items``."""
        return self.information(theta, items).sum(axis=-1)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (see :func:`item_bank_from_dict` for the schema)."""

        def num(x: float) -> float | None:
            return None if not math.isfinite(x) else float(x)

        items = {
            item_id: {
                "a": float(self.a[j]), "b": float(self.b[j]), "c": float(self.c[j]),
                "se_a": num(self.se_a[j]), "se_b": num(self.se_b[j]), "se_c": num(self.se_c[j]),
            }
            for j, item_id in enumerate(self.item_ids)
        }
        doc = {
            "schema_version": 2 if "learning" in self.options else 1,
            "model_type": self.model_type,
            "version": self.version,
            "created_at": self.created_at,
            "code_version": self.code_version,
            "population": {"mean": 0.0, "sd": float(self.population_sd)},
            "quadrature": self.quadrature,
            "priors": self.priors,
            "fit": self.fit,
            "data_summary": self.data_summary,
            "excluded_items": self.excluded_items,
            "options": self.options,
            "items": items,
        }
        if self.skills:
            doc["skills"] = self.skills
        if self.exposure:
            doc["exposure"] = self.exposure
        return doc

    def to_json(self, indent: int | None = 1) -> str:
        """Serialise to JSON text (strict: no NaN/Infinity literals)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, sort_keys=False)


def _require(mapping: Mapping[str, Any], key: str, kind: type | tuple[type, ...],
             path: str) -> Any:
    if key not in mapping:
        raise ModelFormatError("is required", f"{path}{key}")
    value = mapping[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ModelFormatError(f"must be {_kind_name(kind)}, got a boolean", f"{path}{key}")
    if not isinstance(value, kind):
        raise ModelFormatError(f"must be {_kind_name(kind)}, got {type(value).__name__}",
                               f"{path}{key}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "a number", float: "a number", str: "a string", dict: "an object",
             list: "an array", bool: "a boolean"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _finite(value: Any, path: str, lo: float = -math.inf, hi: float = math.inf,
            closed_lo: bool = True, closed_hi: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelFormatError("must be a number", path)
    try:
        v = float(value)
    except OverflowError:  # a JSON integer beyond any float (1 and 400 zeros)
        v = math.inf
    if not math.isfinite(v):
        raise ModelFormatError("must be finite", path)
    if v < lo or v > hi or (v == lo and not closed_lo) or (v == hi and not closed_hi):
        lb = "[" if closed_lo else "("
        rb = "]" if closed_hi else ")"
        raise ModelFormatError(f"must be in {lb}{lo}, {hi}{rb}, got {v}", path)
    return v


def item_bank_from_dict(doc: Any) -> ItemModel:
    """Validate a model document's item bank and build an :class:`ItemModel`.

    Schema (version 1; version 2 is the same with ``options.learning``)::

        {"schema_version": 1, "model_type": "2pl", "version": "...",
         "created_at": "...", "code_version": "...",
         "population": {"mean": 0, "sd": 1.0},
         "quadrature": {...}, "priors": {...}, "fit": {...},
         "data_summary": {...}, "excluded_items": {"Q9": "fewer than 20 answers"},
         "items": {"Q1": {"a": 1.2, "b": -0.3, "c": 0.0,
                          "se_a": 0.1, "se_b": 0.08, "se_c": null}, ...},
         "skills": {...},          # optional, see skills_from_dict
         "exposure": {...}}        # optional, see exposure_from_dict

    Rules: ``a > 0`` and finite (``a == 1`` for Rasch, one common ``a`` for 1PL),
    ``b`` finite, ``0 <= c < 1`` (``c == 0`` except for 3PL), ``sd > 0``,
    at least one item, SEs null or finite and ``>= 0``.  ``options`` is optional (an
    older artifact without it loads as a plain model) and kept as given: its
    ``options.learning`` is read and checked by the learning code
    (:func:`irt.engine.learning.learning_from_dict`); :func:`irt.engine.artifact.load_model`
    and :func:`irt.engine.artifact.model_from_dict` check both.  ``schema_version`` is 1 or 2
    (see :data:`SCHEMA_VERSIONS`); this code reads both the same way, including
    ``options.learning`` under 1 (written before version 2 existed).

    Raises:
        ModelFormatError: naming the first offending field.
    """
    if not isinstance(doc, dict):
        raise ModelFormatError("model document must be a JSON object")
    version = _require(doc, "schema_version", int, "")
    if version not in SCHEMA_VERSIONS:
        raise ModelFormatError(f"unsupported schema version {version} (this code reads "
                               f"{' and '.join(map(str, SCHEMA_VERSIONS))})", "schema_version")
    model_type = _require(doc, "model_type", str, "")
    if model_type not in MODEL_TYPES:
        raise ModelFormatError(f"must be one of {', '.join(MODEL_TYPES)}", "model_type")
    population = _require(doc, "population", dict, "")
    mean = _finite(_require(population, "mean", (int, float), "population."), "population.mean")
    if mean != 0.0:
        raise ModelFormatError("must be 0", "population.mean")
    sd = _finite(_require(population, "sd", (int, float), "population."), "population.sd",
                 lo=0.0, closed_lo=False, hi=100.0)
    items = _require(doc, "items", dict, "")
    if not items:
        raise ModelFormatError("must hold at least one item", "items")
    n = len(items)
    ids: list[str] = []
    cols = {k: np.empty(n) for k in ("a", "b", "c", "se_a", "se_b", "se_c")}
    for j, (item_id, spec) in enumerate(items.items()):
        path = f"items.{item_id}."
        if not item_id:
            raise ModelFormatError("item ids must be non-empty strings", "items")
        if not isinstance(spec, dict):
            raise ModelFormatError("must be an object", path[:-1])
        ids.append(item_id)
        cols["a"][j] = _finite(_require(spec, "a", (int, float), path), path + "a",
                               lo=0.0, closed_lo=False, hi=1e3)
        cols["b"][j] = _finite(_require(spec, "b", (int, float), path), path + "b",
                               lo=-1e3, hi=1e3)
        cols["c"][j] = _finite(spec.get("c", 0.0), path + "c", lo=0.0, hi=1.0, closed_hi=False)
        for k in ("se_a", "se_b", "se_c"):
            v = spec.get(k)
            cols[k][j] = math.nan if v is None else _finite(v, path + k, lo=0.0)
    if model_type != "3pl" and np.any(cols["c"] != 0.0):
        bad = ids[int(np.flatnonzero(cols["c"] != 0.0)[0])]
        raise ModelFormatError(f"must be 0 for a {model_type} model", f"items.{bad}.c")
    if model_type == "rasch" and np.any(cols["a"] != 1.0):
        bad = ids[int(np.flatnonzero(cols["a"] != 1.0)[0])]
        raise ModelFormatError("must be 1 for a rasch model", f"items.{bad}.a")
    if model_type == "1pl" and np.any(cols["a"] != cols["a"][0]):
        bad = ids[int(np.flatnonzero(cols["a"] != cols["a"][0])[0])]
        raise ModelFormatError("must equal the common slope of a 1pl model", f"items.{bad}.a")
    if model_type != "rasch" and sd != 1.0:
        raise ModelFormatError(f"must be 1 for a {model_type} model", "population.sd")

    def obj(key: str) -> dict[str, Any]:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            raise ModelFormatError("must be an object", key)
        return value

    def text(key: str) -> str:
        value = doc.get(key, "")
        if not isinstance(value, str):
            raise ModelFormatError("must be a string", key)
        return value

    excluded = obj("excluded_items")
    skills = skills_from_dict(doc.get("skills", {}), ids, model_type)
    exposure = exposure_from_dict(doc.get("exposure", {}), ids)
    model = ItemModel(
        model_type=model_type, item_ids=tuple(ids),
        a=cols["a"], b=cols["b"], c=cols["c"],
        se_a=cols["se_a"], se_b=cols["se_b"], se_c=cols["se_c"],
        population_sd=sd, quadrature=obj("quadrature"), priors=obj("priors"),
        fit=obj("fit"), data_summary=obj("data_summary"),
        excluded_items={str(k): str(v) for k, v in excluded.items()},
        created_at=text("created_at"), code_version=text("code_version"),
        version=text("version"), options=obj("options"), skills=skills, exposure=exposure,
    )
    return model


_EXPOSURE_KEYS = ("method", "r_max", "parameters", "simulation")


def exposure_from_dict(doc: Any, item_ids: Sequence[str]) -> dict[str, Any]:
    """Validate the artifact's optional ``exposure`` section (written by ``python -m irt
    exposure``, :func:`irt.engine.exposure_fit.exposure_section`)::

        "exposure": {
          "method": "sympson-hetter",
          "r_max": 0.25,                       # the target largest exposure rate
          "parameters": {"Q1": 0.61, ...},     # K_j in [0, 1]; an item not listed has K = 1
          "simulation": {...}}                 # how they were computed (kept as given)

    Rules: an object of those keys only (``{}``: no section); ``method`` is
    ``"sympson-hetter"``; ``r_max`` a number in ``(0, 1]``; ``parameters`` a non-empty object
    mapping items of the model to numbers in ``[0, 1]``; ``simulation`` an object (optional).
    A reader from before this section ignores it (``/next-items`` then refuses
    ``exposure.method: sympson-hetter`` as an unknown field).

    Returns:
        The section as given (``{}`` when absent).

    Raises:
        ModelFormatError: naming the first offending field (``exposure.parameters.Q7``).
    """
    if not isinstance(doc, dict):
        raise ModelFormatError("must be an object", "exposure")
    if not doc:
        return {}
    for key in doc:
        if key not in _EXPOSURE_KEYS:
            raise ModelFormatError(f"unknown field; allowed: {', '.join(_EXPOSURE_KEYS)}",
                                   f"exposure.{key}")
    if doc.get("method") != "sympson-hetter":
        raise ModelFormatError("must be 'sympson-hetter'", "exposure.method")
    _finite(_require(doc, "r_max", (int, float), "exposure."), "exposure.r_max", lo=0.0,
            closed_lo=False, hi=1.0)
    params = doc.get("parameters")
    if not isinstance(params, dict) or not params:
        raise ModelFormatError("must be a non-empty object {item_id: K in [0, 1]}",
                               "exposure.parameters")
    known = set(item_ids)
    for item, value in params.items():
        path = f"exposure.parameters.{item}"
        if item not in known:
            raise ModelFormatError("is not an item of the model", path)
        _finite(value, path, lo=0.0, hi=1.0)
    if not isinstance(doc.get("simulation", {}), dict):
        raise ModelFormatError("must be an object", "exposure.simulation")
    return doc


_SKILLS_KEYS = ("parameters", "item_skills", "provisional_items")


def skills_from_dict(doc: Any, item_ids: Sequence[str], model_type: str) -> dict[str, Any]:
    """Validate the artifact's optional ``skills`` section (written by
    :func:`irt.engine.calibrate.skills_section` when the log has a skill column)::

        "skills": {
          "parameters": {"k1": {"a": 1.1, "b": -0.4, "c": 0.0, "n_items": 57}, ...},
          "item_skills": {"Q1": "k1", ...},        # calibrated items (in "items")
          "provisional_items": {"Q9": "k1", ...}}  # items seen below the minimum answers

    Rules: an object of those keys only (``{}``: no skills); ``parameters`` a non-empty
    object of skills (non-empty ids), each with ``a`` in ``(0, 1000]`` (1 for a Rasch
    model), ``b`` in ``[-1000, 1000]``, ``c`` in ``[0, 1)`` (0 unless 3PL; optional), and
    ``n_items`` an integer >= 1 (optional); ``item_skills`` maps items of the model, and
    ``provisional_items`` items *not* in the model, to skills of ``parameters``.  A reader
    from before this section ignores it (the model then serves without provisional items).

    Returns:
        The section as given (``{}`` when absent).

    Raises:
        ModelFormatError: naming the first offending field (``skills.parameters.k1.a``).
    """
    if not isinstance(doc, dict):
        raise ModelFormatError("must be an object", "skills")
    if not doc:
        return {}
    for key in doc:
        if key not in _SKILLS_KEYS:
            raise ModelFormatError(f"unknown field; allowed: {', '.join(_SKILLS_KEYS)}",
                                   f"skills.{key}")
    params = doc.get("parameters")
    if not isinstance(params, dict) or not params:
        raise ModelFormatError("must be a non-empty object {skill_id: parameters}",
                               "skills.parameters")
    for skill, spec in params.items():
        path = f"skills.parameters.{skill}"
        if not skill:
            raise ModelFormatError("skill ids must be non-empty strings", "skills.parameters")
        if not isinstance(spec, dict):
            raise ModelFormatError("must be an object", path)
        a = _finite(_require(spec, "a", (int, float), path + "."), path + ".a", lo=0.0,
                    closed_lo=False, hi=1e3)
        _finite(_require(spec, "b", (int, float), path + "."), path + ".b", lo=-1e3, hi=1e3)
        c = _finite(spec.get("c", 0.0), path + ".c", lo=0.0, hi=1.0, closed_hi=False)
        if c != 0.0 and model_type != "3pl":
            raise ModelFormatError(f"must be 0 for a {model_type} model", path + ".c")
        if a != 1.0 and model_type == "rasch":
            raise ModelFormatError("must be 1 for a rasch model", path + ".a")
        count = spec.get("n_items", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ModelFormatError("must be an integer of at least 1", path + ".n_items")
    known = set(item_ids)
    for key, inside in (("item_skills", True), ("provisional_items", False)):
        mapping = doc.get(key, {})
        if not isinstance(mapping, dict):
            raise ModelFormatError("must be an object {item_id: skill_id}", f"skills.{key}")
        for item, skill in mapping.items():
            path = f"skills.{key}.{item}"
            if not item:
                raise ModelFormatError("item ids must be non-empty strings", f"skills.{key}")
            if (item in known) != inside:
                raise ModelFormatError("is not an item of the model" if inside else
                                       "is an item of the model (it has parameters)", path)
            if not isinstance(skill, str) or skill not in params:
                raise ModelFormatError("must be a skill id of skills.parameters", path)
    return doc


@dataclass(frozen=True)
class SkillTable:
    """The ``skills`` section as arrays, for serving (built once per model by
    :func:`skill_table`).

    Attributes:
        skill_ids: skill ids, in the order of the arrays.
        a, b, c: each skill's typical parameters, shape ``(n_skills,)``.
        index: ``skill_id -> row``.
        provisional: ``item_id -> row`` of the items the model knows only through their
            skill (``provisional_items``).
    """

    skill_ids: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    index: dict[str, int]
    provisional: dict[str, int]


def skill_table(model: ItemModel) -> SkillTable | None:
    """The model's validated ``skills`` section as a :class:`SkillTable` (cached on the
    model), or ``None`` when it has none."""
    cached = model._cache.get("skill_table")
    if cached is None:
        table = None
        if model.skills:
            params = model.skills["parameters"]
            ids = tuple(params)
            index = {k: q for q, k in enumerate(ids)}
            table = SkillTable(
                ids, np.array([float(params[k]["a"]) for k in ids]),
                np.array([float(params[k]["b"]) for k in ids]),
                np.array([float(params[k].get("c", 0.0)) for k in ids]), index,
                {item: index[k] for item, k in
                 model.skills.get("provisional_items", {}).items()})
        cached = model._cache["skill_table"] = (table,)  # type: ignore[assignment]
    return cached[0]  # type: ignore[index]
