"""Database work of the command line and the jobs that needs no domain code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.config import Settings
from veritas.db.engine import create_engine, create_sessionmaker
from veritas.db.unit_of_work import SYSTEM, unit_of_work


async def refresh_views(url: str) -> None:
    """Refresh the materialized views through their owner's function (the runtime role may
    read them but only their owner may refresh them)."""
    async with system_session(url) as session:
        await session.execute(text("SELECT veritas_refresh_views()"))


def tool_settings(url: str) -> Settings:
    """Settings for a command-line tool: it needs the database and the environment's tuning,
    not the server's secrets."""
    return Settings(database_url=url, debug=True)


@asynccontextmanager
async def system_session(url: str) -> AsyncIterator[AsyncSession]:
    """One unit of work as the system identity, on an engine of its own."""
    engine = create_engine(tool_settings(url), url)
    try:
        async with unit_of_work(create_sessionmaker(engine), SYSTEM) as session:
            yield session
    finally:
        await engine.dispose()
