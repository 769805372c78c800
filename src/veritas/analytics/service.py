"""The read views of students and teachers: each reads through analytics.queries, limited to
what the caller may see, and records a teacher's or an admin's reading of student data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from veritas.analysis import review
from veritas.analysis import service as analysis
from veritas.analysis.schemas import BehaviorAnalysisOut
from veritas.analytics import queries
from veritas.analytics.schemas import (
    AlertOut,
    AttemptOut,
    ExamAnalyticsOut,
    Feedback,
    OwnIntegrity,
    ProfileOut,
    ReviewStatus,
    StudentAttemptOut,
    StudentDashboardOut,
    StudentDetailOut,
    TeacherAttemptOut,
    TeacherDashboardOut,
)
from veritas.audit import service as audit
from veritas.auth.tokens import Claims
from veritas.classes import queries as class_queries
from veritas.core.context import RequestContext
from veritas.db.base import Role
from veritas.errors import NotFound
from veritas.exams import lifecycle
from veritas.exams import service as exams
from veritas.exams.models import Exam, ExamAttempt
from veritas.exams.permissions import ExamRight, require_exam, visible_exam_ids
from veritas.exams.schemas import ExamOut
from veritas.grading import service as grading
from veritas.pagination import PageParams

# Alerts are about what needs attention now; older ones are one `since` away.
ALERT_WINDOW = timedelta(days=30)
DASHBOARD_ALERT_WINDOW = timedelta(days=7)


async def _read_student_data(session: AsyncSession, ctx: RequestContext, reader: Claims,
                             resource_type: str, resource_id: uuid.UUID | None,
                             details: dict[str, Any]) -> None:
    await audit.record(session, ctx, reader.user_id, "view_student_data", resource_type,
                       resource_id, details)


# --- a student's own views ----------------------------------------------------------------


async def student_dashboard(session: AsyncSession, student: Claims) -> StudentDashboardOut:
    return await queries.student_dashboard(session, student.user_id)


async def student_attempt(
    session: AsyncSession, student: Claims, attempt_id: uuid.UUID
) -> StudentAttemptOut:
    """The student's own attempt: their analysis' summary and recommendations and the
    review's outcome, never its reasoning, notes or reviewers."""
    attempt = await exams.own_attempt(session, student, attempt_id)
    exam = await session.get(Exam, attempt.exam_id)
    assert exam is not None
    found = await queries.attempt_analysis(session, attempt.id)
    decisions = await review.decisions_of(session, attempt.id)
    # Per-question points, feedback and correct answers, as the exam's show_results allows.
    results = await grading.student_results(session, exam, attempt, lifecycle.now())
    return StudentAttemptOut(
        **AttemptOut.fields(attempt, exam), **dict(results),
        monitoring_summary=await queries.monitoring_summary(session, attempt),
        integrity=OwnIntegrity(score=attempt.integrity_score, analyzed=found is not None),
        review=ReviewStatus(status=review.outcome(decisions, review.needs_second_reviewer(exam))),
        feedback=Feedback(summary=found.llm_summary if found else None,
                          recommendations=list(found.llm_recommendations) if found else []),
    )


# --- teachers' views ------------------------------------------------------------------------


async def teacher_dashboard(
    session: AsyncSession, user: Claims, ctx: RequestContext
) -> TeacherDashboardOut:
    now = datetime.now(UTC)
    alerts = await queries.latest_alerts(session, user, now - DASHBOARD_ALERT_WINDOW)
    await _read_student_data(session, ctx, user, "teacher_dashboard", user.user_id,
                             {"view": "teacher_dashboard"})
    return TeacherDashboardOut(
        as_of=now,  # the figures are live
        exams=await queries.teacher_exam_stats(session, user),
        alerts=alerts,
        flagged_students=await queries.flagged_students(session, user),
    )


async def exam_analytics(
    session: AsyncSession, user: Claims, exam_id: uuid.UUID, ctx: RequestContext
) -> ExamAnalyticsOut:
    exam = await require_exam(session, user, exam_id, ExamRight.analytics)
    figures, students = await queries.exam_analytics(session, exam)
    await _read_student_data(session, ctx, user, "exam", exam.id, {"view": "exam_analytics"})
    return ExamAnalyticsOut(exam=ExamOut.model_validate(exam), analytics=figures,
                            students=students)


async def student_detail(
    session: AsyncSession, user: Claims, student_id: uuid.UUID, ctx: RequestContext
) -> StudentDetailOut:
    """The student's profile and attempts, limited to exams the caller may view (can_view):
    the attempts listed, and every profile figure computed from them alone. A teacher sees a
    student who attempted one of those exams or is enrolled in one of their classes."""
    student = await exams.require_student(session, student_id)
    scope = visible_exam_ids(user, ExamRight.view)
    attempts = await queries.history(session, student_id, scope, limit=500)
    if (user.role is not Role.admin and not attempts
            and not await class_queries.teaches_student(session, user, student_id)):
        # A student who never sat one of the caller's exams and is in none of their classes
        # is none of the caller's business.
        raise NotFound("student not found")
    stored = await queries.profile(session, student_id)
    # The stored profile's figures cover every exam, other teachers' too.
    figures = (await analysis.student_aggregates(session, student_id, scope))["profile"]
    await _read_student_data(session, ctx, user, "student", student_id,
                             {"view": "student_detail"})
    return StudentDetailOut(
        student_id=student.id, username=student.username, full_name=student.full_name,
        email=student.email, attempts=attempts,
        profile=ProfileOut(**figures, enrollment_id=stored.enrollment_id if stored else None,
                           cohort=stored.cohort if stored else None),
    )


async def attempt_detail(
    session: AsyncSession, user: Claims, attempt: ExamAttempt, exam: Exam, ctx: RequestContext
) -> TeacherAttemptOut:
    """An attempt of an exam the caller may view, with its full behaviour analysis."""
    found = await queries.attempt_analysis(session, attempt.id)
    await _read_student_data(session, ctx, user, "exam_attempt", attempt.id,
                             {"student_id": str(attempt.student_id)})
    return TeacherAttemptOut(
        **AttemptOut.fields(attempt, exam),
        student_id=attempt.student_id, flagged=attempt.flagged, lmi=attempt.lmi,
        dropout_label=attempt.dropout_label, analysis_status=attempt.analysis_status,
        drafts=attempt.submission_data.get("drafts", []), metadata=attempt.metadata_,
        monitoring_summary=await queries.monitoring_summary(session, attempt),
        behavior_analysis=BehaviorAnalysisOut.model_validate(found) if found else None,
    )


async def attempt_events(
    session: AsyncSession, user: Claims, attempt: ExamAttempt, paging: PageParams,
    ctx: RequestContext, **filters: Any,
) -> dict[str, Any]:
    """A page of an attempt's monitoring events (queries.events names the filters)."""
    result = await queries.events(session, attempt, paging, **filters)
    await _read_student_data(session, ctx, user, "exam_attempt", attempt.id,
                             {"view": "monitoring", "student_id": str(attempt.student_id)})
    return result


async def alerts(
    session: AsyncSession, user: Claims, paging: PageParams, ctx: RequestContext, *,
    since: datetime | None, exam_id: uuid.UUID | None, **filters: Any,
) -> dict[str, Any]:
    """A page of the alerts at the caller's exams (by default of the last ALERT_WINDOW);
    queries.filtered_alerts names the filters."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    result = await queries.alerts(session, user, paging,
                                  since or datetime.now(UTC) - ALERT_WINDOW,
                                  exam_id=exam_id, **filters)
    await _read_student_data(session, ctx, user, "alerts", None,
                             {"view": "alerts", "exam_id": str(exam_id) if exam_id else None})
    return result


async def open_alert_stream(
    session: AsyncSession, user: Claims, exam_id: uuid.UUID | None, ctx: RequestContext
) -> None:
    """Check the stream's exam (if one is named) and record that the caller watches."""
    if exam_id is not None:
        await require_exam(session, user, exam_id, ExamRight.analytics)
    await _read_student_data(session, ctx, user, "alerts", None, {"view": "alert_stream"})


async def alerts_since(
    session: AsyncSession, user: Claims, since: datetime, exam_id: uuid.UUID | None
) -> list[AlertOut]:
    """What the stream polls: alerts raised or repeated since `since`, oldest first."""
    return await queries.alerts_since(session, user, since, exam_id)
