"""Calibration and EAP scoring benchmark against the PyPI ``mirt`` package.

Run from the repository root::

    python benchmarks/bench_fit.py [--cases b,c,d,eap] [--repeat N] [--skip-reference]

Each case simulates 2PL data with a fixed seed (in a child process), writes it to a
temporary ``.npz`` and then runs every fit in a *fresh* child process (this
script with ``--_worker``), so that the child's peak RSS belongs to that one fit.
The child loads the data, runs a tiny warm-up fit (imports, lazy initialisation),
resets the kernel's peak-RSS counter (``/proc/self/clear_refs``), records its RSS,
times the fit and reads ``getrusage(RUSAGE_SELF).ru_maxrss``.  It reports the peak
minus the RSS just before the fit ("peak delta") and the absolute peak.

The reference (PyPI ``mirt``, EM, 2PL, on a dense students x items float matrix with
NaN for missing) runs in the same kind of child with ``RLIMIT_AS`` and a timeout, so
a crash, a memory error or an overrun is reported as ``failed: reason``.

See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "shared"
MIB = 1024 * 1024

# Published figures of R mirt on case (b) (dense 10,000 x 100 2PL).
R_MIRT_B = {"rmse_a": 0.028, "rmse_b": 0.042}
D_REFERENCE_SKIP = "dense 200,000 x 5,000 does not fit (reference measured 17 GB crash)"
RMSE_FACTOR = 1.05


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    n_students: int
    n_items: int
    per_student: int | None  # None = dense
    seed: int
    repeat: int
    ref_repeat: int
    max_time_s: float
    max_peak_mib: float | None


CASES: dict[str, Case] = {
    "b": Case("b", "dense 10,000 x 100 (1M answers)", 10_000, 100, None, 101, 3, 3, 0.6, None),
    "c": Case("c", "50,000 x 2,000, 40 random items each (2M answers)", 50_000, 2_000, 40, 102,
              3, 1, 3.0, 400.0),
    "d": Case("d", "200,000 x 5,000, 50 random items each (10M answers)", 200_000, 5_000, 50,
              103, 1, 1, 20.0, 1536.0),
}
# EAP: calibrate on case-(c)-like data, score new students on the same item bank.
EAP_CAL = Case("eap", "EAP: 10,000 students x 50 answers, 2,000-item bank", 50_000, 2_000, 40,
               104, 11, 11, 0.020, None)
EAP_STUDENTS, EAP_ANSWERS = 10_000, 50


# --------------------------------------------------------------------------- child side
def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the peak RSS (VmHWM, and with it ru_maxrss of this mm) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class _Meter:
    """Peak-RSS and wall-clock measurement around one call."""

    def start(self) -> None:
        gc.collect()
        self.reset_ok = _reset_peak()
        self.rss0_kib = _status_kib("VmRSS") or 0
        self.cpu0 = time.process_time()
        self.t0 = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        cpu = time.process_time() - self.cpu0
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        hwm = _status_kib("VmHWM")
        # ru_maxrss also keeps the high-water mark of any thread that exited earlier (the
        # kernel copies it into the process' signal struct), which clear_refs cannot reset;
        # VmHWM after the reset is the peak of this call alone.  Use it when available.
        peak = hwm if (self.reset_ok and hwm) else maxrss
        return {"wall_s": wall, "cpu_s": cpu, "rss_before_mib": self.rss0_kib / 1024,
                "peak_mib": peak / 1024, "peak_delta_mib": (peak - self.rss0_kib) / 1024,
                "ru_maxrss_mib": maxrss / 1024, "peak_reset": self.reset_ok}


def _rmse(est: np.ndarray, true: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(est) - np.asarray(true)) ** 2)))


def _load_responses(path: str):
    from irt.engine.responses import Responses

    d = np.load(path)
    ns, ni = int(d["n_students"]), int(d["n_items"])
    r = Responses.from_arrays(d["student"], d["item"], d["correct"],
                              [f"s{i}" for i in range(ns)], [f"q{j}" for j in range(ni)])
    return r, d["a"], d["b"]


def _dense(student: np.ndarray, item: np.ndarray, correct: np.ndarray, ns: int, ni: int
           ) -> np.ndarray:
    x = np.full((ns, ni), np.nan)
    x[student, item] = correct
    return x


def _worker_ours_fit(spec: dict[str, Any]) -> dict[str, Any]:
    from irt.engine.calibrate import FitConfig, fit
    from irt.engine.simulate import simulate

    cfg = FitConfig(model="2pl", compute_se=spec["compute_se"])
    fit(simulate(300, 10, seed=0).responses, cfg)  # warm-up
    r, a_true, b_true = _load_responses(spec["data"])
    meter = _Meter()
    meter.start()
    res = fit(r, cfg)
    out = meter.stop()
    idx = np.array([int(i[1:]) for i in res.model.item_ids])
    out.update(rmse_a=_rmse(res.model.a, a_true[idx]), rmse_b=_rmse(res.model.b, b_true[idx]),
               iterations=int(res.iterations), converged=bool(res.converged),
               loglik=float(res.log_likelihood), n_items_fitted=len(idx),
               n_items=r.n_items, est_a=res.model.a.tolist(), est_b=res.model.b.tolist(),
               est_item=idx.tolist())
    return out


def _set_mem_limit(gib: float) -> None:
    limit = int(gib * 1024**3)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _worker_ref_fit(spec: dict[str, Any]) -> dict[str, Any]:
    _set_mem_limit(spec["mem_gib"])
    import mirt

    kw = {"model": "2PL", "n_quadpts": spec["ref_quadpts"],
          "compute_standard_errors": spec["compute_se"]}
    rng = np.random.default_rng(0)
    mirt.fit_mirt((rng.random((300, 10)) < 0.5).astype(float), **kw)  # warm-up
    d = np.load(spec["data"])
    ns, ni = int(d["n_students"]), int(d["n_items"])
    x = _dense(d["student"], d["item"], d["correct"], ns, ni)
    a_true, b_true = d["a"], d["b"]
    del d
    meter = _Meter()
    meter.start()
    res = mirt.fit_mirt(x, **kw)
    out = meter.stop()
    p = res.model.parameters  # IRT form: logit = a (theta - b), no 1.7 factor
    out.update(rmse_a=_rmse(p["discrimination"], a_true), rmse_b=_rmse(p["difficulty"], b_true),
               iterations=int(res.n_iterations), converged=bool(res.converged),
               loglik=float(res.log_likelihood), n_items_fitted=ni, n_items=ni,
               est_a=np.asarray(p["discrimination"]).tolist(),
               est_b=np.asarray(p["difficulty"]).tolist(), est_item=list(range(ni)))
    return out


def _worker_ours_eap(spec: dict[str, Any]) -> dict[str, Any]:
    from irt.engine.calibrate import FitConfig, fit

    try:
        from irt.engine.ability import eap_batch
    except ImportError as exc:  # module being written concurrently
        raise RuntimeError(f"irt.engine.ability.eap_batch not importable: {exc}") from exc
    r, a_true, b_true = _load_responses(spec["data"])
    t0 = time.perf_counter()
    res = fit(r, FitConfig(model="2pl", compute_se=False))
    fit_s = time.perf_counter() - t0
    model = res.model
    del r
    s = np.load(spec["score_data"])
    pos_of_item = np.full(int(s["n_items"]), -1, dtype=np.int64)
    for j, item_id in enumerate(model.item_ids):
        pos_of_item[int(item_id[1:])] = j
    pos = pos_of_item[s["item"]]
    keep = pos >= 0
    student, item_pos, correct = s["student"][keep], pos[keep], s["correct"][keep]
    n = int(s["n_students"])
    eap_batch(model, student, item_pos, correct, n)  # warm-up
    times = []
    meter = _Meter()
    meter.start()
    for _ in range(spec["repeat"]):
        t = time.perf_counter()
        theta, se = eap_batch(model, student, item_pos, correct, n)
        times.append(time.perf_counter() - t)
    out = meter.stop()
    out["cpu_s"] /= spec["repeat"]  # per call, like wall_s
    idx = np.array([int(i[1:]) for i in model.item_ids])
    import inspect

    n_points = inspect.signature(eap_batch).parameters.get("n_points")
    n_points = n_points.default if n_points is not None else 0
    np.savez(spec["model_out"], a=model.a, b=model.b, item=idx, theta=theta,
             n_points=n_points or spec["ref_quadpts"])
    out.update(times_s=times, wall_s=statistics.median(times), fit_s=fit_s,
               rmse_theta=_rmse(theta, s["theta"]), mean_se=float(np.mean(se)),
               answers_dropped=int((~keep).sum()), rmse_a=_rmse(model.a, a_true[idx]),
               rmse_b=_rmse(model.b, b_true[idx]), iterations=int(res.iterations))
    return out


def _worker_ref_eap(spec: dict[str, Any]) -> dict[str, Any]:
    _set_mem_limit(spec["mem_gib"])
    import mirt
    from mirt.models.dichotomous import TwoParameterLogistic

    m = np.load(spec["model_out"])
    s = np.load(spec["score_data"])
    col = np.full(int(s["n_items"]), -1, dtype=np.int64)
    col[m["item"]] = np.arange(m["item"].shape[0])
    c = col[s["item"]]
    keep = c >= 0
    n = int(s["n_students"])
    x = _dense(s["student"][keep], c[keep], s["correct"][keep], n, m["item"].shape[0])
    model = TwoParameterLogistic(n_items=m["item"].shape[0])
    model.set_parameters(discrimination=m["a"], difficulty=m["b"])
    model._is_fitted = True  # no public setter; fscores refuses unfitted models
    # Same grid as ours: eap_batch's default n_points on [-6, 6].
    kw = {"method": "EAP", "n_quadpts": int(m["n_points"]), "bounds": (-6.0, 6.0)}
    mirt.fscores(model, x[:100], **kw)  # warm-up
    times = []
    meter = _Meter()
    meter.start()
    for _ in range(spec["repeat"]):
        t = time.perf_counter()
        sc = mirt.fscores(model, x, **kw)
        times.append(time.perf_counter() - t)
    out = meter.stop()
    out["cpu_s"] /= spec["repeat"]  # per call, like wall_s
    theta = np.asarray(sc.theta, dtype=float).reshape(-1)
    out.update(times_s=times, wall_s=statistics.median(times), n_quadpts=kw["n_quadpts"],
               rmse_theta=_rmse(theta, s["theta"]),
               max_abs_diff_vs_ours=float(np.max(np.abs(theta - m["theta"]))))
    return out


def _worker_simulate(spec: dict[str, Any]) -> dict[str, Any]:
    """Simulate a case into ``spec["data"]`` (and the EAP scoring set into ``score_data``).

    Runs in a child so that this (parent) process stays small: a child's ``ru_maxrss``
    starts from its parent's peak RSS (the kernel records the old mm's high-water mark
    at exec, and ``subprocess`` uses vfork).
    """
    from irt.engine.simulate import simulate

    t0 = time.perf_counter()
    sim = simulate(spec["n_students"], spec["n_items"], spec["per_student"], model="2pl",
                   seed=spec["seed"])
    r = sim.responses
    np.savez(spec["data"], student=r.student, item=r.item, correct=r.correct, a=sim.a,
             b=sim.b, theta=sim.theta, n_students=r.n_students, n_items=r.n_items)
    if spec.get("score_data"):
        _simulate_scoring(spec["score_data"], sim.a, sim.b, spec["seed"] + 1)
    return {"wall_s": time.perf_counter() - t0}


def _simulate_scoring(path: str, a: np.ndarray, b: np.ndarray, seed: int) -> None:
    """New students answering ``EAP_ANSWERS`` random items of the calibration bank."""
    from irt.engine.model import irf

    n_items = a.shape[0]
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(EAP_STUDENTS)
    keys = rng.random((EAP_STUDENTS, n_items))
    item = np.argpartition(keys, EAP_ANSWERS - 1, axis=1)[:, :EAP_ANSWERS].reshape(-1)
    student = np.repeat(np.arange(EAP_STUDENTS), EAP_ANSWERS)
    p = irf(theta[student], a[item], b[item], np.zeros(item.shape[0]))
    correct = (rng.random(p.shape[0]) < p).astype(np.int8)
    np.savez(path, student=student.astype(np.int32), item=item.astype(np.int32),
             correct=correct, theta=theta, n_students=EAP_STUDENTS, n_items=n_items)


WORKERS = {"simulate": _worker_simulate, "ours_fit": _worker_ours_fit, "ref_fit": _worker_ref_fit,
           "ours_eap": _worker_ours_eap, "ref_eap": _worker_ref_eap}


def _worker_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    sys.path.insert(0, str(SHARED))
    try:
        out = {"ok": True, **WORKERS[spec["kind"]](spec)}
    except MemoryError:
        out = {"ok": False, "error": f"MemoryError (RLIMIT_AS {spec.get('mem_gib')} GiB)"}
    except Exception as exc:  # reported, never raised to the parent
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    Path(spec["result"]).write_text(json.dumps(out))


# --------------------------------------------------------------------------- parent side
def _run_child(spec: dict[str, Any], timeout_s: float, workdir: Path) -> dict[str, Any]:
    result = workdir / f"result-{spec['kind']}-{time.monotonic_ns()}.json"
    spec = {**spec, "result": str(result)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", json.dumps(spec)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timeout after {timeout_s:.0f} s"}
    elapsed = time.perf_counter() - t0
    if result.exists():
        out = json.loads(result.read_text())
        out["child_s"] = elapsed
        out["load_avg"] = f"{os.getloadavg()[0]:.2f}"
        return out
    if proc.returncode < 0:
        why = f"killed by {signal.Signals(-proc.returncode).name}"
    else:
        why = f"exit code {proc.returncode}"
    tail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
    hint = ""
    if spec.get("mem_gib") and proc.returncode in (-signal.SIGABRT, -signal.SIGKILL, -11, 1):
        hint = f" (RLIMIT_AS {spec['mem_gib']} GiB?)"
    return {"ok": False, "error": f"{why}{hint} {tail[0][:200]}".strip()}


def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median wall time over repeats, max peak, figures of the last run."""
    ok = [r for r in runs if r.get("ok")]
    if not ok:
        return runs[-1]
    out = dict(ok[-1])
    out["times_s"] = [r["wall_s"] for r in ok] if len(ok) > 1 else ok[0].get("times_s",
                                                                          [ok[0]["wall_s"]])
    out["wall_s"] = statistics.median(r["wall_s"] for r in ok)
    out["cpu_s"] = statistics.median(r["cpu_s"] for r in ok)
    for k in ("peak_mib", "peak_delta_mib", "ru_maxrss_mib"):
        out[k] = max(r[k] for r in ok)
    if len(ok) < len(runs):
        out["note"] = f"{len(runs) - len(ok)} of {len(runs)} runs failed: " + \
            next(r["error"] for r in runs if not r.get("ok"))
    return out


def _fmt(v: Any, kind: str) -> str:
    if v is None:
        return "-"
    if kind == "s":
        return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"
    if kind == "mib":
        return f"{v:.0f} MiB"
    if kind == "rmse":
        return f"{v:.4f}"
    return str(v)


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "MISS")


def _rows(key: str, ours: dict[str, Any], ref: dict[str, Any] | None, case: Case
          ) -> list[list[str]]:
    rows: list[list[str]] = []
    ref_ok = bool(ref and ref.get("ok"))

    def row(metric: str, field: str, kind: str, target: str = "", ok: bool | None = None
            ) -> None:
        o = ours.get(field)
        r = ref.get(field) if ref_ok else None
        num = (float, int)
        both = isinstance(o, num) and isinstance(r, num) and not isinstance(o, bool)
        ratio = f"{o / r:.2f}" if both and r else "-"
        if ref_ok:
            rtxt = _fmt(r, kind)
        elif ref is None:
            rtxt = "not run"
        else:
            rtxt = "skipped" if ref["error"].startswith("skipped") else "failed (see below)"
        rows.append([key, metric, _fmt(o, kind), rtxt, ratio, target, _verdict(ok)])

    if not ours.get("ok"):
        rows.append([key, "ours", "failed: " + ours.get("error", "?"), "", "", "", "MISS"])
        return rows
    is_eap = key == "eap"
    wall = ours["wall_s"]
    row("score time" if is_eap else "fit time", "wall_s", "s",
        f"<= {_fmt(case.max_time_s, 's')}", wall <= case.max_time_s)
    peak_ok = None if case.max_peak_mib is None else ours["peak_delta_mib"] <= case.max_peak_mib
    row("peak RSS delta", "peak_delta_mib", "mib",
        f"<= {case.max_peak_mib:.0f} MiB" if case.max_peak_mib else "", peak_ok)
    row("peak RSS abs", "peak_mib", "mib")
    row("CPU time (info)", "cpu_s", "s")
    if is_eap:
        r_t = ref.get("rmse_theta") if ref_ok else None
        row("RMSE theta", "rmse_theta", "rmse", f"<= {RMSE_FACTOR} x ref",
            None if r_t is None else ours["rmse_theta"] <= RMSE_FACTOR * r_t)
        row("mean SE theta", "mean_se", "rmse")
        rows.append([key, "fitted bank RMSE a/b",
                     f"{ours['rmse_a']:.4f}/{ours['rmse_b']:.4f}", "-", "-", "", "-"])
        return rows
    for p in ("a", "b"):
        field = f"rmse_{p}"
        r_v = ref.get(field) if ref_ok else None
        row(f"RMSE {p}", field, "rmse", f"<= {RMSE_FACTOR} x ref",
            None if r_v is None else ours[field] <= RMSE_FACTOR * r_v)
        if key == "b":
            pub = R_MIRT_B[field]
            rows.append([key, f"RMSE {p} vs R mirt (published)", f"{ours[field]:.4f}",
                         f"{pub:.3f} (R mirt)", f"{ours[field] / pub:.2f}",
                         f"<= {RMSE_FACTOR} x R", _verdict(ours[field] <= RMSE_FACTOR * pub)
                         + " (info)"])
    row("iterations", "iterations", "")
    row("converged", "converged", "")
    return rows


def _print_table(rows: list[list[str]]) -> None:
    head = ["case", "metric", "ours", "reference (PyPI mirt)", "ours/ref", "target", "status"]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    print(line)
    print("-" * len(line))
    prev = None
    for r in rows:
        if prev is not None and r[0] != prev:
            print()
        prev = r[0]
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _header(args: argparse.Namespace) -> None:
    import scipy

    try:
        from importlib.metadata import version
        mirt_v = version("mirt")
    except Exception:  # not installed
        mirt_v = "not installed"
    print("IRT calibration benchmark (benchmarks/bench_fit.py)")
    print(f"  python {platform.python_version()}  numpy {np.__version__}  scipy {scipy.__version__}"
          f"  mirt (PyPI) {mirt_v}")
    print(f"  os.cpu_count() = {os.cpu_count()}  platform {platform.platform()}")
    print(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"  ours: irt.engine.calibrate.fit 2PL, FitConfig defaults (41 nodes, SEs "
          f"{'on' if not args.no_se else 'off'}); each fit in a fresh process after a warm-up")
    print(f"  reference: mirt.fit_mirt(dense float matrix, NaN = missing, '2PL', n_quadpts="
          f"{args.ref_quadpts}, compute_standard_errors={args.ref_se}); RLIMIT_AS "
          f"{args.ref_mem_gb:g} GiB, timeout {args.ref_timeout:g} s per fit")
    print()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="b,c,d,eap", help="comma list of b, c, d, eap")
    ap.add_argument("--repeat", type=int, default=None,
                    help="fits per case (median time); default 3 for b and c, 1 for d, "
                         "11 scoring calls for eap")
    ap.add_argument("--ref-repeat", type=int, default=None,
                    help="reference fits per case; default 3 for b, 1 for c (~1.5 min each)")
    ap.add_argument("--skip-reference", action="store_true", help="do not run PyPI mirt")
    ap.add_argument("--force-d-reference", action="store_true",
                    help="run the reference on case d too (needs ~17 GB: expect a failure)")
    ap.add_argument("--ref-mem-gb", type=float, default=8.0, help="RLIMIT_AS of reference runs")
    ap.add_argument("--ref-timeout", type=float, default=120.0, help="seconds per reference fit")
    ap.add_argument("--ref-quadpts", type=int, default=41,
                    help="mirt n_quadpts (its default 21 is visibly less accurate)")
    ap.add_argument("--ref-se", action="store_true",
                    help="reference computes SEs too (Oakes; > 5 min on case c)")
    ap.add_argument("--no-se", action="store_true", help="our fit without standard errors")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per fit of ours")
    ap.add_argument("--_worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._worker:
        _worker_main(args._worker)
        return 0

    sys.path.insert(0, str(SHARED))
    keys = [k.strip() for k in args.cases.split(",") if k.strip()]
    unknown = [k for k in keys if k not in (*CASES, "eap")]
    if unknown:
        ap.error(f"unknown case(s): {', '.join(unknown)}")
    _header(args)
    rows: list[list[str]] = []
    details: list[str] = []
    notes: list[str] = []
    common = {"compute_se": not args.no_se, "ref_quadpts": args.ref_quadpts,
              "mem_gib": args.ref_mem_gb}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_fit_") as tmp:
        work = Path(tmp)
        for key in keys:
            case = EAP_CAL if key == "eap" else CASES[key]
            repeat = args.repeat or case.repeat
            ref_repeat = args.ref_repeat or min(repeat, case.ref_repeat)
            data = work / f"{key}.npz"
            score = work / "eap_score.npz"
            sim = _run_child({"kind": "simulate", "data": str(data), "seed": case.seed,
                              "n_students": case.n_students, "n_items": case.n_items,
                              "per_student": case.per_student,
                              "score_data": str(score) if key == "eap" else ""},
                             args.timeout, work)
            if not sim.get("ok"):
                print(f"[{key}] simulation failed: {sim.get('error')}", flush=True)
                rows.append([key, "simulation", "failed: " + str(sim.get("error")), "", "",
                             "", "MISS"])
                continue
            print(f"[{key}] {case.title}: simulated in {sim['wall_s']:.1f} s", flush=True)
            if key == "eap":
                spec = {**common, "kind": "ours_eap", "data": str(data),
                        "score_data": str(score), "repeat": repeat,
                        "model_out": str(work / "eap_model.npz")}
                ours = _run_child(spec, args.timeout, work)
                ref = None
                if not args.skip_reference and ours.get("ok"):
                    ref = _run_child({**spec, "kind": "ref_eap"}, args.ref_timeout, work)
                elif not args.skip_reference:
                    ref = {"ok": False, "error": "ours failed, nothing to score with"}
            else:
                spec = {**common, "kind": "ours_fit", "data": str(data)}
                ours = _combine([_run_child(spec, args.timeout, work) for _ in range(repeat)])
                ref = None
                if args.skip_reference:
                    ref = None
                elif key == "d" and not args.force_d_reference:
                    ref = {"ok": False, "error": "skipped: " + D_REFERENCE_SKIP}
                else:
                    rspec = {**spec, "kind": "ref_fit", "compute_se": args.ref_se}
                    ref = _combine([_run_child(rspec, args.ref_timeout, work)
                                    for _ in range(ref_repeat)])
            print(f"[{key}] ours: {_brief(ours)}", flush=True)
            if ref is not None:
                print(f"[{key}] reference: {_brief(ref)}", flush=True)
            rows += _rows(key, ours, ref, case)
            if ref is not None and not ref.get("ok"):
                err = ref.get("error", "?")
                why = err if err.startswith("skipped") else "failed: " + err
                notes.append(f"{key} reference: {why}")
            agree = _agreement(ours, ref)
            if agree:
                details.append(f"{key:>3} ours vs ref: {agree}")
            details.append(_detail(key, "ours", ours))
            if ref is not None and ref.get("ok"):
                details.append(_detail(key, "ref", ref))
            data.unlink()
    print()
    _print_table(rows)
    print()
    for n in notes:
        print(n)
    if notes:
        print()
    print("Details (all wall times; peak = max over runs):")
    for d in details:
        print("  " + d)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"total {time.perf_counter() - t_all:.0f} s")
    return 0


def _agreement(ours: dict[str, Any], ref: dict[str, Any] | None) -> str:
    """RMS difference between our and the reference's item estimates (common items)."""
    if not (ours.get("ok") and ref and ref.get("ok") and "est_a" in ours and "est_a" in ref):
        return ""
    ro = {j: k for k, j in enumerate(ref["est_item"])}
    common = [(k, ro[j]) for k, j in enumerate(ours["est_item"]) if j in ro]
    ko, kr = (np.array(x) for x in zip(*common, strict=True))
    da = np.asarray(ours["est_a"])[ko] - np.asarray(ref["est_a"])[kr]
    db = np.asarray(ours["est_b"])[ko] - np.asarray(ref["est_b"])[kr]
    return (f"RMS difference a {np.sqrt(np.mean(da**2)):.4f}, b {np.sqrt(np.mean(db**2)):.4f} "
            f"over {len(common)} items")


def _brief(r: dict[str, Any]) -> str:
    if not r.get("ok"):
        return "failed: " + r.get("error", "?")
    return (f"{_fmt(r['wall_s'], 's')} (median), peak delta {r['peak_delta_mib']:.0f} MiB, "
            f"abs {r['peak_mib']:.0f} MiB")


def _detail(key: str, who: str, r: dict[str, Any]) -> str:
    if not r.get("ok"):
        return f"{key:>3} {who}: failed: {r.get('error')}"
    times = ", ".join(_fmt(t, "s") for t in r.get("times_s", [r["wall_s"]]))
    extra = []
    for k in ("loglik", "n_items_fitted", "fit_s", "answers_dropped", "max_abs_diff_vs_ours",
              "n_quadpts", "rss_before_mib", "ru_maxrss_mib", "peak_reset", "load_avg", "note"):
        if k in r:
            v = r[k]
            if k == "loglik":
                extra.append(f"{k}={v:.2f}")
            else:
                extra.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return f"{key:>3} {who}: times [{times}]; " + " ".join(extra)


if __name__ == "__main__":
    sys.exit(main())
