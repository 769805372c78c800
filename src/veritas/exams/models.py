"""Exams, their attempts and teachers' exam-level permissions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY, UUID, aggregate_order_by
from sqlalchemy.orm import Mapped, column_property, mapped_column

from veritas.classes.models import ExamClass
from veritas.db.base import (
    AnalysisStatus,
    AttemptStatus,
    Base,
    DropoutRisk,
    GradingStatus,
    ScoreStatus,
    ShowResults,
    created_at,
    uuid_pk,
)


class Exam(Base):
    __tablename__ = "exams"

    id: Mapped[uuid.UUID] = uuid_pk()
    creator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str]
    description: Mapped[str | None]
    subject: Mapped[str]
    topic: Mapped[str | None]
    max_score: Mapped[float]
    duration_minutes: Mapped[int]
    passing_score: Mapped[float]
    is_published: Mapped[bool] = mapped_column(server_default="false")
    enable_monitoring: Mapped[bool] = mapped_column(server_default="true")
    enable_integrity_analysis: Mapped[bool] = mapped_column(server_default="true")
    questions: Mapped[list[Any]] = mapped_column(server_default="[]")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", server_default="{}")
    due_at: Mapped[datetime | None]
    # The window for starting attempts (exams.rules.window_refusal); None: unbounded.
    opens_at: Mapped[datetime | None]
    closes_at: Mapped[datetime | None]
    max_attempts: Mapped[int | None]  # None: unlimited
    shuffle_questions: Mapped[bool] = mapped_column(server_default="false")
    shuffle_options: Mapped[bool] = mapped_column(server_default="false")
    # When students see per-question points, feedback and answers (lifecycle.results_visible).
    show_results: Mapped[ShowResults] = mapped_column(
        Enum(ShowResults, native_enum=False, create_constraint=False, length=16),
        server_default=ShowResults.never.value,
    )
    external_ref: Mapped[str | None]  # the record's id in an imported source (OULAD)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    # The classes the exam is assigned to, read with it (one index probe of exam_classes);
    # empty: open to every student. Written through classes.service.assign_exam only.
    class_ids: Mapped[list[uuid.UUID]] = column_property(
        select(func.coalesce(
            func.array_agg(aggregate_order_by(ExamClass.class_id, ExamClass.class_id)),
            literal([], ARRAY(UUID(as_uuid=True)))))
        .where(ExamClass.exam_id == id)
        .scalar_subquery()
    )


class TeacherExamPermission(Base):
    __tablename__ = "teacher_exam_permissions"

    teacher_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teacher_profiles.user_id"), primary_key=True
    )
    exam_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exams.id"), primary_key=True)
    can_view: Mapped[bool] = mapped_column(server_default="true")
    can_edit: Mapped[bool] = mapped_column(server_default="false")
    can_view_analytics: Mapped[bool] = mapped_column(server_default="false")
    granted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    granted_at: Mapped[datetime] = created_at()


class ExamAccommodation(Base):
    """A student's extra time and attempts on one exam, for attempts started afterwards."""

    __tablename__ = "exam_accommodations"

    exam_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exams.id"), primary_key=True)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    extra_minutes: Mapped[int] = mapped_column(server_default="0")
    extra_attempts: Mapped[int] = mapped_column(server_default="0")
    note: Mapped[str | None]
    updated_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class ExamAttempt(Base):
    __tablename__ = "exam_attempts"

    id: Mapped[uuid.UUID] = uuid_pk()
    exam_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exams.id"))
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    status: Mapped[AttemptStatus] = mapped_column(
        Enum(AttemptStatus, name="attempt_status", create_type=False),
        server_default="in_progress",
    )
    score: Mapped[float | None]
    max_score: Mapped[float]
    percentage: Mapped[float | None]
    passed: Mapped[bool | None]
    integrity_score: Mapped[float | None]
    lmi: Mapped[float | None]
    dropout_label: Mapped[DropoutRisk | None] = mapped_column(
        Enum(DropoutRisk, name="dropout_risk", create_type=False)
    )
    flagged: Mapped[bool] = mapped_column(server_default="false")
    analysis_status: Mapped[AnalysisStatus | None] = mapped_column(
        Enum(AnalysisStatus, native_enum=False, create_constraint=False, length=16)
    )
    # pending or graded once completed (grading.service keeps it with the score); else None.
    grading_status: Mapped[GradingStatus | None] = mapped_column(
        Enum(GradingStatus, native_enum=False, create_constraint=False, length=16)
    )
    # behavior_analysis.score_status of integrity_score, mirrored like the score itself.
    integrity_score_status: Mapped[ScoreStatus | None] = mapped_column(
        Enum(ScoreStatus, native_enum=False, create_constraint=False, length=16)
    )
    started_at: Mapped[datetime] = created_at()
    expires_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    duration_seconds: Mapped[int | None]
    submission_data: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", server_default="{}")
    external_ref: Mapped[str | None]  # the record's id in an imported source (OULAD)
