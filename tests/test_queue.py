"""The one enqueue function calls procrastinate's deferral function by hand (so that a job is
queued in the caller's transaction); this pins it to what procrastinate's own API writes, so
an upgrade of procrastinate that changes that function fails here, not in production."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.support import drop_database, make_database
from veritas.config import Settings
from veritas.core.queue import ANALYZE_TASK, enqueue_analysis
from veritas.db.engine import create_engine, create_sessionmaker
from veritas.db.unit_of_work import SYSTEM, unit_of_work
from veritas.jobs import build_app

COLUMNS = "queue_name, task_name, priority, lock, queueing_lock, args, scheduled_at, status"


@pytest.fixture()
def quiet_database(database_url: str) -> Iterator[str]:
    """A migrated database of its own, where no worker takes the jobs away before we look."""
    from veritas.db.migrate import upgrade

    url = make_database(database_url, "veritas_queue_" + uuid.uuid4().hex[:8])
    upgrade(url)
    yield url
    drop_database(database_url, url)


def test_enqueue_writes_what_procrastinate_writes(quiet_database: str) -> None:
    url = quiet_database
    ours = [uuid.uuid4(), uuid.uuid4()]
    theirs = uuid.uuid4()
    settings = Settings(database_url=url, debug=True)

    async def enqueue() -> None:
        engine = create_engine(settings, url)
        try:
            async with unit_of_work(create_sessionmaker(engine), SYSTEM) as session:
                assert await enqueue_analysis(session, *ours) == 2
                assert await enqueue_analysis(session) == 0
            # A rolled-back transaction leaves no job.
            with pytest.raises(RuntimeError):
                async with unit_of_work(create_sessionmaker(engine), SYSTEM) as session:
                    await enqueue_analysis(session, uuid.uuid4())
                    raise RuntimeError("rolled back")
        finally:
            await engine.dispose()
        engine = create_engine(settings, url)
        try:
            async with build_app(settings, url, engine).open_async() as app:
                await app.configure_task(ANALYZE_TASK, lock=f"attempt:{theirs}").defer_async(
                    attempt_id=str(theirs))
        finally:
            await engine.dispose()

    asyncio.run(enqueue())
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT {COLUMNS} FROM procrastinate_jobs ORDER BY id").fetchall()
    assert len(rows) == 3
    first, second, reference = rows
    assert first[5] == {"attempt_id": str(ours[0])} and second[5] == {"attempt_id": str(ours[1])}
    assert first[3] == f"attempt:{ours[0]}"

    def shape(row: tuple) -> tuple:
        # Everything but the attempt-specific lock and arguments.
        return row[:3] + row[4:5] + row[6:]

    assert reference[3] == f"attempt:{theirs}" and reference[5] == {"attempt_id": str(theirs)}
    assert shape(first) == shape(second) == shape(reference)
