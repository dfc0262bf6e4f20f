"""Cross-check of maximum-information selection against catsim (run with a Python that has
catsim installed; not part of the test suite, whose venv has no catsim):

    python benchmarks/catsim_crosscheck.py

For a 3PL bank of 300 items and 200 abilities, catsim's ``MaxInfoSelector`` and
:func:`irt.engine.selection.next_items` each pick 20 items one at a time at that ability;
prints how many of the 4000 picks agree."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from catsim.item_bank import ItemBank
from catsim.selection import MaxInfoSelector

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))
from irt.engine.model import ItemModel
from irt.engine.selection import next_items


def main() -> None:
    rng = np.random.default_rng(3)
    n = 300
    a, b, c = rng.lognormal(0, 0.3, n), rng.normal(0, 1, n), rng.uniform(0, 0.25, n)
    nan = np.full(n, np.nan)
    model = ItemModel("3pl", [f"q{j}" for j in range(n)], a, b, c, nan, nan, nan)
    bank = ItemBank(np.column_stack([a, b, c, np.ones(n)]))
    selector = MaxInfoSelector()
    agree = total = 0
    for theta in rng.normal(0, 1.2, 200):
        ours: list[int] = []
        theirs: list[int] = []
        for _ in range(20):
            ours.append(int(next_items(model, float(theta), 1,
                                       exclude=np.array(ours, dtype=np.int64))[0]))
            theirs.append(int(selector.select(item_bank=bank, administered_items=theirs,
                                              est_theta=float(theta))))
        agree += sum(x == y for x, y in zip(ours, theirs, strict=True))
        total += len(ours)
    print(f"max-information picks identical to catsim's: {agree}/{total}")


if __name__ == "__main__":
    main()
