"""Bodies of the audit trail's endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _text(value: Any) -> Any:
    return None if value is None else str(value)  # INET arrives as an ipaddress object


class AuditLogOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID | None
    action: str
    resource_type: str | None
    resource_id: str | None
    details: dict[str, Any]
    ip_address: Annotated[str | None, BeforeValidator(_text)]
    user_agent: str | None
    created_at: datetime
    # Who acted, by name, so the trail reads without looking ids up (None: no actor, or the
    # account is gone).
    user_name: str | None = None
    user_email: str | None = None


class AuditActionsOut(BaseModel):
    """Every action the trail holds, for the audit page's filter."""

    actions: list[str]
