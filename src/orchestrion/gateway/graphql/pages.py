"""Relay connections over the REST list conventions' keyset cursors.

A REST page gives one cursor, after its last item; a connection gives one per edge. An
edge's cursor is the REST cursor its page started from plus how many of that page came
before it (the last edge of a page takes the REST ``next_cursor`` itself), so resuming
after any edge costs one REST call, never a walk from the start.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from orchestrion.gateway.graphql.calls import Calls, Problem
from orchestrion.gateway.graphql.types import (
    Connection,
    Edge,
    PageInfo,
    PaginationInput,
    SortInput,
    decode_cursor,
    encode_cursor,
)

T = TypeVar("T")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def sort_param(sort: list[SortInput] | None) -> str | None:
    """``sort=created_at:desc,name:asc`` from the inputs (camelCase fields accepted)."""
    if not sort:
        return None
    parts = []
    for key in sort:
        name = _CAMEL.sub("_", key.field.strip()).lower()
        direction = key.direction.value if key.direction is not None else "asc"
        parts.append(f"{name}:{direction}")
    return ",".join(parts)


def page_limit(pagination: PaginationInput | None) -> int:
    """The page size asked for; out of range is a 400 rather than a silent clamp."""
    limit = pagination.limit if pagination and pagination.limit is not None else DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise Problem(400, f"pagination.limit must be between 1 and {MAX_LIMIT}")
    return limit


async def fetch_connection(
    calls: Calls,
    path: str,
    build: Callable[[dict[str, Any]], T],
    *,
    filters: Mapping[str, Any] | None = None,
    pagination: PaginationInput | None = None,
    sort: list[SortInput] | None = None,
    seen: Callable[[list[dict[str, Any]]], None] | None = None,
) -> Connection[T]:
    """One page of the REST list at ``path`` as a connection of ``build(item)``.

    ``seen`` gets the raw items (to prime the loaders with them)."""
    limit = page_limit(pagination)
    start, skip = ("", 0)
    if pagination is not None and pagination.after:
        start, skip = decode_cursor(pagination.after)
    params: dict[str, Any] = {
        **{k: v for k, v in (filters or {}).items() if v is not None},
        "limit": min(MAX_LIMIT, skip + limit),
        "cursor": start,
        "sort": sort_param(sort),
    }
    body = await calls.get(path, params)
    data: list[dict[str, Any]] = body["data"]
    rest_next: str | None = body["meta"].get("next_cursor")
    items = data[skip : skip + limit]
    if seen is not None:
        seen(items)
    edges = []
    for offset, item in enumerate(items, start=skip + 1):
        at_end = offset == len(data) and rest_next is not None
        cursor = (
            encode_cursor(rest_next, 0) if at_end and rest_next else encode_cursor(start, offset)
        )
        edges.append(Edge(cursor=cursor, node=build(item)))
    has_next = len(data) > skip + len(items) or rest_next is not None
    end = edges[-1].cursor if edges else (pagination.after if pagination else None)
    return Connection(
        edges=edges,
        page_info=PageInfo(has_next_page=has_next, end_cursor=end),
        total_count=int(body["meta"].get("total", len(data))),
    )
