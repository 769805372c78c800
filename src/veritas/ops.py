"""Operations of the `veritas` command, run against a database URL through the services."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from veritas.analysis.service import recompute_all
from veritas.audit import service as audit
from veritas.auth import service as auth
from veritas.auth.schemas import RegisterIn
from veritas.core.queue import enqueue_analysis
from veritas.db.base import Role
from veritas.db.tools import system_session, tool_settings
from veritas.errors import Conflict, Invalid


async def user_count(url: str) -> int:
    async with system_session(url) as session:
        count: int = await session.scalar(text("SELECT count(*) FROM users"))
        return count


async def create_admin(url: str, email: str, username: str, password: str) -> uuid.UUID:
    """Create an admin account; ValueError on bad input or a taken email/username."""
    body = RegisterIn(email=email, username=username, password=password, role=Role.admin)
    try:
        async with system_session(url) as session:
            user = await auth.create_user(session, tool_settings(url), body, verified=True)
            await audit.record(session, None, user.id, "create_admin", "user", user.id,
                               {"via": "cli"})
    except (Invalid, Conflict) as exc:
        raise ValueError(exc.detail) from None
    return user.id


async def recompute(url: str) -> int:
    """Rebuild every student's profile and performance_metrics from the raw tables."""
    async with system_session(url) as session:
        return await recompute_all(session)


async def rescore(url: str, exam_id: str) -> int:
    """Queue a fresh analysis of every ended attempt of an exam (after a policy change)."""
    try:
        exam = uuid.UUID(exam_id)
    except ValueError:
        raise ValueError("--exam must be an exam id (a UUID)") from None
    async with system_session(url) as session:
        if not await session.scalar(text("SELECT 1 FROM exams WHERE id = :id"), {"id": exam}):
            raise ValueError("no such exam")
        ended = await session.scalars(
            text("SELECT id FROM exam_attempts WHERE exam_id = :exam AND status <> 'in_progress'"),
            {"exam": exam})
        return await enqueue_analysis(session, *ended)
