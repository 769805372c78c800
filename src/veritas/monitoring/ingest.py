"""The ingestion hot path: a per-process group-commit writer and a cached attempt lookup.

Requests put their rows on a bounded queue and wait. A writer task (per process, on its own
connection) takes everything queued (up to a row limit), writes it in one commit (a single
INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING statement, or for a large flush a
COPY in a transaction that first locks the live attempts), and then answers each waiting
request. While a statement runs, new requests queue up behind it, and an idle writer
lingers about as long as its last statement took (at most 5 ms) for more company, so commits
are shared by everything in flight. No ORM, no transaction per event. A full queue or an
unreachable database is a 503.

Measured choices (bench/README.md): the INSERT takes one round trip and no staging table,
which is what matters for the small flushes of light load, and COPY's cheaper rows win from
a few dozen rows up; rows are tuples of the composite type monitoring_event_in, sent as one
array (asyncpg encodes that in ~6 us of Python per row against ~10 for eleven column
arrays); writers own their connections so a flush never pays the pool's reset query nor
waits behind attempt lookups.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
from asyncpg.pgproto.pgproto import UUID as PgUUID

from veritas.core.channels import ATTEMPT_ENDED_CHANNEL
from veritas.db.base import AttemptStatus
from veritas.db.unit_of_work import SYSTEM_SERVER_SETTINGS
from veritas.errors import Invalid, RateLimited, Unavailable
from veritas.monitoring.limits import EventBuckets
from veritas.monitoring.partitions import copy_events
from veritas.monitoring.rules import exam_thresholds

log = logging.getLogger(__name__)

# Event ids are derived from (attempt, client event id): the same client id in another
# student's attempt is another event, and a retry maps to the same row.
EVENT_NAMESPACE = uuid.UUID("6f1c2a4e-8d0b-4f57-9a3e-2b7c5d9e1f80")
# Owner and start time never change and "in progress" is re-checked by every INSERT, so the
# cache only needs refreshing to notice an end whose notification was missed.
ATTEMPT_CACHE_SECONDS = 300.0
# One statement in flight per process (N worker processes give N in the database): a second
# writer cut statements smaller and cost ~10% more database CPU per event, for no gain in
# latency (bench/README.md).
WRITERS = 1
# A statement costs PostgreSQL ~250 us and Python ~100 us on top of ~20 us per row, so a
# writer that finds fewer than FLUSH_ROWS rows queued lingers (from the oldest request's
# arrival) as long as its last statement took, at most LINGER_SECONDS, to gather more:
# about a millisecond when idle, more as the database gets busier. Without it, statements
# stay at one or two requests up to ~15k events/s and cost twice the CPU per event.
FLUSH_ROWS = 250
LINGER_SECONDS = 0.005
CONNECT_TIMEOUT = 2.0
DOWN_SECONDS = 1.0  # after a failed connect, refuse at once for this long (fast 503s)

# Locks the statement's attempts by primary key and reads their state. FOR SHARE waits for a
# concurrent submit/abandon and then returns the row as it ended, so no event is acknowledged
# for an attempt that ended before the event was stored. The status is tested outside the
# locking scan, behind MATERIALIZED: with `status = 'in_progress'` beside the key, the planner
# (notably before exam_attempts has statistics, as when an exam has just started) scanned the
# partial index of every open attempt on each statement, 2,000 rows in the benchmark.
LOCK_ATTEMPTS_CTE = """locked AS MATERIALIZED (
    SELECT id, student_id, started_at, exam_id, status FROM exam_attempts
    WHERE id = ANY($1::uuid[])
    FOR SHARE
), live AS (
    SELECT id, student_id, started_at, exam_id FROM locked WHERE status = 'in_progress'
)"""
# Rows travel as one array of the composite type monitoring_event_in (migration 0004);
# student_id and the partition key come from the attempt rows the statement locks anyway.
_INSERT_EVENTS = """INSERT INTO monitoring_events (
        id, attempt_started_at, exam_attempt_id, student_id, event_id, event_type, severity,
        data_payload, is_anomaly, anomaly_score, description, analysis_notes,
        client_timestamp, server_timestamp)
    SELECT e.id, live.started_at, e.exam_attempt_id, live.student_id, e.event_id,
           e.event_type, e.severity, e.data_payload, e.anomaly_score IS NOT NULL, e.anomaly_score,
           e.description, e.analysis_notes, e.client_timestamp, now()
    FROM unnest($2::monitoring_event_in[]) AS e
    JOIN live ON live.id = e.exam_attempt_id
    -- Duplicates inside one statement are fine: DO NOTHING skips the later copies.
    ON CONFLICT DO NOTHING"""
_ANSWER = """SELECT true AS inserted, id FROM ins
UNION ALL
SELECT false, id FROM live"""
INSERT_SQL = f"""
WITH {LOCK_ATTEMPTS_CTE}, ins AS (
    {_INSERT_EVENTS}
    RETURNING id
)
{_ANSWER}
"""

# Repeated anomalies of one type in one attempt fold into one alert (migration 0005), in the
# same transaction as the events. Rows go in key order, so that two statements folding the
# same alerts lock them in the same order and never deadlock.
_FOLD_CONFLICT = """ON CONFLICT (exam_attempt_id, event_type) DO UPDATE SET
    count = m.count + excluded.count, last_at = excluded.last_at,
    severity = greatest(m.severity, excluded.severity),
    anomaly_score = greatest(m.anomaly_score, excluded.anomaly_score),
    description = excluded.description"""
_FOLD_COLUMNS = """INSERT INTO monitoring_alerts AS m (exam_attempt_id, exam_id, student_id,
    event_type, severity, anomaly_score, description, count, first_at, last_at)"""
# A flush holding an anomaly takes this longer statement; most flushes hold none.
INSERT_ALERTING_SQL = f"""
WITH {LOCK_ATTEMPTS_CTE}, ins AS (
    {_INSERT_EVENTS}
    RETURNING id, exam_attempt_id, student_id, event_type, severity, anomaly_score,
              description, is_anomaly
), folded AS (
    {_FOLD_COLUMNS}
    SELECT i.exam_attempt_id, live.exam_id, i.student_id, i.event_type, max(i.severity),
           max(i.anomaly_score), (array_agg(i.description))[1], count(*), now(), now()
    FROM ins i JOIN live ON live.id = i.exam_attempt_id
    WHERE i.is_anomaly
    GROUP BY i.exam_attempt_id, live.exam_id, i.student_id, i.event_type
    ORDER BY i.exam_attempt_id, i.event_type
    {_FOLD_CONFLICT}
)
{_ANSWER}
"""
# The COPY path folds what it copied, counted in Python, inside the COPY's transaction.
FOLD_SQL = f"""
{_FOLD_COLUMNS}
SELECT u.*, now(), now() FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[],
                                     $5::event_severity[], $6::real[], $7::text[], $8::bigint[])
    AS u(exam_attempt_id, exam_id, student_id, event_type, severity, anomaly_score,
         description, count)
ORDER BY u.exam_attempt_id, u.event_type
{_FOLD_CONFLICT}
"""
SEVERITY_RANK = {"normal": 0, "warning": 1, "critical": 2}
# Recounts the alerts of attempts whose events were written around the writer (the demo
# school, benchmarks' bulk loads) from the events themselves.
REFOLD_SQL = f"""
{_FOLD_COLUMNS}
SELECT e.exam_attempt_id, a.exam_id, e.student_id, e.event_type, max(e.severity),
       max(e.anomaly_score), (array_agg(e.description ORDER BY e.server_timestamp DESC))[1],
       count(*), min(e.server_timestamp), max(e.server_timestamp)
FROM monitoring_events e
JOIN exam_attempts a ON a.id = e.exam_attempt_id AND a.started_at = e.attempt_started_at
WHERE e.is_anomaly AND e.exam_attempt_id = ANY($1::uuid[])
GROUP BY e.exam_attempt_id, a.exam_id, e.student_id, e.event_type
ORDER BY e.exam_attempt_id, e.event_type
ON CONFLICT (exam_attempt_id, event_type) DO UPDATE SET
    count = excluded.count, first_at = excluded.first_at, last_at = excluded.last_at,
    severity = excluded.severity, anomaly_score = excluded.anomaly_score,
    description = excluded.description
"""

# Flushes of at least COPY_MIN_ROWS go by COPY inside a transaction that first locks the live
# attempts as INSERT_SQL does: COPY's multi-row inserts cost PostgreSQL about a quarter less
# per row (~40 against ~55 us), which outweighs its three extra round trips from a few
# dozen rows up. COPY cannot skip duplicates, so a flush holding a retry of a stored event
# fails as a whole and is written again by INSERT_SQL, which sorts out which rows are new.
COPY_MIN_ROWS = 64
LOCK_LIVE_SQL = f"WITH {LOCK_ATTEMPTS_CTE} SELECT id, student_id, started_at, exam_id FROM live"
COPY_COLUMNS = (
    "id", "attempt_started_at", "exam_attempt_id", "student_id", "event_id", "event_type",
    "severity", "data_payload", "is_anomaly", "anomaly_score", "description", "analysis_notes",
    "client_timestamp")

_NAMESPACE_SHA1 = hashlib.sha1(EVENT_NAMESPACE.bytes)
# SHA-1 state after hashing "namespace + attempt:", per attempt: a batch's events share it.
_ATTEMPT_SHA1: dict[uuid.UUID, Any] = {}


def event_row_id(attempt_id: uuid.UUID, event_id: uuid.UUID) -> uuid.UUID:
    """uuid5(EVENT_NAMESPACE, f"{attempt_id}:{event_id}"), about twice as fast.

    It runs once per event, so it reuses the hash state of the common prefix and builds
    asyncpg's C UUID (a uuid.UUID to isinstance, ==, hash and str; the type asyncpg
    itself returns) instead of the pure-Python one.
    """
    state = _ATTEMPT_SHA1.get(attempt_id)
    if state is None:
        if len(_ATTEMPT_SHA1) >= 100_000:
            _ATTEMPT_SHA1.clear()
        state = _NAMESPACE_SHA1.copy()
        state.update(f"{attempt_id}:".encode())
        _ATTEMPT_SHA1[attempt_id] = state
    digest = state.copy()
    digest.update(str(event_id).encode())
    raw = bytearray(digest.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return PgUUID(bytes(raw))


@dataclass(frozen=True)
class AttemptInfo:
    id: uuid.UUID
    student_id: uuid.UUID
    status: AttemptStatus
    started_at: datetime
    expires_at: datetime
    rules: dict[str, float]
    loaded_at: float


class Row(NamedTuple):
    """One event, field for field the composite type monitoring_event_in: a flush sends the
    rows themselves as one array parameter."""

    id: uuid.UUID
    exam_attempt_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    severity: str
    data_payload: str  # JSON text
    anomaly_score: float | None  # None: not an anomaly
    description: str | None
    analysis_notes: str | None
    client_timestamp: datetime | None


@dataclass(frozen=True)
class Outcome:
    """Per row: True stored now, False already stored; `ended` if the attempt had ended."""

    stored: list[bool]
    ended: bool


Waiter = tuple[list[Row], "asyncio.Future[Outcome]", float]  # rows, answer, arrival


def unavailable(exc: BaseException) -> bool:
    """Whether a failed flush means the database cannot take writes now (everyone's 503),
    rather than something wrong with the rows (one request's 422)."""
    if isinstance(exc, OSError | TimeoutError):
        return True  # connection refused or reset; a statement timed out
    if isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, ValueError):
        return True  # the connection closed under the statement (not a value asyncpg refused)
    # 08 connection lost, 53 out of resources (disk, memory, connections), 57 shutting down
    # or cancelled, 58 I/O error, 40 deadlock or serialization failure (retry is right).
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return sqlstate[:2] in ("08", "40", "53", "57", "58")


def refused_value(exc: BaseException) -> bool:
    """Whether a statement failed on a value: asyncpg could not encode it, or PostgreSQL (a
    type, a constraint, a size limit, a trigger's RAISE) refused it."""
    if isinstance(exc, ValueError | TypeError | ArithmeticError):  # OverflowError included
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return sqlstate[:2] in ("22", "23", "54", "P0")


class Ingestor:
    def __init__(
        self, pool: asyncpg.Pool, dsn: str, *, queue_max_events: int,
        max_batch_rows: int, events_per_second: float = 200.0, burst_events: int = 10_000,
        writers: int = WRITERS,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._queue_max = queue_max_events
        self._max_batch = max_batch_rows
        self._writers = max(1, writers)
        self._queue: deque[Waiter] = deque()
        self._queued_rows = 0
        self._wake = asyncio.Event()  # set when the queue may hold work
        self._enough = asyncio.Event()  # set when FLUSH_ROWS are queued
        self._down_until = 0.0
        self._last_statement = 0.001  # seconds the last statement took
        self._attempts: dict[uuid.UUID, AttemptInfo] = {}
        self.buckets = EventBuckets(events_per_second, burst_events)
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = {"events_stored": 0, "events_duplicate": 0, "flushes": 0, "rejected_full": 0,
                      "flush_errors": 0, "rate_limited": 0}

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write_loop(), name=f"ingest-writer-{i}")
                       for i in range(self._writers)]
        self._tasks.append(
            asyncio.create_task(self._listen_loop(), name="ingest-attempt-listener"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._queue:
            _, future, _ = self._queue.popleft()
            if not future.done():
                future.set_exception(Unavailable("server shutting down", 1))

    # --- attempts -----------------------------------------------------------------------

    async def attempt(self, attempt_id: uuid.UUID) -> AttemptInfo | None:
        """The attempt's owner and state, from a cache; None if unknown."""
        info = self._attempts.get(attempt_id)
        if info is not None and time.monotonic() - info.loaded_at < ATTEMPT_CACHE_SECONDS:
            return info
        try:
            row = await self._pool.fetchrow(
                "SELECT a.id, a.student_id, a.status::text AS status,"
                " a.started_at, a.expires_at, a.exam_id, e.metadata FROM exam_attempts a"
                " JOIN exams e ON e.id = a.exam_id WHERE a.id = $1",
                attempt_id, timeout=5,
            )
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise Unavailable("database unavailable; retry shortly", 2) from exc
        if row is None:
            return None
        metadata = row["metadata"]
        if isinstance(metadata, str):
            # The standard parser, not orjson: it reads any number jsonb holds (metadata
            # written before json_limits could hold integers beyond 64 bits).
            metadata = json.loads(metadata)
        info = AttemptInfo(
            id=row["id"], student_id=row["student_id"], status=AttemptStatus(row["status"]),
            started_at=row["started_at"], expires_at=row["expires_at"],
            rules=exam_thresholds(metadata, row["exam_id"]),
            loaded_at=time.monotonic(),
        )
        if len(self._attempts) > 100_000:
            self._attempts.clear()
        self._attempts[attempt_id] = info
        return info

    def mark_ended(self, attempt_id: uuid.UUID) -> None:
        """Forget the attempt: its next request reads how it ended."""
        self._attempts.pop(attempt_id, None)

    async def _listen_loop(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT,
                                             server_settings=SYSTEM_SERVER_SETTINGS)
                try:
                    await conn.add_listener(
                        ATTEMPT_ENDED_CHANNEL,
                        lambda _c, _p, _ch, payload: self.mark_ended(uuid.UUID(payload)),
                    )
                    # Whatever ended while we were not listening is re-read on next use.
                    self._attempts.clear()
                    while not conn.is_closed():
                        await asyncio.sleep(5)
                        await conn.execute("SELECT 1", timeout=5)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect on any loss
                log.warning("attempt-ended listener lost (%s); retrying", exc)
            self._attempts.clear()
            await asyncio.sleep(1)

    def admit(self, attempt_id: uuid.UUID, events: int) -> None:
        """Refuse (429) events beyond the attempt's rate; other attempts are unaffected."""
        wait = self.buckets.take(attempt_id, events)
        if wait:
            self.stats["rate_limited"] += 1
            raise RateLimited("this attempt is sending more events than any exam page would;"
                              " retry later", wait)

    # --- writing ------------------------------------------------------------------------

    async def write(self, rows: list[Row]) -> Outcome:
        """Queue rows and wait until they are committed (or refused)."""
        if self._queued_rows + len(rows) > self._queue_max:
            self.stats["rejected_full"] += 1
            raise Unavailable("ingestion queue full; retry shortly", 1)
        if time.monotonic() < self._down_until:
            raise Unavailable("database unavailable; retry shortly", 2)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((rows, future, time.monotonic()))
        self._queued_rows += len(rows)
        self._wake.set()
        if self._queued_rows >= FLUSH_ROWS:
            self._enough.set()
        # Not shielded: if this request is cancelled its rows are still written (they are
        # queued), it just gets no answer, and the client's retry is answered "duplicate".
        return await future

    def _take(self) -> list[Waiter]:
        """Everything queued, up to the row limit (always at least one request)."""
        batch: list[Waiter] = []
        count = 0
        while self._queue and (not batch or count + len(self._queue[0][0]) <= self._max_batch):
            waiter = self._queue.popleft()
            batch.append(waiter)
            count += len(waiter[0])
        self._queued_rows -= count
        return batch

    async def _write_loop(self) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while True:
                while not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                await self._linger()
                if not self._queue:
                    continue  # another writer took it
                batch = self._take()
                try:
                    conn = await self._flush(conn, batch)
                except asyncio.CancelledError:
                    # Stopped mid-statement: it may or may not commit; either way the
                    # client's retry is safe, so answer 503 rather than never.
                    self._fail(batch, Unavailable("server shutting down", 1))
                    raise
        finally:
            if conn is not None:
                conn.terminate()

    async def _linger(self) -> None:
        """Wait until FLUSH_ROWS are queued or the oldest request has waited long enough."""
        if self._queued_rows >= FLUSH_ROWS:
            return
        linger = min(LINGER_SECONDS, self._last_statement)
        delay = self._queue[0][2] + linger - time.monotonic()
        if delay > 0:
            self._enough.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._enough.wait()

    async def _connect(self) -> asyncpg.Connection:
        if time.monotonic() < self._down_until:
            raise ConnectionError("database recently unreachable")
        try:
            # The writer's own connection, shared with no one: it writes every student's
            # events (each request was authorized before it was queued) as the system.
            return await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT,
                                         statement_cache_size=16,
                                         server_settings=SYSTEM_SERVER_SETTINGS)
        except Exception:
            self._down_until = time.monotonic() + DOWN_SECONDS
            raise

    async def _flush(self, conn: asyncpg.Connection | None,
                     batch: list[Waiter]) -> asyncpg.Connection | None:
        """Write one batch and answer its requests; returns the connection to keep using."""
        rows = [row for rows, _, _ in batch for row in rows]
        if conn is not None and conn.is_closed():
            conn = None
        try:
            if conn is None:
                conn = await self._connect()
            started = time.monotonic()
            result = await self._execute(conn, rows)
            self._last_statement = time.monotonic() - started
        except Exception as exc:  # noqa: BLE001 - sorted below; nothing was acknowledged
            self.stats["flush_errors"] += 1
            if conn is None or unavailable(exc):  # no connection, or it failed under us
                log.warning("event flush failed (%s: %s)", type(exc).__name__, exc)
                self._fail(batch, Unavailable("database unavailable; retry shortly", 2))
                if conn is not None:
                    conn.terminate()  # its state is unknown; the next flush reconnects
                return None
            if conn.is_closed() or conn.is_in_transaction():
                conn.terminate()
                conn = None
            # Anything else came from the rows themselves (a value the checks at the door
            # missed): halve the batch until the request that holds it stands alone, so the
            # others are stored and only that one is refused.
            if len(batch) > 1:
                half = len(batch) // 2
                conn = await self._flush(conn, batch[:half])
                return await self._flush(conn, batch[half:])
            if refused_value(exc):
                log.warning("an event request cannot be stored (%s: %s)",
                            type(exc).__name__, exc)
                self._fail(batch, Invalid("an event in this request cannot be stored"))
            else:  # not the client's fault: a bug, answered 500 and logged with its trace
                self._fail(batch, exc)
            return conn
        self.stats["flushes"] += 1
        inserted: set[uuid.UUID] = set()  # event ids
        live: set[uuid.UUID] = set()  # attempt ids
        for record in result:
            (inserted if record[0] else live).add(record[1])
        self.stats["events_stored"] += len(inserted)
        for rows, future, _ in batch:
            stored = []
            ended = False
            for row in rows:
                if row.id in inserted:
                    stored.append(True)
                    inserted.discard(row.id)  # a later copy in this flush is a duplicate
                else:
                    stored.append(False)
                    ended = ended or row.exam_attempt_id not in live
            if ended:
                for row in rows:
                    if row.exam_attempt_id not in live:
                        self.mark_ended(row.exam_attempt_id)
            self.stats["events_duplicate"] += stored.count(False)
            if not future.done():
                future.set_result(Outcome(stored, ended))
        return conn

    def _fail(self, batch: list[Waiter], error: Exception) -> None:
        for _, future, _ in batch:
            if not future.done():
                future.set_exception(error)

    async def _execute(self, conn: asyncpg.Connection, rows: list[Row]) -> list[Any]:
        """(inserted, id) for each row stored now and (False, attempt id) for each live
        attempt, as INSERT_SQL returns them."""
        attempt_ids = list({row.exam_attempt_id for row in rows})
        alerting = any(row.anomaly_score is not None for row in rows)
        if len(rows) >= COPY_MIN_ROWS:
            try:
                return await self._copy(conn, attempt_ids, rows, alerting)
            except (asyncpg.UniqueViolationError, asyncpg.CheckViolationError,
                    asyncpg.UndefinedTableError):
                pass  # a stored event retried, or a missing partition: INSERT_SQL handles both
        sql = INSERT_ALERTING_SQL if alerting else INSERT_SQL
        try:
            return await conn.fetch(sql, attempt_ids, rows, timeout=30)
        except asyncpg.CheckViolationError as exc:
            if "no partition" not in str(exc):
                raise
            # A partition was dropped or never made: create it and try once more.
            await conn.execute(
                "SELECT veritas_ensure_event_partition(started_at) FROM exam_attempts"
                " WHERE id = ANY($1::uuid[])", attempt_ids)
            return await conn.fetch(sql, attempt_ids, rows, timeout=30)

    async def _copy(self, conn: asyncpg.Connection, attempt_ids: list[uuid.UUID],
                    rows: list[Row], alerting: bool) -> list[Any]:
        async with conn.transaction():
            live = {attempt["id"]: attempt for attempt in
                    await conn.fetch(LOCK_LIVE_SQL, attempt_ids, timeout=30)}
            records = {}  # by row id: a later copy in this flush is a duplicate
            for row in rows:
                attempt = live.get(row.exam_attempt_id)
                if attempt is not None and row.id not in records:
                    records[row.id] = (
                        row.id, attempt["started_at"], row.exam_attempt_id, attempt["student_id"],
                        row.event_id, row.event_type, row.severity, row.data_payload,
                        row.anomaly_score is not None, row.anomaly_score, row.description,
                        row.analysis_notes, row.client_timestamp)
            await copy_events(conn, list(records.values()), COPY_COLUMNS, timeout=30)
            if alerting:
                await conn.execute(FOLD_SQL, *_fold(records.values(), live), timeout=30)
        return [(True, row_id) for row_id in records] + [(False, a) for a in live]


def _fold(records: Any, live: dict[uuid.UUID, Any]) -> list[list[Any]]:
    """FOLD_SQL's column arrays: the copied anomalies counted per (attempt, event type)."""
    alerts: dict[tuple[uuid.UUID, str], list[Any]] = {}
    for record in records:
        if not record[8]:  # is_anomaly
            continue
        attempt_id, event_type, severity, score = record[2], record[5], record[6], record[9]
        alert = alerts.get((attempt_id, event_type))
        if alert is None:
            alerts[(attempt_id, event_type)] = [
                attempt_id, live[attempt_id]["exam_id"], record[3], event_type, severity, score,
                record[10], 1]
            continue
        if SEVERITY_RANK[severity] > SEVERITY_RANK[alert[4]]:
            alert[4] = severity
        alert[5] = max(alert[5], score)
        alert[6] = record[10]  # the latest description
        alert[7] += 1
    return [list(column) for column in zip(*alerts.values(), strict=True)] or [[]] * 8
