"""The drills of issue #6 as a named set: ``make drills`` runs ``pytest -m drills`` (at full
size, ``IRT_DRILLS=full``) and then the release load drill (``scripts/drills.py load``).

Tests written as drills carry ``pytestmark = pytest.mark.drills``
(``tests/drills/test_drill_*.py``).
The drills that other parts of the suite already ran before this issue are listed here and
marked ``drills`` at collection (``tests/conftest.py``), so that nothing is duplicated;
``tests/drills/test_drill_registry.py`` checks that every entry still names an existing test.

Each entry: drill -> (expected outcome, ``file::test`` node ids; a parametrized test is named
without its parameters).
"""

from __future__ import annotations

DRILLS: dict[str, tuple[str, tuple[str, ...]]] = {
    # ------------------------------------------------------------ bad input into predict
    "predict: hostile requests (Hypothesis)": (
        "no 5xx; each 4xx a JSON error naming the exact field; 200s echo ids exactly",
        ("drills/test_drill_bad_input.py::test_hostile_requests",
         "drills/test_drill_bad_input.py::test_campaign_size_and_logs")),
    "predict: schemathesis from the OpenAPI file": (
        "valid requests 200 and match the documented response; invalid ones a documented 4xx",
        ("serving/test_predict_live.py::test_schemathesis_live",
         "serving/test_predict_live.py::test_schemathesis_exercised_every_operation",
         "serving/test_predict_live.py::test_inputs_that_once_gave_500")),
    "predict: size caps": (
        "413 naming the cap (body, responses, items, students, k), also chunked and live",
        ("serving/test_predict.py::test_size_caps_are_413",
         "drills/test_drill_security.py::test_size_caps_live")),
    "predict: slow and idle clients (issue 17.2)": (
        "16 trickled heads, 16 slow bodies, 200 idle connections: normal requests answered, "
        "each attacker closed by its deadline (JSON 408)",
        ("drills/test_drill_slow_clients.py",)),
    "predict: HTTP edges (issue 17.15)": (
        "unknown Transfer-Encoding a JSON 501, request line over 8190 B a JSON 414, oversized "
        "heads a JSON 431, UTF-16/32 bodies a 400 naming body",
        ("serving/test_predict_live.py::test_unknown_transfer_encoding_is_a_json_501",
         "serving/test_predict_live.py::test_long_request_line_is_refused_before_the_app",
         "serving/test_predict_live.py::test_oversized_headers_are_a_json_431",
         "serving/test_predict_live.py::test_body_must_be_utf8")),
    "predict: a model published while idle (issue 17.10)": (
        "every worker serves it from MODEL_REFRESH_SECONDS + 3 s after the move",
        ("serving/test_predict_live.py::test_idle_instance_picks_up_a_published_model",)),
    # ------------------------------------------------------------ bad input into prepare
    "prepare: malformed rows": (
        "dropped and counted by reason; beyond DATA_MAX_INVALID_SHARE the run is refused",
        ("refresh/test_refresh.py::test_bad_rows_are_dropped_and_counted",
         "refresh/test_refresh.py::test_malformed_rows_beyond_the_threshold_stop_the_run")),
    "prepare: schema change, empty window, row count": (
        "422 invalid_schema naming the COLUMN_* variable / no_data / invalid_data; nothing "
        "published",
        ("refresh/test_refresh.py::test_empty_window_and_bad_schema_are_refused",
         "refresh/test_refresh.py::test_row_count_is_checked_against_the_previous_run")),
    "prepare: injection in operator overrides": (
        "400 (request) or misconfigured (environment) naming the field; no SQL runs",
        ("refresh/test_refresh.py::test_run_options_are_validated",
         "refresh/test_refresh.py::test_configuration_errors_name_the_variable",
         "refresh/test_prepare_function.py::test_http_contract",
         "refresh/test_prepare_sql.py")),
    # ------------------------------------------------------------ faults
    "storage down at predict's cold start": (
        "503 + Retry-After, then recovery without restart",
        ("serving/test_predict_gcs.py::test_cold_start_with_storage_down_is_503_then_recovers",
         "serving/test_predict.py::test_no_model_is_503_then_recovers_without_restart",
         "drills/test_drill_faults.py::test_live_predict_through_a_storage_outage")),
    "storage down while predict is warm": (
        "keeps serving the cached model, zero errors",
        ("serving/test_predict_gcs.py::test_storage_down_while_warm_keeps_serving",
         "drills/test_drill_faults.py::test_live_predict_through_a_storage_outage")),
    "model object truncated or corrupted": (
        "rejected and logged at ERROR, the old model keeps serving",
        ("serving/test_predict_gcs.py::test_corrupt_or_invalid_model_object_keeps_the_old",
         "serving/test_predict.py::test_hot_refresh_swaps_and_corrupt_model_keeps_the_old",
         "drills/test_drill_load.py::test_load_with_a_corrupt_then_a_good_refresh")),
    "BigQuery error mid-run": (
        "503 source_unavailable, nothing published",
        ("refresh/test_refresh.py::test_source_error_mid_run_publishes_nothing",
         "drills/test_drill_faults.py::test_bigquery_error_mid_run_publishes_nothing")),
    "killed between artifact upload and pointer move": (
        "LATEST still names a complete model; the orphan is listed 'unpublished'",
        ("refresh/test_refresh.py::test_killed_between_upload_and_pointer_move",
         "refresh/test_prepare_function.py::test_failure_between_upload_and_pointer_on_cloud_storage")),
    "two concurrent refreshes": (
        "exactly one publishes, the other gets 409",
        ("refresh/test_refresh.py::test_two_concurrent_runs_publish_exactly_once",
         "refresh/test_refresh.py::test_losing_the_pointer_race_is_a_409_and_leaves_the_winner",
         "refresh/test_prepare_function.py::test_pointer_precondition_on_cloud_storage")),
    # ------------------------------------------------------------ load
    "load with model refreshes (CI size)": (
        "16 clients, gunicorn 2x4: all 200; a corrupt version never answers; the new one "
        "takes over",
        ("drills/test_drill_load.py::test_load_with_a_corrupt_then_a_good_refresh",)),
    # ------------------------------------------------------------ security
    "no student identifiers in logs": (
        "no log line of predict or prepare carries a student id",
        ("drills/test_drill_logs.py",
         "serving/test_predict.py::test_logs_are_structured_and_carry_no_student_ids",
         "drills/test_drill_bad_input.py::test_campaign_size_and_logs")),
    "secrets never in code or Terraform": (
        "no key, token or password in any tracked file; no service-account keys in Terraform",
        ("drills/test_drill_security.py::test_no_secrets_in_tracked_files",
         "drills/test_drill_security.py::test_terraform_creates_no_keys_and_passes_no_secrets")),
    "Terraform invariants": (
        "private functions and buckets, least privilege, alerts (tests/deploy/test_terraform.py)",
        ("deploy/test_terraform.py",)),
}


def node_ids() -> set[str]:
    """Every registered ``file`` or ``file::test``."""
    return {node for _, nodes in DRILLS.values() for node in nodes}


def is_drill(nodeid: str) -> bool:
    """Does the pytest node id (``tests/file.py::test[param]``) belong to a registered drill?"""
    rel = nodeid.split("tests/", 1)[-1]
    path, _, name = rel.partition("::")
    name = name.split("[", 1)[0]
    return path in node_ids() or f"{path}::{name}" in node_ids()
