"""The month partitions of monitoring_events, and COPY into them.

COPY FROM is refused on a table with row-level security for a role without BYPASSRLS, and
monitoring_events (the parent) has it. Its partitions have no policies and grant the runtime
role INSERT only (migration 0007), so bulk writers COPY into the partitions themselves while
every read goes through the parent and its policies.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg


def partition_name(attempt_started_at: datetime) -> str:
    """The partition holding an attempt's events, as veritas_ensure_event_partition names it."""
    return f"monitoring_events_{attempt_started_at.astimezone(UTC):%Y_%m}"


async def copy_events(conn: asyncpg.Connection, records: Sequence[tuple[Any, ...]],
                      columns: Sequence[str], timeout: float | None = None) -> None:
    """COPY rows (their second column is attempt_started_at) into their month partitions."""
    # Keyed by the start time itself: a flush's rows share a few, and naming a partition per
    # row would cost the hot path a microsecond an event.
    by_start: dict[datetime, list[tuple[Any, ...]]] = {}
    for record in records:
        rows = by_start.get(record[1])
        if rows is None:
            rows = by_start[record[1]] = []
        rows.append(record)
    by_partition: dict[str, list[tuple[Any, ...]]] = {}
    for started, rows in by_start.items():
        by_partition.setdefault(partition_name(started), []).extend(rows)
    for table, rows in by_partition.items():
        await conn.copy_records_to_table(table, records=rows, columns=list(columns),
                                         timeout=timeout)
