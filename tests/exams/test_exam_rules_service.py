"""The exam rules in-process: the pure rules (window, limit, time, shuffling; scoring is
unchanged by any order, as hypothesis checks), and the accommodations' service and row-level
security on a transaction rolled back after each test."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from tests.support import InTransaction

from veritas.db.base import AttemptStatus, Role
from veritas.errors import Conflict, Forbidden, Invalid, NotFound
from veritas.exams import accommodations, rules
from veritas.exams import service as exams
from veritas.exams.schemas import AccommodationIn, ExamPatch, Question
from veritas.grading import rules as grading

T0 = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)


# --- pure rules ----------------------------------------------------------------------------


def test_window_refusal_names_the_opening_or_the_closing() -> None:
    opens, closes = T0, T0 + timedelta(hours=2)
    early = rules.window_refusal(opens, closes, T0 - timedelta(seconds=1))
    assert early == f"the exam opens at {opens.isoformat()}"
    assert rules.window_refusal(opens, closes, T0) is None
    assert rules.window_refusal(opens, closes, closes - timedelta(microseconds=1)) is None
    assert rules.window_refusal(opens, closes, closes) == (
        f"the exam closed at {closes.isoformat()}")
    assert rules.window_refusal(None, None, T0) is None
    assert rules.window_refusal(None, closes, T0 - timedelta(days=365)) is None


def test_attempt_limit_and_what_is_left() -> None:
    assert rules.attempt_limit(None, 3) is None
    assert rules.attempt_limit(1, 0) == 1 and rules.attempt_limit(2, 3) == 5
    assert rules.attempts_left(None, 10) is None
    assert rules.attempts_left(3, 1) == 2 and rules.attempts_left(1, 4) == 0


def test_expires_at_adds_extra_time_capped_by_closing_plus_extra() -> None:
    assert rules.expires_at(T0, 30, 0, None) == T0 + timedelta(minutes=30)
    assert rules.expires_at(T0, 30, 15, None) == T0 + timedelta(minutes=45)
    closes = T0 + timedelta(minutes=20)
    assert rules.expires_at(T0, 30, 0, closes) == closes
    assert rules.expires_at(T0, 30, 15, closes) == closes + timedelta(minutes=15)
    # Far from closing, the duration decides.
    assert rules.expires_at(T0, 30, 15, T0 + timedelta(days=1)) == T0 + timedelta(minutes=45)


QUESTIONS = [{"id": f"q{i}", "type": "single_choice", "prompt": "?", "points": 1,
              "options": ["a", "b", "c", "d"], "correct": "a"} for i in range(10)]


def test_presentation_is_none_without_shuffling_and_a_permutation_with() -> None:
    assert rules.presentation(QUESTIONS, False, False, random.Random(1)) is None
    assert rules.presented(QUESTIONS, None) == QUESTIONS
    order = rules.presentation(QUESTIONS, True, True, random.Random(1))
    assert order is not None
    shown = rules.presented(QUESTIONS, order)
    assert sorted(q["id"] for q in shown) == [q["id"] for q in QUESTIONS]
    assert all(sorted(q["options"]) == ["a", "b", "c", "d"] for q in shown)
    # Fixed: the same stored order presents the same way every time.
    assert rules.presented(QUESTIONS, order) == shown
    # Only the order changes, never a question's content or key.
    assert {q["id"]: (q["prompt"], q["correct"]) for q in shown} == {
        q["id"]: (q["prompt"], q["correct"]) for q in QUESTIONS}


def test_seeded_presentations_differ_between_attempts() -> None:
    rng = random.Random(20261202)
    orders = [rules.presentation(QUESTIONS, True, True, rng) for _ in range(200)]
    question_orders = {tuple(o["questions"]) for o in orders if o}
    assert len(question_orders) == 200  # 10! orders: a repeat in 200 would be a broken shuffle
    first_ids = [o["questions"][0] for o in orders if o]
    # Every question leads some attempt's page, none nearly always.
    assert set(first_ids) == {q["id"] for q in QUESTIONS}
    assert max(first_ids.count(q) for q in set(first_ids)) < 50
    only_options = rules.presentation(QUESTIONS, False, True, random.Random(3))
    assert only_options is not None
    assert only_options["questions"] == [q["id"] for q in QUESTIONS]


def test_an_order_naming_unknown_ids_or_options_falls_back_safely() -> None:
    order = {"questions": ["q3", "nope"], "options": {"q3": ["x", "y"], "q4": ["d", "c", "b", "a"]}}
    shown = rules.presented(QUESTIONS, order)
    assert [q["id"] for q in shown][:2] == ["q3", "q0"] and len(shown) == len(QUESTIONS)
    by_id = {q["id"]: q for q in shown}
    assert by_id["q3"]["options"] == ["a", "b", "c", "d"]  # not the exam's options: ignored
    assert by_id["q4"]["options"] == ["d", "c", "b", "a"]


_option = st.text(alphabet="abcdefgh", min_size=1, max_size=3)


@st.composite
def _exam_and_answers(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    questions: list[dict[str, Any]] = []
    answers: dict[str, Any] = {}
    for i in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["single_choice", "multiple_choice", "short_text",
                                     "essay"]))
        body: dict[str, Any] = {"id": f"q{i}", "type": kind, "prompt": "?",
                                "points": draw(st.integers(1, 5))}
        if kind in ("single_choice", "multiple_choice"):
            options = draw(st.lists(_option, min_size=2, max_size=6, unique=True))
            body["options"] = options
            if kind == "single_choice":
                body["correct"] = draw(st.sampled_from(options))
                answer: Any = draw(st.one_of(st.sampled_from(options), st.none()))
            else:
                body["correct"] = draw(st.lists(st.sampled_from(options), min_size=1,
                                                unique=True))
                answer = draw(st.lists(st.sampled_from(options), unique=True))
        elif kind == "short_text":
            body["correct"] = ["Paris"]
            answer = draw(st.sampled_from(["Paris", " paris ", "Lyon", ""]))
        else:
            answer = draw(st.text(max_size=20))
        questions.append(Question.model_validate(body).model_dump())
        if draw(st.booleans()):
            answers[f"q{i}"] = answer
    return questions, answers


@settings(max_examples=300, deadline=None)
@given(exam=_exam_and_answers(), seed=st.integers(0, 2**32), shuffle_q=st.booleans(),
       shuffle_o=st.booleans(), reorder_picks=st.randoms(use_true_random=False))
def test_scoring_a_shuffled_presentation_equals_scoring_the_original(
    exam: tuple[list[dict[str, Any]], dict[str, Any]], seed: int, shuffle_q: bool,
    shuffle_o: bool, reorder_picks: random.Random,
) -> None:
    questions, answers = exam
    order = rules.presentation(questions, shuffle_q, shuffle_o, random.Random(seed))
    shown = rules.presented(questions, order)
    # The student answers on the shuffled page: by question id and option value, in the
    # page's order (and a multiple choice ticked in the page's option order).
    on_page: dict[str, Any] = {}
    for question in shown:
        if question["id"] not in answers:
            continue
        answer = answers[question["id"]]
        if isinstance(answer, list):
            answer = [o for o in question["options"] if o in answer]
            reorder_picks.shuffle(answer)
        on_page[question["id"]] = answer
    assert grading.score(questions, on_page, {}) == grading.score(questions, answers, {})
    # Scored against the presented questions too, the sum is the same.
    assert grading.score(shown, on_page, {}) == grading.score(questions, answers, {})


# --- the service and its policies ------------------------------------------------------------

async def _put(tx: InTransaction, who: Any, exam_id: Any, student_id: Any, **body: Any) -> Any:
    async with tx.as_(who) as session:
        return await accommodations.put(session, who, exam_id, student_id,
                                        AccommodationIn.model_validate(body), tx.ctx)


@pytest.mark.anyio
async def test_accommodation_service_rules(tx: InTransaction) -> None:
    teacher, viewer, student = (await tx.user(Role.teacher), await tx.user(Role.teacher),
                                await tx.user())
    exam = await tx.exam(teacher)
    row = await _put(tx, teacher, exam.id, student.user_id, extra_minutes=10, note="n")
    assert (row.extra_minutes, row.extra_attempts, row.note) == (10, 0, "n")
    with pytest.raises(Invalid):
        await _put(tx, teacher, exam.id, viewer.user_id, extra_minutes=1)
    with pytest.raises(NotFound):
        await _put(tx, teacher, exam.id, exam.id, extra_minutes=1)
    with pytest.raises(Forbidden):
        await _put(tx, viewer, exam.id, student.user_id, extra_minutes=99)
    async with tx.as_(teacher) as session:
        await accommodations.remove(session, teacher, exam.id, student.user_id, tx.ctx)
    with pytest.raises(NotFound):
        async with tx.as_(teacher) as session:
            await accommodations.remove(session, teacher, exam.id, student.user_id, tx.ctx)


@pytest.mark.anyio
async def test_policies_show_a_student_only_their_rows_and_a_teacher_their_exams(
    tx: InTransaction,
) -> None:
    teacher, stranger = await tx.user(Role.teacher), await tx.user(Role.teacher)
    s1, s2 = await tx.user(), await tx.user()
    exam = await tx.exam(teacher)
    for student in (s1, s2):
        await _put(tx, teacher, exam.id, student.user_id, extra_minutes=5)
    query = text("SELECT student_id FROM exam_accommodations")
    for student in (s1, s2):
        async with tx.as_(student) as session:
            assert list((await session.scalars(query)).all()) == [student.user_id]
    async with tx.as_(teacher) as session:
        assert set((await session.scalars(query)).all()) == {s1.user_id, s2.user_id}
    async with tx.as_(stranger) as session:
        assert list((await session.scalars(query)).all()) == []
        # Nor can another teacher change or delete them, whatever the query.
        changed = await session.execute(text("UPDATE exam_accommodations SET extra_minutes = 99"))
        assert changed.rowcount == 0  # type: ignore[attr-defined]
        gone = await session.execute(text("DELETE FROM exam_accommodations"))
        assert gone.rowcount == 0  # type: ignore[attr-defined]
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tx.as_(stranger) as session:
            await session.execute(text(
                "INSERT INTO exam_accommodations (exam_id, student_id, extra_minutes)"
                " VALUES (:e, :s, 60)"), {"e": exam.id, "s": s1.user_id})
    async with tx.as_(s1) as session:  # a student cannot give themselves time
        changed = await session.execute(text("UPDATE exam_accommodations SET extra_minutes = 60"))
        assert changed.rowcount == 0  # type: ignore[attr-defined]
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tx.as_(s1) as session:
            await session.execute(text(
                "INSERT INTO exam_accommodations (exam_id, student_id, extra_minutes)"
                " VALUES (:e, :s, 60) ON CONFLICT (exam_id, student_id)"
                " DO UPDATE SET extra_minutes = 60"), {"e": exam.id, "s": s1.user_id})
    assert await tx.scalar("SELECT max(extra_minutes) FROM exam_accommodations"
                           " WHERE exam_id = :e", e=exam.id) == 5


@pytest.mark.anyio
async def test_start_applies_window_limit_and_extra_time(tx: InTransaction) -> None:
    teacher, student = await tx.user(Role.teacher), await tx.user()
    exam = await tx.exam(teacher, max_attempts=1, duration_minutes=30)
    await _put(tx, teacher, exam.id, student.user_id, extra_minutes=10, extra_attempts=1)
    for _ in range(2):
        async with tx.as_(student) as session:
            attempt, created = await exams.start(session, student, exam.id, 5, tx.ctx)
            assert created
            assert attempt.expires_at - attempt.started_at == timedelta(minutes=40)
            attempt.status = AttemptStatus.completed  # done with it, as submitting would
    with pytest.raises(Conflict, match="no attempts left: 2 of 2 used"):
        async with tx.as_(student) as session:
            await exams.start(session, student, exam.id, 5, tx.ctx)
    async with tx.as_(teacher) as session:
        await exams.edit_exam(session, teacher, exam.id, ExamPatch(
            max_attempts=None, opens_at=datetime.now(UTC) + timedelta(days=1)), tx.ctx)
    with pytest.raises(Conflict, match="opens at"):
        async with tx.as_(student) as session:
            await exams.start(session, student, exam.id, 5, tx.ctx)
    with pytest.raises(Invalid, match="closes_at must be after opens_at"):
        async with tx.as_(teacher) as session:
            await exams.edit_exam(session, teacher, exam.id, ExamPatch(
                closes_at=datetime.now(UTC)), tx.ctx)
    with pytest.raises(Invalid, match="cannot be null"):
        async with tx.as_(teacher) as session:
            await exams.edit_exam(session, teacher, exam.id,
                                  ExamPatch.model_validate({"shuffle_options": None}), tx.ctx)
