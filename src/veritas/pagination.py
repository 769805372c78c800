"""Keyset pagination: `limit` and an opaque `cursor`, answered as {"items", "next_cursor"}.

Plain SQLAlchemy and pydantic, so the query modules page their own lists; the `limit` and
`cursor` query parameters are read by deps.PageDep."""

from __future__ import annotations

import base64
import enum
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel
from sqlalchemy import Select, tuple_

from veritas.errors import Invalid

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_LENGTH = 200

T = TypeVar("T")


class PageParams(BaseModel):
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


class Page(BaseModel, Generic[T]):
    """One page of a list; `next_cursor` fetches the next, and is null on the last."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(*values: Any) -> str:
    """An opaque cursor holding the sort key of the last row sent."""
    raw = orjson.dumps([v.isoformat() if isinstance(v, datetime) else
                        v.value if isinstance(v, enum.Enum) else str(v) for v in values])
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


def keyset(query: _Query, page: PageParams, keys: Sequence[tuple[Any, Callable[[str], Any]]],
           *, descending: bool) -> _Query:
    """Order by the key columns (the last one unique), start after the cursor, and fetch one
    extra row; `keys` pairs each column with the parser of its cursor part."""
    columns = [column for column, _ in keys]
    if page.cursor:
        after = tuple_(*decode_cursor(page.cursor, *(parse for _, parse in keys)))
        query = query.where(tuple_(*columns) < after if descending else tuple_(*columns) > after)
    order = [column.desc() if descending else column.asc() for column in columns]
    return query.order_by(*order).limit(page.limit + 1)


def newest_first(query: _Query, sort_col: Any, id_col: Any, page: PageParams) -> _Query:
    """Order by (sort_col, id) descending, starting after the cursor; fetch one extra row."""
    return keyset(query, page, [(sort_col, TIME_AND_ID[0]), (id_col, TIME_AND_ID[1])],
                  descending=True)


def oldest_first(query: _Query, sort_col: Any, id_col: Any, page: PageParams) -> _Query:
    """Order by (sort_col, id) ascending, starting after the cursor; fetch one extra row."""
    return keyset(query, page, [(sort_col, TIME_AND_ID[0]), (id_col, TIME_AND_ID[1])],
                  descending=False)


def page(rows: Sequence[Any], page: PageParams, key: Callable[[Any], tuple[Any, ...]]
         ) -> dict[str, Any]:
    """Cut the extra row off and turn it into next_cursor; `key(row)` gives the sort key."""
    has_more = len(rows) > page.limit
    items = list(rows[: page.limit])
    next_cursor = encode_cursor(*key(items[-1])) if has_more and items else None
    return {"items": items, "next_cursor": next_cursor}
