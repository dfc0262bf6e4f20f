"""``make drills``: the production-readiness drills of issue #6 at release size, with figures.

    python scripts/drills.py            # all: the pytest drills, then the load drill, summary
    python scripts/drills.py pytest     # pytest -m drills with IRT_DRILLS=full
    python scripts/drills.py load       # 2 x 60 s at concurrency 16 under wrk
    python scripts/drills.py summary    # print build/drills/summary.md again

1. **pytest drills** (``tests/support/drill_registry.py`` names them): bad input (10,000 hostile
   requests plus the schemathesis campaign at ~3x its CI size), the fault drills, the CI-size
   load drill, the log scans, size caps, the secret scan, the Terraform invariants.
2. **load drill**: ``predict`` served as production serves it (``gunicorn -c
   functions/predict/gunicorn.conf.py server:app``, Terraform's ``GOOGLE_ENTRYPOINT``) with the
   production settings of a 2-vCPU instance (``WORKERS=2 THREADS=4``, from
   ``terraform/environments/prod``),
   serving a 2,000-item 2PL bank; ``wrk -t2 -c16`` for 60 s with a one-student body (50
   answers, 100 requested items), twice: steady, then with a refresh (``LATEST`` moved to a
   new version in ``MODEL_DIR``) 20 s in and again 40 s in. Reported per run: requests,
   errors (non-2xx and socket), p50/p90/p99/max latency, the versions that answered, how the
   server's CPU time split between the workers, and the RSS of the server's processes every
   second. **Pass**: zero errors, only published versions answer (the last one by the end),
   each new version is loaded exactly once by each worker (each checks the store in the
   background, busy or not), no worker idle while the other serves (the busiest takes at
   most 80% of the workers' CPU: each worker has its own ``SO_REUSEPORT`` socket, so wrk's
   keep-alive connections spread), and RSS flat:
   steady run, the total at the end within ``RSS_TOLERANCE_MIB`` of the total 10 s in (after
   warm-up); refresh run, the total at the end within the same tolerance of the total just
   before the second refresh (a refresh may raise RSS once - the allocator keeps the freed
   model's memory for reuse - but a second one must not add to it: no memory kept per
   refresh). The step at the first refresh is reported.
3. **summary**: ``build/drills/summary.md`` and ``summary.json``, with the slow-client
   figures of ``tests/drills/test_drill_slow_clients.py`` (``slow_clients.json``); exit status
   1 if any drill failed.

Needs ``wrk`` (``apt-get install wrk``) for step 2; without it step 2 is reported as not run
(and the exit status is 1: the release drill is incomplete).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "drills"
sys.path[:0] = [str(ROOT / "tests" / "support"), str(ROOT / "shared")]

from drill_registry import DRILLS  # noqa: E402
from drillreport import REPORT_DIR_ENV, SCALE_ENV  # noqa: E402

#: The most of the workers' CPU time one worker may take in a load run (else the connections
#: were pinned to it: before issue 17.11, every connection on one worker in 2 of 5 runs).
TOP_WORKER_SHARE = 0.8
#: RSS growth allowed over a 60 s run (whole server: master + workers), after 10 s of warm-up.
#: At ~1,000 requests/s, a leak of 150 bytes per request would exceed it.
RSS_TOLERANCE_MIB = 8.0
PRODUCTION = {"WORKERS": "2", "THREADS": "4"}

WRK_LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open([[{body}]], "rb"))
wrk.body = f:read("*a")
f:close()

local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  answered = {{}}
end
function response(status, headers, body)
  local v = string.match(body, '"model_version"%s*:%s*"([^"]*)"') or "-"
  local key = tostring(status) .. "@" .. v
  answered[key] = (answered[key] or 0) + 1
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "DRILL requests=%d duration_us=%d status=%d connect=%d read=%d write=%d timeout=%d "
    .. "p50=%.0f p90=%.0f p99=%.0f max=%.0f\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
  for _, t in ipairs(threads) do
    for k, n in pairs(t:get("answered")) do
      io.write(string.format("ANSWERED %s %d\n", k, n))
    end
  end
end
"""


def log(message: str) -> None:
    print(f"[drills {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------- pytest drills
def run_pytest(extra: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, SCALE_ENV: "full", REPORT_DIR_ENV: str(OUT)}
    cmd = [sys.executable, "-m", "pytest", "-m", "drills", "-q", "-p", "no:cacheprovider",
           "-rfEX", f"--junitxml={OUT / 'pytest.xml'}", *extra]
    log("pytest: " + " ".join(cmd[1:]) + f" ({SCALE_ENV}=full)")
    started = time.monotonic()
    rc = subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
    (OUT / "pytest.json").write_text(json.dumps({
        "exit_status": rc, "seconds": round(time.monotonic() - started, 1)}) + "\n")
    return rc


def junit_results() -> dict[str, str]:
    """``{node id: passed|failed|skipped|xfailed}`` from the last pytest drill run."""
    path = OUT / "pytest.xml"
    if not path.exists():
        return {}
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        file = case.get("classname", "").replace(".", "/") + ".py"
        node = f"{file}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            out[node] = "failed"
        elif (skipped := case.find("skipped")) is not None:
            kind = skipped.get("type", "")
            out[node] = "xfailed" if "xfail" in kind else "skipped"
        else:
            out[node] = "passed"
    return out


# --------------------------------------------------------------------------- load drill
def bank_and_body(workdir: Path) -> tuple[str, Any, Path]:
    """A 2,000-item 2PL bank (v1), a maker of shifted copies (new versions) and a one-student
    request body."""
    import numpy as np

    from irt.engine.calibrate import FitConfig, fit
    from irt.engine.simulate import simulate

    model = fit(simulate(20000, 2000, 40, seed=1).responses, FitConfig(compute_se=False)).model
    v1 = model.to_json()

    def shifted(by: float) -> str:
        doc = json.loads(v1)
        for spec in doc["items"].values():
            spec["b"] += by
        return json.dumps(doc)

    rng = np.random.default_rng(20261128)
    answered = rng.choice(model.n_items, size=50, replace=False)
    theta = rng.normal()
    p = model.probability_by_position(theta, answered)
    body = {"responses": [{"item_id": model.item_ids[j], "correct": bool(rng.random() < pj)}
                          for j, pj in zip(answered.tolist(), p.tolist(), strict=True)],
            "items": [model.item_ids[j] for j in rng.choice(model.n_items, 100,
                                                           replace=False).tolist()]}
    path = workdir / "body.json"
    path.write_text(json.dumps(body))
    return v1, shifted, path


def cpu_seconds(pgid: int) -> dict[int, float]:
    """``{pid: user + system CPU seconds}`` of the processes of group ``pgid`` (Linux)."""
    from livesrv import group_rss_kib

    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in group_rss_kib(pgid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError):
            continue
    return out


def worker_split(before: dict[int, float], after: dict[int, float], arbiter: int
                 ) -> list[float]:
    """Each worker's share of the workers' CPU time between two samples, largest first."""
    used = sorted((after[p] - before.get(p, 0.0) for p in after if p != arbiter),
                  reverse=True)
    total = sum(used)
    return [round(u / total, 3) for u in used] if total > 0 else []


def run_wrk(wrk: str, script: Path, url: str, duration: float, connections: int
            ) -> dict[str, Any]:
    cmd = [wrk, "-t2", f"-c{connections}", f"-d{duration:g}s", "--timeout", "5s", "--latency",
           "-s", str(script), url]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60,
                         check=False)
    figures: dict[str, Any] = {"answered": {}}
    for line in res.stdout.splitlines():
        if line.startswith("DRILL "):
            figures.update({k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])})
        elif line.startswith("ANSWERED "):
            _, key, n = line.split()
            figures["answered"][key] = figures["answered"].get(key, 0) + int(n)
    if res.returncode != 0 or "requests" not in figures:
        raise RuntimeError(f"wrk failed ({res.returncode}): {res.stdout[-800:]}"
                           f"{res.stderr[-800:]}")
    figures["socket_errors"] = sum(figures[k] for k in ("connect", "read", "write", "timeout"))
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


class RssSampler(threading.Thread):
    """RSS of the server's process group every ``period`` seconds, in the background."""

    def __init__(self, pgid: int, period: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pgid, self.period = pgid, period
        self.samples: list[tuple[float, dict[int, int]]] = []
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        from livesrv import group_rss_kib

        while not self.stop.is_set():
            self.samples.append((time.monotonic() - self.t0, group_rss_kib(self.pgid)))
            self.stop.wait(self.period)


def rss_figures(samples: list[tuple[float, dict[int, int]]], since: float,
                refreshes: tuple[float, ...] = ()) -> dict[str, Any]:
    """RSS totals (master + workers); growth from the last sample before ``since`` to the end.
    With ``refreshes``, also the step across the first refresh."""
    series = [(round(t, 1), sum(r.values())) for t, r in samples]
    base = [kib for t, kib in series if t <= since][-1]
    end = series[-1][1]
    growth = (end - base) / 1024
    out = {"series_kib": series, "window_start_s": since,
           "start_mib": round(base / 1024, 1), "end_mib": round(end / 1024, 1),
           "max_mib": round(max(kib for _, kib in series) / 1024, 1),
           "growth_mib": round(growth, 2), "tolerance_mib": RSS_TOLERANCE_MIB,
           "flat": growth <= RSS_TOLERANCE_MIB,
           "per_process_end_mib": {str(pid): round(kib / 1024, 1)
                                   for pid, kib in samples[-1][1].items()}}
    if refreshes:
        before = [kib for t, kib in series if t <= refreshes[0]][-1]
        after = [kib for t, kib in series if t <= min(refreshes[0] + 10, series[-1][0])][-1]
        out["first_refresh_step_mib"] = round((after - before) / 1024, 2)
    return out


def load_drill(duration: float, connections: int, refresh_at: tuple[float, float]
               ) -> dict[str, Any]:
    from livesrv import live_server, write_model_dir

    wrk = shutil.which("wrk")
    if wrk is None:
        return {"ran": False, "reason": "wrk not found (apt-get install wrk)"}
    with tempfile.TemporaryDirectory(prefix="drill-load-") as tmp:
        workdir = Path(tmp)
        log("load: fitting the 2,000-item bank")
        v1_text, shifted, body = bank_and_body(workdir)
        script = workdir / "drill.lua"
        script.write_text(WRK_LUA.format(body=body))
        env = {**PRODUCTION, "MODEL_REFRESH_SECONDS": "5"}
        runs: dict[str, Any] = {}
        with live_server(env=env, model=v1_text, start_timeout=60) as server:
            v1, v2, v3 = server.model_version, "v2-refreshed", "v3-refreshed"
            url = f"{server.url}/predict"
            log(f"load: server {server.url} ({env}), model {v1}; warm-up 3 s")
            run_wrk(wrk, script, url, 3, connections)
            for name in ("steady", "refresh"):
                sampler = RssSampler(server.process.pid)
                sampler.start()
                timers = []
                if name == "refresh":
                    assert server.model_root is not None
                    for at, version, text in ((refresh_at[0], v2, shifted(0.25)),
                                              (refresh_at[1], v3, shifted(0.5))):
                        timers.append(threading.Timer(at, write_model_dir,
                                                      (server.model_root, version, text)))
                        timers[-1].start()
                log(f"load: {name} run, {duration:g} s at concurrency {connections}"
                    + (f", LATEST -> {v2} at {refresh_at[0]:g} s, -> {v3} at "
                       f"{refresh_at[1]:g} s" if timers else ""))
                cpu0 = cpu_seconds(server.process.pid)
                figures = run_wrk(wrk, script, url, duration, connections)
                figures["worker_split"] = worker_split(cpu0, cpu_seconds(server.process.pid),
                                                       server.process.pid)
                sampler.stop.set()
                sampler.join()
                for timer in timers:
                    timer.join()
                figures["rss"] = rss_figures(sampler.samples, since=refresh_at[1] - 1) \
                    if timers else rss_figures(sampler.samples, since=10.0)
                if timers:
                    figures["rss"].update(rss_figures(sampler.samples, since=refresh_at[1] - 1,
                                                      refreshes=refresh_at[:1]))
                runs[name] = figures
            entries = [json.loads(line) for line in server.log_path.read_text(
                encoding="utf-8", errors="replace").split("\n") if line.startswith("{")]
        loaded = [e["model_version"] for e in entries if e.get("message") == "model loaded"]
        errors = [e for e in entries if e.get("severity") == "ERROR"]
    verdicts = {}
    for name, fig in runs.items():
        allowed = {f"200@{v1}"} if name == "steady" else {f"200@{v}" for v in (v1, v2, v3)}
        answered = set(fig["answered"])
        fig["errors"] = int(fig["status"] + fig["socket_errors"])
        problems = []
        if fig["errors"]:
            problems.append(f"{fig['errors']} errors")
        if not answered <= allowed:
            problems.append(f"unexpected answers {sorted(answered - allowed)}")
        if name == "refresh" and f"200@{v3}" not in answered:
            problems.append("the last version never answered")
        if not fig["rss"]["flat"]:
            problems.append(f"RSS grew {fig['rss']['growth_mib']} MiB")
        if not fig["worker_split"] or fig["worker_split"][0] > TOP_WORKER_SHARE:
            problems.append(f"connections pinned: worker CPU split {fig['worker_split']}")
        verdicts[name] = problems
    for version in (v2, v3):
        # Each worker checks the store in the background (ModelCache.start_background).
        if loaded.count(version) != int(PRODUCTION["WORKERS"]):
            verdicts["refresh"].append(f"'model loaded' for {version} {loaded.count(version)} "
                                       "times, expected once per worker")
    if errors:
        verdicts["refresh"].append(f"{len(errors)} ERROR log lines")
    return {"ran": True, "settings": {**env, "connections": connections, "duration_s": duration,
                                      "refresh_at_s": list(refresh_at), "bank_items": 2000,
                                      "body": "1 student, 50 answers, 100 items"},
            "runs": runs, "model_loaded": loaded, "error_log_lines": len(errors),
            "problems": verdicts, "passed": not any(verdicts.values())}


# --------------------------------------------------------------------------- summary
def read(name: str) -> dict[str, Any] | None:
    path = OUT / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def summary() -> bool:
    results = junit_results()
    lines = ["# Drills", "", f"`make drills` ({time.strftime('%Y-%m-%d %H:%M')}, "
             f"{os.cpu_count()} CPUs)", "", "| drill | expected | tests | result |",
             "|---|---|---|---|"]
    ok = bool(results)
    for drill, (expected, nodes) in DRILLS.items():
        matched = {n: r for n, r in results.items() if _belongs(n, nodes)}
        failed = [n for n, r in matched.items() if r == "failed"]
        passed = sum(r == "passed" for r in matched.values())
        xfailed = sum(r == "xfailed" for r in matched.values())
        result = "FAIL" if failed or not passed else "pass"
        ok &= result == "pass"
        lines.append(f"| {drill} | {expected} | {passed} passed"
                     + (f", {xfailed} known gaps (xfail)" if xfailed else "")
                     + (f", failed: {', '.join(failed)}" if failed else "") + f" | {result} |")
    bad, schema = read("bad_input"), read("schemathesis")
    lines += ["", "## Bad input against the live predict", ""]
    if bad and schema:
        total = bad["requests"] + schema["requests"]
        five = bad["server_5xx"] + schema["server_5xx"]
        lines += [f"* {total:,} requests: {bad['requests']:,} hostile (Hypothesis, "
                  f"{len(bad['by_kind'])} kinds) + {schema['requests']:,} schemathesis; "
                  f"**{five} 5xx**",
                  f"* hostile, by status: {bad['by_status']}; log: {bad['log_lines']} lines, "
                  f"{bad['log_errors']} ERROR, student id in logs: {bad['student_id_in_logs']}",
                  f"* schemathesis, by status: {schema['by_status']}"]
        ok &= five == 0 and total >= 10_000
    else:
        lines.append("* not run")
        ok = False
    load = read("load")
    lines += ["", "## Load against the live predict", ""]
    if load and load.get("ran"):
        st = load["settings"]
        lines += [f"{st['duration_s']:g} s per run at concurrency {st['connections']} (wrk -t2), "
                  f"gunicorn WORKERS={st['WORKERS']} THREADS={st['THREADS']}, "
                  f"{st['bank_items']:,}-item bank, body: {st['body']}; refresh run: LATEST "
                  f"moved at {st['refresh_at_s']} s.", ""]
        lines += ["| run | requests | req/s | errors | p50 ms | p99 ms | max ms | worker CPU "
                  "split | RSS MiB (window: growth) | answered (status version: count) | "
                  "verdict |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, fig in load["runs"].items():
            rss = fig["rss"]
            problems = load["problems"].get(name) or []
            answered = ", ".join(f"{k.replace('@', ' ')}: {n:,}"
                                 for k, n in sorted(fig["answered"].items()))
            lines.append(
                f"| {name} | {int(fig['requests']):,} | {fig['rps']:,.0f} | {fig['errors']} | "
                f"{fig['p50'] / 1e3:.1f} | {fig['p99'] / 1e3:.1f} | {fig['max'] / 1e3:.1f} | "
                f"{'/'.join(f'{100 * x:.0f}' for x in fig.get('worker_split', [])) or '-'} | "
                f"{rss['start_mib']} -> {rss['end_mib']} (from {rss['window_start_s']:g} s: "
                f"{rss['growth_mib']:+})"
                + (f"; step at the 1st refresh {rss['first_refresh_step_mib']:+}"
                   if "first_refresh_step_mib" in rss else "") + " | "
                f"{answered} | "
                f"{'; '.join(problems) or 'pass'} |")
        lines.append(f"\nRSS tolerance {RSS_TOLERANCE_MIB} MiB over the window (steady: from "
                     "10 s; refresh: from just before the second refresh); 'model loaded': "
                     f"{load['model_loaded']}.")
        ok &= load["passed"]
    else:
        lines.append(f"* not run: {load.get('reason') if load else 'no figures'}")
        ok = False
    slow = read("slow_clients")
    lines += ["", "## Slow and idle clients against the live predict", ""]
    if slow:
        lines += [f"Server: {slow['server']}, WORKERS={slow['WORKERS']} "
                  f"THREADS={slow['THREADS']}; 8 normal requests (3 s timeout each) during each "
                  "attack.", "",
                  "| attack | connections | normal requests answered | slowest normal s | "
                  "closed by the server | last closed after s | answer to the attacker |",
                  "|---|---|---|---|---|---|---|"]
        for kind, fig in slow["scenarios"].items():
            lines.append(f"| {kind} | {fig['attack_connections']} | {fig['normal_ok']} of "
                         f"{fig['normal_sent']} | {fig['normal_max_s']} | "
                         f"{fig['closed_by_server']} | {fig['closed_max_s']} | "
                         f"{', '.join(fig['final_statuses'])} "
                         f"{', '.join(fig['final_fields'])} |")
    else:
        lines.append("* not run")
    lines += ["", f"**{'ALL DRILLS PASSED' if ok else 'DRILLS FAILED OR INCOMPLETE'}**"]
    text = "\n".join(lines) + "\n"
    (OUT / "summary.md").write_text(text)
    (OUT / "summary.json").write_text(json.dumps({
        "passed": ok, "pytest": results, "bad_input": bad, "schemathesis": schema,
        "load": load, "slow_clients": slow}, indent=1, default=str) + "\n")
    print(text)
    return ok


def _belongs(nodeid: str, nodes: tuple[str, ...]) -> bool:
    rel = nodeid.split("tests/", 1)[-1]
    path, _, name = rel.partition("::")
    return path in nodes or f"{path}::{name.split('[', 1)[0]}" in nodes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", nargs="?", default="all",
                        choices=["all", "pytest", "load", "summary"])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per load run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--refresh-at", type=float, nargs=2, default=(20.0, 40.0),
                        help="seconds into the second run when LATEST moves (twice)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.step in ("all", "pytest"):
        for stale in OUT.glob("*.json"):
            if args.step == "all" or stale.name != "load.json":
                stale.unlink()
        run_pytest(args.pytest_args)
    if args.step in ("all", "load"):
        started = time.monotonic()
        figures = load_drill(args.duration, args.connections, tuple(args.refresh_at))
        figures["seconds"] = round(time.monotonic() - started, 1)
        (OUT / "load.json").write_text(json.dumps(figures, indent=1) + "\n")
        log(f"load: {'passed' if figures.get('passed') else 'FAILED or not run'}")
    return 0 if summary() else 1


if __name__ == "__main__":
    sys.exit(main())
