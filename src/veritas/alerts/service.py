"""Alert triage: a teacher who may analyze an exam opens, acknowledges or dismisses its alerts.

Each change is audited (`set_alert_status`, with the note) and leaves a line in the alert's
history (written by the database, migration 0012). A repeat at a higher severity reopens an
alert a teacher had acknowledged or dismissed; repeats at the same severity only grow its
count, so a dismissed alert stays out of the open list however often it recurs.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.alerts.schemas import AlertDetailOut, StatusIn
from veritas.analytics import queries
from veritas.audit import service as audit
from veritas.auth.tokens import Claims
from veritas.core.context import RequestContext
from veritas.errors import NotFound
from veritas.exams.permissions import ExamRight, require_exam

NOT_FOUND = "alert not found"


async def _detail(session: AsyncSession, user: Claims, alert_id: uuid.UUID) -> AlertDetailOut:
    found = await queries.alert(session, user, alert_id)
    if found is None:
        raise NotFound(NOT_FOUND)
    history = await queries.alert_history(session, alert_id)
    return AlertDetailOut(**found.model_dump(), history=history)


async def _authorized(
    session: AsyncSession, user: Claims, alert_id: uuid.UUID
) -> queries.AlertModel:
    """The table of an alert on whose exam the caller holds can_view_analytics: 404 for an
    alert row-level security hides (unknown, or of an exam the caller does not teach), 403
    for one of an exam they may only view."""
    located = await queries.alert_exam(session, alert_id)
    if located is None:
        raise NotFound(NOT_FOUND)
    model, exam_id = located
    await require_exam(session, user, exam_id, ExamRight.analytics)
    return model


async def alert_detail(
    session: AsyncSession, user: Claims, alert_id: uuid.UUID, ctx: RequestContext
) -> AlertDetailOut:
    """An alert and its triage history; the reading is audited (it names a student)."""
    await _authorized(session, user, alert_id)
    detail = await _detail(session, user, alert_id)
    await audit.record(session, ctx, user.user_id, "view_student_data", "alert", alert_id,
                       {"view": "alert", "student_id": str(detail.student_id)})
    return detail


async def set_status(
    session: AsyncSession, user: Claims, alert_id: uuid.UUID, body: StatusIn,
    ctx: RequestContext,
) -> AlertDetailOut:
    """Set an alert's status with an optional note. The row is locked first, so changes sent
    in parallel apply one after the other and each history line starts where the previous
    ended. The same status and note again change nothing (a retried request)."""
    model = await _authorized(session, user, alert_id)
    note = body.note.strip() if body.note and body.note.strip() else None
    current = (await session.execute(
        select(model.status, model.status_note).where(model.id == alert_id).with_for_update()
    )).one()
    if (current.status, current.status_note) != (body.status, note):
        # clock_timestamp(), not now(): read after the lock, so the history stays in order
        # when a transaction that started earlier waited for it.
        await session.execute(
            update(model).where(model.id == alert_id)
            .values(status=body.status, status_note=note, status_by=user.user_id,
                    status_at=func.clock_timestamp()))
        await audit.record(session, ctx, user.user_id, "set_alert_status", "alert", alert_id,
                           {"from": current.status.value, "to": body.status.value,
                            "note": note})
    return await _detail(session, user, alert_id)
