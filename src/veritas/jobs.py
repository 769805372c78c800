"""Background jobs on procrastinate (PostgreSQL-backed): analyses and view refreshes.

Analysis jobs are enqueued with SQL inside the transaction that ends the attempt (submit or
abandonment), so a committed submit always has its job and a rolled-back one never does. They
survive restarts and are retried. Workers: `veritas worker`, and one inside each server process
unless EMBEDDED_WORKER=false.
"""

from __future__ import annotations

import logging
import uuid

import orjson
import procrastinate
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.analysis import service as analysis
from veritas.config import Settings, asyncpg_dsn
from veritas.db.engine import create_engine, create_sessionmaker
from veritas.db.tools import refresh_views
from veritas.db.unit_of_work import SYSTEM, unit_of_work

log = logging.getLogger(__name__)

ANALYSIS_QUEUE = "analysis"
MAINTENANCE_QUEUE = "maintenance"
ANALYZE_TASK = "veritas.analyze_attempt"
REFRESH_TASK = "veritas.refresh_views"


async def enqueue_analysis(session: AsyncSession, attempt_id: uuid.UUID) -> None:
    """Queue the analysis of an attempt in the caller's transaction."""
    await session.execute(
        text("SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task, 0, :lock, NULL,"
             " CAST(:args AS jsonb), NULL)::procrastinate_job_to_defer_v1])"),
        {"queue": ANALYSIS_QUEUE, "task": ANALYZE_TASK, "lock": f"attempt:{attempt_id}",
         "args": orjson.dumps({"attempt_id": str(attempt_id)}).decode()},
    )


def build_app(settings: Settings, database_url: str) -> procrastinate.App:
    """The job app with its tasks bound to this deployment's database."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=asyncpg_dsn(database_url)))
    engine = create_engine(settings, database_url)
    sessions = create_sessionmaker(engine)

    @app.task(name=ANALYZE_TASK, queue=ANALYSIS_QUEUE,
              retry=procrastinate.RetryStrategy(max_attempts=5, exponential_wait=2))
    async def analyze_attempt(attempt_id: str) -> None:
        async with unit_of_work(sessions, SYSTEM) as session:
            await analysis.analyze_attempt(session, uuid.UUID(attempt_id), settings)

    @app.periodic(cron=f"*/{settings.view_refresh_minutes} * * * *", periodic_id="views")
    @app.task(name=REFRESH_TASK, queue=MAINTENANCE_QUEUE, queueing_lock="refresh_views")
    async def refresh(timestamp: int) -> None:
        await refresh_views(database_url)

    app.veritas_engine = engine  # type: ignore[attr-defined]  # disposed by run_worker
    return app


async def run_worker(settings: Settings, database_url: str, *, install_signals: bool) -> None:
    app = build_app(settings, database_url)
    try:
        async with app.open_async():
            await app.run_worker_async(
                queues=[ANALYSIS_QUEUE, MAINTENANCE_QUEUE], concurrency=2,
                install_signal_handlers=install_signals, delete_jobs="successful",
            )
    finally:
        await app.veritas_engine.dispose()  # type: ignore[attr-defined]
