"""Background jobs on procrastinate (PostgreSQL-backed): the worker that runs analyses, the
batches of final integrity scores and view refreshes. Jobs are enqueued by
veritas.core.queue, in the caller's transaction; they survive restarts and are retried.
Workers: `veritas worker`, and one inside each server process unless EMBEDDED_WORKER=false.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import procrastinate
from procrastinate.jobs import Job
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from veritas.analysis import final_scores
from veritas.analysis import service as analysis
from veritas.config import Settings, asyncpg_dsn
from veritas.core.queue import (
    ANALYSIS_QUEUE,
    ANALYZE_TASK,
    FINAL_SCORES_TASK,
    MAINTENANCE_QUEUE,
    REFRESH_TASK,
    SETTLE_TASK,
)
from veritas.db.engine import create_engine, create_sessionmaker
from veritas.db.tools import refresh_views
from veritas.db.unit_of_work import SYSTEM, unit_of_work

log = logging.getLogger(__name__)


class AnalysisRetry(procrastinate.RetryStrategy):
    """Retries what may pass, such as a database outage; never what cannot."""

    def get_retry_decision(self, *, exception: BaseException,
                           job: Job) -> procrastinate.RetryDecision | None:
        if isinstance(exception, analysis.AnalysisImpossible):
            return None
        return super().get_retry_decision(exception=exception, job=job)


# Five retries, 2 s to 32 s apart: about a minute, enough for a database restart.
ANALYSIS_RETRY = AnalysisRetry(max_attempts=5, exponential_wait=2)


async def _failed_for_good(sessions: async_sessionmaker[AsyncSession], attempt_id: str,
                           tries: int, exc: BaseException) -> None:
    """Make a failure that no retry will mend visible: the log, the attempt, /metrics."""
    log.error("analysis of attempt %s failed for good after %d tries: %s: %s",
              attempt_id, tries, type(exc).__name__, exc)
    try:
        async with unit_of_work(sessions, SYSTEM) as session:
            await analysis.mark_failed(session, uuid.UUID(attempt_id))
    except Exception:  # noqa: BLE001 - the log line above already says it
        log.exception("could not mark the analysis of attempt %s failed", attempt_id)


async def _after_analysis(sessions: async_sessionmaker[AsyncSession], attempt_id: str) -> None:
    """Queue the exam's final scores if this analysis left it settled. A failure here loses
    nothing the settle sweep will not find again: it is logged, never the analysis'."""
    try:
        async with unit_of_work(sessions, SYSTEM) as session:
            await final_scores.after_analysis(session, uuid.UUID(attempt_id))
    except Exception:  # noqa: BLE001 - see above
        log.exception("could not check whether attempt %s's exam is settled", attempt_id)


def build_app(settings: Settings, database_url: str, engine: AsyncEngine) -> procrastinate.App:
    """The job app with its tasks bound to this deployment's database; the tasks' sessions
    come from `engine`, which the caller disposes of."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=asyncpg_dsn(database_url)))
    sessions = create_sessionmaker(engine)

    @app.task(name=ANALYZE_TASK, queue=ANALYSIS_QUEUE, retry=ANALYSIS_RETRY, pass_context=True)
    async def analyze_attempt(context: procrastinate.JobContext, attempt_id: str) -> None:
        try:
            await analysis.analyze_attempt(sessions, uuid.UUID(attempt_id), settings)
        except Exception as exc:
            job = context.job
            if ANALYSIS_RETRY.get_retry_decision(exception=exc, job=job) is None:
                await _failed_for_good(sessions, attempt_id, job.attempts + 1, exc)
                await _after_analysis(sessions, attempt_id)
            raise  # procrastinate retries it, or records the job as failed
        await _after_analysis(sessions, attempt_id)

    @app.task(name=FINAL_SCORES_TASK, queue=ANALYSIS_QUEUE, retry=ANALYSIS_RETRY)
    async def final_scores_of_exam(exam_id: str, reason: str) -> None:
        await final_scores.finalize(sessions, uuid.UUID(exam_id), reason)

    @app.periodic(cron="* * * * *", periodic_id="settle")
    @app.task(name=SETTLE_TASK, queue=MAINTENANCE_QUEUE, queueing_lock="settle_scores")
    async def settle(timestamp: int) -> None:
        async with unit_of_work(sessions, SYSTEM) as session:
            await final_scores.queue_swept(
                session, datetime.now(UTC), timedelta(minutes=settings.final_score_quiet_minutes))

    @app.periodic(cron=f"*/{settings.view_refresh_minutes} * * * *", periodic_id="views")
    @app.task(name=REFRESH_TASK, queue=MAINTENANCE_QUEUE, queueing_lock="refresh_views")
    async def refresh(timestamp: int) -> None:
        await refresh_views(database_url)

    return app


async def run_worker(settings: Settings, database_url: str, *, install_signals: bool) -> None:
    engine = create_engine(settings, database_url)
    try:
        app = build_app(settings, database_url, engine)
        async with app.open_async():
            await app.run_worker_async(
                queues=[ANALYSIS_QUEUE, MAINTENANCE_QUEUE], concurrency=2,
                install_signal_handlers=install_signals, delete_jobs="successful",
            )
    finally:
        await engine.dispose()
