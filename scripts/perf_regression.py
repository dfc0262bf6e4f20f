"""Release-to-release performance regression check (ML Test Score monitoring 6).

Compares the figures of this run (``build/bench/figures.json``, written by ``make bench``:
``benchmarks/figures.py``) with the previous release's (``benchmarks/baseline.json``,
committed).  Each figure is compared by its ratio to the reference measured in the same run
(hello world, DuckDB's read, a fixed CPU workload), not by its raw value; it regresses when
that ratio moves the wrong way by more than the baseline's noise band for it:

* ``better: lower`` (latency, duration, memory): ``ratio > baseline ratio x (1 + noise)``;
* ``better: higher`` (throughput): ``ratio < baseline ratio x (1 - noise)``.

A figure of the baseline that this run did not measure fails too, so a benchmark cannot drop
out of the comparison unnoticed, unless it matches an ``--optional`` pattern (figures that
need a data set or a tool a machine may lack: ``prepare.a_*`` and ``predict.long_*`` need
ASSISTments, ``predict.http_*`` needs wrk) or ``--allow-missing`` is given; either way it is
reported.

Usage::

    python scripts/perf_regression.py [--baseline benchmarks/baseline.json]
        [--current build/bench/figures.json] [--optional 'prepare.a_*' ...]
        [--allow-missing] [--out build/bench]
    python scripts/perf_regression.py --promote   # the current figures become the baseline

Exit status 1 on a regression (or a missing figure), 2 on unreadable input.  Writes
``regression.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "benchmarks" / "baseline.json"
CURRENT = ROOT / "build" / "bench" / "figures.json"


@dataclass(frozen=True)
class Verdict:
    """One figure's comparison: ``status`` is ``ok``, ``improved``, ``regressed``,
    ``missing`` (in the baseline, not measured now) or ``new`` (not in the baseline)."""

    name: str
    status: str
    baseline_ratio: float | None
    current_ratio: float | None
    noise: float | None
    better: str | None

    @property
    def change(self) -> float | None:
        if self.baseline_ratio is None or self.current_ratio is None:
            return None
        return self.current_ratio / self.baseline_ratio - 1.0


def load(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("figures"), dict):
        raise ValueError(f"{path}: not a figures file (no 'figures' object)")
    for name, fig in doc["figures"].items():
        for key in ("ratio", "noise"):
            if not isinstance(fig.get(key), int | float) or not fig[key] > 0:
                raise ValueError(f"{path}: figures.{name}.{key} must be a positive number")
        if fig.get("better") not in ("lower", "higher"):
            raise ValueError(f"{path}: figures.{name}.better must be lower or higher")
        if fig["better"] == "higher" and not fig["noise"] < 1:
            raise ValueError(f"{path}: figures.{name}.noise must be below 1 for a figure "
                             "where higher is better (it could never regress)")
    return doc


def compare(baseline: dict[str, Any], current: dict[str, Any]) -> list[Verdict]:
    """Every figure of either file, judged by its ratio against the baseline's band."""
    base, now = baseline["figures"], current["figures"]
    out = []
    for name in sorted(set(base) | set(now)):
        if name not in now:
            b = base[name]
            out.append(Verdict(name, "missing", b["ratio"], None, b["noise"], b["better"]))
            continue
        if name not in base:
            c = now[name]
            out.append(Verdict(name, "new", None, c["ratio"], c["noise"], c["better"]))
            continue
        b, c = base[name], now[name]
        ratio, noise = float(c["ratio"]), float(b["noise"])
        if b["better"] == "lower":
            worse = ratio > b["ratio"] * (1.0 + noise)
            better = ratio < b["ratio"] * (1.0 - noise)
        else:
            worse = ratio < b["ratio"] * (1.0 - noise)
            better = ratio > b["ratio"] * (1.0 + noise)
        status = "regressed" if worse else "improved" if better else "ok"
        out.append(Verdict(name, status, float(b["ratio"]), ratio, noise, b["better"]))
    return out


def table(verdicts: list[Verdict], baseline: dict[str, Any], current: dict[str, Any]) -> str:
    def num(x: float | None, fmt: str = ".3f") -> str:
        return "-" if x is None else format(x, fmt)

    lines = [f"baseline: {baseline.get('release', '?')} measured "
             f"{baseline.get('measured_at', '?')} on {baseline.get('machine', {})}",
             f"current: measured {current.get('measured_at', '?')} on "
             f"{current.get('machine', {})}", "",
             "| figure | better | baseline ratio | current ratio | change | band | verdict |",
             "|---|---|---|---|---|---|---|"]
    for v in verdicts:
        change = "-" if v.change is None else f"{v.change:+.1%}"
        band = "-" if v.noise is None else f"+-{v.noise:.0%}"
        lines.append(f"| {v.name} | {v.better or '-'} | {num(v.baseline_ratio)} | "
                     f"{num(v.current_ratio)} | {change} | {band} | {v.status} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--current", type=Path, default=CURRENT)
    parser.add_argument("--out", type=Path, default=CURRENT.parent)
    parser.add_argument("--allow-missing", action="store_true",
                        help="a baseline figure not measured now is reported, not a failure")
    parser.add_argument("--optional", nargs="*", default=[], metavar="PATTERN",
                        help="baseline figures (fnmatch patterns) that may be missing")
    parser.add_argument("--promote", metavar="RELEASE", nargs="?", const="unnamed",
                        help="write the current figures as the baseline (at a release)")
    args = parser.parse_args(argv)
    try:
        current = load(args.current)
        if args.promote:
            doc = {**current, "release": args.promote}
            args.baseline.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n",
                                     encoding="utf-8")
            print(f"{args.baseline}: {len(current['figures'])} figures of release "
                  f"{args.promote}")
            return 0
        baseline = load(args.baseline)
    except (OSError, ValueError) as exc:
        print(f"perf_regression: {exc}", file=sys.stderr)
        return 2
    verdicts = compare(baseline, current)
    text = table(verdicts, baseline, current)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "regression.md").write_text(text, encoding="utf-8")
    print(text)
    optional = [v.name for v in verdicts
                if any(fnmatch.fnmatchcase(v.name, p) for p in args.optional)]
    failed = [v for v in verdicts if v.status == "regressed"
              or (v.status == "missing" and not args.allow_missing and v.name not in optional)]
    for v in failed:
        print(f"FAIL {v.name}: {v.status}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
