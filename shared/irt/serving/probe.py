"""The canary answers: a loaded model put through ``predict``'s own code before it serves.

One set of model-only checks, used twice: by ``prepare``'s canary before ``LATEST`` moves
(:func:`irt.refresh.monitoring.canary`, which also compares the stored parameters with the
calibrated ones) and by ``predict``'s loader before it swaps a new version in
(:class:`irt.serving.loader.ModelCache`), so a model that ``prepare`` would have stopped never
replaces a good one in a serving instance either (a tampered object, a version written by
another tool, an older or newer ``prepare``).  numpy only (through the engine): no scipy on
``predict``'s import path.
"""

from __future__ import annotations

import math
from typing import Any

from irt.engine.ability import grid_table
from irt.engine.model import ItemModel
from irt.serving.api import model_metadata, predict, recommend
from irt.serving.requests import Limits

#: Caps for the probe's own requests (it is not an LMS request: no request cap applies).
PROBE_LIMITS = Limits(max_responses=10**6, max_items=10**6, max_students=10**6)
#: Items answered by the probe's students, and items they ask about.
PROBE_ANSWERED, PROBE_ASKED = 20, 50


def probe(model: ItemModel, version: str) -> tuple[dict[str, Any], list[str]]:
    """Ask the model what ``predict`` will ask it, and check the answers' shape.

    Checks: the model has items; the EAP table builds; no answers gives the prior (theta 0,
    SE = population SD); all right (on up to 20 items spread over the bank) gives a higher
    ability than all wrong and, for each of up to 50 other items, a probability at least as
    high; every number is finite and every probability in [0, 1]; a batch of the two
    students answers as the single requests; next-items returns ``k`` distinct unanswered
    items; ``GET /model`` counts the model's items and every answer names ``version``.

    Args:
        model: a model as :func:`irt.engine.artifact.load_model` returns it.
        version: the version id it will serve under.

    Returns:
        ``(figures, problems)``: ``figures`` (``n_items``, ``theta_all_right``,
        ``theta_all_wrong``, ``passed``) and one sentence per failed check (empty: passed).
    """
    if not model.n_items:
        return {"n_items": 0, "passed": False}, ["the model has no items"]
    problems: list[str] = []
    grid_table(model)
    ids = list(model.item_ids)
    answered = ids[:: max(1, len(ids) // PROBE_ANSWERED)][:PROBE_ANSWERED]
    chosen = set(answered)
    asked = [i for i in ids if i not in chosen][:PROBE_ASKED] or ids[:5]
    empty = predict(model, {"responses": []}, PROBE_LIMITS, version)
    right = predict(model, {"responses": [{"item_id": i, "correct": True} for i in answered],
                            "items": asked}, PROBE_LIMITS, version)
    wrong = predict(model, {"responses": [{"item_id": i, "correct": False} for i in answered],
                            "items": asked}, PROBE_LIMITS, version)
    batch = predict(model, {"students": [
        {"student_id": "probe-right", "responses": [{"item_id": i, "correct": True}
                                                    for i in answered], "items": asked},
        {"student_id": "probe-wrong", "responses": [{"item_id": i, "correct": False}
                                                    for i in answered], "items": asked}]},
        PROBE_LIMITS, version)
    k = min(5, max(1, len(ids) - len(answered)))
    nxt = recommend(model, {"responses": [{"item_id": answered[0], "correct": True}], "k": k},
                    PROBE_LIMITS, version)
    meta = model_metadata(model, version)
    ability = empty["ability"]
    # the answer is rounded to 6 decimals: a Rasch model's estimated population SD is not 1
    if ability["theta"] != 0.0 or abs(ability["se"] - round(model.population_sd, 6)) > 1e-9:
        problems.append(f"no answers gave {ability}, not the prior")
    if not right["ability"]["theta"] > wrong["ability"]["theta"]:
        problems.append("all right does not score above all wrong")
    if any(right["probabilities"][i] < wrong["probabilities"][i] for i in asked):
        problems.append("a probability falls as the ability rises")
    for answer in (empty, right, wrong):
        values = [answer["ability"]["theta"], answer["ability"]["se"],
                  *answer["probabilities"].values()]
        if not all(math.isfinite(v) for v in values) or not all(
                0.0 <= p <= 1.0 for p in answer["probabilities"].values()):
            problems.append("a non-finite number or a probability outside [0, 1]")
            break
    for got, single in zip(batch["results"], (right, wrong), strict=True):
        if abs(got["ability"]["theta"] - single["ability"]["theta"]) > 1e-6:
            problems.append("a batch answers differently from single requests")
            break
    recommended = [i["item_id"] for i in nxt["items"]]
    if len(recommended) != k or len(set(recommended)) != k or answered[0] in recommended:
        problems.append(f"next-items gave {recommended} for k={k}")
    if meta["n_items"] != model.n_items or empty["model_version"] != version:
        problems.append("metadata or version wrong")
    figures = {"n_items": model.n_items, "theta_all_right": right["ability"]["theta"],
               "theta_all_wrong": wrong["ability"]["theta"], "passed": not problems}
    return figures, problems
