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
    case,
    cast,
    distinct,
    func,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import Label

from veritas.alerts.models import AlertStatusChange
from veritas.alerts.schemas import ChangedBy, StatusChangeOut
from veritas.analysis.models import AnalysisAlert, BehaviorAnalysis
from veritas.analytics.schemas import (
    AlertOut,
    DropoutRiskOut,
    ExamAnalytics,
    ExamStats,
    ExamStatsOut,
    ExamStudentOut,
    FlaggedStudentOut,
    HistoryItem,
    IntegrityStatus,
    MonitoringSummary,
    OwnHistoryItem,
    OwnProfileOut,
    StudentAttemptSummary,
    StudentDashboardOut,
)
from veritas.auth.models import PerformanceMetrics, StudentProfile, User
from veritas.auth.tokens import Claims
from veritas.db.base import (
    AlertStatus,
    AttemptStatus,
    DropoutRisk,
    GradingStatus,
    ScoreStatus,
    Severity,
)
from veritas.exams.models import Exam, ExamAttempt
from veritas.exams.permissions import ExamRight, open_to_student, restrict
from veritas.monitoring.models import MonitoringAlert, MonitoringEvent
from veritas.pagination import PageParams, keyset, oldest_first, page

COMPLETED = ExamAttempt.status == AttemptStatus.completed


# --- students ---------------------------------------------------------------------------


async def profile(session: AsyncSession, student_id: uuid.UUID) -> StudentProfile | None:
    return await session.scalar(
        select(StudentProfile).where(StudentProfile.user_id == student_id)
    )


def _history_query(
    student_id: uuid.UUID, scope: Select[uuid.UUID] | None, limit: int
) -> Select[*tuple[Any, ...]]:
    """A student's attempts, newest first, with the columns of a history item; `scope`
    limits them to some exam ids."""
    a = ExamAttempt
    query = (
        select(a.id.label("attempt_id"), a.exam_id, Exam.title.label("exam_title"), Exam.subject,
               a.status, a.score, a.max_score, a.percentage, a.passed, a.grading_status,
               a.integrity_score, a.integrity_score_status, a.dropout_label, a.flagged,
               a.started_at, a.completed_at)
        .join(Exam, Exam.id == a.exam_id)
        .where(a.student_id == student_id)
        .order_by(a.started_at.desc(), a.id.desc())
        .limit(limit)
    )
    return query if scope is None else query.where(a.exam_id.in_(scope))


async def history(
    session: AsyncSession, student_id: uuid.UUID, scope: Select[uuid.UUID] | None = None,
    limit: int = 50,
) -> list[HistoryItem]:
    """A student's attempts as a teacher sees them, newest first."""
    rows = (await session.execute(_history_query(student_id, scope, limit))).all()
    return [HistoryItem.model_validate(r) for r in rows]


async def latest_analysis(
    session: AsyncSession, student_id: uuid.UUID, scope: Select[uuid.UUID] | None = None
) -> BehaviorAnalysis | None:
    """The student's latest analysis; `scope` limits it to attempts at some exam ids."""
    query = select(BehaviorAnalysis).where(BehaviorAnalysis.student_id == student_id)
    if scope is not None:
        query = query.join(ExamAttempt, ExamAttempt.id == BehaviorAnalysis.exam_attempt_id).where(
            ExamAttempt.exam_id.in_(scope))
    return await session.scalar(query.order_by(BehaviorAnalysis.created_at.desc()).limit(1))


async def attempt_analysis(session: AsyncSession, attempt_id: uuid.UUID) -> BehaviorAnalysis | None:
    return await session.scalar(
        select(BehaviorAnalysis).where(BehaviorAnalysis.exam_attempt_id == attempt_id)
    )


async def student_dashboard(session: AsyncSession, student_id: uuid.UUID) -> StudentDashboardOut:
    """The student's own dashboard: it carries no review internals (flags, risk labels)."""
    stored = await profile(session, student_id)
    metrics = await session.scalar(
        select(PerformanceMetrics).where(PerformanceMetrics.student_id == student_id)
    )
    # Only attempts at exams still open to the student (not ones of a class they left).
    open_exams = select(Exam.id).where(open_to_student(student_id))
    rows = (await session.execute(_history_query(student_id, open_exams, 50))).all()
    exam_history = [OwnHistoryItem.model_validate(r) for r in rows]
    analysis = await latest_analysis(session, student_id, open_exams)
    return StudentDashboardOut(
        profile=OwnProfileOut(
            cumulative_integrity_score=stored.cumulative_integrity_score if stored else None,
            cumulative_lmi=stored.cumulative_lmi if stored else None,
            total_exams_attempted=stored.total_exams_attempted if stored else 0,
            total_exams_passed=stored.total_exams_passed if stored else 0,
            current_dropout_risk=stored.current_dropout_risk if stored else None,
            enrollment_id=stored.enrollment_id if stored else None,
            cohort=stored.cohort if stored else None,
            avg_score=metrics.avg_score if metrics else None,
            subject_scores=metrics.subject_scores if metrics else {},
        ),
        exam_history=exam_history,
        integrity_status=IntegrityStatus(
            cumulative_integrity_score=stored.cumulative_integrity_score if stored else None,
            latest_integrity_score=next(
                (h.integrity_score for h in exam_history if h.integrity_score is not None), None),
            analyzed=analysis is not None,
        ),
        dropout_risk=DropoutRiskOut(
            label=stored.current_dropout_risk if stored else None,
            confidence=analysis.dropout_confidence if analysis else None,
        ),
        recommendations=list(analysis.llm_recommendations) if analysis else [],
    )


async def monitoring_summary(session: AsyncSession, attempt: ExamAttempt) -> MonitoringSummary:
    rows = (
        await session.execute(
            select(MonitoringEvent.event_type, MonitoringEvent.severity, func.count())
            .where(MonitoringEvent.exam_attempt_id == attempt.id,
                   MonitoringEvent.attempt_started_at == attempt.started_at)
            .group_by(MonitoringEvent.event_type, MonitoringEvent.severity)
        )
    ).all()
    by_type: dict[str, int] = {}
    by_severity: dict[str, int] = {s.value: 0 for s in Severity}
    for event_type, severity, n in rows:
        by_type[event_type] = by_type.get(event_type, 0) + n
        by_severity[severity.value] += n
    return MonitoringSummary(total_events=sum(by_type.values()), by_type=by_type,
                             by_severity=by_severity)


async def events(
    session: AsyncSession, attempt: ExamAttempt, paging: PageParams, *,
    event_type: str | None = None, severity: Severity | None = None,
    is_anomaly: bool | None = None, since: datetime | None = None,
    until: datetime | None = None, payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A page of the attempt's monitoring events, oldest first; `payload` matches by
    containment (@>)."""
    e = MonitoringEvent
    query = select(e).where(e.exam_attempt_id == attempt.id,
                            e.attempt_started_at == attempt.started_at)  # one partition
    if event_type is not None:
        query = query.where(e.event_type == event_type)
    if severity is not None:
        query = query.where(e.severity == severity)
    if is_anomaly is not None:
        query = query.where(e.is_anomaly.is_(is_anomaly))
    if since is not None:
        query = query.where(e.server_timestamp >= since)
    if until is not None:
        query = query.where(e.server_timestamp < until)
    if payload is not None:
        query = query.where(e.data_payload.contains(payload))
    rows = (await session.scalars(oldest_first(query, e.server_timestamp, e.id, paging))).all()
    return page(rows, paging, lambda row: (row.server_timestamp, row.id))


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
        func.count(a.id).filter(a.grading_status == GradingStatus.pending)
        .label("pending_grading"),
        # The average is provisional while any score in it is.
        case((func.avg(a.integrity_score).is_(None), null()),
             (func.count(a.id).filter(a.integrity_score_status == ScoreStatus.provisional) > 0,
              literal(ScoreStatus.provisional.value)),
             else_=literal(ScoreStatus.final.value)).label("avg_integrity_status"),
    )


async def teacher_exam_stats(
    session: AsyncSession, user: Claims, limit: int = 100
) -> list[ExamStatsOut]:
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
    return [ExamStatsOut.model_validate(r) for r in (await session.execute(query)).all()]


async def exam_analytics(
    session: AsyncSession, exam: Exam
) -> tuple[ExamAnalytics, list[ExamStudentOut]]:
    """An exam's figures and its students, each with their attempts."""
    stats = (await session.execute(
        select(*_stat_columns()).where(ExamAttempt.exam_id == exam.id, COMPLETED))).one()
    # Only the columns the response shows: answers and metadata stay in the database.
    attempts = (
        await session.execute(
            select(ExamAttempt.id, ExamAttempt.student_id, ExamAttempt.status,
                   ExamAttempt.score, ExamAttempt.percentage, ExamAttempt.passed,
                   ExamAttempt.grading_status, ExamAttempt.integrity_score,
                   ExamAttempt.integrity_score_status, ExamAttempt.flagged,
                   ExamAttempt.dropout_label,
                   ExamAttempt.started_at, ExamAttempt.completed_at,
                   User.username, User.full_name)
            .join(User, User.id == ExamAttempt.student_id)
            .where(ExamAttempt.exam_id == exam.id)
            .order_by(ExamAttempt.student_id, ExamAttempt.started_at)
        )
    ).all()
    students: dict[uuid.UUID, ExamStudentOut] = {}
    for attempt in attempts:
        entry = students.setdefault(attempt.student_id, ExamStudentOut(
            student_id=attempt.student_id, username=attempt.username,
            full_name=attempt.full_name, attempts=[], integrity_score=None,
            integrity_score_status=None, dropout_label=None))
        entry.attempts.append(StudentAttemptSummary.model_validate(attempt))
        if attempt.integrity_score is not None:
            entry.integrity_score = attempt.integrity_score  # the latest analyzed one
            entry.integrity_score_status = attempt.integrity_score_status
        if attempt.dropout_label is not None:
            entry.dropout_label = attempt.dropout_label
    figures = ExamStats.model_validate(stats)
    return (ExamAnalytics(**figures.model_dump(), as_of=datetime.now(UTC)),  # live figures
            list(students.values()))


async def flagged_students(
    session: AsyncSession, user: Claims, limit: int = 50
) -> list[FlaggedStudentOut]:
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
    rows = await session.execute(restrict(query, ExamAttempt.exam_id, user, ExamRight.analytics))
    return [FlaggedStudentOut.model_validate(r) for r in rows.all()]


def alerts_query(
    user: Claims, since: datetime | None, *, status_changes: bool = False
) -> Select[*tuple[Any, ...]]:
    """Alerts at exams the caller may analyze: anomalies folded per attempt and event type
    (with their count), and alerts raised by analyses, as one selectable with the same
    columns. `since`: only those raised or repeated since then (None: every one), and with
    `status_changes` those whose status changed since then too."""
    m, a = MonitoringAlert, AnalysisAlert

    def recent(moment: Any, status_at: Any) -> Any:
        if since is None:
            return true()
        return or_(moment >= since, status_at >= since) if status_changes else moment >= since

    folded = select(
        m.id.label("id"), literal("monitoring_anomaly").label("kind"),
        m.severity.label("severity"), m.exam_attempt_id.label("attempt_id"),
        m.exam_id.label("exam_id"), m.student_id.label("student_id"),
        m.event_type.label("event_type"), m.anomaly_score.label("anomaly_score"),
        m.description.label("description"), m.count.label("count"),
        m.first_at.label("first_at"), m.last_at.label("created_at"),
        m.status.label("status"), m.status_note.label("status_note"),
        m.status_at.label("status_at"),
        # greatest() skips a NULL: the latest repeat or status change
        func.greatest(m.last_at, m.status_at).label("updated_at"),
        cast(null(), a.score_status.type).label("score_status"),
    ).where(recent(m.last_at, m.status_at))
    raised = select(
        a.id, a.kind, a.severity, a.exam_attempt_id, a.exam_id, a.student_id,
        null().label("event_type"), null().label("anomaly_score"), a.description,
        literal(1, BigInteger).label("count"), a.created_at.label("first_at"), a.created_at,
        a.status, a.status_note, a.status_at, func.greatest(a.created_at, a.status_at),
        a.score_status,
    ).where(recent(a.created_at, a.status_at))
    folded = restrict(folded, m.exam_id, user, ExamRight.analytics)
    raised = restrict(raised, a.exam_id, user, ExamRight.analytics)
    alerts = union_all(folded, raised).subquery("alerts")
    return (select(alerts, Exam.title.label("exam_title"), User.username.label("username"),
                   User.full_name.label("full_name"))
            .join(Exam, Exam.id == alerts.c.exam_id)
            .join(User, User.id == alerts.c.student_id))


async def latest_alerts(
    session: AsyncSession, user: Claims, since: datetime, limit: int = 20
) -> list[AlertOut]:
    """The most severe open alerts, most recently repeated first: the dashboard's glance."""
    query = alerts_query(user, since)
    c = query.selected_columns
    rows = await session.execute(query.where(c.status == AlertStatus.open)
                                 .order_by(c.severity.desc(), c.created_at.desc()).limit(limit))
    return [AlertOut.model_validate(r) for r in rows.all()]


# Most severe first, then the newest raised. The key never moves when repeats fold into an
# alert (its count and created_at change, not its first_at), so a walk through the pages sees
# each alert once. Severity only rises: an alert that turns more severe while the pages are
# walked moves ahead of the cursor, to the top of a fresh first page and into the stream.
ALERT_KEY = (("severity", Severity), ("first_at", datetime.fromisoformat), ("id", uuid.UUID))


def filtered_alerts(
    user: Claims, since: datetime | None, *, exam_id: uuid.UUID | None = None,
    severity: Severity | None = None, kind: str | None = None,
    status: AlertStatus | None = None,
) -> Select[*tuple[Any, ...]]:
    """The alert list's query and filters; `kind` is an alert's kind (`low_integrity`,
    `monitoring_anomaly`...) or the event type of folded anomalies (`paste`...)."""
    query = alerts_query(user, since)
    c = query.selected_columns
    if exam_id is not None:
        query = query.where(c.exam_id == exam_id)
    if severity is not None:
        query = query.where(c.severity == severity)
    if kind is not None:
        query = query.where(or_(c.kind == kind, c.event_type == kind))
    if status is not None:
        query = query.where(c.status == status)
    return query


async def alerts(
    session: AsyncSession, user: Claims, paging: PageParams, since: datetime,
    **filters: Any,
) -> dict[str, Any]:
    """A page of the alerts updated since `since` at exams the caller may analyze
    (filtered_alerts names the filters)."""
    query = filtered_alerts(user, since, **filters)
    c = query.selected_columns
    query = keyset(query, paging, [(c[name], parse) for name, parse in ALERT_KEY],
                   descending=True)
    rows = (await session.execute(query)).all()
    result = page(rows, paging, lambda row: tuple(getattr(row, name) for name, _ in ALERT_KEY))
    result["items"] = [AlertOut.model_validate(r) for r in result["items"]]
    return result


async def alerts_since(
    session: AsyncSession, user: Claims, since: datetime, exam_id: uuid.UUID | None,
    limit: int = 500,
) -> list[AlertOut]:
    """Alerts raised, repeated or triaged since `since`, in the order that happened (the
    stream's)."""
    query = alerts_query(user, since, status_changes=True)
    c = query.selected_columns
    if exam_id is not None:
        query = query.where(c.exam_id == exam_id)
    rows = await session.execute(query.order_by(c.updated_at).limit(limit))
    return [AlertOut.model_validate(r) for r in rows.all()]


async def alert(session: AsyncSession, user: Claims, alert_id: uuid.UUID) -> AlertOut | None:
    """One alert of an exam the caller may analyze, whenever it was raised."""
    query = alerts_query(user, None)
    row = (await session.execute(query.where(query.selected_columns.id == alert_id))).first()
    return AlertOut.model_validate(row) if row is not None else None


AlertModel = type[MonitoringAlert] | type[AnalysisAlert]


async def alert_exam(
    session: AsyncSession, alert_id: uuid.UUID
) -> tuple[AlertModel, uuid.UUID] | None:
    """Which table holds the alert and its exam's id, if the caller's row-level security
    shows it."""
    models: tuple[AlertModel, ...] = (MonitoringAlert, AnalysisAlert)
    for model in models:
        exam_id = await session.scalar(select(model.exam_id).where(model.id == alert_id))
        if exam_id is not None:
            return model, exam_id
    return None


async def alert_history(session: AsyncSession, alert_id: uuid.UUID) -> list[StatusChangeOut]:
    """Every status change of an alert, oldest first, each with who made it (None: Veritas)."""
    h = AlertStatusChange
    rows = await session.execute(
        select(h.from_status, h.to_status, h.note, h.created_at, h.changed_by,
               User.username, User.full_name)
        .outerjoin(User, User.id == h.changed_by)
        .where(h.alert_id == alert_id)
        .order_by(h.created_at, h.id))
    return [StatusChangeOut(
        from_status=r.from_status, to_status=r.to_status, note=r.note, created_at=r.created_at,
        changed_by=None if r.changed_by is None else ChangedBy(
            id=r.changed_by, username=r.username, full_name=r.full_name))
        for r in rows.all()]
