"""NATS JetStream (``nats://``): a stream per topic prefix, a durable pull consumer per group.

Topic ``orders.created`` is subject ``orchestrion.orders.created`` in stream
``ORCHESTRION_orders``, which holds every topic that starts with ``orders`` (and
their dead letters). A group is a durable pull consumer filtered on its topic;
members fetch from it and so share its events. Publishing waits for JetStream's ack.
An event a member does not acknowledge within ``ack_timeout`` (it died) is handed
out again; a live member renews its hold with ``+WPI`` (``in_progress``) while a
handler runs. Dead letters are the stream's messages on ``<topic>.dlq``, deleted by
sequence once replayed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from orchestrion.kernel.bus.base import Bus, BusUnavailable
from orchestrion.kernel.bus.consumer import Processor
from orchestrion.kernel.bus.dedup import Deduplicator
from orchestrion.kernel.bus.dlq import DeadLetter, dlq_topic
from orchestrion.kernel.bus.subscription import Subscription

logger = logging.getLogger("orchestrion.bus")


class NatsBus(Bus):
    """NATS JetStream backend with durable pull consumers."""

    scheme = "nats"

    def __init__(
        self,
        url: str,
        *,
        dedup: Deduplicator | None = None,
        prefix: str = "orchestrion",
        stream_prefix: str = "ORCHESTRION_",
        max_age: float = 7 * 24 * 3600.0,
        block: float = 1.0,
    ) -> None:
        super().__init__(dedup=dedup)
        self.url = url
        self.prefix = prefix
        self.stream_prefix = stream_prefix
        self.max_age = max_age
        self.block = block
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._streams: set[str] = set()
        # Durable consumers created through this bus, per topic, for delete().
        self._durables: dict[str, set[str]] = {}

    def subject(self, topic: str) -> str:
        """The NATS subject of ``topic``."""
        return f"{self.prefix}.{topic}"

    def stream_name(self, topic: str) -> str:
        """The stream holding ``topic``: one per first topic segment."""
        return self.stream_prefix + topic.split(".", 1)[0]

    @staticmethod
    def durable_name(topic: str, group: str) -> str:
        """The durable consumer of ``group`` on ``topic`` (names may not contain dots)."""
        return f"{group}-{hashlib.sha256(topic.encode()).hexdigest()[:16]}"

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context of the live connection."""
        if self._js is None:
            raise BusUnavailable("the bus is not started")
        return self._js

    async def _start(self) -> None:
        try:
            self._nc = await nats.connect(self.url, allow_reconnect=True, connect_timeout=5)
        except (NatsError, OSError) as exc:
            raise BusUnavailable(f"NATS is not reachable: {exc}") from exc
        self._js = self._nc.jetstream()

    async def _close(self) -> None:
        if self._nc is not None:
            # Every publish was already acknowledged and members have unsubscribed, so
            # there is nothing left to drain.
            await self._nc.close()
        self._nc = self._js = None

    async def _ensure_stream(self, topic: str) -> str:
        name = self.stream_name(topic)
        if name in self._streams:
            return name
        try:
            await self.js.stream_info(name)
        except NotFoundError:
            head = f"{self.prefix}.{topic.split('.', 1)[0]}"
            # Creating a stream with the same config again is a no-op, so racing
            # processes agree.
            await self.js.add_stream(
                StreamConfig(
                    name=name,
                    subjects=[head, head + ".>"],
                    storage=StorageType.FILE,
                    max_age=self.max_age,
                )
            )
        self._streams.add(name)
        return name

    async def _publish(self, topic: str, body: bytes) -> None:
        try:
            await self._ensure_stream(topic)
            await self.js.publish(self.subject(topic), body)
        except (NatsError, OSError) as exc:
            raise BusUnavailable(f"publish to {topic} failed: {exc}") from exc

    async def _subscribe(
        self, processor: Processor, *, concurrency: int, ack_timeout: float
    ) -> Subscription:
        stream = await self._ensure_stream(processor.topic)
        durable = self.durable_name(processor.topic, processor.group)
        try:
            await self.js.consumer_info(stream, durable)
        except NotFoundError:
            await self.js.add_consumer(
                stream,
                ConsumerConfig(
                    durable_name=durable,
                    filter_subject=self.subject(processor.topic),
                    ack_policy=AckPolicy.EXPLICIT,
                    # A new group starts with the events published after it exists.
                    deliver_policy=DeliverPolicy.NEW,
                    ack_wait=ack_timeout,
                    # Retries and dead letters are ours; the broker never gives up.
                    max_deliver=-1,
                ),
            )
        self._durables.setdefault(processor.topic, set()).add(durable)
        pull = await self.js.pull_subscribe_bind(durable=durable, stream=stream)
        subscription = _NatsSubscription(
            processor, pull, concurrency=concurrency, block=min(self.block, ack_timeout / 2)
        )
        subscription._launch()
        return subscription

    async def _dead_letters(self, topic: str, *, limit: int) -> list[DeadLetter]:
        stream = await self._ensure_stream(topic)
        subject = self.subject(topic)
        info = await self.js.stream_info(stream, subjects_filter=subject)
        count = min(limit, (info.state.subjects or {}).get(subject, 0))
        if not count:
            return []
        reader = await self.js.pull_subscribe(
            subject,
            stream=stream,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=60.0,
            ),
        )
        items: list[tuple[Any, bytes]] = []
        try:
            while len(items) < count:
                for msg in await reader.fetch(batch=count - len(items), timeout=5):
                    items.append((msg.metadata.sequence.stream, msg.data))
                    if msg.metadata.num_pending == 0:
                        count = len(items)
        finally:
            # Deleted now rather than left to expire, so delete() finds no consumer.
            reader_name = (await reader.consumer_info()).name
            await reader.unsubscribe()
            with contextlib.suppress(NotFoundError):
                await self.js.delete_consumer(stream, reader_name)
        return self._parse_letters(items)

    async def _drop_dead_letters(self, topic: str, letters: list[DeadLetter]) -> None:
        stream = self.stream_name(topic)
        for letter in letters:
            await self.js.delete_msg(stream, letter.handle)

    async def _delete(self, topic: str) -> None:
        stream = self.stream_name(topic)
        try:
            for name in (topic, dlq_topic(topic)):
                for durable in self._durables.pop(name, set()):
                    with contextlib.suppress(NotFoundError):
                        await self.js.delete_consumer(stream, durable)
                await self.js.purge_stream(stream, subject=self.subject(name))
            info = await self.js.stream_info(stream)
            if info.state.messages == 0 and info.state.consumer_count == 0:
                await self.js.delete_stream(stream)
                self._streams.discard(stream)
        except NotFoundError:
            self._streams.discard(stream)


class _NatsSubscription(Subscription):
    def __init__(
        self,
        processor: Processor,
        pull: JetStreamContext.PullSubscription,
        *,
        concurrency: int,
        block: float,
    ) -> None:
        super().__init__(topic=processor.topic, group=processor.group, concurrency=concurrency)
        self._processor = processor
        self._pull = pull
        self._block = block

    async def _loop(self) -> None:
        while not self.stopped:
            try:
                messages = await self._pull.fetch(
                    batch=await self._free_slots(), timeout=self._block
                )
            except TimeoutError:
                # Nothing came: nats' own TimeoutError, or the plain one its fetch raises
                # on some paths (a batch's wait for the next message).
                continue
            for msg in messages:
                await self._dispatch(functools.partial(self._handle, msg))

    async def _handle(self, msg: Msg) -> None:
        await self._processor.process(
            msg.data, keepalive=msg.in_progress, delivered=_delivered(msg)
        )
        await msg.ack()

    async def _close(self) -> None:
        # Leaves the durable consumer in place: the group outlives its members.
        try:
            await self._pull.unsubscribe()
        except NatsError:
            logger.debug("pull subscription already gone", exc_info=True)


# V1 ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>``
# has 9 tokens; V2 adds the domain and the account hash after ``$JS.ACK``.
_V1_TOKENS = 9


def _delivered(msg: Msg) -> int:
    """How many times JetStream handed ``msg`` out, read from its reply subject alone
    (``msg.metadata`` builds every field, a timestamp included, for this one number)."""
    tokens = (msg.reply or "").split(".")
    position = 4 if len(tokens) == _V1_TOKENS else 6
    if len(tokens) > position and tokens[position].isdigit():
        return max(1, int(tokens[position]))
    return max(1, msg.metadata.num_delivered or 1)
