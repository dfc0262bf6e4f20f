"""The benchmarks' machine-readable figures, for the release-to-release regression check.

Each benchmark that measures a figure the regression check compares (serving latency and
throughput, refresh duration, memory) records it here with the reference it measured in the
same run, beside the table it prints.  ``build/bench/figures.json`` collects them (each
script adds or replaces its own figures); ``scripts/perf_regression.py`` compares that file
with the previous release's, ``benchmarks/baseline.json`` (``make bench`` runs it last;
``make bench-baseline`` makes the current figures the baseline at a release).

A figure is compared by its **ratio to its same-run reference** (the hello-world server for
HTTP throughput and latency, DuckDB reading the log for a refresh, a fixed numpy workload for
in-process latency), as the benchmarks already print: the ratio carries over between runs on
a loaded or another machine far better than the raw value.  ``noise`` is the relative band
within which a ratio may move between two runs of the same code (the check fails beyond it).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "build" / "bench" / "figures.json"


def machine() -> dict[str, Any]:
    """What the figures were measured on (kept with them: a comparison across machines is
    only as good as the ratios)."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu or platform.processor(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "system": platform.platform(),
            "load_average": round(os.getloadavg()[0], 2)}


def reference_ms(repeat: int = 7) -> float:
    """Median process CPU time (ms) of a fixed single-threaded workload (numpy elementwise
    and pure Python): the same-run reference of figures that have no natural one."""
    import numpy as np

    x = np.linspace(-3.0, 3.0, 20_000)
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(30):  # elementwise only: no BLAS threads, whose spinning counts as CPU
            p = 1.0 / (1.0 + np.exp(-1.3 * x + 0.2))
            float(np.log(p).sum())
        sum(i * i for i in range(50_000))
        times.append(time.process_time() - t0)
    return statistics.median(times) * 1e3


def record(name: str, value: float, *, unit: str, better: str, reference: float,
           reference_name: str, noise: float, path: Path = FIGURES) -> None:
    """Add (or replace) one figure in ``path``.

    Args:
        name: ``<benchmark>.<figure>``, e.g. ``predict.inproc_single_ms``.
        value: the median measured.
        unit: its unit (``ms``, ``req/s``, ``s``, ``MiB``).
        better: ``lower`` or ``higher``.
        reference: the same-run reference in the same unit; ``ratio = value / reference``.
        reference_name: what the reference is.
        noise: the relative band of the ratio between runs of the same code (0.2: +-20 %).
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be lower or higher, got {better!r}")
    if not (value > 0 and reference > 0 and noise > 0):
        raise ValueError(f"{name}: value, reference and noise must be positive")
    doc = load(path) if path.exists() else {"figures": {}}
    doc["machine"] = machine()
    doc["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    doc["figures"][name] = {"value": value, "unit": unit, "better": better,
                            "reference": reference, "reference_name": reference_name,
                            "ratio": value / reference, "noise": noise}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def load(path: Path) -> dict[str, Any]:
    """A figures file (``build/bench/figures.json`` or ``benchmarks/baseline.json``)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("figures"), dict):
        raise ValueError(f"{path}: not a figures file (no 'figures' object)")
    return doc
