"""Admin: users (list, lock, unlock) and the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from veritas.audit import service as audit
from veritas.audit.schemas import AuditLogOut
from veritas.auth import service as auth
from veritas.auth.models import User
from veritas.auth.schemas import AdminUserOut
from veritas.db.base import Role
from veritas.deps import Admin, ContextDep, PageDep, SessionDep
from veritas.errors import error_responses
from veritas.pagination import Page

# Non-admins get 403 on every path here.
router = APIRouter(prefix="/api/admin", tags=["admin"],
                   responses=error_responses(401, 403, 422, 503))

USER_STATE = error_responses(404, 409, s404="no such user",
                             s409="an admin cannot lock their own account")


@router.get("/users", response_model=Page[AdminUserOut])
async def list_users(
    session: SessionDep, admin: Admin, ctx: ContextDep, paging: PageDep,
    role: Role | None = None, is_active: bool | None = None,
    q: Annotated[str | None, Query(max_length=254)] = None,
) -> dict[str, Any]:
    return await auth.list_users(session, admin, paging, ctx, role, is_active, q)


@router.post("/users/{user_id}/lock", response_model=AdminUserOut, responses=USER_STATE)
async def lock_user(
    user_id: uuid.UUID, session: SessionDep, admin: Admin, ctx: ContextDep
) -> User:
    return await auth.set_active(session, admin, user_id, False, ctx)


@router.post("/users/{user_id}/unlock", response_model=AdminUserOut,
             responses=error_responses(404, s404="no such user"))
async def unlock_user(
    user_id: uuid.UUID, session: SessionDep, admin: Admin, ctx: ContextDep
) -> User:
    return await auth.set_active(session, admin, user_id, True, ctx)


@router.get("/audit-logs", response_model=Page[AuditLogOut])
async def audit_logs(
    session: SessionDep, admin: Admin, ctx: ContextDep, paging: PageDep,
    user_id: uuid.UUID | None = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    resource_type: Annotated[str | None, Query(max_length=100)] = None,
    resource_id: Annotated[str | None, Query(max_length=100)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Newest first."""
    return await audit.read(session, admin.user_id, paging, ctx, user_id=user_id, action=action,
                            resource_type=resource_type, resource_id=resource_id, since=since,
                            until=until)
