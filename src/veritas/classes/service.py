"""Classes and their students: create, enrol, unenrol, import a roster, assign exams.

Enrolment and roster imports run as the system identity (the route opens that transaction):
whether an account with some email exists is a question about every account, which a
teacher's own session may not read. The class is therefore checked here, in the same
transaction, before anything is written; every action is audited under its real caller.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, func, insert, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.audit import service as audit
from veritas.auth import links
from veritas.auth import service as accounts
from veritas.auth.models import User
from veritas.auth.tokens import Claims
from veritas.classes import queries, roster, schemas
from veritas.classes.models import ClassEnrolment, ExamClass, SchoolClass
from veritas.classes.queries import require_class
from veritas.core.context import RequestContext
from veritas.db.base import Role
from veritas.errors import Forbidden, Invalid, NotFound

# Serializes roster imports across the installation: two imports naming the same new student
# (one file sent twice at once, or to two classes) must not both create the account, nor
# deadlock on each other's half-made rows. An import takes well under a second.
ROSTER_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('veritas_roster_import'))")


def _listed(values: list[str], shown: int = 20) -> str:
    more = len(values) - shown
    return ", ".join(values[:shown]) + (f" and {more} more" if more > 0 else "")


async def create_class(
    session: AsyncSession, user: Claims, body: schemas.ClassIn, ctx: RequestContext
) -> SchoolClass:
    klass = SchoolClass(owner_id=user.user_id, **body.model_dump())
    session.add(klass)
    await session.flush()
    await session.refresh(klass)
    await audit.record(session, ctx, user.user_id, "create_class", "class", klass.id,
                       {"name": klass.name})
    return klass


async def class_detail(
    session: AsyncSession, user: Claims, class_id: uuid.UUID, ctx: RequestContext
) -> schemas.ClassDetail:
    """The class with its students; reading their names and emails is audited like the other
    reads of student data."""
    klass = await require_class(session, user, class_id)
    students = await queries.students(session, class_id)
    await audit.record(session, ctx, user.user_id, "view_student_data", "class", class_id, {
        "view": "class", "student_ids": [str(s["id"]) for s in students]})
    return schemas.ClassDetail(**schemas.ClassOut.model_validate(klass).model_dump(),
                               students=[schemas.ClassStudent(**s) for s in students])


async def _enrol(
    session: AsyncSession, class_id: uuid.UUID, student_ids: list[uuid.UUID], by: uuid.UUID
) -> list[uuid.UUID]:
    """Enrol the students; the ids of those who were not enrolled before."""
    if not student_ids:
        return []
    rows = await session.execute(
        pg_insert(ClassEnrolment)
        .values([{"class_id": class_id, "student_id": s, "enrolled_by": by}
                 for s in student_ids])
        .on_conflict_do_nothing()
        .returning(ClassEnrolment.student_id))
    return list(rows.scalars())


async def enrol(
    session: AsyncSession, user: Claims, class_id: uuid.UUID, body: schemas.EnrolIn,
    ctx: RequestContext,
) -> tuple[int, int]:
    """Enrol existing student accounts: (newly enrolled, enrolled already). One that does not
    exist or is not a student's makes the request a 422 naming it, and nothing is enrolled."""
    await require_class(session, user, class_id)
    if body.student_ids is not None:
        wanted_ids = list(dict.fromkeys(body.student_ids))
        found = set(await session.scalars(
            select(User.id).where(User.id.in_(wanted_ids), User.role == Role.student)))
        unknown = [str(i) for i in wanted_ids if i not in found]
        ids = [i for i in wanted_ids if i in found]
        what = "ids"
    else:
        wanted = list(dict.fromkeys(body.emails or []))
        by_email = dict((await session.execute(
            select(User.email, User.id).where(User.email.in_(wanted),
                                              User.role == Role.student))).tuples().all())
        unknown = [e for e in wanted if e not in by_email]
        ids = [by_email[e] for e in wanted if e in by_email]
        what = "emails"
    if unknown:
        raise Invalid(f"no student account has these {what}: {_listed(unknown)};"
                      " nobody was enrolled")
    enrolled = await _enrol(session, class_id, ids, user.user_id)
    await audit.record(session, ctx, user.user_id, "enrol_students", "class", class_id,
                       {"student_ids": [str(i) for i in enrolled],
                        "already": len(ids) - len(enrolled)})
    return len(enrolled), len(ids) - len(enrolled)


async def unenrol(
    session: AsyncSession, user: Claims, class_id: uuid.UUID, student_id: uuid.UUID,
    ctx: RequestContext,
) -> None:
    await require_class(session, user, class_id)
    row = await session.get(ClassEnrolment, (class_id, student_id))
    if row is None:
        raise NotFound("the student is not enrolled in this class")
    await session.delete(row)
    await audit.record(session, ctx, user.user_id, "unenrol_student", "class", class_id,
                       {"student_id": str(student_id)})


# --- rosters ----------------------------------------------------------------------------


@dataclass
class RosterReport:
    created: int = 0
    enrolled: int = 0
    already: int = 0
    errors: list[roster.LineError] = field(default_factory=list)
    # The rows whose accounts were created, with their links (the tokens leave only in the
    # response to the caller).
    setup_links: list[tuple[roster.Row, links.Issued]] = field(default_factory=list)


@dataclass(frozen=True)
class _Account:
    id: uuid.UUID
    email: str
    username: str
    role: Role


async def _accounts(
    session: AsyncSession, rows: list[roster.Row]
) -> tuple[dict[str, _Account], dict[str, _Account]]:
    """The existing accounts the rows name, by email and by lower-case username."""
    if not rows:
        return {}, {}
    names = [r.username.lower() for r in rows if r.username]
    found = (await session.execute(
        select(User.id, User.email, User.username, User.role).where(or_(
            User.email.in_([r.email for r in rows]), func.lower(User.username).in_(names)))
    )).all()
    people = [_Account(*r) for r in found]
    return {p.email: p for p in people}, {p.username.lower(): p for p in people}


def _match(row: roster.Row, by_email: dict[str, _Account],
           by_username: dict[str, _Account]) -> tuple[_Account | None, str | None]:
    """The existing student account a row names, or None if it names none; or what is wrong.

    The email decides which account a row means; a username that disagrees with it (another
    account's, or not that account's) is an error for the line rather than a guess, since it
    may be a typo that would enrol the wrong person."""
    mail = by_email.get(row.email)
    name = by_username.get(row.username.lower()) if row.username else None
    if mail is None:
        return None, ("the username is taken by an account with another email"
                      if name is not None else None)
    if name is not None and name.id != mail.id:
        return None, "the email and the username belong to two different accounts"
    if row.username and name is None:
        return None, "an account with this email exists under another username"
    if mail.role is not Role.student:
        return None, "the account with this email is not a student account"
    return mail, None


async def import_roster(
    session: AsyncSession, user: Claims, class_id: uuid.UUID,
    parsed: tuple[list[roster.Row], list[roster.LineError]] | roster.Malformed,
    link_valid_for: timedelta, ctx: RequestContext,
) -> RosterReport:
    """Create the students who have no account (no password: each gets a one-time link),
    and enrol everyone on the roster. Running it again changes nothing and creates no new
    links; lines in error are reported and left out; a malformed file changes nothing."""
    await require_class(session, user, class_id)  # a stranger learns nothing of the file
    if isinstance(parsed, roster.Malformed):
        raise Invalid(f"the roster was not imported: {parsed}")
    rows, line_errors = parsed
    await session.execute(ROSTER_LOCK)
    report = RosterReport(errors=list(line_errors))
    matched: list[uuid.UUID] = []
    new: list[roster.Row] = []
    by_email, by_username = await _accounts(session, rows)
    for row in rows:
        account, problem = _match(row, by_email, by_username)
        if problem is not None:
            report.errors.append(roster.LineError(row.line, problem))
        elif account is not None:
            matched.append(account.id)
        elif row.username is None:
            report.errors.append(roster.LineError(
                row.line, "username is missing; it is needed to create the account"))
        else:
            new.append(row)
    made = await accounts.create_students_without_password(session, [
        accounts.NewStudent(r.email, r.username or "", r.full_name, r.enrollment_id)
        for r in new])
    created = [r for r in new if r.email in made]
    # Accounts registered between the look-up and the insert: matched anew, never created.
    late = [r for r in new if r.email not in made]
    by_email, by_username = await _accounts(session, late)
    for row in late:
        account, problem = _match(row, by_email, by_username)
        if account is not None:
            matched.append(account.id)
        else:
            report.errors.append(roster.LineError(
                row.line, problem or "an account with this email or username was just made"))
    issued = await links.issue(session, [made[r.email] for r in created], links.Purpose.setup,
                               link_valid_for, user.user_id)
    report.setup_links = list(zip(created, issued, strict=True))
    everyone = matched + [made[r.email] for r in created]
    enrolled = await _enrol(session, class_id, everyone, user.user_id)
    report.created, report.enrolled = len(created), len(enrolled)
    report.already = len(everyone) - len(enrolled)
    report.errors.sort(key=lambda e: e.line)
    for _row, link in report.setup_links:
        await audit.record(session, ctx, user.user_id, "create_user", "user", link.user_id, {
            "role": Role.student.value, "via": "class_roster", "class_id": str(class_id),
            "setup_link_expires_at": link.expires_at.isoformat()})
    await audit.record(session, ctx, user.user_id, "import_roster", "class", class_id, {
        "rows": len(rows) + len(line_errors), "created": report.created,
        "enrolled_ids": [str(i) for i in enrolled], "already": report.already,
        "errors": len(report.errors)})
    return report


# --- exams ------------------------------------------------------------------------------


async def assign_exam(
    session: AsyncSession, user: Claims, exam_id: uuid.UUID, class_ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    """Make these the exam's classes (none: open to every student) and return them.

    A teacher adds and removes only classes they own, an admin any: another teacher's class
    is unknown to a teacher (422, as row-level security hides it), and taking an exam off
    another teacher's class is refused (403). The caller's right to edit the exam is checked
    by the exam's service."""
    wanted = list(dict.fromkeys(class_ids))
    current = set(await session.scalars(
        select(ExamClass.class_id).where(ExamClass.exam_id == exam_id)))
    changed = set(wanted) ^ current
    mine: set[uuid.UUID] = set()
    if changed:
        query = select(SchoolClass.id).where(SchoolClass.id.in_(changed))
        if user.role is not Role.admin:
            query = query.where(SchoolClass.owner_id == user.user_id)
        mine = set(await session.scalars(query))
    unknown = [str(c) for c in wanted if c not in current and c not in mine]
    if unknown:
        whose = "" if user.role is Role.admin else " of yours"
        raise Invalid(f"class_ids: there is no class{whose} with these ids: {_listed(unknown)}")
    foreign = sorted(str(c) for c in current - set(wanted) if c not in mine)
    if foreign:
        raise Forbidden("class_ids: only a class's owner or an admin can take an exam off it:"
                        f" {_listed(foreign)}")
    removed = current - set(wanted)
    if removed:
        await session.execute(delete(ExamClass).where(ExamClass.exam_id == exam_id,
                                                      ExamClass.class_id.in_(removed)))
    added = [c for c in wanted if c not in current]
    if added:
        await session.execute(insert(ExamClass), [{"exam_id": exam_id, "class_id": c}
                                                  for c in added])
    return sorted(wanted)
