"""The serving model: loaded from the artifact store once per instance, refreshed in the
background, never half-loaded.

``predict`` reads the layout :mod:`irt.store` writes: ``<prefix>/LATEST`` names a version,
``<prefix>/<version>/model.json`` is its model.  :class:`ModelCache` keeps the model that
serves; a new version replaces it only once it has been downloaded, validated
(:func:`irt.engine.artifact.load_model`), warmed (:func:`irt.serving.api.warm`) and has
answered the canary answers of ``prepare``'s canary (:func:`irt.serving.probe.probe`), with a
single assignment, so a request in flight keeps the model it started with.

What goes wrong is logged at ERROR with an ``event`` that a Terraform log-based metric counts
(``terraform/irt/monitoring.tf``): ``model_rejected`` (a new version failed validation or the
canary answers; the old one keeps serving), ``model_fetch_failed`` (the pointer or the model
could not be read, after the store client's own retries) and ``model_behind`` (the version
serving has not been the one ``LATEST`` names since a check at least ``refresh_seconds``
ago, with ``seconds_behind``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from irt.engine.artifact import MAX_MODEL_BYTES, MAX_MODEL_ITEMS, load_model
from irt.engine.model import ItemModel
from irt.errors import ModelFormatError, StoreError
from irt.serving.api import warm
from irt.serving.probe import probe
from irt.serving.requests import Limits
from irt.store import VERSION_PATTERN

#: An invalid model is read again after this long, doubling on each failure up to
#: :data:`REJECTED_BACKOFF_MAX_SECONDS` (a bad read, or an object fixed in place, must not
#: keep a version out for the life of the instance).
REJECTED_BACKOFF_SECONDS = 5.0
REJECTED_BACKOFF_MAX_SECONDS = 300.0


class ModelSource(Protocol):
    """What the cache reads from a store (:class:`irt.store.LocalStore`,
    :class:`irt.store.GCSStore`)."""

    location: str

    def read_pointer(self) -> tuple[str | None, object]:
        """``(version named by LATEST or None, token)``."""

    def get(self, version: str, name: str) -> bytes | None:
        """One artifact's bytes, ``None`` if absent."""


class ModelCache:
    """The serving model, loaded once per instance and refreshed in the background.

    When a check is due, :meth:`current` starts one background thread (never more than one at
    a time) that re-reads the pointer; a new version is downloaded, validated and swapped in
    with a single assignment.  While that thread runs, a request waits for it at most
    ``wait_seconds`` before it answers with the cached model: Cloud Run allocates an instance
    CPU only while it serves requests (https://cloud.google.com/run/docs/configuring/billing-settings;
    "avoid background activities", https://cloud.google.com/run/docs/tips/general), so a
    refresh left to run after the response would stall until traffic came back.  Waiting in
    the request keeps an unchanged pointer's check inside the request that found it due, and
    gives a new model's load the CPU of the requests that follow, ``wait_seconds`` each at
    most; a storage outage costs a request at most ``wait_seconds``.  A storage error keeps
    the cached model; an invalid model, or one whose canary answers fail, is rejected and the
    cached one kept, and the version is read again after :data:`REJECTED_BACKOFF_SECONDS`,
    doubling per failure up to :data:`REJECTED_BACKOFF_MAX_SECONDS`.  :meth:`load` does the
    same synchronously (cold start).

    Args:
        source: the store to read.
        limits: the request caps the model is warmed for.
        refresh_seconds: re-read the pointer at most this often while a model serves.
        retry_seconds: while no model is loaded, retry at most this often.
        wait_seconds: how long a request waits for a refresh in flight (0: never).
        max_model_bytes, max_model_items: a ``model.json`` over either cap is rejected
            like an invalid one (ERROR ``model rejected``, the cached model keeps serving).
        log: where the ``model loaded`` / ``model rejected`` / ``model refresh failed`` /
            ``model behind LATEST`` lines go (their fields, ``event`` among them, in
            ``extra={"fields": ...}``).
    """

    def __init__(self, source: ModelSource, limits: Limits, refresh_seconds: float,
                 retry_seconds: float, log: logging.Logger, wait_seconds: float = 0.0,
                 max_model_bytes: int = MAX_MODEL_BYTES,
                 max_model_items: int = MAX_MODEL_ITEMS) -> None:
        self.max_model_bytes = max_model_bytes
        self.max_model_items = max_model_items
        self.source = source
        self.limits = limits
        self.refresh_seconds = refresh_seconds
        self.retry_seconds = retry_seconds
        self.log = log
        self._current: tuple[ItemModel, str] | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()
        self._rejected: dict[str, tuple[float, int]] = {}  # version: (retry at, failures)
        self.wait_seconds = wait_seconds
        self._thread: threading.Thread | None = None
        #: When a check first found the serving version behind LATEST (None: it is not).
        self._behind_since: float | None = None

    @property
    def loaded(self) -> tuple[ItemModel, str] | None:
        """The serving ``(model, version)`` without scheduling a check (for log lines)."""
        return self._current

    def current(self) -> tuple[ItemModel, str] | None:
        """The serving ``(model, version)``, or ``None`` before any model loaded; starts a
        background refresh when one is due and waits for one in flight up to
        ``wait_seconds``."""
        if time.monotonic() >= self._next_check and self._lock.acquire(blocking=False):
            self._thread = threading.Thread(target=self._refresh_and_release,
                                            name="model-refresh", daemon=True)
            self._thread.start()
        thread = self._thread
        if self.wait_seconds > 0 and thread is not None and thread.is_alive():
            thread.join(self.wait_seconds)
        return self._current

    def start_background(self) -> None:
        """Also check the store in a background thread of this process, every
        ``refresh_seconds`` whether or not requests come, so that an idle instance swaps a
        published version in within ``refresh_seconds`` plus the time to fetch, validate and
        warm it (issue 17, item 10); requests then find it loaded.  Without it, a check
        starts only when a request finds one due, and that request and those that follow for
        the load's duration (beyond ``wait_seconds``) still get the old version.

        Call it in each serving process after the server forks (``main.py`` registers it with
        :func:`os.register_at_fork`): threads do not survive a fork.  The lock is made anew,
        in case a thread of the parent held it at the fork.  Where the platform gives an idle
        instance no CPU (Cloud Run's request-based billing), the thread runs once requests
        come again, as the request path's checks do.  Not started when ``refresh_seconds``
        is 0 (every request checks).
        """
        if self.refresh_seconds <= 0:
            return
        self._lock = threading.Lock()
        self._thread = None
        threading.Thread(target=self._background, name="model-refresh-timer",
                         daemon=True).start()

    def _background(self) -> None:
        while True:
            delay = self._next_check - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif self._lock.acquire(blocking=False):
                self._refresh_and_release()
            else:  # a request's refresh is in flight: look again shortly
                time.sleep(min(0.05, self.refresh_seconds))

    def load(self) -> tuple[ItemModel, str] | None:
        """Refresh now (blocking) and return the serving ``(model, version)`` or ``None``."""
        with self._lock:
            self._refresh()
        return self._current

    def _refresh_and_release(self) -> None:
        try:
            self._refresh()
        finally:
            self._lock.release()

    def _say(self, level: int, message: str, **fields: object) -> None:
        self.log.log(level, message, extra={"fields": fields})

    def _refresh(self) -> None:
        current = self._current
        latest: str | None = None
        try:
            version = latest = self._pointer()
            if current is not None and version == current[1]:
                self._behind_since = None
                self._schedule(ok=True)
                return
            if time.monotonic() < self._rejected.get(version, (0.0, 0))[0]:
                self._schedule(ok=True)  # rejected: read again after its back-off
                return
            text = self.source.get(version, "model.json")
            if text is None:
                raise StoreError(f"{version}/model.json is missing", "model.json")
            try:
                model = load_model(text, max_bytes=self.max_model_bytes,
                                   max_items=self.max_model_items)
            except ModelFormatError as exc:
                self._reject(version, "invalid artifact", str(exc), current)
                return
            if not model.version:
                model.version = version
            try:
                warm(model, self.limits)  # the EAP table and lookups, before it serves
                _, problems = probe(model, version)  # the canary answers prepare's asks
            except Exception as exc:  # the serving code failed on this model: not storage
                problems = [f"{type(exc).__name__}: {exc}"]
            if problems:
                self._reject(version, "canary answers failed", "; ".join(problems), current)
                return
            self._rejected.pop(version, None)
            self._current = (model, version)  # atomic swap
            self._behind_since = None
            self._say(logging.INFO, "model loaded", model_version=version,
                      n_items=model.n_items, model_type=model.model_type,
                      source=self.source.location,
                      previous_version=current[1] if current else None)
            self._schedule(ok=True)
        except Exception as exc:  # storage unreachable, missing object, bad pointer...
            # The store's client has already retried within its timeout.
            self._say(logging.ERROR, "model refresh failed, keeping the cached model"
                      if current else "no model could be loaded", event="model_fetch_failed",
                      error=f"{type(exc).__name__}: {exc}"[:500], source=self.source.location,
                      model_version=latest, serving_version=current[1] if current else None)
            self._schedule(ok=current is not None)
        finally:
            self._check_behind(latest)

    def _reject(self, version: str, reason: str, error: str,
                current: tuple[ItemModel, str] | None) -> None:
        """Keep ``current``, log ERROR ``model_rejected`` and read ``version`` again after
        the back-off."""
        failures = self._rejected.get(version, (0.0, 0))[1] + 1
        backoff = min(REJECTED_BACKOFF_SECONDS * 2 ** (failures - 1),
                      REJECTED_BACKOFF_MAX_SECONDS)
        self._rejected[version] = (time.monotonic() + backoff, failures)
        self._say(logging.ERROR, f"model rejected: {reason}, keeping the previous one",
                  event="model_rejected", model_version=version, reason=reason,
                  error=error[:500], serving_version=current[1] if current else None,
                  failures=failures, retry_in_seconds=backoff)
        self._schedule(ok=current is not None)

    def _check_behind(self, latest: str | None) -> None:
        """After a check: when the model serving is not the one ``LATEST`` names (or
        ``LATEST`` could not be read), and has not been since a check at least
        ``refresh_seconds`` ago, log ERROR ``model_behind``."""
        now = self._current
        if now is not None and latest is not None and now[1] == latest:
            self._behind_since = None
            return
        checked = time.monotonic()
        if self._behind_since is None:
            self._behind_since = checked
            return
        behind = checked - self._behind_since
        if behind >= self.refresh_seconds:
            self._say(logging.ERROR, "model behind LATEST: the version serving is not the "
                      "published one", event="model_behind", seconds_behind=round(behind, 1),
                      serving_version=now[1] if now else None, latest_version=latest,
                      refresh_seconds=self.refresh_seconds)

    def _pointer(self) -> str:
        """The version ``LATEST`` names.

        Raises:
            StoreError: no pointer yet.
            ModelFormatError: the pointer names an invalid version id.
        """
        version, _ = self.source.read_pointer()
        if version is None:
            raise StoreError(f"no {self.source.location}/LATEST pointer yet", "LATEST")
        version = version.strip()
        if not VERSION_PATTERN.fullmatch(version):
            raise ModelFormatError(f"pointer names an invalid version {version[:40]!r}")
        return version

    def _schedule(self, ok: bool) -> None:
        delay = self.refresh_seconds if ok else self.retry_seconds
        self._next_check = time.monotonic() + delay
