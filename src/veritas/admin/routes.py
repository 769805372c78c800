"""Admin: users (list, lock, unlock) and the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, or_, select

from veritas.audit import service as audit
from veritas.audit.models import AuditLog
from veritas.auth import service as auth
from veritas.auth.models import User
from veritas.auth.schemas import UserOut
from veritas.db.base import Role
from veritas.deps import Admin, ContextDep, SessionDep
from veritas.pagination import PageParams, newest_first, page, page_params

router = APIRouter(prefix="/api/admin", tags=["admin"])

Page = Annotated[PageParams, Depends(page_params)]


def _user(user: User) -> dict[str, Any]:
    return UserOut.model_validate(user).model_dump(mode="json") | {
        "last_login": user.last_login.isoformat() if user.last_login else None,
    }


@router.get("/users")
async def list_users(
    session: SessionDep, admin: Admin, ctx: ContextDep, paging: Page,
    role: Role | None = None, is_active: bool | None = None,
    q: Annotated[str | None, Query(max_length=254)] = None,
) -> dict[str, Any]:
    query = select(User)
    if role is not None:
        query = query.where(User.role == role)
    if is_active is not None:
        query = query.where(User.is_active.is_(is_active))
    if q:
        pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(User.email.like(pattern), func.lower(User.username).like(pattern)))
    rows = list((await session.scalars(newest_first(query, User.created_at, User.id, paging))).all())
    result = page(rows, paging, lambda u: (u.created_at, u.id))
    # The page holds students' names and emails: a read of student data, audited like the
    # teacher views, with the students it showed so each one's trail can be found.
    await audit.record(session, ctx, admin.user_id, "view_student_data", "users", None, {
        "view": "admin_users",
        "filters": {k: str(v) for k, v in {"role": role, "is_active": is_active, "q": q}.items()
                    if v is not None},
        "student_ids": [str(u.id) for u in result["items"] if u.role is Role.student],
    })
    result["items"] = [_user(u) for u in result["items"]]
    return result


@router.post("/users/{user_id}/lock")
async def lock_user(
    user_id: uuid.UUID, session: SessionDep, admin: Admin, ctx: ContextDep
) -> dict[str, Any]:
    return _user(await auth.set_active(session, admin, user_id, False, ctx))


@router.post("/users/{user_id}/unlock")
async def unlock_user(
    user_id: uuid.UUID, session: SessionDep, admin: Admin, ctx: ContextDep
) -> dict[str, Any]:
    return _user(await auth.set_active(session, admin, user_id, True, ctx))


@router.get("/audit-logs")
async def audit_logs(
    session: SessionDep, admin: Admin, ctx: ContextDep, paging: Page,
    user_id: uuid.UUID | None = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    resource_type: Annotated[str | None, Query(max_length=100)] = None,
    resource_id: Annotated[str | None, Query(max_length=100)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
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
    rows = list((await session.scalars(
        newest_first(query, AuditLog.created_at, AuditLog.id, paging)
    )).all())
    # Recorded after the read, so this read is not in its own page.
    await audit.record(session, ctx, admin.user_id, "view_audit_logs", "audit_log", None,
                       {"filters": {k: str(v) for k, v in {
                           "user_id": user_id, "action": action, "resource_type": resource_type,
                           "resource_id": resource_id, "since": since, "until": until,
                       }.items() if v is not None}})
    result = page(rows, paging, lambda r: (r.created_at, r.id))
    result["items"] = [
        {"id": r.id, "user_id": r.user_id, "action": r.action, "resource_type": r.resource_type,
         "resource_id": r.resource_id, "details": r.details,
         "ip_address": str(r.ip_address) if r.ip_address else None, "user_agent": r.user_agent,
         "created_at": r.created_at}
        for r in result["items"]
    ]
    return result
