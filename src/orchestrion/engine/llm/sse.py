"""Reading a ``text/event-stream`` body and turning HTTP failures into ProviderError."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from orchestrion.engine.llm.types import ProviderError


@dataclass(frozen=True)
class ServerSentEvent:
    """One event: its ``event`` name (``message`` when absent) and ``data``."""

    event: str
    data: str


async def events(response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
    """The events of a streamed response, as the SSE specification frames them."""
    name, data = "", list[str]()
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield ServerSentEvent(name or "message", "\n".join(data))
            name, data = "", list[str]()
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if data:
        yield ServerSentEvent(name or "message", "\n".join(data))


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (a number or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def raise_for_status(response: httpx.Response, provider: str) -> None:
    """A ProviderError for a status >= 400: 408, 409, 429 and 5xx may be retried."""
    if response.status_code < 400:
        return
    body = (await response.aread()).decode(errors="replace")[:500]
    status = response.status_code
    raise ProviderError(
        f"{provider} answered {status}: {body}",
        status=status,
        retry_after=retry_after(response.headers.get("retry-after")),
        retryable=status in (408, 409, 429) or status >= 500,
    )
