"""Security drills: size caps on the live ``predict`` (413 at each cap, accepted at it), and no
secret in the repository or the Terraform.

The secret scan reads every file git tracks or would track (``git ls-files --cached --others
--exclude-standard``; every file under the repository when git is unavailable) and looks for
private keys, service-account key files, cloud and CI tokens, and literal passwords. The
patterns are assembled at run time so that this file does not match itself, and a planted
sample proves that each pattern fires.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from livesrv import LiveServer, live_server

pytestmark = pytest.mark.drills

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20

# --------------------------------------------------------------------------- size caps


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    with live_server() as server:
        yield server


def answers(n: int) -> list[dict]:
    return [{"item_id": f"q{i % 50}", "correct": i % 2} for i in range(n)]


def padded(size: int) -> bytes:
    """A valid predict body of exactly ``size`` bytes (padded with JSON whitespace)."""
    head, tail = b'{"responses": [], "items": ["q1"]', b"}"
    return head + b" " * (size - len(head) - len(tail)) + tail


CAPS = [  # (path, body or raw bytes, chunked, status, field)
    ("/predict", padded(MIB + 1), False, 413, "body"),
    ("/predict", padded(MIB + 1), True, 413, "body"),
    ("/predict", {"responses": answers(1001)}, False, 413, "responses"),
    ("/predict", {"responses": [], "items": ["q1"] * 5001}, False, 413, "items"),
    ("/predict", {"students": [{"responses": []}] * 101}, False, 413, "students"),
    ("/predict", {"students": [{"responses": answers(1001)}]}, False, 413,
     "students[0].responses"),
    ("/next-items", {"responses": [], "k": 101}, False, 413, "k"),
    ("/next-items", {"responses": [], "candidates": ["q1"] * 5001}, False, 413, "candidates"),
    ("/predict", {"responses": [{"item_id": "x" * 257, "correct": 1}]}, False, 400,
     "responses[0].item_id"),
    # At the caps: accepted.
    ("/predict", padded(MIB), False, 200, None),
    ("/predict", padded(MIB), True, 200, None),
    ("/predict", {"responses": answers(1000), "items": ["q1"] * 5000}, False, 200, None),
    ("/predict", {"students": [{"responses": answers(10)}] * 100}, False, 200, None),
    ("/next-items", {"responses": [], "k": 100}, False, 200, None),
    ("/predict", {"responses": [{"item_id": "x" * 256, "correct": 1}]}, False, 200, None),
]


@pytest.mark.parametrize(("path", "body", "chunked", "status", "field"), CAPS,
                         ids=[f"{c[0]}-{c[3]}-{c[4] or 'ok'}{'-chunked' if c[2] else ''}"
                              for c in CAPS])
def test_size_caps_live(live: LiveServer, path, body, chunked, status, field) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    data = (raw[k:k + 65536] for k in range(0, len(raw), 65536)) if chunked else raw
    r = requests.post(live.url + path, data=data, timeout=30,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text[:300]
    if field is not None:
        assert r.json()["error"]["field"] == field
        assert r.json()["error"]["code"] == ("too_large" if status == 413 else
                                             "invalid_request")
    else:
        assert r.json()["model_version"] == live.model_version


# --------------------------------------------------------------------------- secrets
def _p(*parts: str) -> str:
    return "".join(parts)


#: name -> pattern (assembled from parts: this file must not match itself).
SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    "private key": re.compile(_p("-----BEGIN ", r"(?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?",
                                 "PRIVATE ", "KEY-----")),
    "service-account key file": re.compile(_p(r'"private', r'_key(?:_id)?"\s*:\s*"[^"]{8,}')),
    "Google API key": re.compile(_p("AI", "za", r"[0-9A-Za-z_\-]{35}")),
    "Google OAuth token": re.compile(_p("ya", r"29\.", r"[0-9A-Za-z_\-]{20,}")),
    "AWS access key": re.compile(_p("AK", "IA", "[0-9A-Z]{16}")),
    "GitHub token": re.compile(_p("gh", "[pousr]_", "[A-Za-z0-9]{36}")),
    "Slack token": re.compile(_p("xox", "[abprs]-", "[A-Za-z0-9-]{10,}")),
    "literal password or secret": re.compile(
        _p(r"(?i)(?:pass", r"word|passwd|client_secret|secret_key|api_key|auth_token)\b",
           r"""\s*[:=]\s*["'][^"'\s$<{]{6,}["']""")),
}
#: What a planted sample of each pattern looks like (built at run time, never stored).
PLANTED = {
    "private key": _p("-----BEGIN ", "RSA PRIVATE ", "KEY-----\nMIIE..."),
    "service-account key file": _p('{"type": "service_account", "private', '_key": "',
                                   "-----MIIEvQIBADANBgkqhkiG9w0B", '"}'),
    "Google API key": _p("AI", "za", "Sy", "A" * 33),
    "Google OAuth token": _p("ya", "29.", "a0AfH6SMB" * 3),
    "AWS access key": _p("AK", "IA", "IOSFODNN7EXAMPLE"),
    "GitHub token": _p("gh", "p_", "a" * 36),
    "Slack token": _p("xox", "b-", "1234567890-abcdef"),
    "literal password or secret": _p("db_pass", 'word = "', "hunter2hunter2", '"'),
}


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                              "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60)
        names = [n for n in out.stdout.decode().split("\0") if n]
        return [ROOT / n for n in names if (ROOT / n).is_file()]
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", ".venv-tools", "build", ".hypothesis", ".pytest_cache",
                ".ruff_cache", "__pycache__", ".terraform"}
        return [p for p in ROOT.rglob("*") if p.is_file()
                and not skip & set(p.relative_to(ROOT).parts)]


def scan(text: str) -> list[str]:
    return [name for name, pattern in SECRET_PATTERNS.items() if pattern.search(text)]


def test_the_scanner_finds_each_planted_secret(tmp_path: Path) -> None:
    for name, sample in PLANTED.items():
        assert scan(f"x = 1\n{sample}\n") == [name], name
    assert scan('password = os.environ["DB_PASSWORD"]\ntoken = "${var.token}"\n') == []


def test_no_secrets_in_tracked_files() -> None:
    files = tracked_files()
    assert len(files) > 50  # the scan saw the repository
    found = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary (samples/answers.csv.gz)
        found += [f"{path.relative_to(ROOT)}: {name}" for name in scan(text)]
    assert not found


def test_terraform_creates_no_keys_and_passes_no_secrets() -> None:
    tf = sorted((ROOT / "terraform").rglob("*.tf")) + sorted(
        (ROOT / "terraform").rglob("*.tfvars"))
    assert tf
    text = "\n".join(p.read_text(encoding="utf-8") for p in tf)
    # Keys are never minted: the functions, the scheduler and CI use their service accounts'
    # own identities (OIDC / metadata server).
    for resource in ("google_service_account_key", "google_storage_hmac_key",
                     "google_apikeys_key", "google_sql_user"):
        assert f'resource "{resource}"' not in text, resource
    # No environment variable or input is named like a credential.
    names = re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=", text, re.M)
    names += re.findall(r'variable\s+"([^"]+)"', text)
    suspicious = [n for n in names if re.search(r"(?i)pass(word)?$|secret|token$|api_?key", n)]
    assert not suspicious, suspicious
    assert not scan(text)
