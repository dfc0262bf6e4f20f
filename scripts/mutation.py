"""The mutation check of ``docs/ml-test-score.md`` (``make mutation``).

Each mutant is one small change to the guarded code, the audit's 18 of issue #18. For each,
the tree is copied to a temporary folder (tracked and untracked, not ignored, files; the
working tree is never touched), the change applied there, and the tests that the score
document names for that point run on the copy. A mutant is *caught* when they fail.
Nothing in production code knows about this: no switches, no environment variables.

Usage: ``python scripts/mutation.py [--only NAME ...] [--out build/mutation]``.
Writes ``summary.md`` and ``summary.json`` there; exit status 1 when a mutant survived.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MON = "shared/irt/refresh/monitoring.py"
PIPE = "shared/irt/refresh/pipeline.py"
TFMON = "terraform/irt/monitoring.tf"
TM = "tests/refresh/test_monitoring.py"
TR = "tests/refresh/test_refresh.py"
TQ = "tests/engine/test_model_quality.py"
TA = "tests/deploy/test_alert_semantics.py"
TT = "tests/deploy/test_terraform.py"
TP = "tests/serving/test_model_probe.py"
LOADER = "shared/irt/serving/loader.py"
TFVAR = "terraform/irt/variables.tf"
PERF = "scripts/perf_regression.py"
TPR = "tests/deploy/test_perf_regression.py"
TFAST = "tests/serving/test_predict_fastpath.py"
ABILITY = "shared/irt/engine/ability.py"
TAB = "tests/engine/test_ability.py"


@dataclass(frozen=True)
class Mutant:
    name: str
    point: str  # the ML Test Score row it guards
    changes: tuple[tuple[str, str, str], ...]  # (file, old, new): old occurs exactly once
    tests: tuple[str, ...]


MUTANTS = (
    Mutant("schema check passes anything", "data 1",
           (("shared/irt/refresh/sources.py", "    lower = {k.lower(): v.upper() for k, v in "
             "schema.items()}\n", "    return []\n    lower = {}\n"),),
           (f"{TR}::test_empty_window_and_bad_schema_are_refused",)),
    Mutant("item-proportion baseline no longer rejects", "model 5",
           ((MON, "        out.problems += beats_baseline(new_scores, base, "
             "config.baseline_tolerance)\n",
             "        beats_baseline(new_scores, base, config.baseline_tolerance)\n"),),
           (f"{TM}::test_a_model_no_better_than_item_proportions_is_rejected",)),
    Mutant("failed gate does not reject", "infrastructure 4",
           ((PIPE, "return self.violations + self.verdict.reasons + self.checks.problems",
             "return self.violations + self.checks.problems"),),
           (f"{TR}::test_failed_gate_keeps_the_old_model_and_force_overrides",)),
    Mutant("canary failure does not stop the publish", "infrastructure 6",
           ((PIPE, "    if problems:\n        _mark_canary_failed(",
             "    if problems and False:\n        _mark_canary_failed("),),
           (f"{TM}::test_a_canary_failure_stops_the_publish",)),
    Mutant("version id depends on the run, not the data", "infrastructure 1",
           ((PIPE, "digest = version_digest(run.config.summary(),",
             "digest = version_digest({**run.config.summary(), 'run': run.run_id},"),),
           ("tests/engine/test_model_quality.py::test_training_is_reproducible",
            f"{TR}::test_rerunning_the_same_window_changes_nothing")),
    Mutant("rollback serves a rejected version", "infrastructure 7",
           (("shared/irt/tools/ops.py", 'if info.status == "rejected" and not force:',
             'if info.status == "rejected" and not force and False:'),),
           (f"{TR}::test_ops_refuses_rejected_and_incomplete_versions",)),
    Mutant("slope floor ignored", "data 2",
           (("shared/irt/engine/calibrate.py", "else a < cfg.min_slope\n",
             "else a < -1e9\n"),),
           ("tests/engine/test_calibrate.py::test_bad_items_are_excluded_with_a_reason",)),
    Mutant("malformed-row threshold ignored", "monitoring 2",
           (("shared/irt/refresh/quality.py",
             "if rows_in and invalid / rows_in > thresholds.max_invalid_share:",
             "if rows_in and invalid / rows_in > 1e9:"),),
           (f"{TR}::test_malformed_rows_beyond_the_threshold_stop_the_run",)),
    Mutant("loader accepts NaN/Infinity", "monitoring 5",
           (("shared/irt/engine/artifact.py",
             "doc = json.loads(text, parse_constant=_reject_constant,",
             "doc = json.loads(text,"),),
           ("tests/engine/test_model.py::test_rejects_non_finite_literals",)),
    Mutant("a student id in prepare's log", "data 4",
           ((PIPE, 'log_step(run.say, "answers prepared", event="prepared", since=t0, **data)',
             'log_step(run.say, "answers prepared", event="prepared", since=t0, **data,\n'
             '             first=prepared.responses.student_ids[0])'),),
           ("tests/drills/test_drill_logs.py::test_prepare_logs_carry_no_student_id",)),
    Mutant("served-quality alert never raised", "monitoring 7",
           ((MON, "if not online >= offline_auc - config.served_max_auc_drop:",
             "if False:"),),
           (f"{TM}::test_a_degraded_serving_model_raises_the_served_quality_alert",)),
    # the seven the audit found surviving the tests named then
    Mutant("skew no longer rejects", "monitoring 3",
           ((MON, "    out.figures[\"skew\"] = figures\n    out.problems += problems\n",
             "    out.figures[\"skew\"] = figures\n"),),
           (f"{TM}::test_skew_check_finds_none_between_the_serving_path_and_training",
            f"{TM}::test_skew_check_catches_a_serving_path_that_drops_an_answer",
            f"{TM}::test_a_skew_failure_rejects_the_refresh")),
    Mutant("a failing slice no longer rejects", "model 6",
           ((MON, "        out.figures[\"slices\"] = figures\n        out.problems += problems\n",
             "        out.figures[\"slices\"] = figures\n"),),
           (f"{TM}::test_slices_pass_a_sound_model_and_fail_a_broken_one",
            f"{TM}::test_a_slice_failure_rejects_the_refresh")),
    Mutant("numerical problems no longer reject", "monitoring 5",
           ((MON, "    out.figures[\"numerical\"] = figures\n    out.problems += problems\n",
             "    out.figures[\"numerical\"] = figures\n    out.problems += [p for p in problems "
             "if 'converge' in p]\n"),),
           (f"{TM}::test_numerical_checks_pass_a_fit_and_catch_broken_parameters",
            f"{TR}::test_an_unconverged_fit_is_never_published",
            f"{TM}::test_a_numerical_failure_rejects_the_refresh")),
    Mutant("prepare's default PRIOR_A (1.5, 0.05)", "model 3",
           (("shared/irt/engine/defaults.py", "    prior_a: Pair | None = (0.0, 0.5)\n",
             "    prior_a: Pair | None = (1.5, 0.05)\n"),),
           (f"{TQ}::test_default_priors_are_within_reach_of_the_best_of_a_grid",
            f"{TQ}::test_quality_on_fixed_data_has_not_regressed")),
    Mutant("staleness alert comparison flipped", "monitoring 4",
           ((TFMON, "COMPARISON_LT", "COMPARISON_GT"),),
           ("tests/deploy/test_terraform.py::"
            "test_alerts_watch_refresh_failures_model_age_and_predict_5xx",
            f"{TA}::test_model_stale_fires_when_publishing_stops_and_not_while_it_goes_on")),
    Mutant("log-metric alerts' default threshold 0 -> 1000 (refresh_failed, refresh attempt, "
           "monitoring_alert, model_rejected, model_behind)",
           "monitoring 1",
           ((TFMON, '    threshold     = 0\n    duration      = "0s"\n',
             '    threshold     = 1000\n    duration      = "0s"\n'),),
           ("tests/deploy/test_terraform.py::"
            "test_alerts_watch_refresh_failures_model_age_and_predict_5xx",
            "tests/deploy/test_terraform.py::"
            "test_ml_monitoring_alerts_watch_findings_inputs_latency_and_memory",
            f"{TA}::test_one_logged_line_fires_and_none_stays_quiet")),
    Mutant("model age zeroed", "model 4",
           ((MON, "    age_days = (order_key[order] - served_since) / 86400.0\n",
             "    age_days = 0.0 * (order_key[order] - served_since) / 86400.0\n"),),
           (f"{TM}::test_served_quality_compares_online_with_offline_and_by_age",
            f"{TM}::test_served_quality_counts_each_answer_at_the_model_age_it_was_served",
            f"{TR}::test_a_new_window_is_gated_against_the_serving_model")),
    Mutant("serving's item-id trimming removed", "monitoring 3, data 7",
           (("shared/irt/serving/requests.py", "    return _id(value, path, limits).strip()\n",
             "    return _id(value, path, limits)\n"),),
           ("tests/refresh/test_skew.py::test_prepare_and_predict_count_the_same_answers",)),
    # model 6 (issue #18, Model section): relative marks, skill slices, the cold-start slice
    Mutant("slice marks absolute again (no overall figure)", "model 6",
           ((MON, "                                         new_scores.get(\"auc\"), answer_skill,",
             "                                         None, answer_skill,"),),
           (f"{TM}::test_slice_marks_are_relative_to_the_overall_auc_and_slices_include_skills",
            f"{TM}::test_a_skill_slice_below_the_relative_mark_rejects_the_refresh")),
    Mutant("skill slices dropped", "model 6",
           ((MON, "    if answer_skill is not None:\n        skill = ",
             "    if False:\n        skill = "),),
           (f"{TM}::test_slice_marks_are_relative_to_the_overall_auc_and_slices_include_skills",
            f"{TM}::test_a_skill_slice_below_the_relative_mark_rejects_the_refresh")),
    Mutant("cold-start slice not judged", "model 6",
           ((MON, "masks.append((\"cold start\", rank < COLD_START_ANSWERS, cold_mark))",
             "masks.append((\"cold start\", rank < 0, cold_mark))"),),
           (f"{TM}::test_the_cold_start_slice_is_judged",
            f"{TM}::test_a_cold_start_failure_rejects_the_refresh")),
    # model 4: staleness measured with the stored versions on the newest held-out answers
    Mutant("staleness curve computed with the new model", "model 4",
           ((MON, "        out.figures[\"staleness\"] = staleness_curve(new_scores, aged_models, ",
             "        out.figures[\"staleness\"] = staleness_curve(new_scores, "
             "[(t, v, a, new_model) for t, v, a, _ in aged_models], "),),
           (f"{TM}::test_staleness_is_measured_with_the_stored_versions_on_the_newest_answers",)),
    Mutant("staleness points: the farthest version within the tolerance", "model 4",
           ((PIPE, "        _, age, version = min(near)\n",
             "        _, age, version = max(near)\n"),),
           (f"{TM}::test_the_staleness_points_are_the_published_versions_closest_to_7_and_30_days",
            f"{TM}::test_staleness_is_measured_with_the_stored_versions_on_the_newest_answers")),
    # model 3: each tuned default moved to a bad value (the grid tests read the real defaults)
    Mutant("default slope floor 0.05 -> 0.5", "model 3",
           (("shared/irt/engine/defaults.py", "    min_slope: float = 0.05\n",
             "    min_slope: float = 0.5\n"),),
           (f"{TQ}::test_default_slope_floor_is_within_reach_of_the_best_of_a_grid",)),
    Mutant("prod window 365 -> 30 days", "model 3",
           (("terraform/environments/prod/terraform.tfvars",
             "prepare_window_days          = 365", "prepare_window_days          = 30"),),
           (f"{TQ}::test_default_window_length_is_within_reach_of_the_best_of_a_grid",)),
    Mutant("prod per-item cap 5000 -> 100", "model 3",
           (("terraform/environments/prod/terraform.tfvars",
             "prepare_max_answers_per_item = 5000", "prepare_max_answers_per_item = 100"),),
           (f"{TQ}::test_default_answer_cap_is_within_reach_of_the_best_of_a_grid",)),
    Mutant("default recency decay 0.95 -> 0.99", "model 3",
           (("shared/irt/engine/defaults.py", "    recency_decay: float = 0.95\n",
             "    recency_decay: float = 0.99\n"),),
           (f"{TQ}::test_default_recency_decay_is_within_reach_of_the_best_of_a_grid",)),
    # model 2: the offline/online study runs the real next-items code
    Mutant("next-items aims at 0.5, not the target", "model 2",
           (("shared/irt/engine/selection.py", "np.round(np.abs(probability - target), 12)",
             "np.round(np.abs(probability - 0.5), 12)"),),
           ("tests/tools/test_online_study.py::"
            "test_the_better_offline_model_gives_the_better_practice",
            "tests/tools/test_online_study.py::"
            "test_offline_metrics_rank_the_models_as_the_lms_outcome_does")),
    Mutant("next-items ignores the learner's answers", "model 2",
           (("shared/irt/serving/plain.py", "    chosen = next_items(model, theta, req.k, ",
             "    chosen = next_items(model, 0.0, req.k, "),),
           ("tests/tools/test_online_study.py::"
            "test_the_better_offline_model_gives_the_better_practice",
            "tests/tools/test_online_study.py::"
            "test_offline_metrics_rank_the_models_as_the_lms_outcome_does")),
    # issue #18, second part (mon): infrastructure 6, monitoring 1, 4, 6, 7
    Mutant("predict swaps a new model in without probing it", "infrastructure 6",
           ((LOADER, "            if problems:\n                self._reject(",
             "            if problems and False:\n                self._reject("),),
           (f"{TP}::test_a_new_model_failing_the_canary_answers_is_rejected_and_the_old_one_"
            "serves",)),
    Mutant("predict's rejection logs no model_rejected event", "infrastructure 6",
           ((LOADER, "event=\"model_rejected\", ", ""),),
           (f"{TA}::test_predict_model_alerts_fire_on_one_line_of_the_loader_and_not_on_none",
            f"{TP}::test_a_new_model_failing_the_canary_answers_is_rejected_and_the_old_one_"
            "serves")),
    Mutant("model_rejected alert counts fetch failures only", "infrastructure 6",
           ((TFMON, "jsonPayload.event=(\\\"model_rejected\\\" OR \\\"model_fetch_failed\\\")",
             "jsonPayload.event=\\\"model_fetch_failed\\\""),),
           (f"{TA}::test_predict_model_alerts_fire_on_one_line_of_the_loader_and_not_on_none",)),
    Mutant("predict never says it is behind LATEST", "monitoring 4",
           ((LOADER, "if behind >= self.refresh_seconds:",
             "if behind >= self.refresh_seconds * 1e6:"),),
           (f"{TP}::test_a_model_that_cannot_be_fetched_is_logged_and_the_instance_says_it_is_"
            "behind",
            f"{TA}::test_predict_model_alerts_fire_on_one_line_of_the_loader_and_not_on_none")),
    Mutant("model_behind alert counts another event", "monitoring 4",
           ((TFMON, "jsonPayload.event=\\\"model_behind\\\"",
             "jsonPayload.event=\\\"model_behinds\\\""),),
           (f"{TA}::test_predict_model_alerts_fire_on_one_line_of_the_loader_and_not_on_none",)),
    Mutant("a notification channel required in prod only", "monitoring 1",
           ((TFVAR, "    condition     = length(var.notification_channels) + "
             "length(var.notification_emails) > 0\n",
             "    condition     = var.environment != \"prod\" || "
             "length(var.notification_channels) + length(var.notification_emails) > 0\n"),),
           (f"{TT}::test_every_alert_notifies_a_channel_required_in_every_environment",)),
    Mutant("the log-metric alert policies notify no one", "monitoring 1",
           ((TFMON, "merge(local.log_metric_alert_defaults, alert) }\n\n"
             "  project               = var.project_id\n"
             "  display_name          = \"IRT ${var.environment}: ${each.value.display_name}\"\n"
             "  combiner              = \"OR\"\n"
             "  notification_channels = local.notification_channels\n",
             "merge(local.log_metric_alert_defaults, alert) }\n\n"
             "  project               = var.project_id\n"
             "  display_name          = \"IRT ${var.environment}: ${each.value.display_name}\"\n"
             "  combiner              = \"OR\"\n"
             "  notification_channels = []\n"),),
           (f"{TT}::test_every_alert_notifies_a_channel_required_in_every_environment",)),
    Mutant("served-AUC trend alert never raised", "monitoring 7",
           ((MON, "if not auc >= median - config.served_trend_margin:", "if False:"),),
           (f"{TM}::test_a_slow_leak_across_versions_raises_the_trend_alert_the_fixed_floor_"
            "misses",
            f"{TM}::test_a_refresh_compares_served_auc_with_the_history_of_published_versions")),
    Mutant("served-AUC history not carried from the serving version", "monitoring 7",
           ((MON, "figures, alerts = served_trend(trend.get(\"history\"),",
             "figures, alerts = served_trend(None,"),),
           (f"{TM}::test_a_refresh_compares_served_auc_with_the_history_of_published_versions",)),
    Mutant("performance regressions within 10x the band pass", "monitoring 6",
           ((PERF, "worse = ratio > b[\"ratio\"] * (1.0 + noise)\n",
             "worse = ratio > b[\"ratio\"] * (1.0 + noise) * 10\n"),
            (PERF, "worse = ratio < b[\"ratio\"] * (1.0 - noise)\n",
             "worse = ratio < b[\"ratio\"] * (1.0 - noise) / 10\n")),
           (f"{TPR}::test_a_regression_beyond_its_noise_band_fails",)),
    Mutant("performance compared by raw value, not same-run ratio", "monitoring 6",
           ((PERF, "ratio, noise = float(c[\"ratio\"]), float(b[\"noise\"])",
             "ratio, noise = float(c[\"value\"]) / float(b[\"reference\"]), "
             "float(b[\"noise\"])"),),
           (f"{TPR}::test_figures_are_compared_by_their_ratio_to_the_same_run_reference",)),
    Mutant("a benchmark dropping out of the comparison passes", "monitoring 6",
           ((PERF, "or (v.status == \"missing\" and not args.allow_missing and "
             "v.name not in optional)]", "or False]"),),
           (f"{TPR}::test_a_figure_missing_from_the_run_fails_unless_allowed",)),
    Mutant("the test build no longer records the performance check's outcome", "monitoring 6",
           (("cloudbuild-test.yaml", "\"$BUILD_ID\", \"test_status\", \"perf_status\"]",
             "\"$BUILD_ID\", \"test_status\"]"),),
           (f"{TPR}::test_make_bench_and_the_test_build_end_with_the_check",)),
    # issue #13: the common predict body decoded by the server (monitoring 3: the decoded
    # path must read and answer what the general path reads and answers)
    Mutant("the decoded body keeps a duplicate key", "monitoring 3",
           (("shared/irt/serving/body.py", "    if raw.count(b\":\") != body.keys_sent():\n",
             "    if False:\n"),),
           (f"{TFAST}::test_decode_single_on_mutated_texts_never_reads_what_parse_json_reads"
            "_otherwise", f"{TFAST}::test_decode_single_leaves_everything_else_to_parse_json")),
    Mutant("the decoded path ignores the cap on answers", "monitoring 3",
           (("shared/irt/serving/plain.py",
             "    if method is None or len(answers) > limits.max_responses or (\n",
             "    if method is None or (\n"),),
           (f"{TFAST}::test_decoded_bodies_of_random_requests",)),
    # issue #13: a long answer set starts its local grid from the mode (infrastructure 2:
    # EAP checked against brute-force integration, the first pass the safety net)
    Mutant("the Laplace start's result taken unsettled", "infrastructure 2",
           ((ABILITY, "            if settled:\n                return mean, sd\n",
             "            return mean, sd\n"),),
           (f"{TAB}::test_a_bad_start_falls_back_to_the_first_pass",)),
    Mutant("Newton's step taken the wrong way", "infrastructure 2",
           ((ABILITY, "        t += step\n", "        t -= step\n"),),
           (f"{TAB}::test_long_answer_sets_start_from_the_mode_and_agree_with_the_first_pass",)),
    # the canary's two bugs found by the prepare audit (infrastructure 6)
    Mutant("canary compares the served SD with the unrounded population SD", "infrastructure 6",
           (("shared/irt/serving/probe.py", "round(model.population_sd, 6)",
             "model.population_sd"),),
           (f"{TM}::test_a_rasch_model_passes_the_canary_and_is_published",)),
    Mutant("canary failure not recorded for the next run", "infrastructure 6",
           ((PIPE, "        _mark_canary_failed(run, version, problems)\n", ""),),
           (f"{TM}::test_a_canary_failure_stops_the_publish",)),
)


def tree_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                         check=True, capture_output=True).stdout.decode()
    return [p for p in out.split("\0") if p and (ROOT / p).is_file()]


def copy_tree(dest: Path, files: list[str]) -> None:
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)


def apply(dest: Path, mutant: Mutant) -> None:
    for rel, old, new in mutant.changes:
        path = dest / rel
        text = path.read_text(encoding="utf-8")
        count = text.count(old)
        if count != 1:
            raise SystemExit(f"mutant {mutant.name!r}: {old!r} occurs {count} times in {rel} "
                             "(the code moved: update scripts/mutation.py)")
        path.write_text(text.replace(old, new), encoding="utf-8")


def run_one(mutant: Mutant, files: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        dest = Path(tmp)
        copy_tree(dest, files)
        apply(dest, mutant)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                               "no:cacheprovider", "-p", "no:randomly", *mutant.tests],
                              cwd=dest, capture_output=True, text=True)
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
        return {"name": mutant.name, "point": mutant.point, "tests": list(mutant.tests),
                "caught": proc.returncode == 1, "returncode": proc.returncode,
                "seconds": round(time.perf_counter() - t0, 1), "result": tail[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="mutant names (substrings) to run")
    parser.add_argument("--out", default=str(ROOT / "build" / "mutation"))
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or any(s in m.name for s in args.only)]
    files = tree_files()
    results = []
    for mutant in chosen:
        r = run_one(mutant, files)
        results.append(r)
        print(f"{'caught  ' if r['caught'] else 'SURVIVED'} {r['point']:<18} {r['name']} "
              f"({r['seconds']} s: {r['result']})", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    lines = ["| mutant | point | caught | tests |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['point']} | {'yes' if r['caught'] else '**no**'} | "
              + ", ".join(f"`{t}`" for t in r["tests"]) + " |" for r in results]
    caught = sum(r["caught"] for r in results)
    lines.append(f"\n{caught} of {len(results)} caught.")
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{caught} of {len(results)} caught; {out / 'summary.md'}")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
