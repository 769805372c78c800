"""Reading classes: who may see one, its students, the classes of exams.

A class is its owner's (and every admin's): another teacher is told 404, as if it did not
exist, here and by row-level security alike (migration 0009).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.auth.models import StudentProfile, User
from veritas.auth.tokens import Claims
from veritas.classes.models import ClassEnrolment, SchoolClass
from veritas.classes.schemas import ClassListItem, ClassOut
from veritas.db.base import Role
from veritas.errors import NotFound
from veritas.pagination import PageParams, newest_first, page


def owns(user: Claims, klass: SchoolClass) -> bool:
    return user.role is Role.admin or klass.owner_id == user.user_id


async def require_class(
    session: AsyncSession, user: Claims, class_id: uuid.UUID, *, lock: bool = False
) -> SchoolClass:
    """The class if the caller owns it (or is an admin), else 404; checked here as well as by
    the policies, since enrolment and rosters run as the system identity."""
    klass = await session.get(SchoolClass, class_id, with_for_update=lock)
    if klass is None or not owns(user, klass):
        raise NotFound("class not found")
    return klass


async def list_classes(
    session: AsyncSession, user: Claims, paging: PageParams
) -> dict[str, Any]:
    """A page of the caller's classes (an admin's: all), newest first, with their number of
    students."""
    students = (select(func.count()).where(ClassEnrolment.class_id == SchoolClass.id)
                .correlate(SchoolClass).scalar_subquery())
    query = select(SchoolClass, students.label("student_count"))
    if user.role is not Role.admin:
        query = query.where(SchoolClass.owner_id == user.user_id)
    rows = (await session.execute(
        newest_first(query, SchoolClass.created_at, SchoolClass.id, paging))).all()
    result = page(rows, paging, lambda row: (row[0].created_at, row[0].id))
    result["items"] = [
        ClassListItem(**ClassOut.model_validate(klass).model_dump(), student_count=count)
        for klass, count in result["items"]]
    return result


async def students(session: AsyncSession, class_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(User.id, User.username, User.full_name, User.email,
               StudentProfile.enrollment_id)
        .join(ClassEnrolment, ClassEnrolment.student_id == User.id)
        .outerjoin(StudentProfile, StudentProfile.user_id == User.id)
        .where(ClassEnrolment.class_id == class_id)
        .order_by(func.lower(func.coalesce(User.full_name, User.username)), User.id)
    )
    return [dict(r._mapping) for r in rows]



async def teaches_student(session: AsyncSession, user: Claims, student_id: uuid.UUID) -> bool:
    """Whether the student is enrolled in a class the caller owns."""
    found = await session.scalar(
        select(ClassEnrolment.student_id)
        .join(SchoolClass, SchoolClass.id == ClassEnrolment.class_id)
        .where(ClassEnrolment.student_id == student_id, SchoolClass.owner_id == user.user_id)
        .limit(1))
    return found is not None
