"""Errors that carry their HTTP status, turned into `{"detail"}` answers by app.py's handlers
and by the monitoring middleware that runs ahead of them (monitoring/asgi.py)."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class VeritasError(Exception):
    status_code = 400
    headers: dict[str, str] | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


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
