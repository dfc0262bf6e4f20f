"""A fresh interpreter, for the tests that check what an import loads (or must not load) and
the ones that kill the process they run in: ``python -c CODE`` with this checkout's
``shared`` first on ``PYTHONPATH``.

* :func:`run_fresh` runs ``CODE`` (with ``argv``) and returns the finished process, whatever
  its exit status (a test that kills it checks the status itself).
* :func:`loaded_modules` runs ``CODE``, requires it to succeed, and returns the sorted names
  in its ``sys.modules`` at the end.
* :func:`predict_main_modules` is that for ``functions/predict/main.py`` loaded as the
  deployed build loads it (no ``MODEL_BUCKET``: it reads ``MODEL_DIR``, logs that it has no
  model and starts).

The environment is ``base_env`` (``os.environ`` unless given; ``{}`` for a bare one) with
``extra_env`` added, ``unset`` removed and ``PYTHONPATH`` set to ``shared``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared"
PREDICT_MAIN = ROOT / "functions" / "predict" / "main.py"

#: Appended to the code of :func:`loaded_modules`: its last line of output.
_PRINT_MODULES = "\nimport json as _json, sys as _sys\nprint(_json.dumps(sorted(_sys.modules)))\n"
#: Loads the file ``sys.argv[1]`` as the module ``main`` (as functions-framework does).
_LOAD_FILE = ("import importlib.util, sys\n"
              "spec = importlib.util.spec_from_file_location('main', sys.argv[1])\n"
              "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n")


def run_fresh(code: str, *argv: str, base_env: Mapping[str, str] | None = None,
              extra_env: Mapping[str, str] | None = None, unset: Iterable[str] = (),
              cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -c code *argv`` in a new interpreter (text output captured)."""
    env = dict(os.environ if base_env is None else base_env)
    env.update(extra_env or {})
    for key in unset:
        env.pop(key, None)
    env["PYTHONPATH"] = str(SHARED)
    return subprocess.run([sys.executable, "-c", code, *argv], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def loaded_modules(code: str, *argv: str, **options) -> list[str]:
    """The sorted ``sys.modules`` of a new interpreter after ``code`` ran (options as
    :func:`run_fresh`'s).

    Raises:
        AssertionError: ``code`` failed (with the end of its stderr).
    """
    done = run_fresh(code + _PRINT_MODULES, *argv, **options)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def predict_main_modules(model_dir: Path) -> list[str]:
    """:func:`loaded_modules` of loading ``functions/predict/main.py`` with ``MODEL_DIR``
    ``model_dir`` and no ``MODEL_BUCKET``."""
    return loaded_modules(_LOAD_FILE, str(PREDICT_MAIN), extra_env={"MODEL_DIR": str(model_dir)},
                          unset=("MODEL_BUCKET",))
