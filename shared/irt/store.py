"""Versioned model artifacts: Cloud Storage or a local directory, one layout.

::

    <prefix>/LATEST                      the serving version id (what predict reads)
    <prefix>/<version>/prepared.csv.gz   the calibration answers
    <prefix>/<version>/model.json        the item parameters (irt.engine.model)
    <prefix>/<version>/metrics.json      the quality gate's figures
    <prefix>/<version>/report.html       the model report, for people (irt.refresh.report)
    <prefix>/<version>/report.json       the run: config, counts, checks, decision
    <prefix>/<version>/PUBLISHED         written after LATEST first named the version

``report.json`` is written last of a version's artifacts, so a version without
it is *incomplete* (a run died while uploading).  ``LATEST`` moves last of all,
with a precondition (:meth:`ArtifactStore.move_pointer`): it only moves if it
still holds what this run read at its start, so of two concurrent runs exactly
one publishes, and it only ever names a complete version.  ``prepare`` creates a
version's first artifact only if absent (:meth:`ArtifactStore.create`): of two runs of
the same window, one writes the version, so a published version is never rewritten.

Cloud clients are imported only by :class:`GCSStore`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from irt.errors import PointerConflictError

#: A version id (also safe as a path segment and an object name part).
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: Artifact names, in upload order (report.json marks a complete version).
ARTIFACTS: tuple[str, ...] = ("prepared.csv.gz", "model.json", "metrics.json", "report.json")
POINTER = "LATEST"
PUBLISHED = "PUBLISHED"






class ArtifactStore(Protocol):
    """What ``prepare`` and the operator CLI need from a store."""

    location: str

    def read_pointer(self) -> tuple[str | None, Any]:
        """``(version or None, token)``; pass the token to :meth:`move_pointer`."""

    def move_pointer(self, version: str, token: Any) -> None:
        """Point ``LATEST`` at ``version`` if it still matches ``token``, else raise
        :class:`PointerConflictError`."""

    def put(self, version: str, name: str, data: bytes, content_type: str) -> None:
        """Write one artifact (atomically: readers see all of it or nothing)."""

    def create(self, version: str, name: str, data: bytes, content_type: str) -> bool:
        """Write one artifact only if it is absent (atomically); ``False`` if it existed."""

    def created(self, version: str, name: str) -> float | None:
        """When the artifact was written (Unix seconds), ``None`` if absent."""

    def get(self, version: str, name: str) -> bytes | None:
        """One artifact's bytes, ``None`` if absent."""

    def versions(self) -> dict[str, list[str]]:
        """``{version: [artifact names]}`` of every version present."""


#: How deep a stored JSON document (report.json, metrics.json) may nest.
MAX_DOCUMENT_DEPTH = 32


def parse_document(raw: bytes | str) -> Any:
    """A stored JSON document (``report.json``, ``metrics.json``).

    Raises:
        ValueError: not JSON, or nested deeper than :data:`MAX_DOCUMENT_DEPTH` (a hostile
            document must not end a reader with a ``RecursionError``).
    """
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DOCUMENT_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_DOCUMENT_DEPTH} levels")
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict)
                                                  else value))
    return doc


def check_version(version: str) -> str:
    """Return ``version`` if it matches :data:`VERSION_PATTERN`, else raise ValueError."""
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise ValueError(f"invalid version id {version!r} (pattern {VERSION_PATTERN.pattern})")
    return version


class LocalStore:
    """The layout in a directory (the embedded default; ``MODEL_DIR``).

    Writes go to a temporary file and are renamed into place; the pointer moves
    under an exclusive ``flock`` (released by the kernel if its holder dies) with a
    compare-and-swap on its content.
    """

    def __init__(self, root: str | os.PathLike[str], prefix: str = "models") -> None:
        self.root = Path(root) / prefix
        self.location = str(self.root)

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read_pointer(self) -> tuple[str | None, Any]:
        try:
            text = (self.root / POINTER).read_text().strip()
        except FileNotFoundError:
            return None, None
        return (text or None), text

    def move_pointer(self, version: str, token: Any) -> None:
        check_version(version)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._pointer_lock():
            _, current = self.read_pointer()
            if current != token:
                raise PointerConflictError(f"LATEST is {current!r}, expected {token!r}")
            self._write(self.root / POINTER, (version + "\n").encode())

    @contextlib.contextmanager
    def _pointer_lock(self) -> Iterator[None]:
        """Hold ``.LATEST.lock`` exclusively: an ``flock`` on a file that stays in place.

        The kernel drops the lock when its holder dies, SIGKILL included, so a crash
        mid-move never wedges the store (a lock *file* created with ``O_EXCL`` did: it
        outlived its owner).  The file holds the owner's pid and start time, for people.
        Waits up to 10 s for a live holder, then raises :class:`PointerConflictError`.
        """
        lock = self.root / f".{POINTER}.lock"
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise PointerConflictError(
                            f"{lock} held by a live process for more than 10 s") from None
                    time.sleep(0.01)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {time.time():.3f}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the flock

    def put(self, version: str, name: str, data: bytes, content_type: str) -> None:
        self._write(self.root / check_version(version) / name, data)

    def create(self, version: str, name: str, data: bytes, content_type: str) -> bool:
        path = self.root / check_version(version) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
            os.link(tmp, path)  # fails if the name exists: create-only, and atomic
            return True
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)

    def created(self, version: str, name: str) -> float | None:
        try:
            return (self.root / check_version(version) / name).stat().st_mtime
        except FileNotFoundError:
            return None

    def get(self, version: str, name: str) -> bytes | None:
        try:
            return (self.root / check_version(version) / name).read_bytes()
        except FileNotFoundError:
            return None

    def versions(self) -> dict[str, list[str]]:
        if not self.root.is_dir():
            return {}
        return {d.name: sorted(f.name for f in d.iterdir() if not f.name.startswith("."))
                for d in sorted(self.root.iterdir())
                if d.is_dir() and VERSION_PATTERN.fullmatch(d.name)}


class GCSStore:
    """The layout in a Cloud Storage bucket (``MODEL_BUCKET``).

    The pointer moves with ``if_generation_match`` (0 when absent) on a small
    single-request upload, the form whose precondition Cloud Storage (and the
    fake-gcs-server emulator) enforce.
    """

    def __init__(self, bucket_name: str, prefix: str = "models", client: Any = None,
                 timeout: float = 60.0, retry: Any = None) -> None:
        from google.cloud import storage

        self.client = client or storage.Client()
        self.bucket = self.client.bucket(bucket_name)
        self.prefix = prefix.strip("/")
        self.location = f"gs://{bucket_name}/{self.prefix}"
        self.timeout = timeout
        self.retry = retry

    def _kw(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"timeout": self.timeout}
        if self.retry is not None:
            kw["retry"] = self.retry
        return kw

    def read_pointer(self) -> tuple[str | None, Any]:
        blob = self.bucket.get_blob(f"{self.prefix}/{POINTER}", **self._kw())
        if blob is None:
            return None, 0
        return blob.download_as_text(**self._kw()).strip() or None, blob.generation

    def move_pointer(self, version: str, token: Any) -> None:
        from google.api_core import exceptions

        check_version(version)
        blob = self.bucket.blob(f"{self.prefix}/{POINTER}")
        blob.cache_control = "no-cache"
        try:
            blob.upload_from_string(version + "\n", content_type="text/plain",
                                    if_generation_match=int(token or 0), **self._kw())
        except exceptions.PreconditionFailed as exc:
            raise PointerConflictError(f"LATEST changed since generation {token}") from exc

    def put(self, version: str, name: str, data: bytes, content_type: str) -> None:
        blob = self.bucket.blob(f"{self.prefix}/{check_version(version)}/{name}")
        blob.upload_from_string(data, content_type=content_type, **self._kw())

    def create(self, version: str, name: str, data: bytes, content_type: str) -> bool:
        from google.api_core import exceptions

        blob = self.bucket.blob(f"{self.prefix}/{check_version(version)}/{name}")
        try:  # generation 0: only if no live object has the name
            blob.upload_from_string(data, content_type=content_type, if_generation_match=0,
                                    **self._kw())
        except exceptions.PreconditionFailed:
            return False
        return True

    def created(self, version: str, name: str) -> float | None:
        blob = self.bucket.get_blob(f"{self.prefix}/{check_version(version)}/{name}",
                                    **self._kw())
        return None if blob is None or blob.time_created is None else \
            blob.time_created.timestamp()

    def get(self, version: str, name: str) -> bytes | None:
        blob = self.bucket.get_blob(f"{self.prefix}/{check_version(version)}/{name}",
                                    **self._kw())
        return None if blob is None else blob.download_as_bytes(**self._kw())

    def versions(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for blob in self.client.list_blobs(self.bucket, prefix=f"{self.prefix}/", **self._kw()):
            rest = blob.name[len(self.prefix) + 1:]
            if "/" in rest:
                version, name = rest.split("/", 1)
                if VERSION_PATTERN.fullmatch(version):
                    out.setdefault(version, []).append(name)
        return {v: sorted(n) for v, n in sorted(out.items())}


@dataclass(frozen=True)
class VersionInfo:
    """One version as the operator CLI lists it.

    Attributes:
        version: the id.
        status: ``serving`` (LATEST names it), ``published`` (served before),
            ``rejected`` (failed its checks or gate), ``unpublished`` (complete
            and accepted, but LATEST never moved to it: a run that died or lost
            the pointer race, a dry run - safe to delete), ``incomplete`` (no
            report.json: a run died while uploading - safe to delete).
        created_at: when the run wrote it (from report.json).
        decision: the run's decision (from report.json): ``accepted``,
            ``forced`` (published over a failed check by an operator),
            ``rejected`` or ``dry_run``.
    """

    version: str
    status: str
    created_at: str | None
    decision: str | None


def describe(store: ArtifactStore) -> list[VersionInfo]:
    """Every version with its status, oldest first."""
    serving, _ = store.read_pointer()
    out: list[VersionInfo] = []
    for version, names in store.versions().items():
        report: dict[str, Any] = {}
        if "report.json" in names:
            raw = store.get(version, "report.json")
            try:
                report = parse_document(raw or b"{}")
            except ValueError:
                report = {}
            if not isinstance(report, dict):
                report = {}
        decision = report.get("decision")
        if version == serving:
            status = "serving"
        elif "report.json" not in names:
            status = "incomplete"
        elif PUBLISHED in names:
            status = "published"
        elif decision in ("accepted", "forced", "dry_run"):
            status = "unpublished"
        else:
            status = "rejected"
        out.append(VersionInfo(version, status, report.get("created_at"), decision))
    return out
