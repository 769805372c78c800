"""Which tokens and users are cut off, known in every process without a query per request.

PostgreSQL is the record (auth_tokens.revoked_at, users.is_active). Each process keeps an
in-memory copy, loaded at start and kept current by a broadcast: PostgreSQL LISTEN/NOTIFY by
default, Redis pub/sub when REDIS_URL is set (revoked ids are then also kept in Redis with
their expiry). If the broadcast connection is lost the copy may be stale, so until it is back
and reloaded every check asks the database instead (fail closed, never open).

Deleting a user's row sends no broadcast, so each process also watches the users it has served
lately: once a second, one query re-reads which of them still exist and are active, and drops
the others, whose next request then asks the database and gets 401. A user not served lately
is read from the database on their next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

import asyncpg

from veritas.core.channels import REVOCATION_CHANNEL
from veritas.db.unit_of_work import SYSTEM_SERVER_SETTINGS

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

REDIS_KEY = "veritas:revoked:"
RESYNC_SECONDS = 60
USER_CHECK_SECONDS = 1.0  # a deleted user's tokens die within about this long
USER_IDLE_SECONDS = 60.0  # users not served this long are dropped from the watch


def revoke_message(jti: uuid.UUID, expires_at: float) -> str:
    return f"revoke:{jti}:{int(expires_at)}"


def lock_message(user_id: uuid.UUID) -> str:
    return f"lock:{user_id}"


def unlock_message(user_id: uuid.UUID) -> str:
    return f"unlock:{user_id}"


class RevocationCache:
    def __init__(self, dsn: str, redis_url: str | None = None) -> None:
        self._dsn = dsn
        self._redis_url = redis_url
        self._revoked: dict[uuid.UUID, float] = {}
        self._locked: set[uuid.UUID] = set()
        self._healthy = False
        self._task: asyncio.Task[None] | None = None
        self._redis: Redis | None = None  # when configured
        # Users found present and active, with when each was last served (monotonic).
        self._present: dict[uuid.UUID, float] = {}
        self._watching = False
        self._watch_task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def start(self) -> None:
        if self._redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self._redis_url)
        self._task = asyncio.create_task(self._run(), name="revocation-listener")
        self._watch_task = asyncio.create_task(self._watch_users(), name="user-watch")
        # Serve nothing until the first load: an empty copy would let revoked tokens in.
        for _ in range(100):
            if self._healthy:
                return
            await asyncio.sleep(0.05)
        log.warning("revocation broadcast not ready; checking the database per request")

    async def stop(self) -> None:
        for task in (self._task, self._watch_task):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._redis is not None:
            await self._redis.aclose()

    def is_cut_off(self, jti: uuid.UUID, user_id: uuid.UUID) -> bool | None:
        """True/False from memory, or None when memory cannot be trusted right now."""
        if not self._healthy:
            return None
        return jti in self._revoked or user_id in self._locked

    def is_present(self, user_id: uuid.UUID) -> bool:
        """Whether the user is known to exist and be active; False means: ask the database."""
        if not self._watching or user_id not in self._present:
            return False
        self._present[user_id] = time.monotonic()
        return True

    def confirm_present(self, user_id: uuid.UUID) -> None:
        """The database just said the user exists and is active: watch them from now on."""
        self._present[user_id] = time.monotonic()

    async def _watch_users(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self._dsn, server_settings=SYSTEM_SERVER_SETTINGS)
                try:
                    while True:
                        await self._check_users(conn)
                        self._watching = True
                        await asyncio.sleep(USER_CHECK_SECONDS)
                finally:
                    self._watching = False
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any loss means: every check asks the database
                log.warning("user watch lost (%s); retrying", exc)
            await asyncio.sleep(1)

    async def _check_users(self, conn: asyncpg.Connection) -> None:
        now = time.monotonic()
        idle = {u for u, seen in self._present.items() if now - seen >= USER_IDLE_SECONDS}
        watched = [u for u in self._present if u not in idle]
        rows = await conn.fetch("SELECT id FROM users WHERE id = ANY($1::uuid[]) AND is_active",
                                watched) if watched else []
        # Users confirmed while the query ran are not in `watched` and stay.
        for user_id in idle | (set(watched) - {row["id"] for row in rows}):
            self._present.pop(user_id, None)

    def apply(self, messages: Iterable[str]) -> None:
        """Apply broadcast messages; also used by this process right after its own commit."""
        for message in messages:
            kind, _, rest = message.partition(":")
            if kind == "revoke":
                jti, _, exp = rest.partition(":")
                self._revoked[uuid.UUID(jti)] = float(exp)
            elif kind == "lock":
                self._locked.add(uuid.UUID(rest))
            elif kind == "unlock":
                self._locked.discard(uuid.UUID(rest))

    async def publish(self, messages: list[str]) -> None:
        """Broadcast over Redis (PostgreSQL mode sends NOTIFY inside the transaction)."""
        if self._redis is None or not messages:
            return
        pipe = self._redis.pipeline()
        now = time.time()
        for message in messages:
            if message.startswith("revoke:"):
                _, jti, exp = message.split(":")
                pipe.set(REDIS_KEY + jti, "1", ex=max(1, int(float(exp) - now)))
            pipe.publish(REVOCATION_CHANNEL, message)
        await pipe.execute()

    @property
    def uses_redis(self) -> bool:
        return self._redis is not None

    async def _load(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            "SELECT jti, extract(epoch FROM expires_at) AS exp FROM auth_tokens "
            "WHERE revoked_at IS NOT NULL AND expires_at > now()"
        )
        locked = await conn.fetch("SELECT id FROM users WHERE NOT is_active")
        self._revoked = {row["jti"]: float(row["exp"]) for row in rows}
        self._locked = {row["id"] for row in locked}

    def _forget_expired(self) -> None:
        now = time.time()
        self._revoked = {jti: exp for jti, exp in self._revoked.items() if exp > now}

    async def _run(self) -> None:
        while True:
            try:
                if self._redis is not None:
                    await self._listen_redis()
                else:
                    await self._listen_postgres()
            except asyncio.CancelledError:
                self._healthy = False
                raise
            except Exception as exc:  # noqa: BLE001 - any loss of the feed means: reconnect
                log.warning("revocation broadcast lost (%s); retrying", exc)
            self._healthy = False
            await asyncio.sleep(1)

    async def _listen_postgres(self) -> None:
        conn = await asyncpg.connect(self._dsn, server_settings=SYSTEM_SERVER_SETTINGS)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            await conn.add_listener(REVOCATION_CHANNEL,
                                    lambda _c, _pid, _ch, payload: self.apply([payload]))
            await self._load(conn)  # after LISTEN, so nothing falls between load and feed
            self._healthy = True
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), RESYNC_SECONDS)
                if not lost.is_set():
                    await self._load(conn)  # also notices a dead connection
        finally:
            self._healthy = False
            with contextlib.suppress(Exception):
                await conn.close()

    async def _listen_redis(self) -> None:
        assert self._redis is not None
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(REVOCATION_CHANNEL)
        try:
            conn = await asyncpg.connect(self._dsn, server_settings=SYSTEM_SERVER_SETTINGS)
            try:
                await self._load(conn)
            finally:
                await conn.close()
            self._healthy = True
            next_resync = time.monotonic() + RESYNC_SECONDS
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message and message.get("type") == "message":
                    data = message["data"]
                    self.apply([data.decode() if isinstance(data, bytes) else data])
                if time.monotonic() > next_resync:
                    self._forget_expired()
                    next_resync = time.monotonic() + RESYNC_SECONDS
        finally:
            self._healthy = False
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
