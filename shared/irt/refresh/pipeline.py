"""One scheduled refresh: answer log -> prepared answers -> model -> checks -> publish.

This is what the ``prepare`` Cloud Function runs (``functions/prepare/main.py``
is the HTTP shell around :func:`run_refresh`), and what ``make demo`` runs
locally on the embedded defaults.  Steps, each logged as one JSON line with the
run id:

1. read the pointer: the serving version, its model and its report;
2. check the source schema against the column mapping;
3. query the window (:mod:`irt.refresh.sql`, BigQuery or DuckDB) - kept answers and
   the rows each SQL step dropped;
4. :func:`irt.engine.preprocess.prepare_coded` on the Arrow columns (re-validation
   and the minimum-answer filters to their fixed point);
5. data validation (:func:`irt.refresh.quality.check_data`);
6. hold out the latest answers of a sample of students, calibrate on the rest;
7. the quality gate: new and serving models on the same held-out answers;
8. upload ``prepared.csv.gz``, ``model.json``, ``metrics.json`` and, last,
   ``report.json`` under ``models/<version>/``;
9. move ``models/LATEST`` (generation-match precondition), then mark the
   version ``PUBLISHED``.

Any failure stops the run before step 9: ``LATEST`` keeps naming the previous
complete model.  The version id is the window end and a digest of the
configuration and prepared data, so re-running the same window with the same
data produces the same version and, once it is published, does nothing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from irt import __version__
from irt.engine.artifact import load_model
from irt.engine.calibrate import FitConfig, Priors, fit
from irt.engine.learning import parse_options, skill_map
from irt.engine.model import MODEL_TYPES, ItemModel
from irt.engine.preprocess import prepare_coded
from irt.errors import ConfigError, ModelFormatError, PointerConflictError, SourceError, StoreError
from irt.refresh.monitoring import MonitorConfig, canary, run_checks
from irt.refresh.quality import (
    DataThresholds,
    GateConfig,
    check_data,
    gate,
    holdout_mask,
    holdout_scores,
    items_lost,
)
from irt.refresh.sources import AnswerSource, check_schema, fetch
from irt.refresh.sql import QueryParams, SourceColumns, drops_from_counts, parse_table
from irt.store import PUBLISHED, ArtifactStore

Log = Callable[..., None]


def json_log(severity: str, message: str, **fields: Any) -> None:
    """Write one Cloud Logging JSON line to stdout."""
    entry = {"severity": severity, "message": message, **fields}
    sys.stdout.write(json.dumps(entry, default=str) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- configuration
def _env_int(env: Mapping[str, str], key: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(key, "")
    if raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"must be an integer, got {raw!r}", key) from None
    if not lo <= value <= hi:
        raise ConfigError(f"must be between {lo} and {hi}, got {value}", key)
    return value


def _env_float(env: Mapping[str, str], key: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(key, "")
    if raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"must be a number, got {raw!r}", key) from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"must be between {lo} and {hi}, got {raw}", key)
    return value


def _env_pair(env: Mapping[str, str], key: str, default: tuple[float, float]
              ) -> tuple[float, float] | None:
    raw = env.get(key, "").strip()
    if raw == "":
        return default
    if raw.lower() == "none":
        return None
    try:
        first, second = (float(v) for v in raw.split(","))
    except ValueError:
        raise ConfigError(f"must be two numbers 'location,scale' or 'none', got {raw!r}", key
                          ) from None
    if not (math.isfinite(first) and math.isfinite(second) and second > 0):
        raise ConfigError(f"needs a finite location and a positive scale, got {raw!r}", key)
    return first, second


@dataclass(frozen=True)
class RefreshConfig:
    """Everything a refresh needs, read from the environment by :meth:`from_env`.

    Attributes:
        table: ``BQ_TABLE`` (``project.dataset.table``), or ``None`` for the local file.
        source_file: ``SOURCE_FILE``: a local CSV/Parquet log (used when no ``BQ_TABLE``).
        location: ``BQ_LOCATION``, the BigQuery job location.
        columns: ``COLUMN_STUDENT``, ``COLUMN_ITEM``, ``COLUMN_CORRECT``,
            ``COLUMN_ANSWERED_AT``, ``COLUMN_SKILL``.
        model_type: ``MODEL_TYPE``: rasch, 1pl, 2pl (default) or 3pl.
        window_days: ``WINDOW_DAYS``: the window is the last N days (default 365).
        max_answers_per_item: ``MAX_ANSWERS_PER_ITEM`` (default 5000): the cap.
        min_answers_per_item: ``MIN_ANSWERS_PER_ITEM`` (default 10).
        min_answers_per_student: ``MIN_ANSWERS_PER_STUDENT`` (default 2).
        max_id_length: ``MAX_ID_LENGTH`` (default 256).
        prior_a: ``PRIOR_A``: lognormal prior on slopes as ``meanlog,sdlog``
            (default ``0,0.5``; ``none`` for plain maximum likelihood).
        prior_b: ``PRIOR_B``: normal prior on difficulties as ``mean,sd``
            (default ``0,2``).  LMS logs are sparse - most items have few
            answers - and without these priors EM chases the slopes and
            difficulties of nearly separable items for hundreds of cycles; they
            are the settings ``python -m irt evaluate`` measures with.
        data: ``DATA_MIN_ANSWERS``, ``DATA_MAX_INVALID_SHARE``,
            ``DATA_MIN_ROW_RATIO``, ``DATA_MAX_ROW_RATIO``, ``DATA_MAX_ITEMS_LOST``.
        gate: ``GATE_HOLDOUT_STUDENTS``, ``GATE_HOLDOUT_MAX_STUDENTS``,
            ``GATE_HOLDOUT_LAST``, ``GATE_MAX_AUC_DROP``,
            ``GATE_MAX_LOGLOSS_RISE``, ``GATE_MIN_AUC``.
        bucket: ``MODEL_BUCKET``; ``model_dir``: ``MODEL_DIR`` (used when no bucket).
        prefix: ``MODEL_PREFIX`` (default ``models``).
        monitoring: ``MONITOR_*`` thresholds of :mod:`irt.refresh.monitoring` (not part of the
            version digest: they judge a model, they do not shape it).
        model_options: ``MODEL_OPTIONS``: learning-aware options of :mod:`irt.engine.learning`,
            comma-separated ``recency``, ``skills``, ``pfa`` (default none: the plain
            model).  ``skills`` and ``pfa`` need ``COLUMN_SKILL``; all need ``MODEL_TYPE``
            2pl.  Calibrated by :func:`irt.engine.learning_fit.fit_learning` on the training
            answers after the plain fit, stored in the artifact's ``options``, gated with
            the same online protocol and served by ``predict``.
        recency_decay: ``RECENCY_DECAY`` (default 0.95): weight per later answer (recency).
        pfa_window: ``PFA_WINDOW`` (default 10): answers in the covariates' recent window.
    """

    table: str | None = None
    source_file: str | None = None
    location: str | None = None
    columns: SourceColumns = field(default_factory=SourceColumns)
    model_type: str = "2pl"
    window_days: int = 365
    max_answers_per_item: int = 5000
    min_answers_per_item: int = 10
    min_answers_per_student: int = 2
    max_id_length: int = 256
    prior_a: tuple[float, float] | None = (0.0, 0.5)
    prior_b: tuple[float, float] | None = (0.0, 2.0)
    data: DataThresholds = field(default_factory=DataThresholds)
    gate: GateConfig = field(default_factory=GateConfig)
    bucket: str | None = None
    model_dir: str | None = None
    prefix: str = "models"
    monitoring: MonitorConfig = field(default_factory=MonitorConfig)
    model_options: tuple[str, ...] = ()
    recency_decay: float = 0.95
    pfa_window: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RefreshConfig:
        """Read and validate the configuration.

        Raises:
            ConfigError: naming the variable and the rule it breaks.
        """
        env = os.environ if env is None else env
        table = env.get("BQ_TABLE") or None
        if table:
            parse_table(table)
        source_file = env.get("SOURCE_FILE") or None
        if not table and not source_file:
            raise ConfigError("set BQ_TABLE (or SOURCE_FILE for a local log)", "BQ_TABLE")
        bucket = env.get("MODEL_BUCKET") or None
        model_dir = env.get("MODEL_DIR") or None
        if not bucket and not model_dir:
            raise ConfigError("set MODEL_BUCKET (or MODEL_DIR for local runs)", "MODEL_BUCKET")
        model_type = (env.get("MODEL_TYPE") or "2pl").lower()
        if model_type not in MODEL_TYPES:
            raise ConfigError(f"must be one of {', '.join(MODEL_TYPES)}", "MODEL_TYPE")
        prefix = env.get("MODEL_PREFIX") or "models"
        if not all(part and part.replace("-", "").replace("_", "").isalnum()
                   for part in prefix.split("/")):
            raise ConfigError("letters, digits, '-', '_' and '/' only", "MODEL_PREFIX")
        columns = SourceColumns(
            student=env.get("COLUMN_STUDENT") or "student_id",
            item=env.get("COLUMN_ITEM") or "item_id",
            correct=env.get("COLUMN_CORRECT") or "correct",
            answered_at=env.get("COLUMN_ANSWERED_AT") or "answered_at",
            skill=env.get("COLUMN_SKILL") or None,
        )
        try:
            model_options = parse_options(env.get("MODEL_OPTIONS"))
        except ValueError as exc:
            raise ConfigError(str(exc), "MODEL_OPTIONS") from None
        if model_options and model_type != "2pl":
            raise ConfigError("learning-aware options need MODEL_TYPE=2pl", "MODEL_OPTIONS")
        if {"skills", "pfa"} & set(model_options) and not columns.skill:
            raise ConfigError("options 'skills' and 'pfa' need COLUMN_SKILL "
                              "(the item -> skill map is learned from it)", "MODEL_OPTIONS")
        d, g = DataThresholds(), GateConfig()
        data = DataThresholds(
            min_answers=_env_int(env, "DATA_MIN_ANSWERS", d.min_answers, 1, 10**12),
            max_invalid_share=_env_float(env, "DATA_MAX_INVALID_SHARE", d.max_invalid_share,
                                         0, 1),
            min_row_ratio=_env_float(env, "DATA_MIN_ROW_RATIO", d.min_row_ratio, 0, 1),
            max_row_ratio=_env_float(env, "DATA_MAX_ROW_RATIO", d.max_row_ratio, 1, 1e6),
            max_items_lost=_env_float(env, "DATA_MAX_ITEMS_LOST", d.max_items_lost, 0, 1),
        )
        gate_config = GateConfig(
            holdout_students=_env_float(env, "GATE_HOLDOUT_STUDENTS", g.holdout_students,
                                        1e-6, 1),
            holdout_max_students=_env_int(env, "GATE_HOLDOUT_MAX_STUDENTS",
                                          g.holdout_max_students, 1, 10**7),
            holdout_last=_env_float(env, "GATE_HOLDOUT_LAST", g.holdout_last, 0.01, 0.99),
            max_auc_drop=_env_float(env, "GATE_MAX_AUC_DROP", g.max_auc_drop, 0, 1),
            max_logloss_rise=_env_float(env, "GATE_MAX_LOGLOSS_RISE", g.max_logloss_rise, 0, 10),
            min_auc=_env_float(env, "GATE_MIN_AUC", g.min_auc, 0, 1),
        )
        return cls(
            table=table, source_file=source_file, location=env.get("BQ_LOCATION") or None,
            columns=columns, model_type=model_type,
            window_days=_env_int(env, "WINDOW_DAYS", 365, 1, 36500),
            max_answers_per_item=_env_int(env, "MAX_ANSWERS_PER_ITEM", 5000, 1, 10**9),
            min_answers_per_item=_env_int(env, "MIN_ANSWERS_PER_ITEM", 10, 1, 10**9),
            min_answers_per_student=_env_int(env, "MIN_ANSWERS_PER_STUDENT", 2, 1, 10**9),
            max_id_length=_env_int(env, "MAX_ID_LENGTH", 256, 1, 4096),
            prior_a=_env_pair(env, "PRIOR_A", (0.0, 0.5)),
            prior_b=_env_pair(env, "PRIOR_B", (0.0, 2.0)),
            data=data, gate=gate_config, bucket=bucket, model_dir=model_dir, prefix=prefix,
            monitoring=MonitorConfig.from_env(env), model_options=model_options,
            recency_decay=_env_float(env, "RECENCY_DECAY", 0.95, 0.01, 0.9999),
            pfa_window=_env_int(env, "PFA_WINDOW", 10, 1, 10_000),
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready settings that shape the model (part of the version digest)."""
        out = asdict(self)
        out["columns"] = self.columns.required()
        for key in ("bucket", "model_dir", "source_file", "location", "monitoring"):
            out.pop(key)
        if not self.model_options:  # a plain model: the digest of the plain settings only
            for key in ("model_options", "recency_decay", "pfa_window"):
                out.pop(key)
        return out


@dataclass(frozen=True)
class RunOptions:
    """Per-run overrides an operator may send in the request body.

    Attributes:
        force: publish even if data validation or the quality gate fails
            (recorded as decision ``forced``).
        dry_run: do everything but move ``LATEST``.
        window_end: end of the window (default: now, floored to the hour, so
            retries within the hour see the same window).
        window_days: window length override.
        model_type: model type override.
    """

    force: bool = False
    dry_run: bool = False
    window_end: datetime | None = None
    window_days: int | None = None
    model_type: str | None = None

    FIELDS = ("force", "dry_run", "window_end", "window_days", "model_type")

    @classmethod
    def from_json(cls, body: Any) -> RunOptions:
        """Validate a request body.

        Raises:
            ConfigError: naming the field and the rule (unknown fields included).
        """
        if body is None:
            return cls()
        if not isinstance(body, dict):
            raise ConfigError("must be a JSON object", "body")
        for key in body:
            if key not in cls.FIELDS:
                raise ConfigError(f"unknown field; allowed: {', '.join(cls.FIELDS)}", str(key)[:64])
        out: dict[str, Any] = {}
        for key in ("force", "dry_run"):
            if key in body:
                if not isinstance(body[key], bool):
                    raise ConfigError("must be true or false", key)
                out[key] = body[key]
        if "window_end" in body:
            raw = body["window_end"]
            try:
                if not isinstance(raw, str) or len(raw) > 40:
                    raise ValueError
                end = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                raise ConfigError("must be an RFC 3339 timestamp with a time "
                                  "zone, e.g. 2026-11-28T00:00:00Z", "window_end") from None
            if end.tzinfo is None:
                raise ConfigError("must include a time zone (e.g. Z)", "window_end")
            out["window_end"] = end.astimezone(UTC)
        if "window_days" in body:
            v = body["window_days"]
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 36500:
                raise ConfigError("must be an integer between 1 and 36500", "window_days")
            out["window_days"] = v
        if "model_type" in body:
            v = body["model_type"]
            if not isinstance(v, str) or v.lower() not in MODEL_TYPES:
                raise ConfigError(f"must be one of {', '.join(MODEL_TYPES)}", "model_type")
            out["model_type"] = v.lower()
        return cls(**out)


# --------------------------------------------------------------------------- the run
@dataclass
class RunResult:
    """What a run did.

    Attributes:
        status: HTTP status for the scheduler: 200 published or unchanged or
            dry run; 409 lost the pointer race; 422 data or gate rejected the
            model; 500 internal error; 503 source or store unavailable.
        body: JSON-ready summary (also the last log line).
    """

    status: int
    body: dict[str, Any]


class _StopError(Exception):
    """Ends a run early with an HTTP status, a status code and a message."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def _floor_hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _encode(column: Any) -> tuple[np.ndarray, list[Any]]:
    """Dictionary-encode an Arrow string column with a *sorted* dictionary.

    Returns ``(int32 codes, -1 for null; dictionary in ascending order)``: the code
    order is the id order, whatever order the engine returned the rows in, so
    sorting by codes is sorting by ids - without comparing strings row by row.
    """
    import pyarrow.compute as pc

    arr = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    enc = arr.dictionary_encode()
    order = pc.array_sort_indices(enc.dictionary).to_numpy()
    rank = np.empty(order.shape[0] + 1, dtype=np.int32)
    rank[order] = np.arange(order.shape[0])
    rank[-1] = -1  # null (-1) indexes the last slot
    codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)
    return rank[codes], enc.dictionary.take(order).to_pylist()


def _answer_order(student: np.ndarray, times_us: Any, item: np.ndarray) -> np.ndarray:
    """The permutation that sorts answers by student, time (missing last), item.

    Arrow's multi-key sort: the same order as ``np.lexsort((item, seconds,
    student))``, ten times faster on 10M answers (0.5 s against 6 s).

    Args:
        student: int32 student codes.
        times_us: answer times as an Arrow int64 array of epoch microseconds (null
            = missing).
        item: int32 item codes.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = pa.table({"s": student, "t": times_us, "i": item})
    return pc.sort_indices(keys, sort_keys=[
        ("s", "ascending", "at_end"), ("t", "ascending", "at_end"),
        ("i", "ascending", "at_end")]).to_numpy()


def _epoch_us(seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(integer microseconds, 0 where missing; the NaN mask)``."""
    missing = np.isnan(seconds)
    return np.round(np.where(missing, 0, seconds) * 1e6).astype(np.int64), missing


@functools.cache
def _clock_text() -> Any:
    """``HH:MM:SS`` for every second of a day, as a pyarrow array (built once)."""
    import pyarrow as pa

    t = np.arange(86_400)
    return pa.array([f"{h:02d}:{m:02d}:{x:02d}" for h, m, x in
                     zip((t // 3600).tolist(), (t // 60 % 60).tolist(), (t % 60).tolist(),
                         strict=True)])


def _iso_utc(seconds: np.ndarray, fraction: bool | None = None) -> Any:
    """Epoch seconds (NaN = missing) as RFC 3339 UTC text, e.g. ``2026-10-27T16:57:18Z``.

    Seven times faster than Arrow's timestamp formatting (which the CSV writer
    uses): the date and the time of day are looked up in small dictionaries of
    pre-formatted text (one entry per day of the data's span, one per second
    of a day) and joined.

    Args:
        seconds: epoch seconds, NaN where the time is missing.
        fraction: write microseconds (``.ffffff``) on every row; ``None``: when
            some value has them.  One choice for a whole file keeps the text
            sorting in time order.

    Returns:
        a ``pyarrow.StringArray``, null where ``seconds`` is NaN.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    us, missing = _epoch_us(seconds)
    whole, frac = np.divmod(us, 1_000_000)
    if fraction is None:
        fraction = bool(frac.any())
    day, tod = np.divmod(whole, 86_400)
    first = int(day.min()) if day.size else 0
    span = int(day.max()) - first + 1 if day.size else 1
    if span > 200_000:  # a span of centuries: not worth a dictionary
        # Arrow's %S carries the fraction of the timestamp's unit: us or whole s
        stamps = pa.array(us if fraction else whole,
                          pa.timestamp("us" if fraction else "s", tz="UTC"))
        text = pc.strftime(stamps, "%Y-%m-%dT%H:%M:%SZ")
    else:
        days = np.datetime_as_string(np.arange(first, first + span).astype("datetime64[D]"))
        day_text = pa.DictionaryArray.from_arrays(
            pa.array((day - first).astype(np.int32)), pa.array([d + "T" for d in days])
        ).cast(pa.string())
        tod_text = pa.DictionaryArray.from_arrays(pa.array(tod.astype(np.int32)),
                                                  _clock_text()).cast(pa.string())
        parts = [day_text, tod_text]
        if fraction:
            digits = pc.utf8_lpad(pa.array(frac).cast(pa.string()), width=6, padding="0")
            parts.append(pc.binary_join_element_wise(".", digits, ""))
        text = pc.binary_join_element_wise(*parts, "Z", "")
    if missing.any():
        text = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), text)
    return text


def _prepared_csv(responses: Any, answered_at: np.ndarray | None, held_out: np.ndarray,
                  chunk_rows: int = 1_000_000) -> bytes:
    """The prepared answers as gzip CSV bytes, built in memory.

    Columns ``student_id``, ``item_id``, ``correct`` (0/1), ``answered_at``
    (RFC 3339 UTC, see :func:`_iso_utc`; absent when the answers have no time)
    and ``holdout`` (1 = held out from the fit for the quality gate).

    Arrow writes the CSV in chunks of ``chunk_rows`` rows; each chunk is formatted
    and compressed (gzip level 1) on its own thread and the members concatenated -
    a multi-member gzip file, which gzip, zcat, Python, pandas and BigQuery read
    as one.  Level 1 and the threads make this ~5x faster than one level-6 stream
    at ~30 % more bytes.
    """
    import gzip
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.csv as pacsv

    students = pa.array(responses.student_ids, pa.string())
    items = pa.array(responses.item_ids, pa.string())
    n = responses.n_answers
    fraction = answered_at is not None and bool((_epoch_us(answered_at)[0] % 1_000_000).any())

    def piece(start: int) -> bytes:
        stop = min(start + chunk_rows, n)
        cols = {
            "student_id": pa.DictionaryArray.from_arrays(
                pa.array(responses.student[start:stop], pa.int32()), students).cast(pa.string()),
            "item_id": pa.DictionaryArray.from_arrays(
                pa.array(responses.item[start:stop], pa.int32()), items).cast(pa.string()),
            "correct": pa.array(responses.correct[start:stop], pa.int8()),
        }
        if answered_at is not None:
            cols["answered_at"] = _iso_utc(answered_at[start:stop], fraction)
        cols["holdout"] = pa.array(held_out[start:stop].astype(np.int8), pa.int8())
        sink = pa.BufferOutputStream()
        pacsv.write_csv(pa.table(cols), sink,
                        write_options=pacsv.WriteOptions(include_header=start == 0))
        return gzip.compress(sink.getvalue(), compresslevel=1, mtime=0)

    starts = range(0, max(n, 1), chunk_rows)
    with ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1)) as pool:
        return b"".join(pool.map(piece, starts))


def _sample_students(responses: Any, limit: int = 1_000_000) -> Any:
    """At most about ``limit`` answers: every k-th student (whole answer patterns), k fixed by
    the size, so the monitoring challenger's fit stays bounded on any log."""
    if responses.n_answers <= limit:
        return responses
    k = math.ceil(responses.n_answers / limit)
    return responses.subset(responses.student % k == 0)


def _digest(config: dict[str, Any], window: tuple[datetime, datetime], responses: Any,
            held_out: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"config": config, "window": [w.isoformat() for w in window],
                         "code_version": __version__}, sort_keys=True, default=str).encode())
    for arr in (responses.student, responses.item, responses.correct, held_out):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update("\x1f".join(responses.student_ids).encode())
    h.update("\x1e".join(responses.item_ids).encode())
    return h.hexdigest()


def run_refresh(config: RefreshConfig, source: AnswerSource, store: ArtifactStore,
                options: RunOptions | None = None, log: Log = json_log,
                now: datetime | None = None) -> RunResult:
    """Run one refresh end to end; never raises.

    Args:
        config: the validated configuration.
        source: where the answer log is queried.
        store: where versions and the pointer live.
        options: per-run overrides.
        log: ``log(severity, message, **fields)``; every line carries ``run_id``.
        now: the clock (tests).

    Returns:
        The HTTP status and a JSON summary.
    """
    options = options or RunOptions()
    run_id = uuid.uuid4().hex[:12]
    started = time.perf_counter()
    summary: dict[str, Any] = {"run_id": run_id}

    def say(severity: str, message: str, **fields: Any) -> None:
        fields.pop("severity", None)
        fields.pop("message", None)
        log(severity, message, **{**fields, "run_id": run_id})

    try:
        body = _run(config, source, store, options, say, now or datetime.now(UTC), summary)
        status = 200
    except _StopError as stop:
        status = stop.status
        body = {**summary, "status": stop.code, "error": stop.message, **stop.extra}
    except Exception as exc:  # a bug must still end in a clear log line and a 500
        status = 500
        body = {**summary, "status": "internal_error",
                "error": f"{type(exc).__name__}: {exc}"}
        say("ERROR", "internal error (traceback attached)", event="internal_error",
            error=body["error"], traceback=traceback.format_exc())
    body["seconds"] = round(time.perf_counter() - started, 3)
    if status >= 300:
        say("ERROR", f"refresh failed: {body.get('error')}", event="refresh_failed",
            http_status=status, **{k: v for k, v in body.items() if k not in ("run_id",)})
    else:
        say("INFO", f"refresh finished: {body['status']}", event="refresh_finished", **{
            k: v for k, v in body.items() if k != "run_id"})
    return RunResult(status, body)


def _run(config: RefreshConfig, source: AnswerSource, store: ArtifactStore,
         options: RunOptions, say: Log, now: datetime, summary: dict[str, Any]
         ) -> dict[str, Any]:
    if options.model_type or options.window_days:
        config = replace(config, model_type=options.model_type or config.model_type,
                         window_days=options.window_days or config.window_days)
    window_end = options.window_end or _floor_hour(now)
    window_start = window_end - timedelta(days=config.window_days)
    summary.update(window_start=window_start.isoformat(), window_end=window_end.isoformat(),
                   model_type=config.model_type, source=source.description,
                   store=store.location, force=options.force, dry_run=options.dry_run)
    say("INFO", "refresh started", event="refresh_started", **summary)

    # 1. what serves now
    try:
        serving_version, token = store.read_pointer()
        serving_model: ItemModel | None = None
        previous_report: dict[str, Any] | None = None
        serving_report: dict[str, Any] | None = None
        serving_metrics: dict[str, Any] | None = None
        if serving_version:
            raw_model = store.get(serving_version, "model.json")
            raw_report = store.get(serving_version, "report.json")
            if raw_model is not None:
                try:
                    serving_model = load_model(raw_model)
                except ModelFormatError as exc:
                    say("WARNING", f"serving model {serving_version} is unreadable: {exc}; "
                        "the gate compares against nothing", event="serving_model_invalid")
            if raw_report is not None:
                serving_report = json.loads(raw_report)
                previous_report = serving_report.get("data")
            raw_metrics = store.get(serving_version, "metrics.json")
            if raw_metrics is not None:
                serving_metrics = json.loads(raw_metrics)
    except (StoreError, OSError, ValueError) as exc:
        raise _StopError(503, "store_unavailable", f"cannot read {store.location}: {exc}") from exc
    except Exception as exc:
        if _is_cloud_error(exc):
            raise _StopError(503, "store_unavailable",
                        f"cannot read {store.location}: {exc}") from exc
        raise
    summary["serving_version"] = serving_version

    # 2. schema
    try:
        problems = check_schema(source.schema(), config.columns)
    except SourceError as exc:
        raise _StopError(503, "source_unavailable", str(exc)) from exc
    if problems:
        raise _StopError(422, "invalid_schema", "; ".join(problems))

    # 3. query
    params = QueryParams(window_start, window_end, config.max_answers_per_item,
                         config.min_answers_per_item, config.min_answers_per_student,
                         config.max_id_length)
    t0 = time.perf_counter()
    try:
        table, counts = fetch(source, config.columns, params,
                              config.table or getattr(source, "table", "answers"))
        sql_drops = drops_from_counts(counts)
    except SourceError as exc:
        raise _StopError(503, "source_unavailable", str(exc)) from exc
    except ValueError as exc:
        raise _StopError(500, "source_inconsistent", str(exc)) from exc
    say("INFO", "query done", event="queried", rows_in=counts["rows_in"],
        rows_kept=counts["kept"], dropped=sql_drops, seconds=round(time.perf_counter() - t0, 3))

    # 4. prepare on the Arrow columns
    t0 = time.perf_counter()
    import pyarrow as pa
    import pyarrow.compute as pc

    s_codes, s_dict = _encode(table.column("student_id"))
    i_codes, i_dict = _encode(table.column("item_id"))
    skills = None  # the item -> skill map of the log, for the learning-aware options
    if {"skills", "pfa"} & set(config.model_options):
        k_codes, k_dict = _encode(table.column("skill_id"))
        skills = (skill_map(i_codes, k_codes, len(i_dict)), i_dict, k_dict)
        del k_codes
    # the SQL leaves 0, 1 or NULL: int8 with -1 for NULL (invalid_correct downstream)
    correct = pc.fill_null(table.column("correct"), -1).cast(pa.int8()).to_numpy()
    times_us = table.column("answered_at").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    seconds = pc.fill_null(times_us.cast(pa.float64()), float("nan")).to_numpy() / 1e6
    del table  # the columns now live in numpy; free the Arrow result
    # A deterministic order whatever order the engine returned (see _answer_order).
    # Permuted one array at a time, so at most one extra copy is alive.
    order = _answer_order(s_codes, times_us, i_codes)
    del times_us
    s_codes = s_codes[order]
    i_codes = i_codes[order]
    correct = correct[order]
    seconds = seconds[order]
    del order
    prepared = prepare_coded(
        s_codes, s_dict, i_codes, i_dict, correct, seconds,
        min_answers_per_item=config.min_answers_per_item,
        min_answers_per_student=config.min_answers_per_student,
        max_id_length=config.max_id_length)
    del s_codes, i_codes, correct, seconds
    rep = prepared.report
    dropped = {k: sql_drops.get(k, 0) + rep.dropped.get(k, 0)
               for k in (*sql_drops, *rep.dropped)}
    data_report = {"rows_in": counts["rows_in"], "rows_out": rep.rows_out, "dropped": dropped,
                   "n_students": rep.n_students, "n_items": rep.n_items}
    summary["data"] = data_report
    say("INFO", "answers prepared", event="prepared", **data_report,
        seconds=round(time.perf_counter() - t0, 3))

    # 5. data validation
    violations = check_data(data_report, config.data, previous_report)
    if rep.rows_out == 0:
        raise _StopError(422, "no_data", "no answers in the window after preparation",
                         data=data_report)
    if violations and not options.force:
        _write_rejection(store, config, window_start, window_end, run_id=summary["run_id"],
                         data=data_report, reasons=violations, now=now)
        raise _StopError(422, "invalid_data", "; ".join(violations))

    # 6. hold out, calibrate
    responses = prepared.responses
    order_key = prepared.answered_at if prepared.answered_at is not None else \
        np.arange(responses.n_answers, dtype=float)
    held_out = holdout_mask(responses.student, responses.student_ids, order_key, config.gate)
    train = responses.subset(~held_out)
    t0 = time.perf_counter()
    priors = Priors(a_lognormal=config.prior_a, b_normal=config.prior_b,
                    c_beta=Priors.recommended(config.model_type).c_beta)
    fit_config = FitConfig(model=config.model_type, priors=priors,
                           min_answers_per_item=config.min_answers_per_item)
    result = fit(train, fit_config)
    say("INFO", "model calibrated", event="calibrated", model_type=config.model_type,
        iterations=result.iterations, converged=result.converged,
        log_likelihood=result.log_likelihood,
        log_posterior_by_iteration=[round(v, 4) for v in result.history],
        n_items=result.model.n_items, excluded_items=len(result.model.excluded_items),
        train_answers=train.n_answers, holdout_answers=int(held_out.sum()),
        seconds=round(time.perf_counter() - t0, 3))
    new_model = result.model
    if config.model_options:  # 6b. the learning-aware options, on the same training answers
        new_model = _fit_learning(config, new_model, train, order_key[~held_out], skills,
                                  responses.item_ids, say)
    violations += items_lost(serving_model, new_model, config.data)

    # 7. quality gate
    t0 = time.perf_counter()
    item_ids = np.asarray(responses.item_ids, dtype=object)[responses.item]
    n_hold = int(held_out.sum())
    n_hold_students = int(np.unique(responses.student[held_out]).shape[0])
    new_scores = holdout_scores(new_model, responses.student, item_ids, responses.correct,
                                order_key, held_out) if n_hold else {}
    serving_scores = None
    if serving_model is not None and n_hold:
        serving_scores = holdout_scores(serving_model, responses.student, item_ids,
                                        responses.correct, order_key, held_out)
    verdict = gate(new_scores, serving_scores, config.gate, n_hold, n_hold_students)
    say("INFO" if verdict.passed else "WARNING", "quality gate " +
        ("passed" if verdict.passed else "failed"), event="gate", **verdict.to_dict(),
        seconds=round(time.perf_counter() - t0, 3))
    # 7b. monitoring (irt.refresh.monitoring): input drift, numerical stability, training/serving
    # skew, a simpler baseline, slices, the serving model on served data. Problems reject
    # the model as a failed gate does; alerts are logged for the monitoring alert policy.
    t0 = time.perf_counter()
    checks = run_checks(config.monitoring, new_model=new_model, history=result.history,
                        log_likelihood=result.log_likelihood, converged=result.converged,
                        responses=responses, answered_at=prepared.answered_at,
                        held_out=held_out, new_scores=new_scores or None,
                        serving_model=serving_model, serving_report=serving_report,
                        serving_metrics=serving_metrics,
                        holdout_last=config.gate.holdout_last, model_type=config.model_type,
                        fit_simpler=lambda kind: fit(_sample_students(train), replace(
                            fit_config, model=kind, compute_se=False, priors=replace(
                                priors, c_beta=Priors.recommended(kind).c_beta))).model)
    for alert in checks.alerts:
        say("WARNING", f"monitoring alert ({alert['check']}): {alert['message']}",
            event="monitoring_alert", check=alert["check"], detail=alert["message"])
    say("WARNING" if checks.problems else "INFO", "monitoring checks " +
        ("failed" if checks.problems else "passed"), event="monitoring",
        problems=checks.problems, **{k: v for k, v in checks.figures.items() if k != "config"},
        seconds=round(time.perf_counter() - t0, 3))
    reasons = violations + verdict.reasons + checks.problems

    # 8. version, artifacts
    config_summary = config.summary()
    digest = _digest(config_summary, (window_start, window_end), responses, held_out)
    version = f"{window_end:%Y%m%dT%H%M%SZ}-{digest[:10]}"
    summary["version"] = version
    names = store.versions().get(version, [])
    if version == serving_version or PUBLISHED in names:
        return {**summary, "status": "unchanged",
                "detail": f"{version} (same window, same data) was already published; "
                           "nothing written"}
    if reasons and not options.force:
        decision = "rejected"
    elif options.dry_run:
        decision = "dry_run"
    else:
        decision = "forced" if reasons else "accepted"
    new_model = replace(new_model, version=version, created_at=now.isoformat(),
                        data_summary={**new_model.data_summary, "prepare": data_report,
                                      "window_start": window_start.isoformat(),
                                      "window_end": window_end.isoformat()})
    metrics_doc = {"version": version, "serving_version": serving_version,
                   "gate": verdict.to_dict(), "data_violations": violations,
                   "gate_config": asdict(config.gate), "monitoring": checks.figures,
                   "monitoring_problems": checks.problems, "monitoring_alerts": checks.alerts}
    report_doc = {"version": version, "run_id": summary["run_id"], "created_at": now.isoformat(),
                  "decision": decision, "reasons": reasons, "serving_version": serving_version,
                  "window_start": window_start.isoformat(), "window_end": window_end.isoformat(),
                  "source": source.description, "config": config_summary, "data": data_report,
                  "fit": {"iterations": result.iterations, "converged": result.converged,
                          "log_likelihood": result.log_likelihood,
                          "n_items": new_model.n_items,
                          "excluded_items": len(new_model.excluded_items)},
                  "gate": verdict.to_dict(), "code_version": __version__,
                  "profile": checks.profile}
    t0 = time.perf_counter()
    try:
        csv_bytes = _prepared_csv(responses, prepared.answered_at, held_out)
        store.put(version, "prepared.csv.gz", csv_bytes, "application/gzip")
        store.put(version, "model.json", new_model.to_json().encode(), "application/json")
        store.put(version, "metrics.json", json.dumps(metrics_doc, indent=1).encode(),
                  "application/json")
        store.put(version, "report.json", json.dumps(report_doc, indent=1, default=str).encode(),
                  "application/json")
    except Exception as exc:
        if isinstance(exc, (StoreError, OSError)) or _is_cloud_error(exc):
            raise _StopError(503, "store_unavailable",
                        f"upload of {version} failed: {exc}; LATEST unchanged") from exc
        raise
    say("INFO", "artifacts written", event="artifacts_written", version=version,
        prepared_csv_bytes=len(csv_bytes), seconds=round(time.perf_counter() - t0, 3))
    summary.update(decision=decision, gate=verdict.to_dict())
    if decision != "rejected":
        # The canary: the stored artifact, loaded back, through the serving code.
        try:
            stored = store.get(version, "model.json") or b""
        except Exception as exc:
            if isinstance(exc, (StoreError, OSError)) or _is_cloud_error(exc):
                raise _StopError(503, "store_unavailable",
                                 f"cannot read back {version}/model.json: {exc}") from exc
            raise
        canary_figures, canary_problems = canary(stored, new_model, version)
        say("ERROR" if canary_problems else "INFO", "canary " +
            ("failed" if canary_problems else "passed"), event="canary", version=version,
            problems=canary_problems, **canary_figures)
        if canary_problems:
            raise _StopError(422, "canary_failed", "; ".join(canary_problems), version=version,
                             decision=decision)
    if decision == "rejected":
        raise _StopError(422, "rejected", "; ".join(reasons), version=version, decision=decision,
                    gate=verdict.to_dict())
    if decision == "dry_run":
        return {**summary, "status": "dry_run", "reasons": reasons}

    # 9. publish
    try:
        store.move_pointer(version, token)
    except PointerConflictError as exc:
        raise _StopError(409, "pointer_conflict",
                    f"{exc}; another run or a rollback published first. {version} is "
                    "complete but not serving", version=version) from exc
    except Exception as exc:
        if isinstance(exc, (StoreError, OSError)) or _is_cloud_error(exc):
            raise _StopError(503, "store_unavailable", f"pointer move failed: {exc}") from exc
        raise
    try:
        store.put(version, PUBLISHED, now.isoformat().encode(), "text/plain")
    except Exception as exc:  # the pointer moved: the run succeeded; the marker is cosmetic
        say("WARNING", f"could not write the PUBLISHED marker: {exc}", event="marker_failed")
    say("INFO", f"model {version} published", event="model_published", model_version=version,
        created_at=now.isoformat(), previous_version=serving_version, decision=decision,
        n_items=new_model.n_items)
    return {**summary, "status": "published", "reasons": reasons}


def _fit_learning(config: RefreshConfig, base: ItemModel, train: Any, order_key: np.ndarray,
                  skills: tuple[np.ndarray, list[Any], list[Any]] | None,
                  item_ids: tuple[str, ...], say: Log) -> ItemModel:
    """:func:`irt.engine.learning_fit.fit_learning` with the configured options; ``skills`` is the
    log's ``(skill code per item code, item dictionary, skill dictionary)``."""
    from irt.engine.learning_fit import LearningConfig, fit_learning

    t0 = time.perf_counter()
    item_skill, skill_ids = None, []
    if skills is not None:
        codes, i_dict, k_dict = skills
        by_id = {str(i).strip(): int(k) for i, k in zip(i_dict, codes.tolist(), strict=True)
                 if k >= 0}
        item_skill = np.array([by_id.get(i, -1) for i in item_ids], dtype=np.int64)
        skill_ids = [str(k).strip() for k in k_dict]
    learning = LearningConfig(options=config.model_options, decay=config.recency_decay,
                              window=config.pfa_window, prior_a=config.prior_a,
                              prior_b=config.prior_b or (0.0, 2.0))
    try:
        result = fit_learning(base, train, order_key, item_skill, skill_ids, learning)
    except ValueError as exc:  # e.g. no item has a skill in this window
        raise _StopError(422, "invalid_data", f"learning options: {exc}") from exc
    info = result.model.options["learning"]
    say("INFO", "learning options calibrated", event="learning_calibrated",
        options=list(config.model_options), iterations=result.iterations,
        converged=result.converged, log_likelihood=result.log_likelihood,
        skill_sd=info.get("skill_sd"), coefficients=info.get("coefficients"),
        n_skills=len(set(info.get("item_skills", {}).values())),
        seconds=round(time.perf_counter() - t0, 3))
    return result.model


def _write_rejection(store: ArtifactStore, config: RefreshConfig, start: datetime,
                     end: datetime, *, run_id: str, data: dict[str, Any], reasons: list[str],
                     now: datetime) -> None:
    """Record a data-validation rejection (report.json only: no model exists)."""
    version = f"{end:%Y%m%dT%H%M%SZ}-rejected-{run_id}"
    doc = {"version": version, "run_id": run_id, "created_at": now.isoformat(),
           "decision": "rejected", "reasons": reasons, "window_start": start.isoformat(),
           "window_end": end.isoformat(), "config": config.summary(), "data": data,
           "code_version": __version__}
    # best effort: the rejection itself is logged and returned by the caller
    with contextlib.suppress(Exception):
        store.put(version, "report.json", json.dumps(doc, indent=1, default=str).encode(),
                  "application/json")


def _is_cloud_error(exc: BaseException) -> bool:
    """A google-api-core / requests / network error (without importing them)."""
    mod = type(exc).__module__ or ""
    return mod.startswith(("google.api_core", "google.auth", "requests", "urllib3")) or \
        isinstance(exc, (ConnectionError, TimeoutError))
