"""POST /api/auth/register, login, refresh, logout, set-password; GET /api/auth/me."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from veritas.auth import links, passwords, service, throttle
from veritas.auth.models import User
from veritas.auth.schemas import (
    LoginIn,
    LogoutIn,
    RefreshIn,
    RegisterIn,
    SetPasswordIn,
    TokenPair,
    UserOut,
)
from veritas.db.base import Role
from veritas.db.unit_of_work import SYSTEM
from veritas.deps import (
    ContextDep,
    CurrentUser,
    MaybeUser,
    RuntimeDep,
    SessionDep,
    unit_of_work,
)
from veritas.errors import (
    BadRequest,
    Forbidden,
    Invalid,
    RateLimited,
    Unauthorized,
    UnsupportedMediaType,
    error_responses,
)

router = APIRouter(prefix="/api/auth", tags=["auth"], responses=error_responses(422, 503))


@router.post("/register", status_code=201, response_model=UserOut, responses=error_responses(
    401, 403, 409, 413, 429, s401="a token was sent and is not valid",
    s403="only an admin's token registers a teacher or an admin",
    s409="email or username already registered",
    s422="invalid input, or a weak password",
    s429="too many registrations from this address; retry after Retry-After seconds"))
async def register(body: RegisterIn, rt: RuntimeDep, ctx: ContextDep, actor: MaybeUser) -> User:
    if actor is None or actor.role is not Role.admin:
        # Counted in its own transaction, so refused registrations (409, 422) count too.
        async with unit_of_work(rt, SYSTEM) as counting:
            retry_after = await service.reserve_registration(counting, rt.settings,
                                                             rt.throttle, ctx)
        if retry_after:
            raise RateLimited("too many registrations from this address; try again later",
                              retry_after)
    # The system identity: whether an email is taken is a question about every account.
    # The actor (an admin registering staff) is checked by the service and audited.
    async with unit_of_work(rt, SYSTEM) as session:
        return await service.register(session, rt.settings, body, ctx, actor)


LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginIn.model_json_schema()},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
                }
            },
        },
    }
}


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _login_body(request: Request) -> LoginIn:
    # Only JSON as application/json (which a cross-site page cannot send without a CORS
    # preflight) or the OAuth2 password form; text/plain and multipart are refused.
    media_type = _media_type(request)
    try:
        if media_type == "application/x-www-form-urlencoded":
            form = await request.form()
            data = {k: v for k, v in form.items() if k in ("username", "password")}
        elif media_type == "application/json":
            data = await request.json()
        else:
            raise UnsupportedMediaType(
                "login takes application/json or an application/x-www-form-urlencoded form")
        body = LoginIn.model_validate(data)
    except ValidationError as exc:
        raise Invalid("login needs email or username, and password") from exc
    except ValueError:
        raise Invalid("body must be JSON or an OAuth2 password form") from None
    if not (body.email or body.username):
        raise Invalid("login needs email or username, and password")
    return body


@router.post("/login", response_model=TokenPair, openapi_extra=LOGIN_BODY,
             responses=error_responses(
                 401, 403, 413, 415, 422, 429, s401="wrong credentials",
                 s403="the account is locked or inactive",
                 s415="neither JSON nor the OAuth2 password form",
                 s422="no email or username, or no password",
                 s429="too many failed logins; retry after Retry-After seconds"))
async def login(request: Request, rt: RuntimeDep, ctx: ContextDep) -> TokenPair:
    body = await _login_body(request)
    identifier = body.email or body.username or ""
    settings = rt.settings
    fingerprint = throttle.login_fingerprint(settings, identifier)
    # The attempt is reserved and committed before the slow password check, which runs
    # between two short transactions holding no connection; the failure stays counted
    # unless the password was right.
    async with unit_of_work(rt, SYSTEM) as session:
        user = await service.find_login_user(session, identifier)
        keys = throttle.login_keys(fingerprint, ctx.ip)
        retry_after = await service.reserve_login(session, settings, rt.throttle, keys, ctx,
                                                  user, fingerprint)
    if retry_after:
        raise RateLimited("too many failed logins; try again later", retry_after)
    # An unknown account, and one whose password was never set (made from a class roster),
    # pay the same check against a dummy hash and fail alike.
    stored = user.password_hash if user is not None else None
    hashed = stored if stored is not None else passwords.dummy_hash(settings.bcrypt_rounds)
    password_ok, upgraded_hash = await passwords.verify_password(
        body.password, hashed, settings.bcrypt_rounds)
    password_ok = password_ok and stored is not None
    async with unit_of_work(rt, SYSTEM) as session:
        outcome = await service.finish_login(session, settings, rt.throttle, keys, user,
                                             password_ok, fingerprint, ctx,
                                             upgraded_hash=upgraded_hash)
    if outcome is service.LoginOutcome.invalid:
        raise Unauthorized(service.INVALID_CREDENTIALS)
    if outcome is service.LoginOutcome.inactive:
        raise Forbidden("account is locked or inactive")
    return outcome


@router.post("/refresh", response_model=TokenPair, responses=error_responses(
    401, 413, s401="an invalid, expired, revoked or already used refresh token"))
async def refresh(body: RefreshIn, rt: RuntimeDep, ctx: ContextDep) -> TokenPair:
    # A reused token revokes its family, which must be committed despite the 401.
    async with unit_of_work(rt, SYSTEM) as session:
        pair = await service.refresh(session, rt.settings, body.refresh_token, ctx)
    if pair is None:
        raise Unauthorized("refresh token already used")
    return pair


@router.post("/logout", status_code=204, response_class=Response,
             responses=error_responses(401, 413))
async def logout(
    session: SessionDep, rt: RuntimeDep, user: CurrentUser, ctx: ContextDep,
    body: LogoutIn | None = None,
) -> Response:
    await service.logout(session, rt.settings, user, body.refresh_token if body else None, ctx)
    return Response(status_code=204)


@router.post("/set-password", status_code=204, response_class=Response,
             responses=error_responses(
                 400, 413, 422, s400="the link is unknown, used already or expired",
                 s422="the password is too weak (as for registration), or the body invalid"))
async def set_password(body: SetPasswordIn, rt: RuntimeDep, ctx: ContextDep) -> Response:
    """Set a password with the token of a one-time set-password link; the link is used up,
    the account's other links die, and its signed-in sessions end."""
    passwords.check_policy(body.password)
    # The token is looked at before the slow hash, so junk tokens cost no bcrypt; it is used
    # up afterwards, in one statement, which a racing request with the same token loses.
    async with unit_of_work(rt, SYSTEM) as session:
        usable = await links.is_usable(session, body.token)
    if not usable:
        raise BadRequest("this set-password link is unknown, used already or expired")
    hashed = await passwords.hash_password(body.password, rt.settings.bcrypt_rounds)
    async with unit_of_work(rt, SYSTEM) as session:
        await service.set_password(session, body.token, hashed, ctx)
    return Response(status_code=204)


@router.get("/me", response_model=UserOut, responses=error_responses(401))
async def me(session: SessionDep, user: CurrentUser) -> User:
    return await service.current_user(session, user)
