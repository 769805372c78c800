"""Verify the audit log's hash chain: the first broken link, if any.

At commit, every audit row is sealed (migration 0007) with its position `chain_seq`, the
previous row's hash `prev_hash`, and `row_hash = sha256(prev_hash || canonical text)`, and
audit_chain_head keeps the last position and hash. An edited row no longer matches its hash;
a removed row leaves a gap; a removed tail disagrees with the head; a row slipped in with the
seal disabled has none. The hashes are recomputed here, in Python, over the canonical text
PostgreSQL renders from the stored columns, so a changed database function cannot vouch for
a changed row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import asyncpg

from veritas.config import asyncpg_dsn
from veritas.db.unit_of_work import SYSTEM_SERVER_SETTINGS

# The same expression migration 0007 seals with, over the stored chain_seq.
ROW_TEXT = (
    "jsonb_build_array(a.chain_seq, a.id, a.user_id, a.action, a.resource_type, a.resource_id,"
    " a.details, a.ip_address::text, a.user_agent,"
    " to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'))::text"
)
BATCH = 5_000


@dataclass(frozen=True)
class Verdict:
    rows: int  # sealed rows checked
    broken_at: int | None = None  # the chain position of the first broken link
    row_id: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def text(self) -> str:
        if self.ok:
            return f"audit log intact: {self.rows} records, every link verified"
        where = f"record {self.broken_at}" if self.broken_at is not None else "the log"
        row = f" (id {self.row_id})" if self.row_id else ""
        return f"audit log BROKEN at {where}{row}: {self.reason}"


async def verify(url: str) -> Verdict:
    conn = await asyncpg.connect(asyncpg_dsn(url), server_settings=SYSTEM_SERVER_SETTINGS)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await verify_on(conn)
    finally:
        await conn.close()


async def verify_on(conn: asyncpg.Connection) -> Verdict:
    """The verdict on the chain as `conn` sees it, inside a transaction it has begun."""
    unsealed = await conn.fetchrow(
        "SELECT id::text FROM audit_logs WHERE row_hash IS NULL OR chain_seq IS NULL"
        " ORDER BY created_at, id LIMIT 1")
    expected_seq, prev = 1, b""
    checked = 0
    cursor = await conn.cursor(
        f"SELECT a.chain_seq, a.id::text, a.prev_hash, a.row_hash, {ROW_TEXT} AS body"
        " FROM audit_logs a WHERE a.chain_seq IS NOT NULL ORDER BY a.chain_seq")
    while rows := await cursor.fetch(BATCH):
        for seq, row_id, prev_hash, row_hash, body in rows:
            if seq != expected_seq:
                return Verdict(checked, expected_seq, None,
                               f"record {expected_seq} is missing (next present: {seq})")
            if bytes(prev_hash or b"") != prev:
                return Verdict(checked, seq, row_id, "its link to the previous record differs")
            if hashlib.sha256(prev + body.encode()).digest() != bytes(row_hash or b""):
                return Verdict(checked, seq, row_id, "its contents differ from their hash")
            prev, expected_seq = bytes(row_hash), seq + 1
            checked += 1
    head = await conn.fetchrow("SELECT seq, hash FROM audit_chain_head")
    if head is None or head["seq"] != checked or bytes(head["hash"]) != prev:
        return Verdict(checked, checked + 1, None,
                       f"the chain ends at record {checked} but its head says"
                       f" {head['seq'] if head else 'nothing'}: later records were removed")
    if unsealed is not None:
        return Verdict(checked, None, unsealed["id"], "a record was written without its seal")
    return Verdict(checked)
