"""The projector: execution events from the bus, applied to the projections.

The workflows service publishes every execution event on ``workflows.executions``
(:mod:`.projection` describes the shape). The analytics service consumes the topic in
group ``analytics``. Each handler call hands its event to the member's :class:`Batcher`
and waits: the batcher applies the events gathered (up to ``BATCH_SIZE``, or what came
within ``LINGER`` seconds of the oldest) in one transaction, where the projection's
changes, the applied ``seq`` and any SLO event staged in the outbox commit together, and
only then lets the handlers return, so the bus acknowledges nothing before its commit.
One transaction per batch rather than per event is what lets SQLite's single writer
keep up (docs/analytics.md has the figures). A batch that fails is split in halves
until the event that fails is alone: it fails (the bus retries just it with backoff,
then dead-letters it) and the others of its batch commit. A busy or unreachable
database fails the whole batch at once, each event then retried by the bus. Data that
does not fit is parked as a dead letter at once (retrying cannot fix it). Redelivered
events count once (entries are identified by ``(execution, seq)``, :mod:`.projection`),
whichever batch they land in.

Metrics (Prometheus, on ``/metrics``):

- ``orchestrion_analytics_projection_lag_seconds``: how old the last projected event
  was when it was projected (its ``at`` to now);
- ``orchestrion_analytics_last_event_timestamp_seconds``: the ``at`` of the newest
  event projected, to alert on a projector that stopped (``time() - ...``);
- ``orchestrion_analytics_events_total{result}``: events ``applied``, ``duplicate``
  (already counted) or ``malformed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from orchestrion.kernel.bus import Bus, CloudEvent
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.ids import utcnow
from orchestrion.services.analytics import slos
from orchestrion.services.analytics.projection import ExecutionEvent, Outcome, project_many

#: The topic the workflows service publishes execution events on.
TOPIC = "workflows.executions"
GROUP = "analytics"
SOURCE = "orchestrion/workflows"
#: Events applied in one transaction at most.
BATCH_SIZE = 200
#: Seconds a batch waits for more events after its oldest arrived.
LINGER = 0.005
#: Handlers a member runs at once: two batches' worth, so one fills while one commits.
CONCURRENCY = 2 * BATCH_SIZE
logger = logging.getLogger("orchestrion.analytics")

LAG = Gauge(
    "orchestrion_analytics_projection_lag_seconds",
    "Age of the last execution event the analytics projector applied, when it applied it.",
)
LAST_EVENT = Gauge(
    "orchestrion_analytics_last_event_timestamp_seconds",
    "Time (`at`) of the newest execution event the analytics projector applied.",
)
EVENTS = Counter(
    "orchestrion_analytics_events_total",
    "Execution events the analytics projector handled, by result.",
    ["result"],
)
_APPLIED = EVENTS.labels("applied")
_DUPLICATE = EVENTS.labels("duplicate")
_MALFORMED = EVENTS.labels("malformed")
_newest = [0.0]


def observe(at: datetime) -> None:
    """Record the lag of an event applied now."""
    LAG.set(max(0.0, (utcnow() - at).total_seconds()))
    stamp = at.timestamp()
    if stamp > _newest[0]:
        _newest[0] = stamp
        LAST_EVENT.set(stamp)


async def apply(
    database: Database, event: ExecutionEvent, *, evaluate_slos: bool = True
) -> Outcome:
    """Apply one execution event in its own transaction (with the SLOs it moves)."""
    return (await apply_many(database, [event], evaluate_slos=evaluate_slos))[0]


async def apply_many(
    database: Database, events: Sequence[ExecutionEvent], *, evaluate_slos: bool = True
) -> list[Outcome]:
    """Apply execution events in one transaction, with the SLOs they move; all or none."""
    async with database.session() as session:
        outcomes = await project_many(session, events)
        if evaluate_slos:
            moved = sorted(
                {
                    (event.tenant_id, event.workflow_id)
                    for event, outcome in zip(events, outcomes, strict=True)
                    if outcome.finished_changed
                }
            )
            for tenant_id, workflow_id in moved:
                await slos.evaluate(session, tenant_id=tenant_id, workflow_id=workflow_id)
    for event, outcome in zip(events, outcomes, strict=True):
        if outcome.applied:
            _APPLIED.inc()
            observe(event.event.at)
        else:
            _DUPLICATE.inc()
    return outcomes


def _retrieve(future: asyncio.Future[Outcome]) -> None:
    # The handler that waited may be gone (cancelled): its failure is no news to log.
    if not future.cancelled():
        future.exception()


@dataclass
class _Waiting:
    event: ExecutionEvent
    future: asyncio.Future[Outcome]
    arrived: float


@dataclass
class Batcher:
    """Gathers the events of concurrent handler calls into one transaction.

    ``submit`` returns once the event's batch committed (or raises what failed it), so
    a handler that awaits it is acknowledged after the commit, never before. One batch
    commits at a time; the next gathers meanwhile.
    """

    database: Database
    size: int = BATCH_SIZE
    linger: float = LINGER
    evaluate_slos: bool = True
    _waiting: list[_Waiting] = field(default_factory=list, init=False)
    _full: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    async def submit(self, event: ExecutionEvent) -> Outcome:
        """Apply ``event`` in the next batch; its outcome once that batch committed."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(event, loop.create_future(), loop.time())
        waiting.future.add_done_callback(_retrieve)
        self._waiting.append(waiting)
        if len(self._waiting) >= self.size:
            self._full.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="analytics-batcher")
        # Shielded: a handler cancelled while it waits leaves its event in the batch
        # (counted once anyway, should the bus deliver it again).
        return await asyncio.shield(waiting.future)

    async def close(self) -> None:
        """Stop applying; events still waiting fail (unacknowledged, the bus keeps them)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail(self._waiting, asyncio.CancelledError())
        self._waiting = []

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[_Waiting] = []
        try:
            while self._waiting:
                wait = self._waiting[0].arrived + self.linger - loop.time()
                if len(self._waiting) < self.size and wait > 0:
                    self._full.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._full.wait(), wait)
                batch = self._waiting[: self.size]
                del self._waiting[: self.size]
                await self._apply(batch)
                batch = []
        except BaseException as exc:
            self._fail(batch, exc)
            raise
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def _apply(self, batch: list[_Waiting], *, split: bool = False) -> None:
        events = [w.event for w in batch]
        try:
            outcomes = await apply_many(self.database, events, evaluate_slos=self.evaluate_slos)
        except (TimeoutError, OSError) as exc:
            # The database busy or unreachable (kernel.errors.Busy is a TimeoutError):
            # every event fails now and the bus retries each with backoff, rather than
            # waiting out the lock again for each part of the batch.
            self._fail(batch, exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                self._fail(batch, exc)
                return
            if not split:
                logger.warning(
                    "a batch of %d events failed (%r); splitting it to find the event that fails",
                    len(batch),
                    exc,
                )
            # Halves until the event that cannot be applied is alone: the others commit.
            half = len(batch) // 2
            await self._apply(batch[:half], split=True)
            await self._apply(batch[half:], split=True)
            return
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if not waiting.future.done():
                waiting.future.set_result(outcome)

    @staticmethod
    def _fail(batch: list[_Waiting], exc: BaseException) -> None:
        for waiting in batch:
            if not waiting.future.done():
                if isinstance(exc, asyncio.CancelledError):
                    waiting.future.cancel()
                else:
                    waiting.future.set_exception(exc)


Handler = Callable[[CloudEvent], Awaitable[None]]


def handler(bus: Bus, batcher: Batcher) -> Handler:
    """The bus handler of group ``analytics`` (subscribe it with ``CONCURRENCY``)."""

    async def handle(event: CloudEvent) -> None:
        if not event.type.startswith("orchestrion.") or event.source != SOURCE:
            return
        try:
            data = ExecutionEvent.model_validate(event.data)
        except ValidationError as exc:
            _MALFORMED.inc()
            logger.warning("malformed %s event %s: %s", TOPIC, event.id, exc)
            await bus.dead_letter(topic=TOPIC, group=GROUP, attempts=0, error=exc, event=event)
            return
        await batcher.submit(data)

    return handle
