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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrion.kernel.bus import metrics
from orchestrion.kernel.bus.dedup import Claim, Deduplicator
from orchestrion.kernel.bus.dlq import REPLAY_GROUP
from orchestrion.kernel.bus.events import CloudEvent, InvalidEvent
from orchestrion.kernel.ids import new_id, utcnow
from orchestrion.kernel.observability import tracing

if TYPE_CHECKING:
    from orchestrion.kernel.bus.base import Backoff, Bus, Handler

logger = logging.getLogger("orchestrion.bus")
Keepalive = Callable[[], Awaitable[None]]


class DeliveriesExhausted(Exception):
    """Every attempt went to deliveries that ended without an outcome (member died)."""

    def __init__(self, deliveries: int) -> None:
        super().__init__(
            f"delivered {deliveries} times without an outcome: the members handling it "
            "stopped or died each time"
        )


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
            metrics.CONSUMED.labels(self.topic, self.group, "malformed").inc()
            return
        target = event.extensions.get(REPLAY_GROUP)
        if target is not None:
            if target != self.group:
                return
            event = event.with_extensions(**{REPLAY_GROUP: None})
        try:
            async with self._renewing(event, keepalive):
                if not await self._claim(event):
                    metrics.CONSUMED.labels(self.topic, self.group, "duplicate").inc()
                    return
                lag = (utcnow() - event.time).total_seconds()
                metrics.LAG.labels(self.topic, self.group).observe(max(0.0, lag))
                attempts: int
                error: Exception | None
                if delivered > self.max_attempts:
                    attempts, error = delivered - 1, DeliveriesExhausted(delivered - 1)
                else:
                    attempts, error = await self._attempts(event, first=max(1, delivered))
        except BaseException:
            # Stopped mid-handler: let the redelivery be handled at once rather than
            # after the lease runs out.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.dedup.release(self.group, event.id, owner=self.owner))
            raise
        # Renewal has stopped, so it cannot re-take the claim after these.
        if error is None:
            await self.dedup.complete(self.group, event.id)
            metrics.CONSUMED.labels(self.topic, self.group, "handled").inc()
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
        metrics.CONSUMED.labels(self.topic, self.group, "dead_lettered").inc()

    async def _claim(self, event: CloudEvent) -> bool:
        """Whether this member should handle ``event`` (waits while another does)."""
        pause = min(0.05, self.lease / 4)
        while True:
            claim = await self.dedup.claim(self.group, event.id, owner=self.owner, lease=self.lease)
            if claim is Claim.NEW:
                return True
            if claim is Claim.DONE:
                return False
            # Another member is on it; it will finish, fail, or its lease will lapse.
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.lease / 2)

    async def _attempts(self, event: CloudEvent, *, first: int) -> tuple[int, Exception | None]:
        """Call the handler until it succeeds or runs out of attempts; the last error.

        ``first`` is the number of this attempt: earlier deliveries used the others.
        """
        attempt = first
        while True:
            try:
                with tracing.span(
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
                ):
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

    @contextlib.asynccontextmanager
    async def _renewing(
        self, event: CloudEvent, keepalive: Keepalive | None
    ) -> AsyncIterator[None]:
        """Keep the broker's hold and the dedup lease alive while the event is handled."""
        # Most events are handled long before the first renewal is due: start the
        # renewing task only then, rather than a task per event.
        renewer: list[asyncio.Task[None]] = []
        timer = asyncio.get_running_loop().call_later(
            self.lease / 3,
            lambda: renewer.append(asyncio.create_task(self._renew(event, keepalive))),
        )
        try:
            yield
        finally:
            timer.cancel()
            for task in renewer:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _renew(self, event: CloudEvent, keepalive: Keepalive | None) -> None:
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
