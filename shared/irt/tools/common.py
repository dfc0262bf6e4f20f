"""What every subcommand of ``python -m irt`` shares: the options naming an answers file's
columns, the one reader of answers files, messages on stderr and output checks.

* :func:`add_answers_arguments` - ``--student-column``, ``--item-column``,
  ``--correct-column``, ``--order-column``, ``--lenient``;
* :func:`read_answers` - an answers CSV, plain or gzip-compressed (recognised by its
  content, whatever its name), as :func:`irt.tools.csvio.read_answers_csv` reads it, with
  errors that name the file;
* :class:`Messages` - ``-q/--quiet``, progress lines and what was written, on stderr;
* :func:`int_in`, :func:`number_in` - ``type`` of an option with a range, checked by argparse
  (its error names the option);
* :func:`check_output` - an ``-o`` path that cannot be written fails before the work;
* :func:`run_guarded` - errors as one line naming the file, quiet on a closed stdout.
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from irt.engine.preprocess import INVALID_REASONS, PrepareReport
from irt.errors import CSVFormatError
from irt.settings import parse_int, parse_number, shown
from irt.tools.csvio import Columns, read_answers_csv

GZIP_MAGIC = b"\x1f\x8b"

#: What the parsers' epilogs say about the answers file.
ANSWERS_FORMAT = """\
Answers file (CSV, header required, extra columns ignored; may be gzip-compressed):
  student_id,item_id,correct[,answered_at]
  other names: --student-column, --item-column, --correct-column, --order-column
  correct: 1/0, true/false, t/f, yes/no (any case); answered_at: epoch seconds, any number
  giving the order (e.g. a sequence number) or ISO-8601 date-times; without it, the file order.
"""


def add_answers_arguments(parser: argparse.ArgumentParser, *, lenient: bool = True) -> None:
    """The options naming the answers file's columns (and ``--lenient``)."""
    g = parser.add_argument_group("answers file")
    g.add_argument("--student-column", default="student_id", metavar="NAME",
                   help="student column (default student_id; ASSISTments files: user_id)")
    g.add_argument("--item-column", default="item_id", metavar="NAME",
                   help="item column (default item_id; e.g. problem_id)")
    g.add_argument("--correct-column", default="correct", metavar="NAME",
                   help="correctness column (default correct)")
    g.add_argument("--order-column", default=None, metavar="NAME",
                   help="column giving each student's answer order: epoch seconds, a "
                   "number or ISO-8601 times (default answered_at when the file has it, "
                   "else the file order; ASSISTments files: seq)")
    if lenient:
        g.add_argument("--lenient", action="store_true",
                       help="drop and count bad rows instead of stopping at the first one")


def add_quiet_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress or information on stderr (warnings and errors "
                        "still)")


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[low, high]`` (``high`` ``None``: no upper
    bound), written as :func:`irt.settings.parse_int` reads one (``1_000``, ``+5`` and
    non-ASCII digits are refused).  argparse prints its error naming the option
    (``argument --strata: must be at least 1, got 0``) and exits 2 before any file is read.

    Args:
        low: the smallest value accepted.
        high: the largest value accepted, or ``None``.

    Returns:
        The converter for ``add_argument(type=...)``.
    """

    def integer(text: str) -> int:
        try:
            value = parse_int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected an integer, {exc}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {shown(text, False)}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {shown(text, False)}")
        return value

    return integer


def number_in(low: float, high: float | None = None, *, low_open: bool = False,
              high_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in the interval from ``low`` to ``high``
    (``high`` ``None``: unbounded above), each end excluded when its ``*_open`` flag is set;
    ``inf`` and ``nan`` are refused.  Written as :func:`irt.settings.parse_number` reads one.
    Errors as :func:`int_in`'s.

    Args:
        low: the lower end.
        high: the upper end, or ``None``.
        low_open, high_open: whether the end itself is excluded.

    Returns:
        The converter for ``add_argument(type=...)``.
    """
    if high is None:
        wanted = f"a finite number {'above' if low_open else 'at least'} {low:g}"
    else:
        wanted = (f"a number in {'(' if low_open else '['}{low:g}, {high:g}"
                  f"{')' if high_open else ']'}")

    def number(text: str) -> float:
        try:
            value = parse_number(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected a number, {exc}") from None
        ok = math.isfinite(value) and (value > low if low_open else value >= low)
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {shown(text, False)}")
        return value

    return number


def columns_of(args: argparse.Namespace) -> Columns:
    """The :class:`~irt.tools.csvio.Columns` of the parsed options (an order column named
    on the command line must exist; the default ``answered_at`` may be absent)."""
    return Columns(student_id=args.student_column, item_id=args.item_column,
                   correct=args.correct_column,
                   answered_at=args.order_column or "answered_at",
                   answered_at_required=args.order_column is not None)


def open_text(path: Path) -> TextIO:
    """``path`` as UTF-8 text for :mod:`csv` (``newline=""``), decompressed when its first
    bytes are gzip's."""
    with path.open("rb") as raw:
        magic = raw.read(2)
    if magic == GZIP_MAGIC:
        return gzip.open(path, "rt", newline="", encoding="utf-8")
    return path.open(newline="", encoding="utf-8")


def cannot_read(what: str, path: Path | str, exc: OSError) -> OSError:
    """The error of an input that cannot be read, naming which input it is: ``cannot read
    the model file m.json: No such file or directory`` (the same ``OSError`` subclass)."""
    return type(exc)(f"cannot read the {what} {path}: {exc.strerror or exc}")


def read_bytes(path: Path, what: str) -> bytes:
    """The content of the input ``path``, an error naming ``what`` it is when it cannot be
    read (:func:`cannot_read`).

    Raises:
        OSError: the file cannot be read.
    """
    try:
        return path.read_bytes()
    except OSError as exc:
        raise cannot_read(what, path, exc) from None


def read_answers(path: Path, args: argparse.Namespace, extra_columns: tuple[str, ...] = (),
                 extra_options: tuple[str, ...] = (), what: str = "answers file"
                 ) -> list[dict[str, str | None]]:
    """Rows of the answers file ``path`` read with the options of
    :func:`add_answers_arguments` (strict unless ``--lenient``).

    Args:
        path: the file, plain or gzip-compressed.
        args: the parsed options.
        extra_columns: more columns to read (:func:`~irt.tools.csvio.read_answers_csv`).
        extra_options: the option naming each of ``extra_columns`` (``--skill-column``),
            for the hint of a missing column.
        what: which input the file is, for an error opening it (``test answers file``).

    Raises:
        CSVFormatError: as :func:`~irt.tools.csvio.read_answers_csv`, with ``path`` set (and
            for a missing column, the option that names it).
        OSError: the file cannot be opened (the message names ``what`` and ``path``).
    """
    columns = columns_of(args)
    try:
        with open_text(path) as stream:
            return read_answers_csv(stream, strict=not getattr(args, "lenient", False),
                                    columns=columns, extra_columns=extra_columns)
    except OSError as exc:
        raise cannot_read(what, path, exc) from None
    except CSVFormatError as exc:
        reason = exc.reason
        missing = re.match(r"missing required column '(.*)' in header", reason)
        if exc.line == 1 and missing:
            flag = {"student_id": "--student-column", "item_id": "--item-column",
                    "correct": "--correct-column", "answered_at": "--order-column"}
            options = {name: flag[key] for key, name in columns.names().items()}
            options.update(zip((c.strip().lower() for c in extra_columns), extra_options,
                               strict=False))
            option = options.get(missing.group(1))
            reason += f"; name it with {option}" if option else ""
        raise CSVFormatError(reason, exc.line, str(path)) from None


def require_answers(path: Path, report: PrepareReport, what: str = "no item left to calibrate",
                    options: dict[str, str] | None = None) -> None:
    """Fail, saying why, when :func:`~irt.engine.preprocess.prepare_rows` kept no answer of
    the file ``path`` (``report``: its :class:`~irt.engine.preprocess.PrepareReport`).

    Args:
        path: the answers file.
        report: what preprocessing kept and dropped.
        what: what cannot be done, the start of the message.
        options: the option behind a drop reason (``{"student_below_min_answers":
            "--min-answers-per-student 2"}``), named after its count.

    Raises:
        ValueError: ``{path}: {what}: the file has no answers`` or ``...: N rows read, all
            dropped: reason count, ...``.
    """
    if report.rows_out:
        return
    if not report.rows_in:
        raise ValueError(f"{path}: {what}: the file has no answers")
    options = options or {}
    reasons = ", ".join(f"{k} {n}" + (f" ({options[k]})" if k in options else "")
                        for k, n in report.dropped.items() if n)
    raise ValueError(f"{path}: {what}: {report.rows_in} rows read, all dropped: {reasons}")


def is_stdout(path: Path | None) -> bool:
    """Whether an ``-o`` value is ``-``: standard output."""
    return path is not None and str(path) == "-"


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (through links, ``..``, a relative path), the
    output ``a`` possibly not existing yet."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: compare where they would be
        return a.resolve() == b.resolve()


def check_output(path: Path | None, inputs: dict[str, Path | None] | None = None, *,
                 stdout: bool = False) -> None:
    """Fail now, before any work, when ``path`` (``-o``) cannot be written: its folder is
    missing, it is a folder, it is one of the ``inputs`` (writing would overwrite it), or it
    is ``-`` where the subcommand has no standard output to write to.

    Args:
        path: the ``-o`` value (``None``: not given).
        inputs: the files the subcommand reads, by what they are (``{"answers file":
            path}``; ``None`` values are ignored).
        stdout: whether ``-o -`` means standard output here.

    Raises:
        OSError: the folder is missing, or ``path`` is a folder.
        ValueError: ``path`` is an input, or ``-`` without ``stdout``.
    """
    if path is None:
        return
    if is_stdout(path):
        if stdout:
            return
        raise ValueError("-o -: this command writes a file, not standard output; name one")
    for what, source in (inputs or {}).items():
        if source is not None and _same_file(path, source):
            raise ValueError(f"-o {path} is the {what} ({source}): it would be overwritten; "
                             "write to another file")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder")
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")


class Messages:
    """Information and progress on stderr, nothing of it with ``quiet``; warnings always.

    Progress lines (:meth:`progress`, :meth:`em_progress`) are printed at most one per
    ``interval`` seconds, the first always, so a long run shows it is alive and a short one
    prints one line.
    """

    def __init__(self, quiet: bool = False, interval: float = 1.0,
                 stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.interval = interval
        self._stream = stream
        self._last = -float("inf")

    def _write(self, text: str) -> None:
        print(text, file=self._stream or sys.stderr, flush=True)

    def info(self, text: str) -> None:
        if not self.quiet:
            self._write(text)

    def warning(self, text: str) -> None:
        self._write(f"warning: {text}")

    def progress(self, text: str, *, force: bool = False) -> None:
        """A progress line, unless one was printed less than ``interval`` seconds ago."""
        if self.quiet:
            return
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            self._write(text)

    def bad_rows(self, path: Path | str, report: PrepareReport, whose: str = "") -> None:
        """Warn of the rows of ``path`` that :func:`~irt.engine.preprocess.prepare_rows` left
        out as invalid (``report``: its report), which only ``--lenient`` lets through: how
        many, by reason (``whose``: said after the count, ``"of student 's1' "``)."""
        bad = {k: report.dropped[k] for k in INVALID_REASONS if report.dropped.get(k)}
        if bad:
            self.warning(f"{path}: left out {sum(bad.values())} bad rows {whose}(--lenient): "
                         + ", ".join(f"{k} {n}" for k, n in bad.items()))

    def em_progress(self, what: str, objective: str = "log-posterior"
                    ) -> Callable[[int, float, float], None]:
        """A ``progress`` callback for :func:`irt.engine.calibrate.fit`: ``what: EM cycle N,
        <objective> X, change C``."""
        self._last = -float("inf")

        def report(cycle: int, value: float, change: float) -> None:
            self.progress(f"{what}: EM cycle {cycle}, {objective} {value:.3f}, "
                          f"change {change:.2e}")
        return report


def run_guarded(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``handler(args)`` with the command line's error handling: an expected error is one
    line on stderr naming the file (exit 2), so is running out of memory (a size option set
    too large for the machine), and a closed stdout (``| head``) ends the run quietly with 141
    (128 + SIGPIPE, as a command killed by the signal)."""
    try:
        status = handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except (OSError, ValueError) as exc:  # CSVFormatError, ModelFormatError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
    except MemoryError as exc:  # numpy's says how much it could not allocate
        print(f"error: not enough memory: {exc or 'allocation failed'}", file=sys.stderr)
    return 2


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush into the closed pipe
    does not print a second error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (stdout replaced, as under pytest)
        pass
