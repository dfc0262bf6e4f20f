"""Next-item selection for adaptive practice (numpy only).

Two rankings of the candidate items (by default every item the student has not answered):

* ``max_information`` - largest Fisher information at the current ability first,
  ``I_j(theta) = a_j^2 (Q_j / P_j) ((P_j - c_j) / (1 - c_j))^2``
  (the classic computerised-adaptive-testing rule: the most precise next answer).
* ``target_probability`` - success probability closest to ``target`` first (e.g. 0.7:
  challenging but achievable practice), ties broken by higher information.

Ties are broken by item position, so a ranking is deterministic.  The ``k`` items are then
picked from the ranking one at a time (:func:`pick`), as catsim's and mirtCAT's adaptive
tests do, under three optional controls:

* **Exposure control, randomesque** (Kingsbury & Zara, 1989; catsim's
  ``RandomesqueSelector``): each pick is drawn uniformly among the ``top`` best remaining
  items, so that the few most informative items are not given to every student.
  ``top = 1`` is the pure ranking.  Draws come from ``numpy.random.default_rng(seed)``: the
  same request with the same seed picks the same items.
* **Content balancing by skill**, with the model's item -> skill map (:func:`item_skills`):
  ``caps`` - at most ``caps[s]`` items of skill ``s`` in the session, the student's answered
  items included (an item of a skill at its cap is passed over); ``shares`` - target shares
  of the session's items by skill (mirtCAT's ``content_prop``): each pick is made within
  the skill furthest below its share, ``shares[s] - n_s / n`` with ``n_s`` the session's
  items of skill ``s`` (answered and picked) and ``n`` those of every skill with a share;
  ties go to the larger share, then the skill listed first.  Only items of a skill with a
  positive share can be picked under ``shares``.
* **An exclude list** - items never to pick (the answered items always are).
* **Exposure control, Sympson-Hetter** (:mod:`irt.engine.exposure`): with the model's
  per-item parameters ``K_j``, an item whose draw ``u_j`` (a function of the seed and the
  item) is not below ``K_j`` is passed over - applied before the other controls, so it
  combines with them (the ``K_j`` are computed for maximum information alone).

Fewer than ``k`` items come back when the controls leave fewer eligible items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from irt.engine.exposure import admitted
from irt.engine.model import ItemModel

Strategy = Literal["max_information", "target_probability"]
STRATEGIES: tuple[str, ...] = ("max_information", "target_probability")


@dataclass(frozen=True)
class Controls:
    """How :func:`pick` walks a ranking (the defaults: the ranking's first ``k`` items).

    Attributes:
        top: randomesque bin, an integer ``>= 1``: each pick is uniform among the ``top``
            best remaining eligible items (1: the best).
        seed: seed of the draws (``None``: fresh entropy, not reproducible).
        skill_of: skill row of each item position, shape ``(n_items,)``, ``-1`` for an item
            without a skill; required by ``caps`` and ``shares``.
        caps: the most items per skill row in the session, shape ``(n_skills,)``, ``inf``
            for no cap.
        shares: target share per skill row, shape ``(n_skills,)``, summing to 1 (0 for a
            skill not to pick).
        seen: the student's answered items per skill row, shape ``(n_skills,)``.
        exposure_k: Sympson-Hetter parameter of each item position, shape ``(n_items,)``
            (``None``: no Sympson-Hetter filter); the draws use ``seed``.
    """

    top: int = 1
    seed: int | None = None
    skill_of: np.ndarray | None = None
    caps: np.ndarray | None = None
    shares: np.ndarray | None = None
    seen: np.ndarray | None = None
    exposure_k: np.ndarray | None = None

    @property
    def plain(self) -> bool:
        """True when :func:`pick` is simply the ranking's first ``k`` items."""
        return (self.top == 1 and self.caps is None and self.shares is None
                and self.exposure_k is None)


def rank(pool: np.ndarray, info: np.ndarray, probability: np.ndarray | None, strategy: str,
         target: float) -> np.ndarray:
    """Indices into ``pool`` (item positions), best first: by ``-info`` for
    ``max_information``; by ``|probability - target|`` (rounded to 12 decimals), then
    ``-info``, for ``target_probability``; ties by position."""
    if strategy == "max_information":
        return np.lexsort((pool, -info))
    assert probability is not None
    return np.lexsort((pool, -info, np.round(np.abs(probability - target), 12)))


def pick(ranked: np.ndarray, k: int, controls: Controls = Controls()) -> np.ndarray:
    """Up to ``k`` of the item positions ``ranked`` (best first), in the order picked.

    Raises:
        ValueError: when ``caps`` or ``shares`` come without ``skill_of``, or ``top < 1``.
    """
    if controls.top < 1:
        raise ValueError("top must be at least 1")
    if controls.plain or ranked.size == 0:
        return ranked[:k]
    balanced = controls.caps is not None or controls.shares is not None
    if controls.exposure_k is not None and controls.top == 1 and not balanced:
        return _first_admitted(ranked, k, controls.exposure_k, controls.seed)
    if balanced and controls.skill_of is None:
        raise ValueError("caps and shares need skill_of")
    rng = np.random.default_rng(controls.seed) if controls.top > 1 else None
    skill = controls.skill_of[ranked] if controls.skill_of is not None else None
    n_skills = 0
    if balanced:
        sizes = [x.shape[0] for x in (controls.caps, controls.shares, controls.seen)
                 if x is not None]
        n_skills = max(sizes)
    count = (np.zeros(n_skills) if controls.seen is None
             else controls.seen.astype(float).copy())
    open_ = (np.ones(ranked.shape[0], dtype=bool) if controls.exposure_k is None
             else admitted(controls.exposure_k, ranked, controls.seed))
    if controls.shares is not None:
        assert skill is not None
        allowed = np.zeros(ranked.shape[0], dtype=bool)
        has = skill >= 0
        allowed[has] = controls.shares[skill[has]] > 0
        open_ &= allowed
    chosen: list[int] = []
    while len(chosen) < k:
        eligible = open_.copy()
        if controls.caps is not None:
            assert skill is not None
            full = np.flatnonzero(count >= controls.caps)
            if full.size:
                eligible &= ~np.isin(skill, full)
        if controls.shares is not None:
            assert skill is not None
            live = np.unique(skill[eligible])
            if live.size == 0:
                break
            counted = controls.shares > 0
            total = count[counted].sum()
            gap = controls.shares[live] - (count[live] / total if total > 0 else 0.0)
            # largest gap, then larger share, then the skill listed first
            best = live[np.lexsort((live, -controls.shares[live], -np.round(gap, 12)))[0]]
            eligible &= skill == best
        where = np.flatnonzero(eligible)
        if where.size == 0:
            break
        at = where[0] if rng is None else where[rng.integers(min(controls.top, where.size))]
        chosen.append(int(at))
        open_[at] = False
        if skill is not None and skill[at] >= 0 and n_skills:
            count[skill[at]] += 1
    return ranked[np.array(chosen, dtype=np.int64)]


def _first_admitted(ranked: np.ndarray, k: int, exposure_k: np.ndarray, seed: int | None
                    ) -> np.ndarray:
    """The first ``k`` items of ``ranked`` that pass their Sympson-Hetter draw, drawing for a
    prefix of the ranking that doubles until it holds ``k`` (a 200,000-item bank then costs
    the draws of a few hundred items, not of every item)."""
    if seed is None:
        seed = int(np.random.default_rng().integers(0, 1 << 63))
    size = max(64, 8 * k)
    while True:
        head = ranked[:size]
        passed = head[admitted(exposure_k, head, seed)]
        if passed.shape[0] >= k or size >= ranked.shape[0]:
            return passed[:k]
        size *= 4


def item_skills(model: ItemModel) -> tuple[tuple[str, ...], np.ndarray] | None:
    """The model's item -> skill map as ``(skill ids, skill row of each item position)``
    (``-1``: no skill), or ``None`` when it has none; cached on the model.

    A learning-aware model's map is ``options["learning"]["item_skills"]``; a plain model's
    is its ``skills`` section's ``item_skills`` (:func:`irt.engine.calibrate.skills_section`).
    The learning map is preferred when a model has both.
    """
    cached = model._cache.get("selection_skills")
    if cached is None:
        learning = model.options.get("learning")
        mapping = learning.get("item_skills") if isinstance(learning, dict) else None
        if not mapping:
            mapping = model.skills.get("item_skills") if model.skills else None
        result = None
        if mapping:
            ids = tuple(dict.fromkeys(str(s) for s in mapping.values()))
            row = {s: q for q, s in enumerate(ids)}
            index = model.index
            of = np.full(model.n_items, -1, dtype=np.int64)
            for item, s in mapping.items():
                j = index.get(item)
                if j is not None:
                    of[j] = row[str(s)]
            result = (ids, of)
        cached = model._cache["selection_skills"] = (result,)  # type: ignore[assignment]
    return cached[0]  # type: ignore[index]


def next_items(model: ItemModel, theta: float, k: int, *, strategy: str = "max_information",
               target: float = 0.7, exclude: np.ndarray | None = None,
               candidates: np.ndarray | None = None,
               controls: Controls = Controls()) -> np.ndarray:
    """Positions of the ``k`` best next items, in the order picked (best first without
    randomesque or content balancing).

    Args:
        model: calibrated items.
        theta: the student's current ability (logits).
        k: how many items (fewer if fewer eligible candidates remain).
        strategy: ``"max_information"`` or ``"target_probability"``.
        target: success probability aimed at by ``target_probability``, in (0, 1).
        exclude: positions never to return (e.g. items already answered), shape ``(m,)``.
        candidates: positions to choose from (default: every item), shape ``(m,)``.
        controls: randomesque and Sympson-Hetter exposure control and content balancing
            (:class:`Controls`).

    Returns:
        Item positions, shape ``(<= min(k, n_candidates),)``.

    Raises:
        ValueError: on an unknown strategy, ``k < 1`` or ``target`` outside (0, 1).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
    if k < 1:
        raise ValueError("k must be at least 1")
    if not 0.0 < target < 1.0:
        raise ValueError("target must be in (0, 1)")
    pool = np.arange(model.n_items) if candidates is None else np.unique(candidates)
    if exclude is not None and exclude.size:
        pool = pool[~np.isin(pool, exclude)]
    if pool.size == 0:
        return pool
    info = model.information_by_position(theta, pool)
    prob = (model.probability_by_position(theta, pool) if strategy == "target_probability"
            else None)
    return pick(pool[rank(pool, info, prob, strategy, target)], k, controls)
