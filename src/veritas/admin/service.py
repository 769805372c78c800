"""An admin's management of accounts: create users of any role, edit them, change roles, and
issue password-reset links. Each runs in the caller's transaction and is audited there."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.audit import service as audit
from veritas.auth import links
from veritas.auth import service as auth
from veritas.auth.models import User
from veritas.auth.schemas import AdminUserIn, AdminUserPatch
from veritas.auth.tokens import Claims
from veritas.config import Settings
from veritas.core.context import RequestContext
from veritas.db.base import Role
from veritas.errors import Conflict, NotFound

# A reset link names an account that already has a password, so it is short-lived.
RESET_LINK_VALIDITY = timedelta(hours=24)
EMAIL_TAKEN = "email already registered"


@dataclass(frozen=True)
class Created:
    user: User
    link: links.Issued | None  # the set-password link, when the account has no password


async def create_user(
    session: AsyncSession, settings: Settings, actor: Claims, body: AdminUserIn,
    ctx: RequestContext,
) -> Created:
    """A user of any role; without a password the account gets a one-time set-password link,
    valid ROSTER_LINK_DAYS like the links of accounts made from a class roster."""
    user = await auth.create_user(session, settings, body)
    link = None
    if body.password is None:
        [link] = await links.issue(session, [user.id], links.Purpose.setup,
                                   timedelta(days=settings.roster_link_days), actor.user_id)
    details: dict[str, object] = {"role": user.role.value, "email": user.email,
                                  "username": user.username, "with_password": link is None}
    if link is not None:
        details["setup_link_expires_at"] = link.expires_at.isoformat()
    await audit.record(session, ctx, actor.user_id, "create_user", "user", user.id, details)
    await session.refresh(user)
    return Created(user, link)


async def update_user(
    session: AsyncSession, actor: Claims, user_id: uuid.UUID, patch: AdminUserPatch,
    ctx: RequestContext,
) -> User:
    """Change a user's name, email or role. A new role ends every session the user has (their
    tokens carry the old one); the last active admin cannot stop being one."""
    new_role = patch.role if "role" in patch.model_fields_set else None
    if new_role is not None:
        # Lock the user and every active admin, in one order, so two admins demoting each
        # other at once cannot both succeed (nor deadlock): the second sees the first's result.
        await session.execute(
            select(User.id)
            .where(or_(User.id == user_id, and_(User.role == Role.admin, User.is_active)))
            .order_by(User.id).with_for_update())
    user = await session.get(User, user_id, with_for_update=True, populate_existing=True)
    if user is None:
        raise NotFound("user not found")
    changed: dict[str, dict[str, str | None]] = {}
    if "full_name" in patch.model_fields_set and patch.full_name != user.full_name:
        changed["full_name"] = {"from": user.full_name, "to": patch.full_name}
        user.full_name = patch.full_name
    if patch.email is not None and patch.email != user.email:
        taken = await session.scalar(
            select(User.id).where(User.email == patch.email, User.id != user.id))
        if taken:
            raise Conflict(EMAIL_TAKEN)
        changed["email"] = {"from": user.email, "to": patch.email}
        user.email = patch.email
    old_role = user.role
    if new_role is not None and new_role is not old_role:
        if old_role is Role.admin and user.is_active:
            others = await session.scalar(
                select(User.id).where(User.role == Role.admin, User.is_active,
                                      User.id != user.id).limit(1))
            if others is None:
                raise Conflict("the last active admin cannot change their role")
        changed["role"] = {"from": old_role.value, "to": new_role.value}
        user.role = new_role
    if not changed:
        return user
    try:
        await session.flush()
    except IntegrityError:  # a concurrent registration took the email meanwhile
        raise Conflict(EMAIL_TAKEN) from None
    await audit.record(session, ctx, actor.user_id, "update_user", "user", user.id,
                       {"changed": changed})
    if "role" in changed:
        # The profile the new role works with (the old one stays, with its history).
        await auth.ensure_profile(session, user)
        await auth.end_sessions(session, [user.id])
        await audit.record(session, ctx, actor.user_id, "change_role", "user", user.id,
                           {"from": old_role.value, "to": new_role.value if new_role else None})
    await session.refresh(user)
    return user


async def issue_password_reset(
    session: AsyncSession, actor: Claims, user_id: uuid.UUID, ctx: RequestContext
) -> links.Issued:
    """A one-time link, valid 24 hours, to set a new password. The old password keeps
    working until the link is used; a new link replaces the user's unused older ones."""
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound("user not found")
    await links.retire_all(session, user.id)
    [link] = await links.issue(session, [user.id], links.Purpose.reset, RESET_LINK_VALIDITY,
                               actor.user_id)
    await audit.record(session, ctx, actor.user_id, "password_reset_issued", "user", user.id,
                       {"expires_at": link.expires_at.isoformat()})
    return link
