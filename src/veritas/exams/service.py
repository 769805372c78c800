"""Exams (create, edit, grants) and attempts (start, drafts, submit, abandonment)."""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.analysis import service as analysis
from veritas.audit import service as audit
from veritas.auth.models import TeacherProfile, User
from veritas.auth.tokens import Claims
from veritas.classes import service as classes
from veritas.core.context import RequestContext
from veritas.db.base import AttemptStatus, Role
from veritas.errors import Conflict, Forbidden, Invalid, NotFound
from veritas.exams import accommodations, lifecycle, rules, schemas
from veritas.exams.models import Exam, ExamAttempt, TeacherExamPermission
from veritas.exams.permissions import (
    ExamRight,
    can_manage_grants,
    open_to_student,
    require_exam,
    restrict,
)
from veritas.grading import rules as grading
from veritas.pagination import PageParams, newest_first, page


def _validated(max_score: float, passing: float, questions: list[dict[str, Any]]) -> None:
    try:
        schemas.check_exam(max_score, passing, questions)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


async def list_exams(session: AsyncSession, user: Claims, paging: PageParams) -> dict[str, Any]:
    """A page of the exams the caller may view, newest first."""
    query = restrict(select(Exam), Exam.id, user, ExamRight.view)
    rows = (await session.scalars(newest_first(query, Exam.created_at, Exam.id, paging))).all()
    return page(rows, paging, lambda e: (e.created_at, e.id))


async def available_exams(
    session: AsyncSession, user: Claims, paging: PageParams
) -> dict[str, Any]:
    """A page of the published exams open to the student, newest first, as students see them,
    each with the caller's own attempt limit and what is left of it."""
    query = select(Exam).where(Exam.is_published.is_(True), open_to_student(user.user_id))
    rows = (await session.scalars(newest_first(query, Exam.created_at, Exam.id, paging))).all()
    result = page(rows, paging, lambda e: (e.created_at, e.id))
    ids = [e.id for e in result["items"]]
    used = await _attempts_used(session, user.user_id, ids)
    extra = await accommodations.of_student(session, user.user_id, ids)
    result["items"] = [schemas.AvailableExamOut.of(e, *used.get(e.id, (0, False)),
                                                   accommodation=extra.get(e.id))
                       for e in result["items"]]
    return result


async def _attempts_used(
    session: AsyncSession, student_id: uuid.UUID, exam_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, bool]]:
    """How many attempts the student has of each exam, in every status, and whether one of
    them is in progress."""
    if not exam_ids:
        return {}
    rows = await session.execute(
        select(ExamAttempt.exam_id, func.count(),
               func.bool_or(ExamAttempt.status == AttemptStatus.in_progress))
        .where(ExamAttempt.student_id == student_id, ExamAttempt.exam_id.in_(exam_ids))
        .group_by(ExamAttempt.exam_id))
    return {exam_id: (count, bool(writing)) for exam_id, count, writing in rows}


async def create_exam(
    session: AsyncSession, user: Claims, body: schemas.ExamCreate, ctx: RequestContext
) -> Exam:
    questions = [q.model_dump() for q in body.questions]
    _validated(body.max_score, body.passing_score, questions)
    fields = body.model_dump(exclude={"questions", "metadata", "class_ids"})
    exam = Exam(creator_id=user.user_id, questions=questions, metadata_=body.metadata.stored(),
                **fields)
    session.add(exam)
    await session.flush()
    if user.role is Role.teacher:
        session.add(TeacherExamPermission(teacher_id=user.user_id, exam_id=exam.id, can_view=True,
                                          can_edit=True, can_view_analytics=True,
                                          granted_by=user.user_id))
        await session.flush()
    class_ids = await classes.assign_exam(session, user, exam.id, body.class_ids)
    await audit.record(session, ctx, user.user_id, "create_exam", "exam", exam.id,
                       {"title": exam.title, "class_ids": [str(c) for c in class_ids]})
    await session.flush()
    await session.refresh(exam)
    return exam


async def edit_exam(
    session: AsyncSession, user: Claims, exam_id: uuid.UUID, body: schemas.ExamPatch,
    ctx: RequestContext,
) -> Exam:
    exam = await require_exam(session, user, exam_id, ExamRight.edit)
    changes = body.model_dump(exclude_unset=True)
    for required in ("title", "subject", "max_score", "duration_minutes", "passing_score",
                     "is_published", "enable_monitoring", "enable_integrity_analysis",
                     "questions", "metadata", "show_results", "class_ids",
                     "shuffle_questions", "shuffle_options"):
        if required in changes and changes[required] is None:
            raise Invalid(f"{required} cannot be null")
    details: dict[str, Any] = {}
    if "class_ids" in changes:
        changes.pop("class_ids")
        assigned = await classes.assign_exam(session, user, exam.id, body.class_ids or [])
        details["class_ids"] = [str(c) for c in assigned]
    try:
        schemas.check_window(changes.get("opens_at", exam.opens_at),
                             changes.get("closes_at", exam.closes_at))
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    if "questions" in changes:
        changes["questions"] = [q.model_dump() for q in body.questions or []]
    if "metadata" in changes:
        changes.pop("metadata")
        changes["metadata_"] = body.metadata.stored() if body.metadata is not None else None
    _validated(changes.get("max_score", exam.max_score),
               changes.get("passing_score", exam.passing_score),
               changes.get("questions", exam.questions))
    for key, value in changes.items():
        setattr(exam, key, value)
    fields = sorted([k.rstrip("_") for k in changes] + (["class_ids"] if details else []))
    await audit.record(session, ctx, user.user_id, "modify_exam", "exam", exam.id,
                       {"fields": fields} | details)
    await session.flush()
    await session.refresh(exam)
    return exam


async def grant(
    session: AsyncSession, user: Claims, exam_id: uuid.UUID, body: schemas.PermissionIn,
    ctx: RequestContext,
) -> tuple[TeacherExamPermission, bool]:
    """Create or replace a teacher's grant; returns it and whether it is new."""
    exam = await session.get(Exam, exam_id)
    if exam is None:
        raise NotFound("exam not found")
    if not can_manage_grants(user, exam):
        raise Forbidden("only the exam's creator or an admin can change its permissions")
    if body.teacher_id == exam.creator_id:  # as revoking it is refused: the creator keeps all
        raise Conflict("the creator's own access cannot be changed")
    teacher = await session.scalar(
        select(TeacherProfile.id).where(TeacherProfile.user_id == body.teacher_id)
    )
    if teacher is None:
        raise NotFound("teacher not found")
    values = body.model_dump() | {"exam_id": exam_id, "granted_by": user.user_id}
    existing = await session.get(TeacherExamPermission, (body.teacher_id, exam_id))
    stmt = pg_insert(TeacherExamPermission).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["teacher_id", "exam_id"],
        set_={k: stmt.excluded[k] for k in ("can_view", "can_edit", "can_view_analytics",
                                             "granted_by")} | {"granted_at": func.now()},
    )
    await session.execute(stmt)
    await audit.record(session, ctx, user.user_id, "grant_exam_permission", "exam", exam_id,
                       body.model_dump(mode="json"))
    if existing is not None:
        await session.refresh(existing)
        return existing, False
    row = await session.get(TeacherExamPermission, (body.teacher_id, exam_id))
    assert row is not None
    return row, True


async def revoke(
    session: AsyncSession, user: Claims, exam_id: uuid.UUID, teacher_id: uuid.UUID,
    ctx: RequestContext,
) -> None:
    exam = await session.get(Exam, exam_id)
    if exam is None:
        raise NotFound("exam not found")
    if not can_manage_grants(user, exam):
        raise Forbidden("only the exam's creator or an admin can change its permissions")
    if teacher_id == exam.creator_id:
        raise Conflict("the creator's own access cannot be revoked")
    row = await session.get(TeacherExamPermission, (teacher_id, exam_id))
    if row is None:
        raise NotFound("no such permission")
    await session.delete(row)
    await audit.record(session, ctx, user.user_id, "revoke_exam_permission", "exam", exam_id,
                       {"teacher_id": str(teacher_id)})


async def start(
    session: AsyncSession, user: Claims, exam_id: uuid.UUID, grace_minutes: int,
    ctx: RequestContext,
) -> tuple[ExamAttempt, bool]:
    """Open an attempt, or return the one already open; the bool says whether it is new."""
    exam = await session.scalar(select(Exam).where(
        Exam.id == exam_id, Exam.is_published.is_(True), open_to_student(user.user_id)))
    if exam is None:  # unknown, unpublished, or assigned to classes the student is not in
        raise NotFound("exam not found")
    # Serialize starts of this student on this exam so two tabs cannot open two attempts.
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                          {"k": f"start:{user.user_id}:{exam_id}"})
    open_attempt = await session.scalar(
        select(ExamAttempt).where(ExamAttempt.exam_id == exam_id,
                                  ExamAttempt.student_id == user.user_id,
                                  ExamAttempt.status == AttemptStatus.in_progress)
    )
    now = lifecycle.now()
    if open_attempt is not None:
        # Resuming is not a new start: no window or limit applies to it.
        if lifecycle.is_open(open_attempt, now, lifecycle.grace(grace_minutes)):
            return open_attempt, False
        await lifecycle.abandon_expired(session, now, lifecycle.grace(grace_minutes),
                                        open_attempt.id)
    refusal = rules.window_refusal(exam.opens_at, exam.closes_at, now)
    if refusal is not None:
        raise Conflict(refusal)
    accommodation = (await accommodations.of_student(session, user.user_id, [exam.id])
                     ).get(exam.id)
    limit = rules.attempt_limit(exam.max_attempts,
                                accommodation.extra_attempts if accommodation else 0)
    if limit is not None:
        # Counted under the advisory lock above: a parallel start waits, then counts this one.
        used, _ = (await _attempts_used(session, user.user_id, [exam.id])).get(exam.id,
                                                                               (0, False))
        if used >= limit:
            raise Conflict(f"no attempts left: {used} of {limit} used")
    questions = exam.questions
    attempt = ExamAttempt(
        exam_id=exam.id,
        student_id=user.user_id,
        status=AttemptStatus.in_progress,
        max_score=exam.max_score,
        started_at=now,
        expires_at=rules.expires_at(now, exam.duration_minutes,
                                    accommodation.extra_minutes if accommodation else 0,
                                    exam.closes_at),
        # The questions as they were at the start: later edits do not change this attempt.
        # Its own order of them (if the exam shuffles) is kept beside, fixed from now on.
        submission_data={"questions": questions, "drafts": [],
                         "presentation": rules.presentation(
                             questions, exam.shuffle_questions, exam.shuffle_options,
                             random.SystemRandom())},
        metadata_={"client_ip": ctx.ip, "user_agent": (ctx.user_agent or "")[:512]},
    )
    session.add(attempt)
    await session.flush()
    await session.execute(text("SELECT veritas_ensure_event_partition(:s)"), {"s": now})
    return attempt, True


async def abandon_expired_starts(
    session: AsyncSession, user: Claims, exam_id: uuid.UUID, grace_minutes: int
) -> None:
    """End the caller's attempt at the exam if its time plus grace ran out, in a transaction
    of its own: the end stands although the start that noticed it is then refused (409)."""
    now = lifecycle.now()
    await lifecycle.end(session, AttemptStatus.abandoned, ExamAttempt.exam_id == exam_id,
                        ExamAttempt.student_id == user.user_id,
                        ExamAttempt.expires_at < now - lifecycle.grace(grace_minutes))


async def own_attempt(
    session: AsyncSession, user: Claims, attempt_id: uuid.UUID, *, lock: bool = False
) -> ExamAttempt:
    """The caller's attempt at an exam open to them; someone else's, or one at an exam whose
    classes the student is no longer in, is indistinguishable from a missing one."""
    query = select(ExamAttempt).where(
        ExamAttempt.id == attempt_id, ExamAttempt.student_id == user.user_id,
        open_to_student(user.user_id, ExamAttempt.exam_id))
    if lock:
        query = query.with_for_update(of=ExamAttempt)
    attempt = await session.scalar(query)
    if attempt is None:
        raise NotFound("attempt not found")
    return attempt


async def abandon_if_expired(
    session: AsyncSession, attempt_id: uuid.UUID, grace_minutes: int
) -> None:
    """End this attempt if its time plus grace ran out (in a transaction of its own, so the
    change stands although the request that noticed it then fails with 409)."""
    await lifecycle.abandon_expired(session, lifecycle.now(), lifecycle.grace(grace_minutes),
                                    attempt_id)


def _require_open(attempt: ExamAttempt, now: datetime, grace_minutes: int) -> None:
    if lifecycle.is_open(attempt, now, lifecycle.grace(grace_minutes)):
        return
    if attempt.status is AttemptStatus.in_progress:
        raise Conflict("the attempt's time ran out")
    raise Conflict(f"the attempt is {attempt.status.value}")


def _check_responses(questions: list[dict[str, Any]], responses: dict[str, Any]) -> None:
    known = {q["id"] for q in questions}
    unknown = sorted(set(responses) - known)
    if unknown:
        raise Invalid(f"responses name unknown questions: {', '.join(unknown[:5])}")
    for qid, answer in responses.items():
        if not isinstance(answer, str | list | type(None)) or (
            isinstance(answer, list) and not all(isinstance(a, str) for a in answer)
        ):
            raise Invalid(f"answer to {qid} must be text, an option or a list of options")
        if isinstance(answer, str) and len(answer) > 100_000:
            raise Invalid(f"answer to {qid} is too long")


async def save_draft(
    session: AsyncSession, user: Claims, attempt_id: uuid.UUID, body: schemas.DraftIn,
    grace_minutes: int, keep: int,
) -> schemas.DraftOut:
    attempt = await own_attempt(session, user, attempt_id, lock=True)
    now = lifecycle.now()
    _require_open(attempt, now, grace_minutes)
    _check_responses(attempt.submission_data.get("questions", []), body.responses)
    drafts = list(attempt.submission_data.get("drafts", []))
    drafts.append({"saved_at": now.isoformat(), "responses": body.responses})
    # Only the latest `keep`: the attempt's row is rewritten on every save, so its size
    # (and the time a save takes) must not grow with the number of drafts.
    drafts = drafts[-keep:]
    attempt.submission_data = attempt.submission_data | {"drafts": drafts}
    await session.flush()
    return schemas.DraftOut(attempt_id=attempt.id, draft_number=len(drafts), saved_at=now,
                            responses=body.responses)


async def submit(
    session: AsyncSession, user: Claims, attempt_id: uuid.UUID, body: schemas.SubmitIn,
    grace_minutes: int, ctx: RequestContext,
) -> ExamAttempt:
    attempt = await own_attempt(session, user, attempt_id, lock=True)
    if attempt.status is AttemptStatus.completed:
        raise Conflict("the attempt was already submitted")
    now = lifecycle.now()
    _require_open(attempt, now, grace_minutes)
    questions = attempt.submission_data.get("questions", [])
    drafts = attempt.submission_data.get("drafts", [])
    if body.responses is not None:
        responses = body.responses
    else:
        responses = drafts[-1]["responses"] if drafts else {}
    _check_responses(questions, responses)
    # No grade exists yet: the objective questions' points, essays 0 until graded.
    score = grading.score(questions, responses, {})
    exam = await session.get(Exam, attempt.exam_id)
    assert exam is not None
    await lifecycle.end(
        session, AttemptStatus.completed, ExamAttempt.id == attempt.id,
        score=score, percentage=score / attempt.max_score * 100,
        passed=score >= exam.passing_score, completed_at=now,
        grading_status=grading.grading_status(questions, ()),
        duration_seconds=int((now - attempt.started_at).total_seconds()),
        submission_data=attempt.submission_data | {"responses": responses},
    )
    # The student's counters are rebuilt from the raw tables, the same code `veritas
    # recompute` runs, so incremental updates cannot drift from a full rebuild.
    await analysis.refresh_student(session, attempt.student_id)
    await audit.record(session, ctx, user.user_id, "submit_attempt", "exam_attempt", attempt.id,
                       {"exam_id": str(exam.id), "score": score})
    return attempt



async def require_student(session: AsyncSession, student_id: uuid.UUID) -> User:
    user = await session.get(User, student_id)
    if user is None or user.role is not Role.student:
        raise NotFound("student not found")
    return user

