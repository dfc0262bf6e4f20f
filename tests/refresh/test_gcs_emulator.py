"""The local Cloud Storage emulator behaves as GCS does for what the two functions rely on.

Reading a model (download), publishing versioned artifacts (create-only and generation-matched
overwrites of a ``models/LATEST`` pointer), gzip objects, object versioning, and failing fast
when storage is down. Where fake-gcs-server differs from GCS, a strict xfail says exactly how:
if a later emulator fixes it, the xfail turns into a failure and the note can go.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import time
import urllib.request

import google.api_core.exceptions as gexc
import pytest
import requests
from emulators import (
    CALL_TIMEOUT,
    CONNECTION_ERRORS,
    PROJECT,
    EmulatorStartError,
    GCSEmulator,
    create_bucket,
    short_retry,
)
from google.cloud import storage

T = CALL_TIMEOUT


def _upload(bucket: storage.Bucket, name: str, data: bytes, **kw) -> storage.Blob:
    blob = bucket.blob(name)
    blob.upload_from_string(data, retry=short_retry(), timeout=T, **kw)
    return blob


def _read(bucket: storage.Bucket, name: str, generation: int | None = None) -> bytes:
    blob = bucket.blob(name, generation=generation)
    return blob.download_as_bytes(retry=short_retry(), timeout=T)


# -- basics -------------------------------------------------------------------------------


def test_emulator_is_the_bundled_binary_on_loopback(gcs_emulator: GCSEmulator) -> None:
    assert gcs_emulator.running
    assert gcs_emulator.url.startswith("http://127.0.0.1:")
    assert gcs_emulator.startup_seconds is not None and gcs_emulator.startup_seconds < 10


def test_upload_and_download_bytes(gcs_bucket: storage.Bucket) -> None:
    data = os.urandom(100_000) + b"\x00\xff"
    _upload(gcs_bucket, "models/m1/model.bin", data, content_type="application/octet-stream")
    assert _read(gcs_bucket, "models/m1/model.bin") == data
    meta = gcs_bucket.get_blob("models/m1/model.bin", retry=short_retry(), timeout=T)
    assert meta is not None
    assert meta.size == len(data)
    assert meta.content_type == "application/octet-stream"
    assert gcs_bucket.get_blob("models/absent", retry=short_retry(), timeout=T) is None
    with pytest.raises(gexc.NotFound):
        _read(gcs_bucket, "models/absent")


def test_bucket_fixture_has_versioning(gcs_bucket: storage.Bucket) -> None:
    fetched = gcs_bucket.client.get_bucket(gcs_bucket.name, retry=short_retry(), timeout=T)
    assert fetched.versioning_enabled is True
    assert gcs_bucket.name.startswith("test-")


def test_generation_numbers(gcs_bucket: storage.Bucket) -> None:
    first = _upload(gcs_bucket, "k", b"one")
    assert isinstance(first.generation, int) and first.generation > 0
    second = _upload(gcs_bucket, "k", b"two")
    assert second.generation > first.generation  # a new generation per write, increasing
    current = gcs_bucket.get_blob("k", retry=short_retry(), timeout=T)
    assert current is not None and current.generation == second.generation
    # Old generations of a versioned bucket stay readable by number.
    assert _read(gcs_bucket, "k", generation=first.generation) == b"one"
    assert _read(gcs_bucket, "k", generation=second.generation) == b"two"
    assert _read(gcs_bucket, "k") == b"two"


# -- preconditions: how a publisher creates artifacts and moves models/LATEST -------------


def test_if_generation_match_0_creates_only_once(gcs_bucket: storage.Bucket) -> None:
    _upload(gcs_bucket, "models/v1/model.json", b"first", if_generation_match=0)
    with pytest.raises(gexc.PreconditionFailed) as info:
        _upload(gcs_bucket, "models/v1/model.json", b"second", if_generation_match=0)
    assert info.value.code == 412
    assert _read(gcs_bucket, "models/v1/model.json") == b"first"


def test_if_generation_match_overwrites_once_then_stale_fails(gcs_bucket: storage.Bucket) -> None:
    g0 = _upload(gcs_bucket, "models/LATEST", b"v1", if_generation_match=0).generation
    g1 = _upload(gcs_bucket, "models/LATEST", b"v2", if_generation_match=g0).generation
    assert g1 != g0
    with pytest.raises(gexc.PreconditionFailed):  # g0 is stale now
        _upload(gcs_bucket, "models/LATEST", b"v3", if_generation_match=g0)
    assert _read(gcs_bucket, "models/LATEST") == b"v2"
    # A generation that never existed fails the same way.
    with pytest.raises(gexc.PreconditionFailed):
        _upload(gcs_bucket, "models/LATEST", b"v3", if_generation_match=g1 + 1)
    # If-match on an object that does not exist yet fails too (not a create).
    with pytest.raises(gexc.PreconditionFailed):
        _upload(gcs_bucket, "models/NOPE", b"x", if_generation_match=g1)


def test_concurrent_publishers_only_one_moves_latest(
    gcs_emulator: GCSEmulator, gcs_bucket: storage.Bucket
) -> None:
    n = 8

    def publish(i: int, base: int, barrier: threading.Barrier, results: list[str]) -> None:
        bucket = gcs_emulator.client().bucket(gcs_bucket.name)  # own client per thread
        barrier.wait(timeout=10)
        try:
            _upload(bucket, "models/LATEST", f"p{i}".encode(), if_generation_match=base)
            results[i] = "won"
        except gexc.PreconditionFailed:
            results[i] = "lost"

    for round_ in range(3):
        base = _upload(gcs_bucket, "models/LATEST", f"base{round_}".encode()).generation
        barrier = threading.Barrier(n)
        results: list[str] = [""] * n
        threads = [
            threading.Thread(target=publish, args=(i, base, barrier, results)) for i in range(n)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(results) == ["lost"] * (n - 1) + ["won"], results
        winner = results.index("won")
        assert _read(gcs_bucket, "models/LATEST") == f"p{winner}".encode()


# -- versioning ---------------------------------------------------------------------------


def test_versioning_keeps_old_generations(
    gcs_emulator: GCSEmulator, gcs_bucket: storage.Bucket
) -> None:
    gens = [_upload(gcs_bucket, "models/LATEST", f"v{i}".encode()).generation for i in range(3)]
    client = gcs_bucket.client

    # versions="true" (the canonical wire value, which GCS accepts too) lists every generation.
    listed = client.list_blobs(gcs_bucket, versions="true", retry=short_retry(), timeout=T)
    assert sorted(b.generation for b in listed) == sorted(gens)
    live = client.list_blobs(gcs_bucket, retry=short_retry(), timeout=T)
    assert [b.generation for b in live] == [gens[-1]]
    for i, g in enumerate(gens):
        assert _read(gcs_bucket, "models/LATEST", generation=g) == f"v{i}".encode()

    # Deleting the live object archives it; every generation is still listed and readable.
    gcs_bucket.blob("models/LATEST").delete(retry=short_retry(), timeout=T)
    assert list(client.list_blobs(gcs_bucket, retry=short_retry(), timeout=T)) == []
    url = f"{gcs_emulator.url}/storage/v1/b/{gcs_bucket.name}/o?versions=true"
    with urllib.request.urlopen(url, timeout=T) as resp:
        items = json.load(resp)["items"]
    assert sorted(int(i["generation"]) for i in items) == sorted(gens)
    assert _read(gcs_bucket, "models/LATEST", generation=gens[0]) == b"v0"


@pytest.mark.xfail(
    strict=True,
    reason="fake-gcs-server reads versions only when it is exactly 'true'; the Python client "
    "sends 'versions=True', so only live objects are listed (GCS lists all generations)",
)
def test_list_blobs_versions_true_lists_old_generations(gcs_bucket: storage.Bucket) -> None:
    for i in range(2):
        _upload(gcs_bucket, "k", f"v{i}".encode())
    listed = gcs_bucket.client.list_blobs(gcs_bucket, versions=True, retry=short_retry(), timeout=T)
    assert len(list(listed)) == 2


# -- gzip ---------------------------------------------------------------------------------


def test_gzip_upload_from_memory_round_trip(gcs_bucket: storage.Bucket) -> None:
    payload = json.dumps({"items": list(range(2000))}).encode()
    compressed = gzip.compress(payload)
    blob = gcs_bucket.blob("models/v1/params.json.gz")
    blob.content_encoding = "gzip"
    blob.upload_from_string(
        compressed, content_type="application/json", retry=short_retry(), timeout=T
    )
    meta = gcs_bucket.get_blob("models/v1/params.json.gz", retry=short_retry(), timeout=T)
    assert meta is not None
    assert meta.content_encoding == "gzip"
    assert meta.content_type == "application/json"
    assert meta.size == len(compressed)  # stored compressed
    # A plain download hands back the decompressed bytes, as with GCS ...
    assert gcs_bucket.blob(meta.name).download_as_bytes(retry=short_retry(), timeout=T) == payload
    # ... and raw_download the stored gzip bytes.
    raw = gcs_bucket.blob(meta.name).download_as_bytes(
        raw_download=True, retry=short_retry(), timeout=T
    )
    assert raw == compressed


# -- large (resumable) uploads ------------------------------------------------------------

BIG = 9 * 1024 * 1024  # over the client's 8 MiB multipart limit: a resumable upload


def test_resumable_upload_round_trip(gcs_bucket: storage.Bucket) -> None:
    data = os.urandom(BIG)
    blob = _upload(gcs_bucket, "big.bin", data, if_generation_match=0)
    assert blob.generation and blob.size == BIG
    assert _read(gcs_bucket, "big.bin") == data


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="fake-gcs-server ignores ifGenerationMatch on resumable uploads (>8 MiB from the "
    "Python client, blob.open('wb')); GCS answers 412. Only multipart uploads check it",
)
def test_resumable_upload_enforces_if_generation_match(gcs_bucket: storage.Bucket) -> None:
    data = os.urandom(BIG)
    _upload(gcs_bucket, "big.bin", data, if_generation_match=0)
    try:
        _upload(gcs_bucket, "big.bin", data, if_generation_match=0)
    except gexc.PreconditionFailed:
        return
    raise AssertionError("second create-only resumable upload succeeded")


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="fake-gcs-server's rewrite/copy ignores preconditions; GCS answers 412",
)
def test_copy_blob_enforces_if_generation_match(gcs_bucket: storage.Bucket) -> None:
    src = _upload(gcs_bucket, "models/v2/model.json", b"v2")
    _upload(gcs_bucket, "models/LATEST", b"v1")
    try:
        gcs_bucket.copy_blob(
            src, gcs_bucket, "models/LATEST", if_generation_match=0,
            retry=short_retry(), timeout=T,
        )
    except gexc.PreconditionFailed:
        return
    raise AssertionError("copy_blob onto an existing object with if_generation_match=0 passed")


# -- production-style client from the environment -----------------------------------------


def test_plain_client_from_env_uses_emulator(gcs_env: str) -> None:
    client = storage.Client()  # as the functions build it: no arguments
    assert client.project == PROJECT
    bucket = create_bucket(client)
    _upload(bucket, "x", b"from env")
    names = [b.name for b in client.list_buckets(retry=short_retry(), timeout=T)]
    assert bucket.name in names
    assert _read(bucket, "x") == b"from env"


# -- storage down, and back ---------------------------------------------------------------


def _ops(bucket: storage.Bucket) -> dict:
    return {
        "download": lambda retry: bucket.blob("m").download_as_bytes(retry=retry, timeout=T),
        "upload": lambda retry: bucket.blob("m").upload_from_string(
            b"x", if_generation_match=0, retry=retry, timeout=T
        ),
        "get_blob": lambda retry: bucket.get_blob("m", retry=retry, timeout=T),
        "list": lambda retry: list(bucket.client.list_blobs(bucket, retry=retry, timeout=T)),
    }


@pytest.mark.slow
@pytest.mark.parametrize("op", ["download", "upload", "get_blob", "list"])
def test_dead_emulator_fails_fast_with_connection_error(
    own_gcs_emulator: GCSEmulator, op: str
) -> None:
    bucket = create_bucket(own_gcs_emulator.client())
    own_gcs_emulator.stop()
    call = _ops(bucket)[op]

    t0 = time.monotonic()
    with pytest.raises(gexc.RetryError) as info:
        call(short_retry(2.0))
    elapsed = time.monotonic() - t0
    assert 1.0 < elapsed < 5.0, elapsed
    assert isinstance(info.value.cause, requests.exceptions.ConnectionError)
    assert isinstance(info.value.__cause__, requests.exceptions.ConnectionError)
    assert isinstance(info.value, CONNECTION_ERRORS)

    # Without retry: the bare requests ConnectionError, at once.
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError) as bare:
        call(None)
    assert time.monotonic() - t0 < 1.0
    assert isinstance(bare.value, CONNECTION_ERRORS)
    assert not isinstance(bare.value, gexc.GoogleAPICallError)


def test_restart_same_port_comes_back_empty(own_gcs_emulator: GCSEmulator) -> None:
    emu = own_gcs_emulator
    client = emu.client()  # made before the outage, used after it
    bucket = create_bucket(client, "models-bucket")
    _upload(bucket, "models/LATEST", b"v1")
    port, pid = emu.port, emu.pid

    emu.stop()
    assert not emu.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(CONNECTION_ERRORS):
        _read(bucket, "models/LATEST")

    emu.restart()
    assert emu.running and emu.port == port and emu.pid != pid
    # Memory backend: everything is gone after a restart.
    with pytest.raises(gexc.NotFound):
        client.get_bucket("models-bucket", retry=short_retry(), timeout=T)
    bucket = create_bucket(client, "models-bucket")
    _upload(bucket, "models/LATEST", b"v2")
    assert _read(bucket, "models/LATEST") == b"v2"


# -- the harness itself -------------------------------------------------------------------


def test_start_failure_names_the_cause() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        emu = GCSEmulator(port=held.getsockname()[1], start_attempts=2)
        try:
            with pytest.raises(EmulatorStartError, match="address already in use"):
                emu.start()
            assert not emu.running
        finally:
            emu.close()


def test_start_retries_on_a_port_taken_in_the_meantime(monkeypatch: pytest.MonkeyPatch) -> None:
    import emulators

    real_free_port = emulators.free_port
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        ports = iter([taken])
        monkeypatch.setattr(
            emulators, "free_port", lambda host: next(ports, None) or real_free_port(host)
        )
        with GCSEmulator() as emu:
            assert emu.running and emu.port != taken
            assert "address already in use" in emu.log_tail()
            create_bucket(emu.client())
