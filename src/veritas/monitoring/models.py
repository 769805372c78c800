"""Monitoring events and their folded alerts, mapped for the read side only; ingestion writes
both with raw SQL (monitoring/ingest.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Enum
from sqlalchemy.orm import Mapped, mapped_column

from veritas.db.base import Base, Severity, Triaged


class MonitoringEvent(Base):
    __tablename__ = "monitoring_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    attempt_started_at: Mapped[datetime] = mapped_column(primary_key=True)
    exam_attempt_id: Mapped[uuid.UUID]
    student_id: Mapped[uuid.UUID]
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str]
    severity: Mapped[Severity] = mapped_column(
        Enum(Severity, name="event_severity", create_type=False)
    )
    data_payload: Mapped[dict[str, Any]]
    is_anomaly: Mapped[bool]
    anomaly_score: Mapped[float | None]
    description: Mapped[str | None]
    analysis_notes: Mapped[str | None]
    client_timestamp: Mapped[datetime | None]
    server_timestamp: Mapped[datetime]


class MonitoringAlert(Triaged, Base):
    """The anomalies of one event type in one attempt, folded into one alert with a count."""

    __tablename__ = "monitoring_alerts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    exam_attempt_id: Mapped[uuid.UUID]
    exam_id: Mapped[uuid.UUID]
    student_id: Mapped[uuid.UUID]
    event_type: Mapped[str]
    severity: Mapped[Severity] = mapped_column(
        Enum(Severity, name="event_severity", create_type=False)
    )
    anomaly_score: Mapped[float | None]
    description: Mapped[str | None]
    count: Mapped[int]
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]
