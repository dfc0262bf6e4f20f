"""``predict`` served for real: functions-framework in a subprocess, spoken to over HTTP.

* smoke tests over ``urllib`` on 127.0.0.1: the endpoints, and the JSON errors 400/404/405/415;
* the contract ``docs/predict-openapi.yaml`` is a valid OpenAPI 3.0 document, its examples
  match its schemas, and it agrees with ``functions/predict/main.py`` (every route with its
  method, the size caps, the error codes);
* schemathesis generates requests from the contract - valid ones (which must be answered
  200 and match the documented response) and invalid ones (which must be refused with a
  documented 4xx) - and sends them to the live server: never a 5xx, every 4xx a JSON error
  with ``error.code``, ``error.message`` and the ``error.field`` it is about. Bounded and
  deterministic (fixed seed, derandomized Hypothesis, no example database). Part of the
  bad-input drill (``make drills`` runs it with ``IRT_DRILLS=full``, ~3x the requests).
"""

from __future__ import annotations

import ast
import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import drillreport
import pytest
import requests
import schemathesis
import yaml
from livesrv import N_ITEMS, LiveServer, live_server
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_spec

from irt.serving import Limits
from irt.serving.config import PredictConfig

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "predict-openapi.yaml"
MAIN = REPO / "functions" / "predict" / "main.py"
SERVER = REPO / "functions" / "predict" / "server.py"
SERVING = REPO / "shared" / "irt" / "serving" / "requests.py"

#: Fuzzing examples per operation (coverage and explicit examples come on top); the release
#: drill (``make drills``, ``IRT_DRILLS=full``): ~3,600 requests instead of ~1,100.
MAX_EXAMPLES = 1000 if drillreport.full() else 150
SEED = 20261128


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    with live_server() as server:
        yield server


@pytest.fixture(scope="module")
def live_url(live: LiveServer) -> str:
    return live.url


# --------------------------------------------------------------------------- HTTP helpers
def call(url: str, method: str = "GET", body: Any = None, *, raw: bytes | None = None,
         content_type: str | None = "application/json", headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], Any]:
    """``(status, headers, parsed JSON body)``; an HTTP error status is returned, not raised."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if content_type is not None and data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, headers, text = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        status, headers, text = err.code, dict(err.headers), err.read()
    assert headers.get("Content-Type", "").startswith("application/json"), (status, text[:300])
    return status, headers, json.loads(text)


def assert_error(body: Any, code: str, field: str | None = None) -> None:
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code, body
    assert isinstance(err["message"], str) and err["message"], body
    if field is not None:
        assert err.get("field") == field, body


# --------------------------------------------------------------------------- smoke
def test_smoke_single_predict(live: LiveServer) -> None:
    live_url = live.url
    status, _, body = call(f"{live_url}/predict", "POST", {
        "responses": [{"item_id": "q0", "correct": True, "answered_at": "2026-11-28T10:00:00Z"},
                      {"item_id": "q1", "correct": 0},
                      {"item_id": "nope", "correct": 1}],
        "items": ["q2", "q3", "zzz"]})
    assert status == 200, body
    assert body["model_version"] == live.model_version
    assert body["ability"]["method"] == "EAP" and body["ability"]["n_answers"] == 2
    assert set(body["probabilities"]) == {"q2", "q3"}
    assert all(0.0 <= p <= 1.0 for p in body["probabilities"].values())
    assert body["unknown_items"] == ["nope", "zzz"]


def test_smoke_root_path_is_predict(live_url: str) -> None:
    status, _, body = call(f"{live_url}/", "POST", {"responses": [], "method": "MAP"})
    assert status == 200, body
    assert body["ability"] == {"theta": 0.0, "se": 1.0, "method": "MAP", "n_answers": 0}
    assert len(body["probabilities"]) == N_ITEMS


def test_smoke_batch(live: LiveServer) -> None:
    live_url = live.url
    status, _, body = call(f"{live_url}/predict", "POST", {"students": [
        {"student_id": "s1", "responses": [{"item_id": "q0", "correct": 1}], "items": ["q1"]},
        {"responses": [{"item_id": "q0", "correct": 0}], "items": ["q1"]}]})
    assert status == 200, body
    assert body["model_version"] == live.model_version
    first, second = body["results"]
    assert first["student_id"] == "s1" and second["student_id"] is None
    assert first["ability"]["theta"] > second["ability"]["theta"]
    assert first["probabilities"]["q1"] > second["probabilities"]["q1"]


def test_smoke_next_items(live: LiveServer) -> None:
    live_url = live.url
    status, _, body = call(f"{live_url}/next-items", "POST", {
        "responses": [{"item_id": "q0", "correct": True}], "k": 3,
        "strategy": "target_probability", "target": 0.7})
    assert status == 200, body
    assert body["strategy"] == "target_probability" and body["model_version"] == live.model_version
    ids = [item["item_id"] for item in body["items"]]
    assert len(ids) == 3 and "q0" not in ids and len(set(ids)) == 3


def test_smoke_model_and_health(live: LiveServer) -> None:
    live_url = live.url
    status, _, body = call(f"{live_url}/model")
    assert status == 200, body
    assert body["model_version"] == live.model_version and body["n_items"] == N_ITEMS
    assert body["model_type"] == "2pl"
    status, _, body = call(f"{live_url}/healthz")
    assert (status, body) == (200, {"status": "ok", "model_version": live.model_version})


def test_smoke_bad_request_names_the_field(live_url: str) -> None:
    status, _, body = call(f"{live_url}/predict", "POST",
                           {"responses": [{"item_id": "q0", "correct": "yes"}]})
    assert status == 400
    assert_error(body, "invalid_request", "responses[0].correct")
    status, _, body = call(f"{live_url}/predict", "POST", raw=b'{"responses": [')
    assert status == 400
    assert_error(body, "invalid_json", "body")


def test_smoke_wrong_content_type_is_415(live_url: str) -> None:
    status, _, body = call(f"{live_url}/predict", "POST", raw=b'{"responses": []}',
                           content_type="text/plain")
    assert status == 415
    assert_error(body, "unsupported_media_type", "Content-Type")


def test_smoke_wrong_method_is_405_with_allow(live_url: str) -> None:
    status, headers, body = call(f"{live_url}/predict")
    assert status == 405 and headers.get("Allow") == "POST"
    assert_error(body, "method_not_allowed", "method")
    status, headers, body = call(f"{live_url}/model", "POST", {})
    assert status == 405 and headers.get("Allow") == "GET, HEAD"
    assert_error(body, "method_not_allowed", "method")


def test_smoke_head_gets_get_status_and_headers_without_a_body(live_url: str) -> None:
    """Through gunicorn and server.py: HEAD /healthz is GET's answer less the body (the
    length still stated), and the connection stays usable for the next request."""
    host, port = live_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := conn.recv(65536):
            raw += chunk
    head, rest = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
    assert length > 0
    # the next bytes are the GET's answer: the HEAD sent no body
    assert rest.startswith(b"HTTP/1.1 200"), rest[:80]
    _, get_body = rest.split(b"\r\n\r\n", 1)
    assert len(get_body) == length and json.loads(get_body)["status"] == "ok"


def test_smoke_unknown_path_is_404(live_url: str) -> None:
    status, _, body = call(f"{live_url}/no-such-thing", "POST", {"responses": []})
    assert status == 404
    assert_error(body, "not_found", "path")


# Inputs that once gave a 500 (found by hand; schemathesis sends neither lone surrogates nor
# 400-digit integers): each must now be a JSON 4xx or 200, never a 5xx.
ONCE_500S = {
    # The unknown id is echoed in unknown_items: a lone surrogate could not be encoded.
    "lone-surrogate-item-id": b'{"responses": [{"item_id": "\\ud800", "correct": 1}]}',
    # Same, inside the 400 for the unknown field.
    "lone-surrogate-unknown-field": b'{"responses": [], "\\ud800": 1}',
    # math.isfinite(10**400) raised OverflowError in serving._timestamp.
    "huge-integer-answered-at": (b'{"responses": [{"item_id": "q0", "correct": 1, '
                                 b'"answered_at": 1' + b"0" * 400 + b"}]}"),
}


@pytest.mark.parametrize("name", sorted(ONCE_500S))
def test_inputs_that_once_gave_500(live_url: str, name: str) -> None:
    req = urllib.request.Request(f"{live_url}/predict", data=ONCE_500S[name], method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, ctype, raw = resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as err:
        status, ctype, raw = err.code, err.headers.get("Content-Type", ""), err.read()
    assert status < 500 and ctype.startswith("application/json"), (name, status, ctype)
    body = json.loads(raw)
    if status >= 400:
        assert body["error"]["code"] and body["error"]["message"]


# --------------------------------------------------------------------------- HTTP edges (17.15)
def raw_exchange(url: str, request: bytes, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """Send ``request`` as is on a new connection; ``(status, headers, body)`` of the answer
    (read to the end: these answers close the connection or carry a Content-Length)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in
                   (line.split(":", 1) for line in lines[1:] if ":" in line)}
        while len(body) < int(headers.get("content-length", "0")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(lines[0].split()[1]), headers, body


def test_an_http11_request_without_host_is_a_json_400(live_url: str) -> None:
    """RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host
    (HTTP/1.0 has no such rule); the JSON error names the header."""
    status, headers, body = raw_exchange(live_url, b"GET /healthz HTTP/1.1\r\n"
                                         b"Connection: close\r\n\r\n")
    assert status == 400 and headers["content-type"] == "application/json"
    assert_error(json.loads(body), "invalid_request", "Host")
    status, _, body = raw_exchange(live_url, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, _ = raw_exchange(live_url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                b"Connection: close\r\n\r\n")
    assert status == 200


def test_unknown_transfer_encoding_is_a_json_501(live_url: str) -> None:
    """``Transfer-Encoding: xchunked`` was gunicorn's HTML 501: now the API's JSON error
    naming the header."""
    status, headers, body = raw_exchange(live_url, (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: xchunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"))
    assert status == 501, body[:300]
    assert headers["content-type"] == "application/json"
    assert_error(json.loads(body), "unsupported_transfer_encoding", "Transfer-Encoding")


def test_long_request_line_is_refused_before_the_app(live: LiveServer) -> None:
    """A 2 MB request line reached the application (functions-framework sets
    ``limit_request_line=0``): now a JSON 414 naming the request line, and nothing logged by
    the application; 8 KiB minus the method and version still passes (an unknown path)."""
    long_path = b"/predict?" + b"a" * (2 * 1000 * 1000)
    status, _, body = raw_exchange(live.url, b"GET " + long_path + b" HTTP/1.1\r\nHost: x\r\n"
                                   b"\r\n")
    assert status == 414, body[:300]
    assert_error(json.loads(body), "too_large", "request line")
    assert "8190" in json.loads(body)["error"]["message"]
    assert "aaaaaaaaaa" not in live.output(200_000)  # never reached main.py's log line
    fits = b"/x" + b"a" * 8000
    status, _, body = raw_exchange(live.url, b"GET " + fits + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 404, body[:300]


def test_a_refused_client_still_sending_reads_its_answer(live_url: str) -> None:
    """After a refusal the server half-closes and drops what the client still sends: a client
    that goes on sending after its 2 MB request line was refused (as one writing a whole
    request before reading does) reads the JSON 414 and the end of the stream, not a reset
    (closed at once, the server's kernel answered the late bytes with a reset)."""
    host, port = live_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /predict?" + b"a" * (2 * 1000 * 1000))
        time.sleep(0.3)  # the refusal is out; the client has not read it
        sock.sendall(b"a" * (512 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 "), data[:300]
    assert_error(json.loads(body), "too_large", "request line")


_CHUNKED = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n")
_DOC = b'{"responses": [{"item_id": "q0", "correct": true}], "items": ["q1"]}'


def _chunks(doc: bytes, last: bytes = b"0\r\n\r\n") -> bytes:
    """``doc`` as two chunks, then ``last`` (the last chunk and the trailer section)."""
    half = len(doc) // 2
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                    for part in (doc[:half], doc[half:])) + last


@pytest.mark.parametrize("body", [b"zz\r\nab\r\n0\r\n\r\n", b" 5\r\nhello\r\n0\r\n\r\n",
                                  b"-5\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n"],
                         ids=["not-hex", "space", "negative", "no-terminator"])
def test_a_malformed_chunked_body_is_a_json_400(live: LiveServer, body: bytes) -> None:
    """gunicorn's parser raises on a bad chunk while the application reads the body: that
    was a 500 with a stack trace in the log, now a 400 naming ``body``."""
    status, headers, raw = raw_exchange(live.url, _CHUNKED + b"Connection: close\r\n\r\n"
                                        + body)
    assert status == 400, raw[:300]
    assert_error(json.loads(raw), "invalid_request", "body")
    assert headers["x-request-id"]
    assert "Traceback" not in live.output(20_000)


@pytest.mark.parametrize("last", [b"0\r\n\r\n", b"0;name=value\r\n\r\n",
                                  b"0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n"],
                         ids=["plain", "last-chunk-extension", "trailers"])
def test_chunked_bodies_are_answered_whatever_their_last_chunk(live_url: str,
                                                                last: bytes) -> None:
    """The read-ahead waited for a buffer ending in ``0\\r\\n\\r\\n``: a last chunk
    with an extension or trailer fields, both valid (RFC 9112 7.1), waited out the body
    deadline and got a 408. Now it parses the chunks."""
    status, _, raw = raw_exchange(live_url, _CHUNKED + b"Connection: close\r\n\r\n"
                                  + _chunks(_DOC, last), timeout=5)
    assert status == 200, raw[:300]
    assert set(json.loads(raw)["probabilities"]) == {"q1"}


def test_a_request_pipelined_after_a_chunked_one_is_answered(live_url: str) -> None:
    """A chunked request and, on the same connection without waiting, a second one: the
    read-ahead waited for the buffer to end with the last chunk, which the second request
    followed, so neither was answered (408 after 10 s)."""
    host, port = live_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(_CHUNKED + b"\r\n" + _chunks(_DOC)
                     + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", data) == [b"200", b"200"], data[:600]


@pytest.mark.parametrize("coding", [b"gzip, chunked", b"deflate", b"identity"])
def test_transfer_codings_other_than_chunked_are_a_json_501(live_url: str,
                                                            coding: bytes) -> None:
    """gunicorn passed ``gzip, chunked`` on with the body undecoded (a plain body was
    answered): any coding but ``chunked`` is a 501 naming the header, from the event loop."""
    status, headers, raw = raw_exchange(live_url, (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: " + coding + b"\r\n\r\n" + _chunks(_DOC)))
    assert status == 501, raw[:300]
    assert_error(json.loads(raw), "unsupported_transfer_encoding", "Transfer-Encoding")
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])


def test_a_compressed_body_is_a_415_naming_content_encoding(live_url: str) -> None:
    """A ``Content-Encoding`` (which nothing decodes) was read as the JSON itself: a gzip body
    got a 400 about UTF-16, a plain body sent as ``br`` a 200. Now a 415 naming the header;
    ``identity`` is no coding."""
    import gzip

    for coding, raw in (("gzip", gzip.compress(_DOC)), ("br", _DOC)):
        status, _, body = call(f"{live_url}/predict", "POST", raw=raw,
                               headers={"Content-Encoding": coding})
        assert status == 415, (coding, body)
        assert_error(body, "unsupported_media_type", "Content-Encoding")
    status, _, body = call(f"{live_url}/predict", "POST", raw=_DOC,
                           headers={"Content-Encoding": "identity"})
    assert status == 200, body


def test_an_encoded_surrogate_is_invalid_utf8(live_url: str) -> None:
    """The bytes ED A0 80 (a surrogate encoded as if UTF-8) are not UTF-8: the standard
    library's fallback decoded them with ``surrogatepass`` and answered 200. Now a 400; the
    JSON escape ``\\ud800`` (valid JSON text) is still answered."""
    raw = b'{"responses": [{"item_id": "a\xed\xa0\x80", "correct": 1}]}'
    status, _, body = call(f"{live_url}/predict", "POST", raw=raw)
    assert status == 400, body
    assert_error(body, "invalid_json", "body")
    status, _, body = call(f"{live_url}/predict", "POST",
                           raw=b'{"responses": [{"item_id": "a\\ud800", "correct": 1}]}')
    assert status == 200 and body["unknown_items"] == ["a\ud800"], body


@pytest.mark.parametrize("case", ["one-big-field", "too-many-fields", "huge-head"])
def test_oversized_headers_are_a_json_431(live_url: str, case: str) -> None:
    """Header fields over gunicorn's limits (8190 bytes each, 100 fields) and a head over
    64 KiB: a JSON 431 naming ``headers``."""
    fields = {"one-big-field": b"X-Big: " + b"b" * 9000 + b"\r\n",
              "too-many-fields": b"".join(b"X-F%d: 1\r\n" % k for k in range(150)),
              "huge-head": b"".join(b"X-F%d: " % k + b"c" * 8000 + b"\r\n" for k in range(9)),
              }[case]
    status, _, body = raw_exchange(live_url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields
                                   + b"\r\n")
    assert status == 431, body[:300]
    assert_error(json.loads(body), "too_large", "headers")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32",
                                      "utf-32-le"])
def test_body_must_be_utf8(live_url: str, encoding: str) -> None:
    """RFC 8259 section 8.1: JSON between systems is UTF-8. A UTF-16/32 body (which the
    standard library's parser would decode) is a 400 naming ``body``; the same document in
    UTF-8 is answered."""
    doc = '{"responses": [{"item_id": "q0", "correct": 1}], "items": ["q1"]}'
    status, _, body = call(f"{live_url}/predict", "POST", raw=doc.encode(encoding))
    assert status == 400, body
    assert_error(body, "invalid_json", "body")
    assert "UTF-8" in body["error"]["message"]
    status, _, body = call(f"{live_url}/predict", "POST", raw=doc.encode("utf-8"))
    assert status == 200 and set(body["probabilities"]) == {"q1"}


def test_functions_framework_command_serves_the_same_way() -> None:
    """Cloud Functions starts predict with functions-framework's command (its buildpack does
    not apply GOOGLE_ENTRYPOINT to functions): ``main.py`` gives that server predict's
    settings too, so the request line is capped, errors are JSON and each worker has its own
    socket."""
    with live_server(env={"WORKERS": "2", "THREADS": "4"}, server="functions-framework") as srv:
        status, _, body = raw_exchange(srv.url, b"GET /healthz?" + b"a" * 9000 +
                                       b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 414 and json.loads(body)["error"]["field"] == "request line"
        status, _, body = raw_exchange(srv.url, (
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: xchunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"))
        assert status == 501
        assert_error(json.loads(body), "unsupported_transfer_encoding", "Transfer-Encoding")
        port = srv.url.rsplit(":", 1)[1]
        deadline = time.monotonic() + 15  # the second worker may still be booting
        while True:
            listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"],
                                       capture_output=True, text=True,
                                       check=False).stdout.strip().splitlines()
            if not listening or len(listening) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if listening:  # ss present: one socket per worker, none shared
            assert len(listening) == 2, listening


# --------------------------------------------------------------------------- idle pickup (17.10)
def _served_versions(url: str, n: int) -> Counter:
    """The versions ``n`` requests on new connections were answered with (new connections:
    spread over the workers by their SO_REUSEPORT sockets)."""
    seen: Counter = Counter()
    for _ in range(n):
        r = requests.post(f"{url}/predict", timeout=5, json={"responses": []},
                          headers={"Connection": "close"})
        seen[r.json().get("model_version") if r.status_code == 200 else r.status_code] += 1
    return seen


def bank_json(n_items: int) -> str:
    """A valid 2PL bank of ``n_items`` items ``q0`` ... (random parameters, no fit)."""
    import numpy as np

    from irt.engine.model import ItemModel

    rng = np.random.default_rng(10)
    nan = np.full(n_items, np.nan)
    return ItemModel(model_type="2pl", item_ids=tuple(f"q{j}" for j in range(n_items)),
                     a=rng.uniform(0.5, 2.0, n_items), b=rng.normal(0.0, 1.0, n_items),
                     c=np.zeros(n_items), se_a=nan, se_b=nan, se_c=nan,
                     quadrature={"n_points": 41, "bound": 6.0, "distribution": "normal"},
                     fit={"method": "MML-EM", "converged": True},
                     created_at="2026-01-01T00:00:00+00:00").to_json()


def test_idle_instance_picks_up_a_published_model(gcs_emulator, gcs_bucket) -> None:
    """Issue 17.10: a version published while the instance is idle is served from the first
    request that comes ``MODEL_REFRESH_SECONDS`` (1 s) + the fetch bound (3 s) after the move,
    by every worker: each checks the bucket (the storage emulator) in the background
    (``ModelCache.start_background``). Before, a worker checked only when a request found a
    check due, and 2-6 of the next 30 requests still got the old version."""
    text = bank_json(20_000)  # ~0.5 s to fetch, validate and warm: longer than a request waits

    def publish(version: str) -> None:
        gcs_bucket.blob(f"models/{version}/model.json").upload_from_string(
            text, content_type="application/json")
        gcs_bucket.blob("models/LATEST").upload_from_string(version, content_type="text/plain")

    publish("v1-idle0001")
    env = {"MODEL_BUCKET": gcs_bucket.name, "STORAGE_EMULATOR_HOST": gcs_emulator.url,
           "GOOGLE_CLOUD_PROJECT": "test-project", "MODEL_REFRESH_SECONDS": "1",
           "WORKERS": "2", "THREADS": "4"}
    with live_server(env=env, wait_for_model=False) as server:
        deadline = time.monotonic() + 20
        while _served_versions(server.url, 1) != Counter({"v1-idle0001": 1}):
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.2)
        assert _served_versions(server.url, 20) == Counter({"v1-idle0001": 20})
        publish("v2-idle0002")
        time.sleep(1.0 + 3.0)  # idle: no request at all
        assert _served_versions(server.url, 30) == Counter({"v2-idle0002": 30}), server.output()
        loaded = [json.loads(line) for line in server.output(200_000).splitlines()
                  if '"model loaded"' in line]
        assert [e["model_version"] for e in loaded].count("v2-idle0002") == 2  # each worker


# --------------------------------------------------------------------------- the contract
@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(DOC.read_text(encoding="utf-8"))


def _main_routes() -> dict[str, str]:
    """``{path: method}`` from main.py's ``ROUTES`` and each handler's ``@endpoint(METHOD)``."""
    tree = ast.parse(MAIN.read_text(encoding="utf-8"))
    methods: dict[str, str] = {}
    routes: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name)
                        and deco.func.id == "endpoint"):
                    methods[node.name] = ast.literal_eval(deco.args[0])
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "ROUTES":
            assert isinstance(node.value, ast.Dict)
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                assert isinstance(value, ast.Name)
                routes[ast.literal_eval(key)] = value.id
    assert routes, "ROUTES not found in main.py"
    return {path: methods[handler] for path, handler in routes.items()}


def _const_int(node: ast.expr) -> int:
    """An integer literal, or ``a << b`` / ``a * b`` of literals (``1 << 20``)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.LShift):
        return _const_int(node.left) << _const_int(node.right)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return _const_int(node.left) * _const_int(node.right)
    value = ast.literal_eval(node)
    assert type(value) is int, ast.dump(node)
    return value


def _main_int_defaults() -> dict[str, int]:
    """``{NAME: default}`` of predict's size caps, as its configuration reads them with no
    variable set (:class:`irt.serving.config.PredictConfig`)."""
    config = PredictConfig.from_env({}, "unused")
    return {"MAX_BODY_BYTES": config.max_body_bytes,
            "MAX_RESPONSES": config.limits.max_responses,
            "MAX_ITEMS": config.limits.max_items, "MAX_STUDENTS": config.limits.max_students,
            "MAX_K": config.limits.max_k,
            "MAX_PROBABILITIES": config.limits.max_probabilities}


def _schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return spec["components"]["schemas"][name]


def test_openapi_document_is_valid(spec: dict[str, Any]) -> None:
    validate_spec(spec)  # raises OpenAPIValidationError with the offending path
    assert spec["openapi"] == "3.0.3"


def test_every_route_is_documented_with_its_method(spec: dict[str, Any]) -> None:
    routes = _main_routes()
    documented = {path: sorted(item) for path, item in spec["paths"].items()}
    # a GET route answers HEAD too (main.endpoint), and the contract says so
    assert documented == {path: ["get", "head"] if method == "GET" else [method.lower()]
                          for path, method in routes.items()}


def test_documented_limits_match_main_defaults(spec: dict[str, Any]) -> None:
    env = _main_int_defaults()
    assert env["MAX_BODY_BYTES"] == 1 << 20
    assert _schema(spec, "Responses")["maxItems"] == env["MAX_RESPONSES"]
    assert _schema(spec, "ItemIds")["maxItems"] == env["MAX_ITEMS"]
    assert _schema(spec, "Candidates")["maxItems"] == env["MAX_ITEMS"]
    students = _schema(spec, "PredictBatchRequest")["properties"]["students"]
    assert students["maxItems"] == env["MAX_STUDENTS"]
    assert _schema(spec, "K")["maximum"] == env["MAX_K"]
    # an id is a string of at most max_id_length characters, or an INT64 integer
    for id_schema in (_schema(spec, "Id"),
                      _schema(spec, "BatchStudent")["properties"]["student_id"]):
        text, number = id_schema["oneOf"]
        assert text["maxLength"] == Limits().max_id_length
        assert (number["minimum"], number["maximum"]) == (-(1 << 63), (1 << 63) - 1)
    defaults = Limits()
    assert (defaults.max_responses, defaults.max_items, defaults.max_students,
            defaults.max_k) == (env["MAX_RESPONSES"], env["MAX_ITEMS"], env["MAX_STUDENTS"],
                                env["MAX_K"])
    description = spec["info"]["description"]
    for name in ("MAX_BODY_BYTES", "MAX_RESPONSES", "MAX_ITEMS", "MAX_STUDENTS", "MAX_K",
                 "MAX_PROBABILITIES"):
        assert re.search(rf"`{name}` \| {env[name]}\b", description), name


def test_documented_error_codes_match_the_code(spec: dict[str, Any]) -> None:
    source = MAIN.read_text(encoding="utf-8") + SERVING.read_text(encoding="utf-8")
    raised = set(re.findall(r"\bcode=\"(\w+)\"", source))  # RequestError(..., code=...)
    # The server's refusals before the function (server.py: _REFUSALS, _refuse(...)).
    server = SERVER.read_text(encoding="utf-8")
    raised |= set(re.findall(r"\d{3}, \"[A-Za-z -]+\",\s*\"(\w+)\"", server))
    raised |= {"invalid_request", "too_large"}  # serving.invalid() / serving.too_large()
    raised |= set(re.findall(r"\"code\":\s*\"(\w+)\"", source))  # the 500 body
    code = _schema(spec, "Error")["properties"]["error"]["properties"]["code"]
    assert set(code["enum"]) == raised


def _examples(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    bodies = [("Predict", spec["components"]["requestBodies"]["Predict"])]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody", {})
            if "content" in body:
                bodies.append((f"{method.upper()} {path}", body))
    for where, body in bodies:
        media = body["content"]["application/json"]
        for name, example in media.get("examples", {}).items():
            yield f"{where} {name}", media["schema"], example["value"]


def test_request_examples_match_their_schemas(spec: dict[str, Any]) -> None:
    seen = 0
    for where, schema, value in _examples(spec):
        validator = OAS30Validator({**schema, "components": spec["components"]})
        errors = [e.message for e in validator.iter_errors(value)]
        assert not errors, (where, errors)
        seen += 1
    assert seen >= 4


# --------------------------------------------------------------------------- schemathesis
CONFIG = schemathesis.Config.from_dict({
    "seed": SEED,
    "generation": {
        "mode": "all",  # positive AND negative data
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,  # Hypothesis derandomize
        "database": "none",
    },
    "phases": {"stateful": {"enabled": False}},
    "checks": {
        # Valid data must be answered 200; invalid data refused with a documented 4xx.
        "positive_data_acceptance": {"expected-statuses": [200]},
        "negative_data_rejection": {"expected-statuses": [400, 404, 405, 413, 415]},
    },
})


def _local_contract() -> dict[str, Any]:
    """The contract as the local server keeps it: without the bearer ID token requirement,
    which Google's front end checks before a deployed ``predict`` runs (401/403 are never
    ``predict``'s own answers; ``test_predict_auth_doc.py`` checks they are documented)."""
    doc = yaml.safe_load(DOC.read_text(encoding="utf-8"))
    doc.pop("security")
    return doc


schema = schemathesis.openapi.from_dict(_local_contract(), config=CONFIG)

#: ``(operation, phase, mode, status) -> count`` of what schemathesis sent.
OUTCOMES: Counter[tuple[str, str, str, int]] = Counter()
SESSION = requests.Session()


# schemathesis' own strategies touch the `random` module (seeded by Hypothesis, so the run stays
# deterministic); Hypothesis warns about it, and the warning is not about this project.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning")
@schema.parametrize()
def test_schemathesis_live(case: schemathesis.Case, live: LiveServer) -> None:
    live_url = live.url
    try:
        response = case.call(base_url=live_url, session=SESSION, timeout=15)
    except requests.RequestException as exc:
        pytest.fail(f"{case.method} {case.formatted_path}: {exc!r}; server exit code "
                    f"{live.process.poll()}, output tail:\n{live.output()}")
    meta = case.meta
    OUTCOMES[(case.operation.label, meta.phase.name.value if meta else "?",
              meta.generation.mode.value if meta else "?", response.status_code)] += 1
    repro = f"{case.method} {case.formatted_path} body={case.body!r:.500} -> " \
            f"{response.status_code} {response.text[:500]}"
    assert response.status_code < 500, repro
    if 400 <= response.status_code < 500:
        ctype = (response.headers.get("content-type") or [""])[0]  # lower-case keys, lists
        assert ctype.startswith("application/json"), repro
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), dict), repro
        assert isinstance(body["error"].get("code"), str) and body["error"]["code"], repro
        assert isinstance(body["error"].get("message"), str) and body["error"]["message"], repro
        field = body["error"].get("field")
        assert isinstance(field, str), repro  # the JSON path of the offending input; only an
        assert field or (isinstance(case.body, dict) and "" in case.body), repro  # unknown
        # key "" at the top level has the path ""
    # Every built-in check: no server error, documented status / content type / headers,
    # response body matches the documented schema, valid data accepted, invalid data
    # rejected, 405 + Allow for undocumented methods.
    case.validate_response(response, transport_kwargs={"base_url": live_url})


def test_schemathesis_exercised_every_operation() -> None:
    """Summary of what schemathesis sent (``-rP`` shows it); each operation got 2xx and 4xx."""
    if not OUTCOMES:
        pytest.skip("the schemathesis test did not run in this session")
    by_status: Counter[tuple[str, str, int]] = Counter()
    for (label, _phase, mode, status), n in OUTCOMES.items():
        by_status[(label, mode, status)] += n
    lines = [f"{label:22} {mode:8} {status}: {n}" for (label, mode, status), n
             in sorted(by_status.items())]
    phases: Counter[str] = Counter()
    for (_label, phase, _mode, _status), n in OUTCOMES.items():
        phases[phase] += n
    total = sum(OUTCOMES.values())
    print(f"schemathesis: {total} requests, by phase {dict(sorted(phases.items()))}\n"
          + "\n".join(lines))
    statuses: Counter[int] = Counter()
    for (_label, _phase, _mode, status), n in OUTCOMES.items():
        statuses[status] += n
    drillreport.record("schemathesis", {
        "requests": total, "max_examples": MAX_EXAMPLES, "by_status": dict(statuses),
        "server_5xx": sum(n for s, n in statuses.items() if s >= 500)})
    labels = {label for label, _, _, _ in OUTCOMES}
    assert labels == {op.label for op in (r.ok() for r in schema.get_all_operations())}
    for label in labels:
        statuses = {status for (lab, _, _, status) in OUTCOMES if lab == label}
        assert 200 in statuses, (label, statuses)
        if label.startswith("POST"):
            assert any(400 <= s < 500 for s in statuses), (label, statuses)
