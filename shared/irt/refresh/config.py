"""The refresh's configuration: :class:`RefreshConfig` from the environment, :class:`RunOptions`
from the request body.

Both validate what they read and raise :class:`irt.errors.ConfigError` naming the variable or
field and the rule it breaks; :mod:`irt.refresh.pipeline` runs with what they return.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from irt.engine import defaults
from irt.engine.artifact import MAX_MODEL_BYTES, MAX_MODEL_ITEMS
from irt.engine.calibrate import FitConfig, Priors
from irt.engine.learning import parse_options
from irt.engine.model import MODEL_TYPES
from irt.errors import ConfigError
from irt.refresh.monitoring import MonitorConfig
from irt.refresh.quality import DataThresholds, GateConfig
from irt.refresh.sql import SourceColumns, parse_table
from irt.settings import NUMBER_RULE, env_bool, env_float, env_int, parse_number, shown


def _env_pair(env: Mapping[str, str], key: str, default: tuple[float, float] | None
              ) -> tuple[float, float] | None:
    """``env[key]`` as two numbers ``location,scale`` (each as :func:`parse_number` reads
    it), or ``none``; ``default`` when unset or blank."""
    raw = env.get(key, "")
    if raw.strip() == "":
        return default
    if raw.strip().lower() == "none":
        return None
    try:
        first, second = (parse_number(v) for v in raw.split(","))
    except ValueError:
        raise ConfigError(f"must be two numbers 'location,scale' ({NUMBER_RULE}) or 'none', "
                          f"got {shown(raw)}", key) from None
    if not (math.isfinite(first) and math.isfinite(second) and second > 0):
        raise ConfigError(f"needs a finite location and a positive scale, got {shown(raw)}",
                          key)
    return first, second


def _env_cap(env: Mapping[str, str], key: str, default: int | None) -> int | None:
    """``env[key]`` as a cap: an integer in ``[1000, 10^12]``, or ``none`` for no cap;
    ``default`` when unset or blank."""
    raw = env.get(key, "").strip()
    if raw.lower() == "none":
        return None
    if raw == "" and default is None:
        return None
    return env_int(env, key, 1000 if default is None else default, 1000, 10**12)


@dataclass(frozen=True)
class RefreshConfig:
    """Everything a refresh needs, read from the environment by :meth:`from_env`.

    Attributes:
        table: ``BQ_TABLE`` (``project.dataset.table``), or ``None`` for the local file.
        source_file: ``SOURCE_FILE``: a local CSV/Parquet log (used when no ``BQ_TABLE``).
        location: ``BQ_LOCATION``, the BigQuery job location.
        storage_api: ``BQ_STORAGE_API`` (boolean, default true): download query results
            through the BigQuery Storage Read API (never on an emulator); false: the REST
            API.  Not part of the version digest (it changes how, not what, is read).
        columns: ``COLUMN_STUDENT``, ``COLUMN_ITEM``, ``COLUMN_CORRECT``,
            ``COLUMN_ANSWERED_AT``, ``COLUMN_SKILL``.
        model_type: ``MODEL_TYPE``: rasch, 1pl, 2pl (default) or 3pl.

        The calibration settings' defaults (model type, minimum answers, priors, options,
        recency decay, pfa window) are :data:`irt.engine.defaults.DEFAULTS`, which the CLI
        uses too; the values below are those defaults.
        window_days: ``WINDOW_DAYS``: the window is the last N days (default 365).
        max_answers_per_item: ``MAX_ANSWERS_PER_ITEM`` (default 5000): the cap.
        max_model_items, max_model_bytes: ``MAX_MODEL_ITEMS`` (default 200000) and
            ``MAX_MODEL_BYTES`` (64 MiB): a model over either is refused (422
            ``model_too_large``, nothing written); predict's loader rejects the same.
        min_answers_per_item: ``MIN_ANSWERS_PER_ITEM`` (default 1: every answered item;
            the priors shrink a rarely answered one).
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
        gate: ``GATE_HOLDOUT_STUDENTS``, ``GATE_HOLDOUT_MIN_STUDENTS``,
            ``GATE_HOLDOUT_MAX_STUDENTS``,
            ``GATE_HOLDOUT_LAST``, ``GATE_MAX_AUC_DROP``,
            ``GATE_MAX_LOGLOSS_RISE``, ``GATE_MIN_AUC``, ``GATE_MAX_ECE_OVER_PLAIN``.
        bucket: ``MODEL_BUCKET``; ``model_dir``: ``MODEL_DIR`` (used when no bucket).
        prefix: ``MODEL_PREFIX`` (default ``models``).
        monitoring: ``MONITOR_*`` thresholds of :mod:`irt.refresh.monitoring` (not part of the
            version digest: they judge a model, they do not shape it).
        model_options: ``MODEL_OPTIONS``: learning-aware options of :mod:`irt.engine.learning`,
            comma-separated ``recency``, ``skills``, ``pfa`` (default none: the plain
            model).  ``skills`` and ``pfa`` need ``COLUMN_SKILL``; all need ``MODEL_TYPE``
            2pl.  Calibrated by :func:`irt.engine.learning_fit.fit_learning` on the training
            answers after the plain fit, stored in the artifact's ``options``, gated with
            the same online protocol and served by ``predict``.  ``auto`` chooses among
            plain and the option sets on 20% of the training students
            (:mod:`irt.engine.auto`; without ``COLUMN_SKILL`` only ``recency`` is tried).
        recency_decay: ``RECENCY_DECAY`` (default 0.95): weight per later answer (recency).
        pfa_window: ``PFA_WINDOW`` (default 10): answers in the covariates' recent window.
        skill_prior: ``SKILL_PRIOR`` (``true``/``false``, default true): with
            ``COLUMN_SKILL``, the plain calibration centres each item's difficulty prior on
            its skill's estimated mean (:func:`irt.engine.calibrate.fit`), and the model
            records each skill's typical parameters for ``predict``'s provisional items.
        skill_difficulty_sd: ``SKILL_DIFFICULTY_SD`` (default 1.0): SD of the difficulties
            around their skill's mean.
        learning_max_answers: ``LEARNING_MAX_ANSWERS`` (default 500,000; ``none``: no
            cap): the options are calibrated on at most this many training answers, a
            deterministic sample of whole students (the smallest ``MD5(student_id)``);
            items outside it keep the plain fit's parameters.  It bounds the options' time
            and memory (README, Performance).
    """

    table: str | None = None
    source_file: str | None = None
    location: str | None = None
    storage_api: bool = True
    columns: SourceColumns = field(default_factory=SourceColumns)
    model_type: str = field(default_factory=lambda: defaults.DEFAULTS.model)
    window_days: int = 365
    max_answers_per_item: int = 5000
    min_answers_per_item: int = field(
        default_factory=lambda: defaults.DEFAULTS.min_answers_per_item)
    min_answers_per_student: int = field(
        default_factory=lambda: defaults.DEFAULTS.min_answers_per_student)
    max_id_length: int = 256
    prior_a: tuple[float, float] | None = field(default_factory=lambda: defaults.DEFAULTS.prior_a)
    prior_b: tuple[float, float] | None = field(default_factory=lambda: defaults.DEFAULTS.prior_b)
    data: DataThresholds = field(default_factory=DataThresholds)
    gate: GateConfig = field(default_factory=GateConfig)
    bucket: str | None = None
    model_dir: str | None = None
    prefix: str = "models"
    monitoring: MonitorConfig = field(default_factory=MonitorConfig)
    model_options: tuple[str, ...] = field(default_factory=lambda: defaults.DEFAULTS.options)
    recency_decay: float = field(default_factory=lambda: defaults.DEFAULTS.recency_decay)
    pfa_window: int = field(default_factory=lambda: defaults.DEFAULTS.pfa_window)
    skill_prior: bool = field(default_factory=lambda: defaults.DEFAULTS.skill_prior)
    skill_difficulty_sd: float = field(
        default_factory=lambda: defaults.DEFAULTS.skill_difficulty_sd)
    max_model_items: int = MAX_MODEL_ITEMS
    max_model_bytes: int = MAX_MODEL_BYTES
    learning_max_answers: int | None = field(
        default_factory=lambda: defaults.DEFAULTS.learning_max_answers)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RefreshConfig:
        """Read and validate the configuration.

        Raises:
            ConfigError: naming the variable and the rule it breaks.
        """
        env = os.environ if env is None else env
        base = defaults.DEFAULTS
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
        model_type = (env.get("MODEL_TYPE") or base.model).lower()
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
            raw_options = env.get("MODEL_OPTIONS")
            model_options = parse_options(raw_options, allow_auto=True) \
                if raw_options is not None else base.options
        except ValueError as exc:
            raise ConfigError(str(exc), "MODEL_OPTIONS") from None
        if model_options and model_type != "2pl":
            raise ConfigError("learning-aware options need MODEL_TYPE=2pl", "MODEL_OPTIONS")
        if {"skills", "pfa"} & set(model_options) and not columns.skill:
            raise ConfigError("options 'skills' and 'pfa' need COLUMN_SKILL "
                              "(the item -> skill map is learned from it)", "MODEL_OPTIONS")
        prior_b = _env_pair(env, "PRIOR_B", base.prior_b)
        if model_options and prior_b is None:
            raise ConfigError("learning-aware options (MODEL_OPTIONS) need a difficulty prior: "
                              "it is the prior of the skill means", "PRIOR_B")
        d, g = DataThresholds(), GateConfig()
        data = DataThresholds(
            min_answers=env_int(env, "DATA_MIN_ANSWERS", d.min_answers, 1, 10**12),
            max_invalid_share=env_float(env, "DATA_MAX_INVALID_SHARE", d.max_invalid_share,
                                         0, 1),
            min_row_ratio=env_float(env, "DATA_MIN_ROW_RATIO", d.min_row_ratio, 0, 1),
            max_row_ratio=env_float(env, "DATA_MAX_ROW_RATIO", d.max_row_ratio, 1, 1e6),
            max_items_lost=env_float(env, "DATA_MAX_ITEMS_LOST", d.max_items_lost, 0, 1),
        )
        gate_config = GateConfig(
            holdout_students=env_float(env, "GATE_HOLDOUT_STUDENTS", g.holdout_students,
                                        1e-6, 1),
            holdout_min_students=env_int(env, "GATE_HOLDOUT_MIN_STUDENTS",
                                          g.holdout_min_students, 1, 10**7),
            holdout_max_students=env_int(env, "GATE_HOLDOUT_MAX_STUDENTS",
                                          g.holdout_max_students, 1, 10**7),
            holdout_last=env_float(env, "GATE_HOLDOUT_LAST", g.holdout_last, 0.01, 0.99),
            max_auc_drop=env_float(env, "GATE_MAX_AUC_DROP", g.max_auc_drop, 0, 1),
            max_logloss_rise=env_float(env, "GATE_MAX_LOGLOSS_RISE", g.max_logloss_rise, 0, 10),
            min_auc=env_float(env, "GATE_MIN_AUC", g.min_auc, 0, 1),
            max_ece_over_plain=env_float(env, "GATE_MAX_ECE_OVER_PLAIN",
                                         g.max_ece_over_plain, 0, 1),
        )
        return cls(
            table=table, source_file=source_file, location=env.get("BQ_LOCATION") or None,
            storage_api=env_bool(env, "BQ_STORAGE_API", True),
            columns=columns, model_type=model_type,
            window_days=env_int(env, "WINDOW_DAYS", 365, 1, 36500),
            max_answers_per_item=env_int(env, "MAX_ANSWERS_PER_ITEM", 5000, 1, 10**9),
            min_answers_per_item=env_int(env, "MIN_ANSWERS_PER_ITEM",
                                         base.min_answers_per_item, 1, 10**9),
            min_answers_per_student=env_int(env, "MIN_ANSWERS_PER_STUDENT",
                                            base.min_answers_per_student, 1, 10**9),
            max_id_length=env_int(env, "MAX_ID_LENGTH", 256, 1, 4096),
            prior_a=_env_pair(env, "PRIOR_A", base.prior_a),
            prior_b=prior_b,
            data=data, gate=gate_config, bucket=bucket, model_dir=model_dir, prefix=prefix,
            monitoring=MonitorConfig.from_env(env), model_options=model_options,
            recency_decay=env_float(env, "RECENCY_DECAY", base.recency_decay, 0.01, 0.9999),
            pfa_window=env_int(env, "PFA_WINDOW", base.pfa_window, 1, 10_000),
            skill_prior=env_bool(env, "SKILL_PRIOR", base.skill_prior),
            skill_difficulty_sd=env_float(env, "SKILL_DIFFICULTY_SD", base.skill_difficulty_sd,
                                          1e-3, 100.0),
            max_model_items=env_int(env, "MAX_MODEL_ITEMS", MAX_MODEL_ITEMS, 1, 10_000_000),
            max_model_bytes=env_int(env, "MAX_MODEL_BYTES", MAX_MODEL_BYTES, 1, 1 << 30),
            learning_max_answers=_env_cap(env, "LEARNING_MAX_ANSWERS",
                                          base.learning_max_answers),
        )

    def fit_config(self) -> FitConfig:
        """The calibration settings of a run: :data:`irt.engine.defaults.DEFAULTS` with this
        configuration's model type, minimum answers per item, priors (the 3PL's guessing
        prior from the defaults) and skill prior."""
        priors = Priors(a_lognormal=self.prior_a,
                        b_normal=self.prior_b, c_beta=Priors.default(self.model_type).c_beta)
        return FitConfig(model=self.model_type, priors=priors,  # type: ignore[arg-type]
                         min_answers_per_item=self.min_answers_per_item,
                         skill_prior=self.skill_prior,
                         skill_difficulty_sd=self.skill_difficulty_sd)

    def summary(self) -> dict[str, Any]:
        """JSON-ready settings that shape the model (part of the version digest)."""
        out = asdict(self)
        out["columns"] = self.columns.required()
        for key in ("bucket", "model_dir", "source_file", "location", "storage_api",
                    "monitoring"):
            out.pop(key)
        if not self.columns.skill:  # no skill map: the skill prior settings shape nothing
            for key in ("skill_prior", "skill_difficulty_sd"):
                out.pop(key)
        if not self.model_options:  # a plain model: the digest of the plain settings only
            for key in ("model_options", "recency_decay", "pfa_window", "learning_max_answers"):
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
                # RFC 3339 (5.6) allows a lowercase "t" and "z"
                end = datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))
            except ValueError:
                raise ConfigError("must be an RFC 3339 timestamp with a time "
                                  "zone, e.g. 2026-11-28T00:00:00Z", "window_end") from None
            if end.tzinfo is None:
                raise ConfigError("must include a time zone (e.g. Z)", "window_end")
            try:
                end = end.astimezone(UTC)
            except OverflowError:
                end = None
            if end is None or not 1970 <= end.year <= 9998:
                raise ConfigError("must be between 1970 and 9998 (the window's start must be a "
                                  "date too)", "window_end")
            out["window_end"] = end
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

