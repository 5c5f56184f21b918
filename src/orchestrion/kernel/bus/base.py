"""The event bus port: one small protocol every backend implements.

Semantics, the same on every backend (docs/bus.md says more):

- ``publish`` returns once the broker has the event (publisher confirm, JetStream
  ack, ``XADD`` reply, Kafka ``acks=all``); the in-memory bus once it is queued.
- A *group* receives every event published to a topic after the group was first
  created; the members of one group (one ``subscribe`` call each, in any process)
  share the events between them: competing consumers.
- Delivery is at least once. A failing handler is retried with backoff; after
  ``max_attempts`` the event goes to ``<topic>.dlq`` as a dead letter. A
  :class:`~orchestrion.kernel.bus.dedup.Deduplicator` keeps a group from handling
  the same event id twice, whether the broker redelivered it or a producer sent it
  again.

Errors::

    OrchestrionError
    ├── ValidationFailed
    │   ├── InvalidEvent        malformed CloudEvent envelope
    │   └── InvalidName         topic or group name the brokers cannot all carry
    └── ServiceUnavailable
        └── BusUnavailable      the bus is not started, or the broker refused
"""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Self

from orchestrion.kernel.bus import metrics
from orchestrion.kernel.bus.consumer import Processor
from orchestrion.kernel.bus.dedup import Deduplicator, MemoryDeduplicator
from orchestrion.kernel.bus.dlq import (
    REPLAY_GROUP,
    DeadLetter,
    dead_letter_event,
    dlq_topic,
    parse_dead_letter,
    select,
)
from orchestrion.kernel.bus.events import CloudEvent, InvalidEvent
from orchestrion.kernel.bus.subscription import Subscription
from orchestrion.kernel.errors import ServiceUnavailable, ValidationFailed
from orchestrion.kernel.observability import tracing

__all__ = [
    "Backoff",
    "Bus",
    "BusUnavailable",
    "CloudEvent",
    "Handler",
    "InvalidEvent",
    "InvalidName",
    "Subscription",
]

Handler = Callable[[CloudEvent], Awaitable[None]]
# Dot-separated segments: a NATS subject, an AMQP routing key and a Kafka topic alike.
_TOPIC = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
# No dots: a group becomes part of queue and durable-consumer names.
_GROUP = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_NAME_LENGTH = 200


class InvalidName(ValidationFailed):
    """A topic or group name outside what every backend accepts."""


class BusUnavailable(ServiceUnavailable):
    """The bus is not started, or its broker refused or failed an operation."""


def check_topic(topic: str) -> str:
    """``topic`` if it is dot-separated segments of letters, digits, ``_`` and ``-``."""
    if len(topic) > MAX_NAME_LENGTH or not _TOPIC.match(topic):
        raise InvalidName(f"invalid topic {topic!r}: use dot-separated [A-Za-z0-9_-] segments")
    return topic


def check_group(group: str) -> str:
    """``group`` if it is letters, digits, ``_`` and ``-`` only."""
    if len(group) > MAX_NAME_LENGTH or not _GROUP.match(group):
        raise InvalidName(f"invalid group {group!r}: use [A-Za-z0-9_-] only")
    return group


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter between handler attempts."""

    initial: float = 0.5
    multiplier: float = 2.0
    maximum: float = 60.0
    jitter: float = 0.1

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.maximum, self.initial * self.multiplier ** max(0, attempt - 1))
        # Jitter spreads retries of many members so they do not hit a dependency at once.
        return base * (1 + random.uniform(-self.jitter, self.jitter))  # noqa: S311


class Bus(ABC):
    """Publish CloudEvents to topics; consume them in groups. Use as ``async with``."""

    #: the URL scheme that selects this backend in :func:`~orchestrion.kernel.bus.open_bus`
    scheme: str = ""

    def __init__(self, *, dedup: Deduplicator | None = None) -> None:
        self.dedup: Deduplicator = dedup if dedup is not None else MemoryDeduplicator()
        self._subscriptions: set[Subscription] = set()
        self._started = False
        # Per topic published to: its name checked once and its metric child looked up once.
        self._published: dict[str, Any] = {}

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def subscriptions(self) -> frozenset[Subscription]:
        """The subscriptions of this bus that have not stopped."""
        return frozenset(self._subscriptions)

    async def start(self) -> None:
        """Connect to the broker; idempotent."""
        if not self._started:
            await self._start()
            self._started = True

    async def close(self, *, grace: float = 10.0) -> None:
        """Stop every subscription (in-flight handlers get ``grace`` seconds), then disconnect."""
        for subscription in list(self._subscriptions):
            await subscription.stop(grace=grace)
        if self._started:
            self._started = False
            await self._close()

    async def publish(self, topic: str, event: CloudEvent) -> None:
        """Send ``event`` to ``topic``; returns once the broker confirmed it."""
        self._require_started()
        counter = self._published.get(topic)
        if counter is None:
            counter = self._published[topic] = metrics.PUBLISHED.labels(check_topic(topic))
        if not tracing.enabled():
            await self._publish_event(topic, event)
            counter.inc()
            return
        with tracing.span(
            f"publish {topic}",
            kind=tracing.SpanKind.PRODUCER,
            parent=event.traceparent,
            attributes={
                "messaging.system": self.scheme,
                "messaging.destination.name": topic,
                "messaging.message.id": event.id,
                "cloudevents.event_id": event.id,
                "cloudevents.event_type": event.type,
                "cloudevents.event_source": event.source,
            },
        ) as current:
            if event.traceparent is None:
                event = replace(event, traceparent=tracing.traceparent(current))
            await self._publish_event(topic, event)
        counter.inc()

    async def subscribe(
        self,
        topic: str,
        group: str,
        handler: Handler,
        *,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
        concurrency: int = 1,
        ack_timeout: float = 30.0,
        dedup: Deduplicator | None = None,
    ) -> Subscription:
        """Join ``group`` on ``topic``; ``handler`` gets the group's share of events.

        When this returns, the group exists at the broker: every event published from
        then on reaches it. ``concurrency`` bounds the handlers this member runs at
        once. A member that holds an event longer than ``ack_timeout`` seconds without
        a sign of life (it died) loses it to another member; live members renew their
        hold while a handler runs, so slow handlers are fine.
        """
        self._require_started()
        if max_attempts < 1 or concurrency < 1 or ack_timeout <= 0:
            raise ValueError("max_attempts and concurrency must be >= 1, ack_timeout > 0")
        processor = Processor(
            bus=self,
            topic=check_topic(topic),
            group=check_group(group),
            handler=handler,
            dedup=dedup if dedup is not None else self.dedup,
            max_attempts=max_attempts,
            backoff=backoff or Backoff(),
            lease=ack_timeout,
        )
        subscription = await self._subscribe(
            processor, concurrency=concurrency, ack_timeout=ack_timeout
        )
        self._subscriptions.add(subscription)
        subscription.on_stop(self._subscriptions.discard)
        return subscription

    async def dead_letter(
        self,
        *,
        topic: str,
        group: str,
        attempts: int,
        error: BaseException | str,
        event: CloudEvent | None = None,
        raw: bytes | None = None,
    ) -> None:
        """Publish a dead letter for ``group``'s failure on ``topic`` to ``<topic>.dlq``."""
        letter = dead_letter_event(
            topic=topic, group=group, attempts=attempts, error=error, event=event, raw=raw
        )
        await self.publish(dlq_topic(topic), letter)
        metrics.DEAD_LETTERS.labels(topic, group).inc()

    async def dlq_list(
        self, topic: str, group: str | None = None, *, limit: int = 1000
    ) -> list[DeadLetter]:
        """The dead letters of ``topic`` (of one group when given), oldest first."""
        self._require_started()
        letters = await self._dead_letters(dlq_topic(check_topic(topic)), limit=limit)
        return select(letters, group=group)

    async def dlq_replay(
        self, topic: str, group: str | None = None, *, ids: list[str] | None = None
    ) -> int:
        """Re-publish dead letters to ``topic`` for their group, then drop them.

        ``ids`` narrows the replay to those dead letters. Returns how many were
        replayed; letters without a valid original event stay where they are.
        """
        letters = select(
            await self.dlq_list(topic, group), group=None, ids=set(ids) if ids else None
        )
        replayable = [letter for letter in letters if letter.event is not None]
        for letter in replayable:
            assert letter.event is not None
            # Addressed to the failed group only; the same id keeps replay idempotent.
            await self.publish(topic, letter.event.with_extensions(**{REPLAY_GROUP: letter.group}))
        # Dropped after re-publishing: a crash in between replays twice, never loses one.
        if replayable:
            await self._drop_dead_letters(dlq_topic(topic), replayable)
        return len(replayable)

    async def delete(self, topic: str) -> None:
        """Remove ``topic``, its groups and its dead letters from the broker.

        For tests and tooling; live subscriptions on the topic should be stopped first.
        """
        self._require_started()
        await self._delete(check_topic(topic))
        for name in (topic, dlq_topic(topic)):
            self._published.pop(name, None)

    def _require_started(self) -> None:
        if not self._started:
            raise BusUnavailable("the bus is not started; call start() or use 'async with'")

    @staticmethod
    def _parse_letters(items: list[tuple[Any, bytes]]) -> list[DeadLetter]:
        """Dead letters from (handle, body) pairs, skipping anything else on the topic."""
        letters: list[DeadLetter] = []
        for handle, body in items:
            try:
                letter = parse_dead_letter(CloudEvent.from_json(body), handle=handle)
            except InvalidEvent:
                continue
            if letter is not None:
                letters.append(letter)
        return letters

    # Backend hooks.

    @abstractmethod
    async def _start(self) -> None: ...

    @abstractmethod
    async def _close(self) -> None: ...

    @abstractmethod
    async def _publish(self, topic: str, body: bytes) -> None: ...

    async def _publish_event(self, topic: str, event: CloudEvent) -> None:
        """Send one event (a backend that keys or routes by the event overrides this)."""
        await self._publish(topic, event.to_json())

    @abstractmethod
    async def _subscribe(
        self, processor: Processor, *, concurrency: int, ack_timeout: float
    ) -> Subscription: ...

    @abstractmethod
    async def _dead_letters(self, topic: str, *, limit: int) -> list[DeadLetter]: ...

    @abstractmethod
    async def _drop_dead_letters(self, topic: str, letters: list[DeadLetter]) -> None: ...

    @abstractmethod
    async def _delete(self, topic: str) -> None: ...
