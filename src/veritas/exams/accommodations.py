"""Per-student accommodations on an exam: extra minutes and extra attempts.

Set by a teacher who may edit the exam, listed to those who may view it, audited. They apply
to the attempts started after they are set: an attempt's `expires_at` is fixed at its start.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.audit import service as audit
from veritas.auth.models import User
from veritas.auth.tokens import Claims
from veritas.core.context import RequestContext
from veritas.db.base import Role
from veritas.db.unit_of_work import as_system
from veritas.errors import Invalid, NotFound
from veritas.exams import schemas
from veritas.exams.models import ExamAccommodation
from veritas.exams.permissions import ExamRight, require_exam
from veritas.pagination import PageParams, newest_first, page


async def _require_student(session: AsyncSession, student_id: uuid.UUID) -> None:
    """The id names a student account. Asked as the system: a teacher may set up a student's
    extra time before the student has attempted any of their exams (when the teacher's own
    view of users does not show them yet); the answer tells only that the id is a student."""
    async with as_system(session):
        role = await session.scalar(select(User.role).where(User.id == student_id))
    if role is None:
        raise NotFound("student not found")
    if role is not Role.student:
        raise Invalid("the user is not a student")


async def put(
    session: AsyncSession, user: Claims, exam_id: uuid.UUID, student_id: uuid.UUID,
    body: schemas.AccommodationIn, ctx: RequestContext,
) -> ExamAccommodation:
    """Create or replace the student's accommodation on the exam."""
    await require_exam(session, user, exam_id, ExamRight.edit)
    await _require_student(session, student_id)
    values = body.model_dump() | {"updated_by": user.user_id}
    insert = pg_insert(ExamAccommodation).values(exam_id=exam_id, student_id=student_id,
                                                 **values)
    # One statement, so two teachers saving at once leave one row (the later one's).
    upsert = insert.on_conflict_do_update(
        index_elements=["exam_id", "student_id"],
        set_={k: insert.excluded[k] for k in values} | {"updated_at": func.now()},
    ).returning(ExamAccommodation)
    row: ExamAccommodation = (await session.scalars(
        upsert, execution_options={"populate_existing": True})).one()
    await audit.record(session, ctx, user.user_id, "set_accommodation", "exam", exam_id,
                       {"student_id": str(student_id), "extra_minutes": body.extra_minutes,
                        "extra_attempts": body.extra_attempts})
    return row


async def list_for_exam(
    session: AsyncSession, user: Claims, exam_id: uuid.UUID, paging: PageParams
) -> dict[str, Any]:
    """A page of the exam's accommodations, newest first."""
    await require_exam(session, user, exam_id, ExamRight.view)
    query = select(ExamAccommodation).where(ExamAccommodation.exam_id == exam_id)
    rows = (await session.scalars(newest_first(
        query, ExamAccommodation.created_at, ExamAccommodation.student_id, paging))).all()
    return page(rows, paging, lambda a: (a.created_at, a.student_id))


async def remove(
    session: AsyncSession, user: Claims, exam_id: uuid.UUID, student_id: uuid.UUID,
    ctx: RequestContext,
) -> None:
    await require_exam(session, user, exam_id, ExamRight.edit)
    removed = await session.scalar(
        delete(ExamAccommodation)
        .where(ExamAccommodation.exam_id == exam_id, ExamAccommodation.student_id == student_id)
        .returning(ExamAccommodation.student_id))
    if removed is None:
        raise NotFound("no accommodation for this student")
    await audit.record(session, ctx, user.user_id, "delete_accommodation", "exam", exam_id,
                       {"student_id": str(student_id)})


async def of_student(
    session: AsyncSession, student_id: uuid.UUID, exam_ids: list[uuid.UUID]
) -> dict[uuid.UUID, ExamAccommodation]:
    """The student's accommodations on these exams, by exam id."""
    if not exam_ids:
        return {}
    rows = await session.scalars(select(ExamAccommodation).where(
        ExamAccommodation.student_id == student_id, ExamAccommodation.exam_id.in_(exam_ids)))
    return {row.exam_id: row for row in rows}
