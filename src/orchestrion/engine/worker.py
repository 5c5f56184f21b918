"""Workers: claim engine tasks, run them concurrently, keep their leases alive.

A worker runs inside ``orchestrion up`` (embedded) or as ``orchestrion worker``
processes (distributed). It sleeps until a task is enqueued (an in-process event, or
PostgreSQL ``NOTIFY`` from any process), a timer falls due, or the poll interval
passes. While a task runs, a heartbeat renews its lease; a worker that dies stops
renewing, and after the lease expires another worker claims the task again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from sqlalchemy import select

from orchestrion.engine.models import Execution
from orchestrion.engine.runtime import Engine, Prepared
from orchestrion.engine.statuses import TERMINAL
from orchestrion.kernel.ids import new_id, utcnow
from orchestrion.kernel.observability import tracing
from orchestrion.kernel.queue import ClaimedTask, task_span
from orchestrion.kernel.queue.metrics import DEPTH_INTERVAL

logger = logging.getLogger("orchestrion.worker")


class Worker:
    """Runs up to ``concurrency`` engine tasks at a time until stopped."""

    def __init__(self, engine: Engine, *, concurrency: int = 8, poll_seconds: float = 1.0) -> None:
        self.engine = engine
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{new_id()[-12:]}"
        self._inflight: dict[str, tuple[ClaimedTask, asyncio.Task[None]]] = {}
        self._stopping = asyncio.Event()
        #: The last claim filled every free slot: more tasks may be due, so a slot that
        #: frees up claims again. Otherwise the queue was drained, and new tasks wake
        #: the loop themselves (an in-process event, or NOTIFY).
        self._backlog = False

    async def run(self) -> None:
        """Claim and run tasks until :meth:`stop`."""
        queue = self.engine.queue
        await queue.listen()
        heartbeat = asyncio.create_task(self._heartbeat())
        sampler = asyncio.create_task(self._sample_depth())
        try:
            while not self._stopping.is_set():
                free = self.concurrency - len(self._inflight)
                claimed: list[ClaimedTask] = []
                if free > 0:
                    try:
                        claimed = await queue.claim(
                            queue=self.engine.queue_name, owner=self.owner, limit=free
                        )
                    except Exception:
                        logger.exception("claiming tasks failed; retrying")
                        await asyncio.sleep(self.poll_seconds)
                        continue
                    self._backlog = len(claimed) >= free
                else:
                    # Woken while full (its slots taken by continued chains): whatever
                    # woke it waits for the next slot that frees.
                    self._backlog = True
                runs = [task for task in claimed if task.payload.get("kind") == "run"]
                started = await self._start(runs) if runs else {}
                for task in claimed:
                    if task.id in started and started[task.id] is None:
                        continue  # nothing to run (cancelled, paused, already recorded)
                    runner = asyncio.create_task(self._process(task, started.get(task.id)))
                    self._inflight[task.id] = (task, runner)
                if self._backlog and len(self._inflight) < self.concurrency:
                    continue  # there may be more due right now
                await queue.wait(queue=self.engine.queue_name, seconds=await self._idle_wait())
        finally:
            for background in (heartbeat, sampler):
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
            await self._drain()

    async def _start(self, runs: list[ClaimedTask]) -> dict[str, Prepared | None]:
        try:
            return await self.engine.start_claimed(runs, owner=self.owner)
        except Exception:
            # Their leases run out and they are claimed again.
            logger.exception("starting %d claimed attempts failed", len(runs))
            return dict.fromkeys((task.id for task in runs), None)

    async def _idle_wait(self) -> float:
        # Local enqueues wake us at commit and PostgreSQL NOTIFY wakes us for other
        # processes'; only future tasks (timers, retries) need a deadline, and those
        # enqueued elsewhere are found within the poll interval.
        due = self.engine.queue.next_local_due(self.engine.queue_name)
        if due is None:
            return self.poll_seconds
        return max(0.0, min(self.poll_seconds, (due - utcnow()).total_seconds()))

    async def _process(self, task: ClaimedTask, prepared: Prepared | None = None) -> None:
        # The task's own slot is free again once it is recorded: offer it, and any idle
        # ones, for the attempts that recording schedules (continuations).
        capacity = max(1, self.concurrency - len(self._inflight) + 1)
        # In the task's span, so that the failure's log line carries its trace and ids.
        with task_span(task, self.engine.queue_name) as span:
            try:
                if prepared is not None:
                    follow = await self.engine.run_prepared(
                        prepared, owner=self.owner, capacity=capacity
                    )
                else:
                    follow = await self.engine.process(task, owner=self.owner, capacity=capacity)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The lease runs out and the task is claimed again: at-least-once.
                logger.exception("task %s (%s) failed", task.id, task.payload.get("kind"))
                tracing.fail(span, f"{type(exc).__name__}: {exc}")
                follow = []
            finally:
                self._inflight.pop(task.id, None)
        for next_attempt in follow:
            runner = asyncio.create_task(self._process(next_attempt.task, next_attempt))
            self._inflight[next_attempt.task.id] = (next_attempt.task, runner)
        if self._backlog and len(self._inflight) < self.concurrency:
            # A slot is free and tasks were left in the queue: claim them. (A chain
            # continued above, or a drained queue, needs no claim: that round trip
            # per step was a third of a queued step's statements.)
            self.engine.queue.wake(self.engine.queue_name)

    async def _heartbeat(self) -> None:
        interval = max(0.5, min(2.0, self.engine.queue.lease.total_seconds() / 3))
        while True:
            await asyncio.sleep(interval)
            if not self._inflight:
                continue
            try:
                held = await self.engine.queue.renew(
                    owner=self.owner, task_ids=list(self._inflight)
                )
                await self._cancel_stopped()
            except Exception:
                logger.exception("heartbeat failed")
                continue
            for task_id in list(self._inflight):
                if task_id not in held and task_id in self._inflight:
                    # Usually the task just completed; a real loss is harmless too
                    # (outcomes are recorded once), so this is not a warning.
                    logger.debug("lease lost or released for task %s", task_id)

    async def _sample_depth(self) -> None:
        """Keep the queue depth gauge current (the backlog a scrape reports)."""
        while True:
            try:
                await self.engine.queue.sample_depth((self.engine.queue_name,))
            except Exception:
                logger.warning("reading the queue depth failed", exc_info=True)
            await asyncio.sleep(DEPTH_INTERVAL)

    async def _cancel_stopped(self) -> None:
        """Stop local attempts of executions cancelled by another process."""
        running = self.engine.running_executions()
        if not running:
            return
        async with self.engine.database.session() as session:
            rows = await session.execute(
                select(Execution.id).where(
                    Execution.id.in_(running), Execution.status.in_(TERMINAL)
                )
            )
            stopped = set(rows.scalars())
        self.engine.cancel_local(stopped)

    def stop(self) -> None:
        """Ask :meth:`run` to return once the tasks in flight finish."""
        self._stopping.set()
        self.engine.queue.wake(self.engine.queue_name)

    async def _drain(self) -> None:
        runners = [runner for _, runner in self._inflight.values()]
        if runners:
            await asyncio.wait(runners, timeout=10)
        for runner in runners:
            runner.cancel()
