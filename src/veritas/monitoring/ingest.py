"""The ingestion hot path: a per-process group-commit writer and a cached attempt lookup.

Requests put their rows on a bounded queue and wait. One writer task takes everything queued
(up to a row limit), writes it in one INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING
statement that commits on its own, and then answers each waiting request. While a statement
runs, new requests queue up behind it, so commits are shared by everything in flight without
any timer. No ORM, no transaction per event. A full queue or an unreachable database is a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from veritas.errors import Unavailable
from veritas.exams.service import ATTEMPT_ENDED_CHANNEL
from veritas.monitoring.rules import exam_rules

log = logging.getLogger(__name__)

# Event ids are derived from (attempt, client event id): the same client id in another
# student's attempt is another event, and a retry maps to the same row.
EVENT_NAMESPACE = uuid.UUID("6f1c2a4e-8d0b-4f57-9a3e-2b7c5d9e1f80")
ATTEMPT_CACHE_SECONDS = 30.0

INSERT_SQL = """
WITH live AS (
    -- FOR SHARE waits for a concurrent submit/abandon and then sees its outcome, so no
    -- event is acknowledged for an attempt that ended before the event was stored.
    SELECT id FROM exam_attempts
    WHERE id = ANY($1::uuid[]) AND status = 'in_progress'
    FOR SHARE
), ins AS (
    INSERT INTO monitoring_events (
        id, attempt_started_at, exam_attempt_id, student_id, event_id, event_type, severity,
        data_payload, is_anomaly, anomaly_score, description, analysis_notes,
        client_timestamp, server_timestamp)
    SELECT e.*, now() FROM unnest(
        $2::uuid[], $3::timestamptz[], $4::uuid[], $5::uuid[], $6::uuid[], $7::text[],
        $8::event_severity[], $9::jsonb[], $10::bool[], $11::real[], $12::text[], $13::text[],
        $14::timestamptz[]) AS e(
            id, attempt_started_at, exam_attempt_id, student_id, event_id, event_type, severity,
            data_payload, is_anomaly, anomaly_score, description, analysis_notes,
            client_timestamp)
    WHERE e.exam_attempt_id IN (SELECT id FROM live)
    ON CONFLICT DO NOTHING
    RETURNING id
)
SELECT true AS inserted, id FROM ins
UNION ALL
SELECT false, id FROM live
"""


def event_row_id(attempt_id: uuid.UUID, event_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(EVENT_NAMESPACE, f"{attempt_id}:{event_id}")


@dataclass(frozen=True)
class AttemptInfo:
    id: uuid.UUID
    student_id: uuid.UUID
    in_progress: bool
    started_at: datetime
    closes_at: datetime  # expiry plus grace
    rules: dict[str, float]
    loaded_at: float


@dataclass(frozen=True)
class Row:
    """One event, in the column order of INSERT_SQL's unnest."""

    id: uuid.UUID
    attempt_started_at: datetime
    exam_attempt_id: uuid.UUID
    student_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    severity: str
    data_payload: str  # JSON text
    is_anomaly: bool
    anomaly_score: float | None
    description: str | None
    analysis_notes: str | None
    client_timestamp: datetime | None


@dataclass(frozen=True)
class Outcome:
    """Per row: True stored now, False already stored; `ended` if the attempt had ended."""

    stored: list[bool]
    ended: bool


class AttemptEnded(Exception):
    pass


class Ingestor:
    def __init__(
        self, pool: asyncpg.Pool, dsn: str, *, grace_minutes: int, queue_max_events: int,
        max_batch_rows: int,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._grace = timedelta(minutes=grace_minutes)
        self._queue_max = queue_max_events
        self._max_batch = max_batch_rows
        self._queue: deque[tuple[list[Row], asyncio.Future[Outcome]]] = deque()
        self._queued_rows = 0
        self._wake = asyncio.Event()
        self._attempts: dict[uuid.UUID, AttemptInfo] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = {"events_stored": 0, "events_duplicate": 0, "flushes": 0, "rejected_full": 0,
                      "flush_errors": 0}

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="ingest-writer"),
            asyncio.create_task(self._listen_loop(), name="ingest-attempt-listener"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._queue:
            _, future = self._queue.popleft()
            if not future.done():
                future.set_exception(Unavailable("server shutting down", 1))

    # --- attempts -----------------------------------------------------------------------

    async def attempt(self, attempt_id: uuid.UUID) -> AttemptInfo | None:
        """The attempt's owner and state, from a short-lived cache; None if unknown."""
        info = self._attempts.get(attempt_id)
        if info is not None and time.monotonic() - info.loaded_at < ATTEMPT_CACHE_SECONDS:
            return info
        try:
            row = await self._pool.fetchrow(
                "SELECT a.id, a.student_id, a.status = 'in_progress' AS in_progress,"
                " a.started_at, a.expires_at, e.metadata FROM exam_attempts a"
                " JOIN exams e ON e.id = a.exam_id WHERE a.id = $1",
                attempt_id, timeout=5,
            )
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
            raise Unavailable("database unavailable; retry shortly", 2) from exc
        if row is None:
            return None
        metadata = row["metadata"]
        if isinstance(metadata, str):
            import orjson

            metadata = orjson.loads(metadata)
        info = AttemptInfo(
            id=row["id"], student_id=row["student_id"], in_progress=row["in_progress"],
            started_at=row["started_at"], closes_at=row["expires_at"] + self._grace,
            rules=exam_rules(metadata), loaded_at=time.monotonic(),
        )
        if len(self._attempts) > 100_000:
            self._attempts.clear()
        self._attempts[attempt_id] = info
        return info

    def mark_ended(self, attempt_id: uuid.UUID) -> None:
        info = self._attempts.get(attempt_id)
        if info is not None and info.in_progress:
            self._attempts[attempt_id] = AttemptInfo(
                info.id, info.student_id, False, info.started_at, info.closes_at, info.rules,
                info.loaded_at,
            )

    async def _listen_loop(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
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

    # --- writing ------------------------------------------------------------------------

    async def write(self, rows: list[Row]) -> Outcome:
        """Queue rows and wait until they are committed (or refused)."""
        if self._queued_rows + len(rows) > self._queue_max:
            self.stats["rejected_full"] += 1
            raise Unavailable("ingestion queue full; retry shortly", 1)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((rows, future))
        self._queued_rows += len(rows)
        self._wake.set()
        return await asyncio.shield(future)

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch: list[tuple[list[Row], asyncio.Future[Outcome]]] = []
                count = 0
                while self._queue and (not batch or count + len(self._queue[0][0]) <= self._max_batch):
                    rows, future = self._queue.popleft()
                    batch.append((rows, future))
                    count += len(rows)
                self._queued_rows -= count
                await self._flush(batch)

    async def _flush(self, batch: list[tuple[list[Row], asyncio.Future[Outcome]]]) -> None:
        # The same event twice in one statement is stored once: later copies are duplicates.
        unique: dict[tuple[uuid.UUID, datetime], Row] = {}
        for rows, _ in batch:
            for row in rows:
                unique.setdefault((row.id, row.attempt_started_at), row)
        rows = list(unique.values())
        try:
            result = await self._execute(rows)
        except Exception as exc:  # noqa: BLE001 - whatever failed, nothing was acknowledged
            self.stats["flush_errors"] += 1
            log.warning("event flush failed (%s: %s)", type(exc).__name__, exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(Unavailable("database unavailable; retry shortly", 2))
            return
        self.stats["flushes"] += 1
        inserted = {r["id"] for r in result if r["inserted"]}
        live = {r["id"] for r in result if not r["inserted"]}
        self.stats["events_stored"] += len(inserted)
        for rows, future in batch:
            stored = []
            for row in rows:
                stored.append(row.id in inserted)
                inserted.discard(row.id)  # a later copy in this flush is a duplicate
            ended = any(row.exam_attempt_id not in live for row in rows)
            if ended:
                for row in rows:
                    if row.exam_attempt_id not in live:
                        self.mark_ended(row.exam_attempt_id)
            self.stats["events_duplicate"] += stored.count(False)
            if not future.done():
                future.set_result(Outcome(stored, ended))

    async def _execute(self, rows: list[Row]) -> list[asyncpg.Record]:
        columns: list[list[Any]] = [[] for _ in range(13)]
        for row in rows:
            for i, value in enumerate((
                row.id, row.attempt_started_at, row.exam_attempt_id, row.student_id,
                row.event_id, row.event_type, row.severity, row.data_payload, row.is_anomaly,
                row.anomaly_score, row.description, row.analysis_notes, row.client_timestamp,
            )):
                columns[i].append(value)
        attempt_ids = list({row.exam_attempt_id for row in rows})
        async with self._pool.acquire(timeout=5) as conn:
            try:
                return await conn.fetch(INSERT_SQL, attempt_ids, *columns, timeout=30)
            except asyncpg.CheckViolationError as exc:
                if "no partition" not in str(exc):
                    raise
                # A partition was dropped or never made: create it and try once more.
                for started in {row.attempt_started_at for row in rows}:
                    await conn.execute("SELECT veritas_ensure_event_partition($1)", started)
                return await conn.fetch(INSERT_SQL, attempt_ids, *columns, timeout=30)
