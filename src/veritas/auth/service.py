"""Registration, login, token rotation, logout, and cutting users off."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.audit import service as audit
from veritas.auth import links, passwords, throttle, tokens
from veritas.auth.models import (
    AuthToken,
    PerformanceMetrics,
    StudentProfile,
    TeacherProfile,
    User,
)
from veritas.auth.revocation import lock_message, revoke_message, unlock_message
from veritas.auth.schemas import AdminUserIn, RegisterIn, TokenPair
from veritas.config import Settings
from veritas.core.channels import REVOCATION_CHANNEL
from veritas.core.context import PENDING_REVOCATIONS, RequestContext
from veritas.db.base import Role
from veritas.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from veritas.pagination import PageParams, newest_first, page

INVALID_CREDENTIALS = "invalid credentials"


async def _announce(session: AsyncSession, messages: list[str]) -> None:
    """NOTIFY inside the transaction (delivered only on commit) and queue the local update."""
    for message in messages:
        await session.execute(text("SELECT pg_notify(:ch, :msg)"),
                              {"ch": REVOCATION_CHANNEL, "msg": message})
    session.info.setdefault(PENDING_REVOCATIONS, []).extend(messages)


async def register(
    session: AsyncSession, settings: Settings, body: RegisterIn, ctx: RequestContext,
    actor: tokens.Claims | None,
) -> User:
    if body.role is not Role.student and (actor is None or actor.role is not Role.admin):
        raise Forbidden("only an admin can create teacher or admin accounts")
    user = await create_user(session, settings, body)
    await audit.record(session, ctx, actor.user_id if actor else user.id, "register", "user",
                       user.id, {"role": user.role.value})
    await session.refresh(user)
    return user


async def create_user(
    session: AsyncSession, settings: Settings, body: RegisterIn | AdminUserIn, *,
    verified: bool = False,
) -> User:
    """Write a new account and its profile; the caller decides who may, and records it. An
    account made without a password has none until its owner sets one through a link."""
    if body.password is not None:
        passwords.check_policy(body.password)
    taken = await session.scalar(
        select(User.id).where(
            (User.email == body.email) | (func.lower(User.username) == body.username.lower())
        )
    )
    if taken:
        raise Conflict("email or username already registered")
    user = User(
        email=body.email,
        username=body.username,
        password_hash=(await passwords.hash_password(body.password, settings.bcrypt_rounds)
                       if body.password is not None else None),
        role=body.role,
        full_name=body.full_name,
        is_verified=verified,
        metadata_={},
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent registration won the race
        raise Conflict("email or username already registered") from None
    await create_profile(session, user, body.enrollment_id, body.cohort)
    return user


async def create_profile(
    session: AsyncSession, user: User, enrollment_id: str | None = None, cohort: str | None = None
) -> None:
    if user.role is Role.student:
        session.add(StudentProfile(user_id=user.id, enrollment_id=enrollment_id, cohort=cohort))
        session.add(PerformanceMetrics(student_id=user.id))
    elif user.role is Role.teacher:
        session.add(TeacherProfile(user_id=user.id))
    await session.flush()


@dataclass(frozen=True)
class NewStudent:
    email: str  # lower case
    username: str
    full_name: str | None
    enrollment_id: str | None


async def create_students_without_password(
    session: AsyncSession, students: list[NewStudent], chunk: int = 1_000
) -> dict[str, uuid.UUID]:
    """Create student accounts that have no password yet (whoever creates them hands out
    set-password links), with their profiles, in bulk. An account whose email or username
    turns out to be taken (a registration that won a race) is skipped: the ids returned, by
    email, are of the accounts created."""
    created: dict[str, uuid.UUID] = {}
    for start in range(0, len(students), chunk):
        part = students[start:start + chunk]
        rows = await session.execute(
            pg_insert(User)
            .values([{"email": s.email, "username": s.username, "full_name": s.full_name,
                      "role": Role.student} for s in part])
            .on_conflict_do_nothing()
            .returning(User.email, User.id))
        created.update(rows.tuples().all())
    made = [s for s in students if s.email in created]
    if made:
        # What create_profile gives every student, for many at once.
        await session.execute(insert(StudentProfile), [
            {"user_id": created[s.email], "enrollment_id": s.enrollment_id} for s in made])
        await session.execute(insert(PerformanceMetrics), [
            {"student_id": created[s.email]} for s in made])
    return created


async def ensure_profile(session: AsyncSession, user: User) -> None:
    """The profile rows the user's role works with, unless they exist (a role given back)."""
    if user.role is Role.student:
        await session.execute(pg_insert(StudentProfile).values(user_id=user.id)
                              .on_conflict_do_nothing(index_elements=["user_id"]))
        await session.execute(pg_insert(PerformanceMetrics).values(student_id=user.id)
                              .on_conflict_do_nothing(index_elements=["student_id"]))
    elif user.role is Role.teacher:
        await session.execute(pg_insert(TeacherProfile).values(user_id=user.id)
                              .on_conflict_do_nothing(index_elements=["user_id"]))


async def end_sessions(session: AsyncSession, user_ids: list[uuid.UUID]) -> None:
    """Revoke the users' live tokens, in every server process once the transaction commits."""
    await _announce(session, await _revoke_live_tokens(session, user_ids))


async def find_login_user(session: AsyncSession, identifier: str) -> User | None:
    identifier = identifier.strip()
    if "@" in identifier:
        return await session.scalar(select(User).where(User.email == identifier.lower()))
    return await session.scalar(select(User).where(func.lower(User.username) == identifier.lower()))


async def reserve_login(
    session: AsyncSession, settings: Settings, counters: throttle.Counters,
    keys: throttle.LoginKeys, ctx: RequestContext, user: User | None, fingerprint: str,
) -> int:
    """Reserve this attempt's failure before the password is checked: 0, or the seconds to
    wait (the throttled attempt is audited, and the same for unknown and existing accounts)."""
    wait = await counters.reserve(session, throttle.budgets(settings, keys),
                                  settings.login_failure_reset_seconds)
    if wait:
        await audit.record(session, ctx, user.id if user else None, "login_rate_limited",
                           "user", user.id if user else None, {"login_hash": fingerprint})
    return wait


async def reserve_registration(
    session: AsyncSession, settings: Settings, counters: throttle.Counters, ctx: RequestContext,
) -> int:
    """Count a self-registration from the caller's address: 0, or the seconds to wait."""
    if not ctx.ip:
        return 0
    wait = await counters.hit(session, f"register:{throttle.client_key(ctx.ip)}", settings.register_max_per_ip,
                              settings.register_window_seconds)
    if wait:
        await audit.record(session, ctx, None, "register_rate_limited", "user")
    return wait


class LoginOutcome(enum.Enum):
    invalid = "invalid"
    inactive = "inactive"


async def finish_login(
    session: AsyncSession, settings: Settings, counters: throttle.Counters,
    keys: throttle.LoginKeys, user: User | None, password_ok: bool, fingerprint: str,
    ctx: RequestContext, *, upgraded_hash: str | None = None,
) -> TokenPair | LoginOutcome:
    """Record the outcome of a password check and, when it passed, issue tokens (and store
    `upgraded_hash`, the current form of a password that matched a legacy hash)."""
    if user is None or not password_ok:
        # The failure was counted when the attempt was reserved; only the record is left.
        await audit.record(session, ctx, user.id if user else None, "login_failed", "user",
                           user.id if user else None, {"login_hash": fingerprint})
        return LoginOutcome.invalid
    fresh = await session.get(User, user.id, with_for_update=True)
    if fresh is None or not fresh.is_active:
        await audit.record(session, ctx, user.id, "login_denied_inactive", "user", user.id)
        return LoginOutcome.inactive
    await counters.succeeded(session, keys)
    fresh.last_login = datetime.now(UTC)
    fresh.last_login_ip = ctx.ip
    if upgraded_hash is not None:
        fresh.password_hash = upgraded_hash
    pair = await issue_pair(session, settings, fresh)
    await audit.record(session, ctx, fresh.id, "login", "user", fresh.id)
    return pair


async def issue_pair(
    session: AsyncSession, settings: Settings, user: User, family_id: uuid.UUID | None = None
) -> TokenPair:
    family_id = family_id or uuid.uuid4()
    key = settings.signing_key
    access = tokens.issue(key, user_id=user.id, email=user.email, role=user.role,
                          token_type="access", lifetime_s=settings.access_token_minutes * 60)
    refresh = tokens.issue(key, user_id=user.id, email=user.email, role=user.role,
                           token_type="refresh", lifetime_s=settings.refresh_token_days * 86400)
    for issued, kind in ((access, "access"), (refresh, "refresh")):
        session.add(AuthToken(jti=issued.jti, user_id=user.id, token_type=kind,
                              family_id=family_id,
                              expires_at=datetime.fromtimestamp(issued.expires_at, UTC)))
    await session.flush()
    return TokenPair(access_token=access.token, refresh_token=refresh.token,
                     expires_in=settings.access_token_minutes * 60)


async def refresh(
    session: AsyncSession, settings: Settings, refresh_token: str, ctx: RequestContext
) -> TokenPair | None:
    """Rotate a refresh token; None when a used one came back (its family is then revoked)."""
    claims = tokens.decode(settings.signing_key, refresh_token, "refresh")
    row = await session.scalar(
        select(AuthToken).where(AuthToken.jti == claims.jti).with_for_update()
    )
    if row is None:
        raise Unauthorized("invalid token")
    if row.revoked_at is not None:
        # A used refresh token came back: someone holds a copy. End the whole session family.
        await revoke_family(session, row.family_id)
        await audit.record(session, ctx, row.user_id, "refresh_reuse_detected", "user",
                           row.user_id)
        return None
    user = await session.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("token revoked")
    row.revoked_at = datetime.now(UTC)
    await _announce(session, [revoke_message(row.jti, row.expires_at.timestamp())])
    pair = await issue_pair(session, settings, user, row.family_id)
    await audit.record(session, ctx, user.id, "token_refresh", "user", user.id)
    return pair


async def revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    result = await session.execute(
        update(AuthToken)
        .where(AuthToken.family_id == family_id, AuthToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(AuthToken.jti, AuthToken.expires_at)
    )
    await _announce(session, [revoke_message(j, e.timestamp()) for j, e in result.all()])


async def logout(
    session: AsyncSession, settings: Settings, access: tokens.Claims, refresh_token: str | None,
    ctx: RequestContext,
) -> None:
    """Revoke the access token always, and the refresh token if it is valid and the caller's.

    A refresh token that is expired, forged or someone else's changes nothing: logging out
    must not fail halfway, nor let a caller end another user's session."""
    jtis = [access.jti]
    if refresh_token:
        try:
            claims = tokens.decode(settings.signing_key, refresh_token, "refresh")
        except Unauthorized:
            claims = None
        if claims is not None and claims.user_id == access.user_id:
            jtis.append(claims.jti)
    result = await session.execute(
        update(AuthToken)
        .where(AuthToken.jti.in_(jtis), AuthToken.user_id == access.user_id,
               AuthToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(AuthToken.jti, AuthToken.expires_at)
    )
    messages = [revoke_message(j, e.timestamp()) for j, e in result.all()]
    if access.jti not in {uuid.UUID(m.split(":")[1]) for m in messages}:
        messages.append(revoke_message(access.jti, access.exp))
    await _announce(session, messages)
    await audit.record(session, ctx, access.user_id, "logout", "user", access.user_id)


async def replace_passwords(
    session: AsyncSession, user_ids: list[uuid.UUID], password_hash: str
) -> None:
    """Give these users a new password hash and end every session they have: a token issued
    under the old password must not outlive it."""
    if not user_ids:
        return
    await session.execute(update(User).where(User.id.in_(user_ids))
                          .values(password_hash=password_hash))
    await _announce(session, await _revoke_live_tokens(session, user_ids))


async def _revoke_live_tokens(session: AsyncSession, user_ids: list[uuid.UUID]) -> list[str]:
    """Revoke the users' unexpired tokens; the messages that tell every process."""
    result = await session.execute(
        update(AuthToken)
        .where(AuthToken.user_id.in_(user_ids), AuthToken.revoked_at.is_(None),
               AuthToken.expires_at > func.now())
        .values(revoked_at=func.now())
        .returning(AuthToken.jti, AuthToken.expires_at)
    )
    return [revoke_message(j, e.timestamp()) for j, e in result.all()]


async def set_password(
    session: AsyncSession, token: str, password_hash: str, ctx: RequestContext
) -> None:
    """Set the password of the account a set-password link names, using the link up.

    The account's other unused links die with it, and its signed-in sessions end: a reset
    means the old password may be known to someone else."""
    link = await links.use(session, token)
    if link is None:
        raise BadRequest("this set-password link is unknown, used already or expired")
    if await session.get(User, link.user_id, with_for_update=True) is None:
        raise BadRequest("this set-password link is unknown, used already or expired")
    await links.retire_all(session, link.user_id)
    await replace_passwords(session, [link.user_id], password_hash)
    await audit.record(session, ctx, link.user_id, "set_password", "user", link.user_id,
                       {"link_id": str(link.id), "purpose": link.purpose})


async def current_user(session: AsyncSession, caller: tokens.Claims) -> User:
    """The caller's own record; 401 if it is gone (deleted since the token was checked)."""
    row = await session.get(User, caller.user_id)
    if row is None:
        raise Unauthorized("user no longer exists")
    return row


async def set_active(
    session: AsyncSession, actor: tokens.Claims, user_id: uuid.UUID, active: bool,
    ctx: RequestContext,
) -> User:
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound("user not found")
    if user.id == actor.user_id and not active:
        raise Conflict("admins cannot lock their own account")
    user.is_active = active
    if active:
        messages = [unlock_message(user.id)]
    else:
        # Locking also kills every live token, so an unlock does not bring old ones back.
        messages = [lock_message(user.id), *await _revoke_live_tokens(session, [user.id])]
    await _announce(session, messages)
    await audit.record(session, ctx, actor.user_id, "unlock_user" if active else "lock_user",
                       "user", user.id)
    await session.flush()
    await session.refresh(user)
    return user


async def list_users(
    session: AsyncSession, admin: tokens.Claims, paging: PageParams, ctx: RequestContext,
    role: Role | None, is_active: bool | None, q: str | None,
) -> dict[str, Any]:
    """A page of users, newest first; `q` matches email or username (case-insensitively)."""
    query = select(User)
    if role is not None:
        query = query.where(User.role == role)
    if is_active is not None:
        query = query.where(User.is_active.is_(is_active))
    if q:
        pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(User.email.like(pattern), func.lower(User.username).like(pattern)))
    rows = (await session.scalars(newest_first(query, User.created_at, User.id, paging))).all()
    result = page(rows, paging, lambda u: (u.created_at, u.id))
    # The page holds students' names and emails: a read of student data, audited like the
    # teacher views, with the students it showed so each one's trail can be found.
    await audit.record(session, ctx, admin.user_id, "view_student_data", "users", None, {
        "view": "admin_users",
        "filters": {k: str(v) for k, v in {"role": role, "is_active": is_active, "q": q}.items()
                    if v is not None},
        "student_ids": [str(u.id) for u in result["items"] if u.role is Role.student],
    })
    return result
