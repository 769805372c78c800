"""POST /api/monitor/events and /api/monitor/events/batch: validate, authorize, queue, answer.

This is the hottest path of the product (tens of thousands of events a second), so it skips
FastAPI's per-request machinery that costs more than the work itself: the body is decoded
and validated in one pass by msgspec (C) instead of json.loads plus pydantic, and the caller
is authenticated with the same `authenticate` the dependencies use, from the header directly.
Errors are the same VeritasError answers as everywhere else.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
import orjson
from asyncpg.pgproto.pgproto import UUID as PgUUID
from fastapi import APIRouter, Request, Response
from fastapi.security.utils import get_authorization_scheme_param

from veritas.auth import tokens
from veritas.db.base import Role
from veritas.deps import authenticate, runtime
from veritas.errors import Conflict, Forbidden, Invalid, NotFound, TooLarge, Unauthorized
from veritas.monitoring.ingest import AttemptInfo, Row, event_row_id
from veritas.monitoring.rules import evaluate
from veritas.runtime import Runtime

router = APIRouter(prefix="/api/monitor", tags=["monitoring"])

MAX_BATCH = 1000


class EventIn(msgspec.Struct, kw_only=True):
    event_type: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.]{1,64}$")]
    severity: Literal["normal", "warning", "critical"] = "normal"
    data: dict[str, Any] = {}
    event_id: str | None = None  # a client UUID; parsed by asyncpg's C UUID, see _row
    client_timestamp: datetime | None = None
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
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": inline(schema)}}}}


async def _decode(request: Request, decoder: msgspec.json.Decoder) -> Any:
    try:
        return decoder.decode(await request.body())
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise Invalid(f"invalid body: {exc}") from None


async def _caller(request: Request, rt: Runtime) -> tokens.Claims:
    """The authenticated sender, before the body is read: 401/403 come before any 422."""
    # Parsed as the OAuth2 bearer dependency of every other endpoint parses it.
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
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
    if not info.in_progress or datetime.now(UTC) > info.closes_at:
        raise Conflict("the attempt has ended; it takes no more events")
    return info


def _row(info: AttemptInfo, event: EventIn, max_payload: int) -> Row:
    try:
        payload = orjson.dumps(event.data)
    except orjson.JSONEncodeError:
        raise Invalid("data holds a value that cannot be stored (integers must fit 64 bits)") \
            from None
    # PostgreSQL text and jsonb refuse NUL; refusing it here keeps one bad event from
    # failing the shared statement that carries everyone else's events.
    if b"\\u0000" in payload or (event.description and "\x00" in event.description):
        raise Invalid("NUL characters are not allowed in events")
    if len(payload) > max_payload:
        raise TooLarge(f"an event's data is over {max_payload // 1024} KiB")
    if event.event_id is None:
        event_id = PgUUID(uuid.uuid4().bytes)
    else:
        try:  # asyncpg's C UUID: canonical text (the dedup key) without uuid.UUID's cost
            event_id = PgUUID(event.event_id)
        except ValueError:
            raise Invalid("event_id must be a UUID") from None
    anomaly, score, rule_text = evaluate(event.event_type, event.severity, event.data, info.rules)
    client_ts = event.client_timestamp
    if client_ts is not None and client_ts.tzinfo is None:
        client_ts = client_ts.replace(tzinfo=UTC)
    return Row(
        id=event_row_id(info.id, event_id),
        exam_attempt_id=info.id,
        event_id=event_id,
        event_type=event.event_type,
        severity=event.severity,
        data_payload=payload.decode(),
        anomaly_score=score if anomaly else None,
        description=rule_text or event.description,
        analysis_notes=rule_text,
        client_timestamp=client_ts,
    )


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


RECORDED = {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"id": {"type": "string", "format": "uuid"},
                                     "status": {"enum": ["recorded", "duplicate"]}}}}}}


@router.post("/events", status_code=201, openapi_extra=_body_schema(SingleEventIn),
             responses={201: {"description": "stored", **RECORDED},
                        200: {"description": "a duplicate, already stored", **RECORDED}})
async def record_event(request: Request) -> Response:
    started = time.perf_counter()
    rt = runtime(request)
    user = await _caller(request, rt)
    body: SingleEventIn = await _decode(request, _single_decoder)
    info = await _attempt(rt, user, body.attempt_id)
    row = _row(info, body, rt.settings.max_event_payload_bytes)
    outcome = await rt.ingestor.write([row])
    if outcome.ended:
        raise Conflict("the attempt has ended; it takes no more events")
    rt.observe("ingest_single", time.perf_counter() - started)
    if outcome.stored[0]:
        return _json(201, {"id": str(row.id), "status": "recorded"})
    return _json(200, {"id": str(row.id), "status": "duplicate"})


@router.post("/events/batch", status_code=201, openapi_extra=_body_schema(BatchIn),
             responses={201: {"description": "stored", "content": {"application/json": {
                 "schema": {"type": "object", "properties": {
                     "recorded": {"type": "integer"}, "duplicates": {"type": "integer"}}}}}}})
async def record_batch(request: Request) -> Response:
    started = time.perf_counter()
    rt = runtime(request)
    user = await _caller(request, rt)
    body: BatchIn = await _decode(request, _batch_decoder)
    info = await _attempt(rt, user, body.attempt_id)
    limit = rt.settings.max_event_payload_bytes
    rows = [_row(info, event, limit) for event in body.events]
    outcome = await rt.ingestor.write(rows)
    if outcome.ended:
        raise Conflict("the attempt has ended; it takes no more events")
    recorded = outcome.stored.count(True)
    rt.observe("ingest_batch", time.perf_counter() - started)
    return _json(201, {"recorded": recorded, "duplicates": len(rows) - recorded})
