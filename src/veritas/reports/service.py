"""Exports and the incident report: who may have them, what each row says, and the audit of
every one (an export or a report is a read of student data; the audit log's export is a read
of the audit log)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.analysis import review
from veritas.analytics import queries as analytics
from veritas.analytics.schemas import AttemptOut
from veritas.audit import service as audit
from veritas.auth.models import User
from veritas.auth.tokens import Claims
from veritas.core.context import RequestContext
from veritas.errors import Invalid
from veritas.exams.models import Exam, ExamAttempt
from veritas.exams.permissions import ExamRight, require_exam
from veritas.pagination import PageParams
from veritas.reports import incident, queries

GRADE_COLUMNS = ("student", "username", "email", "enrollment_id", "attempt_id", "status",
                 "started_at", "completed_at", "score", "max_score", "percentage", "passed",
                 "grading_status", "integrity_score", "integrity_score_status",
                 "review_outcome")
ALERT_COLUMNS = ("alert_id", "severity", "status", "kind", "event_type", "count", "first_at",
                 "latest_at", "student", "username", "enrollment_id", "attempt_id",
                 "description", "anomaly_score", "status_note", "status_changed_at",
                 "score_status")
AUDIT_COLUMNS = ("created_at", "id", "user_id", "username", "action", "resource_type",
                 "resource_id", "ip_address", "user_agent", "details")
# Anomalies listed in an incident report; a longer run is counted, not listed.
REPORT_ANOMALIES = 500


@dataclass(frozen=True)
class ExamExport:
    """An export a caller may take: its exam, and what its rows need to know of it."""

    exam_id: uuid.UUID
    second_reviewer: bool


async def _exam_export(session: AsyncSession, user: Claims, exam_id: uuid.UUID,
                       ctx: RequestContext, name: str) -> ExamExport:
    exam = await require_exam(session, user, exam_id, ExamRight.analytics)
    await audit.record(session, ctx, user.user_id, "view_student_data", "exam", exam.id,
                       {"view": "export", "export": name})
    return ExamExport(exam.id, review.needs_second_reviewer(exam))


async def open_grades(session: AsyncSession, user: Claims, exam_id: uuid.UUID,
                      ctx: RequestContext) -> ExamExport:
    """Check the caller may export the exam's grades (can_view_analytics) and audit it."""
    return await _exam_export(session, user, exam_id, ctx, "grades.csv")


async def open_alerts(session: AsyncSession, user: Claims, exam_id: uuid.UUID,
                      ctx: RequestContext) -> ExamExport:
    """Check the caller may export the exam's alerts (can_view_analytics) and audit it."""
    return await _exam_export(session, user, exam_id, ctx, "alerts.csv")


async def grades_page(session: AsyncSession, export: ExamExport,
                      paging: PageParams) -> dict[str, Any]:
    """A page of grade rows, one per attempt (GRADE_COLUMNS)."""
    result = await queries.attempts_page(session, export.exam_id, paging)
    decisions = await queries.decisions_by_attempt(session, [r.id for r in result["items"]])
    result["items"] = [
        (r.full_name or r.username, r.username, r.email, r.enrollment_id, r.id, r.status,
         r.started_at, r.completed_at, r.score, r.max_score, r.percentage, r.passed,
         r.grading_status, r.integrity_score, r.integrity_score_status,
         review.outcome(decisions[r.id], export.second_reviewer))
        for r in result["items"]]
    return result


async def alerts_page(session: AsyncSession, user: Claims, export: ExamExport,
                      paging: PageParams) -> dict[str, Any]:
    """A page of alert rows (ALERT_COLUMNS), whatever their status or age."""
    result = await queries.exam_alerts_page(session, user, export.exam_id, paging)
    result["items"] = [
        (r.id, r.severity, r.status, r.kind, r.event_type, r.count, r.first_at, r.created_at,
         r.full_name or r.username, r.username, r.enrollment_id, r.attempt_id, r.description,
         r.anomaly_score, r.status_note, r.status_at, r.score_status)
        for r in result["items"]]
    return result


def zone_of(name: str | None) -> tuple[tzinfo, str]:
    """The reader's time zone by its IANA name (the pages send the browser's), else UTC."""
    if not name:
        return UTC, "UTC"
    try:
        return ZoneInfo(name), name
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unknown time zone: {name[:64]}") from None


async def incident_report(
    session: AsyncSession, user: Claims, attempt: ExamAttempt, exam: Exam,
    ctx: RequestContext, zone_name: str | None,
) -> str:
    """The printable incident report of an attempt the caller may analyze; audited as a read
    of the student's data."""
    zone, zone_label = zone_of(zone_name)
    student = await session.get(User, attempt.student_id)
    assert student is not None  # the attempt's row references it
    profile = await analytics.profile(session, student.id)
    events, total = await queries.anomalies(session, attempt, REPORT_ANOMALIES)
    decisions = await review.decisions_of(session, attempt.id)
    reviewers = await queries.names(session, {d.reviewer_id for d in decisions} | {user.user_id})
    await audit.record(session, ctx, user.user_id, "view_student_data", "exam_attempt",
                       attempt.id, {"view": "incident_report",
                                    "student_id": str(attempt.student_id)})
    return incident.render(incident.Report(
        zone=zone, zone_name=zone_label, generated_at=datetime.now(UTC),
        generated_by=reviewers.get(user.user_id, str(user.user_id)),
        exam_title=exam.title, exam_subject=exam.subject,
        student=student.full_name or student.username, username=student.username,
        email=student.email, enrollment_id=profile.enrollment_id if profile else None,
        attempt=AttemptOut.fields(attempt, exam),
        alerts=await queries.attempt_alerts(session, user, attempt),
        anomalies=[incident.Anomaly(e.server_timestamp, e.event_type, e.severity.value,
                                    e.anomaly_score, e.description) for e in events],
        anomaly_total=total,
        analysis=await analytics.attempt_analysis(session, attempt.id),
        decisions=[incident.Decision(d.created_at, reviewers.get(d.reviewer_id, "—"),
                                     d.decision, d.note, d.alert_id) for d in decisions],
        outcome=review.outcome(decisions, review.needs_second_reviewer(exam)),
    ))


async def audit_page(session: AsyncSession, filters: audit.TrailFilters,
                     paging: PageParams) -> dict[str, Any]:
    """A page of audit rows (AUDIT_COLUMNS), newest first; details as JSON text."""
    result = await audit.export_page(session, filters, paging)
    result["items"] = [
        (log.created_at, log.id, log.user_id, username, log.action, log.resource_type,
         log.resource_id, log.ip_address, log.user_agent, orjson.dumps(log.details).decode())
        for log, username, _email in result["items"]]
    return result
