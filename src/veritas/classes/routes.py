"""Classes: create and list them, read one with its students, enrol students by id, by email
or from a roster file, and take one out."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response

from veritas.auth import links
from veritas.classes import queries, roster, schemas, service
from veritas.classes.models import SchoolClass
from veritas.db.unit_of_work import SYSTEM
from veritas.deps import ContextDep, PageDep, RuntimeDep, SessionDep, Staff, unit_of_work
from veritas.errors import TooLarge, UnsupportedMediaType, error_responses
from veritas.pagination import Page

# Every route here needs a teacher's or an admin's token and reads the database.
router = APIRouter(prefix="/api/teacher/classes", tags=["classes"],
                   responses=error_responses(401, 403, 422, 503))

NOT_YOURS = error_responses(404, s404="no such class, or another teacher's")
HAS_BODY = error_responses(413)
HEADER = ",".join(roster.HEADER)
ROSTER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"text/csv": {
            "schema": {"type": "string"},
            "example": f"{HEADER}\nada@school.example,ada.l,Ada Lovelace,S1815\n",
        }},
    }
}


@router.post("", status_code=201, response_model=schemas.ClassOut, responses=HAS_BODY)
async def create_class(
    body: schemas.ClassIn, session: SessionDep, user: Staff, ctx: ContextDep
) -> SchoolClass:
    """A new class, owned by the caller."""
    return await service.create_class(session, user, body, ctx)


@router.get("", response_model=Page[schemas.ClassListItem])
async def list_classes(session: SessionDep, user: Staff, paging: PageDep) -> dict[str, Any]:
    """The caller's classes, newest first (an admin's: every class)."""
    return await queries.list_classes(session, user, paging)


@router.get("/{class_id}", response_model=schemas.ClassDetail, responses=NOT_YOURS)
async def get_class(
    class_id: uuid.UUID, session: SessionDep, user: Staff, ctx: ContextDep
) -> schemas.ClassDetail:
    """The class with its students."""
    return await service.class_detail(session, user, class_id, ctx)


@router.post("/{class_id}/students", response_model=schemas.EnrolOut,
             responses={**NOT_YOURS, **HAS_BODY, **error_responses(
                 422, s422="invalid input, or ids or emails that are not student accounts'"
                           " (named); nobody is enrolled then")})
async def enrol(
    class_id: uuid.UUID, body: schemas.EnrolIn, rt: RuntimeDep, user: Staff, ctx: ContextDep
) -> schemas.EnrolOut:
    """Enrol existing student accounts, by id or by email; enrolling one twice is no error."""
    # The system identity: the accounts looked up are not yet the caller's students. The
    # service checks the class before it writes.
    async with unit_of_work(rt, SYSTEM) as session:
        enrolled, already = await service.enrol(session, user, class_id, body, ctx)
    return schemas.EnrolOut(enrolled=enrolled, already=already)


@router.delete("/{class_id}/students/{student_id}", status_code=204, response_class=Response,
               responses=error_responses(404, s404="no such class, another teacher's, or the"
                                                   " student is not in it"))
async def unenrol(
    class_id: uuid.UUID, student_id: uuid.UUID, session: SessionDep, user: Staff,
    ctx: ContextDep,
) -> Response:
    """Take a student out of the class (their account and attempts stay)."""
    await service.unenrol(session, user, class_id, student_id, ctx)
    return Response(status_code=204)


async def _roster_file(request: Request, limit: int) -> bytes:
    """The body, if it is CSV text and within the limit (read no further than that)."""
    media_type, _, params = request.headers.get("content-type", "").partition(";")
    if media_type.strip().lower() != "text/csv":
        raise UnsupportedMediaType("a roster is sent as text/csv")
    charset = params.strip().lower().removeprefix("charset=").strip('"') if params else ""
    if charset not in ("", "utf-8", "utf8"):
        raise UnsupportedMediaType("a roster is sent as UTF-8 (text/csv; charset=utf-8)")
    too_large = TooLarge(f"a roster file may be at most {limit // 1024} KiB; split it")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/{class_id}/roster", response_model=schemas.RosterOut, openapi_extra=ROSTER_BODY,
             responses={**NOT_YOURS, **error_responses(
                 413, 415, 422, s413="the file is over ROSTER_MAX_BYTES",
                 s415="the body is not text/csv in UTF-8",
                 s422="the file is not a roster (not UTF-8, not CSV, another header, over"
                      " ROSTER_MAX_ROWS rows): nothing imported")})
async def import_roster(
    class_id: uuid.UUID, request: Request, rt: RuntimeDep, user: Staff, ctx: ContextDep
) -> schemas.RosterOut:
    """Import a roster: CSV text whose first line is the header
    `email,username,full_name,enrollment_id` (the columns in any order).

    Students who have no account get one, without a password: each comes back once with a
    one-time set-password link, valid ROSTER_LINK_DAYS days. Everyone on the roster is then
    enrolled. A row is matched to an existing account by its email; a username that is
    another account's, or not that account's, or an account that is not a student's, is an
    error for that line. Lines in error are reported and left out; the others are imported.
    Importing the same file again creates nothing and enrols nobody twice."""
    settings = rt.settings
    data = await _roster_file(request, settings.roster_max_bytes)
    try:
        parsed: Any = roster.parse(data, settings.roster_max_rows)
    except roster.Malformed as exc:
        parsed = exc  # told after the class is checked: a stranger learns nothing of it
    async with unit_of_work(rt, SYSTEM) as session:
        report = await service.import_roster(session, user, class_id, parsed,
                                             timedelta(days=settings.roster_link_days), ctx)
    base = settings.public_url or str(request.base_url)
    return schemas.RosterOut(
        created=report.created, enrolled=report.enrolled, already=report.already,
        errors=[schemas.RosterError(line=e.line, message=e.message) for e in report.errors],
        setup_links=[schemas.SetupLink(line=row.line, user_id=link.user_id, email=row.email,
                                       username=row.username or "",
                                       setup_link=links.url(base, link.token),
                                       expires_at=link.expires_at)
                     for row, link in report.setup_links],
    )
