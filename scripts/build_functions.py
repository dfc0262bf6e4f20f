"""Vendor each Cloud Function into a self-contained source folder (``make build``).

For every ``functions/<name>/`` that has a ``main.py``, writes ``build/functions/<name>/`` with
exactly::

    main.py            the function's entry module (entry point: the function ``<name>``)
    requirements.txt   its pinned deployment requirements
    server.py          only where the function has them (``predict``): its server, which
    gunicorn.conf.py   the buildpack starts through ``GOOGLE_ENTRYPOINT`` (Terraform)
    irt/               a copy of ``shared/irt`` (no ``__pycache__``, bytecode or dotfiles)

and nothing else. Terraform zips each folder (``terraform/irt/functions.tf``) and names
the upload by the zip's hash, so the copy must be byte-for-byte reproducible: files are copied
verbatim, folders are rebuilt from scratch, and nothing derived from the clock or the machine is
written. The output folder is replaced as a whole, so a function deleted from ``functions/``
disappears from the build too.

Usage: ``python scripts/build_functions.py [--out DIR]`` (default ``build/functions``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"
SHARED_PACKAGE = ROOT / "shared" / "irt"
DEFAULT_OUT = ROOT / "build" / "functions"
FUNCTION_FILES = ("main.py", "requirements.txt")
#: Copied when the function has them: ``predict``'s own server (gunicorn.conf.py, server.py).
SERVER_FILES = ("server.py", "gunicorn.conf.py")
PACKAGE_NAME = "irt"


def function_names(functions: Path = FUNCTIONS) -> list[str]:
    """The deployable functions: folders of ``functions/`` holding a ``main.py``."""
    return sorted(p.parent.name for p in functions.glob("*/main.py"))


def _package_files(package: Path) -> list[Path]:
    """The package's files (recursively), relative to it, sorted; no caches, bytecode, dotfiles."""
    files = []
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package)
        if not path.is_file() or path.suffix in (".pyc", ".pyo") or any(
                part == "__pycache__" or part.startswith(".") for part in rel.parts):
            continue
        files.append(rel)
    return files


def build_function(name: str, out: Path, functions: Path = FUNCTIONS,
                   package: Path = SHARED_PACKAGE) -> Path:
    """Write ``out/<name>/`` (replacing it) and return it."""
    src = functions / name
    missing = [f for f in FUNCTION_FILES if not (src / f).is_file()]
    if missing:
        raise FileNotFoundError(f"functions/{name}: missing {', '.join(missing)}")
    dest = out / name
    if dest.exists():
        shutil.rmtree(dest)
    (dest / PACKAGE_NAME).mkdir(parents=True)
    for filename in FUNCTION_FILES + tuple(f for f in SERVER_FILES if (src / f).is_file()):
        shutil.copyfile(src / filename, dest / filename)
    for rel in _package_files(package):
        target = dest / PACKAGE_NAME / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package / rel, target)
    return dest


def build_all(out: Path = DEFAULT_OUT, functions: Path = FUNCTIONS,
              package: Path = SHARED_PACKAGE) -> list[Path]:
    """Rebuild ``out`` from scratch: one folder per function, nothing else."""
    names = function_names(functions)
    if not names:
        raise FileNotFoundError(f"no functions/*/main.py under {functions}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return [build_function(name, out, functions, package) for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output folder (default: build/functions)")
    args = parser.parse_args(argv)
    for folder in build_all(args.out.resolve()):
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        try:
            shown = folder.relative_to(ROOT)
        except ValueError:
            shown = folder
        print(f"built {shown}/ ({count} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
