"""What a group member does with one delivery, the same on every backend.

Parse the envelope, skip replays addressed to another group, claim the event id with
the deduplicator, call the handler with retries and backoff, and dead-letter the
event after the last attempt. ``process`` returns when the delivery may be
acknowledged; it raises only when the member is stopping or the broker failed, and
then the delivery stays un-acknowledged for the broker to hand out again.

Attempts are counted across members and restarts where the broker counts deliveries
(Redis Streams, RabbitMQ quorum queues, JetStream): each earlier delivery of the event
counts as one attempt, so a member restarting mid-retry does not start over, and an
event whose handling keeps killing its member is dead-lettered after ``max_attempts``
deliveries rather than handed out forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrion.kernel.bus import metrics
from orchestrion.kernel.bus.dedup import Claim, Deduplicator
from orchestrion.kernel.bus.dlq import REPLAY_GROUP
from orchestrion.kernel.bus.events import CloudEvent, InvalidEvent
from orchestrion.kernel.ids import new_id
from orchestrion.kernel.observability import tracing

if TYPE_CHECKING:
    from orchestrion.kernel.bus.base import Backoff, Bus, Handler

logger = logging.getLogger("orchestrion.bus")
Keepalive = Callable[[], Awaitable[None]]


#: Handled events whose mark is not yet stored that a member remembers (oldest dropped).
_UNMARKED_KEPT = 10_000


class DeliveriesExhausted(Exception):
    """Every attempt went to deliveries that ended without an outcome (member died)."""

    def __init__(self, deliveries: int) -> None:
        super().__init__(
            f"delivered {deliveries} times without an outcome: the members handling it "
            "stopped or died each time"
        )


@dataclass(eq=False, slots=True)
class _Hold:
    """An event in hand: since when, and the task renewing its hold once one is due."""

    event: CloudEvent
    keepalive: Keepalive | None
    since: float
    renewer: asyncio.Task[None] | None = None


@dataclass(kw_only=True)
class Processor:
    """Turns deliveries of ``topic`` into handler calls for one member of ``group``."""

    bus: Bus
    topic: str
    group: str
    handler: Handler
    dedup: Deduplicator
    max_attempts: int
    backoff: Backoff
    # Seconds a member may hold an event (broker lease and dedup claim) between renewals.
    lease: float
    owner: str = field(default_factory=new_id)

    def __post_init__(self) -> None:
        # The metric children of this member's series, looked up once, not per event.
        self._results = {
            result: metrics.CONSUMED.labels(self.topic, self.group, result)
            for result in ("handled", "duplicate", "dead_lettered", "malformed")
        }
        self._lag = metrics.LAG.labels(self.topic, self.group)
        # Events being handled, and one timer for all of them: most are done long before
        # their first renewal is due, so none gets a timer or a task of its own.
        self._holds: set[_Hold] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        # Events this member handled whose ``complete`` mark did not reach the store (a
        # broker that keeps the marks crashed in between): their redelivery marks them
        # and is acknowledged, instead of handling them a second time.
        self._unmarked: OrderedDict[str, None] = OrderedDict()

    def _sweep(self) -> None:
        """Start renewing the holds of events handled for a third of the lease.

        Runs every sixth of the lease while events are in hand, so an event's first
        renewal comes between a third and half of the lease after it was taken; stops
        at the first run that finds none.
        """
        if not self._holds:
            self._sweeper = None
            return
        due = time.monotonic() - self.lease / 3
        for hold in self._holds:
            if hold.renewer is None and hold.since <= due:
                hold.renewer = asyncio.create_task(self._renew(hold.event, hold.keepalive))
        self._sweeper = asyncio.get_running_loop().call_later(self.lease / 6, self._sweep)

    async def process(
        self, body: bytes, *, keepalive: Keepalive | None = None, delivered: int = 1
    ) -> None:
        """Handle one delivery; returns when it may be acknowledged.

        ``delivered`` is how many times the broker has handed this event out, this
        time included (1 where the broker does not count).
        """
        try:
            event = CloudEvent.from_json(body)
        except InvalidEvent as exc:
            # Retrying cannot fix a malformed envelope: park it for a person at once.
            logger.warning("malformed event on %s for %s: %s", self.topic, self.group, exc)
            await self.bus.dead_letter(
                topic=self.topic, group=self.group, attempts=0, error=exc, raw=body
            )
            self._results["malformed"].inc()
            return
        if event.extensions:
            target = event.extensions.get(REPLAY_GROUP)
            if target is not None:
                if target != self.group:
                    return
                event = event.with_extensions(**{REPLAY_GROUP: None})
        if event.id in self._unmarked:
            await self._mark_handled(event.id)
            self._results["duplicate"].inc()
            return
        attempts: int
        error: Exception | None
        try:
            # Keep the broker's hold and the dedup lease alive while the event is
            # handled (``_sweep`` starts renewing once it is held for a while).
            hold = _Hold(event, keepalive, time.monotonic())
            self._holds.add(hold)
            if self._sweeper is None:
                self._sweeper = asyncio.get_running_loop().call_later(self.lease / 6, self._sweep)
            try:
                if not await self._claim(event):
                    self._results["duplicate"].inc()
                    return
                lag = time.time() - event.time.timestamp()
                self._lag.observe(lag if lag > 0.0 else 0.0)
                if delivered > self.max_attempts:
                    attempts, error = delivered - 1, DeliveriesExhausted(delivered - 1)
                else:
                    attempts, error = await self._attempts(event, first=max(1, delivered))
            finally:
                self._holds.discard(hold)
                if hold.renewer is not None:
                    hold.renewer.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await hold.renewer
        except BaseException:
            # Stopped mid-handler: let the redelivery be handled at once rather than
            # after the lease runs out.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.dedup.release(self.group, event.id, owner=self.owner))
            raise
        # Renewal has stopped, so it cannot re-take the claim after these.
        if error is None:
            self._results["handled"].inc()
            await self._mark_handled(event.id)
            return
        logger.error(
            "event %s on %s failed %d times in group %s; dead-lettered: %r",
            event.id,
            self.topic,
            attempts,
            self.group,
            error,
        )
        await self.bus.dead_letter(
            topic=self.topic, group=self.group, attempts=attempts, error=error, event=event
        )
        await self.dedup.release(self.group, event.id, owner=self.owner)
        self._results["dead_lettered"].inc()

    async def _mark_handled(self, event_id: str) -> None:
        """Mark ``event_id`` handled in the store; remembered here until the mark is in."""
        self._unmarked[event_id] = None
        if len(self._unmarked) > _UNMARKED_KEPT:
            self._unmarked.popitem(last=False)
        await self.dedup.complete(self.group, event_id)
        self._unmarked.pop(event_id, None)

    async def _claim(self, event: CloudEvent) -> bool:
        """Whether this member should handle ``event`` (waits while another does)."""
        claim = await self.dedup.claim(self.group, event.id, owner=self.owner, lease=self.lease)
        if claim is Claim.NEW:
            return True
        pause = min(0.05, self.lease / 4)
        while claim is not Claim.DONE:
            # Another member is on it; it will finish, fail, or its lease will lapse.
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.lease / 2)
            claim = await self.dedup.claim(self.group, event.id, owner=self.owner, lease=self.lease)
            if claim is Claim.NEW:
                return True
        return False

    async def _attempts(self, event: CloudEvent, *, first: int) -> tuple[int, Exception | None]:
        """Call the handler until it succeeds or runs out of attempts; the last error.

        ``first`` is the number of this attempt: earlier deliveries used the others.
        """
        attempt = first
        while True:
            try:
                if tracing.enabled():
                    with self._span(event, attempt):
                        await self.handler(event)
                else:
                    # Off, no span and no attributes to build: the handler, nothing else.
                    await self.handler(event)
            except Exception as exc:
                if attempt >= self.max_attempts:
                    return attempt, exc
                logger.warning(
                    "event %s on %s failed in group %s (attempt %d/%d): %r",
                    event.id,
                    self.topic,
                    self.group,
                    attempt,
                    self.max_attempts,
                    exc,
                )
                await asyncio.sleep(self.backoff.delay(attempt))
                attempt += 1
            else:
                return attempt, None

    def _span(self, event: CloudEvent, attempt: int) -> contextlib.AbstractContextManager[Any]:
        return tracing.span(
            f"process {self.topic}",
            kind=tracing.SpanKind.CONSUMER,
            parent=event.traceparent,
            attributes={
                "messaging.system": self.bus.scheme,
                "messaging.destination.name": self.topic,
                "messaging.consumer.group.name": self.group,
                "messaging.message.id": event.id,
                "messaging.operation.type": "process",
                "cloudevents.event_id": event.id,
                "cloudevents.event_type": event.type,
                "orchestrion.bus.attempt": attempt,
            },
        )

    async def _renew(self, event: CloudEvent, keepalive: Keepalive | None) -> None:
        """Renew the broker's hold and the dedup lease now, then every third of the lease."""
        while True:
            try:
                if keepalive is not None:
                    await keepalive()
                claim = await self.dedup.claim(
                    self.group, event.id, owner=self.owner, lease=self.lease
                )
                if claim is not Claim.NEW:
                    # We are not (or no longer) the holder: nothing more to renew.
                    return
            except Exception:
                logger.warning("could not renew the hold on event %s", event.id, exc_info=True)
            await asyncio.sleep(self.lease / 3)
