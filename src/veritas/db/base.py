"""Declarative base and the column types shared by every domain's models."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Enum, MetaData, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        uuid.UUID: UUID(as_uuid=True),
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
        list[Any]: JSONB,
    }


class Role(str, enum.Enum):
    student = "student"
    teacher = "teacher"
    admin = "admin"


class AttemptStatus(str, enum.Enum):
    in_progress = "in_progress"
    completed = "completed"
    abandoned = "abandoned"


class AnalysisStatus(str, enum.Enum):
    """Where an ended attempt's analysis stands (migration 0008); None while none is due."""

    pending = "pending"
    done = "done"
    failed = "failed"


class GradingStatus(str, enum.Enum):
    """Whether a completed attempt's score is final (migration 0011); None while the attempt
    is not completed, and for attempts imported with a score but no questions."""

    pending = "pending"  # an essay or short-text answer has no awarded points yet
    graded = "graded"


class ShowResults(str, enum.Enum):
    """When a student sees per-question points, feedback and the correct answers."""

    never = "never"
    after_submit = "after_submit"
    after_close = "after_close"


class ScoreStatus(str, enum.Enum):
    """Whether an integrity score may still change (migration 0013): `provisional` until the
    exam's attempts are rescored as one batch against their whole population, then `final`."""

    provisional = "provisional"
    final = "final"


class Severity(str, enum.Enum):
    normal = "normal"
    warning = "warning"
    critical = "critical"


class AlertStatus(str, enum.Enum):
    """Where a teacher's triage of an alert stands (migration 0012)."""

    open = "open"  # needs a look
    acknowledged = "acknowledged"  # seen, being dealt with
    dismissed = "dismissed"  # looked at, nothing to pursue


class DropoutRisk(str, enum.Enum):
    safe = "safe"
    at_risk = "at_risk"
    high_risk = "high_risk"


class Triaged:
    """The triage columns both kinds of alert carry (migration 0012): the status and its latest
    change; every change is also a line of alert_status_changes."""

    status: Mapped[AlertStatus] = mapped_column(
        Enum(AlertStatus, native_enum=False, create_constraint=False, length=16),
        server_default="open")
    status_note: Mapped[str | None]
    status_by: Mapped[uuid.UUID | None]  # None: Veritas itself, or never changed
    status_at: Mapped[datetime | None]


def uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, server_default=func.gen_random_uuid())


def created_at() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())
