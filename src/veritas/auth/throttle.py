"""Login and registration throttling, counted before any password is checked.

Each login attempt reserves a failure on two keys at once, in one atomic step: its (account,
client address) pair and its client address. The pair gets a few free failures, then a delay
that doubles with each further failure up to a cap; the address gets a much larger budget
(it may be a school's NAT) and shorter delays. A success clears the pair and gives the
address its reservation back. Because the reservation happens before bcrypt runs, parallel
guesses cannot all pass a check that only counts finished failures. The owner, coming from an
address that has not been failing, never shares a key with a stranger who has.

Pairs are keyed by a keyed hash of the login name as typed (lower-cased), whether or not an
account has it: unknown names are throttled exactly like existing ones, and no answer tells
that an email and a username belong to one account (keying existing accounts by their id
would: failures by email would then throttle the username too). What someone typed (a
password, sometimes) is never stored.

The counters live in PostgreSQL (`throttle_counters`, rows locked FOR UPDATE) or, when
REDIS_URL is set, in Redis (Lua scripts, which Redis runs atomically).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.config import Settings

# Past this many doublings the delay is at its cap anyway; keeps the arithmetic small.
_MAX_DOUBLINGS = 30


@dataclass(frozen=True)
class Budget:
    """Failures allowed on a key before delays, the first delay, and the delay's cap."""

    free: int
    delay: int
    max_delay: int

    def wait(self, failures: int, idle: float) -> float:
        """Seconds left before one more attempt, `idle` seconds after the key's last one."""
        if failures < self.free:
            return 0.0
        doublings = min(failures - self.free, _MAX_DOUBLINGS)
        return max(0.0, min(self.max_delay, self.delay * 2.0**doublings) - idle)


@dataclass(frozen=True)
class LoginKeys:
    pair: str
    ip: str | None


def login_fingerprint(settings: Settings, login: str) -> str:
    """A keyed hash of a login name: the same name always gives the same value, which an
    admin can correlate across audit rows, but the name itself is not kept."""
    digest = hmac.new(settings.signing_key.encode(), b"veritas-login\x00" + login.strip()
                      .lower().encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def client_key(ip: str) -> str:
    """An IPv4 address, or an IPv6 address's /64 (one subscriber's, handed out whole)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def login_keys(fingerprint: str, ip: str | None) -> LoginKeys:
    """Keys for an attempt on the login name with this fingerprint, from this address."""
    client = client_key(ip) if ip else None
    return LoginKeys(pair=f"pair:{fingerprint}|{client or '-'}",
                     ip=f"ip:{client}" if client else None)


def budgets(settings: Settings, keys: LoginKeys) -> dict[str, Budget]:
    found = {keys.pair: Budget(settings.login_free_failures, settings.login_delay_seconds,
                               settings.login_max_delay_seconds)}
    if keys.ip and not settings.ip_exempt_from_login_throttle(keys.ip[3:].split("/")[0]):
        found[keys.ip] = Budget(settings.login_ip_free_failures, settings.login_ip_delay_seconds,
                                settings.login_ip_max_delay_seconds)
    return found


class Counters(Protocol):
    async def reserve(self, session: AsyncSession, budgets: dict[str, Budget],
                      reset_seconds: int) -> int:
        """Count one failure on every key and return 0, or, when any key must still wait,
        count nothing and return the seconds to wait."""

    async def succeeded(self, session: AsyncSession, keys: LoginKeys) -> None:
        """Clear the pair and give the address back the failure reserved for this attempt."""

    async def hit(self, session: AsyncSession, key: str, limit: int, window: int) -> int:
        """Count one event in the key's fixed window: 0, or seconds until the window ends."""

    async def forget_idle(self, session: AsyncSession, idle_seconds: int) -> None:
        """Drop keys untouched for this long (their counts have run out)."""

    async def close(self) -> None: ...


class PostgresCounters:
    """Counters in `throttle_counters`, inside the caller's transaction."""

    async def reserve(self, session: AsyncSession, budgets: dict[str, Budget],
                      reset_seconds: int) -> int:
        keys = sorted(budgets)  # one locking order for every attempt: no deadlocks
        rows: Sequence[Row[*tuple[Any, ...]]] = ()
        # A row deleted while this waited for its lock (the sweeper forgetting an idle key)
        # comes back missing; counting on without it would let the attempt through uncounted.
        while len(rows) < len(keys):
            await session.execute(
                text("INSERT INTO throttle_counters (key) SELECT k FROM"
                     " unnest(CAST(:keys AS text[])) AS k ORDER BY k ON CONFLICT (key) DO NOTHING"),
                {"keys": keys})
            rows = (await session.execute(
                text("SELECT key, hits, extract(epoch FROM clock_timestamp() - last_hit) AS idle"
                     " FROM throttle_counters WHERE key = ANY(CAST(:keys AS text[]))"
                     " ORDER BY key FOR UPDATE"), {"keys": keys})).all()
        wait = max(budgets[r.key].wait(0 if r.idle > reset_seconds else r.hits, float(r.idle))
                   for r in rows)
        if wait > 0:
            return math.ceil(wait)
        await session.execute(
            text("UPDATE throttle_counters SET last_hit = clock_timestamp(), hits = CASE WHEN"
                 " last_hit < clock_timestamp() - CAST(:reset AS interval) THEN 1"
                 " ELSE hits + 1 END WHERE key = ANY(CAST(:keys AS text[]))"),
            {"keys": keys, "reset": timedelta(seconds=reset_seconds)})
        return 0

    async def succeeded(self, session: AsyncSession, keys: LoginKeys) -> None:
        # Locked in reserve()'s order first: the other order deadlocks with a reservation.
        await session.execute(
            text("SELECT 1 FROM throttle_counters WHERE key = ANY(CAST(:keys AS text[]))"
                 " ORDER BY key FOR UPDATE"), {"keys": sorted(filter(None, (keys.pair, keys.ip)))})
        # Reset, not deleted: a reservation waiting on this row's lock then reads the reset
        # count and is counted, where a deleted row would let it through uncounted.
        await session.execute(text("UPDATE throttle_counters SET hits = 0 WHERE key = :pair"),
                              {"pair": keys.pair})
        if keys.ip:
            await session.execute(
                text("UPDATE throttle_counters SET hits = greatest(hits - 1, 0) WHERE key = :ip"),
                {"ip": keys.ip})

    async def hit(self, session: AsyncSession, key: str, limit: int, window: int) -> int:
        row = (await session.execute(
            text("INSERT INTO throttle_counters AS t (key, hits) VALUES (:key, 1)"
                 " ON CONFLICT (key) DO UPDATE SET last_hit = clock_timestamp(),"
                 " hits = CASE WHEN t.window_started <= clock_timestamp() - CAST(:window AS interval)"
                 "  THEN 1 ELSE t.hits + 1 END,"
                 " window_started = CASE WHEN t.window_started <= clock_timestamp() - CAST(:window AS interval)"
                 "  THEN clock_timestamp() ELSE t.window_started END"
                 " RETURNING hits, extract(epoch FROM window_started + CAST(:window AS interval)"
                 "  - clock_timestamp()) AS left"),
            {"key": key, "window": timedelta(seconds=window)})).one()
        return 0 if row.hits <= limit else max(1, math.ceil(row.left))

    async def forget_idle(self, session: AsyncSession, idle_seconds: int) -> None:
        await session.execute(
            text("DELETE FROM throttle_counters WHERE last_hit < clock_timestamp() - CAST(:idle AS interval)"),
            {"idle": timedelta(seconds=idle_seconds)})

    async def close(self) -> None:
        pass


# KEYS: the keys; ARGV: reset seconds, then free, delay, cap for each key.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local reset = tonumber(ARGV[1])
local hits, wait = {}, 0
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 'hits', 'last')
  local n, last = tonumber(v[1]) or 0, tonumber(v[2]) or now
  if now - last > reset then n = 0 end
  hits[i] = n
  local free, delay, cap = tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i]), tonumber(ARGV[3*i+1])
  if n >= free then
    local w = math.min(cap, delay * 2 ^ math.min(n - free, 30)) - (now - last)
    if w > wait then wait = w end
  end
end
if wait > 0 then return tostring(wait) end
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'hits', hits[i] + 1, 'last', tostring(now))
  redis.call('EXPIRE', key, reset)
end
return '0'
"""

# KEYS: pair, ip (optional).
_SUCCEEDED = """
redis.call('DEL', KEYS[1])
if KEYS[2] and tonumber(redis.call('HGET', KEYS[2], 'hits') or '0') > 0 then
  redis.call('HINCRBY', KEYS[2], 'hits', -1)
end
return 0
"""

# KEYS: the key; ARGV: limit, window seconds. Returns 0 or milliseconds left in the window.
_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n <= tonumber(ARGV[1]) then return 0 end
return redis.call('PTTL', KEYS[1])
"""


class RedisCounters:
    """The same counters in Redis, so they need no database round trip."""

    PREFIX = "veritas:throttle:"

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url)
        self._reserve = self._redis.register_script(_RESERVE)
        self._succeeded = self._redis.register_script(_SUCCEEDED)
        self._hit = self._redis.register_script(_HIT)

    async def reserve(self, session: AsyncSession, budgets: dict[str, Budget],
                      reset_seconds: int) -> int:
        keys = list(budgets)
        args: list[int] = [reset_seconds]
        for key in keys:
            args += [budgets[key].free, budgets[key].delay, budgets[key].max_delay]
        wait = float(await self._reserve(keys=[self.PREFIX + k for k in keys], args=args))
        return math.ceil(wait) if wait > 0 else 0

    async def succeeded(self, session: AsyncSession, keys: LoginKeys) -> None:
        names = [keys.pair] + ([keys.ip] if keys.ip else [])
        await self._succeeded(keys=[self.PREFIX + k for k in names])

    async def hit(self, session: AsyncSession, key: str, limit: int, window: int) -> int:
        left_ms = int(await self._hit(keys=[self.PREFIX + key], args=[limit, window]))
        return 0 if left_ms == 0 else max(1, math.ceil(left_ms / 1000))

    async def forget_idle(self, session: AsyncSession, idle_seconds: int) -> None:
        pass  # Redis expires the keys itself

    async def close(self) -> None:
        await self._redis.aclose()


def counters(settings: Settings) -> Counters:
    return RedisCounters(settings.redis_url) if settings.redis_url else PostgresCounters()
