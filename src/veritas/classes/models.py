"""Classes, who is enrolled in them, and the classes an exam is assigned to (migration 0009)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from veritas.db.base import Base, created_at, uuid_pk


class SchoolClass(Base):
    """A class (a course section, a homeroom, an LMS course); `class` is Python's word."""

    __tablename__ = "classes"

    id: Mapped[uuid.UUID] = uuid_pk()
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str]
    subject: Mapped[str | None]
    term: Mapped[str | None]
    created_at: Mapped[datetime] = created_at()


class ClassEnrolment(Base):
    __tablename__ = "class_enrolments"

    class_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("classes.id"), primary_key=True)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    enrolled_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    enrolled_at: Mapped[datetime] = created_at()


class ExamClass(Base):
    """An exam with at least one of these rows is open only to the students of its classes."""

    __tablename__ = "exam_classes"

    exam_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exams.id"), primary_key=True)
    class_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("classes.id"), primary_key=True)
