"""PUT /api/analysis/attempts/{id}: an institution's own scoring module stores its analysis;
teachers' review decisions on an attempt."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from veritas.analysis import review
from veritas.analysis import service as analysis
from veritas.analysis.models import BehaviorAnalysis
from veritas.analysis.schemas import (
    BehaviorAnalysisOut,
    ExternalAnalysis,
    ReviewIn,
    ReviewOut,
    ReviewsOut,
)
from veritas.deps import Admin, ContextDep, ReviewableAttempt, SessionDep, Staff
from veritas.errors import error_responses

router = APIRouter(prefix="/api/analysis", tags=["analysis"],
                   responses=error_responses(401, 403, 422, 503))
reviews = APIRouter(prefix="/api/teacher", tags=["teacher"],
                    responses=error_responses(401, 403, 422, 503))

# A teacher's attempt that is not theirs is 403; an unknown one 404 (deps.attempt_access).
ATTEMPT = error_responses(403, 404, s403="not staff, or the attempt's exam is not the caller's",
                          s404="no such attempt")


@router.put("/attempts/{attempt_id}", response_model=BehaviorAnalysisOut,
            responses=error_responses(404, 409, 413, s404="no such attempt",
                                      s409="the attempt is still in progress"))
async def store_external_analysis(
    attempt_id: uuid.UUID, body: ExternalAnalysis, session: SessionDep, admin: Admin,
    ctx: ContextDep,
) -> BehaviorAnalysis:
    """Replace the attempt's analysis with one computed elsewhere (admin or service account)."""
    return await analysis.store_external(session, admin, attempt_id, body, ctx)


@reviews.post("/attempts/{attempt_id}/reviews", status_code=201, response_model=ReviewOut,
              responses={**ATTEMPT, **error_responses(
                  413, 422, s422=f"an invalid body (a list of problems), or `{review.NOT_OWN_ALERT}`"
                                 " for another attempt's alert and an unknown id alike")})
async def add_review(
    body: ReviewIn, access: ReviewableAttempt, session: SessionDep, user: Staff, ctx: ContextDep,
) -> ReviewOut:
    """Record a decision; it supersedes earlier ones and is never edited."""
    return await review.review(session, access.attempt, access.exam, user.user_id, body, ctx)


@reviews.get("/attempts/{attempt_id}/reviews", response_model=ReviewsOut, responses=ATTEMPT)
async def list_reviews(
    access: ReviewableAttempt, session: SessionDep, user: Staff, ctx: ContextDep,
) -> ReviewsOut:
    return await review.reviews(session, access.attempt, access.exam, user.user_id, ctx)
