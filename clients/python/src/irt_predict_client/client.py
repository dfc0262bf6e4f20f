"""``PredictClient``: ID token, retries with backoff, typed errors, batch splitting.

Retry policy (``max_retries`` retries after the first attempt):

* retried: no answer (connection refused or reset, timeout - every route is a read, so a
  repeat is harmless), ``429`` and ``503``; the wait is the answer's ``Retry-After``
  (seconds or an HTTP date, capped at ``max_backoff``) when it has one, else exponential
  backoff ``backoff * 2**attempt`` (capped at ``max_backoff``) with full jitter;
* ``401`` once, with a freshly fetched token (a token revoked or expired early);
* never: any other 4xx (:class:`InvalidRequestError`, :class:`PermissionDeniedError`), other
  5xx (:class:`ServerError`), a malformed 200 (:class:`MalformedResponseError`).
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any, Literal, TypedDict
from urllib.parse import urlsplit

import requests

from irt_predict_client.errors import (
    AuthenticationError,
    ConnectionFailedError,
    InvalidRequestError,
    MalformedResponseError,
    PermissionDeniedError,
    PredictError,
    ServerError,
    UnavailableError,
)

ItemId = str | int
Method = Literal["EAP", "MAP"]
Truncate = Literal["oldest", "none"]


class Answer(TypedDict, total=False):
    """One answer: ``item_id`` and ``correct`` required, ``answered_at`` optional (ISO-8601
    string or epoch seconds)."""

    item_id: ItemId
    correct: bool | int
    answered_at: str | float


class Ability(TypedDict):
    theta: float
    se: float
    method: str
    n_answers: int


class PredictResult(TypedDict, total=False):
    """One student's answer (``student_id`` in a batch; ``provisional_items`` and
    ``dropped_responses`` only when not empty)."""

    model_version: str
    student_id: str | None
    ability: Ability
    probabilities: dict[str, float]
    unknown_items: list[str]
    provisional_items: list[str]
    dropped_responses: int


class NextItem(TypedDict):
    item_id: str
    probability: float
    information: float


Strategy = Literal["max_information", "target_probability"]
ExposureMethod = Literal["none", "sympson-hetter"]


class Exposure(TypedDict):
    """The request's ``exposure``: ``sympson-hetter`` uses the model's Sympson-Hetter
    parameters (keep one ``seed`` for a whole session); ``none`` is no filter."""

    method: ExposureMethod


class StopRule(TypedDict, total=False):
    """The request's ``stop``: recommend stopping once the ability's SE is at or below ``se``
    or the student has ``max_items`` known answers (at least one of the two)."""

    se: float
    max_items: int


class StopAdvice(TypedDict):
    """The answer's ``stop`` (only when the request had ``stop``): ``reasons`` among ``se``,
    ``max_items`` and ``no_items``."""

    recommended: bool
    reasons: list[Literal["se", "max_items", "no_items"]]


class ExposureAdvice(TypedDict):
    """The answer's ``exposure`` (only when the request had ``exposure``): ``applied`` is
    false when ``sympson-hetter`` was asked of a model without Sympson-Hetter parameters."""

    method: ExposureMethod
    applied: bool


class NextItemsResult(TypedDict, total=False):
    """A ``/next-items`` answer; ``unknown_skills``, ``stop``, ``exposure`` and
    ``dropped_responses`` only when the request's fields call for them (see
    :meth:`PredictClient.next_items`)."""

    model_version: str
    ability: Ability
    strategy: str
    items: list[NextItem]
    unknown_items: list[str]
    unknown_skills: list[str]
    stop: StopAdvice
    exposure: ExposureAdvice
    dropped_responses: int


class Student(TypedDict, total=False):
    """A batch entry: ``responses`` required."""

    student_id: ItemId | None
    responses: Sequence[Answer]
    items: Sequence[ItemId] | None


#: Statuses answered by waiting and trying again.
RETRY_STATUSES = frozenset({429, 503})
#: Seconds a token is renewed before it expires.
TOKEN_MARGIN_SECONDS = 300.0


def _jwt_expiry(token: str) -> float:
    """The ``exp`` of a JWT (not verified: the server verifies; this only schedules renewal);
    one hour from now when unreadable."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return time.time() + 3600.0


class PredictClient:
    """A client of one ``predict`` deployment.

    Args:
        url: the function's URL, e.g. ``https://predict-abc-ew.a.run.app`` (the ID token's
            audience is its scheme and host) or ``http://127.0.0.1:8080`` (``make serve``).
        credentials: google-auth credentials that yield ID tokens for the function
            (``google.oauth2.service_account.IDTokenCredentials``,
            ``google.auth.impersonated_credentials.IDTokenCredentials``, or any credentials
            with ``with_target_audience``). ``None``: on Google Cloud the attached service
            account's token from the metadata server, elsewhere
            ``GOOGLE_APPLICATION_CREDENTIALS`` (``google.oauth2.id_token.fetch_id_token``).
        timeout: seconds per HTTP attempt (connect and read).
        max_retries: retries after the first attempt (connection errors, 429, 503).
        backoff: first backoff in seconds (doubles per retry, full jitter).
        max_backoff: longest wait between attempts, ``Retry-After`` included.
        authenticate: send an ID token; ``None`` (default): only to ``https`` URLs.
        max_students: students per request of :meth:`predict_batch` (the server's
            ``MAX_STUDENTS``, 100 by default; halved automatically on a 413 about it).
        session: a ``requests.Session`` to reuse (one is made otherwise).
        sleep: the wait function (``time.sleep``); tests record the waits with it.
    """

    def __init__(self, url: str, credentials: Any = None, *, timeout: float = 10.0,
                 max_retries: int = 4, backoff: float = 0.5, max_backoff: float = 30.0,
                 authenticate: bool | None = None, max_students: int = 100,
                 session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url must be http(s)://host[:port], got {url!r}")
        self.url = url.rstrip("/")
        self.audience = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.authenticate = parts.scheme == "https" if authenticate is None else authenticate
        self.max_students = max_students
        self.session = session or requests.Session()
        self._sleep = sleep
        self._credentials = credentials
        self._token: str | None = None
        self._token_expiry = 0.0
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------- the API
    def predict(self, responses: Sequence[Answer], items: Sequence[ItemId] | None = None, *,
                method: Method | None = None, truncate: Truncate | None = None,
                item_skills: Mapping[str, str] | None = None,
                request_id: str | None = None) -> PredictResult:
        """Ability and P(correct) of ``items`` (every item when ``None``) for one student."""
        body = _drop_none({"responses": list(responses),
                           "items": None if items is None else list(items),
                           "method": method, "truncate": truncate,
                           "item_skills": None if item_skills is None else dict(item_skills)})
        answer = self._call("POST", "/predict", body, request_id)
        _expect(answer, ("model_version", "ability", "probabilities"), request_id)
        return answer  # type: ignore[return-value]

    def predict_batch(self, students: Iterable[Student], *, method: Method | None = None,
                      truncate: Truncate | None = None,
                      item_skills: Mapping[str, str] | None = None,
                      request_id: str | None = None) -> list[PredictResult]:
        """One result per student, in order, however many students: sent in requests of at
        most ``max_students`` (each result carries its ``model_version``; a refresh between
        two requests may change it)."""
        todo = [dict(s) for s in students]
        out: list[PredictResult] = []
        size = max(1, self.max_students)
        while todo:
            chunk = todo[:size]
            body = _drop_none({"students": chunk, "method": method, "truncate": truncate,
                               "item_skills": None if item_skills is None else
                               dict(item_skills)})
            try:
                answer = self._call("POST", "/predict", body, request_id)
            except InvalidRequestError as err:
                if err.status == 413 and err.field == "students" and size > 1:
                    size = self.max_students = size // 2  # the server's cap is lower
                    continue
                raise
            _expect(answer, ("model_version", "results"), request_id)
            results = answer["results"]
            if not isinstance(results, list) or len(results) != len(chunk):
                raise MalformedResponseError(
                    f"expected {len(chunk)} results, got {type(results).__name__}",
                    status=200, code="malformed_response", request_id=request_id)
            out.extend({"model_version": answer["model_version"], **r} for r in results)
            todo = todo[len(chunk):]
        return out

    def next_items(self, responses: Sequence[Answer], k: int = 1, *,
                   strategy: Strategy | None = None,
                   target: float | None = None, candidates: Sequence[ItemId] | None = None,
                   method: Method | None = None, truncate: Truncate | None = None,
                   exclude: Sequence[ItemId] | None = None, randomesque: int | None = None,
                   exposure: ExposureMethod | Exposure | None = None,
                   seed: int | None = None,
                   skill_caps: Mapping[str, int] | None = None,
                   skill_shares: Mapping[str, float] | None = None,
                   stop: StopRule | None = None,
                   request_id: str | None = None) -> NextItemsResult:
        """The ``k`` best next items for a student (``POST /next-items``).

        Args:
            responses: the student's answers.
            k: how many items (at most the server's ``MAX_K``).
            strategy: ``max_information`` (default) or ``target_probability`` (with
                ``target``, the success probability aimed at).
            candidates: items to choose from (default: every item).
            method: ``EAP`` (default) or ``MAP``.
            truncate: ``oldest`` keeps the most recent answers of a long history.
            exclude: items never to recommend.
            randomesque: pick each item among this many best (exposure control; vary
                ``seed`` per request).
            exposure: ``"sympson-hetter"`` (or ``{"method": "sympson-hetter"}``): the model's
                Sympson-Hetter exposure control (keep one ``seed`` for the session); the
                answer's ``exposure.applied`` says whether the model had the parameters.
            seed: seed of the randomesque and Sympson-Hetter draws (reproducible answers).
            skill_caps: ``{skill_id: most items of the skill in the session}``.
            skill_shares: ``{skill_id: weight}``, target shares of the session's items.
            stop: ``{"se": ..., "max_items": ...}``: the answer's ``stop`` then says
                whether to stop.
            request_id: sent as ``X-Request-Id``.

        Returns:
            The answer, with ``stop``/``exposure``/``unknown_skills`` when asked for.

        Raises:
            InvalidRequestError: a 4xx naming the field (``err.field``, e.g. ``stop.se``).
        """
        if isinstance(exposure, str):
            exposure = {"method": exposure}
        body = _drop_none({"responses": list(responses), "k": k, "strategy": strategy,
                           "target": target, "method": method, "truncate": truncate,
                           "candidates": None if candidates is None else list(candidates),
                           "exclude": None if exclude is None else list(exclude),
                           "randomesque": randomesque,
                           "exposure": None if exposure is None else dict(exposure),
                           "seed": seed,
                           "skill_caps": None if skill_caps is None else dict(skill_caps),
                           "skill_shares": None if skill_shares is None else dict(skill_shares),
                           "stop": None if stop is None else dict(stop)})
        answer = self._call("POST", "/next-items", body, request_id)
        _expect(answer, ("model_version", "ability", "items"), request_id)
        return answer  # type: ignore[return-value]

    def model_info(self, *, request_id: str | None = None) -> dict[str, Any]:
        """The serving model's metadata (``GET /model``)."""
        answer = self._call("GET", "/model", None, request_id)
        _expect(answer, ("model_version", "n_items"), request_id)
        return answer

    # ----------------------------------------------------------------------- token
    def token(self, *, force: bool = False) -> str:
        """The ID token for the function's URL, fetched once and reused until five minutes
        before it expires (thread-safe)."""
        with self._lock:
            if force or self._token is None or time.time() > self._token_expiry - \
                    TOKEN_MARGIN_SECONDS:
                self._token = self._fetch_token()
                self._token_expiry = _jwt_expiry(self._token)
            return self._token

    def _fetch_token(self) -> str:
        import google.auth.transport.requests
        import google.oauth2.id_token

        request = google.auth.transport.requests.Request()
        creds = self._credentials
        if creds is None:
            return str(google.oauth2.id_token.fetch_id_token(request, self.audience))
        if hasattr(creds, "with_target_audience"):
            creds = creds.with_target_audience(self.audience)
        else:
            from google.auth import impersonated_credentials

            if isinstance(creds, impersonated_credentials.Credentials):
                creds = impersonated_credentials.IDTokenCredentials(
                    creds, target_audience=self.audience, include_email=True)
        self._credentials = creds
        creds.refresh(request)
        return str(creds.token)

    # ----------------------------------------------------------------------- HTTP
    def _call(self, method: str, path: str, body: Any, request_id: str | None
              ) -> dict[str, Any]:
        rid = request_id or uuid.uuid4().hex
        fresh_token = False
        attempt = 0
        while True:
            headers = {"X-Request-Id": rid, "Accept": "application/json"}
            if self.authenticate:
                headers["Authorization"] = f"Bearer {self.token(force=fresh_token)}"
            try:
                resp = self.session.request(method, self.url + path, json=body,
                                            headers=headers, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self.max_retries:
                    raise ConnectionFailedError(
                        f"no answer from {self.url} after {attempt + 1} attempts: {exc}",
                        code="connection", request_id=rid) from exc
                self._sleep(self._delay(attempt, None))
                attempt += 1
                continue
            if resp.status_code == 200:
                try:
                    answer = resp.json()
                except ValueError:
                    raise MalformedResponseError(
                        f"200 with a body that is not JSON: {resp.text[:200]!r}", status=200,
                        code="malformed_response", request_id=rid) from None
                if not isinstance(answer, dict):
                    raise MalformedResponseError(
                        f"200 with JSON that is not an object: {resp.text[:200]!r}",
                        status=200, code="malformed_response", request_id=rid)
                return answer
            if resp.status_code == 401 and self.authenticate and not fresh_token:
                fresh_token = True  # once: the cached token may have been revoked
                continue
            if resp.status_code in RETRY_STATUSES and attempt < self.max_retries:
                self._sleep(self._delay(attempt, resp.headers.get("Retry-After")))
                attempt += 1
                continue
            raise _error(resp, rid)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            seconds = _retry_after_seconds(retry_after)
            if seconds is not None:
                return min(self.max_backoff, seconds)
        return random.uniform(0.0, min(self.max_backoff, self.backoff * 2 ** attempt))


def _retry_after_seconds(value: str) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; ``None`` if unreadable."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _drop_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def _expect(answer: dict[str, Any], keys: tuple[str, ...], rid: str | None) -> None:
    missing = [k for k in keys if k not in answer]
    if missing:
        raise MalformedResponseError(f"200 without {', '.join(missing)}", status=200,
                                     code="malformed_response", request_id=rid)


def _error(resp: requests.Response, rid: str) -> PredictError:
    """The typed error of a non-200 answer (the service's JSON error, or Google's HTML)."""
    status = resp.status_code
    code, message, field = f"http_{status}", resp.text[:300] or resp.reason, None
    try:
        error = resp.json()["error"]
        code, message, field = str(error["code"]), str(error["message"]), error.get("field")
    except (ValueError, KeyError, TypeError):
        if status == 401:
            code, message = "unauthenticated", "no valid ID token for this function's URL"
        elif status == 403:
            code, message = "forbidden", "this identity is not in predict_invokers"
    kind: type[PredictError]
    if status == 401:
        kind = AuthenticationError
    elif status == 403:
        kind = PermissionDeniedError
    elif status in RETRY_STATUSES:
        kind = UnavailableError
    elif 400 <= status < 500:
        kind = InvalidRequestError
    else:
        kind = ServerError
    return kind(message, status=status, code=code, field=field, request_id=rid)
