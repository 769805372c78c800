"""The analysis of one attempt, and the denormalized student aggregates it keeps true.

`analyze_attempt` reads the attempt's events and drafts, scores integrity against the exam's
population and computes momentum and dropout risk; then, outside any transaction, has the summary
written; then, in one short transaction, stores the behavior_analysis row (`save_behavior_analysis`), the attempt's fields, analysis
alerts, and the student's profile and performance_metrics (`refresh_student`, which is also
what `veritas recompute` runs for every student).

The integrity score is final when the exam's last batch (final_scores.py) scored this attempt:
it is then scored against that batch's population, exactly as the batch scored it. Otherwise
it is provisional, against the exam's attempts analysed so far, until the next batch.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from statistics import fmean
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from veritas.analysis import alerts, dropout, integrity, momentum, population
from veritas.analysis.models import BehaviorAnalysis
from veritas.analysis.schemas import ExternalAnalysis
from veritas.analysis.summary import summarize
from veritas.audit import service as audit
from veritas.auth.models import PerformanceMetrics, StudentProfile
from veritas.auth.tokens import Claims
from veritas.config import Settings
from veritas.core.context import RequestContext
from veritas.db.base import AnalysisStatus, AttemptStatus, DropoutRisk, ScoreStatus, Severity
from veritas.db.unit_of_work import SYSTEM, unit_of_work
from veritas.errors import Conflict, NotFound
from veritas.exams.models import Exam, ExamAttempt
from veritas.exams.settings import exam_settings, lenient_settings, problems
from veritas.monitoring.models import MonitoringEvent

ANALYSIS_VERSION = "veritas-analysis-1"


class AnalysisImpossible(Exception):
    """An analysis no retry can make succeed, such as one under bad exam settings."""
FREE_TEXT = ("short_text", "essay")
PEER_LIMIT = 200
STRENGTH_AT, WEAKNESS_BELOW = 70.0, 50.0
ANALYSIS_TRIES = 3  # then the job fails, and is retried later


async def save_behavior_analysis(
    session: AsyncSession, *, attempt_id: uuid.UUID, student_id: uuid.UUID, **fields: Any
) -> BehaviorAnalysis:
    """Store (or replace) the one analysis of an attempt: the pipeline and the external
    analysis endpoint both write through here.

    `fields` are behavior_analysis columns (integrity_score, lmi_score, dropout_label,
    llm_summary, ...). A re-run replaces the row; `analysis_version` records what wrote it.
    An integrity score stored without a `score_status` (an institution's own module's) is
    final: Veritas never rescores it.
    """
    exam_id = await session.scalar(select(ExamAttempt.exam_id).where(ExamAttempt.id == attempt_id))
    if exam_id is not None:  # the exam before the attempt, as every analysis writer takes them
        await population.lock_exam(session, exam_id, shared=True)
    # Then the attempt, as analyze_attempt does, so concurrent writers of the same attempt's
    # analysis queue up instead of deadlocking.
    attempt = await session.get(ExamAttempt, attempt_id, with_for_update=True)
    fields.setdefault("score_status", ScoreStatus.final)
    if fields.get("integrity_score") is None:
        fields["score_status"] = None
    values = {"exam_attempt_id": attempt_id, "student_id": student_id, **fields}
    stmt = pg_insert(BehaviorAnalysis).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["exam_attempt_id"],
        set_={k: stmt.excluded[k] for k in values if k != "exam_attempt_id"}
        | {"updated_at": func.now()},
    )
    await session.execute(stmt)
    row = await session.scalar(
        select(BehaviorAnalysis).where(BehaviorAnalysis.exam_attempt_id == attempt_id)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    if attempt is not None:
        attempt.integrity_score = row.integrity_score
        attempt.integrity_score_status = row.score_status
        attempt.lmi = row.lmi_score
        attempt.dropout_label = row.dropout_label
        attempt.flagged = row.requires_instructor_attention
        attempt.analysis_status = AnalysisStatus.done
    await session.flush()
    await refresh_student(session, student_id)
    return row


async def store_external(
    session: AsyncSession, admin: Claims, attempt_id: uuid.UUID, body: ExternalAnalysis,
    ctx: RequestContext,
) -> BehaviorAnalysis:
    """Replace an ended attempt's analysis with one computed elsewhere, and record who did."""
    attempt = await session.get(ExamAttempt, attempt_id)
    if attempt is None:
        raise NotFound("attempt not found")
    if attempt.status is AttemptStatus.in_progress:
        raise Conflict("the attempt is still in progress")
    row = await save_behavior_analysis(
        session, attempt_id=attempt.id, student_id=attempt.student_id,
        llm_model_version=body.model_version,
        analysis_version=f"external:{body.model_version}", completed_at=attempt.completed_at,
        **body.model_dump(exclude={"model_version"}),
    )
    await audit.record(session, ctx, admin.user_id, "store_external_analysis", "exam_attempt",
                       attempt.id, {"model_version": body.model_version})
    return row


async def _events(session: AsyncSession, attempt: ExamAttempt) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(MonitoringEvent.event_type, MonitoringEvent.severity, MonitoringEvent.data_payload,
               MonitoringEvent.is_anomaly, MonitoringEvent.client_timestamp,
               MonitoringEvent.server_timestamp)
        .where(MonitoringEvent.exam_attempt_id == attempt.id,
               MonitoringEvent.attempt_started_at == attempt.started_at)
        .order_by(MonitoringEvent.server_timestamp)
    )
    return [
        {"event_type": t, "severity": s.value, "data": d, "is_anomaly": a,
         "client_timestamp": c, "server_timestamp": st}
        for t, s, d, a, c, st in rows
    ]


def _responses(attempt: ExamAttempt) -> dict[str, Any]:
    data = attempt.submission_data or {}
    drafts = data.get("drafts") or []
    return data.get("responses") or (drafts[-1]["responses"] if drafts else {})


def _course_start(exams: Sequence[Any], first_attempt: datetime) -> date:
    """Day 0 of the student's course: the earliest `course_start` their subjects' exams
    declare in their settings, else the day of their first completed attempt."""
    declared = [s.course_start for s in (lenient_settings(e.metadata_, e.id) for e in exams)
                if s.course_start is not None]
    return min(declared) if declared else first_attempt.astimezone(UTC).date()


async def _risk(session: AsyncSession, student_id: uuid.UUID) -> tuple[Any, Any]:
    """Momentum and dropout risk of a student from every completed attempt so far.

    The student's course is every published exam in the subjects they have taken exams in,
    plus those exams themselves; days count from _course_start; class means are each exam's
    mean percentage. The history is built by dropout.history_from_course, as in the eval.
    """
    attempts = (await session.execute(
        select(ExamAttempt.exam_id, ExamAttempt.percentage, ExamAttempt.completed_at,
               ExamAttempt.metadata_, Exam.subject)
        .join(Exam, Exam.id == ExamAttempt.exam_id)
        .where(ExamAttempt.student_id == student_id,
               ExamAttempt.status == AttemptStatus.completed)
        .order_by(ExamAttempt.completed_at)
    )).all()
    lmi = momentum.calculate_lmi([a.percentage for a in attempts if a.percentage is not None])
    if not attempts:
        return lmi, None
    done: dict[uuid.UUID, Any] = {}
    for attempt in attempts:  # the first completed attempt at each exam counts
        done.setdefault(attempt.exam_id, attempt)
    subjects = list({a.subject for a in attempts})
    exams = (await session.execute(
        select(Exam.id, Exam.due_at, Exam.metadata_)
        .where(or_(Exam.id.in_(list(done)), and_(Exam.subject.in_(subjects), Exam.is_published)))
    )).all()
    means: dict[uuid.UUID, float | None] = dict((await session.execute(
        select(ExamAttempt.exam_id, func.avg(ExamAttempt.percentage))
        .where(ExamAttempt.exam_id.in_(list(done)), ExamAttempt.status == AttemptStatus.completed)
        .group_by(ExamAttempt.exam_id)
    )).all())
    first = next((a.completed_at for a in attempts if a.completed_at), datetime.now(UTC))
    start = _course_start(exams, first)
    work = []
    for exam in exams:
        taken = done.get(exam.id)
        weight = lenient_settings(exam.metadata_, exam.id).grade_weight
        work.append(dropout.CourseWork(
            exam_id=str(exam.id), due_at=exam.due_at, weight=weight,
            completed_at=taken.completed_at if taken else None,
            percentage=taken.percentage if taken else None,
            banked=bool(taken and (taken.metadata_ or {}).get("banked")),
        ))
    history = dropout.history_from_course(
        work, start, load=float(len(subjects)))
    today = max(0, dropout.course_day(datetime.now(UTC), start) or 0)
    features = dropout.features_at(history, today, {str(k): float(v) for k, v in means.items()
                                                    if v is not None})
    return lmi, dropout.predict_risk(features)


async def analyze_attempt(
    sessions: async_sessionmaker[AsyncSession], attempt_id: uuid.UUID, settings: Settings
) -> BehaviorAnalysis | None:
    """Analyze one ended attempt and store everything derived from it; None if still open.

    The summary provider may take up to LLM_TIMEOUT_SECONDS, so it is asked between two
    transactions and holds neither a connection nor a lock: one reads and computes, the
    other locks the attempt and writes, after checking that what was read has not changed
    meanwhile (else the analysis starts over).
    """
    for _ in range(ANALYSIS_TRIES):
        async with unit_of_work(sessions, SYSTEM) as session:
            computed = await _compute(session, attempt_id)
        if computed is None:
            return None
        summary = await summarize(computed.facts, settings.llm_base_url, settings.llm_model,
                                  settings.llm_api_key, settings.llm_timeout_seconds)
        async with unit_of_work(sessions, SYSTEM) as session:
            # The exam's scoring lock first (shared: a batch of final scores waits, or is
            # waited for), then the attempt: the order every writer of an analysis keeps.
            await population.lock_exam(session, computed.exam_id, shared=True)
            attempt = await session.get(ExamAttempt, attempt_id, with_for_update=True)
            if attempt is None or await _read_stamp(session, attempt) != computed.stamp:
                continue
            row = await save_behavior_analysis(
                session, attempt_id=attempt.id, student_id=attempt.student_id,
                **computed.fields, llm_summary=summary.text,
                llm_recommendations=summary.recommendations,
                llm_model_version=summary.model_version)
            status = computed.fields["score_status"]
            owner = alerts.Owner(attempt.id, attempt.exam_id, attempt.student_id)
            await alerts.reconcile(
                session, [attempt.id],
                alerts.analysis_alerts(owner, computed.result, computed.risk, status),
                final=status is ScoreStatus.final, reason="analysis")
            return row
    raise RuntimeError(f"attempt {attempt_id} kept changing while it was analyzed")


@dataclass(frozen=True)
class _Computed:
    """An analysis waiting for its summary, and the stamp of what it read."""

    stamp: tuple[Any, ...]
    exam_id: uuid.UUID
    facts: dict[str, Any]
    fields: dict[str, Any]
    result: integrity.IntegrityResult | None
    risk: Any


async def _read_stamp(session: AsyncSession, attempt: ExamAttempt) -> tuple[Any, ...]:
    """What an analysis reads of the attempt, its stored analysis and its exam's population:
    if this changes before the analysis is written, its input was stale."""
    stored = await session.scalar(select(BehaviorAnalysis.updated_at)
                                  .where(BehaviorAnalysis.exam_attempt_id == attempt.id))
    batches = await population.version(session, attempt.exam_id)
    return (attempt.status, attempt.score, attempt.passed, attempt.completed_at,
            attempt.duration_seconds, attempt.submission_data, attempt.metadata_, stored,
            batches)


async def _compute(session: AsyncSession, attempt_id: uuid.UUID) -> _Computed | None:
    """Everything of an attempt's analysis but its summary; None if still open."""
    attempt = await session.get(ExamAttempt, attempt_id)
    if attempt is None or attempt.status is AttemptStatus.in_progress:
        return None
    # Read before everything else: whatever changes after it (a batch of final scores, say)
    # changes the stamp the write compares, and the analysis starts over.
    stamp = await _read_stamp(session, attempt)
    exam = await session.get(Exam, attempt.exam_id)
    assert exam is not None
    events = await _events(session, attempt)
    free_text = {q["id"] for q in attempt.submission_data.get("questions", [])
                 if q.get("type") in FREE_TEXT}
    _, scored_by_batch = await population.membership(session, exam.id, attempt.id)
    peers = [] if scored_by_batch else (await session.execute(
        select(ExamAttempt.submission_data["responses"], BehaviorAnalysis.details["signals"])
        .outerjoin(BehaviorAnalysis, BehaviorAnalysis.exam_attempt_id == ExamAttempt.id)
        .where(ExamAttempt.exam_id == exam.id, ExamAttempt.id != attempt.id,
               ExamAttempt.status == AttemptStatus.completed)
        .order_by(ExamAttempt.completed_at.desc()).limit(PEER_LIMIT)
    )).all()
    # To the microsecond: duration_seconds is whole seconds, and an event in the last
    # fraction of one would fall outside the attempt, making a signal depend on timing.
    duration = ((attempt.completed_at or attempt.expires_at) - attempt.started_at).total_seconds()
    signals = integrity.attempt_signals(
        events, _responses(attempt), attempt.submission_data.get("drafts") or [], duration,
        started_at=attempt.started_at, free_text_ids=free_text,
        peer_responses=[responses or {} for responses, _ in peers],
    )
    try:
        policy = exam_settings(exam.metadata_).policy
    except ValidationError as exc:  # written past the API: no score under a guessed policy
        raise AnalysisImpossible(f"exam {exam.id} has invalid settings: {problems(exc)}") from None
    if scored_by_batch:
        # Final: the batch's population and the batch's view of this attempt, so the score is
        # the one the batch gave it (coverage and gaps, never scored, come from the events).
        final = await population.current(session, exam.id)
        assert final is not None
        signals |= final.signals[str(attempt.id)]
        exam_population = [final.signals[m] for m in final.members]
        status = ScoreStatus.final
    else:
        # Provisional: the latest attempts analysed so far, and this one if it is completed.
        exam_population = [s for _, s in peers if s] + (
            [signals] if attempt.status is AttemptStatus.completed else [])
        status = ScoreStatus.provisional
    result = integrity.score_attempt(signals, exam_population, policy)
    lmi, risk = await _risk(session, attempt.student_id)
    facts = {"band": result.band, "flags": result.flags, "coverage": result.confidence,
             "trend": lmi.trend, "risk_label": risk.label if risk else None,
             "percentage": attempt.percentage}
    anomalies = sum(1 for e in events if e["is_anomaly"])
    critical = sum(1 for e in events if e["severity"] == Severity.critical.value)
    scored = exam.enable_integrity_analysis  # momentum and risk are computed either way
    attention = (scored and result.band == "high") or (
        risk is not None and risk.label == "high_risk")
    signals_json = {k: v for k, v in signals.items() if k != "gaps"}
    fields = dict(
        total_monitoring_events=len(events), anomaly_count=anomalies, critical_events=critical,
        integrity_score=result.score if scored else None,
        score_status=status if scored else None,
        originality_indicators={k: signals.get(k) for k in
                                ("paste_ratio", "typing_shortfall", "paste_jumps",
                                 "peer_similarity")},
        lmi_score=lmi.lmi, improvement_trend=lmi.trend,
        dropout_label=DropoutRisk(risk.label) if risk else None,
        dropout_confidence=risk.confidence if risk else None,
        requires_instructor_attention=attention,
        requires_recap=lmi.trend == "declining" or (attempt.passed is False),
        analysis_version=f"{ANALYSIS_VERSION}+{policy.version}",
        details={"integrity": result.as_dict() if scored else None, "signals": signals_json,
                 "risk": {"probability": risk.probability,
                          "top_factors": [list(f) for f in risk.top_factors],
                          **dropout.explain(risk)} if risk else None,
                 "momentum": {"level_gap": lmi.level_gap, "slope": lmi.slope}},
        completed_at=attempt.completed_at,
    )
    return _Computed(stamp, exam.id, facts, fields,
                     result if scored else None, risk)


async def mark_failed(session: AsyncSession, attempt_id: uuid.UUID) -> None:
    """The attempt's analysis gave up for good: say so where its teacher looks."""
    await session.execute(update(ExamAttempt).where(ExamAttempt.id == attempt_id)
                          .values(analysis_status=AnalysisStatus.failed))


async def unsettled_analyses(session: AsyncSession) -> dict[str, int]:
    """How many attempts' analyses are pending and failed, database-wide (for /metrics)."""
    # Literal values, so the plan may use the partial index that holds exactly these rows.
    rows = (await session.execute(text(
        "SELECT analysis_status, count(*) FROM exam_attempts"
        " WHERE analysis_status IN ('pending', 'failed') GROUP BY analysis_status"
    ))).all()
    return {"pending": 0, "failed": 0} | {status: n for status, n in rows}


def _trend(values: list[float]) -> str | None:
    """'improving' / 'steady' / 'declining' comparing the last three with what came before."""
    if len(values) < 4:
        return None
    recent, before = fmean(values[-3:]), fmean(values[:-3])
    if recent > before + 0.05:
        return "improving"
    if recent < before - 0.05:
        return "declining"
    return "steady"


async def student_aggregates(
    session: AsyncSession, student_id: uuid.UUID, exam_ids: Select[uuid.UUID] | None = None
) -> dict[str, Any]:
    """Every denormalized field of a student, computed from the raw tables; `exam_ids` (a
    subquery) limits them to those exams' attempts, as a teacher who sees only some may ask."""
    query = (
        select(ExamAttempt.percentage, ExamAttempt.passed, ExamAttempt.completed_at,
               ExamAttempt.flagged, Exam.subject, Exam.topic, BehaviorAnalysis.integrity_score,
               BehaviorAnalysis.lmi_score, BehaviorAnalysis.improvement_trend,
               BehaviorAnalysis.dropout_label)
        .join(Exam, Exam.id == ExamAttempt.exam_id)
        .outerjoin(BehaviorAnalysis, BehaviorAnalysis.exam_attempt_id == ExamAttempt.id)
        .where(ExamAttempt.student_id == student_id,
               ExamAttempt.status == AttemptStatus.completed)
        .order_by(ExamAttempt.completed_at, ExamAttempt.id)
    )
    if exam_ids is not None:
        query = query.where(ExamAttempt.exam_id.in_(exam_ids))
    rows = (await session.execute(query)).all()
    subjects: dict[str, list[float]] = defaultdict(list)
    topics: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.percentage is None:  # attempted but not (yet) marked: no part of any mean
            continue
        subjects[r.subject].append(r.percentage)
        topics[f"{r.subject}: {r.topic}" if r.topic else r.subject].append(r.percentage)
    marked = [r.percentage for r in rows if r.percentage is not None]
    integrity_scores = [r.integrity_score for r in rows if r.integrity_score is not None]
    lmis = [r.lmi_score for r in rows if r.lmi_score is not None]
    analyzed = [r for r in rows if r.dropout_label is not None or r.improvement_trend]
    latest = analyzed[-1] if analyzed else None
    risk = latest.dropout_label if latest else None
    flagged = any(r.flagged for r in rows)
    topic_means = {k: fmean(v) for k, v in topics.items()}
    return {
        "profile": {
            "total_exams_attempted": len(rows),
            "total_exams_passed": sum(1 for r in rows if r.passed),
            "cumulative_integrity_score": fmean(integrity_scores) if integrity_scores else None,
            "cumulative_lmi": lmis[-1] if lmis else None,
            "current_dropout_risk": risk,
            "flagged_for_review": flagged,
        },
        "metrics": {
            "total_attempts": len(rows),
            "total_passed": sum(1 for r in rows if r.passed),
            "avg_score": fmean(marked) if marked else None,
            "subject_scores": {s: {"avg": round(fmean(v), 4), "attempts": len(v)}
                               for s, v in subjects.items()},
            "strengths": sorted(k for k, v in topic_means.items() if v >= STRENGTH_AT),
            "weaknesses": sorted(k for k, v in topic_means.items() if v < WEAKNESS_BELOW),
            "avg_integrity_score": fmean(integrity_scores) if integrity_scores else None,
            "integrity_trend": _trend(integrity_scores),
            "avg_lmi": fmean(lmis) if lmis else None,
            "lmi_trend": latest.improvement_trend if latest else None,
            "current_risk_label": risk,
            "flagged_for_intervention": flagged or risk is DropoutRisk.high_risk,
            "last_attempt_date": rows[-1].completed_at if rows else None,
        },
    }


async def refresh_student(
    session: AsyncSession, student_id: uuid.UUID, *, lock: bool = True
) -> None:
    """Rewrite the student's profile and performance_metrics from the raw tables.

    With `lock`, rewrites of one student queue up until the transaction ends, so each reads
    what the one before it committed: a submit, an analysis and a grade of two different
    attempts at once would otherwise each write totals missing the other's change. A bulk
    rebuild in one transaction passes False (one lock per student would fill the lock table).
    """
    if lock:
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                              {"k": f"student:{student_id}"})
    values = await student_aggregates(session, student_id)
    await session.execute(update(StudentProfile).where(StudentProfile.user_id == student_id)
                          .values(**values["profile"], updated_at=func.now()))
    stmt = pg_insert(PerformanceMetrics).values(student_id=student_id, **values["metrics"])
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["student_id"],
        set_={k: stmt.excluded[k] for k in values["metrics"]} | {"last_updated": func.now()},
    ))


async def recompute_all(session: AsyncSession) -> int:
    """Rebuild every student's denormalized rows; returns how many students."""
    ids = (await session.scalars(select(StudentProfile.user_id))).all()
    for student_id in ids:
        await refresh_student(session, student_id, lock=False)
    return len(ids)


