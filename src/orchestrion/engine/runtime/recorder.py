"""Recording outcomes: those of one execution that end together share one transaction.

A fan-out's branches finish at about the same time, and each outcome used to be its
own transaction (lock the execution, load its step states, write). Here the first
outcome of an execution to arrive writes; the ones that arrive while it waits for the
database (another transaction of the execution, SQLite's writer lock, PostgreSQL's row
lock) join it, and are written in the same transaction, one after the other, exactly as
if each had been alone: the task completed, the outcome recorded, the next steps
scheduled. They commit together or not at all, so a crash leaves every one of their
tasks leased, to be run again once the lease runs out, as before.

A transaction that fails takes no one down with it: each outcome it held is then
recorded alone, and a refused result (a data error) fails only its own step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from orchestrion.engine.outcomes import Outcome
from orchestrion.engine.runtime.parts import EngineParts
from orchestrion.engine.runtime.steps import Prepared
from orchestrion.engine.runtime.transition import Transition
from orchestrion.engine.statuses import TERMINAL


@dataclass
class _Outcome:
    prepared: Prepared
    outcome: Outcome
    capacity: int
    written: asyncio.Future[list[Prepared]]


class _WriteAlone(Exception):
    """The shared transaction failed: record this outcome in a transaction of its own."""


class Recorder:
    """Writes attempts' outcomes, grouping those of one execution and worker."""

    def __init__(self, parts: EngineParts) -> None:
        self.parts = parts
        #: Outcomes waiting for a transaction, by (execution, owner); the first is the writer.
        self._open: dict[tuple[str, str], list[_Outcome]] = {}
        #: The transaction in progress, by (execution, owner): the next one waits for it.
        self._writing: dict[tuple[str, str], asyncio.Future[None]] = {}

    async def record(
        self, prepared: Prepared, owner: str, outcome: Outcome, *, capacity: int
    ) -> list[Prepared]:
        """Record one attempt's outcome (with others of its execution when they come
        together); returns the follow-up attempts this worker was given (``capacity``)."""
        key = (prepared.call.execution_id, owner)
        entry = _Outcome(prepared, outcome, capacity, asyncio.get_running_loop().create_future())
        batch = self._open.get(key)
        if batch is not None:
            batch.append(entry)
            try:
                return await entry.written
            except _WriteAlone:
                return await self.write([entry], owner)
        batch = self._open[key] = [entry]
        previous = self._writing.get(key)
        writing = self._writing[key] = asyncio.get_running_loop().create_future()
        try:
            if previous is not None:
                await previous
            else:
                # One turn of the loop for outcomes that ended with this one to join it:
                # the transaction may not yield again (on SQLite it can run whole on the
                # loop's thread).
                await asyncio.sleep(0)
            return await self._write_batch(key, batch, owner)
        finally:
            if self._open.get(key) is batch:
                del self._open[key]
            for follower in batch[1:]:
                if not follower.written.done():
                    follower.written.set_exception(_WriteAlone())
            writing.set_result(None)
            if self._writing.get(key) is writing:
                del self._writing[key]

    async def _write_batch(
        self, key: tuple[str, str], batch: list[_Outcome], owner: str
    ) -> list[Prepared]:
        try:
            follow = await self.write(batch, owner, close=lambda: self._close(key, batch))
        except Exception:
            if len(batch) == 1:
                raise
            for follower in batch[1:]:
                follower.written.set_exception(_WriteAlone())
            return await self.write(batch[:1], owner)
        for follower in batch[1:]:
            follower.written.set_result([])
        return follow

    def _close(self, key: tuple[str, str], batch: list[_Outcome]) -> None:
        if self._open.get(key) is batch:
            del self._open[key]

    async def write(
        self, batch: list[_Outcome], owner: str, *, close: Callable[[], None] | None = None
    ) -> list[Prepared]:
        """One transaction: complete the tasks, record the outcomes in order, schedule
        what follows. ``close`` is called once the execution is locked: outcomes that
        arrive later wait for the next transaction."""
        execution_id = batch[0].prepared.call.execution_id
        # Small and bounded: its statements, and its BEGIN and COMMIT when neither has to
        # wait, may run on the event loop's thread (SQLite).
        async with self.parts.database.session(whole_on_loop=True) as session:
            # Lock the execution before touching the tasks: every transaction takes
            # the execution first, so PostgreSQL never sees a lock-order deadlock.
            transition = await Transition.open(self.parts, session, execution_id, kept=True)
            if close is not None:
                close()
            task_ids = [entry.prepared.task.id for entry in batch]
            await self.parts.queue.complete_many(session, task_ids=task_ids, owner=owner)
            if transition is None:
                return []
            # Each outcome beyond the first frees its own worker slot as well.
            capacity = max(entry.capacity for entry in batch) + len(batch) - 1
            transition.claim_for = owner if capacity > 0 else None
            transition.claim_limit = capacity
            # Changes are flushed once at commit (or where a query needs them), not
            # before each outcome's statements: one UPDATE of the execution, one of
            # the step states and one INSERT of the events for the whole group.
            with session.no_autoflush:
                for entry in batch:
                    prepared = entry.prepared
                    step, index, attempt = prepared.step, prepared.index, prepared.attempt
                    execution = transition.execution
                    if execution.status in TERMINAL or execution.error is not None:
                        # Too late to change this run, but what was paid for is kept
                        # for a retry.
                        await transition.keep_late(step, index, attempt, entry.outcome)
                        continue
                    await transition.record(step, index, attempt, entry.outcome)
                    await transition.advance()
            return list(transition.prepared)
