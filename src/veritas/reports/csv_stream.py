"""CSV exports written as they are read: a header row, then the rows of each page of a keyset
walk, encoded in UTF-8 a few dozen kilobytes at a time, so an export of any length holds one
page of rows in memory (the csv module does the quoting).

Text a person typed (names, notes, descriptions, user agents) is opened by spreadsheets, which
run a cell starting with `=`, `+`, `-` or `@` (or a tab or carriage return before one) as a
formula: such a cell gets a leading `'`, which spreadsheets show as text (OWASP's advice
against CSV injection).
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FLUSH_BYTES = 64 * 1024

# fetch(cursor) -> one page, {"items": [row, ...], "next_cursor": ...}
PageFetch = Callable[[str | None], Awaitable[dict[str, Any]]]


def cell(value: Any) -> str | int | float:
    """A value as its CSV cell: text guarded against formulas, times in ISO-8601 with their
    offset, booleans as true/false, nothing as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        value = value.value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


async def rows_of(fetch: PageFetch) -> AsyncIterator[Sequence[Any]]:
    """Every row of a keyset walk, page by page; only the current page is held."""
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for row in page["items"]:
            yield row
        cursor = page["next_cursor"]
        if cursor is None:
            return


async def csv_chunks(header: Sequence[str], rows: AsyncIterator[Sequence[Any]],
                     flush_bytes: int = FLUSH_BYTES) -> AsyncIterator[bytes]:
    """The header and the rows as CSV (RFC 4180 quoting, CRLF line ends), in UTF-8 chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    async for row in rows:
        writer.writerow([cell(v) for v in row])
        if buffer.tell() >= flush_bytes:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
