"""``predict`` with a learning-aware model on ASSISTments 2009: one in-process request whose
history has 1,000 answers (the request limit), and 10 answers (issue #13's target: <= 1 ms
for 1,000 answers).

The model: the 2PL and ``recency,skills,pfa`` (the set ``auto`` chooses on this log, README
"Online evaluation") calibrated on the training file with the defaults.  A request sends a
history of 1,000 first attempts at distinct calibrated items, drawn from the training log's
answers (their own right/wrong), and asks for one item.  Reference, measured in the same run:
the same requests to the plain 2PL.  Medians over ``--requests`` requests.  Skipped cleanly
when ``../shared/datasets/assistments2009_lpp`` is absent.

    PYTHONPATH=shared .venv/bin/python benchmarks/bench_predict_learning.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "assistments2009_lpp"
TRAIN = DATA / "assistments2009_lpp_train.csv.gz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    if not TRAIN.exists():
        print(f"skipped: {TRAIN} not found")
        return 0
    from irt.engine.calibrate import FitConfig, fit
    from irt.engine.learning_fit import LearningConfig, fit_learning, with_recency
    from irt.engine.preprocess import prepare_rows
    from irt.serving import Limits, predict
    from irt.tools.cli import _read_log, _train_skills

    students, items, correct, order, skills = _read_log(TRAIN, "user_id", "seq", "skill_id")
    prepared = prepare_rows(zip(students, items, correct.tolist(), order.tolist(), strict=True))
    train = prepared.responses
    t0 = time.perf_counter()
    plain = fit(train, FitConfig(compute_se=False)).model
    item_skill, skill_ids = _train_skills(train, items, skills)
    learned = fit_learning(plain, train, prepared.answered_at, item_skill, skill_ids,
                           LearningConfig(options=("skills", "pfa"))).model
    learned = with_recency(learned, LearningConfig().decay)
    print(f"calibrated 2pl + recency,skills,pfa on {train.n_answers} answers in "
          f"{time.perf_counter() - t0:.1f} s")
    rng = np.random.default_rng(0)
    known = np.array(list(set(learned.item_ids)))
    by_item: dict[str, list[int]] = {}
    for k, i in enumerate(items):
        by_item.setdefault(i, []).append(k)
    limits = Limits()

    def payload(n: int) -> dict:
        picked = rng.choice(known, size=n + 1, replace=False)
        answers = [{"item_id": str(i), "correct": bool(correct[rng.choice(by_item[str(i)])])}
                   for i in picked[:n]]
        return {"responses": answers, "items": [str(picked[n])]}

    rows = []
    for n in (10, 1000):
        bodies = [payload(n) for _ in range(args.requests)]
        times = {}
        for name, model in (("plain 2pl (reference)", plain),
                            ("2pl+recency+skills+pfa", learned)):
            predict(model, bodies[0], limits, "bench")  # warm the per-model caches
            spent = []
            for body in bodies:
                start = time.perf_counter()
                predict(model, body, limits, "bench")
                spent.append(time.perf_counter() - start)
            times[name] = statistics.median(spent) * 1e3
        ours, ref = times["2pl+recency+skills+pfa"], times["plain 2pl (reference)"]
        rows.append((n, ours, ref))
    print(f"{'history':>8} {'learning ms':>12} {'plain ms (ref)':>15} {'ratio':>6} target")
    for n, ours, ref in rows:
        target = "<= 1 ms: " + ("met" if ours <= 1.0 else "MISSED") if n == 1000 else "-"
        print(f"{n:>8} {ours:>12.3f} {ref:>15.3f} {ours / ref:>6.2f} {target}")
    print(f"medians of {args.requests} in-process irt.serving.predict calls each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
