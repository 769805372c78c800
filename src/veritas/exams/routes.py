"""Teachers' exam management and students' attempts."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from veritas.deps import ContextDep, RuntimeDep, SessionDep, Staff, Student, unit_of_work
from veritas.errors import TooLarge
from veritas.exams import schemas, service
from veritas.exams.models import Exam
from veritas.exams.permissions import ExamRight, require_exam, restrict
from veritas.pagination import PageParams, newest_first, page, page_params

teacher = APIRouter(prefix="/api/teacher", tags=["teacher"])
student = APIRouter(prefix="/api/student", tags=["student"])

Page = Annotated[PageParams, Depends(page_params)]


@teacher.get("/exams")
async def list_exams(session: SessionDep, user: Staff, paging: Page) -> dict[str, Any]:
    query = restrict(select(Exam), Exam.id, user, ExamRight.view)
    rows = (await session.scalars(newest_first(query, Exam.created_at, Exam.id, paging))).all()
    result = page(list(rows), paging, lambda e: (e.created_at, e.id))
    result["items"] = [schemas.exam_out(e) for e in result["items"]]
    return result


@teacher.post("/exams", status_code=201)
async def create_exam(
    body: schemas.ExamCreate, session: SessionDep, user: Staff, ctx: ContextDep
) -> dict[str, Any]:
    return schemas.exam_out(await service.create_exam(session, user, body, ctx))


@teacher.get("/exams/{exam_id}")
async def get_exam(exam_id: uuid.UUID, session: SessionDep, user: Staff) -> dict[str, Any]:
    return schemas.exam_out(await require_exam(session, user, exam_id, ExamRight.view))


@teacher.patch("/exams/{exam_id}")
async def edit_exam(
    exam_id: uuid.UUID, body: schemas.ExamPatch, session: SessionDep, user: Staff,
    ctx: ContextDep,
) -> dict[str, Any]:
    return schemas.exam_out(await service.edit_exam(session, user, exam_id, body, ctx))


@teacher.post("/exams/{exam_id}/permissions", status_code=201,
              response_model=schemas.PermissionOut,
              responses={200: {"model": schemas.PermissionOut, "description": "grant updated"}})
async def grant_permission(
    exam_id: uuid.UUID, body: schemas.PermissionIn, session: SessionDep, user: Staff,
    ctx: ContextDep, response: Response,
) -> Any:
    row, created = await service.grant(session, user, exam_id, body, ctx)
    response.status_code = 201 if created else 200
    return row


@teacher.delete("/exams/{exam_id}/permissions/{teacher_id}", status_code=204,
                response_class=Response)
async def revoke_permission(
    exam_id: uuid.UUID, teacher_id: uuid.UUID, session: SessionDep, user: Staff,
    ctx: ContextDep,
) -> Response:
    await service.revoke(session, user, exam_id, teacher_id, ctx)
    return Response(status_code=204)


@student.get("/exams/available")
async def available_exams(session: SessionDep, user: Student, paging: Page) -> dict[str, Any]:
    query = select(Exam).where(Exam.is_published.is_(True))
    rows = (await session.scalars(newest_first(query, Exam.created_at, Exam.id, paging))).all()
    result = page(list(rows), paging, lambda e: (e.created_at, e.id))
    result["items"] = [
        schemas.AvailableExam(
            **{c: getattr(e, c) for c in schemas.AvailableExam.model_fields
               if c != "question_count"},
            question_count=len(e.questions),
        ).model_dump(mode="json")
        for e in result["items"]
    ]
    return result


@student.post("/exams/{exam_id}/start", status_code=201, response_model=schemas.StartOut,
              responses={200: {"model": schemas.StartOut,
                               "description": "the attempt already in progress"}})
async def start_exam(
    exam_id: uuid.UUID, session: SessionDep, rt: RuntimeDep, user: Student, ctx: ContextDep,
    response: Response,
) -> schemas.StartOut:
    attempt, created = await service.start(
        session, user, exam_id, rt.settings.attempt_grace_minutes, ctx
    )
    response.status_code = 201 if created else 200
    return schemas.StartOut(
        attempt_id=attempt.id, exam_id=attempt.exam_id, status=attempt.status,
        started_at=attempt.started_at, expires_at=attempt.expires_at,
        questions=[schemas.student_view(q) for q in attempt.submission_data["questions"]],
        responses=(attempt.submission_data.get("drafts") or [{}])[-1].get("responses", {}),
    )


@student.post("/attempts/{attempt_id}/drafts", status_code=201,
              responses={413: {"description": "the draft is over MAX_DRAFT_BYTES"}})
async def save_draft(
    attempt_id: uuid.UUID, body: schemas.DraftIn, request: Request, session: SessionDep,
    rt: RuntimeDep, user: Student,
) -> dict[str, Any]:
    """Only the latest MAX_DRAFTS_PER_ATTEMPT drafts are kept."""
    limit = rt.settings.max_draft_bytes
    if len(await request.body()) > limit:  # read already, to parse it: no second read
        raise TooLarge(f"a draft is over {limit // 1024} KiB")
    async with unit_of_work(rt, user) as expiry:
        await service.abandon_if_expired(expiry, attempt_id, rt.settings.attempt_grace_minutes)
    return await service.save_draft(
        session, user, attempt_id, body, rt.settings.attempt_grace_minutes,
        rt.settings.max_drafts_per_attempt,
    )


@student.post("/exams/{attempt_id}/submit", response_model=schemas.SubmitOut)
async def submit(
    attempt_id: uuid.UUID, session: SessionDep, rt: RuntimeDep, user: Student, ctx: ContextDep,
    body: schemas.SubmitIn | None = None,
) -> schemas.SubmitOut:
    async with unit_of_work(rt, user) as expiry:
        await service.abandon_if_expired(expiry, attempt_id, rt.settings.attempt_grace_minutes)
    attempt = await service.submit(
        session, user, attempt_id, body or schemas.SubmitIn(), rt.settings.attempt_grace_minutes,
        ctx,
    )
    return schemas.SubmitOut(
        attempt_id=attempt.id, status=attempt.status, score=attempt.score or 0.0,
        max_score=attempt.max_score, percentage=attempt.percentage or 0.0,
        passed=bool(attempt.passed), duration_seconds=attempt.duration_seconds or 0,
    )


