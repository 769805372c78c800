"""Bodies of the dashboards and read views: what a student and a teacher each get to see."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from veritas.analysis.schemas import BehaviorAnalysisOut, Outcome
from veritas.db.base import (
    AlertStatus,
    AnalysisStatus,
    AttemptStatus,
    DropoutRisk,
    GradingStatus,
    ScoreStatus,
    Severity,
)
from veritas.exams.models import Exam, ExamAttempt
from veritas.exams.schemas import ExamOut
from veritas.grading.schemas import StudentResults

# `grading_status` stands beside every score: `pending` while an essay or short answer waits
# for its teacher (the score may still change), `graded`, or null before a submit.

# --- a student's own views ----------------------------------------------------------------


class OwnProfileOut(BaseModel):
    """The student's figures as they see them: no review internals."""

    cumulative_integrity_score: float | None
    cumulative_lmi: float | None
    total_exams_attempted: int
    total_exams_passed: int
    current_dropout_risk: DropoutRisk | None
    enrollment_id: str | None
    cohort: str | None
    avg_score: float | None
    subject_scores: dict[str, Any]


class OwnHistoryItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt_id: uuid.UUID
    exam_id: uuid.UUID
    exam_title: str
    subject: str
    status: AttemptStatus
    score: float | None
    max_score: float
    percentage: float | None
    passed: bool | None
    grading_status: GradingStatus | None
    integrity_score: float | None
    # provisional until the exam settles and its attempts are scored together, then final
    integrity_score_status: ScoreStatus | None
    started_at: datetime
    completed_at: datetime | None


class IntegrityStatus(BaseModel):
    cumulative_integrity_score: float | None
    latest_integrity_score: float | None
    analyzed: bool


class DropoutRiskOut(BaseModel):
    label: DropoutRisk | None
    confidence: float | None


class StudentDashboardOut(BaseModel):
    profile: OwnProfileOut
    exam_history: list[OwnHistoryItem]
    integrity_status: IntegrityStatus
    dropout_risk: DropoutRiskOut
    recommendations: list[Any]


class MonitoringSummary(BaseModel):
    total_events: int
    by_type: dict[str, int]
    by_severity: dict[str, int]  # normal, warning and critical, each counted


class AttemptOut(BaseModel):
    """An attempt with its exam's title, as both the student's and the teacher's view begin."""

    attempt_id: uuid.UUID
    exam_id: uuid.UUID
    exam_title: str
    status: AttemptStatus
    score: float | None
    max_score: float
    percentage: float | None
    passed: bool | None
    grading_status: GradingStatus | None
    integrity_score: float | None
    # provisional until the exam settles and its attempts are scored together, then final
    integrity_score_status: ScoreStatus | None
    started_at: datetime
    expires_at: datetime
    completed_at: datetime | None
    duration_seconds: int | None
    responses: dict[str, Any] | None  # the submitted answers; null until submitted

    @classmethod
    def fields(cls, attempt: ExamAttempt, exam: Exam) -> dict[str, Any]:
        """The fields this model shares with every attempt view, read from the rows."""
        return {
            "attempt_id": attempt.id, "exam_id": attempt.exam_id, "exam_title": exam.title,
            "status": attempt.status, "score": attempt.score, "max_score": attempt.max_score,
            "percentage": attempt.percentage, "passed": attempt.passed,
            "grading_status": attempt.grading_status,
            "integrity_score": attempt.integrity_score,
            "integrity_score_status": attempt.integrity_score_status,
            "started_at": attempt.started_at,
            "expires_at": attempt.expires_at, "completed_at": attempt.completed_at,
            "duration_seconds": attempt.duration_seconds,
            "responses": attempt.submission_data.get("responses"),
        }


class OwnIntegrity(BaseModel):
    score: float | None
    analyzed: bool


class ReviewStatus(BaseModel):
    status: Outcome  # the outcome only: no notes, no reviewer


class Feedback(BaseModel):
    summary: str | None
    recommendations: list[Any]


class StudentAttemptOut(AttemptOut, StudentResults):
    monitoring_summary: MonitoringSummary
    integrity: OwnIntegrity
    review: ReviewStatus
    feedback: Feedback


# --- teachers' views ------------------------------------------------------------------------


class TeacherAttemptOut(AttemptOut):
    student_id: uuid.UUID
    flagged: bool
    lmi: float | None
    dropout_label: DropoutRisk | None
    # pending, done or failed (for good: the log names the attempt); null while none is due
    analysis_status: AnalysisStatus | None
    drafts: list[dict[str, Any]]
    metadata: dict[str, Any]
    monitoring_summary: MonitoringSummary
    behavior_analysis: BehaviorAnalysisOut | None


class HistoryItem(OwnHistoryItem):
    """An attempt in a teacher's view of a student, with the review's figures."""

    dropout_label: DropoutRisk | None
    flagged: bool


class ProfileOut(BaseModel):
    """A student's figures as a teacher sees them: computed over the exams the teacher may
    view, never the stored totals over every exam."""

    cumulative_integrity_score: float | None
    cumulative_lmi: float | None
    total_exams_attempted: int
    total_exams_passed: int
    current_dropout_risk: DropoutRisk | None
    flagged_for_review: bool
    enrollment_id: str | None
    cohort: str | None


class StudentDetailOut(BaseModel):
    student_id: uuid.UUID
    username: str
    full_name: str | None
    email: str
    profile: ProfileOut
    attempts: list[HistoryItem]


STAT_FIELDS = ("unique_students", "total_attempts", "avg_score", "pass_rate", "avg_integrity",
               "high_risk_count", "pending_grading")


class ExamStats(BaseModel):
    """The figures of an exam's completed attempts; averages are null without any."""

    model_config = ConfigDict(from_attributes=True)

    unique_students: int
    total_attempts: int
    avg_score: float | None
    pass_rate: float | None
    avg_integrity: float | None
    # provisional while any score in the average is; null without one
    avg_integrity_status: ScoreStatus | None
    high_risk_count: int
    # Completed attempts whose score may still change: their share of the figures above.
    pending_grading: int


class ExamStatsOut(ExamStats):
    """An exam on the teacher's dashboard, with its figures."""

    model_config = ConfigDict(from_attributes=True, validate_by_name=True)

    exam_id: uuid.UUID = Field(validation_alias="id")
    title: str
    subject: str
    is_published: bool
    flagged_count: int


class FlaggedStudentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, validate_by_name=True)

    student_id: uuid.UUID = Field(validation_alias="id")
    username: str
    full_name: str | None
    flagged_attempts: int
    last_flagged: datetime | None


class AlertOut(BaseModel):
    """An anomaly alert (`kind` monitoring_anomaly: repeats of one event type in one attempt
    fold into it, counted) or one an analysis raised, with where its triage stands."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    severity: Severity
    attempt_id: uuid.UUID
    exam_id: uuid.UUID
    exam_title: str
    student_id: uuid.UUID
    username: str
    full_name: str | None
    event_type: str | None
    anomaly_score: float | None
    description: str | None
    count: int
    first_at: datetime  # when it was raised
    created_at: datetime  # its latest repeat
    status: AlertStatus  # open, acknowledged or dismissed (a teacher's triage)
    status_note: str | None  # the latest status change's note
    status_at: datetime | None  # the latest status change; null while never changed
    updated_at: datetime  # its latest repeat or status change
    # a low_integrity alert's score: provisional or final; null for the other kinds
    score_status: ScoreStatus | None


class TeacherDashboardOut(BaseModel):
    as_of: datetime  # the figures are live
    exams: list[ExamStatsOut]
    alerts: list[AlertOut]
    flagged_students: list[FlaggedStudentOut]


class StudentAttemptSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True, validate_by_name=True)

    attempt_id: uuid.UUID = Field(validation_alias="id")
    status: AttemptStatus
    score: float | None
    percentage: float | None
    passed: bool | None
    grading_status: GradingStatus | None
    integrity_score: float | None
    integrity_score_status: ScoreStatus | None
    flagged: bool
    started_at: datetime
    completed_at: datetime | None


class ExamStudentOut(BaseModel):
    student_id: uuid.UUID
    username: str
    full_name: str | None
    attempts: list[StudentAttemptSummary]
    integrity_score: float | None  # the latest analyzed attempt's
    integrity_score_status: ScoreStatus | None
    dropout_label: DropoutRisk | None


class ExamAnalytics(ExamStats):
    as_of: datetime  # the figures are live


class ExamAnalyticsOut(BaseModel):
    exam: ExamOut
    analytics: ExamAnalytics
    students: list[ExamStudentOut]


class EventOut(BaseModel):
    """A stored monitoring event, under its column names."""

    model_config = ConfigDict(from_attributes=True, validate_by_name=True)

    id: uuid.UUID
    event_id: uuid.UUID
    attempt_id: uuid.UUID = Field(validation_alias="exam_attempt_id")
    student_id: uuid.UUID
    event_type: str
    severity: Severity
    data_payload: dict[str, Any]
    is_anomaly: bool
    anomaly_score: float | None
    description: str | None
    analysis_notes: str | None
    client_timestamp: datetime | None
    server_timestamp: datetime

