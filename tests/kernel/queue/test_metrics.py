"""The queue metrics move: backlog by queue, dead letters, and first-claim latency."""

from __future__ import annotations

import uuid
from datetime import timedelta

from prometheus_client import REGISTRY

from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.ids import utcnow
from orchestrion.kernel.queue import TaskQueue


def value(name: str, **labels: str) -> float | None:
    """A sample of the process's registry (None: no such series)."""
    return REGISTRY.get_sample_value(name, labels)


async def test_depth_counts_due_unleased_tasks_and_dead_letters(database: Database) -> None:
    name = f"q{uuid.uuid4().hex[:8]}"
    queue = TaskQueue(database, max_attempts=1)
    # Leases that have always run out: what it claims is due again at once, as after a crash.
    crashing = TaskQueue(database, lease=timedelta(seconds=-1), max_attempts=1)
    async with database.session() as session:
        for n in range(3):
            await queue.enqueue(session, queue=name, payload={"n": n}, key=f"{name}-{n}")
        # Not due yet: not part of the backlog.
        await queue.enqueue(
            session,
            queue=name,
            payload={},
            key=f"{name}-later",
            run_at=utcnow() + timedelta(hours=1),
        )
    await queue.sample_depth((name,))
    assert value("orchestrion_queue_depth", queue=name) == 3
    assert value("orchestrion_queue_depth", queue=name + ".dead") == 0

    before = value("orchestrion_queue_claim_latency_seconds_count", queue=name) or 0
    [first] = await crashing.claim(queue=name, owner="w1", limit=1)
    assert value("orchestrion_queue_claim_latency_seconds_count", queue=name) == before + 1
    # Its lease ran out, so it is due again; a second delivery would pass max_attempts=1:
    # it is dead-lettered instead of claimed.
    dead_before = value("orchestrion_queue_dead_lettered_total", queue=name) or 0
    claimed = await queue.claim(queue=name, owner="w2", limit=3)
    assert first.id not in {task.id for task in claimed}
    assert value("orchestrion_queue_dead_lettered_total", queue=name) == dead_before + 1
    # Redeliveries are not first claims: only the two tasks claimed for the first time count.
    assert value("orchestrion_queue_claim_latency_seconds_count", queue=name) == before + 3

    async with database.session() as session:
        for task in claimed:
            assert await queue.complete(session, task_id=task.id, owner="w2")
    await queue.sample_depth((name,))
    assert value("orchestrion_queue_depth", queue=name) == 0
    assert value("orchestrion_queue_depth", queue=name + ".dead") == 1
