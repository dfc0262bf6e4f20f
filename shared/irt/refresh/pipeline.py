"""One scheduled refresh: answer log -> prepared answers -> model -> checks -> publish.

This is what the ``prepare`` Cloud Function runs (``functions/prepare/main.py``
is the HTTP shell around :func:`run_refresh`), and what ``make demo`` runs
locally on the embedded defaults.  ``_run`` calls the steps in order, one function each,
each logging its outcome as one JSON line with the run id (:func:`irt.refresh.logs.log_step`):

1. :func:`read_serving`: the pointer, the serving version, its model and its report;
2. :func:`check_source_schema`: the source schema against the column mapping;
3. :func:`query_answers`: the window (:mod:`irt.refresh.sql`, BigQuery or DuckDB) - kept
   answers and the rows each SQL step dropped;
4. :func:`prepare_answers`: :func:`irt.engine.preprocess.prepare_coded` on the Arrow columns
   (re-validation and the minimum-answer filters to their fixed point);
5. :func:`validate_data`: data validation (:func:`irt.refresh.quality.check_data`);
6. :func:`hold_out` the latest answers of a sample of students, :func:`calibrate` on the rest
   (with the learning-aware options, if any) while :func:`start_challenger` fits the
   monitoring challenger on the same answers in a background thread;
7. :func:`quality_gate`: new and serving models on the same held-out answers; then
   :func:`monitor`: the checks of :mod:`irt.refresh.monitoring`;
8. :func:`name_version`, then :func:`write_artifacts`: ``prepared.csv.gz``, ``model.json``,
   ``metrics.json``, ``report.html`` (:func:`build_report_html`, best effort) and, last,
   ``report.json`` under ``models/<version>/``; then
   :func:`run_canary`: the stored model, read back, through the serving code;
9. :func:`publish`: move ``models/LATEST`` (generation-match precondition), then mark the
   version ``PUBLISHED``.

Any failure stops the run before step 9: ``LATEST`` keeps naming the previous
complete model.  The version id is the window end and a digest of the
configuration and prepared data, so re-running the same window with the same
data produces the same version and, once it is published, does nothing.
"""

from __future__ import annotations

import contextlib
import json
import time
import traceback
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from irt import __version__
from irt.engine.artifact import check_model_size, load_model
from irt.engine.calibrate import FitConfig, FitResult, Priors, fit
from irt.engine.learning import AUTO, skill_map
from irt.engine.model import ItemModel
from irt.engine.preprocess import prepare_coded
from irt.errors import ModelFormatError, PointerConflictError, SourceError, StoreError
from irt.refresh.columns import (
    answer_order,
    encode,
    prepared_csv,
    sample_students,
    version_digest,
)
from irt.refresh.config import RefreshConfig, RunOptions
from irt.refresh.logs import Log, json_log, log_step
from irt.refresh.monitoring import (
    STALENESS_AGES,
    Checks,
    canary,
    challenger_kind,
    run_checks,
)
from irt.refresh.quality import (
    GateResult,
    Replay,
    check_data,
    gate,
    holdout_mask,
    holdout_replay,
    holdout_scores,
    items_lost,
)
from irt.refresh.sources import AnswerSource, check_schema, fetch
from irt.refresh.sql import QueryParams, drops_from_counts
from irt.store import PUBLISHED, ArtifactStore, parse_document

if TYPE_CHECKING:
    from irt.engine.auto import OptionChoice
    from irt.engine.learning_fit import LearningConfig, LearningFit

#: What callers import from here (``functions/prepare/main.py``, the tests, the benchmarks); the
#: configuration and the log writer live in :mod:`irt.refresh.config` and :mod:`irt.refresh.logs`.
__all__ = ["RefreshConfig", "RunOptions", "RunResult", "json_log", "run_refresh"]


# --------------------------------------------------------------------------- what steps hand on
@dataclass
class RunResult:
    """What a run did.

    Attributes:
        status: HTTP status for the scheduler: 200 published or unchanged or
            dry run; 409 lost the pointer race or another run of the same window holds
            the version; 422 data or gate rejected the
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


@dataclass(frozen=True)
class Run:
    """What every step may read: the configuration with the request's overrides applied, the
    options, the window, the clock, the run id, the source, the store and the log."""

    config: RefreshConfig
    options: RunOptions
    source: AnswerSource
    store: ArtifactStore
    say: Log
    now: datetime
    window_start: datetime
    window_end: datetime
    run_id: str


@dataclass(frozen=True)
class Serving:
    """What serves now (step 1): the version ``LATEST`` names (``None`` or empty: nothing),
    the pointer's token for the move of step 9, and that version's model (``None`` when
    absent or unreadable), ``report.json``, the report's ``data`` and ``metrics.json``."""

    version: str | None
    token: Any
    model: ItemModel | None = None
    report: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None


@dataclass(frozen=True)
class Answers:
    """The query's result (step 3): the kept answers as an Arrow table, the SQL's row counts
    and the rows each SQL step dropped."""

    table: Any
    counts: dict[str, int]
    dropped: dict[str, int]


@dataclass(frozen=True)
class Prepared:
    """The prepared answers (step 4): the engine's ``Responses``, their times (epoch seconds,
    ``None`` when the log has none), the data report (rows in and out, drops by reason,
    students, items) and, with ``COLUMN_SKILL``, the log's item -> skill map (the skill
    prior's and the learning-aware options') as ``(skill code per item code, item
    dictionary, skill dictionary)``."""

    responses: Any
    answered_at: np.ndarray | None
    data: dict[str, Any]
    skills: tuple[np.ndarray, list[Any], list[Any]] | None


@dataclass(frozen=True)
class Holdout:
    """The gate's split (step 6): each answer's order within its student (its time, or its
    row), the held-out mask and the training answers (the rest)."""

    order_key: np.ndarray
    held_out: np.ndarray
    train: Any


@dataclass(frozen=True)
class Calibrated:
    """The new model (step 6): with its learning-aware options if any; the plain fit's
    result and the settings it ran with (the monitoring challenger reuses them); how the
    options' EM ended (``None`` without options)."""

    model: ItemModel
    result: FitResult
    fit_config: FitConfig
    learning_converged: bool | None = None
    learning_iterations: int = 0
    selection: dict[str, Any] | None = None


@dataclass(frozen=True)
class Challenger:
    """The monitoring challenger (:func:`irt.refresh.monitoring.simpler_model`) of a ``kind``
    model, fitted in a background thread (:func:`start_challenger`); :meth:`model` waits for
    it."""

    kind: str
    future: Future

    def model(self) -> ItemModel:
        """The fitted challenger; raises what its fit raised."""
        return self.future.result()


@dataclass(frozen=True)
class Findings:
    """What steps 5-7 found: data violations (with the serving items lost), the gate's
    verdict and the monitoring checks."""

    violations: list[str]
    verdict: GateResult
    checks: Checks

    @property
    def reasons(self) -> list[str]:
        """Every reason to reject the model (none: it may publish)."""
        return self.violations + self.verdict.reasons + self.checks.problems


@dataclass(frozen=True)
class Candidate:
    """The new version as it is stored (step 8): its id, the decision (``accepted``,
    ``forced``, ``dry_run`` or ``rejected``), the model stamped with both, and the findings."""

    version: str
    decision: str
    model: ItemModel
    findings: Findings


# --------------------------------------------------------------------------- the run
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
        log_step(say, "internal error (traceback attached)", severity="ERROR",
                 event="internal_error", error=body["error"], traceback=traceback.format_exc())
    body["seconds"] = round(time.perf_counter() - started, 3)
    if status >= 300:
        log_step(say, f"refresh failed: {body.get('error')}", severity="ERROR",
                 event="refresh_failed", http_status=status,
                 **{k: v for k, v in body.items() if k not in ("run_id",)})
    else:
        log_step(say, f"refresh finished: {body['status']}", event="refresh_finished",
                 **{k: v for k, v in body.items() if k != "run_id"})
    return RunResult(status, body)


def _run(config: RefreshConfig, source: AnswerSource, store: ArtifactStore,
         options: RunOptions, say: Log, now: datetime, summary: dict[str, Any]
         ) -> dict[str, Any]:
    """The steps in order; ``summary`` gathers what the response reports, on failure too."""
    run = start_run(config, source, store, options, say, now, summary)
    serving = read_serving(run)
    summary["serving_version"] = serving.version
    check_source_schema(run)
    # One expression: prepare_answers then holds the only reference to the Arrow result.
    prepared = prepare_answers(run, query_answers(run))
    summary["data"] = prepared.data
    violations = validate_data(run, prepared, serving)
    holdout = hold_out(run, prepared)
    # Work that needs no result of the main line runs on one background thread, in turn:
    # the monitoring challenger's fit beside the calibration, the report's fit statistics
    # beside the gate and the checks (see BACKGROUND).
    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix=BACKGROUND)
    try:
        challenger = start_challenger(run, holdout, background)
        calibrated = calibrate(run, prepared, holdout)
        plain = None if calibrated.model.options.get("learning") is None else \
            calibrated.result.model
        diagnostics = start_report_diagnostics(calibrated, holdout, background)
        verdict, replay = quality_gate(run, prepared, holdout, calibrated.model, serving, plain)
        if calibrated.selection is not None and verdict.against_plain:
            # MODEL_OPTIONS=auto never serves a set that lost to plain: the plain 2PL, gated
            calibrated = fall_back_to_plain(run, calibrated, verdict)
            diagnostics = start_report_diagnostics(calibrated, holdout, background)
            verdict, replay = quality_gate(run, prepared, holdout, calibrated.model, serving)
        # a data violation:
        violations += items_lost(serving.model, calibrated.model, run.config.data)
        checks = monitor(run, prepared, holdout, calibrated, serving, verdict, replay, challenger)
        findings = Findings(violations, verdict, checks)

        version = name_version(run, prepared, holdout)
        summary["version"] = version
        if version == serving.version or PUBLISHED in store.versions().get(version, []):
            return {**summary, "status": "unchanged",
                    "detail": f"{version} (same window, same data) was already published; "
                              "nothing written"}
        candidate = Candidate(version, decide(options, findings.reasons),
                              stamp_model(run, calibrated.model, version, prepared.data), findings)
        check_size(run, candidate)
        if not write_artifacts(run, candidate, prepared, holdout, calibrated, serving, replay,
                               diagnostics):
            return {**summary, "status": "unchanged",
                    "detail": f"{version} (same window, same data) was published by another run "
                              "meanwhile; nothing written"}
        summary.update(decision=candidate.decision, gate=verdict.to_dict())
        if candidate.decision == "rejected":
            raise _StopError(422, "rejected", "; ".join(findings.reasons), version=version,
                             decision=candidate.decision, gate=verdict.to_dict())
        run_canary(run, candidate)
        if candidate.decision == "dry_run":
            return {**summary, "status": "dry_run", "reasons": findings.reasons}
        publish(run, candidate, serving)
        return {**summary, "status": "published", "reasons": findings.reasons}
    finally:
        # No background work outlives the run: on a failure the piece running finishes
        # (a challenger's fit: seconds), the pieces not started are dropped.
        background.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- the steps
def start_run(config: RefreshConfig, source: AnswerSource, store: ArtifactStore,
              options: RunOptions, say: Log, now: datetime, summary: dict[str, Any]) -> Run:
    """Apply the request's overrides, fix the window and log that the refresh started.

    The window ends at ``options.window_end``, else at ``now`` floored to the hour (retries
    within the hour see the same window), and spans ``window_days``.  Adds the window, model
    type, source, store and options to ``summary`` and logs it all (INFO ``refresh_started``).
    Raises nothing.
    """
    if options.model_type or options.window_days:
        config = replace(config, model_type=options.model_type or config.model_type,
                         window_days=options.window_days or config.window_days)
    window_end = options.window_end or _floor_hour(now)
    window_start = window_end - timedelta(days=config.window_days)
    summary.update(window_start=window_start.isoformat(), window_end=window_end.isoformat(),
                   model_type=config.model_type, source=source.description,
                   store=store.location, force=options.force, dry_run=options.dry_run)
    log_step(say, "refresh started", event="refresh_started", **summary)
    return Run(config=config, options=options, source=source, store=store, say=say, now=now,
               window_start=window_start, window_end=window_end, run_id=summary["run_id"])


def read_serving(run: Run) -> Serving:
    """Step 1: read ``LATEST`` and the serving version's ``model.json``, ``report.json`` and
    ``metrics.json`` (each may be absent).

    A serving model that does not load is logged (WARNING ``serving_model_invalid``) and the
    gate then compares against nothing; nothing else is logged.  Raises :class:`_StopError`
    503 ``store_unavailable`` when the store cannot be read or a file in it is invalid (a
    ``ValueError``: JSON that does not parse).
    """
    store = run.store
    with _store_unavailable(f"cannot read {store.location}", also=(ValueError,)):
        version, token = store.read_pointer()
        if not version:
            return Serving(version, token)
        raw_model = store.get(version, "model.json")
        raw_report = store.get(version, "report.json")
        model = report = data = None
        if raw_model is not None:
            try:
                model = load_model(raw_model)
            except ModelFormatError as exc:
                log_step(run.say, f"serving model {version} is unreadable: {exc}; "
                         "the gate compares against nothing", severity="WARNING",
                         event="serving_model_invalid")
        if raw_report is not None:
            report = parse_document(raw_report)
            data = report.get("data") if isinstance(report, dict) else None
        raw_metrics = store.get(version, "metrics.json")
        metrics = parse_document(raw_metrics) if raw_metrics is not None else None
    return Serving(version, token, model, report, data, metrics)


def check_source_schema(run: Run) -> None:
    """Step 2: check the source's columns against the configured column mapping.

    Logs nothing.  Raises :class:`_StopError` 503 ``source_unavailable`` when the source
    cannot be read, 422 ``invalid_schema`` (every problem, ``; ``-joined) when a column is
    missing or of the wrong type.
    """
    try:
        problems = check_schema(run.source.schema(), run.config.columns)
    except SourceError as exc:
        raise _StopError(503, "source_unavailable", str(exc)) from exc
    if problems:
        raise _StopError(422, "invalid_schema", "; ".join(problems))


def query_answers(run: Run) -> Answers:
    """Step 3: run the answer-log SQL (:mod:`irt.refresh.sql`) over the window.

    Logs INFO ``queried`` with the rows in, the rows kept and the rows each SQL step dropped.
    Raises :class:`_StopError` 503 ``source_unavailable`` when the source fails, 500
    ``source_inconsistent`` when its row counts do not add up.
    """
    config = run.config
    params = QueryParams(run.window_start, run.window_end, config.max_answers_per_item,
                         config.min_answers_per_item, config.min_answers_per_student,
                         config.max_id_length)
    t0 = time.perf_counter()
    try:
        table, counts = fetch(run.source, config.columns, params,
                              config.table or getattr(run.source, "table", "answers"))
        dropped = drops_from_counts(counts)
    except SourceError as exc:
        raise _StopError(503, "source_unavailable", str(exc)) from exc
    except ValueError as exc:
        raise _StopError(500, "source_inconsistent", str(exc)) from exc
    log_step(run.say, "query done", event="queried", since=t0, rows_in=counts["rows_in"],
             rows_kept=counts["kept"], dropped=dropped)
    return Answers(table, counts, dropped)


def prepare_answers(run: Run, answers: Answers) -> Prepared:
    """Step 4: the Arrow columns as codes in one answer order, then ``prepare_coded``.

    Pass ``answers`` straight from :func:`query_answers` (as ``_run`` does): this function
    then holds the only reference to the Arrow result and frees it once the columns are in
    numpy, before sorting and preparing.  Logs INFO ``prepared`` with the data report (SQL and
    preparation drops added up).  Raises nothing of its own.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    table, rows_in, sql_drops = answers.table, answers.counts["rows_in"], answers.dropped
    del answers
    s_codes, s_dict = encode(table.column("student_id"))
    i_codes, i_dict = encode(table.column("item_id"))
    skills = None  # the log's item -> skill map: the skill prior's and the options'
    if run.config.columns.skill:
        skills = _skills(table, i_codes, i_dict)
    # the SQL leaves 0, 1 or NULL: int8 with -1 for NULL (invalid_correct downstream)
    correct = pc.fill_null(table.column("correct"), -1).cast(pa.int8()).to_numpy()
    times_us = table.column("answered_at").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    seconds = pc.fill_null(times_us.cast(pa.float64()), float("nan")).to_numpy() / 1e6
    del table  # the columns now live in numpy; free the Arrow result
    # A deterministic order whatever order the engine returned (see answer_order).
    # Permuted one array at a time, so at most one extra copy is alive.
    order = answer_order(s_codes, times_us, i_codes)
    del times_us
    s_codes, i_codes = s_codes[order], i_codes[order]
    correct, seconds = correct[order], seconds[order]
    del order
    prepared = prepare_coded(
        s_codes, s_dict, i_codes, i_dict, correct, seconds,
        min_answers_per_item=run.config.min_answers_per_item,
        min_answers_per_student=run.config.min_answers_per_student,
        max_id_length=run.config.max_id_length)
    del s_codes, i_codes, correct, seconds
    data = _data_report(rows_in, sql_drops, prepared.report)
    log_step(run.say, "answers prepared", event="prepared", since=t0, **data)
    return Prepared(prepared.responses, prepared.answered_at, data, skills)


def validate_data(run: Run, prepared: Prepared, serving: Serving) -> list[str]:
    """Step 5: check the prepared data against the thresholds and the serving run's data.

    Logs nothing; returns the violations (the decision counts them, ``force`` overrides
    them).  Raises :class:`_StopError` 422 ``no_data`` when no answer is left, 422
    ``invalid_data`` on violations without ``force``, after writing a rejection
    ``report.json`` (best effort).
    """
    violations = check_data(prepared.data, run.config.data, serving.data)
    if prepared.data["rows_out"] == 0:
        raise _StopError(422, "no_data", "no answers in the window after preparation",
                         data=prepared.data)
    if violations and not run.options.force:
        _write_rejection(run, prepared.data, violations)
        raise _StopError(422, "invalid_data", "; ".join(violations))
    return violations


def hold_out(run: Run, prepared: Prepared) -> Holdout:
    """Step 6, first half: hold out the latest answers of a sample of students for the gate.

    Orders each student's answers by time (by row when the log has no times).  Logs nothing
    and raises nothing.
    """
    responses = prepared.responses
    order_key = prepared.answered_at if prepared.answered_at is not None else \
        np.arange(responses.n_answers, dtype=float)
    held_out = holdout_mask(responses.student, responses.student_ids, order_key,
                            run.config.gate)
    return Holdout(order_key, held_out, responses.subset(~held_out))


#: Name prefix of the refresh's background thread (:func:`_run`): the monitoring challenger's
#: fit (:func:`start_challenger`) beside the calibration, then the report's fit statistics
#: (:func:`start_report_diagnostics`) beside the gate and the checks.  numpy and scipy
#: release the GIL in their array passes, and a refresh has several cores (staging 2,
#: production 4); each piece gives what it gives in the main line, bit for bit, and a
#: failure surfaces where its result is used.  (``prepared.csv.gz`` made there beside the
#: calibration saved 0.1 s on ASSISTments 2009 but raised the 10M-answer refresh's peak
#: from 1.62 to 1.87 GiB, near its 2 GB target: it stays in :func:`write_artifacts`.)
BACKGROUND = "refresh-background"


def start_challenger(run: Run, holdout: Holdout, background: ThreadPoolExecutor
                     ) -> Challenger | None:
    """Step 6, beside the calibration: start fitting the monitoring challenger
    (:func:`irt.refresh.monitoring.challenger_kind`: 1PL for a 2PL; ``None`` when there is
    none) on the ``background`` thread (:data:`BACKGROUND`).  It needs only the training
    answers and the settings, so it runs while the calibration does.  The same fit as in
    the monitoring step (:func:`_fit_simpler`), so the same model bit for bit.  Logs
    nothing; raises nothing (a failed fit raises when :meth:`Challenger.model` is asked for
    it, in :func:`monitor`).
    """
    kind = challenger_kind(run.config.monitoring, run.config.model_type)
    if kind is None:
        return None
    return Challenger(kind, background.submit(_fit_simpler, run.config,
                                              run.config.fit_config(), holdout.train, kind))


def start_report_diagnostics(calibrated: Calibrated, holdout: Holdout,
                             background: ThreadPoolExecutor) -> Future:
    """Step 7, beside the gate and the checks: the fit statistics of ``report.html``
    (:func:`irt.refresh.report.report_diagnostics`: the new model on the training answers)
    on the ``background`` thread (:data:`BACKGROUND`); they need only the calibrated
    parameters, which the version's stamp (:func:`stamp_model`) leaves as they are, so the
    same figures as computed in :func:`build_report_html`.  Logs nothing; raises nothing (a
    failure surfaces in :func:`build_report_html`, which never stops a refresh).
    """
    from irt.refresh.report import report_diagnostics

    return background.submit(report_diagnostics, calibrated.model, holdout.train)


def _fit_simpler(config: RefreshConfig, fit_config: FitConfig, train: Any, kind: str
                 ) -> ItemModel:
    """The monitoring challenger: a ``kind`` model on (a sample of students of) the
    training answers, without standard errors, at ``MONITOR_SIMPLER_FIT_TOL``; its
    ``fit["seconds"]`` is the fit's wall time."""
    t0 = time.perf_counter()
    priors = replace(fit_config.priors, c_beta=Priors.default(kind).c_beta)
    model = fit(sample_students(train), replace(
        fit_config, model=kind, compute_se=False, priors=priors,
        tol=config.monitoring.simpler_fit_tol)).model
    return replace(model, fit={**model.fit, "seconds": round(time.perf_counter() - t0, 3)})


def calibrate(run: Run, prepared: Prepared, holdout: Holdout) -> Calibrated:
    """Step 6: calibrate the configured model on the training answers, with the priors (and,
    with ``COLUMN_SKILL``, the log's item -> skill map: the skill prior and the model's
    ``skills`` section).

    Logs INFO ``calibrated`` (iterations, convergence, log-likelihood and its history, skill
    prior and skills, items,
    training and held-out answers); with ``MODEL_OPTIONS``, then fits the learning-aware
    options (step 6b, :func:`_fit_learning`: INFO ``learning_calibrated``; 422
    ``invalid_data`` when they cannot be fitted).  With ``MODEL_OPTIONS=auto`` the options are
    first chosen on validation students of the training answers (:mod:`irt.engine.auto`:
    INFO ``options_chosen`` with the validation table), then the chosen set is fitted on
    every training answer.  Raises nothing else of its own.
    """
    config, train, held_out = run.config, holdout.train, holdout.held_out
    t0 = time.perf_counter()
    fit_config = config.fit_config()
    item_skill, skill_ids = _item_skills(prepared.skills, train.item_ids)
    result = fit(train, fit_config, item_skill, skill_ids)
    log_step(run.say, "model calibrated", event="calibrated", since=t0,
             model_type=config.model_type, iterations=result.iterations,
             converged=result.converged, log_likelihood=result.log_likelihood,
             skill_prior=result.model.fit.get("skill_prior", False),
             n_skills=len(result.model.skills.get("parameters", {})),
             log_posterior_by_iteration=[round(v, 4) for v in result.history],
             n_items=result.model.n_items, excluded_items=len(result.model.excluded_items),
             train_answers=train.n_answers, holdout_answers=int(held_out.sum()))
    options, choice = config.model_options, None
    order_key = holdout.order_key[~held_out]
    if options == (AUTO,):  # 6a. choose the options on validation students of the training
        choice = _choose_options(run, fit_config, train, order_key, prepared)
        options = choice.options
        if not options:
            return Calibrated(choice.attach(result.model), result, fit_config,
                              selection=choice.to_dict())
    if options:  # 6b. the learning-aware options, on the same training answers
        from irt.engine.learning_fit import base_for_options

        base = base_for_options(result.model, options, train, fit_config, item_skill,
                                skill_ids)  # calibrated options: without the skill prior
        learning = _fit_learning(config, base, train, order_key, prepared.skills,
                                 prepared.responses.item_ids, run.say, options)
        model = learning.model if choice is None else choice.attach(learning.model)
        return Calibrated(model, result, fit_config, learning.converged, learning.iterations,
                          None if choice is None else choice.to_dict())
    return Calibrated(result.model, result, fit_config)


def _choose_options(run: Run, fit_config: FitConfig, train: Any, order_key: np.ndarray,
                    prepared: Prepared) -> OptionChoice:
    """``MODEL_OPTIONS=auto``: :func:`irt.engine.auto.choose_options` on the training
    answers; logs INFO ``options_chosen`` with the validation table."""
    from irt.engine.auto import choose_options

    t0 = time.perf_counter()
    item_skill, skill_ids = _item_skills(prepared.skills, prepared.responses.item_ids)
    try:
        choice = choose_options(train, order_key, item_skill, skill_ids, fit_config,
                                _learning_config(run.config, ()))
    except ValueError as exc:
        raise _StopError(422, "invalid_data", f"learning options (auto): {exc}") from exc
    selection = choice.to_dict()
    log_step(run.say, "options chosen: " + ("+".join(choice.options) or "plain"),
             event="options_chosen", since=t0, chosen=list(choice.options),
             n_validation_students=choice.n_validation_students,
             validation=selection["table"])
    return choice


def fall_back_to_plain(run: Run, calibrated: Calibrated, verdict: GateResult) -> Calibrated:
    """Step 7a (``MODEL_OPTIONS=auto`` only): the option set ``auto`` chose lost to the plain
    2PL challenger on the gate's held-out answers (``verdict.against_plain``), so the plain
    2PL fitted on the same training answers takes its place, to be gated against the serving
    model as any plain candidate is.  ``auto``'s record (``option_selection``) keeps its
    validation table, with ``chosen`` now ``[]`` and ``gate_fallback``: the set, the gate's
    reasons and both models' held-out metrics.  Logs WARNING ``options_fallback``.
    """
    selection = dict(calibrated.selection or {})
    figures = verdict.to_dict()
    lost = {"options": selection.get("chosen", []), "reasons": verdict.against_plain,
            "new": figures["new"], "plain": figures["plain"]}
    selection.update(chosen=[], gate_fallback=lost)
    plain = calibrated.result.model
    model = replace(plain, fit={**plain.fit, "option_selection": selection}, _index=None,
                    _cache={})
    log_step(run.say, "options " + "+".join(lost["options"]) + " lost to the plain 2PL on the "
             "held-out answers: the plain 2PL is the candidate", severity="WARNING",
             event="options_fallback", options=lost["options"], reasons=lost["reasons"])
    return Calibrated(model, calibrated.result, calibrated.fit_config, selection=selection)


def quality_gate(run: Run, prepared: Prepared, holdout: Holdout, model: ItemModel,
                 serving: Serving, plain: ItemModel | None = None
                 ) -> tuple[GateResult, Replay | None]:
    """Step 7: score the new and the serving model (and, for a model with learning-aware
    options, ``plain``: the plain 2PL fitted on the same training answers) on the same
    held-out answers, online.

    Logs the verdict (INFO ``gate`` when it passed, WARNING when it failed) with both models'
    metrics; a failed gate rejects the model later, at the decision.  Raises nothing.

    Returns:
        The verdict, and the new model's online replay of the held-out students
        (:func:`irt.refresh.quality.holdout_replay`; ``None`` when nothing is held out),
        which the slices (:func:`monitor`) and the report (:func:`build_report_html`) reuse.
    """
    t0 = time.perf_counter()
    responses, held_out, order_key = prepared.responses, holdout.held_out, holdout.order_key
    item_ids = np.asarray(responses.item_ids, dtype=object)[responses.item]
    n_hold = int(held_out.sum())
    n_hold_students = int(np.unique(responses.student[held_out]).shape[0])
    replay = holdout_replay(model, responses.student, item_ids, responses.correct,
                            order_key, held_out) if n_hold else None
    new_scores = holdout_scores(model, responses.student, item_ids, responses.correct,
                                order_key, held_out, replay) if n_hold else {}
    serving_scores = plain_scores = None
    if serving.model is not None and n_hold:
        serving_scores = holdout_scores(serving.model, responses.student, item_ids,
                                        responses.correct, order_key, held_out)
    if plain is not None and n_hold:  # the plain 2PL challenger of a model with options
        plain_scores = holdout_scores(plain, responses.student, item_ids, responses.correct,
                                      order_key, held_out)
    verdict = gate(new_scores, serving_scores, run.config.gate, n_hold, n_hold_students,
                   plain_scores)
    log_step(run.say, "quality gate " + ("passed" if verdict.passed else "failed"),
             severity="INFO" if verdict.passed else "WARNING", event="gate", since=t0,
             **verdict.to_dict())
    return verdict, replay


def monitor(run: Run, prepared: Prepared, holdout: Holdout, calibrated: Calibrated,
            serving: Serving, verdict: GateResult, replay: Replay | None = None,
            challenger: Challenger | None = None) -> Checks:
    """Step 7b: the monitoring checks (:mod:`irt.refresh.monitoring`); ``replay``: the
    gate's online replay of the new model (:func:`quality_gate`), which the slices reuse;
    ``challenger``: the simpler model's fit started by :func:`start_challenger` (waited for
    here; without it, or of another kind, the challenger is fitted here).

    Input drift, numerical stability, training/serving skew, a simpler baseline, slices, the
    serving model on served data, the staleness curve (the stored versions of
    :func:`stored_versions_by_age`).  Logs each alert (WARNING ``monitoring_alert``, for the
    monitoring alert policy), then the outcome (INFO ``monitoring``, WARNING when a problem
    was found) with the figures.  Problems reject the model later, as a failed gate does.
    Raises :class:`_StopError` 503 ``store_unavailable`` only when the store cannot be listed
    or a stored model read for the staleness curve (as any other read of the run).
    """
    config, fit_config = run.config, calibrated.fit_config
    t0 = time.perf_counter()

    def fit_simpler(kind: str) -> ItemModel:
        if challenger is not None and challenger.kind == kind:
            return challenger.model()
        return _fit_simpler(config, fit_config, holdout.train, kind)

    result = calibrated.result
    checks = run_checks(config.monitoring, new_model=calibrated.model, history=result.history,
                        log_likelihood=result.log_likelihood, converged=result.converged,
                        responses=prepared.responses, answered_at=prepared.answered_at,
                        held_out=holdout.held_out, new_scores=verdict.new or None,
                        serving_model=serving.model, serving_report=serving.report,
                        serving_metrics=serving.metrics,
                        holdout_last=config.gate.holdout_last, model_type=config.model_type,
                        fit_simpler=fit_simpler,
                        item_skills=_skill_names(prepared.skills, prepared.responses.item_ids),
                        aged_models=stored_versions_by_age(run, serving), new_replay=replay)
    if calibrated.learning_converged is False:  # as the plain EM's, in numerical_checks
        checks.problems.append(f"learning options: EM did not converge in "
                               f"{calibrated.learning_iterations} iterations")
    for alert in checks.alerts:
        log_step(run.say, f"monitoring alert ({alert['check']}): {alert['message']}",
                 severity="WARNING", event="monitoring_alert", check=alert["check"],
                 detail=alert["message"])
    log_step(run.say, "monitoring checks " + ("failed" if checks.problems else "passed"),
             severity="WARNING" if checks.problems else "INFO", event="monitoring", since=t0,
             problems=checks.problems,
             **{k: v for k, v in checks.figures.items() if k != "config"})
    return checks


def stored_versions_by_age(run: Run, serving: Serving) -> list[tuple[int, str, float,
                                                                     ItemModel]]:
    """The stored models of the staleness curve: for each age of
    :data:`irt.refresh.monitoring.STALENESS_AGES` (7 and 30 days), the published version (or
    the serving one) whose window ended closest to that many days before this run's window
    end, if one ended within half that age of it (a 7-day point is 3.5-10.5 days old).

    The window end is read from the version id (``<window end>-<digest>``). A model that
    does not load is left out with a WARNING ``staleness_model_invalid``.

    Returns:
        ``(target age, version, its age in days, model)`` per age found, youngest first.
    """
    with _store_unavailable(f"cannot list {run.store.location}"):
        listing = run.store.versions()
    candidates = []
    for version, names in listing.items():
        if not (PUBLISHED in names or version == serving.version):
            continue
        try:
            end = datetime.strptime(version.split("-", 1)[0], "%Y%m%dT%H%M%SZ").replace(
                tzinfo=UTC)
        except ValueError:
            continue
        candidates.append(((run.window_end - end).total_seconds() / 86400.0, version))
    out: list[tuple[int, str, float, ItemModel]] = []
    for target in STALENESS_AGES:
        near = [(abs(age - target), age, v) for age, v in candidates
                if abs(age - target) <= target / 2]
        if not near:
            continue
        _, age, version = min(near)
        if version == serving.version and serving.model is not None:
            out.append((target, version, age, serving.model))
            continue
        with _store_unavailable(f"cannot read {run.store.location}"):
            raw = run.store.get(version, "model.json")
        try:
            out.append((target, version, age, load_model(raw or b"")))
        except ModelFormatError as exc:
            log_step(run.say, f"stored model {version} is unreadable: {exc}; left out of the "
                     "staleness curve", severity="WARNING", event="staleness_model_invalid")
    return out


def name_version(run: Run, prepared: Prepared, holdout: Holdout) -> str:
    """Step 8: the version id, ``<window end>-<digest>``: the same window, settings, code and
    data give the same id.  Logs nothing and raises nothing."""
    digest = version_digest(run.config.summary(), (run.window_start, run.window_end),
                            prepared.responses, holdout.held_out)
    return f"{run.window_end:%Y%m%dT%H%M%SZ}-{digest[:10]}"


def decide(options: RunOptions, reasons: list[str]) -> str:
    """The decision: ``rejected`` on any reason (unless forced), else ``dry_run`` when asked,
    else ``forced`` (reasons overridden) or ``accepted``."""
    if reasons and not options.force:
        return "rejected"
    if options.dry_run:
        return "dry_run"
    return "forced" if reasons else "accepted"


def stamp_model(run: Run, model: ItemModel, version: str, data: dict[str, Any]) -> ItemModel:
    """The model with its version, creation time, data report and window."""
    return replace(model, version=version, created_at=run.now.isoformat(),
                   data_summary={**model.data_summary, "prepare": data,
                                 "window_start": run.window_start.isoformat(),
                                 "window_end": run.window_end.isoformat()})


def check_size(run: Run, candidate: Candidate) -> None:
    """Step 8, first: the model within ``MAX_MODEL_ITEMS`` items and ``MAX_MODEL_BYTES``
    bytes of ``model.json`` (:func:`irt.engine.artifact.check_model_size`, the caps predict's
    loader applies: a model it would reject is never published).

    Raises :class:`_StopError` 422 ``model_too_large`` naming the cap; nothing is written and
    ``LATEST`` is unchanged (``force`` does not override it).
    """
    model = candidate.model
    try:
        check_model_size(len(_model_json(model)), model.n_items,
                         run.config.max_model_bytes, run.config.max_model_items)
    except ModelFormatError as exc:
        raise _StopError(422, "model_too_large", f"{exc}; nothing written, LATEST unchanged",
                         version=candidate.version, n_items=model.n_items) from None


def _model_json(model: ItemModel) -> bytes:
    """``model.json``'s bytes, serialised once per model (the size check and the upload
    share them; 0.7 s for ASSISTments' 17,700 items)."""
    cached = model._cache.get("model_json")
    if cached is None:
        cached = model._cache["model_json"] = model.to_json().encode()  # type: ignore
    return cached  # type: ignore[return-value]


def write_artifacts(run: Run, candidate: Candidate, prepared: Prepared, holdout: Holdout,
                    calibrated: Calibrated, serving: Serving, replay: Replay | None = None,
                    diagnostics: Future | None = None) -> bool:
    """Step 8: upload ``prepared.csv.gz``, ``model.json``, ``metrics.json``, ``report.html``
    (:func:`build_report_html`, from the gate's ``replay`` of the new model and the
    ``diagnostics`` started by :func:`start_report_diagnostics`; absent if it failed) and,
    last, ``report.json`` under the version (a rejected model's too: its report says why).

    ``prepared.csv.gz`` is created only if absent (:meth:`ArtifactStore.create`): it claims
    the version, so a second run of the same window and data never rewrites what the first
    wrote, published or about to be (:func:`_claim_taken`).  Returns ``False``, writing
    nothing, when that other run has published the version.

    Logs INFO ``artifacts_written`` with the size of the prepared CSV.  Raises
    :class:`_StopError` 503 ``store_unavailable`` when an upload fails (``LATEST`` unchanged),
    409 ``version_busy`` when another run holds the version.
    """
    version, store = candidate.version, run.store
    metrics_doc = _metrics_doc(run, candidate, serving)
    report_doc = _report_doc(run, candidate, prepared, calibrated, serving)
    html = build_report_html(run, candidate, prepared, holdout, serving, report_doc,
                             metrics_doc, replay, diagnostics)
    t0 = time.perf_counter()
    with _store_unavailable(f"upload of {version} failed", after="; LATEST unchanged"):
        csv_bytes = prepared_csv(prepared.responses, prepared.answered_at, holdout.held_out)
        if not store.create(version, "prepared.csv.gz", csv_bytes, "application/gzip"):
            if _claim_taken(run, version):
                return False
            store.put(version, "prepared.csv.gz", csv_bytes, "application/gzip")
        store.put(version, "model.json", _model_json(candidate.model),
                  "application/json")
        store.put(version, "metrics.json", json.dumps(metrics_doc, indent=1).encode(),
                  "application/json")
        if html is not None:
            store.put(version, "report.html", html, "text/html; charset=utf-8")
        store.put(version, "report.json", json.dumps(report_doc, indent=1, default=str).encode(),
                  "application/json")
    log_step(run.say, "artifacts written", event="artifacts_written", since=t0,
             version=version, prepared_csv_bytes=len(csv_bytes))
    return True


#: After this long a claimed, unpublished version's writer is surely dead (prepare's longest
#: timeout, ``prepare_timeout_seconds`` <= 1800), so its files may be rewritten.
CLAIM_LEASE_SECONDS = 1800.0


def _claim_taken(run: Run, version: str) -> bool:
    """Another run wrote ``version``'s ``prepared.csv.gz`` first.  ``True``: it is published
    (serving or ``PUBLISHED``), leave it.  ``False``: its writer will not publish it (its
    report says ``dry_run`` or ``rejected``, or records ``canary_failed``) or died (claim older than
    :data:`CLAIM_LEASE_SECONDS`): rewrite it.  Otherwise raise :class:`_StopError` 409
    ``version_busy``: its writer may still publish it, and its files must not change."""
    store = run.store
    if store.read_pointer()[0] == version or PUBLISHED in store.versions().get(version, []):
        return True
    report = store.get(version, "report.json")
    try:
        doc = parse_document(report) if report else {}
        decision, failed = doc.get("decision"), doc.get("canary_failed")
    except (ValueError, AttributeError):
        decision, failed = None, None
    if decision in ("dry_run", "rejected") or failed:
        return False
    created = store.created(version, "prepared.csv.gz")
    if created is None or time.time() - created > CLAIM_LEASE_SECONDS:
        return False
    raise _StopError(409, "version_busy",
                     f"another run of the same window and data is writing {version} (claimed "
                     f"{time.time() - created:.0f} s ago); nothing written, LATEST unchanged",
                     version=version)


def build_report_html(run: Run, candidate: Candidate, prepared: Prepared, holdout: Holdout,
                      serving: Serving, report_doc: dict[str, Any],
                      metrics_doc: dict[str, Any], replay: Replay | None = None,
                      diagnostics: Future | None = None) -> bytes | None:
    """Step 8: ``report.html`` (:mod:`irt.refresh.report`): the new model's curves, parameters
    and fit flags on the training answers, the reliability diagram of its held-out
    predictions (the gate's ``replay`` of the new model when given, else replayed as the
    gate replays them), and the new model against the serving one, with the gate, the data
    and every warning of ``report_doc`` and ``metrics_doc``; the fit statistics from
    ``diagnostics`` (:func:`start_report_diagnostics`) when given.

    Logs INFO ``report_built`` with the page's size.  Best effort: a failure is logged
    (WARNING ``report_failed``, with the error) and the version is written without the page.
    Raises nothing.
    """
    from irt.refresh.report import build_report, holdout_predictions, render_html

    t0 = time.perf_counter()
    try:
        responses, held_out = prepared.responses, holdout.held_out
        item_ids = np.asarray(responses.item_ids, dtype=object)[responses.item]
        *predictions, what = holdout_predictions(candidate.model, responses.student, item_ids,
                                                 responses.correct, holdout.order_key,
                                                 held_out, replay=replay)
        html = render_html(build_report(
            candidate.model, holdout.train, predictions=tuple(predictions),
            predictions_note=f"{what} (their latest answers, left out of calibration), each "
                             "predicted from the student's earlier answers only",
            serving_model=serving.model, run=report_doc, metrics=metrics_doc,
            title=f"IRT model {candidate.version} ({candidate.decision})",
            diagnostics=None if diagnostics is None else diagnostics.result())).encode()
    except Exception as exc:  # a report is for people: it never stops a refresh
        log_step(run.say, f"report.html not built: {type(exc).__name__}: {exc}",
                 severity="WARNING", event="report_failed", since=t0,
                 error=f"{type(exc).__name__}: {exc}")
        return None
    log_step(run.say, "report built", event="report_built", since=t0,
             version=candidate.version, report_html_bytes=len(html))
    return html


def run_canary(run: Run, candidate: Candidate) -> None:
    """Step 8, for a model that may serve: the stored ``model.json``, read back, through the
    serving code (:func:`irt.refresh.monitoring.canary`).

    Logs the outcome (INFO ``canary``, ERROR when it failed) with its figures.  Raises
    :class:`_StopError` 503 ``store_unavailable`` when the model cannot be read back, 422
    ``canary_failed`` when the serving code does not answer as the calibrated model should.
    """
    version = candidate.version
    t0 = time.perf_counter()
    with _store_unavailable(f"cannot read back {version}/model.json"):
        stored = run.store.get(version, "model.json") or b""
    figures, problems = canary(stored, candidate.model, version)
    log_step(run.say, "canary " + ("failed" if problems else "passed"),
             severity="ERROR" if problems else "INFO", event="canary", since=t0,
             version=version, problems=problems, **figures)
    if problems:
        _mark_canary_failed(run, version, problems)
        raise _StopError(422, "canary_failed", "; ".join(problems), version=version,
                         decision=candidate.decision)


def _mark_canary_failed(run: Run, version: str, problems: list[str]) -> None:
    """Record in the unpublished version's ``report.json`` (``canary_failed``: the problems)
    that its writer will not publish it, so that the next run of the same window and data
    takes the version over at once (:func:`_claim_taken`) instead of answering 409
    ``version_busy`` for :data:`CLAIM_LEASE_SECONDS`.  Best effort: on a store failure the
    lease still ends the claim."""
    try:
        raw = run.store.get(version, "report.json")
        doc = parse_document(raw) if raw else {}
        if isinstance(doc, dict):
            doc["canary_failed"] = problems
            run.store.put(version, "report.json",
                          json.dumps(doc, indent=1, default=str).encode(), "application/json")
    except Exception as exc:  # the 422 stands either way
        run.say("WARNING", "canary failure not recorded in report.json",
                event="canary_not_recorded",
                version=version, error=f"{type(exc).__name__}: {exc}"[:300])


def publish(run: Run, candidate: Candidate, serving: Serving) -> None:
    """Step 9: move ``LATEST`` to the version if it still names what served at step 1, then
    write the ``PUBLISHED`` marker (best effort: WARNING ``marker_failed``).

    Logs INFO ``model_published``.  Raises :class:`_StopError` 409 ``pointer_conflict`` when
    another run or a rollback moved ``LATEST`` first (the version stays complete but not
    serving), 503 ``store_unavailable`` when the move fails.
    """
    version, store = candidate.version, run.store
    t0 = time.perf_counter()
    with _store_unavailable("pointer move failed"):
        try:
            store.move_pointer(version, serving.token)
        except PointerConflictError as exc:
            raise _StopError(409, "pointer_conflict",
                             f"{exc}; another run or a rollback published first. {version} is "
                             "complete but not serving", version=version) from exc
    try:
        store.put(version, PUBLISHED, run.now.isoformat().encode(), "text/plain")
    except Exception as exc:  # the pointer moved: the run succeeded; the marker is cosmetic
        log_step(run.say, f"could not write the PUBLISHED marker: {exc}", severity="WARNING",
                 event="marker_failed")
    log_step(run.say, f"model {version} published", event="model_published", since=t0,
             model_version=version, created_at=run.now.isoformat(),
             previous_version=serving.version, decision=candidate.decision,
             n_items=candidate.model.n_items)


# --------------------------------------------------------------------------- helpers
def _floor_hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _skills(table: Any, i_codes: np.ndarray, i_dict: list[Any]
            ) -> tuple[np.ndarray, list[Any], list[Any]]:
    """The log's item -> skill map: ``(skill code per item code, item dictionary, skill
    dictionary)``."""
    k_codes, k_dict = encode(table.column("skill_id"))
    return skill_map(i_codes, k_codes, len(i_dict)), i_dict, k_dict


def _data_report(rows_in: int, sql_drops: dict[str, int], report: Any) -> dict[str, Any]:
    """Rows in and out, the SQL's and the preparation's drops added up, students and items."""
    dropped = {k: sql_drops.get(k, 0) + report.dropped.get(k, 0)
               for k in (*sql_drops, *report.dropped)}
    return {"rows_in": rows_in, "rows_out": report.rows_out, "dropped": dropped,
            "n_students": report.n_students, "n_items": report.n_items}


def _metrics_doc(run: Run, candidate: Candidate, serving: Serving) -> dict[str, Any]:
    """``metrics.json``: the gate's and the monitoring checks' figures."""
    findings = candidate.findings
    checks = findings.checks
    return {"version": candidate.version, "serving_version": serving.version,
            "gate": findings.verdict.to_dict(), "data_violations": findings.violations,
            "gate_config": asdict(run.config.gate), "monitoring": checks.figures,
            "monitoring_problems": checks.problems, "monitoring_alerts": checks.alerts}


def _report_doc(run: Run, candidate: Candidate, prepared: Prepared, calibrated: Calibrated,
                serving: Serving) -> dict[str, Any]:
    """``report.json``: the decision and why, the window, settings, data, fit and gate."""
    result, model, findings = calibrated.result, candidate.model, candidate.findings
    return {"version": candidate.version, "run_id": run.run_id,
            "created_at": run.now.isoformat(), "decision": candidate.decision,
            "reasons": findings.reasons, "serving_version": serving.version,
            "window_start": run.window_start.isoformat(),
            "window_end": run.window_end.isoformat(), "source": run.source.description,
            "config": run.config.summary(), "data": prepared.data,
            "fit": {"iterations": result.iterations, "converged": result.converged,
                    "log_likelihood": result.log_likelihood, "n_items": model.n_items,
                    "excluded_items": len(model.excluded_items)},
            "gate": findings.verdict.to_dict(), "code_version": __version__,
            "option_selection": calibrated.selection, "profile": findings.checks.profile,
            "staleness": findings.checks.figures.get("staleness")}


def _item_skills(skills: tuple[np.ndarray, list[Any], list[Any]] | None,
                 item_ids: tuple[str, ...]) -> tuple[np.ndarray | None, list[str]]:
    """The log's item -> skill map (``(skill code per item code, item dictionary, skill
    dictionary)``) as a skill index per item of ``item_ids`` (``-1``: none) and skill ids."""
    if skills is None:
        return None, []
    codes, i_dict, k_dict = skills
    by_id = {str(i).strip(): int(k) for i, k in zip(i_dict, codes.tolist(), strict=True)
             if k >= 0}
    return (np.array([by_id.get(i, -1) for i in item_ids], dtype=np.int64),
            [str(k).strip() for k in k_dict])


def _skill_names(skills: tuple[np.ndarray, list[Any], list[Any]] | None,
                 item_ids: tuple[str, ...]) -> list[str | None] | None:
    """The skill id of each item of ``item_ids`` (``None``: no skill), for the skill slices;
    ``None`` without a skill column."""
    codes, skill_ids = _item_skills(skills, item_ids)
    if codes is None:
        return None
    return [skill_ids[k] if k >= 0 else None for k in codes.tolist()]


def _learning_config(config: RefreshConfig, options: tuple[str, ...]) -> LearningConfig:
    from irt.engine.learning_fit import LearningConfig

    return LearningConfig(options=options, decay=config.recency_decay,
                          window=config.pfa_window, prior_a=config.prior_a,
                          prior_b=config.prior_b,  # set: from_env refuses PRIOR_B=none
                          max_answers=config.learning_max_answers)


def _fit_learning(config: RefreshConfig, base: ItemModel, train: Any, order_key: np.ndarray,
                  skills: tuple[np.ndarray, list[Any], list[Any]] | None,
                  item_ids: tuple[str, ...], say: Log, options: tuple[str, ...]
                  ) -> LearningFit:
    """:func:`irt.engine.learning_fit.fit_learning` with ``options``; ``skills`` is the
    log's ``(skill code per item code, item dictionary, skill dictionary)``."""
    from irt.engine.learning_fit import fit_learning

    t0 = time.perf_counter()
    item_skill, skill_ids = _item_skills(skills, item_ids)
    try:
        result = fit_learning(base, train, order_key, item_skill, skill_ids,
                              _learning_config(config, options))
    except ValueError as exc:  # e.g. no item has a skill in this window
        raise _StopError(422, "invalid_data", f"learning options: {exc}") from exc
    info = result.model.options["learning"]
    log_step(say, "learning options calibrated", event="learning_calibrated", since=t0,
             options=list(options), iterations=result.iterations,
             converged=result.converged, log_likelihood=result.log_likelihood,
             skill_sd=info.get("skill_sd"), coefficients=info.get("coefficients"),
             n_skills=len(set(info.get("item_skills", {}).values())),
             sample=info.get("fit", {}).get("sample"))
    return result


def _write_rejection(run: Run, data: dict[str, Any], reasons: list[str]) -> None:
    """Record a data-validation rejection (report.json only: no model exists)."""
    version = f"{run.window_end:%Y%m%dT%H%M%SZ}-rejected-{run.run_id}"
    doc = {"version": version, "run_id": run.run_id, "created_at": run.now.isoformat(),
           "decision": "rejected", "reasons": reasons,
           "window_start": run.window_start.isoformat(),
           "window_end": run.window_end.isoformat(), "config": run.config.summary(),
           "data": data, "code_version": __version__}
    # best effort: the rejection itself is logged and returned by the caller
    with contextlib.suppress(Exception):
        run.store.put(version, "report.json", json.dumps(doc, indent=1, default=str).encode(),
                      "application/json")


@contextlib.contextmanager
def _store_unavailable(what: str, after: str = "",
                       also: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Turn a store, OS or cloud error (or one of ``also``) into :class:`_StopError` 503
    ``store_unavailable``: ``"<what>: <error><after>"``.  Other errors pass unchanged."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, (StoreError, OSError, *also)) or _is_cloud_error(exc):
            raise _StopError(503, "store_unavailable", f"{what}: {exc}{after}") from exc
        raise


def _is_cloud_error(exc: BaseException) -> bool:
    """A google-api-core / requests / network error (without importing them)."""
    mod = type(exc).__module__ or ""
    return mod.startswith(("google.api_core", "google.auth", "requests", "urllib3")) or \
        isinstance(exc, (ConnectionError, TimeoutError))
