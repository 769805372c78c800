"""Errors that carry their HTTP status, turned into `{"detail"}` answers by app.py's handlers
and by the monitoring middleware that runs ahead of them (monitoring/asgi.py), and the one
body shape every error answer has, as /openapi.json documents it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class VeritasError(Exception):
    status_code = 400
    headers: dict[str, str] | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(VeritasError):
    status_code = 400


class Unauthorized(VeritasError):
    status_code = 401
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(VeritasError):
    status_code = 403


class NotFound(VeritasError):
    status_code = 404


class Conflict(VeritasError):
    status_code = 409


class Invalid(VeritasError):
    status_code = 422


class UnsupportedMediaType(VeritasError):
    status_code = 415


class TooLarge(VeritasError):
    status_code = 413


class RateLimited(VeritasError):
    status_code = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(max(1, retry_after))}


class Unavailable(VeritasError):
    status_code = 503

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(max(1, retry_after))}


def from_database(exc: Exception) -> VeritasError | None:
    """The answer to a database failure, or None for a bug (which is a logged 500)."""
    down = Unavailable("database unavailable; retry shortly", 2)
    if isinstance(exc, OperationalError | PoolTimeout | OSError):
        return down
    if not isinstance(exc, DBAPIError):
        return None
    if exc.connection_invalidated:
        return down
    # 08 connection lost, 53 out of resources, 57 shutting down or not yet up: the database
    # is (briefly) unavailable, which is the server's 503, not a 500.
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    if sqlstate[:2] in ("08", "53", "57"):
        return down
    if sqlstate.startswith("40"):  # deadlock or serialization failure: safe to retry
        return Unavailable("conflicting concurrent update; retry", 1)
    # Class 22 is "data exception": a value from the client that PostgreSQL cannot store
    # (a NUL character, a number out of range). That is the client's 422.
    if sqlstate.startswith("22"):
        return Invalid("a value cannot be stored (invalid characters or out of range)")
    return None


class Problem(BaseModel):
    """One reason a request failed validation: where (`loc`), why (`msg`) and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every error answer. `detail` is one sentence, or, when FastAPI's validation refuses a
    body or parameter, the list of its problems (422 only)."""

    detail: str | list[Problem]


WHY = {
    400: "a request that cannot be acted on",
    401: "no token, or an invalid, expired or revoked one",
    403: "authenticated, but not allowed to do this",
    404: "no such resource, or none the caller may see",
    409: "the resource's state does not allow this",
    413: "the request body is over the size limit",
    415: "the body's media type is not accepted",
    422: "invalid input: a sentence, or a list of problems",
    429: "too many requests; retry after Retry-After seconds",
    503: "the database is unavailable or an update conflicted; retry after Retry-After seconds",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                                "required": True, "schema": {"type": "integer", "minimum": 1}}}
HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "required": True,
                               "schema": {"type": "string"}}},
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}


def error_responses(*statuses: int, **why: str) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` entries for error statuses, all with the ErrorOut body; a keyword
    `s404="..."` says what that status means on this route instead of the general reason."""
    return {status: {"model": ErrorOut, "description": why.get(f"s{status}", WHY[status]),
                     **({"headers": HEADERS[status]} if status in HEADERS else {})}
            for status in statuses}
