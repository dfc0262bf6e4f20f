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


#: The most items a model may hold (``MAX_MODEL_ITEMS`` of predict and prepare).  Real banks
#: hold thousands to tens of thousands; predict warms ~1.5 KiB per item (200,000 items: about
#: 300 MiB, and a refresh holds two models for a moment on a 1 GiB instance), and a 1M-item
#: model peaked at 5.9 GiB.
MAX_MODEL_ITEMS = 200_000
#: The largest ``model.json`` in bytes (``MAX_MODEL_BYTES``): 200,000 items take about 28 MB.
MAX_MODEL_BYTES = 64 << 20


def check_model_size(n_bytes: int | None, n_items: int | None, max_bytes: int,
                     max_items: int) -> None:
    """Refuse a model over the size caps (``None``: not checked).

    Raises:
        ModelFormatError: naming ``model.json`` (bytes) or ``items`` and the cap.
    """
    if n_bytes is not None and n_bytes > max_bytes:
        raise ModelFormatError(f"model.json is {n_bytes} bytes, over the cap of {max_bytes} "
                               "(MAX_MODEL_BYTES)", "model.json")
    if n_items is not None and n_items > max_items:
        raise ModelFormatError(f"the model holds {n_items} items, over the cap of {max_items} "
                               "(MAX_MODEL_ITEMS)", "items")


def load_model(text: str | bytes, *, max_bytes: int | None = None,
               max_items: int | None = None) -> ItemModel:
    """Parse and validate model JSON text.

    Args:
        text: the ``model.json`` document.
        max_bytes: refuse a longer text before parsing it (``None``: no cap).
        max_items: refuse more items once parsed, before the model is built (``None``: no
            cap).

    Raises:
        ModelFormatError: if the text is not JSON (including NaN/Infinity literals or
            duplicate keys), nests deeper than :data:`MAX_JSON_DEPTH`, breaks the schema or
            a size cap.
    """
    if max_bytes is not None:
        size = len(text.encode() if isinstance(text, str) else text)
        check_model_size(size, None, max_bytes, 0)
    try:
        doc = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except ModelFormatError:
        raise
    except RecursionError:
        raise ModelFormatError("model JSON is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"model is not valid JSON: {exc}") from None
    if json_depth(doc) > MAX_JSON_DEPTH:
        raise ModelFormatError(f"model JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    if max_items is not None and isinstance(doc, dict) and isinstance(doc.get("items"), dict):
        check_model_size(None, len(doc["items"]), 0, max_items)
    return model_from_dict(doc)


#: How deep a model document may nest (a real one nests 5 levels: options.learning...).
MAX_JSON_DEPTH = 32


def json_depth(doc: Any) -> int:
    """How deep ``doc``'s lists and objects nest (0 for a scalar), without recursion."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict)
                                                  else value))
    return deepest
