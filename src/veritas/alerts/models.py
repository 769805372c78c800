"""The history of alerts' triage: one line per status change (migration 0012's trigger)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Enum
from sqlalchemy.orm import Mapped, mapped_column

from veritas.db.base import AlertStatus, Base

_STATUS = Enum(AlertStatus, native_enum=False, create_constraint=False, length=16)


class AlertStatusChange(Base):
    """Who changed an alert's status, when, from what to what, and why. Written by the
    database whenever an alert's status_at moves; never edited."""

    __tablename__ = "alert_status_changes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    alert_id: Mapped[uuid.UUID]  # of monitoring_alerts or analysis_alerts
    exam_attempt_id: Mapped[uuid.UUID]
    exam_id: Mapped[uuid.UUID]
    changed_by: Mapped[uuid.UUID | None]  # None: Veritas itself (a reopening)
    from_status: Mapped[AlertStatus] = mapped_column(_STATUS)
    to_status: Mapped[AlertStatus] = mapped_column(_STATUS)
    note: Mapped[str | None]
    created_at: Mapped[datetime]
