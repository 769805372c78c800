"""`veritas demo`: a believable school in an empty database, so a newcomer sees real screens.

Teachers, students, published exams with questions, and completed attempts with monitoring
events, all written through the same models and scoring code the service uses. Deterministic
for a given student count (seeded random), except the password, which is random unless given.
"""

from __future__ import annotations

import random
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select, text

from veritas.analysis.service import refresh_student
from veritas.audit import service as audit
from veritas.auth import passwords
from veritas.auth.models import User
from veritas.auth.service import create_profile, replace_passwords
from veritas.config import Settings
from veritas.core.queue import enqueue_analysis
from veritas.db.base import AttemptStatus, Role
from veritas.db.engine import create_engine, create_sessionmaker
from veritas.db.tools import refresh_views
from veritas.db.unit_of_work import SYSTEM, unit_of_work
from veritas.exams.models import Exam, ExamAttempt, TeacherExamPermission
from veritas.exams.schemas import earned_points
from veritas.exams.settings import exam_settings
from veritas.grading.rules import grading_status
from veritas.monitoring.ingest import REFOLD_SQL, event_row_id
from veritas.monitoring.partitions import copy_events
from veritas.monitoring.rules import evaluate

DOMAIN = "demo.veritas.school"

TEACHERS = [("mkhan", "Maryam Khan", "Mathematics"), ("jlopez", "Javier López", "Physics"),
            ("ewright", "Elena Wright", "History")]
FIRST = ["Amara", "Ben", "Chloé", "Dmitri", "Esi", "Farid", "Grace", "Hiro", "Ines", "Jonas",
         "Kofi", "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quinn", "Rosa", "Sami", "Tariq",
         "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zoe"]
LAST = ["Adeyemi", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Haddad", "Ito",
        "Jensen", "Kowalski", "Liu", "Mensah", "Novak", "Okafor", "Patel", "Rossi", "Silva"]

EXAMS: list[dict[str, Any]] = [
    {"subject": "Mathematics", "topic": "Algebra", "title": "Linear equations check-in",
     "questions": [
         {"id": "q1", "type": "single_choice", "prompt": "Solve 3x + 5 = 20.", "points": 2,
          "options": ["x = 3", "x = 5", "x = 15"], "correct": "x = 5"},
         {"id": "q2", "type": "multiple_choice", "prompt": "Which are solutions of x² = 9?",
          "points": 3, "options": ["-3", "0", "3", "9"], "correct": ["-3", "3"]},
         {"id": "q3", "type": "short_text", "prompt": "Slope of y = 4x - 1?", "points": 2,
          "correct": ["4"]},
         {"id": "q4", "type": "essay", "prompt": "Explain when a linear system has no solution.",
          "points": 3},
     ]},
    {"subject": "Mathematics", "topic": "Geometry", "title": "Triangles and circles",
     "questions": [
         {"id": "q1", "type": "single_choice", "prompt": "Angles of a triangle sum to?",
          "points": 2, "options": ["90°", "180°", "360°"], "correct": "180°"},
         {"id": "q2", "type": "short_text", "prompt": "Area of a circle of radius 1 (symbol)?",
          "points": 3, "correct": ["π", "pi"]},
         {"id": "q3", "type": "multiple_choice", "prompt": "Which triangles can be right-angled?",
          "points": 5, "options": ["isosceles", "equilateral", "scalene"],
          "correct": ["isosceles", "scalene"]},
     ]},
    {"subject": "Physics", "topic": "Mechanics", "title": "Forces and motion",
     "questions": [
         {"id": "q1", "type": "single_choice", "prompt": "Unit of force?", "points": 2,
          "options": ["joule", "newton", "watt"], "correct": "newton"},
         {"id": "q2", "type": "short_text", "prompt": "g on Earth, m/s², one decimal?",
          "points": 3, "correct": ["9.8", "9.81"]},
         {"id": "q3", "type": "essay", "prompt": "Describe Newton's third law with an example.",
          "points": 5},
     ]},
    {"subject": "Physics", "topic": "Electricity", "title": "Circuits basics",
     "questions": [
         {"id": "q1", "type": "single_choice", "prompt": "V = ?", "points": 4,
          "options": ["I·R", "I/R", "R/I"], "correct": "I·R"},
         {"id": "q2", "type": "multiple_choice", "prompt": "Conductors?", "points": 6,
          "options": ["copper", "glass", "silver", "rubber"], "correct": ["copper", "silver"]},
     ]},
    {"subject": "History", "topic": "Modern Europe", "title": "The French Revolution",
     "questions": [
         {"id": "q1", "type": "single_choice", "prompt": "The Bastille fell in?", "points": 3,
          "options": ["1776", "1789", "1815"], "correct": "1789"},
         {"id": "q2", "type": "essay", "prompt": "Causes of the Revolution, in your words.",
          "points": 7},
     ]},
    {"subject": "History", "topic": "Antiquity", "title": "Ancient Rome",
     "questions": [
         {"id": "q1", "type": "short_text", "prompt": "First Roman emperor?", "points": 5,
          "correct": ["Augustus", "Octavian"]},
         {"id": "q2", "type": "single_choice", "prompt": "Rome's founding myth twins?",
          "points": 5, "options": ["Romulus and Remus", "Castor and Pollux"],
          "correct": "Romulus and Remus"},
     ]},
]

EVENT_COLUMNS = ("id", "attempt_started_at", "exam_attempt_id", "student_id", "event_id",
                 "event_type", "severity", "data_payload", "is_anomaly", "anomaly_score",
                 "description", "analysis_notes", "client_timestamp", "server_timestamp")


def _answer(question: dict[str, Any], skill: float, rng: random.Random) -> Any:
    right = rng.random() < skill
    kind = question["type"]
    if kind == "single_choice":
        wrong = [o for o in question["options"] if o != question["correct"]]
        return question["correct"] if right else rng.choice(wrong)
    if kind == "multiple_choice":
        return list(question["correct"]) if right else question["options"][:1]
    if kind == "short_text":
        return question["correct"][0] if right else "not sure"
    return "I think the key idea is " + rng.choice(["balance", "change", "cause and effect"])


def _events(attempt: ExamAttempt, exam: Exam, honest: bool, rng: random.Random) -> list[tuple[Any, ...]]:
    """Heartbeats, typing, and for some students long focus losses and big pastes."""
    rules = exam_settings(exam.metadata_).anomaly_thresholds
    rows = []
    minutes = max(3, (attempt.duration_seconds or 600) // 60)
    plan: list[tuple[str, str, dict[str, Any]]] = []
    for _minute in range(minutes):
        plan.append(("heartbeat", "normal", {}))
        plan.append(("typing", "normal", {"question_id": "q1", "keys": rng.randint(20, 90),
                                          "chars_added": rng.randint(15, 80),
                                          "mean_interval_ms": rng.randint(120, 380),
                                          "pauses_over_2s": rng.randint(0, 3)}))
        if rng.random() < 0.15:
            plan.append(("focus_lost", "normal", {"duration_ms": rng.randint(300, 1800)}))
    if not honest:
        plan.append(("focus_lost", "warning", {"duration_ms": rng.randint(20_000, 90_000)}))
        plan.append(("paste", "warning", {"chars": rng.randint(400, 1500), "question_id": "q2"}))
        if rng.random() < 0.3:
            plan.append(("multiple_faces", "critical", {"count": 2}))
    for i, (kind, severity, data) in enumerate(plan):
        at = attempt.started_at + timedelta(seconds=int(i * 60 * minutes / max(len(plan), 1)))
        judged = evaluate(kind, severity, data, rules)
        event_id = uuid.uuid4()
        rows.append((event_row_id(attempt.id, event_id), attempt.started_at, attempt.id,
                     attempt.student_id, event_id, kind, judged.severity,
                     orjson.dumps(data).decode(), judged.anomaly, judged.score,
                     judged.description, judged.description, at, at))
    return rows


async def reset_demo_passwords(url: str, password: str | None) -> None:
    """Give every demo account one new password (printed), ending their sessions."""
    settings = Settings(database_url=url, debug=True)
    password = password or secrets.token_urlsafe(12)
    passwords.check_policy(password)
    hashed = await passwords.hash_password(password, settings.bcrypt_rounds)
    engine = create_engine(settings, url)
    try:
        async with unit_of_work(create_sessionmaker(engine), SYSTEM) as session:
            ids = list((await session.scalars(
                select(User.id).where(User.email.like(f"%@{DOMAIN}")))).all())
            if not ids:
                raise SystemExit("there is no demo school in this database: `veritas demo`"
                                 " makes one")
            await replace_passwords(session, ids, hashed)
            await audit.record(session, None, None, "reset_demo_passwords", "user", None,
                               {"via": "cli", "accounts": len(ids)})
    finally:
        await engine.dispose()
    print(f"new password for every demo account ({len(ids)}): {password}")
    print(f"teachers: {', '.join(f'{u}@{DOMAIN}' for u, _, _ in TEACHERS)}")


async def build_demo(url: str, *, password: str | None, students: int) -> None:
    settings = Settings(database_url=url, debug=True)
    password = password or secrets.token_urlsafe(12)
    passwords.check_policy(password)
    hashed = await passwords.hash_password(password, settings.bcrypt_rounds)
    rng = random.Random(2026)
    engine = create_engine(settings, url)
    sessions = create_sessionmaker(engine)
    try:
        async with unit_of_work(sessions, SYSTEM) as session:
            exists = await session.scalar(
                select(func.count()).select_from(User).where(User.email.like(f"%@{DOMAIN}"))
            )
            if exists:
                raise SystemExit("the demo school is already in this database;"
                                 " `veritas demo --reset-passwords` prints new passwords")
            teachers = {}
            for username, name, subject in TEACHERS:
                user = User(email=f"{username}@{DOMAIN}", username=username, full_name=name,
                            password_hash=hashed, role=Role.teacher, is_verified=True,
                            metadata_={"department": subject})
                session.add(user)
                await session.flush()
                await create_profile(session, user)
                teachers[subject] = user
            pupils = []
            for i in range(students):
                first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
                username = f"{first.lower()}.{last.lower()}{i}".encode("ascii", "ignore").decode()
                user = User(email=f"{username}@{DOMAIN}", username=username,
                            full_name=f"{first} {last}", password_hash=hashed,
                            role=Role.student, is_verified=True, metadata_={})
                session.add(user)
                await session.flush()
                await create_profile(session, user, f"S{2026000 + i}", f"Year {10 + i % 3}")
                pupils.append((user, rng.uniform(0.35, 0.95), rng.random() < 0.8))
            now = datetime.now(UTC)
            exams = []
            for spec in EXAMS:
                creator = teachers[spec["subject"]]
                total = sum(q["points"] for q in spec["questions"])
                exam = Exam(creator_id=creator.id, title=spec["title"], subject=spec["subject"],
                            topic=spec["topic"], description=f"{spec['topic']} unit test.",
                            max_score=total, passing_score=round(total * 0.6, 1),
                            duration_minutes=rng.choice((20, 30, 45)), is_published=True,
                            questions=spec["questions"], metadata_={})
                session.add(exam)
                await session.flush()
                session.add(TeacherExamPermission(teacher_id=creator.id, exam_id=exam.id,
                                                  can_view=True, can_edit=True,
                                                  can_view_analytics=True,
                                                  granted_by=creator.id))
                exams.append(exam)
            event_rows: list[tuple[Any, ...]] = []
            for user, skill, honest in pupils:
                for exam in rng.sample(exams, k=rng.randint(2, 4)):
                    started = now - timedelta(days=rng.randint(1, 50), minutes=rng.randint(0, 600))
                    responses = {q["id"]: _answer(q, skill, rng) for q in exam.questions}
                    score = sum(earned_points(q, responses[q["id"]]) for q in exam.questions)
                    took = rng.randint(6, exam.duration_minutes) * 60
                    attempt = ExamAttempt(
                        exam_id=exam.id, student_id=user.id, status=AttemptStatus.completed,
                        score=score, max_score=exam.max_score,
                        percentage=score / exam.max_score * 100,
                        passed=score >= exam.passing_score, started_at=started,
                        # The essays wait for their teacher, as after a real submit.
                        grading_status=grading_status(exam.questions, ()),
                        expires_at=started + timedelta(minutes=exam.duration_minutes),
                        completed_at=started + timedelta(seconds=took), duration_seconds=took,
                        submission_data={"questions": exam.questions, "drafts": [],
                                         "responses": responses},
                        metadata_={"source": "demo"},
                    )
                    session.add(attempt)
                    await session.flush()
                    await refresh_student(session, user.id, lock=False)  # one transaction
                    # Analyses run in the worker (inside `veritas serve`), as for real submits.
                    await enqueue_analysis(session, attempt.id)
                    await session.execute(text("SELECT veritas_ensure_event_partition(:s)"),
                                          {"s": started})
                    event_rows += _events(attempt, exam, honest, rng)
            raw = await (await session.connection()).get_raw_connection()
            driver = raw.driver_connection  # asyncpg's, under the session's transaction
            assert driver is not None  # only a closed connection has none
            await copy_events(driver, event_rows, EVENT_COLUMNS)
            # Written around the ingestion writer, so their alerts are folded here.
            await driver.execute(REFOLD_SQL, list({row[2] for row in event_rows}))
    finally:
        await engine.dispose()
    await refresh_views(url)
    print(f"demo school ready: {len(TEACHERS)} teachers, {students} students, {len(EXAMS)} exams,"
          f" {len(event_rows)} monitoring events")
    print(f"teachers: {', '.join(f'{u}@{DOMAIN}' for u, _, _ in TEACHERS)}")
    print(f"a student: {pupils[0][0].email}")
    print(f"password for every demo account: {password}")
    print("integrity analyses are queued; `veritas serve` (or `veritas worker`) runs them")
