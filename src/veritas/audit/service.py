"""Record sensitive actions inside the caller's transaction, so action and record stand together."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.audit.models import AuditLog
from veritas.core.context import RequestContext
from veritas.pagination import PageParams, newest_first, page

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


async def read(
    session: AsyncSession, reader_id: uuid.UUID, paging: PageParams, ctx: RequestContext, *,
    user_id: uuid.UUID | None = None, action: str | None = None,
    resource_type: str | None = None, resource_id: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
) -> dict[str, Any]:
    """A page of the trail, newest first, filtered; the read itself is recorded."""
    query = select(AuditLog)
    for column, value in ((AuditLog.user_id, user_id), (AuditLog.action, action),
                          (AuditLog.resource_type, resource_type),
                          (AuditLog.resource_id, resource_id)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditLog.created_at >= since)
    if until is not None:
        query = query.where(AuditLog.created_at < until)
    rows = (await session.scalars(
        newest_first(query, AuditLog.created_at, AuditLog.id, paging))).all()
    # Recorded after the read, so this read is not in its own page.
    await record(session, ctx, reader_id, "view_audit_logs", "audit_log", None,
                 {"filters": {k: str(v) for k, v in {
                     "user_id": user_id, "action": action, "resource_type": resource_type,
                     "resource_id": resource_id, "since": since, "until": until,
                 }.items() if v is not None}})
    return page(rows, paging, lambda r: (r.created_at, r.id))
