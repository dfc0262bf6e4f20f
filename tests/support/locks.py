"""Reading the lock files ``make lock`` writes (``uv pip compile --generate-hashes``) and the
human-edited inputs they are generated from, for the supply-chain tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]

#: Each lock file (relative to the repository root) and the input it is generated from.
LOCKS: dict[str, str] = {
    "requirements-dev.lock": "requirements-dev.txt",
    "terraform/requirements-tools.lock": "terraform/requirements-tools.txt",
    "functions/predict/requirements.txt": "functions/predict/requirements.in",
    "functions/prepare/requirements.txt": "functions/prepare/requirements.in",
}


@dataclass(frozen=True)
class Locked:
    """One locked requirement: ``name==version [; marker]`` and its ``--hash`` options."""

    name: str
    version: str
    marker: str
    hashes: tuple[str, ...]


def _logical_lines(text: str) -> list[str]:
    """Lines with ``\\`` continuations joined and comments removed."""
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            out.append(current.strip())
        current = ""
    return out


def read_lock(path: Path) -> dict[str, list[Locked]]:
    """``{canonical name: [Locked, ...]}`` (a universal lock may hold one per marker).

    Raises:
        AssertionError: a line that is not ``name==version`` with its options.
    """
    out: dict[str, list[Locked]] = {}
    for line in _logical_lines(path.read_text()):
        words = line.split(" --hash=")
        req = Requirement(words[0])
        pins = [s for s in req.specifier if s.operator == "=="]
        assert len(pins) == 1 and len(req.specifier) == 1, f"{path}: not pinned: {line!r}"
        hashes = tuple(w.strip() for w in words[1:])
        name = canonicalize_name(req.name)
        out.setdefault(name, []).append(
            Locked(name, pins[0].version, str(req.marker or ""), hashes))
    return out


def read_pins(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of an input file's ``name==version`` lines."""
    out = {}
    for line in _logical_lines(path.read_text()):
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{path}: an input pins exactly: {line!r}"
        out[canonicalize_name(req.name)] = spec.version
    return out
