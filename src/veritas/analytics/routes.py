"""Dashboards and read views for students and teachers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select, tuple_

from veritas.analysis import review
from veritas.analysis import service as analysis
from veritas.analysis.models import BehaviorAnalysis
from veritas.analysis.schemas import analysis_dict
from veritas.analytics import queries
from veritas.audit import service as audit
from veritas.auth.models import StudentProfile
from veritas.db.base import Role, Severity
from veritas.deps import (
    ContextDep,
    RuntimeDep,
    SessionDep,
    Staff,
    Student,
    check_claims,
    request_context,
    unit_of_work,
)
from veritas.errors import Invalid, NotFound, Unauthorized
from veritas.exams import service as exams
from veritas.exams.models import Exam, ExamAttempt
from veritas.exams.permissions import ExamRight, require_attempt, require_exam, visible_exam_ids
from veritas.exams.schemas import exam_out
from veritas.json_limits import json_problem
from veritas.monitoring.models import MonitoringEvent
from veritas.pagination import (
    PageParams,
    decode_cursor,
    encode_cursor,
    oldest_first,
    page,
    page_params,
)

# Alerts are about what needs attention now; older ones are one `since` away.
ALERT_WINDOW = timedelta(days=30)
DASHBOARD_ALERT_WINDOW = timedelta(days=7)

student = APIRouter(prefix="/api/student", tags=["student"])
teacher = APIRouter(prefix="/api/teacher", tags=["teacher"])

Page = Annotated[PageParams, Depends(page_params)]


@student.get("/dashboard")
async def student_dashboard(session: SessionDep, user: Student) -> dict[str, Any]:
    return await queries.student_dashboard(session, user.user_id)


@student.get("/attempts/{attempt_id}")
async def student_attempt(
    attempt_id: uuid.UUID, session: SessionDep, user: Student
) -> dict[str, Any]:
    attempt = await exams.own_attempt(session, user, attempt_id)
    exam = await session.get(Exam, attempt.exam_id)
    assert exam is not None
    analysis = await session.scalar(
        select(BehaviorAnalysis).where(BehaviorAnalysis.exam_attempt_id == attempt.id)
    )
    decisions = await review.decisions_of(session, attempt.id)
    return queries.attempt_dict(attempt, exam) | {
        "monitoring_summary": await queries.monitoring_summary(session, attempt),
        "integrity": {"score": attempt.integrity_score, "analyzed": analysis is not None},
        # The outcome only: no notes, no reviewer.
        "review": {"status": review.outcome(decisions, review.needs_second_reviewer(exam))},
        "feedback": {
            "summary": analysis.llm_summary if analysis else None,
            "recommendations": list(analysis.llm_recommendations) if analysis else [],
        },
    }


@teacher.get("/dashboard")
async def teacher_dashboard(session: SessionDep, user: Staff, ctx: ContextDep) -> dict[str, Any]:
    query = queries.alerts_query(user, datetime.now(UTC) - DASHBOARD_ALERT_WINDOW)
    alerts = (await session.execute(
        query.order_by(query.selected_columns.severity.desc(),
                       query.selected_columns.created_at.desc()).limit(20)
    )).all()
    await audit.record(session, ctx, user.user_id, "view_student_data", "teacher_dashboard",
                       user.user_id, {"view": "teacher_dashboard"})
    return {
        "as_of": datetime.now(UTC),  # the figures are live
        "exams": await queries.teacher_exam_stats(session, user),
        "alerts": [queries.alert_dict(row) for row in alerts],
        "flagged_students": await queries.flagged_students(session, user),
    }


@teacher.get("/exams/{exam_id}/analytics")
async def exam_analytics(
    exam_id: uuid.UUID, session: SessionDep, user: Staff, ctx: ContextDep
) -> dict[str, Any]:
    exam = await require_exam(session, user, exam_id, ExamRight.analytics)
    result = await queries.exam_analytics(session, exam)
    await audit.record(session, ctx, user.user_id, "view_student_data", "exam", exam.id,
                       {"view": "exam_analytics"})
    return {"exam": exam_out(exam)} | result


@teacher.get("/students/{student_id}")
async def student_detail(
    student_id: uuid.UUID, session: SessionDep, user: Staff, ctx: ContextDep
) -> dict[str, Any]:
    student_user = await exams.require_student(session, student_id)
    # The student's profile and attempts, limited to exams the caller may view (can_view):
    # the attempts listed, and every profile figure computed from them alone.
    scope = visible_exam_ids(user, ExamRight.view)
    attempts = await queries.history(session, student_id, scope, limit=500)
    if user.role is not Role.admin and not attempts:
        # A student who never sat one of the caller's exams is none of the caller's business.
        raise NotFound("student not found")
    profile = await session.scalar(
        select(StudentProfile).where(StudentProfile.user_id == student_id)
    )
    # The stored profile's figures cover every exam, other teachers' too.
    figures = (await analysis.student_aggregates(session, student_id, scope))["profile"]
    await audit.record(session, ctx, user.user_id, "view_student_data", "student", student_id,
                       {"view": "student_detail"})
    return {
        "student_id": student_user.id, "username": student_user.username,
        "full_name": student_user.full_name, "email": student_user.email,
        "profile": queries.profile_dict(profile, figures), "attempts": attempts,
    }


async def _visible_attempt(session: SessionDep, user: Staff,
                           attempt_id: uuid.UUID) -> tuple[ExamAttempt, Exam]:
    # One attempt of an exam the caller may view (can_view), as every attempt view asks.
    return await require_attempt(session, user, attempt_id, ExamRight.view)


@teacher.get("/attempts/{attempt_id}")
async def attempt_detail(
    attempt_id: uuid.UUID, session: SessionDep, user: Staff, ctx: ContextDep
) -> dict[str, Any]:
    attempt, exam = await _visible_attempt(session, user, attempt_id)
    analysis = await session.scalar(
        select(BehaviorAnalysis).where(BehaviorAnalysis.exam_attempt_id == attempt.id)
    )
    await audit.record(session, ctx, user.user_id, "view_student_data", "exam_attempt",
                       attempt.id, {"student_id": str(attempt.student_id)})
    return queries.attempt_dict(attempt, exam) | {
        "student_id": attempt.student_id,
        "flagged": attempt.flagged,
        "lmi": attempt.lmi,
        "dropout_label": attempt.dropout_label.value if attempt.dropout_label else None,
        # pending, done or failed (for good: the log names the attempt); null while none is due
        "analysis_status": attempt.analysis_status.value if attempt.analysis_status else None,
        "drafts": attempt.submission_data.get("drafts", []),
        "metadata": attempt.metadata_,
        "monitoring_summary": await queries.monitoring_summary(session, attempt),
        "behavior_analysis": analysis_dict(analysis),
    }


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


@teacher.get("/attempts/{attempt_id}/monitoring")
async def attempt_monitoring(
    attempt_id: uuid.UUID, session: SessionDep, user: Staff, ctx: ContextDep, paging: Page,
    event_type: Annotated[str | None, Query(max_length=64)] = None,
    severity: Severity | None = None,
    is_anomaly: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    payload: Annotated[str | None, Query(max_length=4096,
                                         description="JSON object matched by containment")] = None,
) -> dict[str, Any]:
    attempt, _ = await _visible_attempt(session, user, attempt_id)
    query = select(MonitoringEvent).where(
        MonitoringEvent.exam_attempt_id == attempt.id,
        MonitoringEvent.attempt_started_at == attempt.started_at,  # one partition
    )
    if event_type is not None:
        query = query.where(MonitoringEvent.event_type == event_type)
    if severity is not None:
        query = query.where(MonitoringEvent.severity == severity)
    if is_anomaly is not None:
        query = query.where(MonitoringEvent.is_anomaly.is_(is_anomaly))
    if since is not None:
        query = query.where(MonitoringEvent.server_timestamp >= since)
    if until is not None:
        query = query.where(MonitoringEvent.server_timestamp < until)
    contained = _payload_filter(payload)
    if contained is not None:
        query = query.where(MonitoringEvent.data_payload.contains(contained))
    query = oldest_first(query, MonitoringEvent.server_timestamp, MonitoringEvent.id, paging)
    rows = list((await session.scalars(query)).all())
    await audit.record(session, ctx, user.user_id, "view_student_data", "exam_attempt",
                       attempt.id, {"view": "monitoring", "student_id": str(attempt.student_id)})
    result = page(rows, paging, lambda e: (e.server_timestamp, e.id))
    result["items"] = [queries.event_dict(e) for e in result["items"]]
    return result


@teacher.get("/alerts")
async def alerts(
    session: SessionDep, user: Staff, ctx: ContextDep, paging: Page,
    exam_id: uuid.UUID | None = None, severity: Severity | None = None,
    kind: Annotated[str | None, Query(max_length=50)] = None,
    since: Annotated[datetime | None, Query(
        description="alerts from this time on; default: the last 30 days")] = None,
) -> dict[str, Any]:
    """Most severe first, then newest first."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    query = queries.alerts_query(user, since or datetime.now(UTC) - ALERT_WINDOW)
    c = query.selected_columns
    if exam_id is not None:
        query = query.where(c.exam_id == exam_id)
    if severity is not None:
        query = query.where(c.severity == severity)
    if kind is not None:
        query = query.where(c.kind == kind)
    key = (c.severity, c.created_at, c.id)
    if paging.cursor:
        after = decode_cursor(paging.cursor, Severity, datetime.fromisoformat, uuid.UUID)
        query = query.where(tuple_(*key) < tuple_(*after))
    query = query.order_by(*(k.desc() for k in key)).limit(paging.limit + 1)
    rows = (await session.execute(query)).all()
    await audit.record(session, ctx, user.user_id, "view_student_data", "alerts", None,
                       {"view": "alerts", "exam_id": str(exam_id) if exam_id else None})
    has_more = len(rows) > paging.limit
    rows = rows[: paging.limit]
    return {
        "items": [queries.alert_dict(row) for row in rows],
        "next_cursor": (encode_cursor(rows[-1].severity.value, rows[-1].created_at, rows[-1].id)
                        if has_more and rows else None),
    }


STREAM_POLL_SECONDS = 1.0
STREAM_OVERLAP = timedelta(seconds=10)  # events commit a moment after their timestamp
STREAM_HEARTBEAT_SECONDS = 15.0


@teacher.get("/alerts/stream", response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "server-sent events: `alert`, one per new or"
                                             " updated (repeated) alert"}})
async def alert_stream(
    request: Request, rt: RuntimeDep, user: Staff, exam_id: uuid.UUID | None = None,
) -> StreamingResponse:
    """New alerts pushed as they arrive (server-sent events), authorized like the list.

    The stream ends when the caller's token expires or is revoked, or their account is
    locked or deleted: each poll checks the token as a new request would."""
    async with unit_of_work(rt, user) as session:
        if exam_id is not None:
            await require_exam(session, user, exam_id, ExamRight.analytics)
        await audit.record(session, request_context(request), user.user_id,
                           "view_student_data", "alerts", None, {"view": "alert_stream"})

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
            query = queries.alerts_query(user, since - STREAM_OVERLAP)
            c = query.selected_columns
            if exam_id is not None:
                query = query.where(c.exam_id == exam_id)
            async with unit_of_work(rt, user) as session:
                rows = (await session.execute(query.order_by(c.created_at).limit(500))).all()
            for row in rows:
                if seen.get(row.id) == row.created_at:
                    continue  # sent already; a folded repeat moves its time and is sent again
                seen[row.id] = row.created_at
                since = max(since, row.created_at)
                yield (b"event: alert\ndata: " + orjson.dumps(queries.alert_dict(row), default=str)
                       + b"\n\n")
            seen = {k: v for k, v in seen.items() if v >= since - STREAM_OVERLAP}
            if time.monotonic() - beat > STREAM_HEARTBEAT_SECONDS:
                beat = time.monotonic()
                yield b": keep-alive\n\n"
            await asyncio.sleep(STREAM_POLL_SECONDS)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
