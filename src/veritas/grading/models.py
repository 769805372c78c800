"""A teacher's grade of one question of one attempt (migration 0011)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from veritas.db.base import Base, created_at


class QuestionGrade(Base):
    """The points awarded for one question, overriding what scoring gave it on submit."""

    __tablename__ = "question_grades"

    exam_attempt_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("exam_attempts.id"), primary_key=True
    )
    question_id: Mapped[str] = mapped_column(primary_key=True)
    points: Mapped[float]
    feedback: Mapped[str | None]
    graded_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    graded_at: Mapped[datetime] = created_at()
