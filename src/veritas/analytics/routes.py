"""Dashboards and read views for students and teachers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from veritas.alerts import service as triage
from veritas.alerts.schemas import AlertDetailOut, StatusIn
from veritas.analytics import service
from veritas.analytics.schemas import (
    AlertOut,
    EventOut,
    ExamAnalyticsOut,
    StudentAttemptOut,
    StudentDashboardOut,
    StudentDetailOut,
    TeacherAttemptOut,
    TeacherDashboardOut,
)
from veritas.db.base import AlertStatus, Severity
from veritas.deps import (
    ContextDep,
    PageDep,
    RuntimeDep,
    SessionDep,
    Staff,
    Student,
    ViewableAttempt,
    check_claims,
    request_context,
    unit_of_work,
)
from veritas.errors import Invalid, Unauthorized, error_responses
from veritas.json_limits import json_problem
from veritas.pagination import Page

student = APIRouter(prefix="/api/student", tags=["student"],
                    responses=error_responses(401, 403, 422, 503))
teacher = APIRouter(prefix="/api/teacher", tags=["teacher"],
                    responses=error_responses(401, 403, 422, 503))

# The attempt views take the attempt through deps.ViewableAttempt.
ATTEMPT = error_responses(403, 404, s403="not staff, or the attempt's exam is not the caller's",
                          s404="no such attempt")


@student.get("/dashboard", response_model=StudentDashboardOut)
async def student_dashboard(session: SessionDep, user: Student) -> StudentDashboardOut:
    return await service.student_dashboard(session, user)


@student.get("/attempts/{attempt_id}", response_model=StudentAttemptOut,
             responses=error_responses(404, s404="no such attempt of the caller's"))
async def student_attempt(
    attempt_id: uuid.UUID, session: SessionDep, user: Student
) -> StudentAttemptOut:
    return await service.student_attempt(session, user, attempt_id)


@teacher.get("/dashboard", response_model=TeacherDashboardOut)
async def teacher_dashboard(
    session: SessionDep, user: Staff, ctx: ContextDep
) -> TeacherDashboardOut:
    return await service.teacher_dashboard(session, user, ctx)


@teacher.get("/exams/{exam_id}/analytics", response_model=ExamAnalyticsOut,
             responses=error_responses(404, s404="no such exam"))
async def exam_analytics(
    exam_id: uuid.UUID, session: SessionDep, user: Staff, ctx: ContextDep
) -> ExamAnalyticsOut:
    return await service.exam_analytics(session, user, exam_id, ctx)


@teacher.get("/students/{student_id}", response_model=StudentDetailOut,
             responses=error_responses(404, s404="no such student, or none who attempted an"
                                                 " exam the caller may view"))
async def student_detail(
    student_id: uuid.UUID, session: SessionDep, user: Staff, ctx: ContextDep
) -> StudentDetailOut:
    return await service.student_detail(session, user, student_id, ctx)


@teacher.get("/attempts/{attempt_id}", response_model=TeacherAttemptOut, responses=ATTEMPT)
async def attempt_detail(
    access: ViewableAttempt, session: SessionDep, user: Staff, ctx: ContextDep
) -> TeacherAttemptOut:
    return await service.attempt_detail(session, user, access.attempt, access.exam, ctx)


def _payload_filter(payload: str | None) -> dict[str, Any] | None:
    if payload is None:
        return None
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise Invalid("payload must be a JSON object") from None
    if not isinstance(value, dict):
        raise Invalid("payload must be a JSON object")
    problem = json_problem(value)  # it is re-encoded for the query, which must not fail
    if problem is not None:
        raise Invalid(f"payload: {problem}")
    return value


@teacher.get("/attempts/{attempt_id}/monitoring", response_model=Page[EventOut],
             responses=ATTEMPT)
async def attempt_monitoring(
    access: ViewableAttempt, session: SessionDep, user: Staff, ctx: ContextDep, paging: PageDep,
    event_type: Annotated[str | None, Query(max_length=64)] = None,
    severity: Severity | None = None,
    is_anomaly: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    payload: Annotated[str | None, Query(max_length=4096,
                                         description="JSON object matched by containment")] = None,
) -> dict[str, Any]:
    """The attempt's events, oldest first."""
    return await service.attempt_events(
        session, user, access.attempt, paging, ctx, event_type=event_type, severity=severity,
        is_anomaly=is_anomaly, since=since, until=until, payload=_payload_filter(payload))


# `all` lists alerts whatever their status.
StatusFilter = Literal["open", "acknowledged", "dismissed", "all"]


@teacher.get("/alerts", response_model=Page[AlertOut])
async def alerts(
    session: SessionDep, user: Staff, ctx: ContextDep, paging: PageDep,
    exam_id: uuid.UUID | None = None, severity: Severity | None = None,
    kind: Annotated[str | None, Query(
        max_length=64, description="an alert kind (`monitoring_anomaly`, `low_integrity`,"
                                   " `high_dropout_risk`, `telemetry_gap`) or the event type"
                                   " of folded anomalies (`paste`, `focus_lost`...)")] = None,
    status: Annotated[StatusFilter, Query(
        description="the alerts' triage status; `all` for every one")] = "open",
    since: Annotated[datetime | None, Query(
        description="alerts raised or repeated from this time on; default: the last 30 days"
    )] = None,
) -> dict[str, Any]:
    """Most severe first, then the newest raised (`first_at`) first. A repeat folding into an
    alert moves neither, so paging never shows an alert twice or skips one for that; an alert
    that turns more severe while the pages are read moves ahead, to the top of a fresh first
    page (and into the stream)."""
    return await service.alerts(
        session, user, paging, ctx, since=since, exam_id=exam_id, severity=severity,
        kind=kind, status=None if status == "all" else AlertStatus(status))


STREAM_POLL_SECONDS = 1.0
STREAM_OVERLAP = timedelta(seconds=10)  # events commit a moment after their timestamp
STREAM_HEARTBEAT_SECONDS = 15.0


@teacher.get("/alerts/stream", response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "server-sent events: `alert`, one per new,"
                                             " repeated or triaged alert, as in the list"
                                             " (with its `status`)"},
                        **error_responses(404, s404="no such exam")})
async def alert_stream(
    request: Request, rt: RuntimeDep, user: Staff, exam_id: uuid.UUID | None = None,
) -> StreamingResponse:
    """New alerts pushed as they arrive (server-sent events), authorized like the list. An
    alert is sent again when it repeats or its status changes (another teacher dismissed
    it, a higher severity reopened it), whatever its status, so a page can move or drop it.

    The stream ends when the caller's token expires or is revoked, or their account is
    locked or deleted: each poll checks the token as a new request would."""
    async with unit_of_work(rt, user) as session:
        await service.open_alert_stream(session, user, exam_id, request_context(request))

    async def events() -> AsyncIterator[bytes]:
        since = datetime.now(UTC)
        seen: dict[uuid.UUID, datetime] = {}
        beat = time.monotonic()
        yield b"retry: 3000\n\n"
        while not await request.is_disconnected():
            try:
                await check_claims(rt, user)
            except Unauthorized:
                return
            async with unit_of_work(rt, user) as session:
                rows = await service.alerts_since(session, user, since - STREAM_OVERLAP, exam_id)
            for alert in rows:
                if seen.get(alert.id) == alert.updated_at:
                    continue  # sent already; a repeat or a status change moves its time
                seen[alert.id] = alert.updated_at
                since = max(since, alert.updated_at)
                yield b"event: alert\ndata: " + alert.model_dump_json().encode() + b"\n\n"
            seen = {k: v for k, v in seen.items() if v >= since - STREAM_OVERLAP}
            if time.monotonic() - beat > STREAM_HEARTBEAT_SECONDS:
                beat = time.monotonic()
                yield b": keep-alive\n\n"
            await asyncio.sleep(STREAM_POLL_SECONDS)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


ALERT = error_responses(403, 404, s403="the alert's exam is the caller's to view, not to analyze",
                        s404="no such alert, or none at the caller's exams")


@teacher.get("/alerts/{alert_id}", response_model=AlertDetailOut, responses=ALERT)
async def alert_detail(
    alert_id: uuid.UUID, session: SessionDep, user: Staff, ctx: ContextDep
) -> AlertDetailOut:
    """One alert with its triage history (who changed its status, when, from what to what,
    and why), oldest change first."""
    return await triage.alert_detail(session, user, alert_id, ctx)


@teacher.post("/alerts/{alert_id}/status", response_model=AlertDetailOut, responses=ALERT)
async def set_alert_status(
    alert_id: uuid.UUID, body: StatusIn, session: SessionDep, user: Staff, ctx: ContextDep
) -> AlertDetailOut:
    """Open, acknowledge or dismiss an alert, with an optional note (needs
    `can_view_analytics` on its exam). Audited, and kept in the alert's history. A dismissed
    or acknowledged alert stays so while it repeats at the same severity (its count grows);
    a repeat at a higher severity reopens it."""
    return await triage.set_status(session, user, alert_id, body, ctx)
