"""Grading endpoints: the queue of attempts waiting for a grade, an attempt's answers, a grade."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query

from veritas.deps import ContextDep, PageDep, SessionDep, Staff
from veritas.errors import error_responses
from veritas.grading import schemas, service
from veritas.pagination import Page

# Every route here needs a teacher's or an admin's token and reads the database.
router = APIRouter(prefix="/api/teacher", tags=["teacher"],
                   responses=error_responses(401, 403, 422, 503))


@router.get("/grading", response_model=Page[schemas.QueueItem], responses=error_responses(
    403, 404, s403="not staff, or `exam_id` names an exam the caller may not view",
    s404="`exam_id` names no exam"))
async def grading_queue(
    session: SessionDep, user: Staff, ctx: ContextDep, paging: PageDep,
    status: Annotated[schemas.QueueStatus, Query(
        description="`pending`: waiting for a grade (the default); `graded`: final")] = "pending",
    exam_id: Annotated[uuid.UUID | None, Query(description="only this exam's attempts")] = None,
) -> Page[schemas.QueueItem]:
    """Completed attempts of the exams the caller may view (`can_view`; admins: all), by
    grading status, oldest submission first. `can_grade` says which the caller may grade."""
    return await service.queue(session, user, paging, ctx, status, exam_id)


@router.get("/attempts/{attempt_id}/responses", response_model=schemas.AttemptResponses,
            responses=error_responses(
                403, 404, s403="not staff, or the attempt's exam is not the caller's",
                s404="no such attempt"))
async def attempt_responses(
    attempt_id: uuid.UUID, session: SessionDep, user: Staff, ctx: ContextDep,
) -> schemas.AttemptResponses:
    """Each question of the attempt with the student's answer (before a submit, the latest
    autosaved one), the automatic points, the awarded points and feedback (`can_view`)."""
    return await service.attempt_responses(session, user, attempt_id, ctx)


@router.put("/attempts/{attempt_id}/grades/{question_id}", response_model=schemas.GradeOut,
            responses=error_responses(
                403, 404, 409, 413, 422,
                s403="not staff, or not allowed to edit the attempt's exam",
                s404="no such attempt, or no such question in it",
                s409="the attempt is in progress or abandoned: nothing submitted to grade",
                s422="points below 0 or above the question's points, or an invalid body"))
async def grade_question(
    attempt_id: uuid.UUID,
    question_id: Annotated[str, Path(min_length=1, max_length=64)],
    body: schemas.GradeIn, session: SessionDep, user: Staff, ctx: ContextDep,
) -> schemas.GradeOut:
    """Grade one question (`can_edit`); any question, objective ones too, and again to
    regrade: the awarded points replace the automatic ones. In the same transaction the
    attempt's score, percentage, passed and grading_status and the student's profile and
    performance metrics are recomputed, and the grade is audited (`grade_question`)."""
    return await service.grade_question(session, user, attempt_id, question_id, body, ctx)
