"""POST /api/monitor/events and /api/monitor/events/batch: validate, authorize, queue, answer."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from veritas.db.base import Role, Severity
from veritas.deps import CurrentUser, RuntimeDep
from veritas.errors import Conflict, Forbidden, Invalid, NotFound, TooLarge
from veritas.monitoring.ingest import AttemptInfo, Row, event_row_id
from veritas.monitoring.rules import evaluate

router = APIRouter(prefix="/api/monitor", tags=["monitoring"])

MAX_BATCH = 1000

EventType = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.]{1,64}$")]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event_type: EventType
    severity: Severity = Severity.normal
    data: dict[str, Any] = Field(default_factory=dict)
    event_id: uuid.UUID | None = None
    client_timestamp: datetime | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None


class SingleEventIn(EventIn):
    attempt_id: uuid.UUID


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    attempt_id: uuid.UUID
    events: Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)]


class RecordedOut(BaseModel):
    id: uuid.UUID
    status: str


class BatchOut(BaseModel):
    recorded: int
    duplicates: int


async def _authorize(rt: RuntimeDep, user: CurrentUser, attempt_id: uuid.UUID) -> AttemptInfo:
    if user.role not in (Role.student, Role.admin):
        raise Forbidden("only the attempt's student (or an admin) sends its events")
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
    event_id = event.event_id or uuid.uuid4()
    anomaly, score, rule_text = evaluate(
        event.event_type, event.severity.value, event.data, info.rules
    )
    client_ts = event.client_timestamp
    if client_ts is not None and client_ts.tzinfo is None:
        client_ts = client_ts.replace(tzinfo=UTC)
    return Row(
        id=event_row_id(info.id, event_id),
        attempt_started_at=info.started_at,
        exam_attempt_id=info.id,
        student_id=info.student_id,
        event_id=event_id,
        event_type=event.event_type,
        severity=event.severity.value,
        data_payload=payload.decode(),
        is_anomaly=anomaly,
        anomaly_score=score,
        description=rule_text or event.description,
        analysis_notes=rule_text,
        client_timestamp=client_ts,
    )


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


@router.post("/events", status_code=201, response_model=RecordedOut,
             responses={200: {"model": RecordedOut, "description": "a duplicate, already stored"}})
async def record_event(body: SingleEventIn, rt: RuntimeDep, user: CurrentUser) -> Response:
    started = time.perf_counter()
    info = await _authorize(rt, user, body.attempt_id)
    row = _row(info, body, rt.settings.max_event_payload_bytes)
    outcome = await rt.ingestor.write([row])
    if outcome.ended:
        raise Conflict("the attempt has ended; it takes no more events")
    rt.observe("ingest_single", time.perf_counter() - started)
    if outcome.stored[0]:
        return _json(201, {"id": str(row.id), "status": "recorded"})
    return _json(200, {"id": str(row.id), "status": "duplicate"})


@router.post("/events/batch", status_code=201, response_model=BatchOut)
async def record_batch(body: BatchIn, rt: RuntimeDep, user: CurrentUser) -> Response:
    started = time.perf_counter()
    info = await _authorize(rt, user, body.attempt_id)
    limit = rt.settings.max_event_payload_bytes
    rows = [_row(info, event, limit) for event in body.events]
    outcome = await rt.ingestor.write(rows)
    if outcome.ended:
        raise Conflict("the attempt has ended; it takes no more events")
    recorded = outcome.stored.count(True)
    rt.observe("ingest_batch", time.perf_counter() - started)
    return _json(201, {"recorded": recorded, "duplicates": len(rows) - recorded})
