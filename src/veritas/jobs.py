"""Background jobs on procrastinate (PostgreSQL-backed): the worker that runs analyses and
view refreshes. Jobs are enqueued by veritas.core.queue, in the caller's transaction; they
survive restarts and are retried. Workers: `veritas worker`, and one inside each server
process unless EMBEDDED_WORKER=false.
"""

from __future__ import annotations

import logging
import uuid

import procrastinate

from veritas.analysis import service as analysis
from veritas.config import Settings, asyncpg_dsn
from veritas.core.queue import ANALYSIS_QUEUE, ANALYZE_TASK, MAINTENANCE_QUEUE, REFRESH_TASK
from veritas.db.engine import create_engine, create_sessionmaker
from veritas.db.tools import refresh_views
from veritas.db.unit_of_work import SYSTEM, unit_of_work

log = logging.getLogger(__name__)


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
