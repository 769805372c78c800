"""Who may do what: the role table and exam-level grants, in one place.

Exam rights come from teacher_exam_permissions (the creator holds a full row). Lists apply
`visible_exam_ids` in their WHERE clause, so a list can never contain an exam the caller may
not see; single resources go through `require_exam`. A student's queries apply
`open_to_student`: an exam assigned to classes is theirs to see only through one of them.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.auth.tokens import Claims
from veritas.classes.models import ClassEnrolment, ExamClass
from veritas.db.base import Role
from veritas.errors import Forbidden, NotFound
from veritas.exams.models import Exam, ExamAttempt, TeacherExamPermission

# Any SELECT, whatever its columns: restrict() hands back the query it was given.
_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")


class ExamRight(enum.Enum):
    """`view` shows the exam, its attempts and their students; aggregates (analytics, the
    dashboard's figures, alerts) and review decisions need `analytics`; changes need `edit`."""

    view = "can_view"
    edit = "can_edit"
    analytics = "can_view_analytics"


def visible_exam_ids(user: Claims, right: ExamRight) -> Select[uuid.UUID] | None:
    """Subquery of the exam ids the caller holds `right` on; None means every exam (admin)."""
    if user.role is Role.admin:
        return None
    if user.role is not Role.teacher:
        return select(Exam.id).where(~true())
    return select(TeacherExamPermission.exam_id).where(
        TeacherExamPermission.teacher_id == user.user_id,
        getattr(TeacherExamPermission, right.value).is_(True),
    )


def restrict(query: _Query, exam_id_col: SQLColumnExpression[uuid.UUID], user: Claims,
             right: ExamRight) -> _Query:
    """Apply the caller's exam rights to a query's WHERE clause."""
    allowed = visible_exam_ids(user, right)
    return query if allowed is None else query.where(exam_id_col.in_(allowed))


def open_to_student(
    student_id: uuid.UUID, exam_id: SQLColumnExpression[uuid.UUID] = Exam.id
) -> ColumnElement[bool]:
    """WHERE clause: the exam (`exam_id`, a column) is open to the student, as it has no
    classes or one of its classes is theirs. The exams policy of migration 0009 holds the
    same rule in the database (and also lets a student's session read the exams they hold an
    attempt at, so that their own figures can be recomputed in their transaction)."""
    restricted = select(ExamClass.exam_id)
    theirs = (select(ExamClass.exam_id)
              .join(ClassEnrolment, ClassEnrolment.class_id == ExamClass.class_id)
              .where(ClassEnrolment.student_id == student_id))
    return or_(exam_id.not_in(restricted), exam_id.in_(theirs))


async def require_exam(
    session: AsyncSession, user: Claims, exam_id: uuid.UUID, right: ExamRight
) -> Exam:
    exam = await session.get(Exam, exam_id)
    if exam is None:
        raise NotFound("exam not found")
    if user.role is Role.admin:
        return exam
    if user.role is Role.teacher:
        grant = await session.get(TeacherExamPermission, (user.user_id, exam_id))
        if grant is not None and getattr(grant, right.value):
            return exam
    raise Forbidden("Not authorized for this exam")


async def require_attempt(
    session: AsyncSession, user: Claims, attempt_id: uuid.UUID, right: ExamRight
) -> tuple[ExamAttempt, Exam]:
    """An attempt of an exam the caller holds `right` on: 404 if there is no such attempt,
    403 if its exam is not the caller's (row-level security hides its row either way, so the
    exam is asked of veritas_attempt_exam, which tells nothing else)."""
    attempt = await session.get(ExamAttempt, attempt_id)
    if attempt is None:
        exam_id = await session.scalar(select(func.veritas_attempt_exam(attempt_id)))
        if exam_id is None:
            raise NotFound("attempt not found")
        await require_exam(session, user, exam_id, right)
        raise NotFound("attempt not found")  # its exam is allowed but its row is not
    return attempt, await require_exam(session, user, attempt.exam_id, right)


def can_manage_grants(user: Claims, exam: Exam) -> bool:
    """Only the exam's creator or an admin grants and revokes access."""
    return user.role is Role.admin or exam.creator_id == user.user_id
