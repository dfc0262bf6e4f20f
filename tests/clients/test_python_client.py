"""``clients/python`` (``irt_predict_client``) against the REAL local ``predict``:
functions-framework on 127.0.0.1 (``livesrv``), plus a dead port and a stub server that
answers malformed bodies.  The package is imported from ``clients/python/src`` on
``sys.path`` (``test_client_installs_with_pip`` installs it with pip into a fresh venv).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from livesrv import LiveServer, free_port, live_server, model_json, write_model_dir

from irt.engine.artifact import load_model
from irt.engine.exposure import admitted, parameters
from irt.engine.exposure_fit import exposure_section, sympson_hetter

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "clients" / "python"
sys.path.insert(0, str(CLIENT / "src"))

from irt_predict_client import (  # noqa: E402
    ConnectionFailedError,
    InvalidRequestError,
    MalformedResponseError,
    PredictClient,
    UnavailableError,
)

ANSWERS = [{"item_id": f"q{j}", "correct": j % 2 == 0} for j in range(8)]


def _adaptive_model() -> tuple[str, np.ndarray]:
    """The small default bank with a skill map (``k0``/``k1`` by item parity) and
    Sympson-Hetter parameters (``python -m irt exposure``'s computation, small settings)."""
    model = load_model(model_json())
    result = sympson_hetter(model, r_max=0.3, test_length=10, n_examinees=500, seed=1)
    skills = {"parameters": {"k0": {"a": 1.0, "b": 0.0}, "k1": {"a": 1.0, "b": 0.0}},
              "item_skills": {q: f"k{int(q[1:]) % 2}" for q in model.item_ids}}
    section = exposure_section(model, result, r_max=0.3, test_length=10, n_examinees=500,
                               seed=1)
    out = replace(model, skills=skills, exposure=section, _cache={})
    return out.to_json(), parameters(load_model(out.to_json()))


@pytest.fixture(scope="module")
def live_adaptive() -> Iterator[tuple[LiveServer, np.ndarray]]:
    text, k = _adaptive_model()
    with live_server(model=text) as server:
        yield server, k


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    with live_server(env={"MAX_STUDENTS": "7", "MAX_RESPONSES": "20"}) as server:
        yield server


class Sleeps(list):
    """Records the client's waits instead of sleeping (or sleeps too, with ``real``)."""

    def __init__(self, real: bool = False) -> None:
        super().__init__()
        self.real = real

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.real:
            time.sleep(seconds)


def test_predict_next_items_and_model_info(live: LiveServer) -> None:
    client = PredictClient(live.url, timeout=10)
    assert client.authenticate is False  # plain http: the local server checks no token
    info = client.model_info()
    assert info["model_version"] == live.model_version and info["n_items"] == 50
    result = client.predict(ANSWERS, items=["q10", "nope"])
    assert result["ability"]["n_answers"] == 8 and list(result["probabilities"]) == ["q10"]
    assert result["unknown_items"] == ["nope"]
    nxt = client.next_items(ANSWERS, k=3)
    assert len(nxt["items"]) == 3 and not {i["item_id"] for i in nxt["items"]} & {
        a["item_id"] for a in ANSWERS}


def test_next_items_sends_the_adaptive_fields_and_reads_the_new_answer_fields(
        live_adaptive: tuple[LiveServer, np.ndarray]) -> None:
    live, k = live_adaptive
    client = PredictClient(live.url, timeout=10)
    plain = client.next_items(ANSWERS, k=42)
    ranking = [i["item_id"] for i in plain["items"]]
    assert "stop" not in plain and "exposure" not in plain
    # Sympson-Hetter: the best items whose draw passes, the same for the same seed
    sh = client.next_items(ANSWERS, k=5, exposure="sympson-hetter", seed=77)
    assert sh["exposure"] == {"method": "sympson-hetter", "applied": True}
    passed = admitted(k, np.array([int(q[1:]) for q in ranking]), 77)
    assert [i["item_id"] for i in sh["items"]] == [
        q for q, ok in zip(ranking, passed, strict=True) if ok][:5]
    assert client.next_items(ANSWERS, k=5, exposure={"method": "sympson-hetter"},
                             seed=77)["items"] == sh["items"]
    assert client.next_items(ANSWERS, k=3, exposure="none")["exposure"]["method"] == "none"
    # randomesque with a seed, exclude, skill caps and shares
    rq = client.next_items(ANSWERS, k=3, randomesque=6, seed=5)
    assert rq == client.next_items(ANSWERS, k=3, randomesque=6, seed=5)
    assert {i["item_id"] for i in rq["items"]} <= set(ranking[:8])
    ex = client.next_items(ANSWERS, k=3, exclude=ranking[:2])
    assert [i["item_id"] for i in ex["items"]] == ranking[2:5]
    caps = client.next_items(ANSWERS, k=6, skill_caps={"k1": 0, "nope": 2})
    assert all(int(i["item_id"][1:]) % 2 == 0 for i in caps["items"])
    assert caps["unknown_skills"] == ["nope"]
    shares = client.next_items(ANSWERS, k=6, skill_shares={"k0": 1, "k1": 2})
    # shares 1/3, 2/3 over the session: 4 + 4 answered, then k1 until it is at its share
    # (4 k0 of 12: a tie goes to the larger share, k1), then k0 (4 of 13 is below 1/3)
    assert [int(i["item_id"][1:]) % 2 for i in shares["items"]] == [1, 1, 1, 1, 1, 0]
    # the stopping recommendation
    se = plain["ability"]["se"]
    assert client.next_items(ANSWERS, stop={"se": se + 0.01})["stop"] == {
        "recommended": True, "reasons": ["se"]}
    assert client.next_items(ANSWERS, stop={"se": se - 0.01, "max_items": 9})["stop"] == {
        "recommended": False, "reasons": []}
    assert client.next_items(ANSWERS, stop={"max_items": 8})["stop"]["reasons"] == [
        "max_items"]
    with pytest.raises(InvalidRequestError) as err:
        client.next_items(ANSWERS, stop={"se": -1})
    assert (err.value.status, err.value.field) == (400, "stop.se")
    with pytest.raises(InvalidRequestError) as err:
        client.next_items(ANSWERS, exposure="shh")  # type: ignore[arg-type]
    assert err.value.field == "exposure.method"


def test_sympson_hetter_on_a_model_without_parameters_says_not_applied(
        live: LiveServer) -> None:
    client = PredictClient(live.url, timeout=10)
    body = client.next_items(ANSWERS, k=3, exposure="sympson-hetter", seed=1)
    assert body["exposure"] == {"method": "sympson-hetter", "applied": False}
    assert body["items"] == client.next_items(ANSWERS, k=3)["items"]


def test_request_id_reaches_the_log_line(live: LiveServer) -> None:
    PredictClient(live.url).predict(ANSWERS, request_id="lms-client-42")
    time.sleep(0.2)
    lines = [json.loads(x) for x in live.output(200_000).splitlines() if x.startswith("{")]
    assert any(x.get("request_id") == "lms-client-42" and x.get("status") == 200 for x in lines)


def test_predict_batch_splits_above_the_servers_cap(live: LiveServer) -> None:
    students = [{"student_id": f"s{i}", "responses": ANSWERS[: i % 8], "items": ["q20"]}
                for i in range(30)]
    client = PredictClient(live.url, max_students=100)  # more than the server's 7
    results = client.predict_batch(students)
    assert [r["student_id"] for r in results] == [f"s{i}" for i in range(30)]
    assert client.max_students == 6  # 100 -> 50 -> 25 -> 12 -> 6 after 413s naming students
    one = client.predict(ANSWERS[:3], items=["q20"])
    assert results[3]["probabilities"] == one["probabilities"]


def test_a_4xx_is_never_retried_and_names_the_field(live: LiveServer) -> None:
    sleeps = Sleeps()
    client = PredictClient(live.url, sleep=sleeps)
    with pytest.raises(InvalidRequestError) as err:
        client.predict([{"item_id": "q1", "correct": "yes"}])
    assert (err.value.status, err.value.code, err.value.field) == (
        400, "invalid_request", "responses[0].correct")
    assert err.value.request_id and sleeps == []
    with pytest.raises(InvalidRequestError) as err:
        client.predict(ANSWERS * 3)  # 24 answers > MAX_RESPONSES 20
    assert (err.value.status, err.value.code) == (413, "too_large") and sleeps == []
    cut = client.predict([{"item_id": f"q{j}", "correct": 1} for j in range(24)],
                         truncate="oldest")
    assert cut["dropped_responses"] == 4


def test_503_then_200_honours_retry_after() -> None:
    # A server with a broken model answers 503 model_unavailable with Retry-After: 1; the
    # first wait publishes a valid model, which the server loads within a second.
    with live_server(model="{not json", wait_for_model=False,
                     env={"MODEL_RETRY_SECONDS": "1"}) as server:
        assert server.model_root is not None
        sleeps = Sleeps(real=True)

        def publish_then_sleep(seconds: float) -> None:
            if not sleeps:
                write_model_dir(server.model_root, "v2-fixed", model_json())
            sleeps(seconds)

        client = PredictClient(server.url, max_retries=8, sleep=publish_then_sleep)
        result = client.predict(ANSWERS)
        assert result["model_version"] == "v2-fixed"
        assert sleeps and sleeps[0] == 1.0  # the server's Retry-After, not the backoff
        # with no retries left, the 503 is a typed error
        write_model_dir(server.model_root, "v3-broken", "{not json")


def test_503_with_no_retries_left_is_unavailable() -> None:
    with live_server(model="{not json", wait_for_model=False) as server:
        sleeps = Sleeps()
        with pytest.raises(UnavailableError) as err:
            PredictClient(server.url, max_retries=2, sleep=sleeps).model_info()
        assert (err.value.status, err.value.code) == (503, "model_unavailable")
        assert sleeps == [5.0, 5.0]  # Retry-After: MODEL_RETRY_SECONDS (5)


def test_a_dead_port_is_retried_with_backoff_then_fails() -> None:
    sleeps = Sleeps()
    client = PredictClient(f"http://127.0.0.1:{free_port()}", max_retries=3, backoff=0.2,
                           timeout=2, sleep=sleeps)
    with pytest.raises(ConnectionFailedError) as err:
        client.predict(ANSWERS)
    assert err.value.code == "connection" and err.value.status is None
    assert len(sleeps) == 3 and all(0 <= s <= 0.2 * 2 ** k for k, s in enumerate(sleeps))


class _Stub(BaseHTTPRequestHandler):
    """Answers every request with the class's ``reply`` and records its headers."""

    reply: ClassVar[tuple[int, str, bytes]] = (200, "application/json", b"{}")
    seen: ClassVar[list[dict[str, str]]] = []

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append(dict(self.headers))
        status, ctype, body = self.reply
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer  # noqa: N815 (http.server's names)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[tuple[str, type[_Stub]]]:
    handler = type("Stub", (_Stub,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("reply", [
    (200, "text/html", b"<html>proxy error</html>"),
    (200, "application/json", b"[1, 2]"),
    (200, "application/json", b'{"model_version": "v1"}'),  # no ability/probabilities
])
def test_a_malformed_200_is_a_typed_error_not_retried(stub, reply) -> None:
    url, handler = stub
    handler.reply = reply
    sleeps = Sleeps()
    with pytest.raises(MalformedResponseError) as err:
        PredictClient(url, sleep=sleeps).predict(ANSWERS)
    assert err.value.code == "malformed_response" and sleeps == [] and len(handler.seen) == 1


def _jwt(exp: float) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'exp': exp, 'aud': 'x'})}.sig"


def test_the_id_token_is_fetched_once_and_sent(stub, monkeypatch) -> None:
    url, handler = stub
    handler.reply = (200, "application/json", b'{"model_version": "v1", "n_items": 3}')
    fetched: list[str] = []

    def fake_fetch(request, audience):  # google.oauth2.id_token.fetch_id_token
        fetched.append(audience)
        return _jwt(time.time() + 3600)

    import google.oauth2.id_token

    monkeypatch.setattr(google.oauth2.id_token, "fetch_id_token", fake_fetch)
    client = PredictClient(url + "/", authenticate=True)
    for _ in range(3):
        client.model_info()
    assert fetched == [url]  # audience: scheme and host, once for three calls
    assert {h["Authorization"] for h in handler.seen} == {f"Bearer {client.token()}"}
    # a token within five minutes of expiry is renewed
    client._token_expiry = time.time() + 60
    client.model_info()
    assert len(fetched) == 2


def test_a_401_refetches_the_token_once(stub, monkeypatch) -> None:
    url, handler = stub
    handler.reply = (401, "text/html", b"<html>Unauthorized</html>")
    import google.oauth2.id_token

    calls: list[int] = []
    monkeypatch.setattr(google.oauth2.id_token, "fetch_id_token",
                        lambda r, a: calls.append(1) or _jwt(time.time() + 3600))
    from irt_predict_client import AuthenticationError

    with pytest.raises(AuthenticationError) as err:
        PredictClient(url, authenticate=True, sleep=Sleeps()).model_info()
    assert err.value.code == "unauthenticated" and len(calls) == 2 and len(handler.seen) == 2


@pytest.mark.slow
def test_client_installs_with_pip(tmp_path: Path) -> None:
    """``pip wheel clients/python`` (this venv's setuptools, no index), then ``pip install``
    of that wheel into a fresh venv: the package, its ``py.typed`` and its metadata land
    there; the import check borrows this venv's requests and google-auth (``PYTHONPATH``)."""
    wheels = tmp_path / "wheels"
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index",
                          "--no-build-isolation", "--quiet", "-w", str(wheels), str(CLIENT)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(wheels.glob("irt_predict_client-0.1.0-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    out = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install",
                          "--no-index", "--no-deps", "--quiet", str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    site = next(p for p in sys.path if p.endswith("site-packages"))
    check = subprocess.run(
        [str(py), "-c", "import irt_predict_client as c, importlib.metadata as m, pathlib; "
         "print(c.__file__); print(m.requires('irt-predict-client')); "
         "print((pathlib.Path(c.__file__).parent / 'py.typed').exists())"],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": site})
    assert check.returncode == 0, check.stderr
    path, requires, typed = check.stdout.splitlines()
    assert path.startswith(str(venv)) and typed == "True"
    assert "google-auth<3,>=2.30" in requires and "requests<3,>=2.32" in requires
