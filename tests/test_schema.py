"""The migrated schema: partitions, indexes, constraints, views, and migrating from empty."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.support import InTransaction, drop_database, make_database
from veritas.db.base import Role
from veritas.db.unit_of_work import SYSTEM
from veritas.exams import service as exams
from veritas.exams.models import Exam
from veritas.exams.schemas import SubmitIn

# The SQL block of the README's "Reporting in SQL" section, one statement a line.
_README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
REPORTING_GRANTS = [
    line.strip().rstrip(";") for line in
    re.search(r"## Reporting in SQL.*?```sql\n(.*?)```", _README, re.S)[1].splitlines()
    if line.startswith("GRANT")
]


def test_upgrade_head_on_an_empty_database(database_url: str) -> None:
    from veritas.db.migrate import upgrade

    url = make_database(database_url, "veritas_empty_" + __import__("uuid").uuid4().hex[:8])
    try:
        upgrade(url)
        upgrade(url)  # a second run finds nothing to do
        with psycopg.connect(url) as conn:
            tables = {r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"users", "student_profiles", "teacher_profiles", "exams", "exam_attempts",
                "monitoring_events", "behavior_analysis", "performance_metrics",
                "teacher_exam_permissions", "audit_logs"} <= tables
    finally:
        drop_database(database_url, url)


def test_monitoring_events_is_partitioned_ahead(db) -> None:
    strategy = db.execute("SELECT partstrat FROM pg_partitioned_table"
                          " WHERE partrelid = 'monitoring_events'::regclass").fetchone()
    assert strategy == ("r",)
    months = db.execute(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'monitoring_events'::regclass"
        " AND inhrelid::regclass::text >= 'monitoring_events_' || to_char(now(), 'YYYY_MM')"
    ).fetchone()[0]
    assert months >= 3  # this month and the next ones exist before anyone needs them
    db.execute("SELECT veritas_ensure_event_partition(now() + interval '2 years')")
    name = db.execute("SELECT 'monitoring_events_' || to_char(now() + interval '2 years',"
                      " 'YYYY_MM')").fetchone()[0]
    assert db.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is not None


def _indexdefs(db, table: str) -> list[str]:
    return [r[0] for r in db.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s",
                                     (table,))]


def test_event_indexes(db) -> None:
    defs = " | ".join(_indexdefs(db, "monitoring_events"))
    assert "USING gin (data_payload jsonb_path_ops)" in defs
    assert "(exam_attempt_id, server_timestamp)" in defs
    assert "PRIMARY KEY" in " ".join(
        r[0] for r in db.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                                 " WHERE conrelid = 'monitoring_events'::regclass"))


@pytest.mark.parametrize("view,column", [("exam_performance_summary", "exam_id"),
                                         ("student_risk_summary", "student_id")])
def test_materialized_views_refresh_concurrently(db, view: str, column: str) -> None:
    defs = _indexdefs(db, view)
    assert any("UNIQUE" in d and f"({column})" in d for d in defs)
    db.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {view}")


async def _submit(tx: InTransaction, exam: Exam, responses: dict[str, str]) -> None:
    student = await tx.user()
    async with tx.as_(student) as session:
        attempt, _ = await exams.start(session, student, exam.id,
                                       tx.settings.attempt_grace_minutes, tx.ctx)
        await exams.submit(session, student, attempt.id, SubmitIn(responses=responses),
                           tx.settings.attempt_grace_minutes, tx.ctx)


@pytest.mark.anyio
async def test_the_reporting_views_hold_the_figures_of_their_last_refresh(
    tx: InTransaction,
) -> None:
    """README, "Reporting in SQL": what the views hold, and `view_refreshes` as their as_of."""
    exam = await tx.exam(await tx.user(Role.teacher))
    await _submit(tx, exam, {"q1": "4", "q2": ["2", "3"], "q3": "Paris"})
    await _submit(tx, exam, {"q1": "4"})
    summary = ("SELECT total_attempts, unique_students, avg_score, pass_rate"
               " FROM exam_performance_summary WHERE exam_id = :e")
    assert await tx.rows(summary, e=exam.id) == []  # not refreshed since the exam was made
    await tx.scalar("SELECT veritas_refresh_views()")  # what the worker runs on its schedule
    assert await tx.rows(summary, e=exam.id) == [(2, 2, 70, 0.5)]
    assert await tx.rows(
        "SELECT view_name, refreshed_at = now() FROM view_refreshes ORDER BY view_name") == [
        ("exam_performance_summary", True), ("student_risk_summary", True)]


@pytest.mark.anyio
async def test_a_reporting_role_reads_the_views_and_nothing_else(owner_tx: InTransaction) -> None:
    """The README's grants for a reporting role, run as written (roles made in the test's
    transaction vanish with it)."""
    role = "veritas_reporting_" + uuid.uuid4().hex[:8]
    async with owner_tx.as_(SYSTEM) as session:
        await session.execute(text(f"CREATE ROLE {role} NOLOGIN"))
        for grant in REPORTING_GRANTS:
            await session.execute(text(grant.replace("veritas_reporting", role)))
    async with owner_tx.as_(SYSTEM) as session:
        await session.execute(text(f"SET LOCAL ROLE {role}"))
        for view in ("exam_performance_summary", "student_risk_summary", "view_refreshes"):
            await session.execute(text(f"SELECT * FROM {view} LIMIT 1"))
        for table in ("exam_attempts", "users", "audit_logs"):
            with pytest.raises(DBAPIError, match="permission denied"):
                async with session.begin_nested():
                    await session.execute(text(f"SELECT 1 FROM {table} LIMIT 1"))
        await session.execute(text("RESET ROLE"))


@pytest.mark.parametrize("table,column", [
    ("student_profiles", "cumulative_integrity_score"),
    ("performance_metrics", "avg_integrity_score"),
    ("behavior_analysis", "integrity_score"),
    ("behavior_analysis", "dropout_confidence"),
])
def test_scores_are_checked_between_0_and_1(db, table: str, column: str) -> None:
    # CHECK constraints run before foreign keys, so made-up ids are enough here.
    owner = "student_id" if table != "student_profiles" else "user_id"
    extra = ", exam_attempt_id" if table == "behavior_analysis" else ""
    values = ", gen_random_uuid()" if extra else ""
    for bad in (1.5, -0.1):
        with pytest.raises(psycopg.errors.CheckViolation):
            db.execute(f"INSERT INTO {table} ({owner}{extra}, {column})"
                       f" VALUES (gen_random_uuid(){values}, %s)", (bad,))


def test_unique_constraints_of_the_core_tables(db) -> None:
    uniques = {
        (r[0], r[1]) for r in db.execute(
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE contype = 'u'")
    }
    assert ("student_profiles", "UNIQUE (user_id)") in uniques
    assert ("teacher_profiles", "UNIQUE (user_id)") in uniques
    assert ("behavior_analysis", "UNIQUE (exam_attempt_id)") in uniques
    assert ("performance_metrics", "UNIQUE (student_id)") in uniques


def test_the_job_queue_schema_is_the_installed_procrastinates() -> None:
    """Migration 0003 holds procrastinate's schema as a snapshot, so a migration never changes
    with the installed library; a new procrastinate needs a revision that applies its own
    migration scripts, and this says so."""
    import importlib.metadata
    import importlib.util
    from pathlib import Path

    from procrastinate.schema import SchemaManager

    import veritas

    path = (Path(veritas.__file__).parent / "db" / "migrations" / "versions"
            / "2026_11_26_0003_jobs_and_reviews.py")
    spec = importlib.util.spec_from_file_location("revision_0003", path)
    assert spec is not None and spec.loader is not None
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    assert revision.PROCRASTINATE_VERSION == importlib.metadata.version("procrastinate"), (
        "procrastinate was upgraded: add a revision applying its sql/migrations scripts")
    assert revision.PROCRASTINATE_SCHEMA.strip() == SchemaManager.get_schema().strip()
