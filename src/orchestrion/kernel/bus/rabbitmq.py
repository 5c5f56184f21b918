"""RabbitMQ (``amqp://``) through aio-pika: a durable topic exchange, a queue per group.

Each group is a durable quorum queue ``<topic>::<group>`` bound to the exchange with
the topic as routing key, so every group gets its own copy and the group's members
compete for its messages. Publishing waits for the publisher confirm; members
acknowledge by hand, and what a member held when its channel closed (it died, or
was stopped) goes back to the queue for another one.

Dead letters wait in a durable classic queue named after the dead-letter topic
(``<topic>.dlq``). Listing takes them with ``basic.get`` and closes the channel
without acknowledging, which puts them back; replay acknowledges the replayed ones.
Classic, because quorum queues count those returns against a delivery limit.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aio_pika.exceptions import AMQPError

from orchestrion.kernel.bus.base import Bus, BusUnavailable
from orchestrion.kernel.bus.consumer import Processor
from orchestrion.kernel.bus.dedup import Deduplicator
from orchestrion.kernel.bus.dlq import DLQ_SUFFIX, DeadLetter, dlq_topic
from orchestrion.kernel.bus.events import CONTENT_TYPE
from orchestrion.kernel.bus.subscription import Subscription


def group_queue(topic: str, group: str) -> str:
    """The queue name of ``group`` on ``topic`` (groups have no dots, topics no colons)."""
    return f"{topic}::{group}"


class RabbitMQBus(Bus):
    """RabbitMQ backend with publisher confirms and manual acknowledgements."""

    scheme = "amqp"

    def __init__(
        self,
        url: str,
        *,
        dedup: Deduplicator | None = None,
        exchange: str = "orchestrion.bus",
        queue_type: str = "quorum",
    ) -> None:
        super().__init__(dedup=dedup)
        self.url = url
        self.exchange_name = exchange
        self.queue_type = queue_type
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._parking: set[str] = set()
        # Groups declared through this bus, so delete() can remove their queues.
        self._groups: dict[str, set[str]] = {}

    async def _start(self) -> None:
        try:
            self._connection = await aio_pika.connect_robust(self.url)
        except (AMQPError, OSError) as exc:
            raise BusUnavailable(f"RabbitMQ is not reachable: {exc}") from exc
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def _close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = self._exchange = None

    @property
    def connection(self) -> AbstractRobustConnection:
        """The live connection."""
        if self._connection is None:
            raise BusUnavailable("the bus is not started")
        return self._connection

    async def _publish(self, topic: str, body: bytes) -> None:
        if self._exchange is None:
            raise BusUnavailable("the bus is not started")
        if topic.endswith(DLQ_SUFFIX):
            await self._declare_parking(topic)
        message = aio_pika.Message(
            body, content_type=CONTENT_TYPE, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        try:
            # With publisher confirms on, this returns once the broker took the message.
            # Not mandatory: a topic without groups drops events, as it does everywhere.
            await self._exchange.publish(message, routing_key=topic, mandatory=False)
        except (AMQPError, OSError) as exc:
            raise BusUnavailable(f"publish to {topic} failed: {exc}") from exc

    async def _declare_parking(self, topic: str) -> None:
        if topic in self._parking or self._channel is None:
            return
        queue = await self._channel.declare_queue(topic, durable=True)
        await queue.bind(self.exchange_name, routing_key=topic)
        self._parking.add(topic)

    async def _subscribe(
        self, processor: Processor, *, concurrency: int, ack_timeout: float
    ) -> Subscription:
        await self._declare_parking(dlq_topic(processor.topic))
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=concurrency)
        queue = await channel.declare_queue(
            group_queue(processor.topic, processor.group),
            durable=True,
            arguments={"x-queue-type": self.queue_type},
        )
        await queue.bind(self.exchange_name, routing_key=processor.topic)
        self._groups.setdefault(processor.topic, set()).add(processor.group)
        subscription = _RabbitSubscription(processor, channel, queue, concurrency=concurrency)
        subscription._launch()
        return subscription

    async def _dead_letters(self, topic: str, *, limit: int) -> list[DeadLetter]:
        items: list[tuple[Any, bytes]] = []
        channel = await self.connection.channel()
        try:
            queue = await channel.declare_queue(topic, durable=True)
            while len(items) < limit:
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                items.append((json.loads(message.body).get("id"), message.body))
        finally:
            # Closing without acknowledging returns every message to the queue.
            await channel.close()
        return self._parse_letters(items)

    async def _drop_dead_letters(self, topic: str, letters: list[DeadLetter]) -> None:
        wanted = {letter.handle for letter in letters}
        channel = await self.connection.channel()
        try:
            queue = await channel.declare_queue(topic, durable=True)
            while wanted:
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                letter_id = json.loads(message.body).get("id")
                if letter_id in wanted:
                    await message.ack()
                    wanted.discard(letter_id)
        finally:
            await channel.close()

    async def _delete(self, topic: str) -> None:
        channel = await self.connection.channel()
        try:
            for name in (topic, dlq_topic(topic)):
                for group in self._groups.pop(name, set()):
                    await channel.queue_delete(group_queue(name, group))
            await channel.queue_delete(dlq_topic(topic))
            self._parking.discard(dlq_topic(topic))
        finally:
            await channel.close()


class _RabbitSubscription(Subscription):
    def __init__(
        self,
        processor: Processor,
        channel: AbstractChannel,
        queue: aio_pika.abc.AbstractQueue,
        *,
        concurrency: int,
    ) -> None:
        super().__init__(topic=processor.topic, group=processor.group, concurrency=concurrency)
        self._processor = processor
        self._channel = channel
        self._queue = queue

    async def _loop(self) -> None:
        async with self._queue.iterator() as messages:
            async for message in messages:
                if self.stopped:
                    # Not acknowledged: the broker requeues it when the channel closes.
                    return
                await self._dispatch(functools.partial(self._handle, message))

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        await self._processor.process(message.body)
        await message.ack()

    async def _close(self) -> None:
        # The broker requeues whatever this channel held un-acknowledged.
        await self._channel.close()
