"""LLM token chunks on the bus, for steps run in ``orchestrion worker`` processes.

Tokens are ephemeral: they skip the transactional outbox and go straight to the broker
on topic ``workflows.tokens``, batched (one event per flush carries every step's
pending text, merged per step) so a fast model does not mean an event per token. A
broker hiccup loses tokens, never slows or fails the step: chunks wait in a bounded
queue that drops on overflow, and a failed publish is dropped (logged once). The
step's final event always carries the whole text.

Realtime fans the chunks out as ``token`` frames; the workflows service feeds them to
its SSE streams (:class:`TokenFeed`). Every workflows instance must see every batch (a
client streams through any of them), so each joins a group of its own
(:func:`instance_group`) rather than one group shared, whose members would split the
batches; the group is removed from the broker when the instance stops
(:func:`forget_group`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from orchestrion.kernel.bus import Bus, CloudEvent, MemoryDeduplicator, Subscription, open_bus
from orchestrion.kernel.ids import new_id, utcnow

logger = logging.getLogger("orchestrion.workflows.tokens")
CHUNK_TOPIC = "workflows.tokens"
CHUNK_TYPE = "orchestrion.llm.tokens"
#: Redis streams are trimmed to about this many batches (nobody replays tokens).
REDIS_MAXLEN = 10_000
#: Batches older than this when they arrive are dropped (a consumer catching up).
STALE_AFTER = timedelta(seconds=30)
_PUBLISH_TIMEOUT = 2.0

Chunk = dict[str, Any]
_Key = tuple[str, str, str | None, int | None]


def open_token_bus(url: str) -> Bus:
    """A bus connection of its own for token batches (a Redis stream is kept short)."""
    if urlsplit(url).scheme.lower() in ("redis", "rediss"):
        return open_bus(url, maxlen=REDIS_MAXLEN)
    return open_bus(url)


class TokenBatcher:
    """Collects token chunks of this process's steps and publishes them in batches.

    A flush happens ``interval`` seconds after the first pending chunk, as soon as
    ``max_chars`` are pending, or when a step's model call ends (:meth:`flush`).
    """

    def __init__(
        self,
        bus: Bus,
        *,
        interval: float = 0.05,
        max_chars: int = 1024,
        queue_size: int = 10_000,
        owns_bus: bool = False,
    ) -> None:
        self.bus = bus
        self.owns_bus = owns_bus
        self.interval = interval
        self.max_chars = max_chars
        #: Marks this process's batches, so its own service does not feed them twice.
        self.origin = new_id()
        self.queue: asyncio.Queue[tuple[_Key, str]] = asyncio.Queue(queue_size)
        self._pending_chars = 0
        self._ready = asyncio.Event()
        self._now = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._warned = False
        self.published = 0
        self.dropped = 0

    def offer(
        self, tenant_id: str, execution_id: str, step_id: str | None, index: int | None, text: str
    ) -> None:
        """Queue one chunk; never blocks (dropped when the queue is full)."""
        try:
            self.queue.put_nowait(((tenant_id, execution_id, step_id, index), text))
        except asyncio.QueueFull:
            self.dropped += 1
            self._warn("token chunks are falling behind the bus; dropping some")
            return
        self._ready.set()
        self._pending_chars += len(text)
        if self._pending_chars >= self.max_chars:
            self._now.set()

    def flush(self) -> None:
        """Publish what is pending now, without waiting for it."""
        if not self.queue.empty():
            self._now.set()

    def start(self) -> None:
        """Publish in the background until :meth:`stop`."""
        self._task = asyncio.create_task(self._run(), name="token-batcher")

    async def stop(self) -> None:
        """Publish what is pending (briefly), then stop."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._publish(self._drain()), _PUBLISH_TIMEOUT)
        if self.owns_bus:
            await self.bus.close()

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            # Tokens keep arriving for a moment: gather them, unless told to go now.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._now.wait(), self.interval)
            self._now.clear()
            self._ready.clear()
            batch = self._drain()
            try:
                await asyncio.wait_for(self._publish(batch), _PUBLISH_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.dropped += len(batch)
                self._warn(f"token chunks could not be published ({exc!r}); dropping them")

    def _drain(self) -> list[Chunk]:
        merged: dict[_Key, list[str]] = {}
        while not self.queue.empty():
            key, text = self.queue.get_nowait()
            merged.setdefault(key, []).append(text)
        self._pending_chars = 0
        batch: list[Chunk] = []
        for (tenant_id, execution_id, step_id, index), texts in merged.items():
            chunk: Chunk = {
                "tenant_id": tenant_id,
                "execution_id": execution_id,
                "step_id": step_id,
                "text": "".join(texts),
            }
            if index is not None:
                chunk["index"] = index
            batch.append(chunk)
        return batch

    async def _publish(self, batch: list[Chunk]) -> None:
        if not batch:
            return
        event = CloudEvent(
            source="orchestrion/workflows",
            type=CHUNK_TYPE,
            data={"origin": self.origin, "chunks": batch},
        )
        await self.bus.publish(CHUNK_TOPIC, event)
        self.published += 1
        if self._warned:
            self._warned = False
            logger.info("token chunks reach the bus again")

    def _warn(self, message: str) -> None:
        # Once per outage: a broker that is down would otherwise flood the log.
        if not self._warned:
            self._warned = True
            logger.warning(message)


def chunks_of(event: CloudEvent, *, skip_origin: str | None = None) -> list[Chunk]:
    """The chunks of a token batch; none when it is stale, malformed or from ``skip_origin``."""
    data = event.data if isinstance(event.data, dict) else {}
    if skip_origin is not None and data.get("origin") == skip_origin:
        return []
    if utcnow() - event.time > STALE_AFTER:
        return []
    chunks = data.get("chunks")
    if not isinstance(chunks, list):
        return []
    return [
        c
        for c in chunks
        if isinstance(c, dict) and isinstance(c.get("text"), str) and c.get("execution_id")
    ]


class TokenFeed:
    """Subscribes the workflows service to worker processes' tokens, for its SSE streams."""

    def __init__(
        self, publish: Callable[[str, dict[str, Any]], object], origin: str | None
    ) -> None:
        self._publish = publish
        self._origin = origin
        self.received = 0

    async def __call__(self, event: CloudEvent) -> None:
        """Hand each chunk to the local watchers of its execution (never raises)."""
        for chunk in chunks_of(event, skip_origin=self._origin):
            token: dict[str, Any] = {"step_id": chunk.get("step_id"), "text": chunk["text"]}
            if "index" in chunk:
                token["index"] = chunk["index"]
            self._publish(str(chunk["execution_id"]), token)
            self.received += 1


def instance_group(prefix: str, instance: str) -> str:
    """The token group of one workflows instance: ``prefix`` and the instance's id."""
    return f"{prefix}-{instance}"


async def forget_group(bus: Bus, group: str) -> None:
    """Remove ``group``'s place on the token topic from the broker (never raises).

    Redis: the stream's consumer group; RabbitMQ: the group's queue; NATS: its durable
    consumer. Kafka keeps an empty group's offsets until ``offsets.retention.minutes``
    (nothing piles up: the topic is a log, read or not).
    """
    try:
        if bus.scheme == "redis":
            from orchestrion.kernel.bus.redis import RedisBus

            assert isinstance(bus, RedisBus)
            await bus.client.xgroup_destroy(bus.stream(CHUNK_TOPIC), group)
        elif bus.scheme == "amqp":
            from orchestrion.kernel.bus.rabbitmq import RabbitMQBus, group_queue

            assert isinstance(bus, RabbitMQBus)
            channel = await (await bus.live_connection()).channel()
            try:
                await channel.queue_delete(group_queue(CHUNK_TOPIC, group))
            finally:
                await channel.close()
        elif bus.scheme == "nats":
            from orchestrion.kernel.bus.nats import NatsBus

            assert isinstance(bus, NatsBus)
            durable = bus.durable_name(CHUNK_TOPIC, group)
            await bus.js.delete_consumer(bus.stream_name(CHUNK_TOPIC), durable)
    except Exception as exc:
        logger.warning("token group %s could not be removed from the broker: %r", group, exc)


async def subscribe_tokens(
    bus: Bus, group: str, handler: Callable[[CloudEvent], Any]
) -> Subscription:
    """Join ``group`` on the token topic: one batch at a time (in order), no retries.

    Deduplication stays in this process: a repeated batch costs a repeated chunk at
    worst, not a broker round trip per batch.
    """
    return await bus.subscribe(
        CHUNK_TOPIC,
        group,
        handler,
        max_attempts=1,
        concurrency=1,
        dedup=MemoryDeduplicator(max_entries=10_000, ttl=600.0),
    )
