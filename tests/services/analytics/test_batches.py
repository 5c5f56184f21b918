"""The projector's batches: many events in one transaction count exactly as one at a
time, redelivered ones once; an event that cannot be applied fails alone (the others of
its batch commit) and, through the bus, ends as a dead letter after its retries."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from sqlalchemy import select

from orchestrion.kernel.bus import Backoff, CloudEvent
from orchestrion.kernel.bus.memory import MemoryBus
from orchestrion.kernel.db.engine import Database
from orchestrion.services.analytics import consumer, repository
from orchestrion.services.analytics.consumer import Batcher, apply, apply_many
from orchestrion.services.analytics.models import (
    AnalyticsBucket,
    AnalyticsDurationBin,
    AnalyticsModelUsage,
)
from orchestrion.services.analytics.projection import ExecutionEvent
from tests.services.analytics.conftest import eventually
from tests.services.analytics.test_projection import entry, figures, llm_output, run_of


def many_runs(n: int) -> list[ExecutionEvent]:
    events: list[ExecutionEvent] = []
    for i in range(n):
        events += run_of(f"e{i:02d}", fails=i % 4 == 0, ms=50.0 + 37 * i)
    return events


async def aggregate_rows(database: Database) -> list[tuple[Any, ...]]:
    """Every non-zero aggregate row, comparable across two projections."""
    found: list[tuple[Any, ...]] = []
    async with database.session() as session:
        for table in (AnalyticsBucket, AnalyticsDurationBin, AnalyticsModelUsage):
            for row in (await session.execute(select(table))).scalars():
                values = {
                    c.name: getattr(row, c.key)
                    for c in table.__table__.columns
                    if c.name not in ("created_at", "updated_at")
                }
                sums = [getattr(row, c.key) for c in table.__table__.columns if not c.primary_key]
                # A row whose sums all went back to zero is the same as no row.
                if any(isinstance(v, int | float) and v for v in sums):
                    found.append((table.__tablename__, *sorted(values.items())))
    return sorted(found, key=str)


def poison(execution: str, seq: int) -> ExecutionEvent:
    """A valid event whose token count no database integer column holds."""
    output = llm_output(2**70, 1, 1)
    return entry(execution, seq, "step.succeeded", 20, step_id="a", attempt=1, output=output)


async def test_batches_count_exactly_as_one_event_at_a_time(database: Database) -> None:
    events = many_runs(12)
    for event in events:
        await apply(database, event)
    one_by_one = (await figures(database), await aggregate_rows(database))

    async with database.session() as session:
        await repository.clear_projections(session)
    # Shuffled, every event twice (a redelivery), cut into uneven batches: some hold
    # both deliveries of an entry, some an execution's end before its start.
    shuffled = events + events
    random.Random(7).shuffle(shuffled)
    applied = 0
    cut = 0
    for size in (1, 5, 17, 40, 33):
        outcomes = await apply_many(database, shuffled[cut : cut + size])
        applied += sum(o.applied for o in outcomes)
        cut += size
    assert cut == len(shuffled)
    assert applied == len(events)  # each entry counted once
    assert (await figures(database), await aggregate_rows(database)) == one_by_one


async def test_an_event_that_cannot_be_applied_fails_alone(database: Database) -> None:
    batcher = Batcher(database, size=50, linger=0.05)
    good = many_runs(3)
    bad = [*run_of("bad")[:2], poison("bad", 3)]
    try:
        answers = await asyncio.gather(
            *(batcher.submit(event) for event in [*good, *bad]), return_exceptions=True
        )
    finally:
        await batcher.close()
    failed = [a for a in answers if isinstance(a, BaseException)]
    assert len(failed) == 1
    assert answers[-1] is failed[0]
    found = await figures(database)
    # The three good runs and the started-but-unfinished bad one, nothing of the poison.
    assert found["executions"]["total"] == 4
    assert found["executions"]["succeeded"] == 2
    assert found["executions"]["failed"] == 1
    assert found["tokens"] == {"input": 20, "output": 10}


async def test_through_the_bus_in_batches_with_a_dead_letter(database: Database) -> None:
    good = many_runs(20)
    async with MemoryBus() as bus:
        batcher = Batcher(database)
        subscription = await bus.subscribe(
            consumer.TOPIC,
            consumer.GROUP,
            consumer.handler(bus, batcher),
            concurrency=consumer.CONCURRENCY,
            max_attempts=2,
            backoff=Backoff(initial=0.01),
        )
        try:
            for event in [*good, poison("e05", 9), *good[:8]]:  # the last ones again
                await bus.publish(
                    consumer.TOPIC,
                    CloudEvent(
                        source=consumer.SOURCE,
                        type=f"orchestrion.{event.event.type}",
                        data=event.model_dump(mode="json"),
                    ),
                )
            letters = await eventually(
                lambda: bus.dlq_list(consumer.TOPIC, consumer.GROUP), lambda found: found
            )
            assert len(letters) == 1
            assert letters[0].attempts == 2
            assert letters[0].event is not None
            assert letters[0].event.data["event"]["seq"] == 9
        finally:
            await subscription.stop()
            await batcher.close()
    found = await figures(database)
    assert found["executions"]["total"] == 20
    assert found["executions"]["failed"] == 5
    assert found["steps"] == {"total": 20, "failed": 5}
    assert found["tokens"] == {"input": 150, "output": 75}
