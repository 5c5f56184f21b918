"""Apache Kafka (``kafka://host:port[,host:port][?option=value&...]``) through aiokafka.

Topics are Kafka topics (created with ``partitions`` partitions on first use) and
groups are Kafka consumer groups, so the broker shares partitions among a group's
members. Publishing waits for ``acks=all`` from an idempotent producer. Members
commit offsets by hand after handling; what a member handled but did not commit when
it died is read again by the member that inherits the partition (dedup keeps the
handler from seeing it twice). A member is declared dead after ``ack_timeout``
without heartbeats (at least the broker's 6 s minimum session timeout).

Kafka counts no deliveries, so members count them in the group's committed offsets:
before handling a batch a member commits its first offset again with the metadata
``delivered=<n>`` (how many times a batch starting there was handed out), and a member
that inherits the partition, or the same member after a restart, starts its first
event's attempts from there. An event that keeps killing its members is dead-lettered
after ``max_attempts`` deliveries (one more when it was not the first of its batch the
first time: that death is counted from the next delivery on).

Records are keyed by the event's ``subject``, so the events of one subject (one
execution) land on one partition and keep their order; within a partition events
are handled in order, one batch at a time; parallelism comes from partitions and
members. Kafka cannot delete one record, so replayed dead letters are retired with a
``resolved`` marker on the dead-letter topic.

The URL's query sets the constructor's options for processes that only get a URL
(``ORCHESTRION_BUS__URL``): ``partitions``, ``replication``, ``idempotent`` and
``session_timeout`` (seconds); an option passed to the constructor wins over the URL.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from orchestrion.kernel.bus.base import Bus, BusUnavailable
from orchestrion.kernel.bus.consumer import Processor
from orchestrion.kernel.bus.dedup import Deduplicator
from orchestrion.kernel.bus.dlq import RESOLVED_TYPE, DeadLetter, dlq_topic, resolved_event
from orchestrion.kernel.bus.events import CloudEvent, InvalidEvent
from orchestrion.kernel.bus.subscription import Subscription
from orchestrion.kernel.bus.urls import url_options

logger = logging.getLogger("orchestrion.bus")
TOPIC_ALREADY_EXISTS = 36
MIN_SESSION_TIMEOUT_MS = 6000
ASSIGNMENT_TIMEOUT = 30.0
#: Commit metadata: how many times the batch starting at the committed offset was handed out.
DELIVERED = "delivered="
#: ``?name=value`` options of a ``kafka://`` URL and how each is read.
URL_OPTIONS: dict[str, type] = {
    "partitions": int,
    "replication": int,
    "idempotent": bool,
    "session_timeout": float,
}


class KafkaBus(Bus):
    """Kafka backend: native consumer groups, manual commits."""

    scheme = "kafka"

    def __init__(
        self,
        url: str,
        *,
        dedup: Deduplicator | None = None,
        partitions: int | None = None,
        replication: int | None = None,
        idempotent: bool | None = None,
        session_timeout: float | None = None,
        block: float = 1.0,
    ) -> None:
        super().__init__(dedup=dedup)
        parts = urlsplit(url)
        options = url_options(parts.query, URL_OPTIONS, backend="Kafka")
        self.bootstrap = parts.netloc or "127.0.0.1:9092"
        self.partitions: int = _pick(partitions, options, "partitions", 3)
        self.replication: int = _pick(replication, options, "replication", 1)
        # Off only for Kafka-compatible brokers without idempotent producers (Tansu):
        # a producer retry after a lost ack may then write an event twice (dedup drops it).
        self.idempotent: bool = _pick(idempotent, options, "idempotent", True)
        # None: each member's session is its ack_timeout (at least the broker's minimum).
        self.session_timeout: float | None = _pick(
            session_timeout, options, "session_timeout", None
        )
        if self.partitions < 1 or self.replication < 1:
            raise ValueError("Kafka partitions and replication must be >= 1")
        if self.session_timeout is not None and self.session_timeout <= 0:
            raise ValueError("Kafka session_timeout must be > 0 seconds")
        self.block = block
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._topics: set[str] = set()

    async def _start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=self.idempotent
        )
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            await producer.start()
            await admin.start()
        except (KafkaError, OSError) as exc:
            await producer.stop()
            await admin.close()
            raise BusUnavailable(f"Kafka is not reachable: {exc}") from exc
        self._producer, self._admin = producer, admin

    async def _close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        if self._admin is not None:
            await self._admin.close()
        self._producer = self._admin = None

    async def _ensure_topic(self, topic: str) -> None:
        if topic in self._topics:
            return
        if self._admin is None:
            raise BusUnavailable("the bus is not started")
        response = await self._admin.create_topics(
            [NewTopic(topic, num_partitions=self.partitions, replication_factor=self.replication)]
        )
        for _name, code, *_rest in getattr(response, "topic_errors", []):
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise BusUnavailable(f"could not create Kafka topic {topic} (error {code})")
        self._topics.add(topic)

    async def _publish_event(self, topic: str, event: CloudEvent) -> None:
        """Send ``event`` keyed by its subject (one partition per subject)."""
        key = event.subject.encode() if event.subject else None
        await self._send(topic, event.to_json(), key)

    async def _publish(self, topic: str, body: bytes) -> None:
        await self._send(topic, body, None)

    async def _send(self, topic: str, body: bytes, key: bytes | None) -> None:
        if self._producer is None:
            raise BusUnavailable("the bus is not started")
        try:
            await self._ensure_topic(topic)
            await self._producer.send_and_wait(topic, body, key=key)
        except KafkaError as exc:
            raise BusUnavailable(f"publish to {topic} failed: {exc}") from exc

    def _consumer(self, *topics: str, **options: Any) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            *topics, bootstrap_servers=self.bootstrap, enable_auto_commit=False, **options
        )

    async def _subscribe(
        self, processor: Processor, *, concurrency: int, ack_timeout: float
    ) -> Subscription:
        await self._ensure_topic(processor.topic)
        if self.session_timeout is not None:
            session_ms = int(self.session_timeout * 1000)
        else:
            session_ms = max(MIN_SESSION_TIMEOUT_MS, int(ack_timeout * 1000))
        consumer = self._consumer(
            group_id=processor.group,
            auto_offset_reset="latest",
            session_timeout_ms=session_ms,
            # Frequent heartbeats make members notice a rebalance, and so finish it, fast.
            heartbeat_interval_ms=min(1000, session_ms // 3),
        )
        listener = _PinStart(consumer)
        consumer.subscribe([processor.topic], listener=listener)
        await consumer.start()
        try:
            await asyncio.wait_for(listener.joined.wait(), timeout=ASSIGNMENT_TIMEOUT)
        except BaseException as exc:
            await consumer.stop()
            if isinstance(exc, TimeoutError):
                raise BusUnavailable("Kafka did not let the new member join in time") from exc
            raise
        subscription = _KafkaSubscription(
            processor, consumer, listener.marks, concurrency=concurrency, block=self.block
        )
        subscription._launch()
        return subscription

    async def _read_all(self, topic: str) -> list[tuple[int, bytes]]:
        """Every record of ``topic`` from the beginning, without a group."""
        await self._ensure_topic(topic)
        reader = self._consumer()
        await reader.start()
        try:
            partitions = [
                TopicPartition(topic, p) for p in sorted(await _partitions(reader, topic))
            ]
            reader.assign(partitions)
            await reader.seek_to_beginning(*partitions)
            ends = await reader.end_offsets(partitions)
            items: list[tuple[int, bytes]] = []
            behind = set(partitions)
            while behind:
                for records in (await reader.getmany(timeout_ms=1000)).values():
                    items.extend((r.timestamp, r.value) for r in records if r.value is not None)
                behind = {tp for tp in behind if await reader.position(tp) < ends[tp]}
            items.sort(key=lambda item: item[0])
            return items
        finally:
            await reader.stop()

    async def _dead_letters(self, topic: str, *, limit: int) -> list[DeadLetter]:
        items = await self._read_all(topic)
        resolved: set[str] = set()
        for _, body in items:
            try:
                event = CloudEvent.from_json(body)
            except InvalidEvent:
                continue
            if event.type == RESOLVED_TYPE and event.subject:
                resolved.add(event.subject)
        letters = self._parse_letters([(None, body) for _, body in items])
        return [letter for letter in letters if letter.id not in resolved][:limit]

    async def _drop_dead_letters(self, topic: str, letters: list[DeadLetter]) -> None:
        for letter in letters:
            await self.publish(topic, resolved_event(letter.id))

    async def _delete(self, topic: str) -> None:
        if self._admin is None:
            raise BusUnavailable("the bus is not started")
        names = [topic, dlq_topic(topic)]
        await self._admin.delete_topics(names)
        self._topics.difference_update(names)


def _pick(given: Any, options: dict[str, Any], name: str, default: Any) -> Any:
    """The constructor's value, else the URL's, else the default."""
    if given is not None:
        return given
    return options.get(name, default)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    deadline = time.monotonic() + ASSIGNMENT_TIMEOUT
    while True:
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        if time.monotonic() > deadline:
            raise BusUnavailable(f"no metadata for Kafka topic {topic}")
        # topics() fetches fresh cluster metadata, which partitions_for_topic reads.
        await consumer.topics()
        await asyncio.sleep(0.05)


def delivered_mark(metadata: str | None) -> int:
    """The delivery count in a commit's ``metadata`` (0 when it carries none)."""
    if metadata and metadata.startswith(DELIVERED):
        count = metadata.removeprefix(DELIVERED)
        if count.isdigit():
            return int(count)
    return 0


class _PinStart(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits where a new group starts, reads the delivery counts, tells when joined.

    Without a committed offset, "latest" is resolved only at the first fetch, so events
    published right after ``subscribe`` returned could be skipped; committing the
    resolved position when a partition is first assigned pins the group's start to the
    moment it joined. ``marks`` gets each assigned partition's committed offset and
    the delivery count committed with it (``delivered=<n>``), which an earlier owner
    left. A member may get no partition at all (more members than partitions):
    joining, not getting work, is what ``joined`` waits for.
    """

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.joined = asyncio.Event()
        self.marks: dict[TopicPartition, tuple[int, int]] = {}

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """Forget the counts: the next owner reads them from the broker."""
        for tp in revoked:
            self.marks.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        """Pin the start of never-committed partitions, read the counts, signal the join."""
        # The consumer's committed() drops the metadata; its coordinator's fetch keeps it.
        committed: dict[TopicPartition, OffsetAndMetadata] = (
            await self.consumer._coordinator.fetch_committed_offsets(list(assigned))
            if assigned
            else {}
        )
        offsets: dict[TopicPartition, int] = {}
        for tp in assigned:
            mark = committed.get(tp)
            if mark is None or mark.offset < 0:
                offsets[tp] = await self.consumer.position(tp)
            else:
                self.marks[tp] = (mark.offset, delivered_mark(mark.metadata))
        if offsets:
            await self.consumer.commit(offsets)
        self.joined.set()


class _KafkaSubscription(Subscription):
    def __init__(
        self,
        processor: Processor,
        consumer: AIOKafkaConsumer,
        marks: dict[TopicPartition, tuple[int, int]],
        *,
        concurrency: int,
        block: float,
    ) -> None:
        super().__init__(topic=processor.topic, group=processor.group, concurrency=concurrency)
        self._processor = processor
        self._consumer = consumer
        # Per partition: the last committed offset and its delivery count.
        self._marks = marks
        self._block_ms = int(block * 1000)

    async def _loop(self) -> None:
        while not self.stopped:
            batches = await self._consumer.getmany(timeout_ms=self._block_ms)
            for tp, records in batches.items():
                await self._dispatch(functools.partial(self._handle, tp, records))
            # One batch at a time, so a partition's offsets are committed in order.
            while self._inflight:
                await asyncio.wait(set(self._inflight))

    async def _handle(self, tp: TopicPartition, records: list[ConsumerRecord[Any, Any]]) -> None:
        done = records[0].offset
        try:
            while records and tp in self._consumer.assignment():
                handled = await self._handle_batch(tp, records)
                done = records[handled - 1].offset + 1
                records = records[handled:]
        except Exception:
            # The position is past the batch already: go back to what is not handled,
            # so the next fetch hands it out again (a broker down, a dead letter unsent).
            if tp in self._consumer.assignment():
                self._consumer.seek(tp, done)
            raise

    async def _handle_batch(
        self, tp: TopicPartition, records: list[ConsumerRecord[Any, Any]]
    ) -> int:
        """Handle ``records`` (or only the first, when it is a redelivery); how many.

        The batch's first offset is committed again first, with how many times a batch
        starting there has been handed out: an event that kills its member, or a member
        stopped mid-retry, is counted by the next owner. After a redelivery's first
        event the rest is a batch of its own, never handed out before as far as anyone
        counted.
        """
        first = records[0].offset
        offset, count = self._marks.get(tp, (-1, 0))
        delivered = count + 1 if offset == first else 1
        await self._commit(tp, first, f"{DELIVERED}{delivered}")
        if delivered > 1:
            records = records[:1]
        for record in records:
            await self._processor.process(record.value or b"", delivered=delivered)
            delivered = 1
        # One commit per batch: a member that dies mid-batch has its batch read again,
        # and dedup skips the events it had already handled.
        await self._commit(tp, records[-1].offset + 1, "")
        return len(records)

    async def _commit(self, tp: TopicPartition, offset: int, metadata: str) -> None:
        try:
            await self._consumer.commit({tp: OffsetAndMetadata(offset, metadata)})
        except CommitFailedError:
            logger.info("lost partition %s during a rebalance; its new owner reads on", tp)
            return
        self._marks[tp] = (offset, delivered_mark(metadata))

    async def _close(self) -> None:
        await self._consumer.stop()
