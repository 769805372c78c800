"""Keyset pagination: `limit` and an opaque `cursor`, answered as {"items", "next_cursor"}."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, tuple_

from veritas.errors import Invalid

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class PageParams(BaseModel):
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


def encode_cursor(*values: Any) -> str:
    """An opaque cursor holding the sort key of the last row sent."""
    raw = orjson.dumps([v.isoformat() if isinstance(v, datetime) else str(v) for v in values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *parsers: Callable[[str], Any]) -> tuple[Any, ...]:
    """The sort key back, each part through its parser; anything malformed is a 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = orjson.loads(raw)
        if not isinstance(parts, list) or len(parts) != len(parsers):
            raise ValueError("wrong shape")
        return tuple(parse(part) for parse, part in zip(parsers, parts, strict=True))
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise Invalid("invalid cursor") from None


TIME_AND_ID = (datetime.fromisoformat, uuid.UUID)
_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")


def newest_first(query: _Query, sort_col: Any, id_col: Any, page: PageParams) -> _Query:
    """Order by (sort_col, id) descending, starting after the cursor; fetch one extra row."""
    if page.cursor:
        sort_value, row_id = decode_cursor(page.cursor, *TIME_AND_ID)
        query = query.where(tuple_(sort_col, id_col) < tuple_(sort_value, row_id))
    return query.order_by(sort_col.desc(), id_col.desc()).limit(page.limit + 1)


def oldest_first(query: _Query, sort_col: Any, id_col: Any, page: PageParams) -> _Query:
    """Order by (sort_col, id) ascending, starting after the cursor; fetch one extra row."""
    if page.cursor:
        sort_value, row_id = decode_cursor(page.cursor, *TIME_AND_ID)
        query = query.where(tuple_(sort_col, id_col) > tuple_(sort_value, row_id))
    return query.order_by(sort_col.asc(), id_col.asc()).limit(page.limit + 1)


def page(rows: list[Any], page: PageParams, key: Any) -> dict[str, Any]:
    """Cut the extra row off and turn it into next_cursor; `key(row)` gives (sort, id)."""
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_cursor = encode_cursor(*key(rows[-1])) if has_more and rows else None
    return {"items": rows, "next_cursor": next_cursor}


