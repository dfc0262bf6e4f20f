"""A learning-aware model big enough for 1,000-answer histories of distinct items (the
request cap), with hand-set parameters and every option: shared by the engine's posterior
tests and the serving fast-path tests."""

from __future__ import annotations

import numpy as np

from irt.engine.artifact import load_model
from irt.engine.learning import Learning, learning_to_dict
from irt.engine.model import ItemModel

N_ITEMS, N_SKILLS = 1500, 40


def big_model(seed: int = 0) -> ItemModel:
    """1,500 items in 40 skills (every 37th item without one), all options, through JSON."""
    rng = np.random.default_rng(seed)
    ids = tuple(f"q{j}" for j in range(N_ITEMS))
    nan = np.full(N_ITEMS, np.nan)
    base = ItemModel("2pl", ids, np.exp(rng.normal(0, 0.4, N_ITEMS)),
                     rng.normal(0, 1.3, N_ITEMS), np.zeros(N_ITEMS), nan, nan, nan)
    item_skill = rng.integers(0, N_SKILLS, N_ITEMS)
    item_skill[::37] = -1
    spec = Learning(options=("recency", "skills", "pfa"), decay=0.93, skill_sd=0.7, window=10,
                    beta=np.array([0.2, -0.15, 0.1, -0.1, 0.2]),
                    gamma=rng.normal(0, 0.2, (N_SKILLS, 3)),
                    skill_ids=tuple(f"k{k}" for k in range(N_SKILLS)), item_skill=item_skill)
    base.options = {"learning": learning_to_dict(spec, ids)}
    return load_model(base.to_json())
