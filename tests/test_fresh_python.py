"""``tests/support/fresh_python.py``: the interpreter is a new one, with this checkout's
``shared`` importable and the environment asked for, so the "does not import X" tests that
use it cannot pass by looking at the wrong process."""

from __future__ import annotations

import sys

import pytest
from fresh_python import SHARED, loaded_modules, predict_main_modules, run_fresh


def test_the_modules_are_the_new_interpreters_own() -> None:
    import irt.serving  # noqa: F401  (this process has it...)

    assert "irt.serving" in sys.modules
    assert "irt.serving" not in loaded_modules("pass")  # ...a fresh one has not
    loaded = loaded_modules("import irt.serving")
    assert "irt.serving" in loaded and loaded == sorted(loaded)


def test_argv_environment_and_working_directory_are_passed(tmp_path) -> None:
    done = run_fresh("import os, sys, irt\n"
                     "print(sys.argv[1:], os.environ.get('X'), os.environ.get('HOME'))\n"
                     "print(os.getcwd()); print(irt.__file__)",
                     "a", "b", base_env={}, extra_env={"X": "1"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    args, cwd, irt_file = done.stdout.splitlines()
    assert args == "['a', 'b'] 1 None" and cwd == str(tmp_path)
    assert irt_file.startswith(str(SHARED))
    done = run_fresh("import os; print(os.environ.get('HOME'))", extra_env={"HOME": "/h"},
                     unset=("HOME",))
    assert done.stdout.strip() == "None"


def test_a_failing_snippet_fails_the_test_with_its_error() -> None:
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        loaded_modules("1 / 0")
    assert run_fresh("raise SystemExit(3)").returncode == 3


def test_predict_main_is_loaded_without_a_bucket(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MODEL_BUCKET", "no-such-bucket")  # unset for the child
    loaded = predict_main_modules(tmp_path)
    assert "irt.serving.api" in loaded
