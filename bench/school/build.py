"""Build a school-sized deployment in an empty, migrated database with COPY.

Rows have the shape the product writes (see veritas.demo): completed attempts with their
monitoring events (ids from event_row_id, anomalies from the product's rules), one
behavior_analysis row per attempt, and the denormalized student rows that `recompute`
rewrites. Everything is drawn from one seeded random generator, so two runs build the same
school (up to uuid4 ids).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import fmean
from typing import Any

import asyncpg
import orjson

from bench.ingest.common import event_templates
from veritas.auth import passwords
from veritas.config import asyncpg_dsn
from veritas.monitoring.ingest import REFOLD_SQL, event_row_id
from veritas.monitoring.rules import DEFAULT_RULES, evaluate

EVENT_COLUMNS = ("id", "attempt_started_at", "exam_attempt_id", "student_id", "event_id",
                 "event_type", "severity", "data_payload", "is_anomaly", "anomaly_score",
                 "description", "analysis_notes", "client_timestamp", "server_timestamp")
ATTEMPT_COLUMNS = ("id", "exam_id", "student_id", "status", "score", "max_score", "percentage",
                   "passed", "integrity_score", "lmi", "dropout_label", "flagged", "started_at",
                   "expires_at", "completed_at", "duration_seconds", "submission_data",
                   "metadata")
ANALYSIS_COLUMNS = ("exam_attempt_id", "student_id", "total_monitoring_events",
                    "anomaly_count", "critical_events", "integrity_score",
                    "originality_indicators", "lmi_score", "improvement_trend",
                    "dropout_label", "dropout_confidence", "llm_summary",
                    "requires_instructor_attention", "requires_recap", "analysis_version",
                    "details", "completed_at")
SUBJECTS = ["Mathematics", "Physics", "Chemistry", "Biology", "History", "Geography",
            "Literature", "Computer Science"]
DOMAIN = "bench.veritas.school"
PASSWORD = "Bench-school-2026!"
HISTORY_DAYS = 180  # attempts spread over ~7 monthly event partitions
FLAGGED_SHARE = 0.03


@dataclass
class Sizes:
    students: int
    exams: int
    attempts: int
    events: int

    @property
    def teachers(self) -> int:
        return max(3, self.exams // 10)


@dataclass
class School:
    """Ids the measurements draw from."""

    students: list[uuid.UUID] = field(default_factory=list)
    teachers: list[uuid.UUID] = field(default_factory=list)
    exams: list[uuid.UUID] = field(default_factory=list)
    analytics_grants: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _questions(i: int) -> list[dict[str, Any]]:
    # One of each scored kind plus an essay, so free-text signals have something to read.
    return [
        {"id": "q1", "type": "single_choice", "prompt": f"Question {i}.1", "points": 4,
         "options": ["a", "b", "c"], "correct": "b"},
        {"id": "q2", "type": "short_text", "prompt": f"Question {i}.2", "points": 3,
         "correct": ["yes"]},
        {"id": "q3", "type": "essay", "prompt": f"Question {i}.3", "points": 3},
    ]


def _signals(rng: random.Random, suspicious: bool) -> dict[str, Any]:
    """Integrity signals in the shape analysis stores them, so analyses have a population."""
    return {
        "focus_away_seconds": rng.uniform(60, 400) if suspicious else rng.uniform(0, 40),
        "focus_episodes": float(rng.randint(3, 9) if suspicious else rng.randint(0, 3)),
        "paste_ratio": rng.uniform(0.4, 1.0) if suspicious else rng.uniform(0, 0.05),
        "typing_shortfall": rng.uniform(0.3, 0.9) if suspicious else rng.uniform(0, 0.1),
        "camera_off_share": None,
        "paste_jumps": float(rng.randint(1, 3) if suspicious else 0),
        "peer_similarity": rng.uniform(0, 0.2),
        "coverage": rng.uniform(0.9, 1.0),
    }


async def _copy(conn: asyncpg.Connection, table: str, columns: tuple[str, ...],
                rows: list[tuple]) -> None:
    await conn.copy_records_to_table(table, records=rows, columns=columns)


async def build(url: str, sizes: Sizes, seed: int = 2026) -> School:
    rng = random.Random(seed)
    school = School()
    now = datetime.now(UTC)
    t = time.perf_counter()
    # One hash for every account: bcrypt at rounds 4 is still ~1 ms, times 10,000 is waste.
    hashed = await passwords.hash_password(PASSWORD, 4)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        # --- users and profiles -------------------------------------------------------
        users, students, teacher_rows = [], [], []
        for i in range(sizes.teachers):
            uid = uuid.uuid4()
            school.teachers.append(uid)
            users.append((uid, f"teacher{i}@{DOMAIN}", f"teacher{i}", hashed, "teacher",
                          f"Teacher {i}", True, "{}"))
            teacher_rows.append((uid, SUBJECTS[i % len(SUBJECTS)]))
        for i in range(sizes.students):
            uid = uuid.uuid4()
            school.students.append(uid)
            users.append((uid, f"student{i}@{DOMAIN}", f"student{i}", hashed, "student",
                          f"Student {i}", True, "{}"))
            students.append((uid, f"S{1_000_000 + i}", f"Year {10 + i % 3}"))
        async with conn.transaction():
            await _copy(conn, "users", ("id", "email", "username", "password_hash", "role",
                                        "full_name", "is_verified", "metadata"), users)
            await _copy(conn, "teacher_profiles", ("user_id", "department"), teacher_rows)
        school.timings["users_s"] = time.perf_counter() - t

        # --- exams and grants: each teacher owns ~10 exams, and may analyze ~10 more ----
        t = time.perf_counter()
        exams, grants, exam_info = [], [], []
        for i in range(sizes.exams):
            eid = uuid.uuid4()
            owner = school.teachers[i % sizes.teachers]
            colleague = school.teachers[(i + 1) % sizes.teachers]
            subject = SUBJECTS[i % len(SUBJECTS)]
            duration = rng.choice((30, 45, 60))
            created = now - timedelta(days=HISTORY_DAYS + 10 - i * HISTORY_DAYS / sizes.exams)
            questions = _questions(i)
            exams.append((eid, owner, f"{subject} test {i}", subject, f"Unit {i % 12}", 10.0,
                          duration, 6.0, True, orjson.dumps(questions).decode(), "{}",
                          created + timedelta(days=30), created))
            grants.append((owner, eid, True, True, True, owner))
            grants.append((colleague, eid, True, False, True, owner))
            school.exams.append(eid)
            school.analytics_grants += [(owner, eid), (colleague, eid)]
            exam_info.append((eid, duration, created, questions))
        async with conn.transaction():
            await _copy(conn, "exams", ("id", "creator_id", "title", "subject", "topic",
                                        "max_score", "duration_minutes", "passing_score",
                                        "is_published", "questions", "metadata", "due_at",
                                        "created_at"), exams)
            await _copy(conn, "teacher_exam_permissions",
                        ("teacher_id", "exam_id", "can_view", "can_edit", "can_view_analytics",
                         "granted_by"), grants)
        school.timings["exams_s"] = time.perf_counter() - t

        # --- attempts and their analyses ------------------------------------------------
        t = time.perf_counter()
        per_student = sizes.attempts // sizes.students
        extra = sizes.attempts - per_student * sizes.students
        attempts, analyses, event_plan = [], [], []
        stats: dict[uuid.UUID, list[tuple]] = {}
        for s_index, student in enumerate(school.students):
            skill = rng.uniform(0.3, 0.95)
            count = min(sizes.exams, per_student + (1 if s_index < extra else 0))
            rows = []
            for eid, duration, _created, questions in rng.sample(exam_info, k=count):
                aid = uuid.uuid4()
                age = rng.uniform(0, HISTORY_DAYS)
                started = now - timedelta(days=age)
                took = rng.randint(10, duration) * 60
                right = [rng.random() < skill for _ in range(3)]
                score = 4.0 * right[0] + 3.0 * right[1] + 3.0 * rng.random() * right[2]
                suspicious = rng.random() < FLAGGED_SHARE
                integrity = rng.uniform(0.05, 0.4) if suspicious else rng.uniform(0.75, 1.0)
                lmi = rng.uniform(-0.6, 0.6)
                label = rng.choices(("safe", "at_risk", "high_risk"), (85, 12, 3))[0]
                responses = {"q1": "b" if right[0] else "a", "q2": "yes" if right[1] else "no",
                             "q3": f"My answer about unit {age:.0f} is " + "word " * 20}
                attempts.append((
                    aid, eid, student, "completed", score, 10.0, score * 10, score >= 6.0,
                    integrity, lmi, label, suspicious, started,
                    started + timedelta(minutes=duration), started + timedelta(seconds=took),
                    took, orjson.dumps({"questions": questions, "drafts": [],
                                        "responses": responses}).decode(),
                    '{"source": "bench"}'))
                signals = _signals(rng, suspicious)
                analyses.append((
                    aid, student, 0, 0, 0, integrity,
                    orjson.dumps({k: signals[k] for k in ("paste_ratio", "typing_shortfall",
                                                          "paste_jumps", "peer_similarity")}
                                 ).decode(),
                    lmi, rng.choice(("improving", "steady", "declining")), label,
                    rng.uniform(0.5, 0.95), "Generated by bench.school.", suspicious,
                    score < 6.0, "bench-school",
                    orjson.dumps({"signals": signals}).decode(),
                    started + timedelta(seconds=took)))
                event_plan.append((aid, student, started, took))
                rows.append((score * 10, score >= 6.0, integrity, lmi, label, suspicious,
                             started + timedelta(seconds=took)))
            stats[student] = rows
        async with conn.transaction():
            await _copy(conn, "exam_attempts", ATTEMPT_COLUMNS, attempts)
        school.timings["attempts_s"] = time.perf_counter() - t
        t = time.perf_counter()

        # Denormalized student rows, roughly what refresh_student writes; recompute redoes them.
        profiles, metrics = [], []
        for (uid, enrollment, cohort) in students:
            rows = stats[uid]
            rows.sort(key=lambda r: r[6])
            passed = sum(1 for r in rows if r[1])
            flagged = any(r[5] for r in rows)
            label = rows[-1][4] if rows else None
            integ = fmean(r[2] for r in rows) if rows else None
            profiles.append((uid, enrollment, cohort, integ, rows[-1][3] if rows else None,
                             len(rows), passed, label, flagged))
            metrics.append((uid, len(rows), passed,
                            fmean(r[0] for r in rows) if rows else None, integ,
                            fmean(r[3] for r in rows) if rows else None, label,
                            flagged or label == "high_risk",
                            rows[-1][6] if rows else None))
        async with conn.transaction():
            await _copy(conn, "student_profiles",
                        ("user_id", "enrollment_id", "cohort", "cumulative_integrity_score",
                         "cumulative_lmi", "total_exams_attempted", "total_exams_passed",
                         "current_dropout_risk", "flagged_for_review"), profiles)
            await _copy(conn, "performance_metrics",
                        ("student_id", "total_attempts", "total_passed", "avg_score",
                         "avg_integrity_score", "avg_lmi", "current_risk_label",
                         "flagged_for_intervention", "last_attempt_date"), metrics)
        school.timings["students_s"] = time.perf_counter() - t

        # --- monitoring events: ensure each month's partition, then COPY in parallel ------
        t = time.perf_counter()
        month = (now - timedelta(days=HISTORY_DAYS + 31)).replace(day=1)
        while month <= now:
            await conn.execute("SELECT veritas_ensure_event_partition($1)", month)
            month = (month + timedelta(days=32)).replace(day=1)
        counts = _event_counts(len(event_plan), sizes.events)
        workers = max(1, min(4, os.cpu_count() or 1))
        slices = [(url, event_plan[i::workers], counts[i::workers], seed + i)
                  for i in range(workers)]
        loop = asyncio.get_running_loop()
        # Generating 5 M rows is CPU-bound Python; one process per core keeps COPY fed.
        with ProcessPoolExecutor(workers) as pool:
            per_attempt = await asyncio.gather(*(
                loop.run_in_executor(pool, _load_events_sync, *s) for s in slices))
        school.timings["events_s"] = time.perf_counter() - t

        # behavior_analysis carries the attempt's event counts, so it goes in after events.
        t = time.perf_counter()
        tallies = {aid: c for part in per_attempt for aid, c in part.items()}
        analyses = [(a[0], a[1], *tallies.get(a[0], (0, 0, 0)), *a[5:]) for a in analyses]
        async with conn.transaction():
            await _copy(conn, "behavior_analysis", ANALYSIS_COLUMNS, analyses)
        school.timings["analyses_s"] = time.perf_counter() - t
    finally:
        await conn.close()
    return school


def _event_counts(attempts: int, events: int) -> list[int]:
    base, extra = divmod(events, max(1, attempts))
    return [base + (1 if i < extra else 0) for i in range(attempts)]


def _templates() -> list[tuple[str, str, str, bool, float | None, str | None]]:
    """The shared event mix, with the product's own anomaly verdict computed once each."""
    out = []
    for kind, severity, data in event_templates():
        anomaly, score, note = evaluate(kind, severity, data, dict(DEFAULT_RULES))
        out.append((kind, severity, orjson.dumps(data).decode(), anomaly, score, note))
    return out


def event_rows(aid: uuid.UUID, student: uuid.UUID, started: datetime, seconds: int, n: int,
               rng: random.Random, templates: list[tuple]) -> list[tuple]:
    """n events spread evenly over an attempt, drawn from the standard vocabulary."""
    rows = []
    step = seconds / max(n, 1)
    for j in range(n):
        kind, severity, payload, anomaly, score, note = templates[rng.randrange(len(templates))]
        event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        at = started + timedelta(seconds=j * step)
        rows.append((event_row_id(aid, event_id), started, aid, student, event_id, kind,
                     severity, payload, anomaly, score, note, note, at, at))
    return rows


def _load_events_sync(url: str, plan: list[tuple], counts: list[int],
                      seed: int) -> dict[uuid.UUID, tuple[int, int, int]]:
    return asyncio.run(_load_events(url, plan, counts, seed))


async def _load_events(url: str, plan: list[tuple], counts: list[int],
                       seed: int) -> dict[uuid.UUID, tuple[int, int, int]]:
    rng = random.Random(seed)
    templates = _templates()
    tallies: dict[uuid.UUID, tuple[int, int, int]] = {}
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        batch: list[tuple] = []
        for (aid, student, started, took), n in zip(plan, counts, strict=True):
            rows = event_rows(aid, student, started, took, n, rng, templates)
            tallies[aid] = (n, sum(1 for r in rows if r[8]),
                            sum(1 for r in rows if r[6] == "critical"))
            batch += rows
            if len(batch) >= 50_000:
                await _copy(conn, "monitoring_events", EVENT_COLUMNS, batch)
                batch = []
        if batch:
            await _copy(conn, "monitoring_events", EVENT_COLUMNS, batch)
        # Loaded around the ingestion writer: fold their anomalies into alerts as it would.
        await conn.execute(REFOLD_SQL, [aid for aid, _, _, _ in plan])
    finally:
        await conn.close()
    return tallies
