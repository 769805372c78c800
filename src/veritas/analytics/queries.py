"""Read-only queries behind the dashboards; every teacher query is scoped by exam rights."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    Select,
    and_,
    cast,
    distinct,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import Label

from veritas.analysis.models import AnalysisAlert, BehaviorAnalysis
from veritas.auth.models import PerformanceMetrics, StudentProfile, User
from veritas.auth.tokens import Claims
from veritas.db.base import AttemptStatus, DropoutRisk
from veritas.exams.models import Exam, ExamAttempt
from veritas.exams.permissions import ExamRight, restrict
from veritas.monitoring.models import MonitoringAlert, MonitoringEvent

COMPLETED = ExamAttempt.status == AttemptStatus.completed


def _value(v: Any) -> Any:
    return v.value if hasattr(v, "value") else v


# --- students ---------------------------------------------------------------------------


def profile_dict(
    profile: StudentProfile | None, figures: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The profile's fields; `figures` (from analysis.student_aggregates) replace the stored
    ones when the reader may see only some of the student's exams."""
    fields = ("cumulative_integrity_score", "cumulative_lmi", "total_exams_attempted",
              "total_exams_passed", "current_dropout_risk", "flagged_for_review",
              "enrollment_id", "cohort")
    stored = {f: getattr(profile, f) if profile else None for f in fields}
    return {f: _value(v) for f, v in (stored | (figures or {})).items()}


async def history(
    session: AsyncSession, student_id: uuid.UUID, scope: Select[uuid.UUID] | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """A student's attempts, newest first; `scope` limits them to some exam ids."""
    query = (
        select(ExamAttempt, Exam.title, Exam.subject)
        .join(Exam, Exam.id == ExamAttempt.exam_id)
        .where(ExamAttempt.student_id == student_id)
        .order_by(ExamAttempt.started_at.desc(), ExamAttempt.id.desc())
        .limit(limit)
    )
    if scope is not None:
        query = query.where(ExamAttempt.exam_id.in_(scope))
    rows = (await session.execute(query)).all()
    return [
        {
            "attempt_id": a.id, "exam_id": a.exam_id, "exam_title": title, "subject": subject,
            "status": a.status.value, "score": a.score, "max_score": a.max_score,
            "percentage": a.percentage, "passed": a.passed, "integrity_score": a.integrity_score,
            "dropout_label": _value(a.dropout_label), "flagged": a.flagged,
            "started_at": a.started_at, "completed_at": a.completed_at,
        }
        for a, title, subject in rows
    ]


async def latest_analysis(session: AsyncSession, student_id: uuid.UUID) -> BehaviorAnalysis | None:
    return await session.scalar(
        select(BehaviorAnalysis)
        .where(BehaviorAnalysis.student_id == student_id)
        .order_by(BehaviorAnalysis.created_at.desc())
        .limit(1)
    )


async def student_dashboard(session: AsyncSession, student_id: uuid.UUID) -> dict[str, Any]:
    profile = await session.scalar(
        select(StudentProfile).where(StudentProfile.user_id == student_id)
    )
    metrics = await session.scalar(
        select(PerformanceMetrics).where(PerformanceMetrics.student_id == student_id)
    )
    exam_history = await history(session, student_id)
    for item in exam_history:  # the student's own view carries no review internals
        item.pop("flagged")
        item.pop("dropout_label")
    analysis = await latest_analysis(session, student_id)
    own_profile = profile_dict(profile)
    own_profile.pop("flagged_for_review")  # a review internal, like the history's "flagged"
    return {
        "profile": own_profile | {
            "avg_score": metrics.avg_score if metrics else None,
            "subject_scores": metrics.subject_scores if metrics else {},
        },
        "exam_history": exam_history,
        "integrity_status": {
            "cumulative_integrity_score": profile.cumulative_integrity_score if profile else None,
            "latest_integrity_score": next(
                (h["integrity_score"] for h in exam_history if h["integrity_score"] is not None),
                None,
            ),
            "analyzed": analysis is not None,
        },
        "dropout_risk": {
            "label": _value(profile.current_dropout_risk) if profile else None,
            "confidence": analysis.dropout_confidence if analysis else None,
        },
        "recommendations": list(analysis.llm_recommendations) if analysis else [],
    }


async def monitoring_summary(session: AsyncSession, attempt: ExamAttempt) -> dict[str, Any]:
    rows = (
        await session.execute(
            select(MonitoringEvent.event_type, MonitoringEvent.severity, func.count())
            .where(MonitoringEvent.exam_attempt_id == attempt.id,
                   MonitoringEvent.attempt_started_at == attempt.started_at)
            .group_by(MonitoringEvent.event_type, MonitoringEvent.severity)
        )
    ).all()
    by_type: dict[str, int] = {}
    by_severity: dict[str, int] = {s: 0 for s in ("normal", "warning", "critical")}
    for event_type, severity, n in rows:
        by_type[event_type] = by_type.get(event_type, 0) + n
        by_severity[severity.value] += n
    return {"total_events": sum(by_type.values()), "by_type": by_type, "by_severity": by_severity}


def attempt_dict(attempt: ExamAttempt, exam: Exam) -> dict[str, Any]:
    return {
        "attempt_id": attempt.id, "exam_id": attempt.exam_id, "exam_title": exam.title,
        "status": attempt.status.value, "score": attempt.score, "max_score": attempt.max_score,
        "percentage": attempt.percentage, "passed": attempt.passed,
        "integrity_score": attempt.integrity_score, "started_at": attempt.started_at,
        "expires_at": attempt.expires_at, "completed_at": attempt.completed_at,
        "duration_seconds": attempt.duration_seconds,
        "responses": attempt.submission_data.get("responses"),
    }


# --- teachers ---------------------------------------------------------------------------


# The figures of the reporting view exam_performance_summary (completed attempts only),
# computed live: the view lags by up to a refresh interval, so a teacher would see an exam's
# students next to stale counts. A page of exams' attempts is cheap through
# ix_exam_attempts_exam_student. The view is for reporting in SQL (README).
def _stat_columns() -> tuple[Label[Any], ...]:
    a = ExamAttempt
    return (
        func.count(distinct(a.student_id)).label("unique_students"),
        func.count(a.id).label("total_attempts"),
        func.avg(a.percentage).label("avg_score"),
        cast(func.avg(cast(a.passed, Integer)), Float).label("pass_rate"),
        func.avg(a.integrity_score).label("avg_integrity"),
        func.count(a.id).filter(a.dropout_label == DropoutRisk.high_risk).label("high_risk_count"),
        func.count(a.id).filter(a.flagged).label("flagged_count"),
    )


STAT_FIELDS = ("unique_students", "total_attempts", "avg_score", "pass_rate", "avg_integrity",
               "high_risk_count", "flagged_count")


def _stats(row: Any) -> dict[str, Any]:
    values = {f: getattr(row, f) for f in STAT_FIELDS}
    if not values["total_attempts"]:
        values["pass_rate"] = None
    return values


async def teacher_exam_stats(session: AsyncSession, user: Claims, limit: int = 100) -> list[dict[str, Any]]:
    """The caller's newest exams with their figures, in one grouped query."""
    shown = restrict(select(Exam.id, Exam.title, Exam.subject, Exam.is_published,
                            Exam.created_at).order_by(Exam.created_at.desc()).limit(limit),
                     Exam.id, user, ExamRight.analytics).subquery("shown")
    exam_columns = (shown.c.id, shown.c.title, shown.c.subject, shown.c.is_published,
                    shown.c.created_at)
    query = (
        select(*exam_columns, *_stat_columns())
        .outerjoin(ExamAttempt, and_(ExamAttempt.exam_id == shown.c.id, COMPLETED))
        .group_by(*exam_columns)
        .order_by(shown.c.created_at.desc(), shown.c.id)
    )
    rows = (await session.execute(query)).all()
    return [
        {"exam_id": r.id, "title": r.title, "subject": r.subject,
         "is_published": r.is_published} | _stats(r)
        for r in rows
    ]


async def exam_analytics(session: AsyncSession, exam: Exam) -> dict[str, Any]:
    stats = (await session.execute(
        select(*_stat_columns()).where(ExamAttempt.exam_id == exam.id, COMPLETED))).one()
    # Only the columns the response shows: answers and metadata stay in the database.
    attempts = (
        await session.execute(
            select(ExamAttempt.id, ExamAttempt.student_id, ExamAttempt.status,
                   ExamAttempt.score, ExamAttempt.percentage, ExamAttempt.passed,
                   ExamAttempt.integrity_score, ExamAttempt.flagged, ExamAttempt.dropout_label,
                   ExamAttempt.started_at, ExamAttempt.completed_at,
                   User.username, User.full_name)
            .join(User, User.id == ExamAttempt.student_id)
            .where(ExamAttempt.exam_id == exam.id)
            .order_by(ExamAttempt.student_id, ExamAttempt.started_at)
        )
    ).all()
    students: dict[uuid.UUID, dict[str, Any]] = {}
    for attempt in attempts:
        username, full_name = attempt.username, attempt.full_name
        entry = students.setdefault(attempt.student_id, {
            "student_id": attempt.student_id, "username": username, "full_name": full_name,
            "attempts": [], "integrity_score": None, "dropout_label": None,
        })
        entry["attempts"].append({
            "attempt_id": attempt.id, "status": attempt.status.value, "score": attempt.score,
            "percentage": attempt.percentage, "passed": attempt.passed,
            "integrity_score": attempt.integrity_score, "flagged": attempt.flagged,
            "started_at": attempt.started_at, "completed_at": attempt.completed_at,
        })
        if attempt.integrity_score is not None:
            entry["integrity_score"] = attempt.integrity_score  # the latest analyzed one
        if attempt.dropout_label is not None:
            entry["dropout_label"] = attempt.dropout_label.value
    analytics = {k: v for k, v in _stats(stats).items() if k != "flagged_count"}
    return {"analytics": analytics | {"as_of": datetime.now(UTC)},  # live figures
            "students": list(students.values())}


async def flagged_students(session: AsyncSession, user: Claims, limit: int = 50) -> list[dict[str, Any]]:
    query = (
        select(User.id, User.username, User.full_name,
               func.count(ExamAttempt.id).label("flagged_attempts"),
               func.max(ExamAttempt.completed_at).label("last_flagged"))
        .join(ExamAttempt, ExamAttempt.student_id == User.id)
        .where(ExamAttempt.flagged)
        .group_by(User.id)
        .order_by(func.max(ExamAttempt.completed_at).desc().nulls_last())
        .limit(limit)
    )
    rows = (await session.execute(restrict(query, ExamAttempt.exam_id, user, ExamRight.analytics)))
    return [
        {"student_id": r.id, "username": r.username, "full_name": r.full_name,
         "flagged_attempts": r.flagged_attempts, "last_flagged": r.last_flagged}
        for r in rows.all()
    ]


def alerts_query(user: Claims, since: datetime) -> Select[*tuple[Any, ...]]:
    """Alerts updated since `since` at exams the caller may analyze: anomalies folded per
    attempt and event type (with their count), and alerts raised by analyses, as one
    selectable with the same columns."""
    folded = select(
        MonitoringAlert.id.label("id"), literal("monitoring_anomaly").label("kind"),
        MonitoringAlert.severity.label("severity"),
        MonitoringAlert.exam_attempt_id.label("attempt_id"),
        MonitoringAlert.exam_id.label("exam_id"), MonitoringAlert.student_id.label("student_id"),
        MonitoringAlert.event_type.label("event_type"),
        MonitoringAlert.anomaly_score.label("anomaly_score"),
        MonitoringAlert.description.label("description"),
        MonitoringAlert.count.label("count"), MonitoringAlert.first_at.label("first_at"),
        MonitoringAlert.last_at.label("created_at"),
    ).where(MonitoringAlert.last_at >= since)
    raised = select(
        AnalysisAlert.id, AnalysisAlert.kind, AnalysisAlert.severity,
        AnalysisAlert.exam_attempt_id, AnalysisAlert.exam_id, AnalysisAlert.student_id,
        null().label("event_type"), null().label("anomaly_score"), AnalysisAlert.description,
        literal(1, BigInteger).label("count"), AnalysisAlert.created_at.label("first_at"),
        AnalysisAlert.created_at,
    ).where(AnalysisAlert.created_at >= since)
    folded = restrict(folded, MonitoringAlert.exam_id, user, ExamRight.analytics)
    raised = restrict(raised, AnalysisAlert.exam_id, user, ExamRight.analytics)
    alerts = union_all(folded, raised).subquery("alerts")
    return (select(alerts, Exam.title.label("exam_title"), User.username.label("username"),
                   User.full_name.label("full_name"))
            .join(Exam, Exam.id == alerts.c.exam_id)
            .join(User, User.id == alerts.c.student_id))


def alert_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "kind": row.kind, "severity": _value(row.severity),
        "attempt_id": row.attempt_id, "exam_id": row.exam_id, "exam_title": row.exam_title,
        "student_id": row.student_id, "username": row.username, "full_name": row.full_name,
        "event_type": row.event_type,
        "anomaly_score": row.anomaly_score, "description": row.description,
        # Repeats fold into one alert: how many, since when; created_at is the latest.
        "count": row.count, "first_at": row.first_at, "created_at": row.created_at,
    }


def event_dict(event: MonitoringEvent) -> dict[str, Any]:
    return {
        "id": event.id, "event_id": event.event_id, "attempt_id": event.exam_attempt_id,
        "student_id": event.student_id, "event_type": event.event_type,
        "severity": event.severity.value, "data": event.data_payload,
        "is_anomaly": event.is_anomaly, "anomaly_score": event.anomaly_score,
        "description": event.description, "analysis_notes": event.analysis_notes,
        "client_timestamp": event.client_timestamp, "server_timestamp": event.server_timestamp,
    }
