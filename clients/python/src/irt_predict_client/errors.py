"""Typed errors of :class:`irt_predict_client.PredictClient`.

Every error carries what the service said: ``status`` (HTTP status, ``None`` when no answer
came), ``code`` (the service's ``error.code``, e.g. ``invalid_request``, ``too_large``,
``model_unavailable``; or the client's own: ``unauthenticated``, ``forbidden``,
``connection``, ``malformed_response``), ``message``, ``field`` (the JSON path of the
offending input, e.g. ``responses[3].correct``, or ``None``) and ``request_id`` (the
``X-Request-Id`` of the call, to find its log line).
"""

from __future__ import annotations


class PredictError(Exception):
    """Base of every error the client raises."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "error",
                 field: str | None = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.request_id = request_id

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{status}{self.code}: {self.message}{where}"


class InvalidRequestError(PredictError):
    """A 4xx other than 401/403/429: the request is wrong (400 ``invalid_request`` /
    ``invalid_json``, 404, 405, 413 ``too_large``, 415). Never retried: fix the request."""


class AuthenticationError(PredictError):
    """401: no valid ID token for the function's URL (retried once with a fresh token)."""


class PermissionDeniedError(PredictError):
    """403: the identity is not allowed to call predict (not in ``predict_invokers``)."""


class UnavailableError(PredictError):
    """429 or 503 (``model_unavailable``) still answered after every retry."""


class ServerError(PredictError):
    """A 5xx other than 503 (``internal``: a bug on the server's side). Not retried."""


class ConnectionFailedError(PredictError):
    """No answer (connection refused or reset, timeout) after every retry."""


class MalformedResponseError(PredictError):
    """The service answered 200 with a body that is not the documented JSON."""
