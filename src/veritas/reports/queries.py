"""The reads behind the exports and the incident report: each export walks its rows by keyset
a page at a time (pagination.py), under the caller's row-level security."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.analysis.models import ReviewDecision
from veritas.analytics.queries import ALERT_KEY, alerts_query, filtered_alerts
from veritas.analytics.schemas import AlertOut
from veritas.auth.models import StudentProfile, User
from veritas.auth.tokens import Claims
from veritas.exams.models import ExamAttempt
from veritas.monitoring.models import MonitoringEvent
from veritas.pagination import PageParams, keyset, page


async def attempts_page(session: AsyncSession, exam_id: uuid.UUID,
                        paging: PageParams) -> dict[str, Any]:
    """A page of an exam's attempts with their students, by student username, then start."""
    a = ExamAttempt
    query = (
        select(a.id, a.student_id, User.username, User.full_name, User.email,
               StudentProfile.enrollment_id, a.status, a.started_at, a.completed_at, a.score,
               a.max_score, a.percentage, a.passed, a.grading_status, a.integrity_score,
               a.integrity_score_status)
        .join(User, User.id == a.student_id)
        .outerjoin(StudentProfile, StudentProfile.user_id == a.student_id)
        .where(a.exam_id == exam_id)
    )
    query = keyset(query, paging, [(User.username, str), (a.started_at, datetime.fromisoformat),
                                   (a.id, uuid.UUID)], descending=False)
    rows = (await session.execute(query)).all()
    return page(rows, paging, lambda r: (r.username, r.started_at, r.id))


async def decisions_by_attempt(
    session: AsyncSession, attempt_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[ReviewDecision]]:
    """The review decisions of some attempts, oldest first for each."""
    found: dict[uuid.UUID, list[ReviewDecision]] = defaultdict(list)
    if attempt_ids:
        for decision in (await session.scalars(
                select(ReviewDecision).where(ReviewDecision.exam_attempt_id.in_(attempt_ids))
                .order_by(ReviewDecision.exam_attempt_id, ReviewDecision.created_at,
                          ReviewDecision.id))).all():
            found[decision.exam_attempt_id].append(decision)
    return found


async def exam_alerts_page(session: AsyncSession, user: Claims, exam_id: uuid.UUID,
                           paging: PageParams) -> dict[str, Any]:
    """A page of all of an exam's alerts, whatever their status or age, in the list's order,
    each with its student's enrollment id."""
    query = filtered_alerts(user, None, exam_id=exam_id)
    c = query.selected_columns
    query = (query.outerjoin(StudentProfile, StudentProfile.user_id == c.student_id)
             .add_columns(StudentProfile.enrollment_id))
    query = keyset(query, paging, [(c[name], parse) for name, parse in ALERT_KEY],
                   descending=True)
    rows = (await session.execute(query)).all()
    return page(rows, paging, lambda row: tuple(getattr(row, name) for name, _ in ALERT_KEY))


async def attempt_alerts(session: AsyncSession, user: Claims,
                         attempt: ExamAttempt) -> list[AlertOut]:
    """Every alert of one attempt, most severe first."""
    query = alerts_query(user, None)
    c = query.selected_columns
    rows = await session.execute(query.where(c.attempt_id == attempt.id)
                                 .order_by(c.severity.desc(), c.first_at, c.id))
    return [AlertOut.model_validate(r) for r in rows.all()]


async def anomalies(session: AsyncSession, attempt: ExamAttempt,
                    limit: int) -> tuple[list[MonitoringEvent], int]:
    """The attempt's first `limit` anomalous events in time order, and how many it has."""
    e = MonitoringEvent
    where = (e.exam_attempt_id == attempt.id, e.attempt_started_at == attempt.started_at,
             e.is_anomaly)
    total = await session.scalar(select(func.count()).select_from(e).where(*where)) or 0
    rows = (await session.scalars(select(e).where(*where)
                                  .order_by(e.server_timestamp, e.id).limit(limit))).all()
    return list(rows), total


async def names(session: AsyncSession, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Each user's full name, else username (reviewers, triagers)."""
    if not user_ids:
        return {}
    rows = await session.execute(select(User.id, User.full_name, User.username)
                                 .where(User.id.in_(user_ids)))
    return {r.id: r.full_name or r.username for r in rows.all()}
