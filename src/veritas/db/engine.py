"""Engine and session factory; transactions open through veritas.db.unit_of_work only."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from veritas.config import Settings, sqlalchemy_url


def create_engine(settings: Settings, url: str) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        # Bounded waits: a saturated pool answers 503 instead of hanging requests.
        pool_timeout=10,
        connect_args={"command_timeout": 30, "server_settings": {"timezone": "UTC"}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
