"""Grading: a teacher reads an attempt's answers and grades its questions; the queue of
attempts waiting for a grade; the per-question results a student may see.

A grade locks its attempt, stores the points, and in the same transaction rescores the
attempt (score, percentage, passed, grading_status), rewrites the student's profile and
performance metrics and records `grade_question` in the audit log.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import column, func, literal, not_, select, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.analysis import service as analysis
from veritas.audit import service as audit
from veritas.auth.models import User
from veritas.auth.tokens import Claims
from veritas.core.context import RequestContext
from veritas.db.base import AttemptStatus, GradingStatus
from veritas.db.unit_of_work import as_system
from veritas.errors import Conflict, Invalid, NotFound
from veritas.exams import lifecycle
from veritas.exams.models import Exam, ExamAttempt
from veritas.exams.permissions import ExamRight, require_attempt, require_exam, visible_exam_ids
from veritas.grading import rules, schemas
from veritas.grading.models import QuestionGrade
from veritas.pagination import Page, PageParams, oldest_first, page


def _questions(attempt: ExamAttempt) -> list[dict[str, Any]]:
    """The questions as they were when the attempt started (later edits do not apply)."""
    return list(attempt.submission_data.get("questions") or [])


def _answers(attempt: ExamAttempt) -> dict[str, Any]:
    """The submitted answers; before a submit, the latest autosaved draft's."""
    data = attempt.submission_data
    if "responses" in data:
        return dict(data["responses"] or {})
    drafts = data.get("drafts") or []
    return dict(drafts[-1].get("responses") or {}) if drafts else {}


async def _grades(session: AsyncSession, attempt_id: uuid.UUID) -> dict[str, QuestionGrade]:
    rows = await session.scalars(
        select(QuestionGrade).where(QuestionGrade.exam_attempt_id == attempt_id)
        .execution_options(populate_existing=True))
    return {g.question_id: g for g in rows}


async def _can_grade(session: AsyncSession, user: Claims, exam_id: uuid.UUID) -> bool:
    editable = visible_exam_ids(user, ExamRight.edit)
    if editable is None:
        return True
    return bool(await session.scalar(select(literal(exam_id).in_(editable))))


def _name(user: User | None) -> str | None:
    return (user.full_name or user.username) if user else None


async def attempt_responses(
    session: AsyncSession, user: Claims, attempt_id: uuid.UUID, ctx: RequestContext
) -> schemas.AttemptResponses:
    """Every question of an attempt with the student's answer and its grade (`can_view`)."""
    attempt, exam = await require_attempt(session, user, attempt_id, ExamRight.view)
    grades = await _grades(session, attempt.id)
    people = {u.id: u for u in await session.scalars(
        select(User).where(User.id.in_({attempt.student_id} | {g.graded_by
                                                               for g in grades.values()})))}
    submitted = attempt.status is AttemptStatus.completed
    answers = _answers(attempt)
    questions = []
    for q in _questions(attempt):
        grade = grades.get(q["id"])
        answer = answers.get(q["id"])
        awarded = grade.points if grade else None
        questions.append(schemas.QuestionResponse(
            id=q["id"], type=q["type"], prompt=q["prompt"], points=q["points"],
            options=q.get("options"), correct=q.get("correct"), response=answer,
            needs_grading=rules.needs_teacher(q),
            auto_points=rules.auto_points(q, answer) if submitted else None,
            awarded_points=awarded,
            earned_points=rules.effective_points(q, answer, awarded) if submitted else None,
            feedback=grade.feedback if grade else None,
            graded_by=grade.graded_by if grade else None,
            graded_by_name=_name(people.get(grade.graded_by)) if grade else None,
            graded_at=grade.graded_at if grade else None,
        ))
    await audit.record(session, ctx, user.user_id, "view_student_data", "exam_attempt",
                       attempt.id, {"view": "responses", "student_id": str(attempt.student_id)})
    student = people.get(attempt.student_id)
    return schemas.AttemptResponses(
        attempt_id=attempt.id, exam_id=exam.id, exam_title=exam.title,
        student_id=attempt.student_id, student_name=_name(student) or str(attempt.student_id),
        status=attempt.status, score=attempt.score, max_score=attempt.max_score,
        percentage=attempt.percentage, passed=attempt.passed,
        grading_status=attempt.grading_status,
        can_grade=await _can_grade(session, user, exam.id),
        completed_at=attempt.completed_at, questions=questions,
    )


def _rescore(attempt: ExamAttempt, exam: Exam, grades: Mapping[str, QuestionGrade]) -> None:
    """Score, percentage, passed and grading_status from the answers and every grade."""
    questions = _questions(attempt)
    awarded = {qid: g.points for qid, g in grades.items()}
    score = rules.score(questions, _answers(attempt), awarded)
    attempt.score = score
    attempt.percentage = score / attempt.max_score * 100
    attempt.passed = score >= exam.passing_score
    attempt.grading_status = rules.grading_status(questions, awarded)


async def grade_question(
    session: AsyncSession, user: Claims, attempt_id: uuid.UUID, question_id: str,
    body: schemas.GradeIn, ctx: RequestContext,
) -> schemas.GradeOut:
    """Award a question its points (`can_edit`), replacing any earlier grade of it."""
    attempt, exam = await require_attempt(session, user, attempt_id, ExamRight.edit)
    # Grades of one attempt queue up on its row, and each rescores from every grade committed
    # before it: two questions graded at once both count.
    await session.refresh(attempt, with_for_update=True)
    if attempt.status is AttemptStatus.in_progress:
        raise Conflict("the attempt is still in progress: grade it once it is submitted")
    if attempt.status is not AttemptStatus.completed:
        raise Conflict(f"the attempt is {attempt.status.value}: it has no submitted answers"
                       " to grade")
    question = next((q for q in _questions(attempt) if q["id"] == question_id), None)
    if question is None:
        raise NotFound("no such question in this attempt")
    if body.points > float(question["points"]):
        raise Invalid(f"points must be between 0 and {float(question['points']):g},"
                      " the question's points")
    answer = _answers(attempt).get(question_id)
    grades = await _grades(session, attempt.id)
    before = grades.get(question_id)
    old_points = rules.effective_points(question, answer, before.points if before else None)
    old_score = attempt.score

    values = {"exam_attempt_id": attempt.id, "question_id": question_id,
              "points": body.points, "feedback": body.feedback, "graded_by": user.user_id}
    insert = pg_insert(QuestionGrade).values(**values)
    upsert = insert.on_conflict_do_update(
        index_elements=["exam_attempt_id", "question_id"],
        set_={"points": insert.excluded.points, "feedback": insert.excluded.feedback,
              "graded_by": insert.excluded.graded_by, "graded_at": func.now()},
    ).returning(QuestionGrade)
    grade = await session.scalar(upsert, execution_options={"populate_existing": True})
    assert grade is not None
    grades[question_id] = grade
    _rescore(attempt, exam, grades)
    await session.flush()
    # The profile counts every exam of the student, other teachers' too: rebuilt as the
    # system, now that the caller is known to grade this attempt.
    async with as_system(session):
        await analysis.refresh_student(session, attempt.student_id)
    await audit.record(session, ctx, user.user_id, "grade_question", "exam_attempt", attempt.id, {
        "exam_id": str(exam.id), "student_id": str(attempt.student_id),
        "question_id": question_id, "old_points": old_points, "new_points": body.points,
        "old_score": old_score, "new_score": attempt.score,
    })
    assert attempt.score is not None and attempt.percentage is not None
    assert attempt.passed is not None and attempt.grading_status is not None
    return schemas.GradeOut(
        attempt_id=attempt.id, question_id=question_id, points=grade.points,
        auto_points=rules.auto_points(question, answer), feedback=grade.feedback,
        graded_by=grade.graded_by, graded_at=grade.graded_at,
        attempt=schemas.AttemptTotals(
            score=attempt.score, max_score=attempt.max_score, percentage=attempt.percentage,
            passed=attempt.passed, grading_status=attempt.grading_status),
    )


def _to_grade_count() -> Any:
    """Per attempt row: its essays and short answers that have no grade."""
    question = func.jsonb_array_elements(ExamAttempt.submission_data["questions"]).table_valued(
        column("value", JSONB)).alias("q")
    return (
        select(func.count())
        .select_from(question)
        .where(question.c.value["type"].astext.in_(sorted(rules.TEACHER_GRADED)),
               not_(select(QuestionGrade.question_id)
                    .where(QuestionGrade.exam_attempt_id == ExamAttempt.id,
                           QuestionGrade.question_id == question.c.value["id"].astext)
                    .exists()))
        .scalar_subquery()
    )


async def queue(
    session: AsyncSession, user: Claims, paging: PageParams, ctx: RequestContext,
    status: schemas.QueueStatus = "pending", exam_id: uuid.UUID | None = None,
) -> Page[schemas.QueueItem]:
    """The completed attempts of the exams the caller may view, by grading status, oldest
    submission first; each says whether the caller may grade it."""
    if exam_id is not None:
        await require_exam(session, user, exam_id, ExamRight.view)
    viewable = visible_exam_ids(user, ExamRight.view)
    editable = visible_exam_ids(user, ExamRight.edit)
    query = (
        select(ExamAttempt.id, ExamAttempt.exam_id, Exam.title, ExamAttempt.student_id,
               User.username, User.full_name, ExamAttempt.completed_at, ExamAttempt.score,
               ExamAttempt.max_score, ExamAttempt.percentage, ExamAttempt.passed,
               ExamAttempt.grading_status, _to_grade_count().label("to_grade"),
               (true() if editable is None else ExamAttempt.exam_id.in_(editable))
               .label("can_grade"))
        .join(Exam, Exam.id == ExamAttempt.exam_id)
        .join(User, User.id == ExamAttempt.student_id)
        .where(ExamAttempt.status == AttemptStatus.completed,
               ExamAttempt.grading_status == GradingStatus(status))
    )
    if viewable is not None:
        query = query.where(ExamAttempt.exam_id.in_(viewable))
    if exam_id is not None:
        query = query.where(ExamAttempt.exam_id == exam_id)
    rows = (await session.execute(
        oldest_first(query, ExamAttempt.completed_at, ExamAttempt.id, paging))).all()
    result = page(rows, paging, lambda r: (r.completed_at, r.id))
    await audit.record(session, ctx, user.user_id, "view_student_data", "grading_queue", None,
                       {"view": "grading_queue", "status": status,
                        "exam_id": str(exam_id) if exam_id else None})
    return Page[schemas.QueueItem](
        items=[schemas.QueueItem(
            attempt_id=r.id, exam_id=r.exam_id, exam_title=r.title, student_id=r.student_id,
            username=r.username, full_name=r.full_name, completed_at=r.completed_at,
            score=r.score, max_score=r.max_score, percentage=r.percentage, passed=r.passed,
            grading_status=r.grading_status, questions_to_grade=r.to_grade,
            can_grade=bool(r.can_grade),
        ) for r in result["items"]],
        next_cursor=result["next_cursor"],
    )


async def student_results(
    session: AsyncSession, exam: Exam, attempt: ExamAttempt, now: datetime
) -> schemas.StudentResults:
    """What the student sees per question of their own attempt, as `show_results` allows."""
    if not await lifecycle.results_visible(session, exam, attempt, now):
        return schemas.StudentResults(show_results=exam.show_results, results_visible=False,
                                      questions=None)
    grades = await _grades(session, attempt.id)
    answers = _answers(attempt)
    questions = []
    for q in _questions(attempt):
        grade = grades.get(q["id"])
        answer = answers.get(q["id"])
        ungraded_essay = grade is None and rules.auto_points(q, answer) is None
        questions.append(schemas.QuestionResult(
            id=q["id"], type=q["type"], prompt=q["prompt"], points=q["points"],
            options=q.get("options"), response=answer,
            points_awarded=None if ungraded_essay else rules.effective_points(
                q, answer, grade.points if grade else None),
            feedback=grade.feedback if grade else None, correct=q.get("correct"),
        ))
    return schemas.StudentResults(show_results=exam.show_results, results_visible=True,
                                  questions=questions)
