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

`as_system` runs one block of a caller's transaction as SYSTEM: for what a service must keep
true beyond what the caller may see, after it has authorized the caller (a teacher's grade
rewrites the student's totals, which count every exam of the student, other teachers' too).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
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

_CALLER = "veritas.caller"  # key in session.info: the parameters _IDENTIFY was given


def _identity(caller: Principal) -> dict[str, str]:
    role = getattr(caller.role, "value", caller.role)
    return {"user_id": str(caller.user_id) if caller.user_id else "", "role": role}


@asynccontextmanager
async def unit_of_work(
    sessions: async_sessionmaker[AsyncSession], caller: Principal,
    after_commit: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> AsyncIterator[AsyncSession]:
    """One transaction as `caller`: commits when the block succeeds, rolls back otherwise."""
    async with sessions() as session:
        async with session.begin():
            session.info[_CALLER] = _identity(caller)
            await session.execute(_IDENTIFY, session.info[_CALLER])
            yield session
        if after_commit is not None:
            await after_commit(session)


@asynccontextmanager
async def as_system(session: AsyncSession) -> AsyncIterator[None]:
    """Run the block as SYSTEM within the unit of work's transaction, then as its caller again.

    The caller's pending ORM changes are flushed first, so they are checked against the
    caller's policies, not written as SYSTEM by the block's first autoflush."""
    await session.flush()
    await session.execute(_IDENTIFY, _identity(SYSTEM))
    try:
        yield
    finally:
        try:
            await session.execute(_IDENTIFY, session.info[_CALLER])
        except DBAPIError:
            pass  # the transaction failed: it runs nothing more and rolls back, identity too
