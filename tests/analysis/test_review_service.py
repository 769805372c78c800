"""Review decisions in-process: the outcome they add up to, the second reviewer, which alerts a
decision may name, and that decisions are never edited."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from tests.support import InTransaction

from veritas.analysis import review
from veritas.auth.tokens import Claims
from veritas.db.base import Role
from veritas.db.unit_of_work import SYSTEM
from veritas.errors import Invalid
from veritas.exams import service as exams
from veritas.exams.models import Exam, ExamAttempt
from veritas.exams.schemas import PermissionIn, SubmitIn

pytestmark = pytest.mark.anyio


async def _submitted(tx: InTransaction, exam: Exam) -> ExamAttempt:
    student = await tx.user()
    async with tx.as_(student) as session:
        attempt, _ = await exams.start(session, student, exam.id,
                                       tx.settings.attempt_grace_minutes, tx.ctx)
        return await exams.submit(session, student, attempt.id, SubmitIn(responses={"q1": "4"}),
                                  tx.settings.attempt_grace_minutes, tx.ctx)


async def _decide(tx: InTransaction, reviewer: Claims, attempt: ExamAttempt, decision: str,
                  alert_id: uuid.UUID | None = None) -> str:
    """Record a decision as `reviewer` and return the attempt's outcome after it."""
    async with tx.as_(reviewer) as session:
        await review.decide(session, attempt, reviewer.user_id, decision, None, alert_id)
        exam = await session.get(Exam, attempt.exam_id)
        assert exam is not None
        return review.outcome(await review.decisions_of(session, attempt.id),
                              review.needs_second_reviewer(exam))


async def test_a_confirmation_needs_a_second_reviewer_when_the_exam_asks(
    tx: InTransaction,
) -> None:
    owner, colleague = await tx.user(Role.teacher), await tx.user(Role.teacher)
    strict = await tx.exam(owner, metadata={"review": {"require_second_reviewer": True}})
    async with tx.as_(owner) as session:
        await exams.grant(session, owner, strict.id, PermissionIn(
            teacher_id=colleague.user_id, can_view_analytics=True), tx.ctx)
    attempt = await _submitted(tx, strict)
    assert await _decide(tx, owner, attempt, "acknowledged") == "under_review"
    assert await _decide(tx, owner, attempt, "confirmed") == "pending_second_review"
    # The same reviewer twice is still one reviewer.
    assert await _decide(tx, owner, attempt, "confirmed") == "pending_second_review"
    assert await _decide(tx, colleague, attempt, "confirmed") == "confirmed"
    assert await _decide(tx, colleague, attempt, "dismissed") == "cleared"
    # After another decision the count of confirmers starts again.
    assert await _decide(tx, owner, attempt, "confirmed") == "pending_second_review"

    plain = await _submitted(tx, await tx.exam(owner))
    assert await _decide(tx, owner, plain, "confirmed") == "confirmed"


async def test_a_decision_names_only_its_attempts_own_alerts(tx: InTransaction) -> None:
    teacher = await tx.user(Role.teacher)
    exam = await tx.exam(teacher)
    attempt, other = await _submitted(tx, exam), await _submitted(tx, exam)
    alerts = {}
    async with tx.as_(SYSTEM) as session:
        for row in (attempt, other):
            alerts[row.id] = await session.scalar(text(
                "INSERT INTO analysis_alerts (exam_attempt_id, exam_id, student_id, kind,"
                " severity, description) VALUES (:a, :e, :s, 'low_integrity', 'warning',"
                " 'several signals') RETURNING id"),
                {"a": row.id, "e": exam.id, "s": row.student_id})
        folded = await session.scalar(text(
            "INSERT INTO monitoring_alerts (exam_attempt_id, exam_id, student_id, event_type,"
            " severity, anomaly_score, description, count, first_at, last_at)"
            " VALUES (:a, :e, :s, 'paste', 'warning', 0.9, 'a large paste', 1, now(), now())"
            " RETURNING id"), {"a": attempt.id, "e": exam.id, "s": attempt.student_id})
    for foreign in (alerts[other.id], uuid.uuid4()):  # one answer for both: nothing revealed
        with pytest.raises(Invalid, match="alert"):
            await _decide(tx, teacher, attempt, "dismissed", foreign)
    assert await tx.scalar("SELECT count(*) FROM review_decisions WHERE exam_attempt_id = :a",
                           a=attempt.id) == 0
    assert await _decide(tx, teacher, attempt, "confirmed", alerts[attempt.id]) == "confirmed"
    assert await _decide(tx, teacher, attempt, "dismissed", folded) == "cleared"


async def test_decisions_are_never_edited_or_removed(tx: InTransaction) -> None:
    teacher = await tx.user(Role.teacher)
    attempt = await _submitted(tx, await tx.exam(teacher))
    await _decide(tx, teacher, attempt, "confirmed")
    for statement in ("UPDATE review_decisions SET decision = 'dismissed'",
                      "DELETE FROM review_decisions"):
        with pytest.raises(DBAPIError, match="permission denied"):
            async with tx.as_(SYSTEM) as session:
                await session.execute(text(f"{statement} WHERE exam_attempt_id = :a"),
                                      {"a": attempt.id})
    assert await tx.scalar("SELECT decision::text FROM review_decisions"
                           " WHERE exam_attempt_id = :a", a=attempt.id) == "confirmed"
