"""``predict``'s configuration, read from the environment once at start and checked.

==============================  =========  =================================================
variable                        default    rule
==============================  =========  =================================================
``MODEL_BUCKET``                (none)     Cloud Storage bucket of ``<MODEL_PREFIX>/LATEST``
                                           and ``<MODEL_PREFIX>/<version>/model.json``
``MODEL_DIR``                   see below  the same layout in a directory (without a bucket)
``MODEL_PREFIX``                models     letters, digits, ``-``, ``_`` and ``/``
``MODEL_REFRESH_SECONDS``       60         re-read the pointer at most this often, 0-86400
``MODEL_RETRY_SECONDS``         5          without a model, retry this often, 0-3600
``MODEL_REFRESH_WAIT_SECONDS``  0.25       a request waits this long for a due refresh, 0-5
                                           (Cloud Run gives CPU only while requests run)
``STORAGE_TIMEOUT_SECONDS``     2          per storage call, retries included, 0.01-300
``MAX_BODY_BYTES``              1048576    request body, 1 - 33554432 (Cloud Run's 32 MiB)
``MAX_RESPONSES``               1000       answers per student, 1-100000
``MAX_ITEMS``                   5000       requested items per student, 1-1000000
``MAX_STUDENTS``                100        students per batch, 1-10000
``MAX_K``                       100        next items per request, 1-10000
``MAX_PROBABILITIES``           262144     probabilities in one predict response, summed
                                           over its students (a student without ``items``
                                           asks for every item of the model), 1-10000000
``MAX_MODEL_ITEMS``             200000     items in a model; a larger one is rejected (ERROR
                                           ``model rejected``, the old one keeps serving),
                                           1-10000000
``MAX_MODEL_BYTES``             67108864   bytes of ``model.json``, checked before parsing,
                                           1-1073741824
``TRUNCATE_RESPONSES``          none       ``none`` or ``oldest``: what a request without
                                           ``truncate`` does with more than ``MAX_RESPONSES``
                                           answers - refuse it (413) or keep the most recent
                                           (``dropped_responses`` says how many were left out)
``PROJECT_ID``                  (none)     the Google Cloud project, to write a request's
                                           trace as ``projects/<id>/traces/<trace>`` in the
                                           log line (``logging.googleapis.com/trace``)
==============================  =========  =================================================

Exceeding a ``MAX_*`` cap is a 413.  A value that breaks its rule raises
:class:`irt.errors.ConfigError` naming the variable: ``functions/predict/main.py`` logs it
and stops the instance from starting, so a bad revision never serves (the previous one
keeps serving).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from irt.engine.artifact import MAX_MODEL_BYTES, MAX_MODEL_ITEMS
from irt.errors import ConfigError
from irt.serving.requests import Limits
from irt.settings import env_float, env_int

#: Cloud Run's largest request body (32 MiB).
MAX_BODY_LIMIT = 32 << 20


@dataclass(frozen=True)
class PredictConfig:
    """``predict``'s settings (see the module docstring for each variable's rule).

    Attributes:
        bucket: ``MODEL_BUCKET``, or ``None`` to read ``model_dir``.
        model_dir: ``MODEL_DIR`` (used when ``bucket`` is ``None``).
        prefix: ``MODEL_PREFIX`` without surrounding slashes.
        refresh_seconds: ``MODEL_REFRESH_SECONDS``.
        retry_seconds: ``MODEL_RETRY_SECONDS``.
        refresh_wait_seconds: ``MODEL_REFRESH_WAIT_SECONDS``.
        storage_timeout_seconds: ``STORAGE_TIMEOUT_SECONDS``.
        max_body_bytes: ``MAX_BODY_BYTES``.
        limits: the request caps ``MAX_RESPONSES``, ``MAX_ITEMS``, ``MAX_STUDENTS``,
            ``MAX_K``, ``MAX_PROBABILITIES``, and ``TRUNCATE_RESPONSES``.
        project_id: ``PROJECT_ID`` (else ``GOOGLE_CLOUD_PROJECT``), or ``None``.
        max_model_items: ``MAX_MODEL_ITEMS``.
        max_model_bytes: ``MAX_MODEL_BYTES``.
    """

    bucket: str | None
    model_dir: str
    prefix: str = "models"
    refresh_seconds: float = 60.0
    retry_seconds: float = 5.0
    refresh_wait_seconds: float = 0.25
    storage_timeout_seconds: float = 2.0
    max_body_bytes: int = 1 << 20
    limits: Limits = field(default_factory=Limits)
    project_id: str | None = None
    max_model_items: int = MAX_MODEL_ITEMS
    max_model_bytes: int = MAX_MODEL_BYTES

    @property
    def retry_after_seconds(self) -> int:
        """The ``Retry-After`` of a 503 while no model is loaded (whole seconds, at least 1)."""
        return max(1, int(self.retry_seconds))

    @classmethod
    def from_env(cls, env: Mapping[str, str], default_model_dir: str) -> PredictConfig:
        """Read and check the configuration.

        Args:
            env: the environment (``os.environ``).
            default_model_dir: ``MODEL_DIR`` when it is unset.

        Raises:
            ConfigError: naming the first variable that breaks its rule.
        """
        prefix = (env.get("MODEL_PREFIX") or "models").strip("/")
        if not all(part and part.replace("-", "").replace("_", "").isalnum()
                   for part in prefix.split("/")):
            raise ConfigError("letters, digits, '-', '_' and '/' only", "MODEL_PREFIX")
        defaults = Limits()
        limits = Limits(
            max_responses=env_int(env, "MAX_RESPONSES", defaults.max_responses, 1, 100_000),
            max_items=env_int(env, "MAX_ITEMS", defaults.max_items, 1, 1_000_000),
            max_students=env_int(env, "MAX_STUDENTS", defaults.max_students, 1, 10_000),
            max_k=env_int(env, "MAX_K", defaults.max_k, 1, 10_000),
            max_probabilities=env_int(env, "MAX_PROBABILITIES", defaults.max_probabilities,
                                      1, 10_000_000),
            truncate=_truncate(env))
        return cls(
            bucket=(env.get("MODEL_BUCKET") or "").strip() or None,
            model_dir=env.get("MODEL_DIR") or default_model_dir,
            prefix=prefix,
            refresh_seconds=env_float(env, "MODEL_REFRESH_SECONDS", 60.0, 0.0, 86_400.0),
            retry_seconds=env_float(env, "MODEL_RETRY_SECONDS", 5.0, 0.0, 3_600.0),
            refresh_wait_seconds=env_float(env, "MODEL_REFRESH_WAIT_SECONDS", 0.25, 0.0, 5.0),
            storage_timeout_seconds=env_float(env, "STORAGE_TIMEOUT_SECONDS", 2.0, 0.01,
                                              300.0),
            max_body_bytes=env_int(env, "MAX_BODY_BYTES", 1 << 20, 1, MAX_BODY_LIMIT),
            limits=limits,
            max_model_items=env_int(env, "MAX_MODEL_ITEMS", MAX_MODEL_ITEMS, 1, 10_000_000),
            max_model_bytes=env_int(env, "MAX_MODEL_BYTES", MAX_MODEL_BYTES, 1, 1 << 30),
            project_id=(env.get("PROJECT_ID") or env.get("GOOGLE_CLOUD_PROJECT") or "").strip()
            or None)


def _truncate(env: Mapping[str, str]) -> bool:
    value = (env.get("TRUNCATE_RESPONSES") or "none").strip().lower()
    if value not in ("none", "oldest"):
        raise ConfigError("must be 'none' or 'oldest'", "TRUNCATE_RESPONSES")
    return value == "oldest"
