"""Integer and number settings are read as a person writes them.

Python's ``int()`` and ``float()`` take ``1_000``, `` 12 ``, ``+5`` and non-ASCII digits
(Arabic-Indic ``١٢``, full-width ``１２``); ``prepare``'s environment, ``predict``'s and the
command line's options took them too.  Now each is refused with the variable (or option)
named and the rule stated; plain values, a negative one where the range allows it, and the
blank-means-default rule are unchanged.
"""

from __future__ import annotations

from pathlib import Path

import functions_framework
import pytest

from irt.errors import ConfigError
from irt.refresh.config import RefreshConfig
from irt.refresh.monitoring import MonitorConfig
from irt.serving.config import PredictConfig
from irt.settings import INTEGER_RULE, NUMBER_RULE, env_float, env_int, parse_int, parse_number
from irt.tools.cli import main

#: What ``int()`` reads and nobody means (each is checked to be one ``int()`` takes).
LENIENT_INTEGERS = ["1_000", " 12 ", "12\n", "+5", "\u0661\u0662", "\uff11\uff12", "\t7"]
#: What ``float()`` reads and nobody means.
LENIENT_NUMBERS = ["0_5", " 0.5", "0.5 ", "+0.5", "\u0660.\u0665", "\uff10.\uff15", "1_0e-1"]
BASE = {"MODEL_BUCKET": "b", "BQ_TABLE": "my-project.ds.answers"}
PREPARE = str(Path(__file__).resolve().parents[1] / "functions" / "prepare" / "main.py")


@pytest.mark.parametrize("raw", LENIENT_INTEGERS)
def test_python_reads_these_integers_the_settings_do_not(raw: str) -> None:
    int(raw)  # the leniency this guards against: Python reads it
    with pytest.raises(ValueError) as err:
        parse_int(raw)
    assert INTEGER_RULE in str(err.value) and repr(raw) in str(err.value)


@pytest.mark.parametrize("raw", LENIENT_NUMBERS)
def test_python_reads_these_numbers_the_settings_do_not(raw: str) -> None:
    float(raw)
    with pytest.raises(ValueError) as err:
        parse_number(raw)
    assert NUMBER_RULE in str(err.value) and repr(raw) in str(err.value)


@pytest.mark.parametrize(("raw", "value"), [("12", 12), ("007", 7), ("-3", -3), ("0", 0)])
def test_plain_integers_still_read(raw: str, value: int) -> None:
    assert parse_int(raw) == value
    assert env_int({"K": raw}, "K", 1, -10, 100) == value


@pytest.mark.parametrize(("raw", "value"), [("0.5", 0.5), (".5", 0.5), ("5.", 5.0),
                                            ("-2", -2.0), ("1e-3", 1e-3), ("2E+2", 200.0)])
def test_plain_numbers_still_read(raw: str, value: float) -> None:
    assert parse_number(raw) == value
    assert env_float({"K": raw}, "K", 1.0, -10.0, 1000.0) == value


@pytest.mark.parametrize("raw", ["", "   "])
def test_a_blank_setting_is_still_its_default(raw: str) -> None:
    assert env_int({"K": raw}, "K", 42, 1, 100) == 42
    assert env_float({"K": raw}, "K", 0.25, 0.0, 1.0) == 0.25


@pytest.mark.parametrize("raw", LENIENT_INTEGERS)
@pytest.mark.parametrize("key", ["WINDOW_DAYS", "MAX_ANSWERS_PER_ITEM", "DATA_MIN_ANSWERS",
                                 "MONITOR_SKEW_STUDENTS", "LEARNING_MAX_ANSWERS"])
def test_prepare_refuses_a_lenient_integer_naming_the_variable(key: str, raw: str) -> None:
    with pytest.raises(ConfigError) as err:
        RefreshConfig.from_env({**BASE, key: raw})
    assert err.value.field == key
    assert err.value.message.startswith("must be an integer") and INTEGER_RULE in err.value.message
    assert str(err.value).startswith(f"{key}: ")


@pytest.mark.parametrize("raw", LENIENT_NUMBERS)
@pytest.mark.parametrize("key", ["GATE_MAX_AUC_DROP", "DATA_MAX_INVALID_SHARE",
                                 "MONITOR_SKEW_P_TOL"])
def test_prepare_refuses_a_lenient_number_naming_the_variable(key: str, raw: str) -> None:
    with pytest.raises(ConfigError) as err:
        RefreshConfig.from_env({**BASE, key: raw})
    assert err.value.field == key and NUMBER_RULE in err.value.message


@pytest.mark.parametrize("raw", ["0,0_5", "+0,0.5", "0,\u0660.\u0665", "0, 0.5", " 0,0.5"])
def test_prepare_refuses_a_lenient_prior_pair(raw: str) -> None:
    with pytest.raises(ConfigError) as err:
        RefreshConfig.from_env({**BASE, "PRIOR_A": raw})
    assert err.value.field == "PRIOR_A" and NUMBER_RULE in err.value.message


def test_plain_prepare_values_still_read() -> None:
    config = RefreshConfig.from_env({**BASE, "WINDOW_DAYS": "30", "GATE_MAX_AUC_DROP": ".05",
                                     "PRIOR_A": "-0.5,0.25", "PRIOR_B": " None ",
                                     "LEARNING_MAX_ANSWERS": "800000",
                                     "MONITOR_SIMPLER_FIT_TOL": "1e-4"})
    assert (config.window_days, config.gate.max_auc_drop) == (30, 0.05)
    assert (config.prior_a, config.prior_b) == ((-0.5, 0.25), None)
    assert config.learning_max_answers == 800_000
    assert config.monitoring.simpler_fit_tol == 1e-4
    assert MonitorConfig.from_env({"MONITOR_SKEW_STUDENTS": "10"}).skew_students == 10


def test_a_negative_in_a_positive_setting_is_a_range_error() -> None:
    with pytest.raises(ConfigError) as err:
        RefreshConfig.from_env({**BASE, "WINDOW_DAYS": "-1"})
    assert err.value.message == "must be between 1 and 36500, got -1"


@pytest.mark.parametrize(("key", "raw"), [("MAX_K", "1_0"), ("MAX_STUDENTS", "+5"),
                                          ("MODEL_REFRESH_SECONDS", " 60"),
                                          ("STORAGE_TIMEOUT_SECONDS", "\u0662")])
def test_predict_refuses_them_too(key: str, raw: str) -> None:
    with pytest.raises(ConfigError) as err:
        PredictConfig.from_env({"MODEL_BUCKET": "b", key: raw}, "unused")
    assert err.value.field == key


def test_the_prepare_function_answers_misconfigured_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("BQ_TABLE", "MODEL_BUCKET", "BIGQUERY_EMULATOR_HOST"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SOURCE_FILE", str(tmp_path / "log.csv"))
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "md"))
    monkeypatch.setenv("WINDOW_DAYS", "1_000")
    # create_app sets FUNCTION_TARGET in os.environ: restore it after the test, or a later
    # subprocess given os.environ (local_stack.py serve) would look for 'prepare'
    monkeypatch.setenv("FUNCTION_TARGET", "prepare")
    client = functions_framework.create_app(target="prepare", source=PREPARE).test_client()
    r = client.post("/")
    assert r.status_code == 500 and r.get_json()["error"]["code"] == "misconfigured"
    assert "WINDOW_DAYS: must be an integer, got '1_000'" in r.get_json()["error"]["message"]


@pytest.mark.parametrize(("argv", "option"), [
    (["demo", "--seed", "1_0"], "--seed"),
    (["demo", "--seed", "+1"], "--seed"),
    (["demo", "--seed", "\u0661"], "--seed"),
    (["fit", "missing.csv", "-o", "m.json", "--max-iter", " 5"], "--max-iter"),
    (["fit", "missing.csv", "-o", "m.json", "--tol", "1_0e-4"], "--tol"),
    (["fit", "missing.csv", "-o", "m.json", "--prior-a", "0,0_5"], "--prior-a"),
    (["evaluate", "missing.csv", "missing.csv", "--recency-decay", "+0.5"], "--recency-decay"),
])
def test_the_command_line_refuses_them_naming_the_option(
        argv: list[str], option: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument {option}: expected" in err
    assert "Traceback" not in err and "missing.csv" not in err


LONG = "9" * 5000


@pytest.mark.parametrize(("read", "raw"), [
    (lambda raw: env_int({"K": raw}, "K", 1, 0, 10), LONG),  # too many digits for int()
    (lambda raw: env_int({"K": raw}, "K", 1, 0, 10), "x" * 5000),
    (lambda raw: env_float({"K": raw}, "K", 1.0, 0.0, 10.0), LONG),  # inf: out of range
    (lambda raw: env_float({"K": raw}, "K", 1.0, 0.0, 10.0), "x" * 5000),
    (lambda raw: RefreshConfig.from_env({**BASE, "PRIOR_B": raw}), "0," + LONG + "x"),
    # an integer int() still reads (4,300 digits at most), out of range: it was quoted whole
    pytest.param(lambda raw: env_int({"K": raw}, "K", 1, 0, 10), "1" + "0" * 4000,
                 id="env_int-out-of-range"),
    pytest.param(lambda raw: PredictConfig.from_env({"MAX_RESPONSES": raw}, "unused"),
                 "1" + "0" * 4000, id="MAX_RESPONSES-out-of-range"),
    # the table reference's parts and a column name, refused by their patterns: quoted whole
    pytest.param(lambda raw: RefreshConfig.from_env({**BASE, "BQ_TABLE": raw + ".ds.t"}),
                 "x" * 5000, id="BQ_TABLE-project"),
    pytest.param(lambda raw: RefreshConfig.from_env({**BASE, "BQ_TABLE": f"my-project.{raw}.t"}),
                 "x" * 5000, id="BQ_TABLE-dataset"),
    pytest.param(lambda raw: RefreshConfig.from_env({**BASE, "COLUMN_STUDENT": raw}),
                 "x" * 5000, id="COLUMN_STUDENT"),
])
def test_an_error_quotes_a_long_value_cut_short(read, raw: str) -> None:
    """A 5,000-character value is quoted by its first 40 characters and its length (it made
    a 5 KB log line)."""
    with pytest.raises(ConfigError) as err:
        read(raw)
    assert len(str(err.value)) < 400 and f"({len(raw)} characters)" in str(err.value)


@pytest.mark.parametrize("argv", [
    ["demo", "--seed", LONG],  # int_in: too many digits
    ["fit", "missing.csv", "-o", "m.json", "--max-iter", "1" + "0" * 3000],  # out of range
    ["fit", "missing.csv", "-o", "m.json", "--tol", LONG],
    ["fit", "missing.csv", "-o", "m.json", "--prior-a", "0," + "x" * 5000],
    # below 1, an integer int() still reads: it was quoted whole
    pytest.param(["evaluate", "missing.csv", "missing.csv", "--learning-max-answers",
                  "-" + "9" * 4000], id="learning-max-answers-below-1"),
])
def test_the_command_line_quotes_a_long_value_cut_short(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "characters)" in err and len(err) < 2000
