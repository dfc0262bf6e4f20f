"""Every error the ``irt`` package raises on purpose: one base class, one argument order.

Each is an :class:`IRTError` built as ``Error(message, field)``:

* ``message`` - the rule that was broken (``"must be finite"``);
* ``field``   - what broke it, or ``""``: a JSON path (``responses[3].correct``), a model
  artifact field (``items.Q7.a``), a configuration key (``MIN_ANSWERS``) or a CSV line
  (``line 12``).

``str(error)`` is ``"field: message"`` (just ``message`` without a field), so a log line or a
CLI message names the field first.  Each class also derives from the built-in exception its
callers caught before this module existed (``ValueError`` for bad input, ``RuntimeError`` for
an unreachable service), so ``except ValueError`` keeps working.

Which layer raises what:

* engine: :class:`ModelFormatError` (a model artifact breaks its schema);
* store: :class:`StoreError`, :class:`PointerConflictError`;
* serving: :class:`RequestError` (carries the HTTP status and error code ``predict`` answers);
* refresh: :class:`ConfigError`, :class:`SourceError`;
* tools: :class:`CSVFormatError`.

Also :func:`shown`, how a message quotes the value it refuses (cut short).

No imports: every layer may import this module.
"""

from __future__ import annotations

from typing import Any

#: An error quotes at most this many characters of the value it refuses.
SHOWN_CHARS = 40


def shown(text: str, quoted: bool = True) -> str:
    """``text`` for an error message (``repr`` with ``quoted``), cut to :data:`SHOWN_CHARS`
    characters with the length added when longer (a 5,000-character value made a 5 KB log
    line)."""
    cut = text[:SHOWN_CHARS]
    cut = repr(cut) if quoted else cut
    return cut if len(text) <= SHOWN_CHARS else f"{cut}... ({len(text)} characters)"


class IRTError(Exception):
    """Base of the package's errors.

    Attributes:
        message: the rule that was broken.
        field: what broke it (JSON path, artifact field, configuration key, ``line N``),
            or ``""``.
    """

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message
        self.field = field

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (multiprocessing, pytest-xdist)
        return (type(self), (self.message, self.field))


class ModelFormatError(IRTError, ValueError):
    """A model artifact that is not valid JSON or breaks the schema (``field``: dotted path
    of the offending field, e.g. ``items.Q7.a``)."""


class ConfigError(IRTError, ValueError):
    """A configuration value breaks its rule (``field``: the environment variable or the
    request field)."""


class CSVFormatError(IRTError, ValueError):
    """An answers CSV that cannot be read.

    Attributes:
        line: 1-based physical line of the problem (the header is line 1); ``field`` is
            ``"line <line>"``.
        reason: what is wrong (the same as ``message``).
        path: the file, when the reader knew it (``str(error)`` then starts with it:
            ``"answers.csv: line 3: ..."``), else ``""``.
    """

    def __init__(self, message: str, line: int, path: str = "") -> None:
        super().__init__(message, f"line {line}")
        self.line = line
        self.reason = message
        self.path = path
        if path:
            self.args = (f"{path}: line {line}: {message}",)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.line, self.path))


class RequestError(IRTError):
    """A request the ``predict`` API refuses.

    Attributes:
        status: HTTP status (400, 413, ...).
        code: machine-readable error code (``invalid_request``, ``too_large``, ...).
        field: JSON path of the offending field, or ``None`` (``str(error)`` is the message
            alone: the field is sent separately in :meth:`to_dict`).
        log_field: ``field`` without caller-chosen text (an unknown key could be anything,
            even a student id): what may go into logs.
    """

    def __init__(self, message: str, field: str | None = None, *, status: int, code: str,
                 log_field: str | None = None) -> None:
        super().__init__(message)
        self.field = field  # type: ignore[assignment]
        self.status = status
        self.code = code
        self.log_field = log_field if log_field is not None else field

    def __reduce__(self) -> tuple[Any, ...]:
        return (_request_error, (self.message, self.field, self.status, self.code,
                                 self.log_field))

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: ``{"error": {"code", "message"[, "field"]}}``."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


def _request_error(message: str, field: str | None, status: int, code: str,
                   log_field: str | None) -> RequestError:
    return RequestError(message, field, status=status, code=code, log_field=log_field)


class SourceError(IRTError, RuntimeError):
    """The answer source could not be queried (unreachable, permission, bad SQL)."""


class StoreError(IRTError, RuntimeError):
    """The artifact store could not be read or written."""


class PointerConflictError(IRTError, RuntimeError):
    """``LATEST`` changed since it was read: another run (or a rollback) moved it."""
