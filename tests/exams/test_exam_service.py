"""The exams service in-process: creation, edits and grants, attempts and scoring, each call in
the unit of work a request would open, on a transaction rolled back after the test."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from tests.support import QUESTIONS, InTransaction

from veritas.auth.tokens import Claims
from veritas.db.base import Role
from veritas.errors import Conflict, Forbidden, Invalid, NotFound
from veritas.exams import service as exams
from veritas.exams.models import Exam
from veritas.exams.schemas import DraftIn, ExamCreate, ExamPatch, PermissionIn, SubmitIn

pytestmark = pytest.mark.anyio


async def _rights(tx: InTransaction, exam: Exam, teacher: Claims) -> tuple[bool, ...] | None:
    async with tx.as_(teacher) as session:
        row = (await session.execute(
            text("SELECT can_view, can_edit, can_view_analytics"
                       " FROM teacher_exam_permissions WHERE exam_id = :e AND teacher_id = :t"),
            {"e": exam.id, "t": teacher.user_id})).one_or_none()
    return tuple(row) if row else None


async def _edit(tx: InTransaction, who: Claims, exam: Exam, **changes: object) -> Exam:
    async with tx.as_(who) as session:
        return await exams.edit_exam(session, who, exam.id, ExamPatch.model_validate(changes),
                                     tx.ctx)


async def _grant(tx: InTransaction, who: Claims, exam: Exam, teacher: Claims | uuid.UUID,
                 **rights: bool) -> bool:
    teacher_id = teacher.user_id if isinstance(teacher, Claims) else teacher
    async with tx.as_(who) as session:
        _, new = await exams.grant(session, who, exam.id,
                                   PermissionIn(teacher_id=teacher_id, **rights), tx.ctx)
    return new


async def _revoke(tx: InTransaction, who: Claims, exam: Exam, teacher: Claims) -> None:
    async with tx.as_(who) as session:
        await exams.revoke(session, who, exam.id, teacher.user_id, tx.ctx)


async def test_the_creator_gets_every_right_and_the_creation_is_audited(tx: InTransaction) -> None:
    teacher = await tx.user(Role.teacher)
    exam = await tx.exam(teacher)
    assert await _rights(tx, exam, teacher) == (True, True, True)
    audited = await tx.scalar(
        "SELECT count(*) FROM audit_logs WHERE action = 'create_exam' AND user_id = :u"
        " AND resource_id = :e AND host(ip_address) = '192.0.2.10'",
        u=teacher.user_id, e=str(exam.id))
    assert audited == 1
    # An admin's exam belongs to nobody's grants: admins see every exam anyway.
    admin = await tx.user(Role.admin)
    theirs = await tx.exam(admin)
    assert await tx.scalar("SELECT count(*) FROM teacher_exam_permissions WHERE exam_id = :e",
                           e=theirs.id) == 0


@pytest.mark.parametrize("fields", [
    {"passing_score": 11},  # above max_score
    {"max_score": 5, "passing_score": 1, "questions": QUESTIONS},  # worth 10 points
    {"questions": [{"id": "q", "type": "essay", "prompt": "a", "points": 1},
                   {"id": "q", "type": "essay", "prompt": "b", "points": 1}]},
], ids=["pass mark above max", "points above max", "duplicate question ids"])
async def test_a_refused_exam_leaves_nothing_behind(tx: InTransaction, fields: dict) -> None:
    teacher = await tx.user(Role.teacher)
    body = ExamCreate.model_validate({"title": "Refused", "subject": "Mathematics",
                                      "max_score": 10, "duration_minutes": 30,
                                      "passing_score": 5} | fields)
    with pytest.raises(Invalid):
        async with tx.as_(teacher) as session:
            await exams.create_exam(session, teacher, body, tx.ctx)
    assert await tx.scalar("SELECT count(*) FROM exams WHERE creator_id = :u",
                           u=teacher.user_id) == 0
    assert await tx.scalar("SELECT count(*) FROM audit_logs WHERE user_id = :u",
                           u=teacher.user_id) == 0


async def test_editing_needs_can_edit_and_a_grant_counts_from_the_next_call(
    tx: InTransaction,
) -> None:
    owner, colleague = await tx.user(Role.teacher), await tx.user(Role.teacher)
    exam = await tx.exam(owner)
    with pytest.raises(Forbidden):  # no grant at all
        await _edit(tx, colleague, exam, title="Renamed")
    with pytest.raises(Forbidden):  # only the creator (or an admin) hands out rights
        await _grant(tx, colleague, exam, colleague, can_edit=True)
    assert await _grant(tx, owner, exam, colleague) is True  # view and no edit
    with pytest.raises(Forbidden):
        await _edit(tx, colleague, exam, title="Renamed")
    assert await _grant(tx, owner, exam, colleague, can_edit=True) is False  # replaced
    assert await _rights(tx, exam, colleague) == (True, True, False)
    edited = await _edit(tx, colleague, exam, title="Renamed")
    assert edited.title == "Renamed"
    assert await tx.scalar(
        "SELECT details->'fields' FROM audit_logs WHERE action = 'modify_exam'"
        " AND user_id = :u AND resource_id = :e", u=colleague.user_id, e=str(exam.id)
    ) == ["title"]
    await _revoke(tx, owner, exam, colleague)
    with pytest.raises(Forbidden):
        await _edit(tx, colleague, exam, title="Again")
    with pytest.raises(NotFound):
        await _revoke(tx, owner, exam, colleague)


async def test_grants_name_a_teacher_and_never_narrow_the_creator(tx: InTransaction) -> None:
    owner, student = await tx.user(Role.teacher), await tx.user()
    exam = await tx.exam(owner)
    with pytest.raises(NotFound):
        await _grant(tx, owner, exam, student)
    with pytest.raises(NotFound):
        await _grant(tx, owner, exam, uuid.uuid4())
    with pytest.raises(Conflict):
        await _grant(tx, owner, exam, owner, can_view_analytics=False)
    with pytest.raises(Conflict):
        await _revoke(tx, owner, exam, owner)
    assert await _rights(tx, exam, owner) == (True, True, True)


async def test_an_edit_that_breaks_a_rule_changes_nothing(tx: InTransaction) -> None:
    owner = await tx.user(Role.teacher)
    exam = await tx.exam(owner)
    with pytest.raises(Invalid):
        await _edit(tx, owner, exam, title="Renamed", passing_score=1000)
    with pytest.raises(Invalid):
        await _edit(tx, owner, exam, title=None)
    assert await tx.scalar("SELECT title FROM exams WHERE id = :e", e=exam.id) == exam.title
    assert await tx.scalar("SELECT count(*) FROM audit_logs WHERE action = 'modify_exam'"
                           " AND resource_id = :e", e=str(exam.id)) == 0


async def _start(tx: InTransaction, student: Claims, exam: Exam) -> tuple[uuid.UUID, bool]:
    async with tx.as_(student) as session:
        attempt, new = await exams.start(session, student, exam.id,
                                         tx.settings.attempt_grace_minutes, tx.ctx)
    return attempt.id, new


async def _submit(tx: InTransaction, student: Claims, attempt_id: uuid.UUID,
                  responses: dict | None = None) -> tuple[float | None, float | None, bool | None]:
    async with tx.as_(student) as session:
        attempt = await exams.submit(session, student, attempt_id,
                                     SubmitIn(responses=responses),
                                     tx.settings.attempt_grace_minutes, tx.ctx)
        return attempt.score, attempt.percentage, attempt.passed


async def _draft(tx: InTransaction, student: Claims, attempt_id: uuid.UUID,
                 responses: dict) -> int:
    async with tx.as_(student) as session:
        saved = await exams.save_draft(session, student, attempt_id,
                                       DraftIn(responses=responses),
                                       tx.settings.attempt_grace_minutes,
                                       tx.settings.max_drafts_per_attempt)
    return saved.draft_number


async def test_each_question_scores_all_or_nothing_and_the_pass_mark_is_in_points(
    tx: InTransaction,
) -> None:
    teacher = await tx.user(Role.teacher)
    exam = await tx.exam(teacher)
    partial, full = await tx.user(), await tx.user()
    attempt_id, _ = await _start(tx, partial, exam)
    assert await _submit(tx, partial, attempt_id,
                         {"q1": "4", "q2": ["2"], "q3": "Lyon"}) == (4, 40, False)
    attempt_id, _ = await _start(tx, full, exam)
    assert await _submit(tx, full, attempt_id,
                         {"q1": "4", "q2": ["3", "2"], "q3": "  paris "}) == (10, 100, True)


async def test_a_submit_without_responses_takes_the_latest_draft(tx: InTransaction) -> None:
    teacher, student = await tx.user(Role.teacher), await tx.user()
    attempt_id, _ = await _start(tx, student, await tx.exam(teacher))
    assert await _draft(tx, student, attempt_id, {"q1": "3"}) == 1
    assert await _draft(tx, student, attempt_id, {"q1": "4"}) == 2
    assert await _submit(tx, student, attempt_id) == (4, 40, False)


async def test_starting_again_resumes_and_an_attempt_is_its_students_alone(
    tx: InTransaction,
) -> None:
    teacher, student, other = await tx.user(Role.teacher), await tx.user(), await tx.user()
    exam = await tx.exam(teacher)
    attempt_id, new = await _start(tx, student, exam)
    assert new and await _start(tx, student, exam) == (attempt_id, False)
    for call in (_submit(tx, other, attempt_id), _draft(tx, other, attempt_id, {"q1": "4"})):
        with pytest.raises(NotFound):  # another student's attempt looks like a missing one
            await call
    with pytest.raises(Invalid):
        await _draft(tx, student, attempt_id, {"nope": "x"})
    with pytest.raises(Invalid):
        await _submit(tx, student, attempt_id, {"q1": {"a": 1}})
    hidden = await tx.exam(teacher, is_published=False)
    with pytest.raises(NotFound):
        await _start(tx, student, hidden)
    assert await tx.scalar("SELECT status::text FROM exam_attempts WHERE id = :a",
                           a=attempt_id) == "in_progress"


async def test_a_submit_ends_the_attempt_once_and_queues_one_analysis(tx: InTransaction) -> None:
    teacher, student = await tx.user(Role.teacher), await tx.user()
    attempt_id, _ = await _start(tx, student, await tx.exam(teacher))
    await _submit(tx, student, attempt_id, {"q1": "4"})
    with pytest.raises(Conflict):
        await _submit(tx, student, attempt_id, {"q1": "4"})
    with pytest.raises(Conflict):
        await _draft(tx, student, attempt_id, {"q1": "5"})
    assert await tx.scalar(
        "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'veritas.analyze_attempt'"
        " AND args->>'attempt_id' = :a", a=str(attempt_id)) == 1
    assert await tx.scalar("SELECT (total_exams_attempted, total_exams_passed)::text"
                           " FROM student_profiles WHERE user_id = :u",
                           u=student.user_id) == "(1,0)"
