"""The in-process bus (``memory://``): the embedded shape's default.

One asyncio queue per group stands in for a broker queue, so groups, competing
members, retries, dead letters and redelivery behave as on the real brokers. Events
live only as long as the process: what was not handled when it exits is gone, which
is the embedded shape's contract (the durable record is the database, not the bus).
"""

from __future__ import annotations

import asyncio
import functools
import json

from orchestrion.kernel.bus.base import Bus
from orchestrion.kernel.bus.consumer import Processor
from orchestrion.kernel.bus.dedup import Deduplicator
from orchestrion.kernel.bus.dlq import DLQ_SUFFIX, DeadLetter, dlq_topic
from orchestrion.kernel.bus.subscription import Subscription


class MemoryBus(Bus):
    """A broker inside this process; each instance is a separate broker."""

    scheme = "memory"

    def __init__(self, *, dedup: Deduplicator | None = None) -> None:
        super().__init__(dedup=dedup)
        self._queues: dict[str, dict[str, asyncio.Queue[bytes]]] = {}
        # Dead-letter topics keep what was published to them, by dead letter id, so
        # they can be listed without a subscriber, as a broker's parking queue would.
        self._dead: dict[str, dict[str, bytes]] = {}

    async def _start(self) -> None:
        pass

    async def _close(self) -> None:
        pass

    async def _publish(self, topic: str, body: bytes) -> None:
        if topic.endswith(DLQ_SUFFIX):
            self._dead.setdefault(topic, {})[json.loads(body)["id"]] = body
        for queue in self._queues.get(topic, {}).values():
            queue.put_nowait(body)

    async def _subscribe(
        self, processor: Processor, *, concurrency: int, ack_timeout: float
    ) -> Subscription:
        queue = self._queues.setdefault(processor.topic, {}).setdefault(
            processor.group, asyncio.Queue()
        )
        subscription = _MemorySubscription(processor, queue, concurrency=concurrency)
        subscription._launch()
        return subscription

    async def _dead_letters(self, topic: str, *, limit: int) -> list[DeadLetter]:
        items = list(self._dead.get(topic, {}).items())[:limit]
        return self._parse_letters(items)

    async def _drop_dead_letters(self, topic: str, letters: list[DeadLetter]) -> None:
        stored = self._dead.get(topic, {})
        for letter in letters:
            stored.pop(letter.handle, None)

    async def _delete(self, topic: str) -> None:
        for name in (topic, dlq_topic(topic)):
            self._queues.pop(name, None)
            self._dead.pop(name, None)


class _MemorySubscription(Subscription):
    def __init__(
        self, processor: Processor, queue: asyncio.Queue[bytes], *, concurrency: int
    ) -> None:
        super().__init__(topic=processor.topic, group=processor.group, concurrency=concurrency)
        self._processor = processor
        self._queue = queue

    async def _loop(self) -> None:
        while not self.stopped:
            body = await self._queue.get()
            try:
                await self._dispatch(functools.partial(self._handle, body))
            except BaseException:
                self._queue.put_nowait(body)
                raise

    async def _handle(self, body: bytes) -> None:
        try:
            await self._processor.process(body)
        except BaseException:
            # Not acknowledged: back to the group for another member, like a broker would.
            self._queue.put_nowait(body)
            raise
