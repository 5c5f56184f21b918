"""The worker's side: claimed tasks started, run and recorded.

Each step attempt goes through three short transactions at most: *start* (append
``step.started``), *run* (no transaction: the step type's ``run``, which may call the
network), *record* (the outcome, the next tasks, the new status; one transaction,
shared by the outcomes of one execution that end together: see :mod:`.recorder`). A
crash between *start* and *record* leaves the task leased; its lease expires and a
worker runs the attempt again. Outcomes are recorded under a unique key, so a step
completes once whatever races happen. A result the database refuses (a data error, not
a lost connection) fails the step once instead: run again, it would be refused again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DataError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine.definition import StepDefinition
from orchestrion.engine.events import CompensationFailed, StepCompensated
from orchestrion.engine.models import StepResult, Wait
from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Succeeded
from orchestrion.engine.runtime.core import NO_ITERATION
from orchestrion.engine.runtime.flags import resolve_flags
from orchestrion.engine.runtime.limits import setting
from orchestrion.engine.runtime.parts import EngineParts, TaskHandler
from orchestrion.engine.runtime.recorder import Recorder
from orchestrion.engine.runtime.steps import Prepared
from orchestrion.engine.runtime.transition import Transition
from orchestrion.engine.statuses import TERMINAL, ExecutionStatus, TaskKind
from orchestrion.kernel.observability import tracing
from orchestrion.kernel.queue import PARKED, ClaimedTask, DeadLetter

logger = logging.getLogger("orchestrion.engine")


class TaskRunner:
    """Carries out the engine's tasks (and hands other kinds to their handlers)."""

    def __init__(self, parts: EngineParts, handlers: Mapping[str, TaskHandler]) -> None:
        self.parts = parts
        self.handlers = dict(handlers)
        self.recorder = Recorder(parts)

    async def process(self, task: ClaimedTask, *, owner: str, capacity: int = 0) -> list[Prepared]:
        """Carry out one claimed task; returns up to ``capacity`` follow-up attempts the
        worker has been given (claimed and started) and should run next."""
        kind = str(task.payload.get("kind"))
        handler = self.handlers.get(kind)
        if handler is not None:
            await handler(task, owner)
        elif kind == TaskKind.RUN:
            return await self.run(task, owner, capacity=capacity)
        elif kind in (TaskKind.RESUME, TaskKind.TIMEOUT):
            await self._timer(task, owner)
        elif kind == TaskKind.COMPENSATE:
            await self._compensate(task, owner)
        elif kind == TaskKind.FLAGS:
            await resolve_flags(self.parts, task, owner)
        else:
            async with self.parts.database.session() as session:
                await self.parts.queue.complete(session, task_id=task.id, owner=owner)
        return []

    async def start_claimed(
        self, tasks: list[ClaimedTask], *, owner: str
    ) -> dict[str, Prepared | None]:
        """Start claimed ``run`` attempts, one transaction per execution (a fan-out's
        branches start together); by task id, None when there is nothing to run."""
        by_execution: dict[str, list[ClaimedTask]] = {}
        for task in tasks:
            by_execution.setdefault(str(task.payload["execution_id"]), []).append(task)
        started: dict[str, Prepared | None] = {}
        for execution_id, group in by_execution.items():
            async with self.parts.database.session(whole_on_loop=True) as session:
                transition = await Transition.open(self.parts, session, execution_id, kept=True)
                recorded = await _recorded(session, execution_id, group)
                for task in group:
                    started[task.id] = await self._start_one(
                        session, transition, task, owner, recorded
                    )
        return started

    async def _start_one(
        self,
        session: AsyncSession,
        transition: Transition | None,
        task: ClaimedTask,
        owner: str,
        recorded: set[tuple[str, int]],
    ) -> Prepared | None:
        payload = task.payload
        index: int | None = payload.get("index")
        attempt = int(payload["attempt"])
        queue = self.parts.queue
        if transition is not None and transition.execution.status == ExecutionStatus.PAUSED:
            # Claimed just before the pause committed: park it with the others.
            await queue.release(session, task_id=task.id, owner=owner, run_at=PARKED)
            return None
        if transition is None or not transition.active:
            await queue.complete(session, task_id=task.id, owner=owner)
            return None
        step = transition.step(payload["step_id"])
        iteration = NO_ITERATION if index is None else index
        if (step.id, iteration) in recorded:
            await queue.complete(session, task_id=task.id, owner=owner)
            return None
        transition.start_attempt(step, index=index, attempt=attempt)
        call = transition.call(step, index=index, attempt=attempt)
        return Prepared(task=task, step=step, index=index, attempt=attempt, call=call)

    async def run(
        self, task: ClaimedTask, owner: str, *, capacity: int = 0, prepared: Prepared | None = None
    ) -> list[Prepared]:
        """Start (unless ``prepared``), run and record one attempt."""
        if prepared is None:
            prepared = (await self.start_claimed([task], owner=owner))[task.id]
        if prepared is None:
            return []
        step, call = prepared.step, prepared.call
        with tracing.span(
            f"step {step.id}",
            attributes={
                "orchestrion.execution_id": call.execution_id,
                "orchestrion.step.id": step.id,
                "orchestrion.step.type": step.type,
                "orchestrion.step.attempt": prepared.attempt,
                "orchestrion.step.index": prepared.index,
            },
        ) as attempt:
            outcome = await self._run_tracked(call.execution_id, step, call)
            _trace_outcome(attempt, outcome)
        if outcome is None:
            return []  # cancelled: the cancel already settled the step
        try:
            return await self._record(prepared, owner, outcome, capacity=capacity)
        except Exception as exc:
            if not _refused(exc):
                raise  # e.g. the database went away: the lease runs out, a worker retries
            logger.exception("the result of step %s could not be stored", step.id)
            first_line = (str(exc).splitlines() or [""])[0][:300]
            failure = Failed(
                f"the step's result could not be stored ({type(exc).__name__}: {first_line})",
                retryable=False,
            )
            return await self._record(prepared, owner, failure, capacity=capacity)

    async def _record(
        self, prepared: Prepared, owner: str, outcome: Outcome, *, capacity: int
    ) -> list[Prepared]:
        return await self.recorder.record(prepared, owner, outcome, capacity=capacity)

    async def bury(self, dead: list[DeadLetter]) -> None:
        """Tasks given up on (``max_task_attempts``): fail the steps (or waits) they
        served, so their executions end instead of waiting for a task that is gone."""
        for letter in dead:
            payload = letter.payload
            if payload.get("kind") not in _BURIED or "execution_id" not in payload:
                continue  # another owner's kind (e.g. a schedule's): logged by the queue
            message = (
                f"the step's task was handed to workers {letter.attempts} times without "
                f"finishing, the limit (max_task_attempts, {setting('max_task_attempts')})"
            )
            async with self.parts.database.session() as session:
                transition = await Transition.open(self.parts, session, payload["execution_id"])
                if transition is not None and transition.execution.status not in TERMINAL:
                    await self._bury_one(session, transition, payload, message)

    async def _bury_one(
        self, session: AsyncSession, transition: Transition, payload: dict[str, Any], message: str
    ) -> None:
        kind = payload["kind"]
        if kind == TaskKind.COMPENSATE:
            await transition.finish(ExecutionStatus.FAILED)
            return
        if transition.execution.error is not None:
            return  # failing already: its open steps were stopped
        step = transition.step(payload["step_id"])
        index: int | None = payload.get("index")
        iteration = NO_ITERATION if index is None else index
        failure = Failed(message, retryable=False)
        if kind == TaskKind.RUN:
            if await session.get(StepResult, (transition.execution.id, step.id, iteration)):
                return
            await transition.record(step, index, int(payload.get("attempt", 1)), failure)
        else:  # a timer: end the wait it would have ended
            wait = await session.get(Wait, (transition.execution.id, step.id, iteration))
            if wait is None or wait.attempt != payload.get("attempt"):
                return
            await transition.resolve_wait(wait, failure)
        await transition.advance()

    async def _run_tracked(
        self, execution_id: str, step: StepDefinition, call: StepCall
    ) -> Outcome | None:
        running_by_execution = self.parts.tracker.running
        running = asyncio.get_running_loop().create_task(self.parts.executor.run(step, call))
        running_by_execution.setdefault(execution_id, set()).add(running)
        try:
            return await running
        except asyncio.CancelledError:
            if running.cancelled() and not _current_task_cancelling():
                return None
            raise
        finally:
            tasks = running_by_execution.get(execution_id)
            if tasks is not None:
                tasks.discard(running)
                if not tasks:
                    running_by_execution.pop(execution_id, None)

    async def _timer(self, task: ClaimedTask, owner: str) -> None:
        payload = task.payload
        index: int | None = payload.get("index")
        async with self.parts.database.session() as session:
            transition = await Transition.open(self.parts, session, payload["execution_id"])
            await self.parts.queue.complete(session, task_id=task.id, owner=owner)
            if transition is None or transition.execution.status in TERMINAL:
                return
            iteration = NO_ITERATION if index is None else index
            wait = await session.get(Wait, (transition.execution.id, payload["step_id"], iteration))
            if wait is None or wait.attempt != payload["attempt"]:
                return
            if payload["kind"] == TaskKind.RESUME:
                outcome: Outcome = Succeeded({})
            else:
                outcome = Failed(f"timed out waiting for {wait.kind}", retryable=False)
            await transition.resolve_wait(wait, outcome)
            await transition.advance()

    async def _compensate(self, task: ClaimedTask, owner: str) -> None:
        payload = task.payload
        order: list[str] = payload["order"]
        position = int(payload["position"])
        parts = self.parts
        async with parts.database.session() as session:
            transition = await Transition.open(parts, session, payload["execution_id"])
            if transition is None or transition.execution.status in TERMINAL:
                await parts.queue.complete(session, task_id=task.id, owner=owner)
                return
            step = transition.step(order[position])
            body = step.compensate
            call = parts.executor.bind(
                body.type if body else "",
                execution=transition.execution,
                step_id=step.id,
                index=None,
                attempt=1,
                raw_with=body.with_ if body else {},
                context=transition.context(),
            )
        outcome = await parts.executor.run(body, call) if body else Succeeded(None)
        async with parts.database.session() as session:
            transition = await Transition.open(parts, session, payload["execution_id"])
            if not await parts.queue.complete(session, task_id=task.id, owner=owner):
                return  # another worker took over this compensation
            if transition is None or transition.execution.status in TERMINAL:
                return
            if isinstance(outcome, Succeeded):
                transition.emit(StepCompensated(step_id=step.id, output=outcome.output))
            else:
                message = (
                    outcome.message if isinstance(outcome, Failed) else "compensation cannot wait"
                )
                transition.emit(CompensationFailed(step_id=step.id, error={"message": message}))
            if position + 1 < len(order):
                await transition.enqueue(
                    TaskKind.COMPENSATE,
                    order[position + 1],
                    extra={"order": order, "position": position + 1},
                )
            else:
                await transition.finish(ExecutionStatus.FAILED)

    def cancel_local(self, execution_ids: set[str]) -> None:
        """Stop the step attempts this process runs for these executions."""
        for execution_id in execution_ids:
            for running in self.parts.tracker.running.get(execution_id, set()):
                running.cancel()

    def running_executions(self) -> set[str]:
        """Executions with a step attempt running in this process."""
        return set(self.parts.tracker.running)


def _trace_outcome(attempt: Any, outcome: Outcome | None) -> None:
    if not tracing.enabled():
        return
    if outcome is None:
        tracing.set_attributes({"orchestrion.step.outcome": "cancelled"}, attempt)
    elif isinstance(outcome, Failed):
        tracing.set_attributes(
            {"orchestrion.step.outcome": "failed", "orchestrion.step.retryable": outcome.retryable},
            attempt,
        )
        tracing.fail(attempt, outcome.message)
    else:
        name = "succeeded" if isinstance(outcome, Succeeded) else "waiting"
        tracing.set_attributes({"orchestrion.step.outcome": name}, attempt)


async def _recorded(
    session: AsyncSession, execution_id: str, tasks: list[ClaimedTask]
) -> set[tuple[str, int]]:
    """Which of these tasks' attempts already have a recorded outcome (one query)."""
    steps = {str(task.payload["step_id"]) for task in tasks}
    rows = await session.execute(
        select(StepResult.step_id, StepResult.iteration).where(
            StepResult.execution_id == execution_id, StepResult.step_id.in_(steps)
        )
    )
    return {(str(row[0]), int(row[1])) for row in rows}


_BURIED = {TaskKind.RUN, TaskKind.RESUME, TaskKind.TIMEOUT, TaskKind.COMPENSATE}


def _refused(exc: Exception) -> bool:
    """Whether recording failed on the data itself (it would fail again), not the database."""
    if isinstance(exc, DataError):
        return True
    if isinstance(exc, StatementError):
        # A value the driver could not bind (asyncpg's client-side DataError is a
        # ValueError); a lost connection, a lock or serialisation error is worth retrying.
        cause: BaseException | None = exc.orig
        while cause is not None:
            if isinstance(cause, _UNBINDABLE):
                return True
            cause = cause.__cause__
        return False
    return isinstance(exc, (*_UNBINDABLE, RecursionError))


_UNBINDABLE = (TypeError, ValueError, OverflowError)


def _current_task_cancelling() -> bool:
    current = asyncio.current_task()
    return bool(current is not None and current.cancelling())
