"""Request and response bodies of classes, enrolment and rosters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from veritas.auth.schemas import Email

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Subject = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Term = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
# One request enrols at most this many; a roster file takes more.
MAX_ENROL = 1_000


class ClassIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    subject: Subject | None = None
    term: Term | None = None


class ClassOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    subject: str | None
    term: str | None
    owner_id: uuid.UUID
    created_at: datetime


class ClassListItem(ClassOut):
    student_count: int


class ClassPage(BaseModel):
    items: list[ClassListItem]
    next_cursor: str | None


class ClassStudent(BaseModel):
    id: uuid.UUID
    username: str
    full_name: str | None
    email: str
    enrollment_id: str | None


class ClassDetail(ClassOut):
    students: list[ClassStudent]


class EnrolIn(BaseModel):
    """Existing student accounts, by id or by email (one of the two lists)."""

    model_config = ConfigDict(extra="forbid")

    student_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=MAX_ENROL)] | None = None
    emails: Annotated[list[Email], Field(min_length=1, max_length=MAX_ENROL)] | None = None

    @model_validator(mode="after")
    def _one_list(self) -> EnrolIn:
        if (self.student_ids is None) == (self.emails is None):
            raise ValueError("send either student_ids or emails")
        return self


class EnrolOut(BaseModel):
    enrolled: int = Field(description="students newly enrolled")
    already: int = Field(description="students who were enrolled already")


class RosterError(BaseModel):
    line: int
    message: str


class SetupLink(BaseModel):
    line: int
    user_id: uuid.UUID
    email: str
    username: str
    setup_link: str = Field(description="one-time link to set the account's password")
    expires_at: datetime


class RosterOut(BaseModel):
    created: int = Field(description="student accounts created")
    enrolled: int = Field(description="students newly enrolled, created ones included")
    already: int = Field(description="students on the roster who were enrolled already")
    errors: list[RosterError] = Field(description="lines left out, and why")
    setup_links: list[SetupLink] = Field(
        description="a set-password link for each account created; shown this once")
