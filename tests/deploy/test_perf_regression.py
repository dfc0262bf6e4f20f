"""The release-to-release performance regression check (``scripts/perf_regression.py``,
ML Test Score monitoring 6): synthetic figures files through the real command line, the
committed baseline, and its place in ``make bench`` and the release pipeline."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


perf = _module("perf_regression", ROOT / "scripts" / "perf_regression.py")
figures = _module("bench_figures", ROOT / "benchmarks" / "figures.py")

#: One figure of each kind the check is for, as the benchmarks record them.
KINDS = {
    "predict.inproc_single_ms": ("ms", "lower", 0.35),   # serving latency
    "predict.http_c16_rps": ("req/s", "higher", 0.15),   # throughput
    "prepare.a_cpu_seconds": ("s", "lower", 0.2),        # refresh duration
    "prepare.a_peak_mib": ("MiB", "lower", 0.1),          # memory
}


def write(path: Path, scale: dict[str, float] | None = None, drop: tuple[str, ...] = (),
          reference: float = 1.0) -> Path:
    """A figures file written by ``benchmarks/figures.py``'s own ``record``; each figure's
    value is 100 x ``scale[name]`` over a same-run reference of 100 x ``reference``."""
    for name, (unit, better, noise) in KINDS.items():
        if name in drop:
            continue
        value = 100.0 * (scale or {}).get(name, 1.0)
        figures.record(name, value, unit=unit, better=better, reference=100.0 * reference,
                       reference_name="synthetic", noise=noise, path=path)
    return path


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    return write(tmp_path / "baseline.json")


def run(tmp_path: Path, baseline: Path, current: Path, *extra: str) -> tuple[int, str]:
    code = perf.main(["--baseline", str(baseline), "--current", str(current),
                      "--out", str(tmp_path / "out"), *extra])
    return code, (tmp_path / "out" / "regression.md").read_text()


@pytest.mark.parametrize(("name", "change"), [
    ("predict.inproc_single_ms", 1.5),   # latency up 50 % (band 35 %)
    ("predict.http_c16_rps", 0.8),       # throughput down 20 % (band 15 %)
    ("prepare.a_cpu_seconds", 1.3),      # refresh 30 % slower (band 20 %)
    ("prepare.a_peak_mib", 1.15),        # memory up 15 % (band 10 %)
])
def test_a_regression_beyond_its_noise_band_fails(tmp_path, baseline, name, change) -> None:
    current = write(tmp_path / "current.json", {name: change})
    code, report = run(tmp_path, baseline, current)
    assert code == 1
    (line,) = [ln for ln in report.splitlines() if ln.startswith(f"| {name} |")]
    assert line.endswith("| regressed |")
    assert sum(ln.endswith("| ok |") for ln in report.splitlines()) == len(KINDS) - 1


def test_noise_within_the_band_and_improvements_pass(tmp_path, baseline) -> None:
    wobble = {"predict.inproc_single_ms": 1.3, "predict.http_c16_rps": 0.9,
              "prepare.a_cpu_seconds": 0.85, "prepare.a_peak_mib": 1.08}
    code, report = run(tmp_path, baseline, write(tmp_path / "noise.json", wobble))
    assert code == 0 and report.count("| ok |") == len(KINDS), report
    better = {"predict.inproc_single_ms": 0.5, "predict.http_c16_rps": 1.5}
    code, report = run(tmp_path, baseline, write(tmp_path / "better.json", better))
    assert code == 0 and report.count("| improved |") == 2, report


def test_figures_are_compared_by_their_ratio_to_the_same_run_reference(tmp_path,
                                                                         baseline) -> None:
    """A machine twice as slow doubles value and reference: no regression; the same raw
    value against a reference that got twice as fast is one."""
    slower_machine = write(tmp_path / "slow.json", {n: 2.0 for n in KINDS}, reference=2.0)
    assert run(tmp_path, baseline, slower_machine)[0] == 0
    code, report = run(tmp_path, baseline, write(tmp_path / "fast_ref.json", reference=0.5))
    assert code == 1 and "| predict.inproc_single_ms | lower |" in report


def test_a_figure_missing_from_the_run_fails_unless_allowed(tmp_path, baseline) -> None:
    current = write(tmp_path / "partial.json", drop=("predict.http_c16_rps",))
    code, report = run(tmp_path, baseline, current)
    assert code == 1 and "| predict.http_c16_rps | higher | 1.000 | - | - | +-15% | missing |" \
        in report
    assert run(tmp_path, baseline, current, "--allow-missing")[0] == 0
    assert run(tmp_path, baseline, current, "--optional", "predict.http_*")[0] == 0
    assert run(tmp_path, baseline, current, "--optional", "prepare.a_*")[0] == 1


def test_unreadable_input_is_exit_2_and_promote_writes_the_baseline(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"figures": {"x": {"ratio": -1, "noise": 0.1,
                                                 "better": "lower"}}}))
    good = write(tmp_path / "good.json")
    assert perf.main(["--baseline", str(bad), "--current", str(good), "--out",
                      str(tmp_path)]) == 2
    target = tmp_path / "promoted.json"
    assert perf.main(["--baseline", str(target), "--current", str(good), "--promote",
                      "v9"]) == 0
    promoted = json.loads(target.read_text())
    assert promoted["release"] == "v9" and set(promoted["figures"]) == set(KINDS)
    assert run(tmp_path, target, good)[0] == 0


def test_the_committed_baseline_covers_latency_throughput_refresh_and_memory() -> None:
    doc = perf.load(ROOT / "benchmarks" / "baseline.json")
    assert doc["release"] and doc["machine"]["cpu"] and doc["machine"]["cpus"] >= 1
    names = set(doc["figures"])
    assert {"predict.inproc_single_ms", "predict.inproc_batch_ms", "predict.http_c16_rps",
            "predict.http_c16_cpu_us_per_req", "predict.http_c16_p99_ms",
            "predict.long_plain_ms", "predict.long_learning_ms"} <= names
    assert any(n.startswith("prepare.") and n.endswith("_cpu_seconds") for n in names)
    assert any(n.startswith("prepare.") and n.endswith("_peak_mib") for n in names)
    for name, fig in doc["figures"].items():
        assert fig["ratio"] == pytest.approx(fig["value"] / fig["reference"]), name
        assert 0 < fig["noise"] < (1 if fig["better"] == "higher" else 3), name


def target(name: str) -> list[str]:
    make = (ROOT / "Makefile").read_text()
    body = make.split(f"\n{name}:", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in body.splitlines()[1:]]


def test_make_bench_and_the_test_build_end_with_the_check() -> None:
    """``make bench`` compares what it measured; the test build of every push runs ``make
    perf-release`` (short benchmarks, then the check) after the suite, as the test account,
    and records its exit status with the tests': a regressed commit fails its test record, so
    staging neither deploys it nor records it as passed, and the release plan refuses it. (The
    check ran in the release plan, as prod's deploy account, installing the dev packages:
    ``tests/deploy/test_release.py`` now refuses that.)"""
    for name in ("bench", "perf-release"):
        lines = target(name)
        assert lines[0] == "rm -f build/bench/figures.json", name
        assert lines[-1].startswith("$(PY) scripts/perf_regression.py"), name
        assert "--allow-missing" not in lines[-1], name
    assert "'predict.http_*'" not in target("perf-release")[-1]  # wrk installed there
    build = yaml.safe_load((ROOT / "cloudbuild-test.yaml").read_text())
    steps = {s.get("id"): s for s in build["steps"]}
    check = steps["perf"]["args"][-1]
    assert "make perf-release" in check and "wrk" in check
    status = re.fullmatch(r".*; make perf-release; echo \$\$\? >(\w+)", check).group(1)
    record = steps["record"]["args"]
    assert record[:2] == ["scripts/release/pipeline.sh", "mark-tested"]
    assert status in record[5:] and "test_status" in record[5:]
    assert "perf" in steps["record"]["waitFor"]
    for name in ("cloudbuild.yaml", "cloudbuild-release-plan.yaml",
                 "cloudbuild-release-apply.yaml"):
        assert "perf-release" not in (ROOT / name).read_text(), name
