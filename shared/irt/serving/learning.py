"""``predict``'s answers when the serving model has learning-aware options (numpy only).

:func:`irt.serving.predict` and :func:`irt.serving.recommend` hand a model with
``options["learning"]`` to these functions.  The request contract is unchanged: the same
validation (:func:`irt.serving.parse_predict`), answers in the order given (or by
``answered_at``), first attempt per item, unknown ids listed and ignored, and the same
response shape.  The skills of calibrated items come from the model's item -> skill map,
never from the caller; an item without parameters whose skill the model's ``skills`` section
or the request's ``item_skills`` names is provisional, as for a plain model: its probability
is the skill's typical item's at the student's ability in that skill
(:func:`irt.engine.learning.skill_probabilities`).  The formulas are in
:mod:`irt.engine.learning`.

* ``ability`` is the general ability ``theta`` (``EAP``: posterior mean and SD; ``MAP``:
  the posterior mode), ``n_answers`` the known answers used.
* ``probabilities`` are learning-aware: the item's skill ability ``u_k`` (posterior mean)
  and the covariates of the next answer, whatever the ``method``.
* ``/next-items`` ranks the candidates by those probabilities: ``max_information`` by
  ``(c_1 a_j)^2 p_j (1 - p_j)`` (``c_1``: the calibration's slope, 1 without one),
  ``target_probability`` by ``|p_j - target|`` (ties: higher information, then position), as
  :func:`irt.engine.selection.next_items` does for plain models;
  the adaptive controls (``exclude``, ``randomesque``/``seed``, ``skill_caps``/``skill_shares``
  over ``options["learning"]["item_skills"]``, ``stop``) act as for plain models
  (:func:`irt.engine.selection.pick`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from irt.engine.learning import (
    learning_of,
    predict_one,
    probabilities,
    student_posterior,
    warm_serving,
)
from irt.engine.model import ItemModel
from irt.engine.selection import pick, rank
from irt.serving.plain import (
    FastSingle,
    controls,
    fast_single,
    finish_next_items,
    own_lookup,
    provisional_lookup,
    report_dropped,
)
from irt.serving.requests import (
    Limits,
    Student,
    check_probabilities,
    parse_next,
    parse_predict,
)


def warm(model: ItemModel, limits: Limits) -> None:
    """Build the learning-aware path's per-model tables for histories up to
    ``limits.max_responses`` answers (:func:`irt.engine.learning.warm_serving`)."""
    warm_serving(model, limits.max_responses)


def predict(model: ItemModel, payload: Any, limits: Limits) -> dict[str, Any]:
    """The answer to a predict request (single or batch), without ``model_version``.

    Raises:
        RequestError: for invalid input (as the plain model's path).
    """
    fast = fast_single(model, payload, limits)
    if fast is not None:
        return answer_fast(model, fast)
    students, is_batch, method = parse_predict(payload, limits)
    check_probabilities([s.items for s in students], model.n_items, limits, is_batch)
    if is_batch:
        answer = {"results": [{"student_id": s.student_id, **_one(model, s, method)}
                              for s in students]}
    else:
        answer = _one(model, students[0], method)
    report_dropped(answer, students, is_batch)
    return answer


def answer_fast(model: ItemModel, req: FastSingle) -> dict[str, Any]:
    """One student from :func:`irt.serving.plain.fast_single` (or ``fast_decoded``): the
    positions it looked up go straight to :func:`irt.engine.learning.predict_one` (no second
    lookup)."""
    pos = req.rows >> 1 if isinstance(req.rows, np.ndarray) else None
    sel = None if req.item_pos is None or None in req.item_pos else np.array(
        req.item_pos, dtype=np.int64)
    return predict_one(model, req.ids, req.correct, req.items, req.method, own_lookup(model),
                       positions=pos, item_positions=sel)


def _one(model: ItemModel, student: Student, method: str) -> dict[str, Any]:
    return predict_one(model, student.item_ids, student.correct, student.items, method,
                       provisional_lookup(model, student.item_skills))


def recommend(model: ItemModel, payload: Any, limits: Limits) -> dict[str, Any]:
    """The answer to a next-items request, without ``model_version``.

    Raises:
        RequestError: for invalid input (the same rules as the plain model's path).
    """
    req = parse_next(payload, limits)
    spec = learning_of(model)
    assert spec is not None
    looked, unknown = model.lookup(req.item_ids)
    known = looked >= 0
    pos = looked[known]
    y = np.asarray(req.correct, dtype=np.int64)[known]
    post = student_posterior(model, spec, pos, y, req.method)
    if req.candidates is None:
        pool = np.arange(model.n_items)
    else:
        cand, missing = model.lookup(list(dict.fromkeys(req.candidates)))
        pool = np.unique(cand[cand >= 0])
        unknown = list(dict.fromkeys([*unknown, *missing]))
    never = pos
    if req.exclude is not None:
        excl, missing = model.lookup(list(dict.fromkeys(req.exclude)))
        never = np.concatenate([pos, excl[excl >= 0]])
        unknown = list(dict.fromkeys([*unknown, *missing]))
    pool = pool[~np.isin(pool, never)]
    p = probabilities(model, spec, post, pool) if pool.size else np.zeros(0)
    # Fisher information of the served probability at the (skill) ability: with the
    # calibration p = logistic(c_0 + c_1 z), dp/du = c_1 a p (1 - p)
    info = (spec.calibration[1] * model.a[pool]) ** 2 * p * (1.0 - p)
    order = rank(pool, info, p, req.strategy, req.target)
    where = {j: i for i, j in enumerate(pool.tolist())}
    settings, unknown_skills = controls(model, req, pos)
    picked = pick(pool[order], req.k, settings)
    chosen = np.array([where[j] for j in picked.tolist()], dtype=np.int64)
    answer: dict[str, Any] = {
        "ability": {"theta": round(post.theta, 6), "se": round(post.se, 6),
                    "method": req.method, "n_answers": post.n_answers},
        "strategy": req.strategy,
        "items": [{"item_id": model.item_ids[j], "probability": round(float(pp), 6),
                   "information": round(float(ii), 6)}
                  for j, pp, ii in zip(pool[chosen].tolist(), p[chosen], info[chosen],
                                       strict=True)],
        "unknown_items": unknown,
    }
    return finish_next_items(answer, model, req, se=post.se, n_answers=post.n_answers,
                             n_items=int(chosen.shape[0]), unknown_skills=unknown_skills)
