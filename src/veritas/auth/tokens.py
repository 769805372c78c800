"""JWT access and refresh tokens: HS256 only, with the claims of the API contract."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from veritas.db.base import Role
from veritas.errors import Unauthorized

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["user_id", "email", "role", "iat", "exp", "jti", "type"]


@dataclass(frozen=True)
class Claims:
    user_id: uuid.UUID
    email: str
    role: Role
    jti: uuid.UUID
    type: str
    iat: int
    exp: int


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: uuid.UUID
    expires_at: int


def issue(
    key: str, *, user_id: uuid.UUID, email: str, role: Role, token_type: str, lifetime_s: int
) -> IssuedToken:
    now = int(time.time())
    jti = uuid.uuid4()
    payload = {
        "user_id": str(user_id),
        "email": email,
        "role": role.value,
        "iat": now,
        "exp": now + lifetime_s,
        "jti": str(jti),
        "type": token_type,
    }
    return IssuedToken(jwt.encode(payload, key, algorithm=ALGORITHM), jti, now + lifetime_s)


# Verified tokens by their exact text: a token is checked once, then only its expiry (and,
# by the caller, its revocation) on later requests. Bounded; cleared when full.
_VERIFIED: dict[tuple[str, str], Claims] = {}
_VERIFIED_MAX = 50_000


def decode(key: str, token: str, expected_type: str) -> Claims:
    """Verify signature, algorithm, expiry and type; any failure is one opaque 401."""
    claims = _VERIFIED.get((key, token))
    if claims is not None and claims.exp > time.time():
        if claims.type != expected_type:
            raise Unauthorized(f"not an {expected_type} token" if expected_type == "access"
                               else f"not a {expected_type} token")
        return claims
    claims = _verify(key, token, expected_type)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[(key, token)] = claims
    return claims


def _verify(key: str, token: str, expected_type: str) -> Claims:
    try:
        payload = jwt.decode(
            token, key, algorithms=[ALGORITHM], options={"require": REQUIRED_CLAIMS}
        )
        claims = Claims(
            user_id=uuid.UUID(payload["user_id"]),
            email=str(payload["email"]),
            role=Role(payload["role"]),
            jti=uuid.UUID(payload["jti"]),
            type=str(payload["type"]),
            iat=int(payload["iat"]),
            exp=int(payload["exp"]),
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    # AttributeError: uuid.UUID() of a non-string claim (a number, say) in a signed token.
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError):
        raise Unauthorized("invalid token") from None
    if claims.type != expected_type:
        raise Unauthorized(f"not an {expected_type} token" if expected_type == "access"
                           else f"not a {expected_type} token")
    return claims
