"""Reading a model artifact (``model.json``): the item bank and, when present, its
learning-aware options, each checked against its schema (numpy only).

:func:`irt.engine.model.item_bank_from_dict` reads the item bank and keeps ``options`` as the
plain description it is; the learning-aware options (``options["learning"]``) are read by
the learning code (:func:`irt.engine.learning.learning_of`).  This module puts the two
together: every reader of an artifact - ``predict``'s loader, the refresh's serving model
and canary, the command lines - calls :func:`load_model`, so a model whose options break
their schema is refused wherever it is read, naming the field.
"""

from __future__ import annotations

import json
from typing import Any

from irt.engine.model import ItemModel, item_bank_from_dict
from irt.errors import ModelFormatError


def model_from_dict(doc: Any) -> ItemModel:
    """Validate a model document (see :func:`irt.engine.model.item_bank_from_dict` for the
    schema) and its learning-aware options, and build an :class:`ItemModel`.

    Raises:
        ModelFormatError: naming the first offending field (``options.learning.*`` for the
            options, see :func:`irt.engine.learning.learning_from_dict`).
    """
    model = item_bank_from_dict(doc)
    if "learning" in model.options:  # validated (and cached on the model) now
        # imported here: a plain model (most of predict's) needs none of the learning code
        from irt.engine.learning import learning_of

        learning_of(model)
    return model


def _reject_constant(name: str) -> float:
    raise ModelFormatError(f"{name} is not valid JSON (non-finite number)")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ModelFormatError(f"duplicate key {key!r}")
        out[key] = value
    return out


def load_model(text: str | bytes) -> ItemModel:
    """Parse and validate model JSON text.

    Raises:
        ModelFormatError: if the text is not JSON (including NaN/Infinity literals or
            duplicate keys) or breaks the schema.
    """
    try:
        doc = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except ModelFormatError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"model is not valid JSON: {exc}") from None
    return model_from_dict(doc)
