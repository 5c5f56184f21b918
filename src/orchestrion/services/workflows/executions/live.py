"""Execution events pushed to the realtime service as they commit.

Events are queued in commit order and sent one after the other by a single task, so a
subscriber of ``execution:<id>`` receives them in ``seq`` order. Delivery is best
effort: the log is the source of truth and realtime replays from it on resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx

from orchestrion.engine import Execution
from orchestrion.kernel.ids import isoformat

logger = logging.getLogger("orchestrion.workflows.live")
PUBLISH = "/internal/realtime/publish"
_QUEUE_LIMIT = 100_000


class LivePublisher:
    """Forwards engine events to realtime's internal publish endpoint."""

    def __init__(self) -> None:
        self.client: httpx.AsyncClient | None = None
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUE_LIMIT)
        self._task: asyncio.Task[None] | None = None

    async def listen(self, execution: Execution, events: list[dict[str, Any]]) -> None:
        """An engine listener: queue the messages for these committed events."""
        if self.client is None:
            return  # no realtime in this process
        for event in events:
            data = {**event, "at": isoformat(event["at"])}
            message = {
                "tenant_id": execution.tenant_id,
                "channel": f"execution:{execution.id}",
                "seq": event["seq"],
                "data": data,
            }
            self.offer(message)
            if str(event["type"]).startswith("execution."):
                self.offer(
                    {
                        "tenant_id": execution.tenant_id,
                        "channel": f"workflow:{execution.workflow_id}",
                        "data": {"execution_id": execution.id, **data},
                    }
                )

    def offer(self, message: dict[str, Any]) -> None:
        """Queue one message for realtime (dropped with a warning when far behind)."""
        if self.client is None:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            logger.warning("live updates are falling behind; dropping one (clients resync)")

    def start(self, client: httpx.AsyncClient) -> None:
        """Start sending to realtime through ``client``."""
        self.client = client
        self._task = asyncio.create_task(self._send_forever())

    async def stop(self) -> None:
        """Send what is queued (briefly), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), 2.0)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self.client = None

    async def _send_forever(self) -> None:
        while True:
            message = await self.queue.get()
            client = self.client
            try:
                if client is None:
                    continue
                response = await client.post(PUBLISH, json=message)
                if response.status_code >= 400:
                    logger.warning(
                        "realtime refused %s: %s", message["channel"], response.text[:200]
                    )
            except httpx.HTTPError as exc:
                logger.warning("realtime unreachable: %s", exc)
            finally:
                self.queue.task_done()
