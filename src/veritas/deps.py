"""FastAPI dependencies: the request's transaction, the caller, request context, a list's page
and the attempt a teacher's view is about."""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, NamedTuple

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.auth import tokens
from veritas.core.context import PENDING_REVOCATIONS, RequestContext
from veritas.db.base import Role
from veritas.db.unit_of_work import ANONYMOUS, SYSTEM, Principal
from veritas.db.unit_of_work import unit_of_work as db_unit_of_work
from veritas.errors import Forbidden, Unauthorized
from veritas.exams.models import Exam, ExamAttempt
from veritas.exams.permissions import ExamRight, require_attempt
from veritas.pagination import DEFAULT_LIMIT, MAX_CURSOR_LENGTH, MAX_LIMIT, PageParams
from veritas.runtime import Runtime

bearer = OAuth2PasswordBearer(tokenUrl="/api/auth/login", auto_error=False)


def runtime(request: Request) -> Runtime:
    app_runtime: Runtime = request.app.state.runtime  # set by create_app's lifespan
    return app_runtime


# Dependencies are coroutines: FastAPI runs a plain `def` dependency in a thread, which costs
# 130-200 µs a request for nothing.
async def _runtime(request: Request) -> Runtime:
    return runtime(request)


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


def unit_of_work(rt: Runtime, caller: Principal) -> AbstractAsyncContextManager[AsyncSession]:
    """The unit of work as `caller`; after its commit, revocations it made reach every process."""

    async def broadcast(session: AsyncSession) -> None:
        # Committed: tell this process at once and the others over the broadcast.
        messages = session.info.pop(PENDING_REVOCATIONS, [])
        if messages:
            rt.revocations.apply(messages)
            await rt.revocations.publish(messages)

    return db_unit_of_work(rt.sessions, caller, after_commit=broadcast)


def client_ip(request: Request) -> str | None:
    """The peer address, or the nearest untrusted X-Forwarded-For hop behind trusted proxies."""
    peer = request.client.host if request.client else None
    networks = runtime(request).settings.trusted_proxy_networks
    if peer is None or not networks:
        return peer

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in networks)

    if not trusted(peer):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return peer


async def _request_context(request: Request) -> RequestContext:
    return request_context(request)


def request_context(request: Request) -> RequestContext:
    return RequestContext(ip=client_ip(request), user_agent=request.headers.get("user-agent"))


ContextDep = Annotated[RequestContext, Depends(_request_context)]


async def authenticate(rt: Runtime, token: str) -> tokens.Claims:
    """The verified, unrevoked claims of an access token whose user still exists, or 401."""
    claims = tokens.decode(rt.settings.signing_key, token, "access")
    await check_claims(rt, claims)
    return claims


async def check_claims(rt: Runtime, claims: tokens.Claims) -> None:
    """401 unless the token is unexpired, unrevoked and its user still exists and is active."""
    if claims.exp <= time.time():
        raise Unauthorized("token expired")
    revocations = rt.revocations
    cut_off = revocations.is_cut_off(claims.jti, claims.user_id)
    # Memory knows revocations and locks; whether the user's row still exists it knows only
    # for users it watches (auth.revocation). Otherwise the record itself answers.
    if cut_off is None or (not cut_off and not revocations.is_present(claims.user_id)):
        async with db_unit_of_work(rt.sessions, SYSTEM) as session:
            row = (
                await session.execute(
                    text(
                        "SELECT u.is_active, t.revoked_at IS NOT NULL AS revoked FROM users u "
                        "LEFT JOIN auth_tokens t ON t.jti = :jti WHERE u.id = :uid"
                    ),
                    {"jti": claims.jti, "uid": claims.user_id},
                )
            ).first()
        cut_off = row is None or not row.is_active or bool(row.revoked)
        if not cut_off:
            revocations.confirm_present(claims.user_id)
    if cut_off:
        raise Unauthorized("token revoked")


async def optional_principal(
    request: Request, token: Annotated[str | None, Depends(bearer)]
) -> tokens.Claims | None:
    """The caller when a bearer token is sent (401 if it is not valid), else None."""
    return await authenticate(runtime(request), token) if token else None


MaybeUser = Annotated[tokens.Claims | None, Depends(optional_principal)]


async def _principal(claims: MaybeUser) -> tokens.Claims:
    if claims is None:
        raise Unauthorized("not authenticated")
    return claims


CurrentUser = Annotated[tokens.Claims, Depends(_principal)]


async def _transaction(request: Request, caller: MaybeUser) -> AsyncIterator[AsyncSession]:
    # FastAPI solves optional_principal once per request, so CurrentUser and the session
    # share one verified caller; without a token the session is anonymous and sees no rows.
    async with unit_of_work(runtime(request), caller or ANONYMOUS) as session:
        yield session


# scope="function": the commit happens before the response is sent, so a 2xx means stored.
SessionDep = Annotated[AsyncSession, Depends(_transaction, scope="function")]


def require_role(*roles: Role) -> Any:  # what Depends() returns
    async def check(user: CurrentUser) -> tokens.Claims:
        if user.role not in roles:
            raise Forbidden(f"requires role {' or '.join(r.value for r in roles)}")
        return user

    return Depends(check)


Student = Annotated[tokens.Claims, require_role(Role.student)]
Staff = Annotated[tokens.Claims, require_role(Role.teacher, Role.admin)]
Admin = Annotated[tokens.Claims, require_role(Role.admin)]


async def _page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH)] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


PageDep = Annotated[PageParams, Depends(_page_params)]


class AttemptAccess(NamedTuple):
    attempt: ExamAttempt
    exam: Exam


def attempt_access(right: ExamRight) -> Any:  # what Depends() returns
    """The path's attempt, of an exam on which the staff caller holds `right`: 404 for an
    unknown attempt, 403 for another teacher's (exams.permissions.require_attempt)."""

    async def load(attempt_id: uuid.UUID, session: SessionDep, user: Staff) -> AttemptAccess:
        return AttemptAccess(*await require_attempt(session, user, attempt_id, right))

    return Depends(load)


# The attempt views (detail, monitoring) need `can_view`; reviews need `can_view_analytics`.
ViewableAttempt = Annotated[AttemptAccess, attempt_access(ExamRight.view)]
ReviewableAttempt = Annotated[AttemptAccess, attempt_access(ExamRight.analytics)]
