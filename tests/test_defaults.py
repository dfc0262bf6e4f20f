"""One default configuration (issue #13): ``irt fit``, ``irt evaluate``, ``irt score``, the
``prepare`` function, its SQL and the learning-aware fit all start from
``irt.engine.defaults.DEFAULTS``, read when they run.

The main test replaces that object by one whose every value differs and checks that each
entry point follows; a copy of a default anywhere (a literal ``10`` or ``(0.0, 0.5)``) makes
it fail.  The last test runs ``prepare`` and ``irt fit`` on the same answers with nothing set
and finds the same item parameters.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
from datetime import UTC, datetime

import numpy as np
import pytest
from answerlogs import simulated_rows, write_csv
from refresh_run import run

from irt.engine import defaults
from irt.engine.auto import AutoConfig
from irt.engine.calibrate import FitConfig, Priors, Quadrature
from irt.engine.defaults import DEFAULTS, Defaults
from irt.engine.learning_fit import LearningConfig
from irt.errors import ConfigError
from irt.refresh.config import RefreshConfig
from irt.refresh.quality import GateConfig
from irt.refresh.sql import QueryParams
from irt.store import LocalStore
from irt.tools import cli

#: Every setting different from the shipped defaults.
OTHER = Defaults(model="1pl", prior_a=(0.1, 0.4), prior_b=(0.2, 1.5), prior_c=(4.0, 16.0),
                 min_answers_per_item=3, min_answers_per_student=4, quadrature_points=31,
                 tol=2e-4, max_iter=77, min_slope=0.07, score_method="MAP",
                 recency_decay=0.9, pfa_window=7, pfa_beta_sd=0.7, learning_difficulty_sd=1.3,
                 auto_validation_share=0.3, auto_all_folds_below=80,
                 auto_noise_z=3.0, max_ece_over_plain=0.02, skill_prior=False,
                 skill_difficulty_sd=0.7, learning_max_answers=123_456)
#: ... and the options (which need the 2PL).
WITH_OPTIONS = dataclasses.replace(DEFAULTS, options=("recency",))
MINIMAL_ENV = {"SOURCE_FILE": "log.csv", "MODEL_DIR": "models"}


def test_the_replacements_differ_in_every_setting() -> None:
    for f in dataclasses.fields(Defaults):
        other = WITH_OPTIONS if f.name == "options" else OTHER
        assert getattr(other, f.name) != getattr(DEFAULTS, f.name), f.name
    with pytest.raises(ValueError, match="2pl"):
        dataclasses.replace(OTHER, options=("recency",))


def _same_fit_config(one: FitConfig, two: FitConfig) -> None:
    assert one.resolved_priors() == two.resolved_priors()
    assert dataclasses.replace(one, priors=None) == dataclasses.replace(two, priors=None)


@pytest.mark.parametrize("settings", [DEFAULTS, OTHER, WITH_OPTIONS],
                         ids=["shipped", "replaced", "options"])
def test_every_entry_point_starts_from_the_one_default_object(monkeypatch, settings) -> None:
    monkeypatch.setattr(defaults, "DEFAULTS", settings)
    d = settings
    # the engine: FitConfig and the learning-aware fit
    config = FitConfig()
    assert (config.model, config.tol, config.max_iter, config.min_answers_per_item,
            config.min_slope, config.quadrature, config.skill_prior,
            config.skill_difficulty_sd) == (
        d.model, d.tol, d.max_iter, d.min_answers_per_item, d.min_slope,
        Quadrature(d.quadrature_points), d.skill_prior, d.skill_difficulty_sd)
    assert config.resolved_priors() == Priors(d.prior_a, d.prior_b, None) == Priors.default(d.model)
    assert Priors.default("3pl").c_beta == d.prior_c
    learning = LearningConfig()
    assert (learning.prior_a, learning.prior_b, learning.decay, learning.window,
            learning.beta_sd, learning.difficulty_sd, learning.max_answers) == (
        d.prior_a, d.prior_b, d.recency_decay, d.pfa_window, d.pfa_beta_sd,
        d.learning_difficulty_sd, d.learning_max_answers)
    # auto and the gate's rule against the plain challenger
    auto = AutoConfig()
    assert (auto.validation_share, auto.noise_z, auto.max_ece_over_plain,
            auto.all_folds_below) == (d.auto_validation_share, d.auto_noise_z,
                                      d.max_ece_over_plain, d.auto_all_folds_below)
    assert GateConfig().max_ece_over_plain == d.max_ece_over_plain
    # prepare: the environment with nothing set, the run's FitConfig and the query's minimums
    refresh = RefreshConfig.from_env(MINIMAL_ENV)
    assert (refresh.model_type, refresh.min_answers_per_item, refresh.min_answers_per_student,
            refresh.prior_a, refresh.prior_b, refresh.model_options, refresh.recency_decay,
            refresh.pfa_window, refresh.skill_prior, refresh.skill_difficulty_sd,
            refresh.learning_max_answers) == (
        d.model, d.min_answers_per_item, d.min_answers_per_student, d.prior_a, d.prior_b,
        d.options, d.recency_decay, d.pfa_window, d.skill_prior, d.skill_difficulty_sd,
        d.learning_max_answers)
    assert dataclasses.replace(refresh, source_file="log.csv", model_dir="models") == \
        RefreshConfig(source_file="log.csv", model_dir="models")
    assert refresh.gate.max_ece_over_plain == d.max_ece_over_plain
    _same_fit_config(refresh.fit_config(), FitConfig())
    window = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    query = QueryParams(*window)
    assert (query.min_answers_per_item, query.min_answers_per_student) == (
        d.min_answers_per_item, d.min_answers_per_student)
    # the CLI: fit, evaluate and score with no option given
    parser = cli.build_parser()
    fit_args = parser.parse_args(["fit", "answers.csv", "-o", "model.json"])
    _same_fit_config(cli._fit_config(fit_args), FitConfig())
    assert fit_args.min_answers_per_student == d.min_answers_per_student
    eval_args = parser.parse_args(["evaluate", "train.csv", "test.csv"])
    _same_fit_config(cli._fit_config(eval_args), FitConfig())
    assert (eval_args.min_answers_per_student, eval_args.options, eval_args.recency_decay,
            eval_args.window, eval_args.learning_max_answers) == (
        d.min_answers_per_student, ",".join(d.options), d.recency_decay, d.pfa_window,
        d.learning_max_answers)
    assert parser.parse_args(["score", "model.json", "answers.csv"]).method == d.score_method


def test_fit_help_prints_the_effective_defaults(capsys, monkeypatch) -> None:
    for settings in (DEFAULTS, OTHER):
        monkeypatch.setattr(defaults, "DEFAULTS", settings)
        with pytest.raises(SystemExit):
            cli.main(["fit", "--help"])
        out = capsys.readouterr().out
        assert settings.describe() in out
        assert f"(default {settings.min_answers_per_item})" in out
    assert "log a ~ N(0.1,0.4)" in out and "Beta(4,16)" in out and "at most 77 cycles" in out
    assert "skill prior (with a skill column): off" in out


def test_the_skill_prior_switches_off_everywhere() -> None:
    args = cli.build_parser().parse_args(["fit", "a.csv", "-o", "m.json", "--no-skill-prior"])
    assert cli._fit_config(args).skill_prior is False
    args = cli.build_parser().parse_args(["evaluate", "a.csv", "b.csv", "--no-skill-prior",
                                          "--skill-difficulty-sd", "0.5"])
    assert (cli._fit_config(args).skill_prior, cli._fit_config(args).skill_difficulty_sd) == (
        False, 0.5)
    refresh = RefreshConfig.from_env({**MINIMAL_ENV, "SKILL_PRIOR": "false",
                                      "SKILL_DIFFICULTY_SD": "0.5"})
    assert (refresh.fit_config().skill_prior, refresh.fit_config().skill_difficulty_sd) == (
        False, 0.5)
    for bad in ("maybe", "2"):
        with pytest.raises(ConfigError) as info:
            RefreshConfig.from_env({**MINIMAL_ENV, "SKILL_PRIOR": bad})
        assert info.value.field == "SKILL_PRIOR"
    with pytest.raises(ConfigError) as info:
        RefreshConfig.from_env({**MINIMAL_ENV, "SKILL_DIFFICULTY_SD": "0"})
    assert info.value.field == "SKILL_DIFFICULTY_SD"


def test_the_shipped_defaults_have_priors_and_calibrate_every_answered_item() -> None:
    assert Defaults() == DEFAULTS
    assert DEFAULTS.prior_a == (0.0, 0.5) and DEFAULTS.prior_b == (0.0, 2.0)
    assert DEFAULTS.prior_c == (5.0, 17.0)
    assert DEFAULTS.min_answers_per_item == 1 and DEFAULTS.min_answers_per_student == 2
    ml = DEFAULTS.maximum_likelihood()
    assert (ml.prior_a, ml.prior_b, ml.prior_c) == (None, None, None)
    assert ml.min_answers_per_item == DEFAULTS.min_answers_per_item


def test_no_priors_is_maximum_likelihood_everywhere() -> None:
    args = cli.build_parser().parse_args(["fit", "a.csv", "-o", "m.json", "--no-priors"])
    assert cli._fit_config(args).resolved_priors() == Priors()
    args = cli.build_parser().parse_args(["fit", "a.csv", "-o", "m.json", "--prior-b", "none"])
    assert cli._fit_config(args).resolved_priors() == Priors(DEFAULTS.prior_a, None, None)
    refresh = RefreshConfig.from_env({**MINIMAL_ENV, "PRIOR_A": "none", "PRIOR_B": "none"})
    assert refresh.fit_config().resolved_priors() == Priors()


@pytest.mark.parametrize("skills", [False, True], ids=["plain", "skill-column"])
def test_prepare_serves_what_irt_fit_calibrates_from_the_same_answers(tmp_path, skills) -> None:
    """``prepare`` with nothing set and ``irt fit`` with no option, on prepare's training
    answers (its ``prepared.csv.gz`` rows outside the hold-out), give the same parameters;
    with a skill column (``COLUMN_SKILL``, ``--skill-column``) both fit with the skill prior
    and record the same skills.

    ``--min-answers-per-student 1``: prepare applies the student minimum in SQL before it holds
    out the latest answers of some students; the training rows are what it calibrated on."""
    rows_in = simulated_rows(300, 20, 12, seed=4)
    log = write_csv(rows_in, tmp_path / "log.csv")
    env = {"SOURCE_FILE": str(log), "MODEL_DIR": str(tmp_path / "models")}
    if skills:
        env["COLUMN_SKILL"] = "skill_id"
    result = run(RefreshConfig.from_env(env))
    assert result.status == 200, result.body
    store = LocalStore(str(tmp_path / "models"))
    version = result.body["version"]
    served = json.loads(store.get(version, "model.json"))
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(
        store.get(version, "prepared.csv.gz")).decode())))
    skill_of = {r["item_id"]: r["skill_id"] for r in rows_in}
    train = tmp_path / "train.csv"
    with train.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student_id", "item_id", "correct", "answered_at", "skill"])
        writer.writerows([r["student_id"], r["item_id"], r["correct"], r["answered_at"],
                          skill_of[r["item_id"]]] for r in rows if r["holdout"] == "0")
    out = tmp_path / "fit.json"
    extra = ["--skill-column", "skill"] if skills else []
    assert cli.main(["fit", str(train), "-o", str(out), "--min-answers-per-student", "1",
                     *extra]) == 0
    fitted = json.loads(out.read_text())
    assert fitted["model_type"] == served["model_type"] == DEFAULTS.model
    assert fitted["fit"]["iterations"] == served["fit"]["iterations"]
    assert sorted(served["items"]) == sorted(fitted["items"]) and len(fitted["items"]) == 20
    for item, mine in fitted["items"].items():
        theirs = served["items"][item]
        np.testing.assert_allclose([mine["a"], mine["b"]], [theirs["a"], theirs["b"]],
                                   atol=1e-6, err_msg=item)
    if not skills:
        assert "skills" not in served and "skills" not in fitted
        return
    assert served["fit"]["skill_prior"] is fitted["fit"]["skill_prior"] is True
    assert served["priors"] == fitted["priors"]
    assert served["skills"]["item_skills"] == fitted["skills"]["item_skills"] == {
        item: skill_of[item] for item in fitted["items"]}
    assert served["skills"]["parameters"].keys() == {"k0", "k1", "k2"}
    for skill, mine in fitted["skills"]["parameters"].items():
        theirs = served["skills"]["parameters"][skill]
        np.testing.assert_allclose([mine["a"], mine["b"]], [theirs["a"], theirs["b"]],
                                   atol=1e-6, err_msg=skill)


@pytest.mark.parametrize("settings", [
    {"auto_validation_share": 0.0}, {"auto_validation_share": 1.0},
    {"auto_all_folds_below": -1}, {"learning_max_answers": 0}, {"score_method": "WLE"},
    {"skill_difficulty_sd": 0.0}, {"min_answers_per_item": 0}, {"model": "4pl"}])
def test_invalid_defaults_are_refused(settings) -> None:
    with pytest.raises(ValueError):
        Defaults(**settings)
