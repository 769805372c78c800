"""Errors that carry their HTTP status; mapped to responses once, in app.py."""

from __future__ import annotations


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
