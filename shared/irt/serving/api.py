"""The ``predict`` API's answers, free of HTTP and I/O (numpy only): one entry per route.

``functions/predict/main.py`` maps HTTP onto these functions.  A model with learning-aware
options (``options["learning"]``) is answered by :mod:`irt.serving.learning`, any other by
:mod:`irt.serving.plain`; both validate with :mod:`irt.serving.requests` and raise
:class:`irt.errors.RequestError` naming the field and the rule.  The learning-aware path is
imported only when such a model serves.

A body the server decoded itself (:func:`irt.serving.body.decode_single`, the common request)
goes to :func:`predict_decoded`.  This module does not import :mod:`irt.serving.body` (orjson,
msgspec: ``predict``'s requirements), so that the refresh layer's checks, which call
:func:`predict` on parsed bodies, run without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from irt.engine.model import ItemModel
from irt.serving import plain
from irt.serving.requests import Limits

if TYPE_CHECKING:
    from irt.serving.body import Decoded


def predict(model: ItemModel, payload: Any, limits: Limits, version: str) -> dict[str, Any]:
    """Answer a predict request (single or batch) from its parsed JSON body.

    Raises:
        RequestError: for invalid input.
    """
    if model.options.get("learning"):
        from irt.serving import learning

        return {"model_version": version, **learning.predict(model, payload, limits)}
    return {"model_version": version, **plain.predict(model, payload, limits)}


def predict_decoded(model: ItemModel, decoded: Decoded, limits: Limits, version: str
                    ) -> dict[str, Any]:
    """Answer a predict request :func:`irt.serving.body.decode_single` decoded: from the
    decoded answers, or, when the serving path declines them (an unknown method, a repeated
    item, an invalid id, a cap exceeded), as :func:`predict` answers the parsed text - the same
    answer or error either way.

    Raises:
        RequestError: for invalid input.
    """
    req = plain.fast_decoded(model, decoded.body, limits)
    if req is None:
        return predict(model, decoded.parse(), limits, version)
    if model.options.get("learning"):
        from irt.serving import learning

        return {"model_version": version, **learning.answer_fast(model, req)}
    return {"model_version": version, **plain.answer_fast(model, req)}


def recommend(model: ItemModel, payload: Any, limits: Limits, version: str) -> dict[str, Any]:
    """Answer a next-items request.

    Raises:
        RequestError: for invalid input.
    """
    if model.options.get("learning"):
        from irt.serving import learning

        return {"model_version": version, **learning.recommend(model, payload, limits)}
    return {"model_version": version, **plain.recommend(model, payload, limits)}


def warm(model: ItemModel, limits: Limits) -> None:
    """Compute, before a model serves, what its first request would otherwise build (the
    plain path's grid table and lookups and, for a learning-aware model, its path's tables;
    cached on the model)."""
    plain.warm(model, limits)
    if model.options.get("learning"):
        from irt.serving import learning

        learning.warm(model, limits)


def model_metadata(model: ItemModel, version: str) -> dict[str, Any]:
    """Serving model summary for ``GET /model`` (``exposure``: ``{"method", "r_max"}`` only
    for a model with Sympson-Hetter parameters; ``learning``: the learning-aware options, their
    scalar settings and ``calibration``, only for a model with them,
    :func:`irt.engine.learning.describe`)."""
    fit = model.fit
    meta: dict[str, Any] = {
        "model_version": version,
        "model_type": model.model_type,
        "n_items": model.n_items,
        "created_at": model.created_at,
        "code_version": model.code_version,
        "population": {"mean": 0.0, "sd": model.population_sd},
        "fit": {k: fit[k] for k in ("method", "iterations", "converged", "log_likelihood",
                                    "aic", "bic", "se_method") if k in fit},
        "data_summary": {k: v for k, v in model.data_summary.items()
                         if isinstance(v, (int, float, str, bool))},
        "n_excluded_items": len(model.excluded_items),
    }
    if model.exposure:
        meta["exposure"] = {"method": model.exposure["method"],
                            "r_max": float(model.exposure["r_max"])}
    if model.options.get("learning"):
        from irt.engine.learning import describe, learning_of

        spec = learning_of(model)
        assert spec is not None
        meta["learning"] = describe(spec)
    return meta
