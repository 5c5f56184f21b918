"""Calls made during one turn of the event loop, sent to the broker as one batch.

Publishing with many events in flight, or a fetched batch's handlers finishing
together, makes many small broker calls at the same moment; sent one by one, each
costs a round trip and a system call. A :class:`Coalescer` gathers the calls submitted
before the event loop next runs its callbacks and hands them to its ``flush`` together
(one pipeline, one command naming every id). A lone call goes out on the next turn of
the loop, so nothing waits for company. Each caller still waits for its own outcome:
``submit`` returns once the broker answered for its item, and raises its item's error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

Flush = Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]]


class Coalescer(Generic[Item, Result]):
    """Sends the items submitted during one turn of the loop through one ``flush`` call.

    ``flush(items)`` returns one outcome per item, in order: a result, or the exception
    that item's caller should see. An exception raised by ``flush`` itself (the
    connection failed) is every caller's. At most ``limit`` items go in one batch.
    """

    def __init__(self, flush: Flush[Item, Result], *, limit: int = 256) -> None:
        self._flush = flush
        self.limit = limit
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._scheduled: asyncio.Handle | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: Item) -> Result:
        """Send ``item`` with the others of this turn; its outcome."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Used from another event loop (a test's, a restarted process's): what the
            # last one left scheduled will never run there.
            self._loop, self._pending, self._scheduled = loop, [], None
            self._running = set()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self.limit:
            self._send()
        elif self._scheduled is None:
            self._scheduled = loop.call_soon(self._send)
        return await future

    def _send(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        batch, self._pending = self._pending, []
        if batch:
            # A task of its own: a caller that gives up does not cancel the others' batch.
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            outcomes = await self._flush([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            outcomes = [exc] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue  # its caller gave up waiting
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def aclose(self) -> None:
        """Send what is pending and wait for every batch in flight."""
        self._send()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
