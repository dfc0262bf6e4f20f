"""``predict`` on ASSISTments 2009, the plain 2PL and the learning-aware model: one in-process
request whose history has 1,000 answers (the request limit), and 10 answers.  Issue #13's
target: <= 1 ms per request for a 1,000-answer history, for both models.

The models: the 2PL and ``recency,skills,pfa`` (the set ``auto`` chooses on this log, README
"Sparse logs and skills") calibrated on the training file with the defaults, then served as
``predict`` serves them: written as artifacts, loaded with
:func:`irt.engine.artifact.load_model` and warmed (:func:`irt.serving.api.warm`), the training
data freed.  (A model used straight from the fit lies in a heap fragmented by the calibration,
and its lookups were 5-8 % slower.)  A request sends a
history of distinct calibrated items, drawn from the training log's answers (their own
right/wrong), and asks for one item.  The two models answer the same requests in alternating
blocks of 25 (within a block a model's lookups stay in cache, as when a server answers with
one model; alternating, a change of machine load falls on both alike); figures are medians
over ``--requests`` requests per history length and model.

Three timings, each on its own requests (so that none finds the items of the request before
in cache, as a server's next request has other items), each from a body built before the
run:
- "request ms" (the target's figure): what the server does with the request's bytes, as
  ``functions/predict/main.py`` does - :func:`irt.serving.body.decode_single` (msgspec), then
  ``predict_decoded`` - decoding included.
- "general ms": the same bytes through the general path, ``parse_json`` (orjson, strict) then
  ``predict`` on the parsed objects: what a request the decoder leaves to it pays (one with
  timestamps, ``item_skills`` or a batch), decoding included.
- "dict ms": ``predict`` on the body as Python objects built long before (no decoding; its
  1,000 answer objects no longer in the CPU's caches): this benchmark's target figure before
  the server decoded the common request itself.

References measured in the same run: the plain 2PL for the learning-aware model (the column
"ratio"), and for both a fixed numpy workload, ``logaddexp`` over a 1,000 x 61 array (the
per-entry work of the re-integration before it became a product per node), timed between the
requests: "x ref" is a request's median over that workload's median, comparable between runs
at different machine loads.  The machine's cores and load average are printed with the
figures.  Skipped cleanly when ``../shared/datasets/assistments2009_lpp`` is absent.

    PYTHONPATH=shared .venv/bin/python benchmarks/bench_predict_learning.py [--requests 300]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from figures import record  # benchmarks/figures.py

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "assistments2009_lpp"
TRAIN = DATA / "assistments2009_lpp_train.csv.gz"
PLAIN, LEARNING = "plain 2pl", "2pl+recency+skills+pfa"
BLOCK = 25  # requests per model in a row


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    if not TRAIN.exists():
        print(f"skipped: {TRAIN} not found")
        return 0
    from irt.engine.artifact import load_model
    from irt.engine.calibrate import FitConfig, fit
    from irt.engine.learning_fit import LearningConfig, fit_learning, with_recency
    from irt.engine.preprocess import prepare_rows
    from irt.serving import Limits, predict, predict_decoded, warm
    from irt.serving.body import decode_single, parse_json
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
    limits = Limits()
    # served as predict serves a model: from its artifact, warmed, the training data freed
    plain, learned = (load_model(model.to_json()) for model in (plain, learned))
    del prepared, train
    gc.collect()
    for model in (plain, learned):
        warm(model, limits)
    rng = np.random.default_rng(0)
    known = np.array(list(set(learned.item_ids)))
    by_item: dict[str, list[int]] = {}
    for k, i in enumerate(items):
        by_item.setdefault(i, []).append(k)
    models = {PLAIN: plain, LEARNING: learned}
    z = np.random.default_rng(1).normal(0.0, 3.0, (1000, 61))

    def reference() -> float:
        start = time.perf_counter()
        np.logaddexp(0.0, z).sum(axis=0)
        return time.perf_counter() - start

    def payload(n: int) -> dict:
        picked = rng.choice(known, size=n + 1, replace=False)
        answers = [{"item_id": str(i), "correct": bool(correct[rng.choice(by_item[str(i)])])}
                   for i in picked[:n]]
        return {"responses": answers, "items": [str(picked[n])]}

    load_before = _load()
    times: dict[str, dict[tuple[str, int], float]] = {"request": {}, "general": {}, "dict": {}}
    refs: list[float] = []
    for n in (10, 1000):
        # each timing its own requests: a request's items looked up by one path must not
        # be in cache for the next (a server's next request has other items)
        bodies = {kind: [payload(n) for _ in range(args.requests)] for kind in times}
        texts = {kind: [json.dumps(body).encode() for body in bodies[kind]] for kind in times}
        for model in models.values():  # the code paths, once
            predict(model, bodies["dict"][0], limits, "bench")
            predict_decoded(model, decode_single(texts["request"][0]), limits, "bench")
        spent: dict[str, dict[str, list[float]]] = {
            kind: {name: [] for name in models} for kind in times}
        for k in range(0, args.requests, BLOCK):
            # blocks of requests per model (a server answers with one model: its lookups
            # stay in cache from one request to the next), the models alternating
            for name in (PLAIN, LEARNING) if k // BLOCK % 2 else (LEARNING, PLAIN):
                model = models[name]
                for j in range(k, min(k + BLOCK, args.requests)):
                    start = time.perf_counter()
                    predict_decoded(model, decode_single(texts["request"][j]), limits, "bench")
                    spent["request"][name].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    predict(model, parse_json(texts["general"][j]), limits, "bench")
                    spent["general"][name].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    predict(model, bodies["dict"][j], limits, "bench")
                    spent["dict"][name].append(time.perf_counter() - start)
                refs.append(reference())
        for kind, by_model in spent.items():
            for name, values in by_model.items():
                times[kind][name, n] = statistics.median(values) * 1e3
    ref = statistics.median(refs) * 1e3
    print(f"machine: {os.cpu_count()} CPUs; load average (1, 5, 15 min) {load_before} before, "
          f"{_load()} after")
    print(f"{'model':<24} {'history':>8} {'request ms':>11} {'ratio':>6} {'x ref':>6} "
          f"{'general ms':>11} {'dict ms':>8}  target")
    request = times["request"]
    for n in (10, 1000):
        for name in models:
            ms = request[name, n]
            target = ("<= 1 ms: " + ("met" if ms <= 1.0 else "MISSED")) if n == 1000 else "-"
            print(f"{name:<24} {n:>8} {ms:>11.3f} {ms / request[PLAIN, n]:>6.2f} "
                  f"{ms / ref:>6.2f} {times['general'][name, n]:>11.3f} "
                  f"{times['dict'][name, n]:>8.3f}  {target}")
    print(f"ratio: over the plain 2pl at the same length; x ref: over the reference workload "
          f"(np.logaddexp over 1,000 x 61, median {ref:.3f} ms over {len(refs)} runs)")
    # The regression check's figures (scripts/perf_regression.py), as ratios to the same-run
    # reference workload: the 1,000-answer medians of both models.
    for key, name in (("plain", PLAIN), ("learning", LEARNING)):
        record(f"predict.long_{key}_ms", request[name, 1000], unit="ms", better="lower",
               reference=ref, reference_name="np.logaddexp over 1,000 x 61 (ms)", noise=0.2)
    print(f"medians of {args.requests} in-process requests each: request = decode_single + "
          f"predict from the body's bytes (the target's figure), general = parse_json + predict, "
          f"dict = predict on a body built before the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
