"""The migrated schema: partitions, indexes, constraints, views, and migrating from empty."""

from __future__ import annotations

import psycopg
import pytest

from tests.support import drop_database, make_database


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


def test_seed_unique_constraints(db) -> None:
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
