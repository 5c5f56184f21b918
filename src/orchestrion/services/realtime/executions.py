"""Where ``execution:<id>`` history comes from: the execution's own event log.

The realtime service stores nothing for execution channels. Live events arrive through
``POST /internal/realtime/publish`` with the event's ``seq``; a subscriber resuming with
``after`` is replayed from the log that the workflows service owns, read through
:class:`ExecutionSource`. The HTTP contract the workflows service implements::

    GET /internal/workflows/executions/{id}/events?after=N      (internal token header)
    200 {"tenant_id": "<tenant>", "data": [{"seq", "type", "step_id", "data", "at"}, ...]}
        events with seq > N, in seq order; a page may stop early (``limit``): the next
        page is asked with ``after`` = its last seq, until a page comes back empty
    404 no such execution
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

import httpx

from orchestrion.services.realtime.errors import SourceUnavailable

EVENTS_PATH = "/internal/workflows/executions/{execution_id}/events"
# Asking for events after this seq answers the tenant alone, without the log.
_BEYOND_ANY_SEQ = 2**53 - 1
_MAX_TENANTS_CACHED = 10_000
_PAGE = 1000  # the endpoint may answer fewer; pages continue until an empty one
_MAX_PAGES = 1000


class ExecutionSource(Protocol):
    """The execution event log, as realtime reads it."""

    async def tenant_of(self, execution_id: str) -> str | None:
        """The tenant owning the execution, or None when there is no such execution."""

    async def events_after(self, execution_id: str, after: int) -> list[dict[str, Any]]:
        """Events with seq > ``after`` in order: ``{"seq", "type", "step_id", "data", "at"}``."""


class HttpExecutionSource:
    """:class:`ExecutionSource` over the workflows service's internal endpoint."""

    def __init__(self, client: httpx.AsyncClient | None) -> None:
        self.client = client
        # An execution never changes tenant: the answer can be kept.
        self._tenants: OrderedDict[str, str] = OrderedDict()

    async def _fetch(self, execution_id: str, after: int) -> dict[str, Any] | None:
        if self.client is None:
            raise SourceUnavailable("execution history is not configured (no workflows peer)")
        try:
            response = await self.client.get(
                EVENTS_PATH.format(execution_id=execution_id),
                params={"after": after, "limit": _PAGE},
            )
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"the workflows service did not answer: {exc}") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise SourceUnavailable(f"the workflows service answered {response.status_code}")
        try:
            body = response.json()
            tenant = str(body["tenant_id"])
            events = body.get("data") or []
        except (ValueError, KeyError, TypeError):
            raise SourceUnavailable("the workflows service answered an unreadable log") from None
        self._remember(execution_id, tenant)
        return {"tenant_id": tenant, "data": [e for e in events if isinstance(e, dict)]}

    def _remember(self, execution_id: str, tenant: str) -> None:
        self._tenants[execution_id] = tenant
        self._tenants.move_to_end(execution_id)
        while len(self._tenants) > _MAX_TENANTS_CACHED:
            self._tenants.popitem(last=False)

    async def tenant_of(self, execution_id: str) -> str | None:
        """Cached after the first answer."""
        known = self._tenants.get(execution_id)
        if known is not None:
            return known
        body = await self._fetch(execution_id, _BEYOND_ANY_SEQ)
        return None if body is None else str(body["tenant_id"])

    async def events_after(self, execution_id: str, after: int) -> list[dict[str, Any]]:
        """The log past ``after``, page after page; empty for an unknown execution."""
        collected: list[dict[str, Any]] = []
        cursor = after
        for _ in range(_MAX_PAGES):
            body = await self._fetch(execution_id, cursor)
            if body is None:
                break
            page = sorted(
                (e for e in body["data"] if isinstance(e.get("seq"), int) and e["seq"] > cursor),
                key=lambda e: int(e["seq"]),
            )
            if not page:
                break
            collected.extend(page)
            cursor = int(page[-1]["seq"])
        return collected
