"""The CSV writer of the exports on its own: cells, quoting, formula guard, page walking."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from veritas.db.base import AlertStatus
from veritas.reports.csv_stream import cell, csv_chunks, rows_of

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("value,expected", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=x", "'\t=x"), ("\r=x", "'\r=x"), ("plain", "plain"), ("a=b", "a=b"), ("", ""),
    (None, ""), (True, "true"), (False, "false"), (-2.5, -2.5), (7, 7),
    (AlertStatus.open, "open"),
    (datetime(2026, 12, 2, 8, 30, tzinfo=UTC), "2026-12-02T08:30:00+00:00"),
    (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
])
def test_cells(value: Any, expected: Any) -> None:
    assert cell(value) == expected


async def test_pages_are_walked_and_written_in_chunks() -> None:
    pages = {None: {"items": [("a,b", 'say "hi"'), ("line\nbreak", None)], "next_cursor": "2"},
             "2": {"items": [("=cmd", 3.5)], "next_cursor": None}}
    asked: list[str | None] = []

    async def fetch(cursor: str | None) -> dict[str, Any]:
        asked.append(cursor)
        return pages[cursor]

    chunks = [c async for c in csv_chunks(("text", "value"), rows_of(fetch), flush_bytes=10)]
    assert asked == [None, "2"] and len(chunks) > 1
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert rows == [["text", "value"], ["a,b", 'say "hi"'], ["line\nbreak", ""],
                    ["'=cmd", "3.5"]]
