"""Waits: a step that waits for a timer, an approval, an event or a child execution.

A wait is a row (``wf_waits``) plus, for timers and timeouts, a task due at that time.
The kinds are the runtime's (:class:`~orchestrion.engine.statuses.WaitKind`); a step
type declares which it may enter. An event that arrived before its step waited is
taken at once; a child is started once the wait exists (it may finish at once).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from orchestrion.engine.definition import StepDefinition
from orchestrion.engine.events import StepWaiting
from orchestrion.engine.models import Signal, Wait
from orchestrion.engine.outcomes import Outcome, Succeeded, Waiting
from orchestrion.engine.runtime.core import NO_ITERATION, TransitionCore, task_key
from orchestrion.engine.statuses import StepStatus, TaskKind, WaitKind


class Waits(TransitionCore):
    """Entering and ending waits."""

    async def wait(
        self, step: StepDefinition, index: int | None, attempt: int, wait: Waiting
    ) -> None:
        """Enter ``wait`` for an attempt (or iteration) of ``step``."""
        state = self.states[step.id]
        iteration = NO_ITERATION if index is None else index
        if wait.kind == WaitKind.EVENT:
            signal = await self._take_signal(str(wait.data.get("event")), step.id)
            if signal is not None:
                await self.record(step, index, attempt, Succeeded(signal))
                return
        row = Wait(
            execution_id=self.execution.id,
            step_id=step.id,
            iteration=iteration,
            kind=str(wait.kind),
            attempt=attempt,
            data=wait.data,
            timeout_at=wait.timeout_at,
        )
        self.session.add(row)
        self.emit(StepWaiting(step_id=step.id, index=index, kind=wait.kind, details=_public(wait)))
        await self.session.flush()
        if index is None:
            state.status = StepStatus.WAITING
        else:
            await self._refresh_iterations_status(step)
        if wait.kind == WaitKind.CHILD:
            # The child may finish inside start_child (instant steps only) and resolve
            # this wait at once, so the wait must exist before the child starts.
            child = await self.start_child(step=step, index=index, spec=wait.data)
            open_wait = await self.session.get(Wait, (self.execution.id, step.id, iteration))
            if not isinstance(child, str):
                if open_wait is not None:
                    await self.resolve_wait(open_wait, child)
                return
            if open_wait is not None:
                open_wait.child_execution_id = child
        if wait.resume_at is not None:
            await self.enqueue(
                TaskKind.RESUME, step.id, index=index, attempt=attempt, run_at=wait.resume_at
            )
        if wait.timeout_at is not None:
            await self.enqueue(
                TaskKind.TIMEOUT, step.id, index=index, attempt=attempt, run_at=wait.timeout_at
            )

    async def _refresh_iterations_status(self, step: StepDefinition) -> None:
        """An iterated step waits only when every unfinished iteration waits."""
        state = self.states[step.id]
        if state.status not in (StepStatus.RUNNING, StepStatus.WAITING):
            return
        finished = len(await self.results(step.id))
        unfinished = state.launched - finished
        waiting = len(await self.waits(step_id=step.id))
        all_launched = state.launched >= len(state.items or []) or unfinished >= (
            step.concurrency or unfinished
        )
        busy = not (unfinished and waiting >= unfinished and all_launched)
        state.status = StepStatus.RUNNING if busy else StepStatus.WAITING

    async def _take_signal(self, name: str, step_id: str) -> Any:
        # Outcomes may be applied without autoflush (scheduling, grouped recording): a
        # signal another wait of this transaction took must not be taken twice.
        await self.session.flush()
        row = (
            await self.session.execute(
                select(Signal)
                .where(
                    Signal.execution_id == self.execution.id,
                    Signal.name == name,
                    Signal.consumed_by.is_(None),
                )
                .order_by(Signal.created_at)
                .limit(1)
            )
        ).scalar_one_or_none()
        if row is None:
            return None
        row.consumed_by = step_id
        return {"event": name, "data": row.data}

    async def resolve_wait(self, wait: Wait, outcome: Outcome) -> None:
        """End a wait with ``outcome`` and apply it to its step."""
        step = self.step(wait.step_id)
        index = None if wait.iteration == NO_ITERATION else wait.iteration
        await self.session.delete(wait)
        await self.parts.queue.delete_key(
            self.session,
            task_key(self.execution.id, TaskKind.TIMEOUT, step.id, index, wait.attempt),
        )
        if self.states[step.id].status == StepStatus.WAITING:
            self.states[step.id].status = StepStatus.RUNNING
        await self.record(step, index, wait.attempt, outcome)

    async def waits(self, *, step_id: str | None = None, kind: str | None = None) -> list[Wait]:
        """This execution's open waits, oldest first."""
        await self.session.flush()  # waits ended or entered in this transaction count
        stmt = select(Wait).where(Wait.execution_id == self.execution.id)
        if step_id is not None:
            stmt = stmt.where(Wait.step_id == step_id)
        if kind is not None:
            stmt = stmt.where(Wait.kind == kind)
        return list((await self.session.execute(stmt.order_by(Wait.iteration))).scalars())


def _public(wait: Waiting) -> dict[str, Any]:
    data: dict[str, Any] = {k: v for k, v in wait.data.items() if k != "inputs"}
    if wait.timeout_at is not None:
        data["timeout_at"] = wait.timeout_at.isoformat()
    if wait.resume_at is not None:
        data["resume_at"] = wait.resume_at.isoformat()
    return data
