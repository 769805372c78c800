"""The job queue's names and the only way Veritas enqueues a job.

Jobs are enqueued with SQL in the caller's transaction, so a committed change always has its
job and a rolled-back one never does. That means calling procrastinate's own deferral
function (`procrastinate_defer_jobs_v1`, what its Python API runs) by hand; this is the one
place that does it, and tests/test_queue.py pins it to what procrastinate itself writes.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

ANALYSIS_QUEUE = "analysis"
MAINTENANCE_QUEUE = "maintenance"
ANALYZE_TASK = "veritas.analyze_attempt"
REFRESH_TASK = "veritas.refresh_views"

# One job per attempt, locked on the attempt so two analyses of it never run at once; the
# attempts' analysis_status becomes pending in the same statement (migration 0008).
_DEFER = text(
    "WITH pending AS (UPDATE exam_attempts SET analysis_status = 'pending'"
    " WHERE id = ANY(CAST(:ids AS uuid[])))"
    " SELECT coalesce(array_length(procrastinate_defer_jobs_v1(ARRAY("
    "SELECT ROW(:queue, :task, 0, 'attempt:' || id, NULL,"
    " jsonb_build_object('attempt_id', id::text), NULL)::procrastinate_job_to_defer_v1"
    " FROM unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS a(id, n) ORDER BY n)), 1), 0)"
)


async def enqueue_analysis(session: AsyncSession, *attempt_ids: uuid.UUID) -> int:
    """Queue the analysis of these attempts in the caller's transaction and mark them
    pending; returns how many."""
    if not attempt_ids:
        return 0
    queued: int = await session.scalar(
        _DEFER, {"queue": ANALYSIS_QUEUE, "task": ANALYZE_TASK, "ids": list(attempt_ids)})
    return queued
