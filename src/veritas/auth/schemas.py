"""Request and response bodies of the auth endpoints."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from veritas.db.base import Role

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(value: str) -> str:
    value = value.strip().lower()
    if not EMAIL_PATTERN.match(value):
        raise ValueError("not a valid email address")
    return value


Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]
Username = Annotated[str, Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
# The policy (length, common passwords) is checked in the service; this only bounds the body.
Password = Annotated[str, Field(max_length=1024)]


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    username: Username
    password: Password
    role: Role = Role.student
    full_name: Annotated[str | None, Field(max_length=200)] = None
    enrollment_id: Annotated[str | None, Field(max_length=100)] = None
    cohort: Annotated[str | None, Field(max_length=100)] = None


class SetPasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Annotated[str, Field(min_length=1, max_length=200)]
    password: Password


class LoginIn(BaseModel):
    email: Annotated[str | None, Field(max_length=254)] = None
    username: Annotated[str | None, Field(max_length=254)] = None
    password: Password


class RefreshIn(BaseModel):
    refresh_token: Annotated[str, Field(max_length=4096)]


class LogoutIn(BaseModel):
    refresh_token: Annotated[str | None, Field(max_length=4096)] = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    username: str
    role: Role
    full_name: str | None
    is_active: bool
    created_at: datetime


class AdminUserOut(UserOut):
    """A user as the admin's list shows it."""

    last_login: datetime | None


class AdminUserIn(BaseModel):
    """A user an admin creates: the registration body, any role, the password optional (an
    account without one gets a set-password link instead)."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    username: Username
    password: Password | None = None
    role: Role = Role.student
    full_name: Annotated[str | None, Field(max_length=200)] = None
    enrollment_id: Annotated[str | None, Field(max_length=100)] = None
    cohort: Annotated[str | None, Field(max_length=100)] = None


class AdminUserCreated(AdminUserOut):
    """The new user; `setup_link` (and its expiry) only when it was made without a password.
    The link is shown this once: Veritas keeps only a digest of its token."""

    setup_link: str | None = None
    setup_link_expires_at: datetime | None = None


class AdminUserPatch(BaseModel):
    """The fields an admin may change; those left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    full_name: Annotated[str | None, Field(max_length=200)] = None
    email: Email | None = None
    role: Role | None = None

    @model_validator(mode="after")
    def _required_fields_not_null(self) -> AdminUserPatch:
        for name in ("email", "role"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class SetupLinkOut(BaseModel):
    """A one-time set-password link: shown this once, usable once, until `expires_at`."""

    setup_link: str
    expires_at: datetime


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int
