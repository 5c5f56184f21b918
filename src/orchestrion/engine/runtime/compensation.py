"""Compensation: when an execution fails, completed steps' ``compensate`` bodies run,
newest completion first, one task each; the execution fails once they all ran."""

from __future__ import annotations

from orchestrion.engine.events import ExecutionCompensating
from orchestrion.engine.runtime.core import TransitionCore
from orchestrion.engine.statuses import ExecutionStatus, StepStatus, TaskKind


class Compensation(TransitionCore):
    """Starting compensation (the tasks run in :mod:`.tasks`)."""

    async def start_compensation(self) -> None:
        """Run the ``compensate`` bodies of completed steps, newest first, then fail."""
        done = [
            state
            for state in self.states.values()
            if state.status == StepStatus.SUCCEEDED and self.step(state.step_id).compensate
        ]
        done.sort(key=lambda s: s.completed_seq or 0, reverse=True)
        if not done:
            await self.finish(ExecutionStatus.FAILED)
            return
        order = [state.step_id for state in done]
        self.emit(ExecutionCompensating(steps=order))
        await self.enqueue(TaskKind.COMPENSATE, order[0], extra={"order": order, "position": 0})
