"""Drill (CI size): ``predict`` under concurrent load while its model is refreshed.

The real server (functions-framework under gunicorn, with the production settings Terraform
gives a 2-vCPU instance: ``WORKERS=2 THREADS=4``) takes 16 concurrent clients. A third of the
way in, a corrupt version is published (``LATEST`` moved to it): it must be rejected by every
worker and never answer; then a good new version is published: it must take over, with every
request answered 200 throughout and no version but the two good ones ever named.

The figures (requests, client-side latency percentiles, RSS of the server processes) are
recorded for ``make drills`` but not asserted: the release-size load drill - 60 s at
concurrency 16 under wrk, p99 and RSS over time - is ``scripts/drills.py load``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import drillreport
import numpy as np
import pytest
import requests
from livesrv import (
    N_ITEMS,
    LiveServer,
    group_rss_kib,
    live_server,
    model_json,
    write_model_dir,
)

pytestmark = pytest.mark.drills

PRODUCTION = {"WORKERS": "2", "THREADS": "4"}  # terraform/environments/prod: 2 vCPU, 8 conc.
CLIENTS = 16
BEFORE, AFTER = 60, 60  # requests per client before the publish, and at least after it
LIVENESS_BOUND_S = 120  # a safety net for a hung server, not a performance threshold


def bodies() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(7)
    out = []
    for k in range(24):
        answered = rng.choice(N_ITEMS, size=int(rng.integers(0, 20)), replace=False)
        responses = [{"item_id": f"q{j}", "correct": bool(rng.random() < 0.6)}
                     for j in answered.tolist()]
        items = [f"q{j}" for j in rng.choice(N_ITEMS, size=10, replace=False).tolist()]
        if k % 3 == 0:
            out.append(("/predict", json.dumps({"responses": responses, "items": items})))
        elif k % 3 == 1:
            out.append(("/predict", json.dumps({"students": [
                {"student_id": f"SID-{k}-{i}", "responses": responses[i:], "items": items}
                for i in range(3)]})))
        else:
            out.append(("/next-items", json.dumps({"responses": responses, "k": 3})))
    return [(path, body.encode()) for path, body in out]


def log_entries(server: LiveServer) -> list[dict]:
    text = server.log_path.read_text(encoding="utf-8", errors="replace")
    return [json.loads(line) for line in text.split("\n") if line.startswith("{")]


def publish_and_wait(server: LiveServer, version: str, text: str, message: str) -> None:
    """Publish ``version``, then wait until a worker logs ``message`` about it."""
    assert server.model_root is not None
    write_model_dir(server.model_root, version, text)
    deadline = time.monotonic() + LIVENESS_BOUND_S
    while not any(e.get("model_version") == version and e.get("message", "").startswith(
            message) for e in log_entries(server)):
        assert time.monotonic() < deadline, f"no {message!r} for {version}:\n{server.output()}"
        time.sleep(0.05)


def test_load_with_a_corrupt_then_a_good_refresh() -> None:
    good = json.loads(model_json())
    for spec in good["items"].values():
        spec["b"] += 0.5  # a different model: the swap is visible in the answers
    with live_server(env={**PRODUCTION, "MODEL_REFRESH_SECONDS": "0.3"}) as server:
        v1, bad, v2 = server.model_version, "v-corrupt", "v2-good"
        work = bodies()
        statuses: Counter[int] = Counter()
        versions: Counter[str | None] = Counter()
        latencies: list[float] = []
        sent = [0] * CLIENTS
        seen_v2 = [0] * CLIENTS
        published = threading.Event()
        errors: list[str] = []
        lock = threading.Lock()
        rss = []

        def client(c: int) -> None:
            session = requests.Session()
            deadline = time.monotonic() + LIVENESS_BOUND_S
            k = c
            while sent[c] < BEFORE or not published.is_set() or seen_v2[c] < AFTER:
                if time.monotonic() > deadline:
                    errors.append(f"client {c} still running after {LIVENESS_BOUND_S} s")
                    return
                path, body = work[k % len(work)]
                k += 1
                t = time.perf_counter()
                try:
                    r = session.post(server.url + path, data=body, timeout=30,
                                     headers={"Content-Type": "application/json"})
                except requests.RequestException as exc:
                    errors.append(repr(exc))
                    return
                elapsed = time.perf_counter() - t
                version = r.json().get("model_version") if r.headers.get(
                    "Content-Type", "").startswith("application/json") else None
                with lock:
                    statuses[r.status_code] += 1
                    versions[version] += 1
                    latencies.append(elapsed)
                sent[c] += 1
                if version == v2:
                    seen_v2[c] += 1

        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        rss.append(group_rss_kib(server.process.pid))
        for t in threads:
            t.start()
        while min(sent) < BEFORE and any(t.is_alive() for t in threads):
            time.sleep(0.01)
        rss.append(group_rss_kib(server.process.pid))
        # A truncated model: every worker must reject it and keep answering with v1.
        publish_and_wait(server, bad, model_json()[:300], "model rejected")
        publish_and_wait(server, v2, json.dumps(good), "model loaded")
        published.set()
        for t in threads:
            t.join(LIVENESS_BOUND_S + 10)
        rss.append(group_rss_kib(server.process.pid))
        log = log_entries(server)

    total = sum(statuses.values())
    lat = np.array(latencies) * 1e3
    drillreport.record("load_ci", {
        "clients": CLIENTS, "requests": total, "statuses": dict(statuses),
        "versions": {str(k): n for k, n in versions.items()},
        "client_latency_ms": {"p50": float(np.percentile(lat, 50)),
                              "p99": float(np.percentile(lat, 99)), "max": float(lat.max())},
        "rss_kib": [sum(r.values()) for r in rss], "settings": PRODUCTION})
    print(f"{total} requests from {CLIENTS} clients: statuses {dict(statuses)}, versions "
          f"{dict(versions)}, client p50 {np.percentile(lat, 50):.1f} ms p99 "
          f"{np.percentile(lat, 99):.1f} ms; server RSS (KiB, start/mid/end) "
          f"{[sum(r.values()) for r in rss]}")
    assert not errors, errors[:5]
    assert statuses == Counter({200: total}), statuses
    assert set(versions) == {v1, v2}, versions  # the corrupt one never answered
    assert all(n >= AFTER for n in seen_v2)
    rejected = [e for e in log if e.get("message", "").startswith("model rejected")]
    loaded = [e for e in log if e.get("message") == "model loaded"]
    assert rejected and {e["model_version"] for e in rejected} == {bad}
    assert {e["model_version"] for e in loaded} == {v1, v2}
    assert len([e for e in loaded if e["model_version"] == v2]) <= int(PRODUCTION["WORKERS"])
    assert not [e for e in log if e["severity"] == "ERROR" and e not in rejected]
