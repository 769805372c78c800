"""PUT /api/analysis/attempts/{id}: an institution's own scoring module stores its analysis."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from veritas.analysis import service as analysis
from veritas.analytics.queries import analysis_dict
from veritas.audit import service as audit
from veritas.db.base import AttemptStatus, DropoutRisk
from veritas.deps import Admin, ContextDep, SessionDep
from veritas.errors import Conflict, NotFound
from veritas.exams.models import ExamAttempt

router = APIRouter(prefix="/api/analysis", tags=["analysis"])

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
    details: dict[str, Any] = {}


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
