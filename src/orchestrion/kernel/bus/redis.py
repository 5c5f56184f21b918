"""Redis Streams (``redis://``): one stream per topic, one consumer group per group.

Members read with ``XREADGROUP`` and acknowledge with ``XACK``; what a dead member
read but never acknowledged stays in the group's pending list, and live members take
it over with ``XAUTOCLAIM`` once it has been idle for ``ack_timeout``. A live member
renews its hold on slow events (``XCLAIM ... JUSTID`` resets the idle time), so
only the dead lose theirs. Streams keep every event (trim them with ``maxlen``);
dead letters are the entries of ``<topic>.dlq``, deleted with ``XDEL`` once replayed.

Round trips are shared: the ``XADD`` of publishes made at the same moment go out in
one pipeline, and a member acknowledges the events its handlers finished together with
one ``XACK`` (see :mod:`~orchestrion.kernel.bus.batching`); each publish still returns
only once Redis answered for its own entry, and each event is acknowledged only after
its handler returned.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError, ResponseError

from orchestrion.kernel.bus.base import Bus, BusUnavailable
from orchestrion.kernel.bus.batching import Coalescer
from orchestrion.kernel.bus.consumer import Processor
from orchestrion.kernel.bus.dedup import Deduplicator, RedisDeduplicator
from orchestrion.kernel.bus.dlq import DeadLetter, dlq_topic
from orchestrion.kernel.bus.subscription import Subscription

FIELD = "e"


class RedisBus(Bus):
    """Redis Streams backend; deduplicates in Redis too unless told otherwise."""

    scheme = "redis"

    def __init__(
        self,
        url: str,
        *,
        dedup: Deduplicator | None = None,
        prefix: str = "orchestrion:bus:",
        maxlen: int | None = None,
        block: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        # A blocking pool makes bursts wait for a connection instead of failing with
        # "Too many connections" (redis-py's default pool has a hard cap). Each member's
        # blocking XREADGROUP holds one connection, so keep this above the member count.
        # Nothing connects until first use.
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections)
        self.client: Redis = Redis.from_pool(pool)
        super().__init__(
            dedup=dedup
            if dedup is not None
            else RedisDeduplicator(self.client, prefix=prefix + "dedup:")
        )
        self.prefix = prefix
        self.maxlen = maxlen
        self.block = block
        self._adds: Coalescer[tuple[str, bytes], Any] = Coalescer(self._add_many)

    def stream(self, topic: str) -> str:
        """The stream key of ``topic``."""
        return self.prefix + topic

    async def _start(self) -> None:
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"Redis is not reachable: {exc}") from exc

    async def _close(self) -> None:
        await self._adds.aclose()
        await self.client.aclose()

    async def _publish(self, topic: str, body: bytes) -> None:
        try:
            await self._adds.submit((self.stream(topic), body))
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"publish to {topic} failed: {exc}") from exc

    async def _add_many(self, entries: list[tuple[str, bytes]]) -> list[Any]:
        """``XADD`` each (stream, body) in one pipeline; each entry's id or error."""
        pipe = self.client.pipeline(transaction=False)
        for key, body in entries:
            if self.maxlen is None:
                pipe.xadd(key, {FIELD: body})
            else:
                pipe.xadd(key, {FIELD: body}, maxlen=self.maxlen, approximate=True)
        outcomes: list[Any] = await pipe.execute(raise_on_error=False)
        return outcomes

    async def _subscribe(
        self, processor: Processor, *, concurrency: int, ack_timeout: float
    ) -> Subscription:
        key = self.stream(processor.topic)
        try:
            # "$": a new group starts with the events published after it exists.
            await self.client.xgroup_create(key, processor.group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        subscription = _RedisSubscription(
            self, processor, key, concurrency=concurrency, ack_timeout=ack_timeout
        )
        subscription._launch()
        return subscription

    async def _dead_letters(self, topic: str, *, limit: int) -> list[DeadLetter]:
        entries: Any = await self.client.xrange(self.stream(topic), count=limit)
        return self._parse_letters(
            [(entry_id, fields.get(FIELD.encode(), b"")) for entry_id, fields in entries]
        )

    async def _drop_dead_letters(self, topic: str, letters: list[DeadLetter]) -> None:
        await self.client.xdel(self.stream(topic), *[letter.handle for letter in letters])

    async def _delete(self, topic: str) -> None:
        await self.client.delete(self.stream(topic), self.stream(dlq_topic(topic)))


class _RedisSubscription(Subscription):
    def __init__(
        self,
        bus: RedisBus,
        processor: Processor,
        key: str,
        *,
        concurrency: int,
        ack_timeout: float,
    ) -> None:
        super().__init__(topic=processor.topic, group=processor.group, concurrency=concurrency)
        self._client = bus.client
        self._processor = processor
        self._key = key
        self._consumer = f"{processor.group}-{processor.owner}"
        self._idle_ms = max(1, int(ack_timeout * 1000))
        # Short enough blocks that stuck events are looked for about twice per timeout.
        self._block_ms = max(1, int(min(bus.block, ack_timeout / 2) * 1000))
        self._acks: Coalescer[bytes, None] = Coalescer(self._ack_many)

    async def _loop(self) -> None:
        next_reclaim = 0.0
        while not self.stopped:
            if time.monotonic() >= next_reclaim:
                await self._reclaim()
                next_reclaim = time.monotonic() + self._idle_ms / 2000
            response: Any = await self._client.xreadgroup(
                self.group,
                self._consumer,
                {self._key: ">"},
                count=await self._free_slots(),
                block=self._block_ms,
            )
            for _stream, entries in response or []:
                for entry_id, fields in entries:
                    await self._dispatch(functools.partial(self._handle, entry_id, fields))

    async def _reclaim(self) -> None:
        """Take over events that members which died read but never acknowledged."""
        start: Any = "0-0"
        while True:
            result: Any = await self._client.xautoclaim(
                self._key,
                self.group,
                self._consumer,
                min_idle_time=self._idle_ms,
                start_id=start,
                count=await self._free_slots(),
            )
            start, claimed = result[0], result[1]
            # Entries trimmed from the stream while pending can never be handled.
            gone = list(result[2]) if len(result) > 2 else []
            gone += [entry_id for entry_id, fields in claimed if fields is None]
            if gone:
                await self._client.xack(self._key, self.group, *gone)
            for entry_id, fields in claimed:
                if fields is not None:
                    delivered = await self._deliveries(entry_id)
                    await self._dispatch(
                        functools.partial(self._handle, entry_id, fields, delivered)
                    )
            if start in (b"0-0", "0-0"):
                return

    async def _deliveries(self, entry_id: bytes) -> int:
        """How many times the group handed the entry out (XAUTOCLAIM counts as one)."""
        pending: Any = await self._client.xpending_range(
            self._key, self.group, min=entry_id, max=entry_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 1

    async def _handle(
        self, entry_id: bytes, fields: dict[bytes, bytes], delivered: int = 1
    ) -> None:
        await self._processor.process(
            fields.get(FIELD.encode(), b""),
            keepalive=functools.partial(self._touch, entry_id),
            delivered=delivered,
        )
        await self._acks.submit(entry_id)

    async def _ack_many(self, entry_ids: list[bytes]) -> list[None]:
        """One ``XACK`` for the entries whose handlers finished together."""
        await self._client.xack(self._key, self.group, *entry_ids)
        return [None] * len(entry_ids)

    async def _touch(self, entry_id: bytes) -> None:
        # Resets the entry's idle time so XAUTOCLAIM of other members leaves it alone.
        await self._client.xclaim(
            self._key,
            self.group,
            self._consumer,
            min_idle_time=0,
            message_ids=[entry_id],
            justid=True,
        )

    async def _close(self) -> None:
        await self._acks.aclose()
        # Forget this member unless it still holds events: deleting a consumer drops
        # its pending entries, which another member must still take over.
        try:
            pending = await self._client.xpending_range(
                self._key, self.group, min="-", max="+", count=1, consumername=self._consumer
            )
            if not pending:
                await self._client.xgroup_delconsumer(self._key, self.group, self._consumer)
        except (RedisError, OSError):
            pass
