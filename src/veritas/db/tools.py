"""Operations run from the command line against a database URL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.auth import passwords
from veritas.auth.schemas import RegisterIn
from veritas.config import Settings
from veritas.core.queue import enqueue_analysis
from veritas.db.engine import create_engine, create_sessionmaker
from veritas.db.unit_of_work import SYSTEM, unit_of_work
from veritas.errors import Invalid

MATERIALIZED_VIEWS = ("exam_performance_summary", "student_risk_summary")


async def user_count(url: str) -> int:
    async with _as_system(url) as session:
        return await session.scalar(text("SELECT count(*) FROM users"))


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
    async with _as_system(url) as session:
        taken = await session.scalar(
            text("SELECT 1 FROM users WHERE email = :email OR lower(username) = lower(:name)"),
            {"email": body.email, "name": body.username})
        if taken:
            raise ValueError("email or username already registered")
        user_id = await session.scalar(
            text("INSERT INTO users (email, username, password_hash, role, is_verified)"
                 " VALUES (:email, :name, :hash, 'admin', true) RETURNING id"),
            {"email": body.email, "name": body.username, "hash": hashed})
        await session.execute(
            text("INSERT INTO audit_logs (user_id, action, resource_type, resource_id, details)"
                 " VALUES (:id, 'create_admin', 'user', :rid, '{\"via\": \"cli\"}')"),
            {"id": user_id, "rid": str(user_id)})
    return user_id


async def refresh_views(url: str) -> None:
    """Refresh the materialized views through their owner's function (the runtime role may
    read them but only their owner may refresh them)."""
    async with _as_system(url) as session:
        await session.execute(text("SELECT veritas_refresh_views()"))


async def recompute(url: str) -> int:
    """Rebuild every student's profile and performance_metrics from the raw tables."""
    from veritas.analysis.service import recompute_all

    async with _as_system(url) as session:
        return await recompute_all(session)


async def rescore(url: str, exam_id: str) -> int:
    """Queue a fresh analysis of every ended attempt of an exam (after a policy change)."""
    try:
        exam = uuid.UUID(exam_id)
    except ValueError:
        raise ValueError("--exam must be an exam id (a UUID)") from None
    async with _as_system(url) as session:
        if not await session.scalar(text("SELECT 1 FROM exams WHERE id = :id"), {"id": exam}):
            raise ValueError("no such exam")
        ended = await session.scalars(
            text("SELECT id FROM exam_attempts WHERE exam_id = :exam AND status <> 'in_progress'"),
            {"exam": exam})
        return await enqueue_analysis(session, *ended)


@asynccontextmanager
async def _as_system(url: str) -> AsyncIterator[AsyncSession]:
    """One unit of work as the system identity, on an engine of its own."""
    engine = create_engine(Settings(database_url=url, debug=True), url)
    try:
        async with unit_of_work(create_sessionmaker(engine), SYSTEM) as session:
            yield session
    finally:
        await engine.dispose()
