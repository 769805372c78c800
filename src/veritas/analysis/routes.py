"""PUT /api/analysis/attempts/{id}: an institution's own scoring module stores its analysis."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from veritas.analysis import review
from veritas.analysis import service as analysis
from veritas.analysis.schemas import analysis_dict
from veritas.audit import service as audit
from veritas.db.base import AttemptStatus, DropoutRisk
from veritas.deps import Admin, ContextDep, SessionDep, Staff
from veritas.errors import Conflict, NotFound
from veritas.exams.models import Exam, ExamAttempt
from veritas.exams.permissions import ExamRight, require_attempt
from veritas.json_limits import StorableObject

router = APIRouter(prefix="/api/analysis", tags=["analysis"])
reviews = APIRouter(prefix="/api/teacher", tags=["teacher"])

Unit = Annotated[float, Field(ge=0, le=1)]


class ExternalAnalysis(BaseModel):
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


@router.put("/attempts/{attempt_id}")
async def store_external_analysis(
    attempt_id: uuid.UUID, body: ExternalAnalysis, session: SessionDep, admin: Admin,
    ctx: ContextDep,
) -> dict[str, Any]:
    """Replace the attempt's analysis with one computed elsewhere (admin or service account)."""
    attempt = await session.get(ExamAttempt, attempt_id)
    if attempt is None:
        raise NotFound("attempt not found")
    if attempt.status is AttemptStatus.in_progress:
        raise Conflict("the attempt is still in progress")
    fields = body.model_dump(exclude={"model_version"})
    row = await analysis.save_behavior_analysis(
        session, attempt_id=attempt.id, student_id=attempt.student_id,
        llm_model_version=body.model_version,
        analysis_version=f"external:{body.model_version}", completed_at=attempt.completed_at,
        **fields,
    )
    await audit.record(session, ctx, admin.user_id, "store_external_analysis", "exam_attempt",
                       attempt.id, {"model_version": body.model_version})
    return analysis_dict(row) or {}


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["acknowledged", "confirmed", "dismissed"]
    note: Annotated[str, Field(max_length=5_000)] | None = None
    alert_id: uuid.UUID | None = Field(
        None, description="one of this attempt's alerts (GET /api/teacher/alerts), or none for "
                          "a decision on the whole attempt")


async def _reviewable(session: SessionDep, user: Staff,
                      attempt_id: uuid.UUID) -> tuple[ExamAttempt, Exam]:
    return await require_attempt(session, user, attempt_id, ExamRight.analytics)


class Problem(BaseModel):
    detail: str | list[dict[str, Any]]


@reviews.post("/attempts/{attempt_id}/reviews", status_code=201, responses={
    422: {"model": Problem,
          "description": f"an invalid body (a list of problems), or `{review.NOT_OWN_ALERT}` "
                         "for another attempt's alert and an unknown id alike"}})
async def add_review(
    attempt_id: uuid.UUID, body: ReviewIn, session: SessionDep, user: Staff, ctx: ContextDep,
) -> dict[str, Any]:
    """Record a decision; it supersedes earlier ones and is never edited."""
    attempt, exam = await _reviewable(session, user, attempt_id)
    row = await review.decide(session, attempt, user.user_id, body.decision, body.note,
                              body.alert_id)
    await audit.record(session, ctx, user.user_id, "review_decision", "exam_attempt",
                       attempt.id, {"decision": body.decision,
                                    "alert_id": str(body.alert_id) if body.alert_id else None})
    decisions = await review.decisions_of(session, attempt.id)
    return review.decision_dict(row) | {
        "outcome": review.outcome(decisions, review.needs_second_reviewer(exam))}


@reviews.get("/attempts/{attempt_id}/reviews")
async def list_reviews(
    attempt_id: uuid.UUID, session: SessionDep, user: Staff, ctx: ContextDep,
) -> dict[str, Any]:
    attempt, exam = await _reviewable(session, user, attempt_id)
    decisions = await review.decisions_of(session, attempt.id)
    await audit.record(session, ctx, user.user_id, "view_student_data", "exam_attempt",
                       attempt.id, {"view": "reviews"})
    return {"outcome": review.outcome(decisions, review.needs_second_reviewer(exam)),
            "items": [review.decision_dict(d) for d in decisions], "next_cursor": None}
