"""An exam's scoring population: its lock and the population its final scores stand on.

The batch that computes an exam's final scores holds the exam's lock exclusively for its one
transaction; whatever else writes an attempt's analysis holds it shared, taken before the
attempt's row. So an analysis is never written in the middle of a batch, the batch never
reads one half-written, and (every writer taking the exam first) they cannot deadlock.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.analysis.models import IntegrityPopulation

# Advisory locks share one key space: this prefix keeps the exam's apart from any other.
_KEY = "veritas:final_scores:"


async def lock_exam(session: AsyncSession, exam_id: uuid.UUID, *, shared: bool) -> None:
    """Take the exam's scoring lock until the transaction ends (shared: an analysis' write;
    exclusive: the batch)."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await session.execute(text(f"SELECT {function}(hashtextextended(:key, 0))"),
                          {"key": f"{_KEY}{exam_id}"})


async def current(session: AsyncSession, exam_id: uuid.UUID) -> IntegrityPopulation | None:
    """The population of the exam's last batch, or None before its first."""
    return await session.scalar(
        select(IntegrityPopulation).where(IntegrityPopulation.exam_id == exam_id)
        .execution_options(populate_existing=True))


async def membership(
    session: AsyncSession, exam_id: uuid.UUID, attempt_id: uuid.UUID
) -> tuple[int | None, bool]:
    """The exam's batch count (None: none yet) and whether its last batch scored the attempt,
    without reading the population itself."""
    row = (await session.execute(
        select(IntegrityPopulation.version,
               IntegrityPopulation.signals.has_key(str(attempt_id)))
        .where(IntegrityPopulation.exam_id == exam_id))).first()
    return (row[0], bool(row[1])) if row else (None, False)


async def version(session: AsyncSession, exam_id: uuid.UUID) -> int | None:
    """How many batches have scored the exam (None: none yet)."""
    return await session.scalar(
        select(IntegrityPopulation.version).where(IntegrityPopulation.exam_id == exam_id))
