"""Bodies of the analysis endpoints: an attempt's behaviour analysis and review decisions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from veritas.db.base import DropoutRisk, ScoreStatus
from veritas.json_limits import StorableObject

Unit = Annotated[float, Field(ge=0, le=1)]
Outcome = Literal["not_reviewed", "under_review", "pending_second_review", "confirmed",
                  "cleared"]
Decision = Literal["acknowledged", "confirmed", "dismissed"]


class BehaviorAnalysisOut(BaseModel):
    """An attempt's analysis, whole: the teacher's and the admin's view."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    exam_attempt_id: uuid.UUID
    student_id: uuid.UUID
    total_monitoring_events: int
    anomaly_count: int
    critical_events: int
    integrity_score: float | None
    originality_indicators: dict[str, Any]
    lmi_score: float | None
    improvement_trend: str | None
    dropout_label: DropoutRisk | None
    dropout_confidence: float | None
    llm_summary: str | None
    llm_recommendations: list[Any]
    llm_model_version: str | None
    requires_instructor_attention: bool
    requires_recap: bool
    analysis_version: str | None
    details: dict[str, Any]
    completed_at: datetime | None
    # Of integrity_score: provisional until the exam settles and its attempts are scored
    # together against one population, then final; null without a score.
    score_status: ScoreStatus | None
    created_at: datetime
    updated_at: datetime


class ExternalAnalysis(BaseModel):
    """An analysis computed by an institution's own scoring module."""

    model_config = ConfigDict(extra="forbid")

    model_version: Annotated[str, Field(min_length=1, max_length=100)]
    integrity_score: Unit | None = None
    lmi_score: Annotated[float, Field(ge=-1, le=1)] | None = None
    improvement_trend: Annotated[str, Field(max_length=50)] | None = None
    dropout_label: DropoutRisk | None = None
    dropout_confidence: Unit | None = None
    llm_summary: Annotated[str, Field(max_length=20_000)] | None = None
    llm_recommendations: Annotated[list[Annotated[str, Field(max_length=2_000)]],
                                   Field(max_length=20)] = []
    requires_instructor_attention: bool = False
    requires_recap: bool = False
    details: StorableObject = {}


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Decision
    note: Annotated[str, Field(max_length=5_000)] | None = None
    alert_id: uuid.UUID | None = Field(
        None, description="one of this attempt's alerts (GET /api/teacher/alerts), or none for "
                          "a decision on the whole attempt")


class ReviewDecisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, validate_by_name=True)

    id: uuid.UUID
    attempt_id: uuid.UUID = Field(validation_alias="exam_attempt_id")
    alert_id: uuid.UUID | None
    reviewer_id: uuid.UUID
    decision: Decision
    note: str | None
    created_at: datetime


class ReviewOut(ReviewDecisionOut):
    """The decision just recorded, and the attempt's review outcome with it."""

    outcome: Outcome


class ReviewsOut(BaseModel):
    """Every decision on an attempt, oldest first, and the outcome they add up to."""

    outcome: Outcome
    items: list[ReviewDecisionOut]
    next_cursor: None = None  # one page: an attempt gathers a handful of decisions
