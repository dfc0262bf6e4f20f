"""The learning-aware fit at 10M answers (issue #13): wall time and peak memory, measured.

The log is :func:`irt.engine.simulate.simulate_sparse` at 10M answers (``--students-answers``
per student, a bank of ``--bank`` items in ``--skills`` skills, Zipf exposure; 2PL truth),
its ``item_skill`` as the skill map.  Three fresh processes, each measured on its own (wall
time and CPU time of the fit - on a shared machine the wall time includes waiting for a
core; peak RSS of the process, ``ru_maxrss``, and its RSS before the fit):

1. the plain 2PL fit as ``prepare`` runs it (the defaults), which writes the model;
2. the learning-aware fit (``--options``, default ``skills,pfa``) on top of it with the
   default cap :data:`irt.engine.defaults.DEFAULTS.learning_max_answers` (a deterministic
   sample of whole students; items outside it keep the plain fit);
3. with ``--also-cap N`` the same at another cap (``none``: no cap - slow and large).

Target (#13): the learning-aware fit at 10M answers in <= 120 s and <= 4 GB, or the cap
``prepare`` applies by default keeps it there.  About 4-6 minutes on 2 cores: not part of
``make bench``; ``make bench-10m`` runs it.

    PYTHONPATH=shared python benchmarks/bench_learning_10m.py [--answers 10000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 120.0
TARGET_GIB = 4.0

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {shared!r})
import numpy as np
from irt.engine.responses import Responses
stage, data, model_path, options, cap = sys.argv[1:6]
def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
z = np.load(data)
n_students = int(z["student"].max()) + 1
r = Responses(z["student"], z["item"], z["correct"], [f"s{{i}}" for i in range(n_students)],
              [f"q{{j}}" for j in z["bank_item"].tolist()])
out = {{"answers": int(r.n_answers), "rss_before_mib": rss_mib()}}
if stage == "plain":
    from irt.engine.calibrate import FitConfig, fit
    t0, c0 = time.perf_counter(), cpu()
    result = fit(r, FitConfig(compute_se=False))
    out.update(seconds=time.perf_counter() - t0, cpu_seconds=cpu() - c0,
               iterations=result.iterations,
               converged=result.converged, items=result.model.n_items)
    open(model_path, "w").write(result.model.to_json())
else:
    from irt.engine.artifact import load_model
    from irt.engine.learning import learning_of, parse_options
    from irt.engine.learning_fit import LearningConfig, fit_learning
    base = load_model(open(model_path).read())
    skills = z["item_skill"]
    skill_ids = [f"k{{k}}" for k in range(int(skills.max()) + 1)]
    config = LearningConfig(options=parse_options(options))
    if cap != "default":
        from dataclasses import replace
        config = replace(config, max_answers=None if cap == "none" else int(cap))
    out["rss_before_mib"] = rss_mib()
    t0, c0 = time.perf_counter(), cpu()
    result = fit_learning(base, r, None, skills, skill_ids, config)
    spec = learning_of(result.model)
    out.update(seconds=time.perf_counter() - t0, cpu_seconds=cpu() - c0,
               iterations=result.iterations,
               converged=result.converged, skill_sd=spec.skill_sd, cap=config.max_answers,
               sample=spec.fit["sample"])
out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def _child(stage: str, data: Path, model: Path, options: str, cap: str) -> dict:
    code = CHILD.format(shared=str(ROOT / "shared"))
    done = subprocess.run([sys.executable, "-c", code, stage, str(data), str(model), options,
                           cap], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{stage} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=10_000_000)
    parser.add_argument("--students-answers", type=int, default=50,
                        help="answers drawn per student (default %(default)s)")
    parser.add_argument("--bank", type=int, default=100_000, help="item bank (default %(default)s)")
    parser.add_argument("--skills", type=int, default=200, help="skills (default %(default)s)")
    parser.add_argument("--options", default="skills,pfa")
    parser.add_argument("--also-cap", default=None,
                        help="also fit at this cap (an integer or 'none')")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "shared"))
    from irt.engine import defaults
    from irt.engine.simulate import simulate_sparse

    with tempfile.TemporaryDirectory() as tmp:
        data, model = Path(tmp) / "log.npz", Path(tmp) / "model.json"
        t0 = time.perf_counter()
        sim = simulate_sparse(args.answers, bank=args.bank,
                              answers_per_student=args.students_answers,
                              n_skills=args.skills, seed=10)
        r = sim.responses
        bank_item = np.array([int(i[1:]) for i in r.item_ids])
        np.savez(data, student=r.student, item=r.item, correct=r.correct,
                 bank_item=bank_item, item_skill=sim.item_skill)
        pairs = len(np.unique(r.student.astype(np.int64) * args.skills
                              + sim.item_skill[r.item]))
        print(f"simulated {r.n_answers:,} answers, {len(r.student_ids):,} students, "
              f"{len(r.item_ids):,} items, {args.skills} skills, {pairs:,} (student, skill) "
              f"pairs in {time.perf_counter() - t0:.0f} s", flush=True)
        del sim, r
        plain = _child("plain", data, model, "", "default")
        print(f"plain 2PL fit (the defaults):      {plain['seconds']:7.1f} s "
              f"(CPU {plain['cpu_seconds']:.1f} s)  "
              f"{plain['iterations']} EM cycles  converged={plain['converged']}  "
              f"peak RSS {plain['peak_mib'] / 1024:.2f} GiB "
              f"(before the fit {plain['rss_before_mib'] / 1024:.2f})", flush=True)
        caps = ["default"] + ([args.also_cap] if args.also_cap else [])
        for cap in caps:
            row = _child("learning", data, model, args.options, cap)
            s = row["sample"]
            label = f"{args.options}, cap {row['cap'] if row['cap'] else 'none'}"
            status = "PASS" if (row["seconds"] <= TARGET_SECONDS
                                and row["peak_mib"] / 1024 <= TARGET_GIB) else "MISS"
            print(f"{label:<34} {row['seconds']:7.1f} s (CPU {row['cpu_seconds']:.1f} s)  "
                  f"{row['iterations']} E-steps  "
                  f"converged={row['converged']}  peak RSS {row['peak_mib'] / 1024:.2f} GiB "
                  f"(before the fit {row['rss_before_mib'] / 1024:.2f})  answers used "
                  f"{s['n_answers_used']:,} of {s['n_answers_total']:,} "
                  f"({s['n_students_used']:,} students)  tau {row['skill_sd']:.3f}"
                  + (f"  target <= {TARGET_SECONDS:.0f} s and <= {TARGET_GIB:.0f} GiB: "
                     f"{status}" if cap == "default" else ""), flush=True)
        print(f"default cap: {defaults.DEFAULTS.learning_max_answers:,} answers "
              "(irt.engine.defaults.DEFAULTS.learning_max_answers, LEARNING_MAX_ANSWERS)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
