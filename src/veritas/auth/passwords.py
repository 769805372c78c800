"""Password policy and bcrypt hashing, kept off the event loop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from functools import lru_cache
from importlib import resources

import bcrypt

from veritas.errors import Invalid

MIN_LENGTH = 8
# bcrypt reads 72 bytes at most (bcrypt 5 refuses more), and the hashes are plain bcrypt of the
# UTF-8 password so that they verify anywhere bcrypt does; longer passwords are refused.
MAX_BYTES = 72


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    text = (resources.files("veritas.auth") / "common_passwords.txt").read_text()
    lines = (line.strip().lower() for line in text.splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def check_policy(password: str) -> None:
    """Refuse passwords that are too short, too long or well known."""
    if len(password) < MIN_LENGTH:
        raise Invalid(f"password must be at least {MIN_LENGTH} characters")
    if len(password.encode()) > MAX_BYTES:
        raise Invalid(f"password must be at most {MAX_BYTES} bytes in UTF-8"
                      f" ({MAX_BYTES} plain ASCII characters, fewer with accented letters)")
    if password.lower() in _common_passwords():
        raise Invalid("password is too common; choose one that is not on public lists")


def _hash(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def _legacy_form(password: str) -> bytes:
    # Before plain bcrypt, Veritas hashed base64(SHA-256(password)). Databases written then
    # still hold such hashes; they keep working and are replaced at the next login.
    return base64.b64encode(hashlib.sha256(password.encode()).digest())


def _matches(password: bytes, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password, hashed.encode())
    except ValueError:  # a password over 72 bytes (never stored) or a malformed hash
        return False


def _verify(password: str, hashed: str, rounds: int) -> tuple[bool, str | None]:
    if _matches(password.encode(), hashed):
        return True, None
    # A failure always pays both checks, for unknown users (the dummy hash) too, so the time
    # taken still says nothing about whether the account exists.
    if _matches(_legacy_form(password), hashed):
        return True, _hash(password, rounds)
    return False, None


async def hash_password(password: str, rounds: int) -> str:
    return await asyncio.to_thread(_hash, password, rounds)


async def verify_password(password: str, hashed: str, rounds: int) -> tuple[bool, str | None]:
    """Whether the password matches the hash, and the plain bcrypt hash to store instead when
    it matched a legacy one."""
    return await asyncio.to_thread(_verify, password, hashed, rounds)


@lru_cache(maxsize=4)
def dummy_hash(rounds: int) -> str:
    """A hash to verify against when the user does not exist, so timing reveals nothing."""
    return _hash("no-such-user-password", rounds)
