"""Shared fixtures. The Cloud Storage ones start a real local emulator
(``tests/support/emulators.py``).

* ``gcs_emulator`` (session): one fake-gcs-server for the whole run, stopped at the end.
* ``gcs_client``: a new ``google.cloud.storage.Client`` bound to it (anonymous, test-project).
* ``gcs_bucket``: a fresh, uniquely named bucket with object versioning on.
* ``gcs_env``: ``STORAGE_EMULATOR_HOST`` (and the project) set, so production code that builds
  a plain ``storage.Client()`` talks to the emulator. Returns the emulator's URL.
* ``own_gcs_emulator``: a private emulator for tests that stop or restart it (outages), so the
  shared one never goes down under other tests.

Pass ``retry=short_retry()`` and ``timeout=CALL_TIMEOUT`` (from ``emulators``) to storage calls
in tests: the library's default retry would wait about 2 minutes on a dead emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from emulators import (
    EMULATOR_ENV_VAR,
    PROJECT,
    EmulatorUnavailableError,
    GCSEmulator,
    create_bucket,
)

if TYPE_CHECKING:
    from google.cloud import storage


def _started(emu: GCSEmulator) -> GCSEmulator:
    try:
        return emu.start()
    except EmulatorUnavailableError as exc:  # only "no binary for this OS/arch": not a failure
        emu.close()
        pytest.skip(f"Cloud Storage emulator cannot run on this platform: {exc}")


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GCSEmulator]:
    emu = _started(GCSEmulator())
    try:
        yield emu
    finally:
        emu.close()


@pytest.fixture
def own_gcs_emulator() -> Iterator[GCSEmulator]:
    emu = _started(GCSEmulator())
    try:
        yield emu
    finally:
        emu.close()


@pytest.fixture
def gcs_client(gcs_emulator: GCSEmulator) -> storage.Client:
    if not gcs_emulator.running:  # a test stopped the shared one: bring it back (empty)
        gcs_emulator.restart()
    return gcs_emulator.client()


@pytest.fixture
def gcs_bucket(gcs_client: storage.Client) -> storage.Bucket:
    return create_bucket(gcs_client, versioning=True)


@pytest.fixture
def gcs_env(gcs_emulator: GCSEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    if not gcs_emulator.running:
        gcs_emulator.restart()
    monkeypatch.setenv(EMULATOR_ENV_VAR, gcs_emulator.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    return gcs_emulator.url


@pytest.fixture(scope="session")
def bq_emulator():
    """One bqemulator (real BigQuery REST API over DuckDB) for the whole run."""
    from emulators import BigQueryEmulator

    emu = BigQueryEmulator()
    try:
        yield emu.start()
    finally:
        emu.close()


@pytest.hookimpl(tryfirst=True)  # before `-m drills` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the drills registered in ``tests/support/drill_registry.py`` (tests that existed before
    the drills were named as a set) with ``drills``."""
    from drill_registry import is_drill

    for item in items:
        if is_drill(item.nodeid):
            item.add_marker(pytest.mark.drills)
