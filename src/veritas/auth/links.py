"""One-time set-password links: made for a new account or a reset, used once, expiring.

The token is 32 random bytes and leaves the server once, in the answer to whoever made the
link; the database keeps only its SHA-256, so a copy of the database opens no account. It
rides in the link's fragment (after `#`), which browsers never send to a server, so no
access log or proxy sees it either. A link dies when it is used, when it expires, and when
any other link of the same account is used.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.auth.models import PasswordLink

TOKEN_BYTES = 32


class Purpose(str, enum.Enum):
    setup = "setup"  # an account made without a password (a class roster)
    reset = "reset"  # an existing account whose password an admin resets


@dataclass(frozen=True)
class Issued:
    user_id: uuid.UUID
    token: str
    expires_at: datetime


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def url(base_url: str, token: str) -> str:
    """The link a user opens: the sign-in page's set-password form, token in the fragment."""
    return f"{base_url.rstrip('/')}/#/set-password?token={token}"


async def issue(
    session: AsyncSession, user_ids: list[uuid.UUID], purpose: Purpose, valid_for: timedelta,
    created_by: uuid.UUID | None,
) -> list[Issued]:
    """A new link for each user, valid for `valid_for` from now."""
    if not user_ids:
        return []
    expires_at = datetime.now(UTC) + valid_for
    issued = [Issued(u, secrets.token_urlsafe(TOKEN_BYTES), expires_at) for u in user_ids]
    await session.execute(insert(PasswordLink), [
        {"user_id": i.user_id, "token_hash": _digest(i.token), "purpose": purpose.value,
         "created_by": created_by, "expires_at": expires_at}
        for i in issued
    ])
    return issued


async def is_usable(session: AsyncSession, token: str) -> bool:
    """Whether the token opens an unused, unexpired link (a cheap look before hashing a
    password for it)."""
    found = await session.scalar(
        select(PasswordLink.id).where(PasswordLink.token_hash == _digest(token),
                                      PasswordLink.used_at.is_(None),
                                      PasswordLink.expires_at > func.now()))
    return found is not None


async def use(session: AsyncSession, token: str) -> PasswordLink | None:
    """Use the link up, or None when it is unknown, used or expired. One statement, so of two
    requests racing with the same token exactly one gets the link."""
    return await session.scalar(
        update(PasswordLink)
        .where(PasswordLink.token_hash == _digest(token), PasswordLink.used_at.is_(None),
               PasswordLink.expires_at > func.now())
        .values(used_at=func.now())
        .returning(PasswordLink))


async def retire_all(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Every unused link of the user dies (their password was just set)."""
    await session.execute(
        update(PasswordLink)
        .where(PasswordLink.user_id == user_id, PasswordLink.used_at.is_(None))
        .values(used_at=func.now()))
