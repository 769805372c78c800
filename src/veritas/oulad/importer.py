"""`veritas import oulad DIR`: an OULAD directory as Veritas users, cohorts, exams and attempts.

Mapping, through the product's own tables:

- each student -> a student user `oulad_<id_student>` (email `<id>@oulad.example`, a bcrypt
  hash of a random secret nobody keeps, so nobody can log in as them) with a student profile
  and performance metrics. users.metadata['oulad']['registrations'] holds one entry per
  module-presentation: the registration and unregistration days, studied credits, previous
  attempts, final_result and the demographics. Demographics are kept for per-group checks
  only; the risk model never reads them.
- each module-presentation -> a cohort ('AAA-2013J', the profile's cohort is the student's
  latest one) and a subject (exams.subject = the module code); each module -> a teacher user
  `oulad_teacher_<module>` who owns its exams.
- each assessment -> a published exam out of 100 (pass mark 40), due at presentation start +
  `date` days (no due date when OULAD gives none, as for most final exams).
- each assessment result -> a completed attempt: score, percentage, passed, and completed_at
  = presentation start + date_submitted days; banked results are marked in its metadata.

Every imported row carries an external_ref ('oulad:student:11391', 'oulad:result:1752:11391')
with a unique index, and rows are written with ON CONFLICT DO NOTHING, so a second run adds
nothing. Files are read and checked completely before the database is touched, and all writes
happen in one transaction: a bad file or a failure leaves the database as it was.
"""

from __future__ import annotations

import os
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from veritas.auth import passwords
from veritas.config import asyncpg_dsn
from veritas.db.tools import refresh_views
from veritas.db.unit_of_work import SYSTEM_SERVER_SETTINGS
from veritas.oulad.files import (
    Assessment,
    Dataset,
    Registration,
    cohort_key,
    presentation_start,
    read_dataset,
)
from veritas.oulad.progress import Progress

SOURCE = "oulad"
EMAIL_DOMAIN = "oulad.example"  # reserved for examples (RFC 2606): mail can never reach anyone
MAX_SCORE = 100.0  # OULAD marks are percentages
PASS_MARK = 40.0  # the Open University's pass mark for an assessment
# OULAD records no time limits (TMAs are weeks-long take-home work); exams need one, so this
# nominal value only fills the column and the attempts' expiry.
DURATION_MINUTES = 120
COPY_CHUNK = 10_000  # rows per COPY call: large enough to be fast, small enough to show progress
LOCK = "veritas_oulad_import"  # two concurrent imports queue instead of deadlocking


class ImportConflict(RuntimeError):
    """The database holds rows that block the import."""


@dataclass
class ImportSummary:
    """What an import found in the files and what it changed in the database."""

    students: int = 0
    students_added: int = 0
    students_updated: int = 0  # existing students given new or changed registrations
    teachers_added: int = 0
    exams: int = 0
    exams_added: int = 0
    attempts: int = 0
    attempts_added: int = 0
    profiles_updated: int = 0
    presentations: list[str] = field(default_factory=list)  # codes in the files, e.g. 2013J
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any((self.students_added, self.students_updated, self.teachers_added,
                    self.exams_added, self.attempts_added, self.profiles_updated))

    def text(self) -> str:
        return (f"OULAD import: {self.students:,} students ({self.students_added:,} new,"
                f" {self.students_updated:,} updated), {self.exams:,} exams"
                f" ({self.exams_added:,} new), {self.attempts:,} attempts"
                f" ({self.attempts_added:,} new), {self.teachers_added} new teachers,"
                f" {self.profiles_updated:,} profiles recounted")


async def import_oulad(
    url: str, directory: Path, *, progress: Progress | None = None,
    bcrypt_rounds: int | None = None,
) -> ImportSummary:
    """Import an OULAD directory into the database at url; OuladFormatError on a bad file."""
    bar = progress or Progress(enabled=False)
    data = read_dataset(directory, progress=lambda name, rows: bar.step(f"read {name}", rows))
    rounds = bcrypt_rounds or int(os.environ.get("BCRYPT_ROUNDS", "12"))
    # One hash for every imported account, of a secret that is never stored or shown: the
    # accounts are real rows (teachers can open them) but no one can log in as them.
    unusable = await passwords.hash_password(secrets.token_urlsafe(32), rounds)
    summary = ImportSummary(warnings=list(data.warnings),
                            presentations=sorted({p for _, p in data.presentations}))
    conn = await asyncpg.connect(asyncpg_dsn(url), server_settings={
        "timezone": "UTC", **SYSTEM_SERVER_SETTINGS})
    try:
        if not await conn.fetchval(
            "SELECT count(*) = 3 FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND column_name = 'external_ref'"
            " AND table_name IN ('users', 'exams', 'exam_attempts')"
        ):
            raise ImportConflict("the database lacks the import keys (migration 0002):"
                                 " run `veritas migrate` first")
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", LOCK)
            await _write_teachers(conn, data, unusable, summary)
            await _write_students(conn, data, unusable, summary, bar)
            await _write_exams(conn, data, summary)
            await _write_attempts(conn, data, summary, bar)
            await _recount(conn, summary, bar)
            if summary.changed:
                await conn.execute(
                    "INSERT INTO audit_logs (action, resource_type, resource_id, details)"
                    " VALUES ('import_oulad', 'dataset', $1, $2)",
                    str(directory.resolve()),
                    orjson.dumps(vars(summary)).decode(),
                )
    except asyncpg.UniqueViolationError as exc:
        # Only the username and email indexes can clash: external_ref conflicts are skipped.
        raise ImportConflict(
            f"an account not imported from OULAD already uses an OULAD username or email"
            f" ({exc.detail or exc.constraint_name}); rename it or import elsewhere") from None
    finally:
        await conn.close()
    if summary.changed:
        await refresh_views(url)  # the summary views would otherwise lag until the next refresh
    return summary


async def _write_teachers(conn: asyncpg.Connection, data: Dataset, pw_hash: str,
                          summary: ImportSummary) -> None:
    modules = sorted({module for module, _ in data.presentations})
    status = await conn.execute(
        """
        WITH added AS (
            INSERT INTO users (external_ref, email, username, password_hash, role, full_name,
                               is_verified, metadata)
            SELECT 'oulad:teacher:' || m, 'teacher.' || lower(m) || '@' || $2,
                   'oulad_teacher_' || lower(m), $3, 'teacher', 'Module ' || m || ' team',
                   true, jsonb_build_object('source', 'oulad', 'module', m)
            FROM unnest($1::text[]) AS m
            ON CONFLICT (external_ref) DO NOTHING
            RETURNING id, metadata->>'module' AS module
        )
        INSERT INTO teacher_profiles (user_id, department)
        SELECT id, module FROM added
        ON CONFLICT (user_id) DO NOTHING
        """,
        modules, EMAIL_DOMAIN, pw_hash,
    )
    summary.teachers_added = _count(status)


def _registration_entry(r: Registration) -> dict[str, Any]:
    return {
        "code_module": r.module,
        "code_presentation": r.presentation,
        "date_registration": r.registration_day,
        "date_unregistration": r.unregistration_day,
        "studied_credits": r.studied_credits,
        "num_of_prev_attempts": r.previous_attempts,
        "final_result": r.final_result,
        # For per-group fairness checks only; never an input of the risk model.
        "demographics": r.demographics,
    }


def latest_cohort(registrations: Sequence[Registration]) -> str:
    """Return the cohort a profile shows: the latest presentation ('2013B' < '2013J' < '2014B')."""
    return max(registrations, key=lambda r: (r.presentation, r.module)).cohort


async def _write_students(conn: asyncpg.Connection, data: Dataset, pw_hash: str,
                          summary: ImportSummary, bar: Progress) -> None:
    by_student: dict[str, list[Registration]] = defaultdict(list)
    for registration in data.registrations.values():
        by_student[registration.student].append(registration)
    summary.students = len(by_student)
    records = []
    for student, regs in by_student.items():
        metadata = {"source": SOURCE, "oulad": {
            "id_student": student,
            "registrations": {r.cohort: _registration_entry(r) for r in regs},
        }}
        records.append((f"oulad:student:{student}", f"oulad_{student}",
                        f"{student}@{EMAIL_DOMAIN}", f"OULAD student {student}", student,
                        latest_cohort(regs), orjson.dumps(metadata).decode()))
    await conn.execute(
        "CREATE TEMP TABLE oulad_students (external_ref text PRIMARY KEY, username text,"
        " email text, full_name text, enrollment_id text, cohort text, metadata jsonb)"
        " ON COMMIT DROP")
    await _copy(conn, "oulad_students", records, bar, "write students")
    rows = await conn.fetch(
        """
        INSERT INTO users (external_ref, email, username, password_hash, role, full_name,
                           metadata)
        SELECT external_ref, email, username, $1, 'student', full_name, metadata
        FROM oulad_students
        ON CONFLICT (external_ref) DO UPDATE
            -- A later import (say 2014 after 2013) adds the student's new registrations.
            SET metadata = jsonb_set(users.metadata, '{oulad,registrations}',
                                     COALESCE(users.metadata #> '{oulad,registrations}', '{}')
                                     || (EXCLUDED.metadata #> '{oulad,registrations}')),
                updated_at = now()
            WHERE NOT COALESCE(users.metadata #> '{oulad,registrations}', '{}')
                      @> (EXCLUDED.metadata #> '{oulad,registrations}')
        RETURNING (xmax = 0) AS inserted
        """,
        pw_hash,
    )
    summary.students_added = sum(1 for r in rows if r["inserted"])
    summary.students_updated = len(rows) - summary.students_added
    await conn.execute(
        """
        INSERT INTO student_profiles (user_id, enrollment_id, cohort)
        SELECT u.id, s.enrollment_id, s.cohort
        FROM oulad_students s JOIN users u ON u.external_ref = s.external_ref
        ON CONFLICT (user_id) DO NOTHING;
        INSERT INTO performance_metrics (student_id)
        SELECT u.id FROM oulad_students s JOIN users u ON u.external_ref = s.external_ref
        ON CONFLICT (student_id) DO NOTHING;
        """
    )


async def _write_exams(conn: asyncpg.Connection, data: Dataset, summary: ImportSummary) -> None:
    by_presentation: dict[tuple[str, str], list[Assessment]] = defaultdict(list)
    for a in data.assessments.values():
        by_presentation[(a.module, a.presentation)].append(a)
    records = []
    for (module, presentation), items in by_presentation.items():
        start = presentation_start(presentation)
        cohort = cohort_key(module, presentation)
        numbers: dict[str, int] = defaultdict(int)
        # Numbered per type in due order, as a student would refer to them ("TMA 2").
        for a in sorted(items, key=lambda a: (a.day is None, a.day or 0, int(a.id))):
            numbers[a.kind] += 1
            due = start + timedelta(days=a.day) if a.day is not None else None
            metadata = {
                "source": SOURCE, "id_assessment": a.id, "code_module": module,
                "code_presentation": presentation, "cohort": cohort, "assessment_type": a.kind,
                "date": a.day, "weight": a.weight, "course_start": start.date().isoformat(),
                "presentation_length": data.lengths.get((module, presentation)),
            }
            due_text = f"due day {a.day}" if a.day is not None else "no fixed due date"
            records.append((
                f"oulad:assessment:{a.id}", f"oulad:teacher:{module}",
                f"{cohort} {a.kind} {numbers[a.kind]}",
                f"OULAD assessment {a.id}: {a.kind}, weight {a.weight:g} %, {due_text}.",
                module, cohort, due, start, orjson.dumps(metadata).decode(),
            ))
    summary.exams = len(records)
    await conn.execute(
        "CREATE TEMP TABLE oulad_exams (external_ref text PRIMARY KEY, teacher_ref text,"
        " title text, description text, subject text, topic text, due_at timestamptz,"
        " created_at timestamptz, metadata jsonb) ON COMMIT DROP")
    await conn.copy_records_to_table("oulad_exams", records=records)
    status = await conn.execute(
        """
        WITH added AS (
            INSERT INTO exams (external_ref, creator_id, title, description, subject, topic,
                               max_score, duration_minutes, passing_score, is_published,
                               enable_monitoring, enable_integrity_analysis, metadata, due_at,
                               created_at)
            -- Historical work has no monitoring events to analyse, so both are off.
            SELECT s.external_ref, t.id, s.title, s.description, s.subject, s.topic,
                   $1, $2, $3, true, false, false, s.metadata, s.due_at, s.created_at
            FROM oulad_exams s JOIN users t ON t.external_ref = s.teacher_ref
            ON CONFLICT (external_ref) DO NOTHING
            RETURNING id, creator_id
        )
        -- The owner's grant, as exam creation in the product gives it.
        INSERT INTO teacher_exam_permissions (teacher_id, exam_id, can_view, can_edit,
                                              can_view_analytics, granted_by)
        SELECT creator_id, id, true, true, true, creator_id FROM added
        ON CONFLICT DO NOTHING
        """,
        MAX_SCORE, DURATION_MINUTES, PASS_MARK,
    )
    summary.exams_added = _count(status)


async def _write_attempts(conn: asyncpg.Connection, data: Dataset, summary: ImportSummary,
                          bar: Progress) -> None:
    starts = {code: presentation_start(code)
              for code in {a.presentation for a in data.assessments.values()}}
    records = []
    for r in data.results:
        start = starts[data.assessments[r.assessment].presentation]
        done = start + timedelta(days=r.day) if r.day is not None else None
        records.append((f"oulad:result:{r.assessment}:{r.student}",
                        f"oulad:assessment:{r.assessment}", f"oulad:student:{r.student}",
                        done, done or start, r.score, r.banked, r.day))
    summary.attempts = len(records)
    await conn.execute(
        "CREATE TEMP TABLE oulad_attempts (external_ref text, exam_ref text, student_ref text,"
        " completed_at timestamptz, started_at timestamptz, score double precision,"
        " banked boolean, day integer) ON COMMIT DROP")
    await _copy(conn, "oulad_attempts", records, bar, "write attempts")
    bar.start("link attempts", len(records))
    status = await conn.execute(
        """
        INSERT INTO exam_attempts (external_ref, exam_id, student_id, status, score, max_score,
                                   percentage, passed, started_at, expires_at, completed_at,
                                   metadata)
        -- OULAD records when work was handed in, not when it was begun: started = completed.
        -- An unmarked result (score NULL) is handed in but has no percentage or pass/fail.
        SELECT s.external_ref, e.id, u.id, 'completed', s.score, e.max_score,
               s.score / e.max_score * 100, s.score >= e.passing_score,
               s.started_at, s.started_at + make_interval(mins => e.duration_minutes),
               s.completed_at,
               jsonb_build_object('source', 'oulad', 'banked', s.banked, 'date_submitted', s.day)
        FROM oulad_attempts s
        JOIN exams e ON e.external_ref = s.exam_ref
        JOIN users u ON u.external_ref = s.student_ref
        ON CONFLICT (external_ref) DO NOTHING
        """
    )
    summary.attempts_added = _count(status)
    bar.done(f"{summary.attempts_added:,} new")


async def _recount(conn: asyncpg.Connection, summary: ImportSummary, bar: Progress) -> None:
    """Set the imported students' profile counters and performance metrics from their attempts.

    Recomputed from all their completed attempts rather than incremented, so the figures are
    right however many imports ran; rows are only written where a value differs. The mean
    score is over marked attempts (an unmarked one has no percentage); counts include all.
    This is analysis.service.student_aggregates in set-based SQL, for speed on 13,000
    students at once; it covers the counters and scores an import changes, and keeps their
    layout, so `veritas recompute` afterwards finds the same values (avg_score up to its
    last digits: here an exact numeric mean rounded to 6 places, there a float mean).
    """
    bar.start("recount profiles", summary.students)
    status = await conn.execute(
        """
        WITH students AS (
            SELECT u.id, s.cohort FROM oulad_students s
            JOIN users u ON u.external_ref = s.external_ref
        ), totals AS (
            SELECT st.id, st.cohort,
                   (SELECT r.key FROM users u2,
                           jsonb_each(u2.metadata #> '{oulad,registrations}') AS r
                    WHERE u2.id = st.id
                    ORDER BY r.value->>'code_presentation' DESC, r.key DESC LIMIT 1) AS latest,
                   count(a.id) AS attempted,
                   count(a.id) FILTER (WHERE a.passed) AS passed
            FROM students st
            LEFT JOIN exam_attempts a ON a.student_id = st.id AND a.status = 'completed'
            GROUP BY st.id, st.cohort
        )
        UPDATE student_profiles p
        SET total_exams_attempted = t.attempted, total_exams_passed = t.passed,
            cohort = COALESCE(t.latest, p.cohort), updated_at = now()
        FROM totals t
        WHERE p.user_id = t.id
          AND (p.total_exams_attempted, p.total_exams_passed, p.cohort)
              IS DISTINCT FROM (t.attempted, t.passed, COALESCE(t.latest, p.cohort))
        """
    )
    updated = _count(status)
    status = await conn.execute(
        """
        WITH students AS (
            SELECT u.id FROM oulad_students s JOIN users u ON u.external_ref = s.external_ref
        ), per_subject AS (
            SELECT a.student_id, e.subject, count(a.id) AS attempted,
                   count(a.id) FILTER (WHERE a.passed) AS passed,
                   count(a.percentage) AS marked,
                   -- numeric: an exact mean, so a re-run computes the same value bit for bit
                   sum(a.percentage::numeric) AS total, max(a.completed_at) AS last_at
            FROM students st
            JOIN exam_attempts a ON a.student_id = st.id AND a.status = 'completed'
            JOIN exams e ON e.id = a.exam_id
            GROUP BY a.student_id, e.subject
        ), stats AS (
            SELECT student_id, sum(attempted)::int AS attempted, sum(passed)::int AS passed,
                   round(sum(total) / nullif(sum(marked), 0), 6)::float8 AS avg_score,
                   max(last_at) AS last_at,
                   -- the layout analysis.service.student_aggregates writes: mean of marked results and their count
                   jsonb_object_agg(subject, jsonb_build_object(
                       'avg', COALESCE(round(total / nullif(marked, 0), 4), 0)::float8,
                       'attempts', marked)) AS subjects
            FROM per_subject GROUP BY student_id
        )
        UPDATE performance_metrics m
        SET total_attempts = s.attempted, total_passed = s.passed, avg_score = s.avg_score,
            subject_scores = s.subjects, last_attempt_date = s.last_at, last_updated = now()
        FROM stats s
        WHERE m.student_id = s.student_id
          AND (m.total_attempts, m.total_passed, m.avg_score, m.subject_scores,
               m.last_attempt_date)
              IS DISTINCT FROM (s.attempted, s.passed, s.avg_score, s.subjects, s.last_at)
        """
    )
    summary.profiles_updated = max(updated, _count(status))
    bar.done(f"{summary.profiles_updated:,} changed")


async def _copy(conn: asyncpg.Connection, table: str, records: list[tuple[Any, ...]], bar: Progress,
                label: str) -> None:
    bar.start(label, len(records))
    for i in range(0, len(records), COPY_CHUNK):
        chunk = records[i:i + COPY_CHUNK]
        await conn.copy_records_to_table(table, records=chunk)
        bar.advance(len(chunk))
    bar.done()


def _count(status: str) -> int:
    # asyncpg returns the command tag, e.g. 'INSERT 0 42' or 'UPDATE 7': the last word counts.
    return int(status.split()[-1])
