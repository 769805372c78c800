"""Admin: users (list, create, edit, lock, unlock, password resets) and the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from veritas.admin import service
from veritas.audit import service as audit
from veritas.audit.schemas import AuditActionsOut, AuditLogOut
from veritas.auth import links
from veritas.auth import service as auth
from veritas.auth.models import User
from veritas.auth.schemas import (
    AdminUserCreated,
    AdminUserIn,
    AdminUserOut,
    AdminUserPatch,
    SetupLinkOut,
)
from veritas.db.base import Role
from veritas.deps import Admin, ContextDep, PageDep, RuntimeDep, SessionDep
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


def _link_url(request: Request, rt: RuntimeDep, token: str) -> str:
    return links.url(rt.settings.public_url or str(request.base_url), token)


@router.post("/users", status_code=201, response_model=AdminUserCreated,
             responses=error_responses(409, 413, 422, s409="email or username already registered",
                                       s422="a weak password, or the body invalid"))
async def create_user(
    body: AdminUserIn, request: Request, session: SessionDep, rt: RuntimeDep, admin: Admin,
    ctx: ContextDep,
) -> AdminUserCreated:
    """A user of any role. Without `password`, the answer carries `setup_link`, a one-time
    link to set one (shown this once; never a password in any answer)."""
    created = await service.create_user(session, rt.settings, admin, body, ctx)
    out = AdminUserCreated.model_validate(created.user)
    if created.link is not None:
        out.setup_link = _link_url(request, rt, created.link.token)
        out.setup_link_expires_at = created.link.expires_at
    return out


@router.patch("/users/{user_id}", response_model=AdminUserOut, responses=error_responses(
    404, 409, 413, s404="no such user",
    s409="the email is taken, or the last active admin would lose the role"))
async def update_user(
    user_id: uuid.UUID, body: AdminUserPatch, session: SessionDep, admin: Admin,
    ctx: ContextDep,
) -> User:
    """Change `full_name`, `email` or `role`. A new role ends the user's sessions at once, in
    every server process (their tokens carry the old role)."""
    return await service.update_user(session, admin, user_id, body, ctx)


@router.post("/users/{user_id}/password-reset", response_model=SetupLinkOut,
             responses=error_responses(404, s404="no such user"))
async def password_reset(
    user_id: uuid.UUID, request: Request, session: SessionDep, rt: RuntimeDep, admin: Admin,
    ctx: ContextDep,
) -> SetupLinkOut:
    """A one-time link, valid 24 hours, to set a new password (`POST /api/auth/set-password`).
    The old password keeps working until the link is used; using it ends the user's sessions.
    A new link replaces the user's unused older ones."""
    link = await service.issue_password_reset(session, admin, user_id, ctx)
    return SetupLinkOut(setup_link=_link_url(request, rt, link.token), expires_at=link.expires_at)


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


@router.get("/audit-logs/actions", response_model=AuditActionsOut)
async def audit_actions(session: SessionDep, admin: Admin) -> AuditActionsOut:
    """Every action the trail holds, sorted: the audit page's filter offers these."""
    return AuditActionsOut(actions=await audit.actions(session))


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
    """Newest first; each record names its actor (`user_name`, `user_email`)."""
    return await audit.read(session, admin.user_id, paging, ctx, user_id=user_id, action=action,
                            resource_type=resource_type, resource_id=resource_id, since=since,
                            until=until)
