"""Control of one execution from the API: cancel, pause, resume, retry, approve, signal.

Each runs in the caller's transaction and raises the API's errors (404, 409, 422; 413
for data over ``max_input_bytes``; 429 when a retry would pass the tenant's active
executions).
"""

from __future__ import annotations

from typing import Any

import anyio
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine.events import (
    ExecutionPaused,
    ExecutionResumed,
    ExecutionRetried,
    SignalReceived,
    StepApproved,
    StepRejected,
    StepSucceeded,
)
from orchestrion.engine.models import Signal, StepResult
from orchestrion.engine.outcomes import Failed, Outcome, Succeeded
from orchestrion.engine.runtime.core import NO_ITERATION
from orchestrion.engine.runtime.limits import check_active, check_inputs
from orchestrion.engine.runtime.parts import EngineParts
from orchestrion.engine.runtime.starting import schema_errors
from orchestrion.engine.runtime.transition import Transition
from orchestrion.engine.statuses import TERMINAL, ExecutionStatus, StepStatus, WaitKind
from orchestrion.kernel.errors import Conflict, NotFound, ValidationFailed


class Control:
    """What a user may do to a running (or ended) execution."""

    def __init__(self, parts: EngineParts) -> None:
        self.parts = parts

    async def _open(self, session: AsyncSession, execution_id: str) -> Transition:
        transition = await Transition.open(self.parts, session, execution_id)
        if transition is None:
            raise NotFound(f"execution {execution_id} not found")
        return transition

    async def _open_running(self, session: AsyncSession, execution_id: str) -> Transition:
        transition = await self._open(session, execution_id)
        if transition.execution.status in TERMINAL:
            raise Conflict(f"execution is already {transition.execution.status}")
        return transition

    async def cancel(self, session: AsyncSession, *, execution_id: str, by: str | None) -> None:
        """Cancel a running, waiting or paused execution (409 once it has ended)."""
        transition = await self._open_running(session, execution_id)
        await transition.cancel(by=by)

    async def pause(self, session: AsyncSession, *, execution_id: str, by: str | None) -> None:
        """Stop scheduling new steps; running ones finish and are recorded."""
        transition = await self._open(session, execution_id)
        execution = transition.execution
        if execution.status not in (ExecutionStatus.RUNNING, ExecutionStatus.WAITING) or (
            execution.error
        ):
            raise Conflict(f"cannot pause an execution that is {execution.status}")
        # Queued attempts are parked, not dropped: resume un-parks them. Waits and
        # timers stay, so an approval may still arrive while paused.
        await transition.park_tasks(parked=True)
        execution.status = ExecutionStatus.PAUSED
        transition.emit(ExecutionPaused(by=by))

    async def resume(self, session: AsyncSession, *, execution_id: str, by: str | None) -> None:
        """Continue a paused execution."""
        transition = await self._open(session, execution_id)
        if transition.execution.status != ExecutionStatus.PAUSED:
            raise Conflict(f"cannot resume an execution that is {transition.execution.status}")
        transition.execution.status = ExecutionStatus.RUNNING
        transition.emit(ExecutionResumed(by=by))
        await transition.park_tasks(parked=False)
        await transition.advance()

    async def retry(self, session: AsyncSession, *, execution_id: str, by: str | None) -> None:
        """Run a failed or cancelled execution again from where it stopped.

        Succeeded steps and iterations are kept, and so are the parts their failed
        attempts recorded in the journal (a loop's finished iterations).
        """
        transition = await self._open(session, execution_id)
        execution = transition.execution
        if execution.status not in (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED):
            raise Conflict(
                f"only failed or cancelled executions can be retried, not {execution.status}"
            )
        if execution.parent_execution_id is None:  # it becomes active again (429 if full)
            await check_active(session, self.parts.limits, tenant_id=execution.tenant_id)
        kept: list[tuple[str, StepResult]] = []
        for state in transition.states.values():
            if state.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED):
                continue
            await session.execute(
                delete(StepResult).where(
                    StepResult.execution_id == execution.id,
                    StepResult.step_id == state.step_id,
                    StepResult.status == StepStatus.FAILED,
                )
            )
            state.status = StepStatus.PENDING
            state.error = None
            state.attempts = 0
            state.launched = 0
            state.items = None
            # A step that succeeded after the execution had failed is reused as it is.
            late = await session.get(StepResult, (execution.id, state.step_id, NO_ITERATION))
            if late is not None and late.status == StepStatus.SUCCEEDED:
                kept.append((state.step_id, late))
        execution.status = ExecutionStatus.RUNNING
        execution.error = None
        execution.outputs = None
        execution.finished_at = None
        transition.emit(ExecutionRetried(by=by))
        for step_id, late in kept:
            state = transition.states[step_id]
            state.status = StepStatus.SUCCEEDED
            state.output = late.output
            state.attempts = late.attempt
            state.finished_at = late.recorded_at
            state.completed_seq = transition.emit(
                StepSucceeded(step_id=step_id, output=late.output, attempt=late.attempt)
            )
        await transition.advance()

    async def approve(
        self,
        session: AsyncSession,
        *,
        execution_id: str,
        step_id: str,
        approved: bool,
        data: dict[str, Any],
        by: str,
        index: int | None = None,
    ) -> None:
        """Approve or reject a waiting ``approval`` wait (of a step, or one iteration)."""
        check_inputs(self.parts.limits, data, what="the approval data", loc="data")
        transition = await self._open_running(session, execution_id)
        waits = await transition.waits(step_id=step_id, kind=WaitKind.APPROVAL)
        if index is not None:
            waits = [w for w in waits if w.iteration == index]
        if not waits:
            raise Conflict(f"step {step_id!r} is not waiting for an approval")
        wait = waits[0]
        if approved:
            schema = wait.data.get("schema") or {}
            errors = await anyio.to_thread.run_sync(  # CPU work: off the event loop
                lambda: schema_errors(schema, data, where="data")
            )
            if errors:
                raise ValidationFailed(
                    "the approval data do not match the step's schema", errors=errors
                )
        iteration = None if wait.iteration == NO_ITERATION else wait.iteration
        decision = {"approved": approved, "data": data, "by": by}
        kind = StepApproved if approved else StepRejected
        transition.emit(kind(step_id=step_id, index=iteration, by=by, data_=data))
        outcome: Outcome = Succeeded(decision)
        if not approved:
            outcome = Failed(f"rejected by {by}", retryable=False, details=decision)
        await transition.resolve_wait(wait, outcome)
        await transition.advance()

    async def signal(
        self, session: AsyncSession, *, execution_id: str, name: str, data: Any
    ) -> bool:
        """Deliver an event; True when a waiting step took it, False when it is kept."""
        check_inputs(self.parts.limits, data, what="the signal's data", loc="data")
        transition = await self._open_running(session, execution_id)
        transition.emit(SignalReceived(name=name, data_=data))
        for wait in await transition.waits(kind=WaitKind.EVENT):
            if wait.data.get("event") == name:
                session.add(
                    Signal(
                        execution_id=execution_id, name=name, data=data, consumed_by=wait.step_id
                    )
                )
                await transition.resolve_wait(wait, Succeeded({"event": name, "data": data}))
                await transition.advance()
                return True
        session.add(Signal(execution_id=execution_id, name=name, data=data))
        return False
