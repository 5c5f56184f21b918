"""The transition of an execution: every concern joined, and how an execution ends."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete

from orchestrion.engine.events import (
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionRunning,
    ExecutionSucceeded,
    ExecutionWaiting,
    StepCancelled,
)
from orchestrion.engine.expressions import ExpressionError, evaluate
from orchestrion.engine.flags import output_flags
from orchestrion.engine.models import Wait
from orchestrion.engine.runtime.children import Children
from orchestrion.engine.runtime.compensation import Compensation
from orchestrion.engine.runtime.concurrency import Concurrency
from orchestrion.engine.runtime.flags import flags_pending
from orchestrion.engine.runtime.limits import output_refusal
from orchestrion.engine.runtime.recording import Recording
from orchestrion.engine.runtime.scheduling import Scheduling
from orchestrion.engine.runtime.waits import Waits
from orchestrion.engine.statuses import (
    STEP_DONE,
    STEP_TERMINAL,
    TERMINAL,
    ExecutionStatus,
    StepStatus,
)
from orchestrion.kernel.ids import utcnow


class Transition(Scheduling, Recording, Waits, Children, Compensation, Concurrency):
    """One transaction's view of an execution (see :mod:`.core`), and its end."""

    async def settle(self) -> None:
        """Finish, fail or report waiting, from the step states."""
        execution = self.execution
        if execution.status in TERMINAL or execution.status == ExecutionStatus.PAUSED:
            return
        counts = self._counts()
        if execution.error is None and counts[StepStatus.FAILED]:
            failed = next(s for s in self.states.values() if s.status == StepStatus.FAILED)
            execution.error = {"step_id": failed.step_id, **(failed.error or {})}
            await self._stop_open_steps()
            await self.start_compensation()
            return
        if execution.error is not None:
            return  # compensating; the compensation tasks finish the run
        if sum(counts[status] for status in STEP_DONE) == len(self.states):
            await self._succeed()
            return
        busy = bool(counts[StepStatus.QUEUED] or counts[StepStatus.RUNNING])
        waiting = bool(counts[StepStatus.WAITING])
        event: ExecutionWaiting | ExecutionRunning = (
            ExecutionWaiting() if waiting and not busy else ExecutionRunning()
        )
        if event.execution_status != execution.status:
            execution.status = event.execution_status
            self.emit(event)

    def _counts(self) -> Mapping[str, int]:
        """The step states by status (kept up to date, see :mod:`.progress`)."""
        progress = self.progress()
        if progress is not None:
            return progress.counts
        return Counter(state.status for state in self.states.values())

    async def _stop_open_steps(self) -> None:
        await self.drop_tasks()
        await self.session.execute(delete(Wait).where(Wait.execution_id == self.execution.id))
        for state in self.states.values():
            if state.status not in STEP_TERMINAL:
                state.status = StepStatus.CANCELLED
                state.finished_at = utcnow()
                self.emit(StepCancelled(step_id=state.step_id))
        await self.cancel_children()

    async def _succeed(self) -> None:
        keys = output_flags(self.definition)
        if keys and await flags_pending(self, None, keys):
            return  # a worker evaluates them, then settles again
        try:
            outputs = evaluate(self.definition.outputs, self.context())
        except ExpressionError as exc:
            self.execution.error = {"message": f"outputs: {exc}"}
            await self.finish(ExecutionStatus.FAILED)
            return
        refusal = output_refusal(self.parts.limits, outputs, what="the execution's outputs")
        if refusal is not None:
            self.execution.error = {"message": refusal}
            await self.finish(ExecutionStatus.FAILED)
            return
        self.execution.outputs = outputs
        await self.finish(ExecutionStatus.SUCCEEDED)

    async def finish(self, status: ExecutionStatus) -> None:
        """End the execution (succeeded or failed) and tell a parent waiting on it."""
        execution = self.execution
        execution.status = status
        execution.finished_at = utcnow()
        ended: Any
        if status == ExecutionStatus.SUCCEEDED:
            ended = ExecutionSucceeded(outputs=execution.outputs)
        else:
            ended = ExecutionFailed(error=execution.error or None)
        self.emit(ended)
        await self._ended()

    async def cancel(self, *, by: str | None) -> None:
        """Stop everything; running steps' results will be discarded."""
        await self._stop_open_steps()
        self.execution.status = ExecutionStatus.CANCELLED
        self.execution.finished_at = utcnow()
        self.emit(ExecutionCancelled(by=by))
        await self._ended()

    async def _ended(self) -> None:
        await self.release_slot()
        if self.execution.parent_execution_id:
            await self.tell_parent()
