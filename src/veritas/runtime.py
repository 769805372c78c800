"""What one server process holds: settings, database handles, caches and background tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from veritas.auth.revocation import RevocationCache
from veritas.auth.throttle import Counters
from veritas.config import Settings
from veritas.metrics import Metrics

if TYPE_CHECKING:
    from veritas.monitoring.ingest import Ingestor


@dataclass
class Runtime:
    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    pool: asyncpg.Pool
    revocations: RevocationCache
    ingestor: Ingestor
    # Login and registration throttle counters (PostgreSQL, or Redis when configured).
    throttle: Counters
    metrics: Metrics = field(default_factory=Metrics)

    def observe(self, name: str, seconds: float) -> None:
        self.metrics.observe(name, seconds)
