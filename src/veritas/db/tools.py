"""Operations run from the command line against a database URL."""

from __future__ import annotations

import uuid

import asyncpg

from veritas.auth import passwords
from veritas.auth.schemas import RegisterIn
from veritas.config import asyncpg_dsn
from veritas.errors import Invalid

MATERIALIZED_VIEWS = ("exam_performance_summary", "student_risk_summary")


async def create_admin(url: str, email: str, username: str, password: str) -> uuid.UUID:
    """Create an admin account; ValueError on bad input or a taken email/username."""
    import os

    try:
        body = RegisterIn(email=email, username=username, password=password)
        passwords.check_policy(password)
    except Invalid as exc:
        raise ValueError(exc.detail) from None
    rounds = int(os.environ.get("BCRYPT_ROUNDS", "12"))
    hashed = await passwords.hash_password(password, rounds)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with conn.transaction():
            taken = await conn.fetchval(
                "SELECT 1 FROM users WHERE email = $1 OR lower(username) = lower($2)",
                body.email, body.username,
            )
            if taken:
                raise ValueError("email or username already registered")
            user_id = await conn.fetchval(
                "INSERT INTO users (email, username, password_hash, role, is_verified)"
                " VALUES ($1, $2, $3, 'admin', true) RETURNING id",
                body.email, body.username, hashed,
            )
            await conn.execute(
                "INSERT INTO audit_logs (user_id, action, resource_type, resource_id, details)"
                " VALUES ($1, 'create_admin', 'user', $2, '{\"via\": \"cli\"}')",
                user_id, str(user_id),
            )
    finally:
        await conn.close()
    return user_id


async def refresh_views(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for view in MATERIALIZED_VIEWS:
            await conn.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {view}")
            await conn.execute(
                "INSERT INTO view_refreshes VALUES ($1, now()) ON CONFLICT (view_name)"
                " DO UPDATE SET refreshed_at = excluded.refreshed_at", view)
    finally:
        await conn.close()


async def recompute(url: str) -> int:
    """Rebuild every student's profile and performance_metrics from the raw tables."""
    from veritas.analysis.service import recompute_all
    from veritas.config import Settings
    from veritas.db.engine import create_engine, create_sessionmaker

    engine = create_engine(Settings(database_url=url, debug=True), url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            return await recompute_all(session)
    finally:
        await engine.dispose()


async def rescore(url: str, exam_id: str) -> int:
    """Queue a fresh analysis of every ended attempt of an exam (after a policy change)."""
    from veritas.jobs import ANALYSIS_QUEUE, ANALYZE_TASK

    try:
        exam = uuid.UUID(exam_id)
    except ValueError:
        raise ValueError("--exam must be an exam id (a UUID)") from None
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with conn.transaction():
            if not await conn.fetchval("SELECT 1 FROM exams WHERE id = $1", exam):
                raise ValueError("no such exam")
            return await conn.fetchval(
                "SELECT coalesce(array_length(procrastinate_defer_jobs_v1(array_agg(ROW($2, $3,"
                " 0, 'attempt:' || id, NULL, jsonb_build_object('attempt_id', id::text), NULL)"
                "::procrastinate_job_to_defer_v1)), 1), 0) FROM exam_attempts"
                " WHERE exam_id = $1 AND status <> 'in_progress'",
                exam, ANALYSIS_QUEUE, ANALYZE_TASK,
            )
    finally:
        await conn.close()
