"""The event endpoints as an ASGI middleware, with their wire types and OpenAPI description.

POST /api/monitor/events and /api/monitor/events/batch: validate, authorize, queue, answer.

This is the hottest path of the product (tens of thousands of events a second), so it skips
FastAPI's per-request machinery, which costs more than the work itself. `MonitorEndpoints`
is an ASGI middleware that answers these two paths before routing: FastAPI's router, route
handler, dependency solver and Response classes took a quarter of a server process's CPU under
the ingestion benchmark (bench/README.md). The body is decoded and validated in one pass by
msgspec (C) instead of json.loads plus pydantic, and the caller is authenticated with the same
`authenticate` the dependencies use. Errors are the same `{"detail": ...}` answers as
everywhere else, request counting and the body limit are the app's own middlewares around this
one, and `OPENAPI_PATHS` documents both endpoints in /openapi.json.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import orjson
from asyncpg.pgproto.pgproto import UUID as PgUUID
from fastapi.security.utils import get_authorization_scheme_param
from starlette.types import ASGIApp, Receive, Scope, Send

from veritas.auth import tokens
from veritas.db.base import AttemptStatus, Role
from veritas.deps import authenticate, unit_of_work
from veritas.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    TooLarge,
    Unauthorized,
    VeritasError,
    error_responses,
    from_database,
)
from veritas.exams import lifecycle
from veritas.json_limits import MAX_DEPTH, json_problem
from veritas.monitoring.ingest import AttemptInfo, Row, event_row_id
from veritas.monitoring.rules import evaluate
from veritas.runtime import Runtime

MAX_BATCH = 1000
MIN_CLIENT_YEAR, MAX_CLIENT_YEAR = 1970, 9999
TIMESTAMP_RANGE = (f"client_timestamp must be an instant between the years {MIN_CLIENT_YEAR}"
                   f" and {MAX_CLIENT_YEAR} once converted to UTC")
_INFINITY = datetime.max.replace(tzinfo=UTC)
# orjson's \u0000 escape of a NUL, not a text's own backslash followed by "u0000".
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class EventIn(msgspec.Struct, kw_only=True):
    # \Z, not $: msgspec searches the pattern, and $ would let a trailing newline through.
    event_type: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.]{1,64}\Z")]
    severity: Literal["normal", "warning", "critical"] = "normal"
    data: dict[str, Any] = {}
    # A client UUID; parsed by asyncpg's C UUID, see _row.
    event_id: Annotated[str, msgspec.Meta(extra_json_schema={"format": "uuid"})] | None = None
    client_timestamp: Annotated[datetime, msgspec.Meta(extra_json_schema={
        "format": "date-time"})] | None = None
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class SingleEventIn(EventIn, kw_only=True):
    attempt_id: uuid.UUID


class BatchIn(msgspec.Struct):
    attempt_id: uuid.UUID
    events: Annotated[list[EventIn], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


_single_decoder = msgspec.json.Decoder(SingleEventIn)
_batch_decoder = msgspec.json.Decoder(BatchIn)


def _body_schema(struct: type) -> dict[str, Any]:
    """The OpenAPI request body of a msgspec struct, its nested definitions inlined."""
    (schema,), definitions = msgspec.json.schema_components([struct])

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref:
                return inline(definitions[ref.rsplit("/", 1)[1]])
            pattern = node.get("pattern")
            if isinstance(pattern, str) and pattern.endswith("\\Z"):
                # JSON Schema's regular expressions (ECMA-262) have no \Z; their $ means it.
                node = node | {"pattern": pattern[:-2] + "$"}
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": inline(schema)}}}}


_Body = TypeVar("_Body")


class _ClientGone(Exception):
    """The client disconnected before its body arrived: there is nobody to answer."""


async def _decode(receive: Receive, decoder: msgspec.json.Decoder[_Body]) -> _Body:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    try:
        return decoder.decode(b"".join(chunks))
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise Invalid(f"invalid body: {exc}") from None
    except UnicodeDecodeError:
        raise Invalid("invalid body: not UTF-8") from None
    except RecursionError:
        raise Invalid(f"invalid body: JSON may nest at most {MAX_DEPTH} levels deep") from None


def _header(scope: Scope, name: bytes) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]  # ASGI: raw names, lowercased
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def _caller(scope: Scope, rt: Runtime) -> tokens.Claims:
    """The authenticated sender, before the body is read: 401/403 come before any 422."""
    # Parsed as the OAuth2 bearer dependency of every other endpoint parses it.
    scheme, token = get_authorization_scheme_param(_header(scope, b"authorization"))
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("not authenticated")
    user = await authenticate(rt, token)
    if user.role not in (Role.student, Role.admin):
        raise Forbidden("only the attempt's student (or an admin) sends its events")
    return user


async def _attempt(rt: Runtime, user: tokens.Claims, attempt_id: uuid.UUID) -> AttemptInfo:
    info = await rt.ingestor.attempt(attempt_id)
    if info is None or (user.role is Role.student and info.student_id != user.user_id):
        raise NotFound("attempt not found")
    grace = lifecycle.grace(rt.settings.attempt_grace_minutes)
    now = lifecycle.now()
    if not lifecycle.is_open(info, now, grace):
        if info.status is AttemptStatus.in_progress:  # its time ran out: it ends now
            async with unit_of_work(rt, user) as session:
                await lifecycle.abandon_expired(session, now, grace, info.id)
            rt.ingestor.mark_ended(info.id)
        raise Conflict("the attempt has ended; it takes no more events")
    return info


def _check_text(text: str) -> None:
    """Refuse what PostgreSQL's text cannot hold: NUL, and lone surrogates (JSON's \\ud800)."""
    if "\x00" in text:
        raise Invalid("NUL characters are not allowed in events")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise Invalid("description must be valid Unicode text") from None


def _utc_instant(stamp: datetime) -> datetime:
    """The client's time in UTC, refused unless it is an instant between 1970 and 9999.

    Converted here because the writer's encoder would otherwise overflow mid-flush on an
    offset that crosses year 1 or 9999, failing everyone's events in that statement."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    try:
        stamp = stamp.astimezone(UTC)
    except OverflowError:
        raise Invalid(TIMESTAMP_RANGE) from None
    # asyncpg writes the very last microsecond of 9999 as 'infinity', which is no instant.
    if not MIN_CLIENT_YEAR <= stamp.year <= MAX_CLIENT_YEAR or stamp == _INFINITY:
        raise Invalid(TIMESTAMP_RANGE)
    return stamp


def _row(info: AttemptInfo, event: EventIn, max_payload: int) -> Row:
    try:
        payload = orjson.dumps(event.data)
    except orjson.JSONEncodeError:
        raise Invalid("data holds a value that cannot be stored (integers must fit 64 bits,"
                      " text must be valid Unicode)") from None
    # PostgreSQL text and jsonb refuse NUL; refusing it here keeps one bad event from
    # failing the shared statement that carries everyone else's events.
    if b"\\u0000" in payload and _ESCAPED_NUL.search(payload):
        raise Invalid("NUL characters are not allowed in events")
    if event.description:
        _check_text(event.description)
    if len(payload) > max_payload:
        raise TooLarge(f"an event's data is over {max_payload // 1024} KiB")
    # Nesting can only be that deep if there are that many brackets: counting them in C keeps
    # the walk off the usual small payloads.
    if payload.count(b"{") + payload.count(b"[") > MAX_DEPTH:
        problem = json_problem(event.data)
        if problem is not None:
            raise Invalid(f"data: {problem}")
    if event.event_id is None:
        event_id = PgUUID(uuid.uuid4().bytes)
    else:
        try:  # asyncpg's C UUID: canonical text (the dedup key) without uuid.UUID's cost
            event_id = PgUUID(event.event_id)
        except ValueError:
            raise Invalid("event_id must be a UUID") from None
    judged = evaluate(event.event_type, event.severity, event.data, info.rules)
    client_ts = event.client_timestamp
    if client_ts is not None:
        client_ts = _utc_instant(client_ts)
    return Row(
        id=event_row_id(info.id, event_id),
        exam_attempt_id=info.id,
        event_id=event_id,
        event_type=event.event_type,
        severity=judged.severity,
        data_payload=payload.decode(),
        anomaly_score=judged.score,
        description=judged.description or event.description,
        analysis_notes=judged.description,
        client_timestamp=client_ts,
    )


async def record_event(rt: Runtime, scope: Scope, receive: Receive) -> tuple[int, Any]:
    started = time.perf_counter()
    user = await _caller(scope, rt)
    body: SingleEventIn = await _decode(receive, _single_decoder)
    info = await _attempt(rt, user, body.attempt_id)
    rt.ingestor.admit(info.id, 1)
    row = _row(info, body, rt.settings.max_event_payload_bytes)
    outcome = await rt.ingestor.write([row])
    if outcome.ended:
        raise Conflict("the attempt has ended; it takes no more events")
    rt.observe("ingest_single", time.perf_counter() - started)
    if outcome.stored[0]:
        return 201, {"id": str(row.id), "status": "recorded"}
    return 200, {"id": str(row.id), "status": "duplicate"}


async def record_batch(rt: Runtime, scope: Scope, receive: Receive) -> tuple[int, Any]:
    started = time.perf_counter()
    user = await _caller(scope, rt)
    body: BatchIn = await _decode(receive, _batch_decoder)
    info = await _attempt(rt, user, body.attempt_id)
    rt.ingestor.admit(info.id, len(body.events))
    limit = rt.settings.max_event_payload_bytes
    rows = [_row(info, event, limit) for event in body.events]
    outcome = await rt.ingestor.write(rows)
    if outcome.ended:
        raise Conflict("the attempt has ended; it takes no more events")
    recorded = outcome.stored.count(True)
    rt.observe("ingest_batch", time.perf_counter() - started)
    return 201, {"recorded": recorded, "duplicates": len(rows) - recorded}


ENDPOINTS = {"/api/monitor/events": record_event, "/api/monitor/events/batch": record_batch}


class MonitorEndpoints:
    """Answers POSTs to the monitoring paths itself and passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = ENDPOINTS.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = []
        if scope["method"] != "POST":
            status, answer = 405, {"detail": "Method Not Allowed"}
            headers.append((b"allow", b"POST"))
        else:
            try:
                status, answer = await endpoint(scope["app"].state.runtime, scope, receive)
            except _ClientGone:
                return
            except Exception as exc:  # noqa: BLE001 - answered as the app's handlers would
                error = exc if isinstance(exc, VeritasError) else from_database(exc)
                if error is None:
                    raise  # a bug: CountRequests logs it and answers 500
                status, answer = error.status_code, {"detail": error.detail}
                headers += [(k.lower().encode(), v.encode())
                            for k, v in (error.headers or {}).items()]
        body = orjson.dumps(answer)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})


def _error_responses() -> dict[str, Any]:
    """The errors both endpoints answer, documented as every FastAPI route documents its own
    (errors.error_responses), the body a reference to the one error schema."""
    documented = error_responses(
        401, 403, 404, 409, 413, 422, 429, 503,
        s403="only the attempt's student (or an admin) sends its events",
        s404="no such attempt of the caller's", s409="the attempt has ended",
        s413="an event's data, or the body, is too large",
        s429="the attempt sends too fast; retry after Retry-After seconds",
        s503="busy or database down; retry after Retry-After seconds")
    return {str(status): {"description": entry["description"],
                          **({"headers": entry["headers"]} if "headers" in entry else {}),
                          "content": {"application/json": {"schema": {
                              "$ref": "#/components/schemas/ErrorOut"}}}}
            for status, entry in documented.items()}


def _operation(summary: str, struct: type, responses: dict[str, Any]) -> dict[str, Any]:
    return {"post": {
        "tags": ["monitoring"], "summary": summary,
        "operationId": summary.lower().replace(" ", "_"),
        "security": [{"OAuth2PasswordBearer": []}],
        **_body_schema(struct),
        "responses": {**responses, **_error_responses()},
    }}


_RECORDED = {"content": {"application/json": {"schema": {
    "type": "object", "required": ["id", "status"],
    "properties": {"id": {"type": "string", "format": "uuid"},
                   "status": {"enum": ["recorded", "duplicate"]}}}}}}

# Merged into the app's OpenAPI document (app.py), since no FastAPI route serves these paths.
OPENAPI_PATHS = {
    "/api/monitor/events": _operation("Record event", SingleEventIn, {
        "201": {"description": "stored", **_RECORDED},
        "200": {"description": "a duplicate, already stored", **_RECORDED}}),
    "/api/monitor/events/batch": _operation("Record batch", BatchIn, {
        "201": {"description": "stored (duplicates are counted, not stored again)",
                "content": {"application/json": {"schema": {
                    "type": "object", "required": ["recorded", "duplicates"],
                    "properties": {"recorded": {"type": "integer", "minimum": 0},
                                   "duplicates": {"type": "integer", "minimum": 0}}}}}}}),
}
