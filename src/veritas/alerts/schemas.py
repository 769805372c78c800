"""Bodies of alert triage: a status change, and an alert with its history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from veritas.analytics.schemas import AlertOut
from veritas.db.base import AlertStatus

NOTE_LIMIT = 2000  # migration 0012 checks the same bound


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: AlertStatus
    note: Annotated[str, Field(max_length=NOTE_LIMIT,
                               description="why; kept in the alert's history")] | None = None


class ChangedBy(BaseModel):
    id: uuid.UUID
    username: str | None  # None if the account no longer exists
    full_name: str | None


class StatusChangeOut(BaseModel):
    from_status: AlertStatus
    to_status: AlertStatus
    note: str | None
    changed_by: ChangedBy | None  # None: Veritas reopened it (a repeat at a higher severity)
    created_at: datetime


class AlertDetailOut(AlertOut):
    """An alert with its triage history, oldest change first."""

    history: list[StatusChangeOut]
