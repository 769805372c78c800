"""Record sensitive actions inside the caller's transaction, so action and record stand together."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.audit.models import AuditLog
from veritas.core.context import RequestContext

# Never stored in details, whatever a caller passes.
SECRET_KEYS = frozenset({"password", "password_hash", "token", "access_token", "refresh_token"})


async def record(
    session: AsyncSession,
    ctx: RequestContext | None,
    actor_id: uuid.UUID | None,
    action: str,
    resource_type: str | None = None,
    resource_id: uuid.UUID | str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    clean = {k: v for k, v in (details or {}).items() if k not in SECRET_KEYS}
    await session.execute(
        insert(AuditLog).values(
            user_id=actor_id,
            action=action,
            resource_type=resource_type,
            resource_id=str(resource_id) if resource_id is not None else None,
            details=clean,
            ip_address=ctx.ip if ctx else None,
            user_agent=ctx.user_agent[:512] if ctx and ctx.user_agent else None,
        )
    )
