"""The one way Veritas opens an ORM transaction: it always says who the caller is.

Every transaction starts with `set_config('veritas.user_id', ..., true)` and
`set_config('veritas.role', ..., true)`. The third argument makes both settings local to the
transaction, so a pooled connection forgets the caller at COMMIT or ROLLBACK and the next
transaction on it starts as nobody until it says otherwise. PostgreSQL's row-level security
policies (migration 0007) read these two settings: a query that forgets its WHERE clause
still returns only the caller's rows.

Callers: a signed-in user (their id and role), SYSTEM for work nobody in particular asks for
(jobs, the sweeper, the CLI, the lookups of login, refresh and registration), and ANONYMOUS,
which the policies show nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

SYSTEM_ROLE = "system"
# Dedicated connections of background machinery (the ingestion writer, listeners, CLI bulk
# tools) are never shared with a user's work, so they say "system" once, at connect.
SYSTEM_SERVER_SETTINGS = {"veritas.role": SYSTEM_ROLE}

_IDENTIFY = text("SELECT set_config('veritas.user_id', :user_id, true),"
                 " set_config('veritas.role', :role, true)")


class Principal(Protocol):
    @property
    def user_id(self) -> uuid.UUID | None: ...

    @property
    def role(self) -> Any: ...  # a Role enum or its value


@dataclass(frozen=True)
class Caller:
    user_id: uuid.UUID | None
    role: str


SYSTEM = Caller(None, SYSTEM_ROLE)
ANONYMOUS = Caller(None, "anonymous")


@asynccontextmanager
async def unit_of_work(
    sessions: async_sessionmaker[AsyncSession], caller: Principal,
    after_commit: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> AsyncIterator[AsyncSession]:
    """One transaction as `caller`: commits when the block succeeds, rolls back otherwise."""
    role = getattr(caller.role, "value", caller.role)
    async with sessions() as session:
        async with session.begin():
            await session.execute(_IDENTIFY, {
                "user_id": str(caller.user_id) if caller.user_id else "", "role": role})
            yield session
        if after_commit is not None:
            await after_commit(session)
