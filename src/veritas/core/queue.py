"""The job queue's names and the only way Veritas enqueues a job.

Jobs are enqueued with SQL in the caller's transaction, so a committed change always has its
job and a rolled-back one never does. That means calling procrastinate's own deferral
function (`procrastinate_defer_jobs_v1`, what its Python API runs) by hand; `enqueue` is the
one place that does it, and tests/test_queue.py pins it to what procrastinate itself writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

ANALYSIS_QUEUE = "analysis"
MAINTENANCE_QUEUE = "maintenance"
ANALYZE_TASK = "veritas.analyze_attempt"
FINAL_SCORES_TASK = "veritas.final_scores"
REFRESH_TASK = "veritas.refresh_views"
SETTLE_TASK = "veritas.settle_scores"

# Each job is locked (procrastinate's `lock`: jobs sharing one never run at once) on what it
# works on: an attempt's analysis on the attempt, an exam's final scores on the exam.
_QUEUES = {ANALYZE_TASK: ANALYSIS_QUEUE, FINAL_SCORES_TASK: ANALYSIS_QUEUE}

_DEFER = text(
    "SELECT coalesce(array_length(procrastinate_defer_jobs_v1(ARRAY("
    "SELECT ROW(:queue, :task, 0, job.lock, NULL, job.args, NULL)::procrastinate_job_to_defer_v1"
    " FROM ROWS FROM (jsonb_to_recordset(CAST(:jobs AS jsonb)) AS (lock text, args jsonb))"
    " WITH ORDINALITY AS job(lock, args, n)"
    # A job already waiting for the same work does it: no second one (in the same statement,
    # so a burst of requests for one exam's final scores queues one batch, not a hundred).
    " WHERE NOT (CAST(:once AS boolean) AND EXISTS (SELECT 1 FROM procrastinate_jobs q"
    " WHERE q.lock = job.lock AND q.task_name = :task AND q.status = 'todo'))"
    " ORDER BY n)), 1), 0)"
)


async def enqueue(
    session: AsyncSession, task: str, jobs: Sequence[tuple[str, dict[str, Any]]],
    *, unless_waiting: bool = False,
) -> int:
    """Queue `task` once per (lock, arguments) in the caller's transaction; returns how many.

    unless_waiting: skip a job whose lock already has one of this task waiting to start."""
    if not jobs:
        return 0
    payload = orjson.dumps([{"lock": lock, "args": args} for lock, args in jobs]).decode()
    queued: int = await session.scalar(_DEFER, {"queue": _QUEUES[task], "task": task,
                                                "jobs": payload, "once": unless_waiting})
    return queued


async def enqueue_analysis(session: AsyncSession, *attempt_ids: uuid.UUID) -> int:
    """Queue the analysis of these attempts in the caller's transaction and mark them
    pending; returns how many."""
    if not attempt_ids:
        return 0
    # The status and the job in one transaction (migration 0008): pending means queued.
    await session.execute(
        text("UPDATE exam_attempts SET analysis_status = 'pending'"
             " WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": list(attempt_ids)})
    return await enqueue(session, ANALYZE_TASK, [
        (f"attempt:{a}", {"attempt_id": str(a)}) for a in attempt_ids])


async def enqueue_final_scores(session: AsyncSession, exam_id: uuid.UUID, reason: str) -> int:
    """Queue the batch that rescores the exam's attempts against its whole population
    (veritas.analysis.final_scores), unless one is already waiting; returns 0 or 1."""
    return await enqueue(session, FINAL_SCORES_TASK, [
        (f"exam:{exam_id}", {"exam_id": str(exam_id), "reason": reason})],
        unless_waiting=True)
