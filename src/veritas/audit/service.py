"""Record sensitive actions inside the caller's transaction, so action and record stand together."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.audit.models import AuditLog
from veritas.audit.schemas import AuditLogOut
from veritas.auth.models import User
from veritas.core.context import RequestContext
from veritas.pagination import PageParams, newest_first, page

_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")

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


@dataclass(frozen=True)
class TrailFilters:
    """The audit trail's filters (GET /api/admin/audit-logs and its CSV export)."""

    user_id: uuid.UUID | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: _Query) -> _Query:
        for column, value in ((AuditLog.user_id, self.user_id), (AuditLog.action, self.action),
                              (AuditLog.resource_type, self.resource_type),
                              (AuditLog.resource_id, self.resource_id)):
            if value is not None:
                query = query.where(column == value)
        if self.since is not None:
            query = query.where(AuditLog.created_at >= self.since)
        if self.until is not None:
            query = query.where(AuditLog.created_at < self.until)
        return query

    def described(self) -> dict[str, str]:
        """The filters that are set, as the record of a read names them."""
        return {k: str(v) for k, v in vars(self).items() if v is not None}


def _with_actors(filters: TrailFilters) -> Select[AuditLog, str, str]:
    """The filtered trail, each record with its actor's username and email (None when that
    account is gone: a record outlives its user)."""
    return filters.apply(select(AuditLog, User.username, User.email)
                         .outerjoin(User, User.id == AuditLog.user_id))


async def read(
    session: AsyncSession, reader_id: uuid.UUID, paging: PageParams, ctx: RequestContext, *,
    user_id: uuid.UUID | None = None, action: str | None = None,
    resource_type: str | None = None, resource_id: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
) -> dict[str, Any]:
    """A page of the trail, newest first, filtered, each record with its actor's username and
    email; the read itself is recorded."""
    filters = TrailFilters(user_id, action, resource_type, resource_id, since, until)
    rows = (await session.execute(newest_first(
        _with_actors(filters), AuditLog.created_at, AuditLog.id, paging))).tuples().all()
    # Recorded after the read, so this read is not in its own page.
    await record(session, ctx, reader_id, "view_audit_logs", "audit_log", None,
                 {"filters": filters.described()})
    result = page(rows, paging, lambda r: (r[0].created_at, r[0].id))
    result["items"] = [AuditLogOut.model_validate(log).model_copy(
        update={"user_name": name, "user_email": email}) for log, name, email in result["items"]]
    return result


async def record_export(session: AsyncSession, ctx: RequestContext, reader_id: uuid.UUID,
                        filters: TrailFilters) -> None:
    """An export of the trail is a read of it, recorded before the first row is sent."""
    await record(session, ctx, reader_id, "view_audit_logs", "audit_log", None,
                 {"filters": filters.described(), "export": "csv"})


async def export_page(session: AsyncSession, filters: TrailFilters,
                      paging: PageParams) -> dict[str, Any]:
    """A page of the filtered trail, newest first: (record, username, email) rows."""
    rows = (await session.execute(newest_first(
        _with_actors(filters), AuditLog.created_at, AuditLog.id, paging))).tuples().all()
    return page(rows, paging, lambda r: (r[0].created_at, r[0].id))


async def actions(session: AsyncSession) -> list[str]:
    """The distinct actions in the trail, in order: a skip scan of the (action, created_at)
    index, one probe per action, so a long trail costs no more than a short one."""
    rows = await session.execute(text("""
        WITH RECURSIVE found(action) AS (
            (SELECT action FROM audit_logs ORDER BY action LIMIT 1)
            UNION ALL
            SELECT (SELECT a.action FROM audit_logs a WHERE a.action > found.action
                    ORDER BY a.action LIMIT 1)
            FROM found WHERE found.action IS NOT NULL
        )
        SELECT action FROM found WHERE action IS NOT NULL"""))
    return list(rows.scalars().all())
