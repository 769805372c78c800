"""Teachers' exam management and students' attempts."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from veritas.deps import ContextDep, PageDep, RuntimeDep, SessionDep, Staff, Student, unit_of_work
from veritas.errors import TooLarge, error_responses
from veritas.exams import accommodations, schemas, service
from veritas.exams.models import Exam, ExamAccommodation, TeacherExamPermission
from veritas.exams.permissions import ExamRight, require_exam
from veritas.pagination import Page

# Every route here needs a token of the router's role and reads the database.
teacher = APIRouter(prefix="/api/teacher", tags=["teacher"],
                    responses=error_responses(401, 403, 422, 503))
student = APIRouter(prefix="/api/student", tags=["student"],
                    responses=error_responses(401, 403, 422, 503))

NO_EXAM = error_responses(404, s404="no such exam")
HAS_BODY = error_responses(413)
NOT_OWN_ATTEMPT = error_responses(404, s404="no such attempt of the caller's")
ENDED = error_responses(409, s409="the attempt has ended (submitted, abandoned, or its time"
                                  " ran out)")


@teacher.get("/exams", response_model=Page[schemas.ExamOut])
async def list_exams(session: SessionDep, user: Staff, paging: PageDep) -> dict[str, Any]:
    return await service.list_exams(session, user, paging)


CLASS_IDS = error_responses(
    403, 422, s403="not allowed: the exam is not the caller's to edit, or class_ids would take"
                   " it off another teacher's class",
    s422="invalid input, or class_ids names a class that is not the caller's")


@teacher.post("/exams", status_code=201, response_model=schemas.ExamOut,
              responses={**HAS_BODY, **CLASS_IDS})
async def create_exam(
    body: schemas.ExamCreate, session: SessionDep, user: Staff, ctx: ContextDep
) -> Exam:
    return await service.create_exam(session, user, body, ctx)


@teacher.get("/exams/{exam_id}", response_model=schemas.ExamOut, responses=NO_EXAM)
async def get_exam(exam_id: uuid.UUID, session: SessionDep, user: Staff) -> Exam:
    return await require_exam(session, user, exam_id, ExamRight.view)


@teacher.patch("/exams/{exam_id}", response_model=schemas.ExamOut,
               responses={**NO_EXAM, **HAS_BODY, **CLASS_IDS})
async def edit_exam(
    exam_id: uuid.UUID, body: schemas.ExamPatch, session: SessionDep, user: Staff,
    ctx: ContextDep,
) -> Exam:
    return await service.edit_exam(session, user, exam_id, body, ctx)


@teacher.post("/exams/{exam_id}/permissions", status_code=201,
              response_model=schemas.PermissionOut,
              responses={200: {"model": schemas.PermissionOut, "description": "grant updated"},
                         **error_responses(404, 409, 413, s404="no such exam or teacher",
                                           s409="the creator's own access cannot change")})
async def grant_permission(
    exam_id: uuid.UUID, body: schemas.PermissionIn, session: SessionDep, user: Staff,
    ctx: ContextDep, response: Response,
) -> TeacherExamPermission:
    row, created = await service.grant(session, user, exam_id, body, ctx)
    response.status_code = 201 if created else 200
    return row


@teacher.delete("/exams/{exam_id}/permissions/{teacher_id}", status_code=204,
                response_class=Response,
                responses=error_responses(404, 409, s404="no such exam or permission",
                                          s409="the creator's own access cannot be revoked"))
async def revoke_permission(
    exam_id: uuid.UUID, teacher_id: uuid.UUID, session: SessionDep, user: Staff,
    ctx: ContextDep,
) -> Response:
    await service.revoke(session, user, exam_id, teacher_id, ctx)
    return Response(status_code=204)


NO_STUDENT = error_responses(404, 422, s404="no such exam, or no such student",
                             s422="invalid input, or the user is not a student")


@teacher.put("/exams/{exam_id}/accommodations/{student_id}",
             response_model=schemas.AccommodationOut, responses={**NO_STUDENT, **HAS_BODY})
async def put_accommodation(
    exam_id: uuid.UUID, student_id: uuid.UUID, body: schemas.AccommodationIn,
    session: SessionDep, user: Staff, ctx: ContextDep,
) -> ExamAccommodation:
    """Set the student's extra minutes and extra attempts on the exam (needs `can_edit`).
    They apply to the attempts the student starts afterwards."""
    return await accommodations.put(session, user, exam_id, student_id, body, ctx)


@teacher.get("/exams/{exam_id}/accommodations",
             response_model=Page[schemas.AccommodationOut], responses=NO_EXAM)
async def list_accommodations(
    exam_id: uuid.UUID, session: SessionDep, user: Staff, paging: PageDep
) -> dict[str, Any]:
    """The exam's accommodations, newest first (needs `can_view`)."""
    return await accommodations.list_for_exam(session, user, exam_id, paging)


@teacher.delete("/exams/{exam_id}/accommodations/{student_id}", status_code=204,
                response_class=Response,
                responses=error_responses(404, s404="no such exam, or no accommodation for"
                                                    " this student"))
async def delete_accommodation(
    exam_id: uuid.UUID, student_id: uuid.UUID, session: SessionDep, user: Staff,
    ctx: ContextDep,
) -> Response:
    """Remove the student's accommodation (needs `can_edit`); attempts already started keep
    their time."""
    await accommodations.remove(session, user, exam_id, student_id, ctx)
    return Response(status_code=204)


@student.get("/exams/available", response_model=Page[schemas.AvailableExamOut])
async def available_exams(session: SessionDep, user: Student, paging: PageDep) -> dict[str, Any]:
    return await service.available_exams(session, user, paging)


@student.post("/exams/{exam_id}/start", status_code=201, response_model=schemas.StartOut,
              responses={200: {"model": schemas.StartOut,
                               "description": "the attempt already in progress"},
                         **error_responses(404, 409, s404="no such published exam open to the"
                                                          " caller (its classes are not theirs)",
                                           s409="the exam is not open (it opens later or"
                                                " has closed), or the caller has no"
                                                " attempts left")})
async def start_exam(
    exam_id: uuid.UUID, session: SessionDep, rt: RuntimeDep, user: Student, ctx: ContextDep,
    response: Response,
) -> schemas.StartOut:
    async with unit_of_work(rt, user) as expiry:
        await service.abandon_expired_starts(expiry, user, exam_id,
                                             rt.settings.attempt_grace_minutes)
    attempt, created = await service.start(
        session, user, exam_id, rt.settings.attempt_grace_minutes, ctx
    )
    response.status_code = 201 if created else 200
    return schemas.StartOut.of(attempt)


@student.post("/attempts/{attempt_id}/drafts", status_code=201, response_model=schemas.DraftOut,
              responses={**NOT_OWN_ATTEMPT, **ENDED, **error_responses(
                  413, s413="the draft (or the body) is over its size limit")})
async def save_draft(
    attempt_id: uuid.UUID, body: schemas.DraftIn, request: Request, session: SessionDep,
    rt: RuntimeDep, user: Student,
) -> schemas.DraftOut:
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


@student.post("/exams/{attempt_id}/submit", response_model=schemas.SubmitOut,
              responses={**NOT_OWN_ATTEMPT, **ENDED, **HAS_BODY})
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
    return schemas.SubmitOut.of(attempt)
