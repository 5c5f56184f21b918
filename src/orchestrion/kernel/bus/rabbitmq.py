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

Reconnection is this module's own, not aio-pika's "robust" objects (whose channel
restore can fail half-way after a broker restart and leave a channel closed for
good): the bus reopens its connection and publishing channel on the first use after
they closed, and each consumer opens a fresh channel every time its fetch loop
(re)starts, so a broker crash costs a loop restart and nothing stays wedged.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
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
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._reconnecting = asyncio.Lock()
        self._parking: set[str] = set()
        # Groups declared through this bus, so delete() can remove their queues.
        self._groups: dict[str, set[str]] = {}

    async def _start(self) -> None:
        await self._live_exchange()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None and not connection.is_closed:
            await connection.close()

    async def live_connection(self) -> AbstractConnection:
        """The connection, opened again if the broker closed it."""
        async with self._reconnecting:
            return await self._connect()

    async def _connect(self) -> AbstractConnection:
        if self._connection is None or _lost(self._connection):
            if self._connection is not None:
                await self._connection.close()
            try:
                self._connection = await aio_pika.connect(self.url)
            except (AMQPError, OSError) as exc:
                raise BusUnavailable(f"RabbitMQ is not reachable: {exc}") from exc
            # Queues declared on the old connection's broker may be gone.
            self._parking.clear()
        return self._connection

    async def _live_exchange(self) -> AbstractExchange:
        """The publishing channel's exchange, reopened after the broker closed it."""
        exchange, channel = self._exchange, self._channel
        if exchange is not None and channel is not None and not channel.is_closed:
            # Every publish comes here: no lock while the channel is fine.
            return exchange
        async with self._reconnecting:
            if self._exchange is None or self._channel is None or self._channel.is_closed:
                connection = await self._connect()
                try:
                    self._channel = await connection.channel(publisher_confirms=True)
                    self._exchange = await self._channel.declare_exchange(
                        self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                    )
                except (AMQPError, OSError) as exc:
                    raise BusUnavailable(f"RabbitMQ refused a channel: {exc}") from exc
            return self._exchange

    async def _publish(self, topic: str, body: bytes) -> None:
        exchange = await self._live_exchange()
        if topic.endswith(DLQ_SUFFIX):
            await self._declare_parking(topic)
        message = aio_pika.Message(
            body, content_type=CONTENT_TYPE, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        try:
            # With publisher confirms on, this returns once the broker took the message.
            # Not mandatory: a topic without groups drops events, as it does everywhere.
            await exchange.publish(message, routing_key=topic, mandatory=False)
        except (AMQPError, OSError) as exc:
            self._exchange = None  # the next publish opens a channel again
            raise BusUnavailable(f"publish to {topic} failed: {exc}") from exc

    async def _declare_parking(self, topic: str) -> None:
        if topic in self._parking or self._channel is None or self._channel.is_closed:
            return
        queue = await self._channel.declare_queue(topic, durable=True)
        await queue.bind(self.exchange_name, routing_key=topic)
        self._parking.add(topic)

    async def _subscribe(
        self, processor: Processor, *, concurrency: int, ack_timeout: float
    ) -> Subscription:
        await self._declare_parking(dlq_topic(processor.topic))
        self._groups.setdefault(processor.topic, set()).add(processor.group)
        subscription = _RabbitSubscription(self, processor, concurrency=concurrency)
        # Declared before returning: the group receives what is published from now on.
        await subscription.open_channel()
        subscription._launch()
        return subscription

    async def declare_group(self, channel: AbstractChannel, processor: Processor) -> Any:
        """The group's queue on ``channel``, declared and bound to the exchange."""
        queue = await channel.declare_queue(
            group_queue(processor.topic, processor.group),
            durable=True,
            arguments={"x-queue-type": self.queue_type},
        )
        await queue.bind(self.exchange_name, routing_key=processor.topic)
        return queue

    async def _dead_letters(self, topic: str, *, limit: int) -> list[DeadLetter]:
        items: list[tuple[Any, bytes]] = []
        channel = await (await self.live_connection()).channel()
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
        channel = await (await self.live_connection()).channel()
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
        channel = await (await self.live_connection()).channel()
        try:
            for name in (topic, dlq_topic(topic)):
                for group in self._groups.pop(name, set()):
                    await channel.queue_delete(group_queue(name, group))
            await channel.queue_delete(dlq_topic(topic))
            self._parking.discard(dlq_topic(topic))
        finally:
            await channel.close()


class _RabbitSubscription(Subscription):
    def __init__(self, bus: RabbitMQBus, processor: Processor, *, concurrency: int) -> None:
        super().__init__(topic=processor.topic, group=processor.group, concurrency=concurrency)
        self._bus = bus
        self._processor = processor
        self._channel: AbstractChannel | None = None
        self._queue: Any = None

    async def open_channel(self) -> None:
        """A fresh channel and the group's queue on it (after a broker restart too)."""
        try:
            channel = await (await self._bus.live_connection()).channel()
            await channel.set_qos(prefetch_count=self.concurrency)
            self._queue = await self._bus.declare_group(channel, self._processor)
        except (AMQPError, OSError) as exc:
            raise BusUnavailable(f"RabbitMQ refused a consumer channel: {exc}") from exc
        self._channel = channel

    async def _loop(self) -> None:
        if self._channel is None or self._channel.is_closed:
            await self.open_channel()
        async with self._queue.iterator() as messages:
            async for message in messages:
                if self.stopped:
                    # Not acknowledged: the broker requeues it when the channel closes.
                    return
                await self._dispatch(functools.partial(self._handle, message))
        if not self.stopped:
            # The iterator ends when its channel closed: restart on a new one.
            raise BusUnavailable(f"the consumer channel of {self.topic}/{self.group} closed")

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        await self._processor.process(message.body, delivered=_delivered(message))
        await message.ack()

    async def _close(self) -> None:
        # The broker requeues whatever this channel held un-acknowledged.
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()


def _lost(connection: AbstractConnection) -> bool:
    """Whether ``connection`` closed, by us or by the broker (a plain connection's
    ``is_closed`` only says the former)."""
    return connection.is_closed or not connection.connected.is_set()


def _delivered(message: AbstractIncomingMessage) -> int:
    """Deliveries so far: quorum queues count the earlier ones in ``x-delivery-count``."""
    count = (message.headers or {}).get("x-delivery-count")
    return count + 1 if isinstance(count, int) and count >= 0 else 1
