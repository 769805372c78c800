"""Users, their profiles and figures, and issued tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, func
from sqlalchemy.dialects.postgresql import INET
from sqlalchemy.orm import Mapped, mapped_column

from veritas.db.base import Base, DropoutRisk, Role, created_at, uuid_pk


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = uuid_pk()
    email: Mapped[str]
    username: Mapped[str]
    # None until the account's owner sets one (accounts made from a class roster).
    password_hash: Mapped[str | None]
    role: Mapped[Role] = mapped_column(Enum(Role, name="user_role", create_type=False))
    full_name: Mapped[str | None]
    is_active: Mapped[bool] = mapped_column(server_default="true")
    is_verified: Mapped[bool] = mapped_column(server_default="false")
    last_login: Mapped[datetime | None]
    last_login_ip: Mapped[str | None] = mapped_column(INET)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", server_default="{}")
    external_ref: Mapped[str | None]  # the record's id in an imported source (OULAD)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class StudentProfile(Base):
    __tablename__ = "student_profiles"

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), unique=True)
    enrollment_id: Mapped[str | None]
    cohort: Mapped[str | None]
    cumulative_integrity_score: Mapped[float | None]
    cumulative_lmi: Mapped[float | None]
    total_exams_attempted: Mapped[int] = mapped_column(server_default="0")
    total_exams_passed: Mapped[int] = mapped_column(server_default="0")
    current_dropout_risk: Mapped[DropoutRisk | None] = mapped_column(
        Enum(DropoutRisk, name="dropout_risk", create_type=False)
    )
    flagged_for_review: Mapped[bool] = mapped_column(server_default="false")
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class TeacherProfile(Base):
    __tablename__ = "teacher_profiles"

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), unique=True)
    department: Mapped[str | None]
    created_at: Mapped[datetime] = created_at()


class AuthToken(Base):
    __tablename__ = "auth_tokens"

    jti: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    token_type: Mapped[str]
    family_id: Mapped[uuid.UUID]
    issued_at: Mapped[datetime] = created_at()
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class PerformanceMetrics(Base):
    """A student's running figures, rebuilt from the raw tables (analysis.refresh_student)."""

    __tablename__ = "performance_metrics"

    id: Mapped[uuid.UUID] = uuid_pk()
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), unique=True)
    total_attempts: Mapped[int] = mapped_column(server_default="0")
    total_passed: Mapped[int] = mapped_column(server_default="0")
    avg_score: Mapped[float | None]
    strengths: Mapped[list[Any]] = mapped_column(server_default="[]")
    weaknesses: Mapped[list[Any]] = mapped_column(server_default="[]")
    subject_scores: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    avg_integrity_score: Mapped[float | None]
    integrity_trend: Mapped[str | None]
    avg_lmi: Mapped[float | None]
    lmi_trend: Mapped[str | None]
    current_risk_label: Mapped[DropoutRisk | None] = mapped_column(
        Enum(DropoutRisk, name="dropout_risk", create_type=False)
    )
    flagged_for_intervention: Mapped[bool] = mapped_column(server_default="false")
    last_updated: Mapped[datetime] = mapped_column(server_default=func.now())
    last_attempt_date: Mapped[datetime | None]


class PasswordLink(Base):
    """A one-time set-password link; only the SHA-256 of its token is kept (auth.links)."""

    __tablename__ = "password_links"

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[bytes]
    purpose: Mapped[str]  # "setup" (a new account) or "reset"
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = created_at()
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
