"""State transitions of one execution, inside one database transaction.

A :class:`Transition` locks the execution row first (``FOR UPDATE`` on PostgreSQL;
SQLite's ``BEGIN IMMEDIATE`` already serialises writers), so concurrent completions of
parallel steps apply one after the other and each sees the other's result. Every change
appends an event to the log and updates the read models; tasks that follow are enqueued
in the same transaction. Nothing here commits: the caller's unit of work does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine.context import (
    STEP_DONE,
    STEP_TERMINAL,
    TERMINAL,
    backoff_seconds,
    expression_context,
)
from orchestrion.engine.definition import RetryPolicy, StepDefinition, WorkflowDefinition
from orchestrion.engine.expressions import ExpressionError, evaluate, parse_expression
from orchestrion.engine.models import (
    Execution,
    ExecutionEvent,
    LlmUsage,
    Signal,
    StepResult,
    StepState,
    Wait,
)
from orchestrion.engine.outcomes import (
    Failed,
    ModelUsage,
    Outcome,
    StepCall,
    Succeeded,
    Waiting,
)
from orchestrion.kernel.bus.events import CloudEvent
from orchestrion.kernel.bus.outbox import stage
from orchestrion.kernel.ids import isoformat, new_id, utcnow
from orchestrion.kernel.queue import ClaimedTask
from orchestrion.kernel.queue.models import Task

if TYPE_CHECKING:
    from orchestrion.engine.runtime import Engine

NO_ITERATION = -1
#: ``run_at`` of the queued attempts of a paused execution: far enough never to come.
PARKED = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Prepared:
    """An attempt claimed and started in a transaction, to run once it commits."""

    task: ClaimedTask
    step: StepDefinition
    index: int | None
    attempt: int
    call: StepCall


def integration_event(event: ExecutionEvent, execution: Execution) -> CloudEvent:
    """The CloudEvent other services receive for a log entry (``orchestrion.<type>``)."""
    return CloudEvent(
        source="orchestrion/workflows",
        type=f"orchestrion.{event.type}",
        subject=f"executions/{execution.id}",
        data={
            "tenant_id": execution.tenant_id,
            "execution_id": execution.id,
            "workflow_id": execution.workflow_id,
            "event": {
                "seq": event.seq,
                "type": event.type,
                "step_id": event.step_id,
                "data": event.data,
                "at": isoformat(event.at),
            },
        },
    )


USAGE_KEYS = ("input_tokens", "output_tokens", "cost_usd")


def add_usage(total: Mapping[str, Any] | None, more: Mapping[str, Any]) -> dict[str, Any]:
    """``{"input_tokens", "output_tokens", "cost_usd"}`` of ``total`` plus ``more`` (a new dict)."""
    total = total or {}
    return {
        **total,
        "input_tokens": int(total.get("input_tokens", 0)) + round(more.get("input_tokens", 0)),
        "output_tokens": int(total.get("output_tokens", 0)) + round(more.get("output_tokens", 0)),
        "cost_usd": round(float(total.get("cost_usd", 0.0)) + float(more.get("cost_usd", 0.0)), 9),
    }


def task_key(execution_id: str, kind: str, step_id: str, index: int | None, attempt: int) -> str:
    """The unique key of a task: enqueueing the same work twice makes one task."""
    return f"{execution_id}:{kind}:{step_id}:{NO_ITERATION if index is None else index}:{attempt}"


@dataclass
class Transition:
    """One transaction's view of an execution: its row, step states and new events."""

    engine: Engine
    session: AsyncSession
    execution: Execution
    definition: WorkflowDefinition
    states: dict[str, StepState]
    events: list[dict[str, Any]] = field(default_factory=list)
    #: True while an instant step runs inside this transaction: nobody else can be
    #: recording it, so its result is added to the session instead of raced for.
    inline: bool = False
    #: A worker recording an outcome takes up to ``claim_limit`` of the attempts this
    #: transaction schedules for itself, already started (see :meth:`schedule`).
    claim_for: str | None = None
    claim_limit: int = 0
    prepared: list[Prepared] = field(default_factory=list)

    @classmethod
    async def open(
        cls, engine: Engine, session: AsyncSession, execution_id: str
    ) -> Transition | None:
        """Lock and load an execution, or None when it does not exist."""
        stmt = select(Execution).where(Execution.id == execution_id)
        if engine.postgres:
            stmt = stmt.with_for_update()
        execution = (await session.execute(stmt)).scalar_one_or_none()
        if execution is None:
            return None
        rows = await session.execute(
            select(StepState).where(StepState.execution_id == execution_id)
        )
        states = {row.step_id: row for row in rows.scalars()}
        transition = cls(engine, session, execution, engine.definition_of(execution), states)
        engine.track(session, transition)
        return transition

    # --- the log -------------------------------------------------------------------

    def emit(self, type_: str, step_id: str | None = None, **data: Any) -> int:
        """Append an event; returns its ``seq``."""
        execution = self.execution
        execution.last_seq += 1
        now = utcnow()
        execution.updated_at = now
        event = ExecutionEvent(
            execution_id=execution.id,
            seq=execution.last_seq,
            type=type_,
            step_id=step_id,
            data=data,
            at=now,
        )
        self.session.add(event)
        self.events.append(
            {"seq": event.seq, "type": type_, "step_id": step_id, "data": data, "at": now}
        )
        if self.engine.outbox_topic is not None:
            stage(
                self.session,
                topic=self.engine.outbox_topic,
                event_=integration_event(event, execution),
            )
        return execution.last_seq

    # --- helpers -------------------------------------------------------------------

    def step(self, step_id: str) -> StepDefinition:
        """The definition of ``step_id``."""
        for step in self.definition.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def context(self, *, item: Any = None, index: int | None = None) -> dict[str, Any]:
        """The expression context now (with ``item``/``index`` inside an iteration)."""
        return expression_context(
            self.execution,
            self.states,
            env=self.engine.services.env,
            item=item,
            index=index,
            iterating=index is not None,
        )

    def call(self, step: StepDefinition, *, index: int | None, attempt: int) -> StepCall:
        """The call a step type's ``run`` receives for this attempt."""
        state = self.states[step.id]
        item = state.items[index] if index is not None and state.items is not None else None
        return StepCall(
            execution_id=self.execution.id,
            tenant_id=self.execution.tenant_id,
            step_id=step.id,
            index=index,
            attempt=attempt,
            raw_with=step.with_,
            context=self.context(item=item, index=index),
            services=self.engine.services,
        )

    async def enqueue(
        self,
        kind: str,
        step_id: str,
        *,
        index: int | None = None,
        attempt: int = 1,
        run_at: Any = None,
        extra: Mapping[str, Any] | None = None,
        leased_to: str | None = None,
    ) -> ClaimedTask | None:
        """A task for this execution (keyed, so at most once)."""
        payload = {
            "execution_id": self.execution.id,
            "kind": kind,
            "step_id": step_id,
            "index": index,
            "attempt": attempt,
            **(extra or {}),
        }
        return await self.engine.queue.enqueue(
            self.session,
            queue=self.engine.queue_name,
            payload=payload,
            key=task_key(self.execution.id, kind, step_id, index, attempt),
            run_at=run_at,
            priority=self.execution.priority,
            leased_to=leased_to,
        )

    async def drop_tasks(self, *, step_id: str | None = None, only_unleased: bool = False) -> None:
        """Delete this execution's queued tasks (of one step), e.g. on cancel or pause."""
        prefix = f"{self.execution.id}:"
        stmt = delete(Task).where(Task.key.like(f"{prefix}%"))
        if step_id is not None:
            stmt = delete(Task).where(Task.key.like(f"{prefix}%:{step_id}:%"))
        if only_unleased:
            stmt = stmt.where(Task.lease_owner.is_(None))
        await self.session.execute(stmt)

    async def park_tasks(self, *, parked: bool) -> None:
        """Park (pause) or release (resume) this execution's queued step attempts."""
        await self.session.execute(
            update(Task)
            .where(
                Task.key.like(f"{self.execution.id}:run:%"),
                Task.lease_owner.is_(None),
                (Task.run_at < PARKED) if parked else (Task.run_at >= PARKED),
            )
            .values(run_at=PARKED if parked else utcnow())
        )

    async def _insert_result(
        self, step_id: str, index: int | None, *, status: str, attempt: int, output: Any, error: Any
    ) -> bool:
        """Record an outcome once; False when one was already recorded."""
        values = {
            "execution_id": self.execution.id,
            "step_id": step_id,
            "iteration": NO_ITERATION if index is None else index,
            "status": status,
            "attempt": attempt,
            "output": output,
            "error": error,
            "recorded_at": utcnow(),
        }
        if self.inline:
            self.session.add(StepResult(**values))
            return True
        dialect = postgresql if self.engine.postgres else sqlite
        stmt = dialect.insert(StepResult).values(**values).on_conflict_do_nothing()
        result = await self.session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))

    async def _results(self, step_id: str) -> list[StepResult]:
        await self.session.flush()
        rows = await self.session.execute(
            select(StepResult)
            .where(StepResult.execution_id == self.execution.id, StepResult.step_id == step_id)
            .order_by(StepResult.iteration)
        )
        return list(rows.scalars())

    # --- scheduling ----------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether new work may be scheduled (not paused, failing or finished)."""
        return self.execution.status in ("running", "waiting") and self.execution.error is None

    async def advance(self) -> None:
        """Schedule every step whose needs are met, run instant ones, then settle status."""
        # Changes are flushed once at commit (or where a query needs them), not
        # before every statement: a chain of instant steps is a handful of round trips.
        with self.session.no_autoflush:
            progressed = True
            while progressed and self.active:
                progressed = False
                for step in self.definition.steps:
                    state = self.states[step.id]
                    if state.status != "pending":
                        continue
                    if not all(self.states[need].status in STEP_DONE for need in step.needs):
                        continue
                    await self._start_step(step)
                    progressed = True
            await self.settle()

    async def _start_step(self, step: StepDefinition) -> None:
        state = self.states[step.id]
        if step.when:
            try:
                go = parse_expression(step.when).render(self.context())
            except ExpressionError as exc:
                await self.fail_step(step, None, Failed(f"'when': {exc}", retryable=False), 1)
                return
            if not go:
                state.status = "skipped"
                state.finished_at = utcnow()
                self.emit("step.skipped", step.id)
                return
        if step.for_each:
            await self._start_iterations(step)
            return
        await self.schedule(step, index=None, attempt=state.attempts + 1)

    async def _start_iterations(self, step: StepDefinition) -> None:
        state = self.states[step.id]
        try:
            items = parse_expression(step.for_each or "").render(self.context())
        except ExpressionError as exc:
            await self.fail_step(step, None, Failed(f"'for_each': {exc}", retryable=False), 1)
            return
        if not isinstance(items, list):
            message = f"'for_each' must give a list, got {type(items).__name__}"
            await self.fail_step(step, None, Failed(message, retryable=False), 1)
            return
        state.items = items
        state.status = "running"
        state.started_at = utcnow()
        self.emit("step.started", step.id, items=len(items))
        if not items:
            await self.succeed_step(step, [], attempt=1)
            return
        done = {r.iteration for r in await self._results(step.id) if r.status == "succeeded"}
        await self._launch_iterations(step, done=done)

    async def _launch_iterations(self, step: StepDefinition, *, done: set[int]) -> None:
        state = self.states[step.id]
        items = state.items or []
        limit = step.concurrency or len(items)
        running = state.launched - len([i for i in done if i < state.launched])
        while state.launched < len(items) and running < limit:
            index = state.launched
            state.launched += 1
            if index in done:  # reused from before a retry
                continue
            running += 1
            await self.schedule(step, index=index, attempt=1)

    async def schedule(self, step: StepDefinition, *, index: int | None, attempt: int) -> None:
        """Run an instant step here and now; queue any other for a worker."""
        step_type = self.engine.registry.get(step.type)
        state = self.states[step.id]
        if index is None:
            state.status = "queued"
        if step_type is not None and step_type.instant and not step.timeout:
            call = self.call(step, index=index, attempt=attempt)
            outcome = await self.engine.run_step(step, call)
            if index is None:
                state.started_at = utcnow()
                self.emit("step.started", step.id, attempt=attempt)
            self.inline = True
            try:
                await self.record(step, index, attempt, outcome)
            finally:
                self.inline = False
            return
        if self.claim_for is not None and len(self.prepared) < self.claim_limit:
            # Continue the chain in this worker: the task is created leased to it and
            # the attempt started here, saving a claim and a transaction per step.
            task = await self.enqueue(
                "run", step.id, index=index, attempt=attempt, leased_to=self.claim_for
            )
            if task is not None:
                self.start_attempt(step, index=index, attempt=attempt)
                call = self.call(step, index=index, attempt=attempt)
                self.prepared.append(
                    Prepared(task=task, step=step, index=index, attempt=attempt, call=call)
                )
            return
        await self.enqueue("run", step.id, index=index, attempt=attempt)

    def start_attempt(self, step: StepDefinition, *, index: int | None, attempt: int) -> None:
        """Mark an attempt as running (``step.started``)."""
        state = self.states[step.id]
        if index is None:
            state.status = "running"
            state.attempts = max(state.attempts, attempt)
            state.started_at = state.started_at or utcnow()
        self.emit("step.started", step.id, attempt=attempt, index=index)

    # --- outcomes ------------------------------------------------------------------

    async def record(
        self, step: StepDefinition, index: int | None, attempt: int, outcome: Outcome
    ) -> None:
        """Apply what one attempt produced."""
        if isinstance(outcome, Succeeded | Failed) and outcome.usage:
            await self.record_usage(step.id, index, attempt, outcome.usage)
        if isinstance(outcome, Succeeded):
            if index is None:
                await self.succeed_step(step, outcome.output, attempt=attempt)
            else:
                await self._iteration_succeeded(step, index, attempt, outcome.output)
        elif isinstance(outcome, Failed):
            await self.fail_step(step, index, outcome, attempt)
        else:
            await self._wait(step, index, attempt, outcome)

    async def record_usage(
        self, step_id: str, index: int | None, attempt: int, usage: tuple[ModelUsage, ...]
    ) -> None:
        """Add an attempt's model usage to the ledger and the execution's total, once."""
        merged: dict[tuple[str, str], list[Any]] = {}
        for entry in usage:
            row = merged.setdefault((entry.provider, entry.model), [0, 0, 0.0, False])
            row[0] += entry.input_tokens
            row[1] += entry.output_tokens
            row[2] += entry.cost_usd
            row[3] = row[3] or entry.estimated
        root = self.execution
        for _ in range(16):  # sub-workflows nest at most a few levels deep
            if root.parent_execution_id is None:
                break
            parent = await self.session.get(Execution, root.parent_execution_id)
            if parent is None:
                break
            root = parent
        dialect = postgresql if self.engine.postgres else sqlite
        added = [0, 0, 0.0]
        for (provider, model), (input_tokens, output_tokens, cost, estimated) in merged.items():
            stmt = (
                dialect.insert(LlmUsage)
                .values(
                    id=new_id(),
                    tenant_id=self.execution.tenant_id,
                    workflow_id=self.execution.workflow_id,
                    execution_id=self.execution.id,
                    root_execution_id=root.id,
                    step_id=step_id,
                    iteration=NO_ITERATION if index is None else index,
                    attempt=attempt,
                    provider=provider,
                    model=model,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    cost_usd=round(cost, 9),
                    estimated=estimated,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing()
            )
            result = await self.session.execute(stmt)
            if getattr(result, "rowcount", 0):
                added = [added[0] + input_tokens, added[1] + output_tokens, added[2] + cost]
        if added != [0, 0, 0.0]:
            self.execution.usage = add_usage(
                self.execution.usage,
                {"input_tokens": added[0], "output_tokens": added[1], "cost_usd": added[2]},
            )

    async def succeed_step(self, step: StepDefinition, output: Any, *, attempt: int) -> None:
        """Mark a step succeeded (once)."""
        if not await self._insert_result(
            step.id, None, status="succeeded", attempt=attempt, output=output, error=None
        ):
            return
        state = self.states[step.id]
        state.status = "succeeded"
        state.output = output
        state.error = None
        state.attempts = max(state.attempts, attempt)
        state.finished_at = utcnow()
        state.completed_seq = self.emit("step.succeeded", step.id, output=output, attempt=attempt)

    async def _iteration_succeeded(
        self, step: StepDefinition, index: int, attempt: int, output: Any
    ) -> None:
        if not await self._insert_result(
            step.id, index, status="succeeded", attempt=attempt, output=output, error=None
        ):
            return
        self.emit("step.iteration_succeeded", step.id, index=index, output=output)
        state = self.states[step.id]
        if state.status not in ("running", "waiting"):
            return
        results = await self._results(step.id)
        done = {r.iteration for r in results if r.status == "succeeded"}
        items = state.items or []
        if len(done) == len(items):
            ordered = {r.iteration: r.output for r in results}
            await self.succeed_step(step, [ordered[i] for i in range(len(items))], attempt=1)
            return
        state.status = "running"
        await self._launch_iterations(step, done=done)

    async def fail_step(
        self, step: StepDefinition, index: int | None, failure: Failed, attempt: int
    ) -> None:
        """Retry under the step's policy, or fail the step (and with it the execution)."""
        policy = step.retry or RetryPolicy()
        state = self.states[step.id]
        error: dict[str, Any] = {"message": failure.message}
        if failure.details is not None:
            error["details"] = failure.details
        if failure.retryable and attempt < policy.max_attempts:
            wait = backoff_seconds(
                attempt=attempt,
                backoff=policy.backoff,
                delay=policy.delay,
                max_delay=policy.max_delay,
            )
            retry_at = utcnow() + timedelta(seconds=wait)
            state.attempts = max(state.attempts, attempt)
            self.emit(
                "step.retry_scheduled",
                step.id,
                index=index,
                attempt=attempt,
                error=error,
                retry_in=wait,
            )
            await self.enqueue("run", step.id, index=index, attempt=attempt + 1, run_at=retry_at)
            return
        if not await self._insert_result(
            step.id, index, status="failed", attempt=attempt, output=None, error=error
        ):
            return
        state.status = "failed"
        state.error = error if index is None else {**error, "index": index}
        state.attempts = max(state.attempts, attempt)
        state.finished_at = utcnow()
        self.emit("step.failed", step.id, index=index, attempt=attempt, error=error)

    async def _wait(
        self, step: StepDefinition, index: int | None, attempt: int, wait: Waiting
    ) -> None:
        state = self.states[step.id]
        iteration = NO_ITERATION if index is None else index
        if wait.kind == "event":
            signal = await self._take_signal(str(wait.data.get("event")), step.id)
            if signal is not None:
                await self.record(step, index, attempt, Succeeded(signal))
                return
        row = Wait(
            execution_id=self.execution.id,
            step_id=step.id,
            iteration=iteration,
            kind=wait.kind,
            attempt=attempt,
            data=wait.data,
            timeout_at=wait.timeout_at,
        )
        self.session.add(row)
        self.emit("step.waiting", step.id, index=index, kind=wait.kind, **_public(wait))
        await self.session.flush()
        if index is None:
            state.status = "waiting"
        else:
            await self._refresh_iterations_status(step)
        if wait.kind == "child":
            # The child may finish inside start_child (instant steps only) and resolve
            # this wait at once, so the wait must exist before the child starts.
            child = await self.engine.start_child(self, step=step, index=index, spec=wait.data)
            key = (self.execution.id, step.id, iteration)
            open_wait = await self.session.get(Wait, key)
            if isinstance(child, Failed):
                if open_wait is not None:
                    await self.resolve_wait(open_wait, child)
                return
            if open_wait is not None:
                open_wait.child_execution_id = child
        if wait.resume_at is not None:
            await self.enqueue(
                "resume", step.id, index=index, attempt=attempt, run_at=wait.resume_at
            )
        if wait.timeout_at is not None:
            await self.enqueue(
                "timeout", step.id, index=index, attempt=attempt, run_at=wait.timeout_at
            )

    async def _refresh_iterations_status(self, step: StepDefinition) -> None:
        """An iterated step waits only when every unfinished iteration waits."""
        state = self.states[step.id]
        if state.status not in ("running", "waiting"):
            return
        finished = len(await self._results(step.id))
        unfinished = state.launched - finished
        waiting = len(await self.waits(step_id=step.id))
        all_launched = state.launched >= len(state.items or []) or unfinished >= (
            step.concurrency or unfinished
        )
        state.status = (
            "waiting" if unfinished and waiting >= unfinished and all_launched else "running"
        )

    async def _take_signal(self, name: str, step_id: str) -> Any:
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
        await self.session.execute(
            delete(Task).where(
                Task.key == task_key(self.execution.id, "timeout", step.id, index, wait.attempt)
            )
        )
        if self.states[step.id].status == "waiting":
            self.states[step.id].status = "running"
        await self.record(step, index, wait.attempt, outcome)

    async def waits(self, *, step_id: str | None = None, kind: str | None = None) -> list[Wait]:
        """This execution's open waits, oldest first."""
        stmt = select(Wait).where(Wait.execution_id == self.execution.id)
        if step_id is not None:
            stmt = stmt.where(Wait.step_id == step_id)
        if kind is not None:
            stmt = stmt.where(Wait.kind == kind)
        return list((await self.session.execute(stmt.order_by(Wait.iteration))).scalars())

    # --- the end -------------------------------------------------------------------

    async def settle(self) -> None:
        """Finish, fail or report waiting, from the step states."""
        execution = self.execution
        if execution.status in TERMINAL or execution.status == "paused":
            return
        statuses = [state.status for state in self.states.values()]
        if execution.error is None and "failed" in statuses:
            failed = next(s for s in self.states.values() if s.status == "failed")
            execution.error = {"step_id": failed.step_id, **(failed.error or {})}
            await self._stop_open_steps()
            await self.engine.start_compensation(self)
            return
        if execution.error is not None:
            return  # compensating; the compensation tasks finish the run
        if all(status in STEP_DONE for status in statuses):
            await self._succeed_execution()
            return
        busy = any(s in ("queued", "running") for s in statuses)
        waiting = "waiting" in statuses
        new_status = "waiting" if waiting and not busy else "running"
        if new_status != execution.status:
            execution.status = new_status
            self.emit(f"execution.{new_status}")

    async def _stop_open_steps(self) -> None:
        await self.drop_tasks()
        await self.session.execute(delete(Wait).where(Wait.execution_id == self.execution.id))
        for state in self.states.values():
            if state.status not in STEP_TERMINAL:
                state.status = "cancelled"
                state.finished_at = utcnow()
                self.emit("step.cancelled", state.step_id)
        await self.engine.cancel_children(self)

    async def _succeed_execution(self) -> None:
        try:
            outputs = evaluate(self.definition.outputs, self.context())
        except ExpressionError as exc:
            self.execution.error = {"message": f"outputs: {exc}"}
            await self.finish("failed")
            return
        self.execution.outputs = outputs
        await self.finish("succeeded")

    async def finish(self, status: str) -> None:
        """End the execution and tell a parent waiting on it."""
        execution = self.execution
        execution.status = status
        execution.finished_at = utcnow()
        data: dict[str, Any] = {}
        if status == "succeeded":
            data["outputs"] = execution.outputs
        elif execution.error:
            data["error"] = execution.error
        self.emit(f"execution.{status}", **data)
        await self.engine.release_slot(self)
        if execution.parent_execution_id:
            await self.engine.child_finished(self)

    async def cancel(self, *, by: str | None) -> None:
        """Stop everything; running steps' results will be discarded."""
        await self._stop_open_steps()
        self.execution.status = "cancelled"
        self.execution.finished_at = utcnow()
        self.emit("execution.cancelled", by=by)
        await self.engine.release_slot(self)
        if self.execution.parent_execution_id:
            await self.engine.child_finished(self)


def _public(wait: Waiting) -> dict[str, Any]:
    data: dict[str, Any] = {k: v for k, v in wait.data.items() if k != "inputs"}
    if wait.timeout_at is not None:
        data["timeout_at"] = wait.timeout_at.isoformat()
    if wait.resume_at is not None:
        data["resume_at"] = wait.resume_at.isoformat()
    return data
