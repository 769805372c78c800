"""Per-attempt behavior analyses, their alerts, review decisions and exams' scoring populations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, func
from sqlalchemy.orm import Mapped, mapped_column

from veritas.db.base import (
    Base,
    DropoutRisk,
    ScoreStatus,
    Severity,
    Triaged,
    created_at,
    uuid_pk,
)

# Stored as text with a CHECK (migration 0013), like exam_attempts.analysis_status.
SCORE_STATUS = Enum(ScoreStatus, native_enum=False, create_constraint=False, length=16)


class BehaviorAnalysis(Base):
    __tablename__ = "behavior_analysis"

    id: Mapped[uuid.UUID] = uuid_pk()
    exam_attempt_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exam_attempts.id"), unique=True)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    total_monitoring_events: Mapped[int] = mapped_column(server_default="0")
    anomaly_count: Mapped[int] = mapped_column(server_default="0")
    critical_events: Mapped[int] = mapped_column(server_default="0")
    integrity_score: Mapped[float | None]
    originality_indicators: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    lmi_score: Mapped[float | None]
    improvement_trend: Mapped[str | None]
    dropout_label: Mapped[DropoutRisk | None] = mapped_column(
        Enum(DropoutRisk, name="dropout_risk", create_type=False)
    )
    dropout_confidence: Mapped[float | None]
    llm_summary: Mapped[str | None]
    llm_recommendations: Mapped[list[Any]] = mapped_column(server_default="[]")
    llm_model_version: Mapped[str | None]
    requires_instructor_attention: Mapped[bool] = mapped_column(server_default="false")
    requires_recap: Mapped[bool] = mapped_column(server_default="false")
    analysis_version: Mapped[str | None]
    details: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    completed_at: Mapped[datetime | None]
    # Of integrity_score: None without one.
    score_status: Mapped[ScoreStatus | None] = mapped_column(SCORE_STATUS)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class AnalysisAlert(Triaged, Base):
    """An alert raised by an analysis: low integrity, high dropout risk, telemetry gaps."""

    __tablename__ = "analysis_alerts"

    id: Mapped[uuid.UUID] = uuid_pk()
    exam_attempt_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exam_attempts.id"))
    exam_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exams.id"))
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str]
    severity: Mapped[Severity] = mapped_column(
        Enum(Severity, name="event_severity", create_type=False)
    )
    description: Mapped[str]
    # Of the integrity score a low_integrity alert stands on; None for the other kinds.
    score_status: Mapped[ScoreStatus | None] = mapped_column(SCORE_STATUS)
    created_at: Mapped[datetime] = created_at()


class ReviewDecision(Base):
    """A reviewer's decision on an attempt or one of its alerts; never edited, only superseded."""

    __tablename__ = "review_decisions"

    id: Mapped[uuid.UUID] = uuid_pk()
    exam_attempt_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exam_attempts.id"))
    alert_id: Mapped[uuid.UUID | None]
    reviewer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(
        Enum("acknowledged", "confirmed", "dismissed", name="review_decision",
             create_type=False)
    )
    note: Mapped[str | None]
    created_at: Mapped[datetime] = created_at()


class IntegrityPopulation(Base):
    """The population an exam's final integrity scores were computed against (migration 0013).

    `signals` holds the scored signals of every attempt the last batch scored, by attempt id;
    `members` are those of them that form the population (the completed attempts). An
    analysis of one of these attempts scores it against exactly this, so it gives the batch's
    score; `version` counts the batches, so an analysis can tell that one ran meanwhile.
    """

    __tablename__ = "integrity_populations"

    exam_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exams.id"), primary_key=True)
    version: Mapped[int]
    reason: Mapped[str]
    members: Mapped[list[Any]]
    signals: Mapped[dict[str, Any]]
    settled_at: Mapped[datetime] = mapped_column(server_default=func.now())
