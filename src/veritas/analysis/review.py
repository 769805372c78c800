"""The review workflow: teachers acknowledge, confirm or dismiss an attempt (or one alert).

Decisions are immutable rows; a later decision supersedes earlier ones, none is ever edited.
When the exam's metadata says `{"review": {"require_second_reviewer": true}}`, a confirmation
stands only once two different reviewers have confirmed since the last other decision.
Students see the outcome, never the notes or who decided.
"""

from __future__ import annotations

import uuid
from typing import get_args

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.analysis.models import AnalysisAlert, ReviewDecision
from veritas.analysis.schemas import Outcome, ReviewDecisionOut, ReviewIn, ReviewOut, ReviewsOut
from veritas.audit import service as audit
from veritas.core.context import RequestContext
from veritas.errors import Invalid
from veritas.exams.models import Exam, ExamAttempt
from veritas.exams.settings import lenient_settings
from veritas.monitoring.models import MonitoringAlert

OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)


def needs_second_reviewer(exam: Exam) -> bool:
    return lenient_settings(exam.metadata_, exam.id).review.require_second_reviewer


def outcome(decisions: list[ReviewDecision], second_reviewer: bool) -> Outcome:
    """The attempt's review status from its decisions, oldest first."""
    if not decisions:
        return "not_reviewed"
    latest = decisions[-1]
    if latest.decision == "dismissed":
        return "cleared"
    if latest.decision == "acknowledged":
        return "under_review"
    confirmers: set[uuid.UUID] = set()
    for decision in reversed(decisions):
        if decision.decision != "confirmed":
            break
        confirmers.add(decision.reviewer_id)
    if second_reviewer and len(confirmers) < 2:
        return "pending_second_review"
    return "confirmed"


async def decisions_of(session: AsyncSession, attempt_id: uuid.UUID) -> list[ReviewDecision]:
    return list((await session.scalars(
        select(ReviewDecision).where(ReviewDecision.exam_attempt_id == attempt_id)
        .order_by(ReviewDecision.created_at, ReviewDecision.id)
    )).all())


NOT_OWN_ALERT = "alert_id is not an alert of this attempt"


async def is_alert_of(session: AsyncSession, attempt: ExamAttempt, alert_id: uuid.UUID) -> bool:
    """Whether `alert_id` is one of the attempt's alerts: its folded monitoring anomalies or an
    alert an analysis raised on it (the two kinds GET /api/teacher/alerts lists)."""
    folded = exists().where(MonitoringAlert.id == alert_id,
                            MonitoringAlert.exam_attempt_id == attempt.id)
    raised = exists().where(AnalysisAlert.id == alert_id,
                            AnalysisAlert.exam_attempt_id == attempt.id)
    return bool(await session.scalar(select(folded | raised)))


async def decide(
    session: AsyncSession, attempt: ExamAttempt, reviewer_id: uuid.UUID, decision: str,
    note: str | None, alert_id: uuid.UUID | None,
) -> ReviewDecision:
    # Another attempt's alert or an unknown id: one answer for both, so nothing is revealed.
    if alert_id is not None and not await is_alert_of(session, attempt, alert_id):
        raise Invalid(NOT_OWN_ALERT)
    row = ReviewDecision(exam_attempt_id=attempt.id, reviewer_id=reviewer_id, decision=decision,
                         note=note, alert_id=alert_id)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def review(
    session: AsyncSession, attempt: ExamAttempt, exam: Exam, reviewer_id: uuid.UUID,
    body: ReviewIn, ctx: RequestContext,
) -> ReviewOut:
    """Record a reviewer's decision, audited, and answer with the outcome it leads to."""
    row = await decide(session, attempt, reviewer_id, body.decision, body.note, body.alert_id)
    await audit.record(session, ctx, reviewer_id, "review_decision", "exam_attempt",
                       attempt.id, {"decision": body.decision,
                                    "alert_id": str(body.alert_id) if body.alert_id else None})
    decisions = await decisions_of(session, attempt.id)
    recorded = ReviewDecisionOut.model_validate(row)
    return ReviewOut(**recorded.model_dump(), outcome=outcome(decisions, needs_second_reviewer(exam)))


async def reviews(
    session: AsyncSession, attempt: ExamAttempt, exam: Exam, reader_id: uuid.UUID,
    ctx: RequestContext,
) -> ReviewsOut:
    """An attempt's decisions and outcome, for a reader whose reading is audited."""
    decisions = await decisions_of(session, attempt.id)
    await audit.record(session, ctx, reader_id, "view_student_data", "exam_attempt",
                       attempt.id, {"view": "reviews"})
    return ReviewsOut(outcome=outcome(decisions, needs_second_reviewer(exam)),
                      items=[ReviewDecisionOut.model_validate(d) for d in decisions])
