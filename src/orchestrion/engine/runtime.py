"""The durable runtime: starting executions, running their steps, and controlling them.

Each step attempt goes through three short transactions at most: *start* (append
``step.started``), *run* (no transaction: the step type's ``run``, which may call the
network), *record* (the outcome, the next tasks, the new status; one transaction).
Instant step types skip the queue and run inside the transaction that schedules them.
A crash between *start* and *record* leaves the task leased; its lease expires and a
worker runs the attempt again. Outcomes are recorded under a unique key, so a step
completes once whatever races happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine.context import TERMINAL
from orchestrion.engine.definition import StepBody, StepDefinition, WorkflowDefinition
from orchestrion.engine.expressions import ExpressionError, parse_expression
from orchestrion.engine.models import Execution, Signal, StepResult, StepState, Wait
from orchestrion.engine.outcomes import Failed, Outcome, StepCall, StepServices, Succeeded
from orchestrion.engine.registry import StepTypeRegistry, default_registry
from orchestrion.engine.transitions import (
    NO_ITERATION,
    PARKED,
    USAGE_KEYS,
    Prepared,
    Transition,
    add_usage,
)
from orchestrion.kernel.db.engine import Database, is_sqlite
from orchestrion.kernel.errors import Conflict, NotFound, ValidationFailed
from orchestrion.kernel.ids import utcnow
from orchestrion.kernel.queue import ClaimedTask, TaskQueue

logger = logging.getLogger("orchestrion.engine")

#: ``(session, tenant_id, workflow_id) -> (version, definition)`` for ``sub_workflow``.
WorkflowResolver = Callable[[AsyncSession, str, str], Awaitable[tuple[int, dict[str, Any]] | None]]
#: Called after commit with the execution and the events it just got.
EventListener = Callable[[Execution, list[dict[str, Any]]], Awaitable[None]]
#: Runs one claimed task of a kind registered in :attr:`Engine.handlers`.
TaskHandler = Callable[[ClaimedTask, str], Awaitable[None]]
MAX_DEPTH = 8


def schema_errors(schema: Mapping[str, Any], value: Any, *, where: str) -> list[dict[str, Any]]:
    """JSON Schema violations of ``value`` as API ``errors`` entries."""
    validator = Draft202012Validator(dict(schema))
    return [
        {"loc": [where, *error.absolute_path], "msg": error.message}
        for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    ]


class Engine:
    """Runs executions on one database; every process (API or worker) has one."""

    queue_name = "engine"

    def __init__(
        self,
        database: Database,
        *,
        services: StepServices,
        queue: TaskQueue | None = None,
        registry: StepTypeRegistry = default_registry,
        resolver: WorkflowResolver | None = None,
    ) -> None:
        self.database = database
        self.services = services
        self.queue = queue or TaskQueue(database)
        self.registry = registry
        self.resolver = resolver
        self.postgres = not is_sqlite(database.url)
        self.listeners: list[EventListener] = []
        #: When set, every log entry is also staged in the outbox for this bus topic.
        self.outbox_topic: str | None = None
        #: Handlers for task kinds the engine does not know (e.g. ``schedule``).
        self.handlers: dict[str, TaskHandler] = {}
        self._definitions: dict[tuple[str, int], WorkflowDefinition] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._running: dict[str, set[asyncio.Task[Outcome]]] = {}
        self._background: set[asyncio.Task[None]] = set()

    # --- bookkeeping ---------------------------------------------------------------

    def definition_of(self, execution: Execution) -> WorkflowDefinition:
        """The parsed definition an execution runs (versions are immutable: cached)."""
        key = (execution.workflow_id, execution.workflow_version)
        found = self._definitions.get(key)
        if found is None:
            found = WorkflowDefinition.model_validate(execution.definition)
            if len(self._definitions) > 1000:
                self._definitions.clear()
            self._definitions[key] = found
        return found

    def track(self, session: AsyncSession, transition: Transition) -> None:
        """Announce a transition's events once its transaction commits."""
        pending: list[Transition] = session.info.setdefault("orchestrion.transitions", [])
        if not pending:
            event.listen(session.sync_session, "after_commit", self._on_commit, once=True)
            event.listen(session.sync_session, "after_rollback", self._on_rollback, once=True)
        pending.append(transition)

    def _on_rollback(self, sync_session: Any) -> None:
        sync_session.info.pop("orchestrion.transitions", None)

    def _on_commit(self, sync_session: Any) -> None:
        for transition in sync_session.info.pop("orchestrion.transitions", []):
            if not transition.events:
                continue
            execution_id = transition.execution.id
            self._changed.setdefault(execution_id, asyncio.Event()).set()
            if transition.execution.status in TERMINAL:
                for running in self._running.get(execution_id, set()):
                    running.cancel()
            events = list(transition.events)
            transition.events.clear()
            for listener in self.listeners:
                self._spawn(listener(transition.execution, events))

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coroutine
            except Exception:
                logger.exception("execution event listener failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def wait_for_change(self, execution_id: str, seconds: float) -> None:
        """Sleep until this process commits a change to the execution, or ``seconds``."""
        changed = self._changed.setdefault(execution_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), seconds)
        changed.clear()

    # --- starting ------------------------------------------------------------------

    async def start(
        self,
        session: AsyncSession,
        *,
        tenant_id: str,
        workflow_id: str,
        version: int,
        definition: dict[str, Any],
        inputs: dict[str, Any],
        created_by: str | None,
        priority: int = 0,
        parent: tuple[str, str, int | None] | None = None,
    ) -> Execution:
        """Create an execution and schedule its first steps, in the caller's transaction."""
        errors = schema_errors(definition.get("inputs") or {}, inputs, where="inputs")
        if errors:
            raise ValidationFailed("the inputs do not match the workflow's schema", errors=errors)
        now = utcnow()
        execution = Execution(
            tenant_id=tenant_id,
            workflow_id=workflow_id,
            workflow_version=version,
            definition=definition,
            status="running",
            inputs=inputs,
            usage={"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0},
            priority=priority,
            created_by=created_by,
            last_seq=0,
            created_at=now,
            updated_at=now,
            started_at=now,
        )
        if parent is not None:
            execution.parent_execution_id, execution.parent_step_id, execution.parent_index = parent
        parsed = self.definition_of(execution)
        has_slot = True
        if parsed.concurrency is not None:
            execution.concurrency_key = _concurrency_key(parsed, inputs)
            has_slot = await self._slot_free(session, execution, parsed.concurrency.limit)
        if not has_slot:
            execution.status = "pending"
            execution.started_at = None
        session.add(execution)
        await session.flush()
        states = {s.id: StepState(execution_id=execution.id, step_id=s.id) for s in parsed.steps}
        for state in states.values():
            state.status = "pending"
            state.attempts = 0
            state.launched = 0
        session.add_all(states.values())
        transition = Transition(self, session, execution, parsed, states)
        self.track(session, transition)
        if not has_slot:
            transition.emit(
                "execution.queued",
                inputs=inputs,
                workflow_version=version,
                concurrency_key=execution.concurrency_key,
            )
            return execution
        transition.emit("execution.started", inputs=inputs, workflow_version=version)
        await transition.advance()
        return execution

    # --- concurrency limits --------------------------------------------------------

    async def _lock_slots(self, session: AsyncSession, workflow_id: str, key: str) -> None:
        # Two starts must not both see a free slot: PostgreSQL serialises them on an
        # advisory lock for (workflow, key); SQLite already serialises writers.
        if self.postgres:
            await session.execute(
                select(
                    func.pg_advisory_xact_lock(func.hashtext(f"orchestrion:{workflow_id}:{key}"))
                )
            )

    async def _slot_free(self, session: AsyncSession, execution: Execution, limit: int) -> bool:
        key = execution.concurrency_key or ""
        await self._lock_slots(session, execution.workflow_id, key)
        busy = await session.execute(
            select(func.count())
            .select_from(Execution)
            .where(
                Execution.workflow_id == execution.workflow_id,
                Execution.concurrency_key == key,
                Execution.status.in_(("running", "waiting", "paused")),
            )
        )
        return int(busy.scalar_one()) < limit

    async def release_slot(self, finished: Transition) -> None:
        """An execution ended: start those waiting for a slot while slots are free."""
        execution = finished.execution
        policy = finished.definition.concurrency
        if execution.concurrency_key is None or policy is None:
            return
        session = finished.session
        await self._lock_slots(session, execution.workflow_id, execution.concurrency_key)
        await session.flush()  # the count must see this execution's end
        busy = await session.execute(
            select(func.count())
            .select_from(Execution)
            .where(
                Execution.workflow_id == execution.workflow_id,
                Execution.concurrency_key == execution.concurrency_key,
                Execution.status.in_(("running", "waiting", "paused")),
            )
        )
        free = policy.limit - int(busy.scalar_one())
        if free <= 0:
            return
        waiting = await session.execute(
            select(Execution.id)
            .where(
                Execution.workflow_id == execution.workflow_id,
                Execution.concurrency_key == execution.concurrency_key,
                Execution.status == "pending",
            )
            .order_by(Execution.priority.desc(), Execution.created_at)
            .limit(free)
        )
        for next_id in list(waiting.scalars()):
            transition = await Transition.open(self, session, next_id)
            if transition is None or transition.execution.status != "pending":
                continue
            transition.execution.status = "running"
            transition.execution.started_at = utcnow()
            transition.emit(
                "execution.started", workflow_version=transition.execution.workflow_version
            )
            await transition.advance()

    async def start_child(
        self, parent: Transition, *, step: StepDefinition, index: int | None, spec: dict[str, Any]
    ) -> str | Failed:
        """Start a ``sub_workflow`` step's child; its id, or why it cannot start."""
        if self.resolver is None:
            return Failed("sub-workflows are not available here", retryable=False)
        depth, ancestor = 0, parent.execution
        while ancestor.parent_execution_id and depth <= MAX_DEPTH:
            depth += 1
            ancestor = await parent.session.get(Execution, ancestor.parent_execution_id) or ancestor
        if depth >= MAX_DEPTH:
            return Failed(f"sub-workflows nested deeper than {MAX_DEPTH}", retryable=False)
        workflow_id = str(spec["workflow_id"])
        found = await self.resolver(parent.session, parent.execution.tenant_id, workflow_id)
        if found is None:
            return Failed(f"workflow {workflow_id} not found", retryable=False)
        version, definition = found
        try:
            child = await self.start(
                parent.session,
                tenant_id=parent.execution.tenant_id,
                workflow_id=workflow_id,
                version=version,
                definition=definition,
                inputs=spec.get("inputs") or {},
                created_by=parent.execution.created_by,
                priority=parent.execution.priority,
                parent=(parent.execution.id, step.id, index),
            )
        except ValidationFailed as exc:
            return Failed(
                f"child inputs: {exc.detail}", retryable=False, details={"errors": exc.errors}
            )
        return child.id

    async def child_finished(self, child: Transition) -> None:
        """A child ended: resolve its parent's waiting step."""
        parent_id = child.execution.parent_execution_id
        parent = await Transition.open(self, child.session, parent_id) if parent_id else None
        if parent is None:
            return
        # Only what the parent has not been given yet: a retried child finishes again.
        usage = child.execution.usage or {}
        given = usage.get("given_to_parent") or {}
        delta = {k: float(usage.get(k, 0)) - float(given.get(k, 0)) for k in USAGE_KEYS}
        if any(delta.values()):
            parent.execution.usage = add_usage(parent.execution.usage, delta)
            child.execution.usage = {
                **usage,
                "given_to_parent": {k: usage.get(k, 0) for k in USAGE_KEYS},
            }
        iteration = child.execution.parent_index
        step_id = child.execution.parent_step_id
        wait = await child.session.get(
            Wait, (parent.execution.id, step_id, NO_ITERATION if iteration is None else iteration)
        )
        if wait is None or wait.kind != "child":
            return
        if wait.child_execution_id not in (None, child.execution.id):
            return
        execution = child.execution
        outcome: Outcome
        if execution.status == "succeeded":
            outcome = Succeeded(execution.outputs or {})
        else:
            message = (execution.error or {}).get("message", execution.status)
            outcome = Failed(
                f"child execution {execution.id} {execution.status}: {message}", retryable=False
            )
        await parent.resolve_wait(wait, outcome)
        await parent.advance()

    async def cancel_children(self, parent: Transition) -> None:
        """Cancel the running children of an execution that stops."""
        rows = await parent.session.execute(
            select(Execution.id).where(
                Execution.parent_execution_id == parent.execution.id,
                Execution.status.not_in(TERMINAL),
            )
        )
        for child_id in list(rows.scalars()):
            child = await Transition.open(self, parent.session, child_id)
            if child is not None and child.execution.status not in TERMINAL:
                await child.cancel(by="parent")

    # --- compensation --------------------------------------------------------------

    async def start_compensation(self, transition: Transition) -> None:
        """Run the ``compensate`` bodies of completed steps, newest first, then fail."""
        done = [
            state
            for state in transition.states.values()
            if state.status == "succeeded" and transition.step(state.step_id).compensate
        ]
        done.sort(key=lambda s: s.completed_seq or 0, reverse=True)
        if not done:
            await transition.finish("failed")
            return
        order = [state.step_id for state in done]
        transition.emit("execution.compensating", steps=order)
        await transition.enqueue("compensate", order[0], extra={"order": order, "position": 0})

    # --- running -------------------------------------------------------------------

    async def run_step(self, body: StepBody, call: StepCall) -> Outcome:
        """One attempt of a step (or of a compensation ``body``), never raising."""
        step_type = self.registry.get(body.type)
        if step_type is None:
            return Failed(f"unknown step type {body.type!r}", retryable=False)
        try:
            async with asyncio.timeout(body.timeout):
                return await step_type().run(call)
        except TimeoutError:
            return Failed(f"timed out after {body.timeout:g}s")
        except ExpressionError as exc:
            return Failed(f"expression error: {exc}", retryable=False)
        except Exception as exc:  # a step type's bug must fail the step, not the worker
            logger.exception("step %s (%s) raised", call.step_id, body.type)
            return Failed(f"{type(exc).__name__}: {exc}")

    async def process(self, task: ClaimedTask, *, owner: str, capacity: int = 0) -> list[Prepared]:
        """Carry out one claimed task; returns up to ``capacity`` follow-up attempts the
        worker has been given (claimed and started) and should run next."""
        kind = task.payload.get("kind")
        handler = self.handlers.get(str(kind))
        if handler is not None:
            await handler(task, owner)
        elif kind == "run":
            return await self._run(task, owner, capacity=capacity)
        elif kind in ("resume", "timeout"):
            await self._timer(task, owner)
        elif kind == "compensate":
            await self._compensate(task, owner)
        else:
            async with self.database.session() as session:
                await self.queue.complete(session, task_id=task.id, owner=owner)
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
            async with self.database.session() as session:
                transition = await Transition.open(self, session, execution_id)
                for task in group:
                    started[task.id] = await self._start_one(session, transition, task, owner)
        return started

    async def _start_one(
        self, session: AsyncSession, transition: Transition | None, task: ClaimedTask, owner: str
    ) -> Prepared | None:
        payload = task.payload
        index: int | None = payload.get("index")
        attempt = int(payload["attempt"])
        if transition is not None and transition.execution.status == "paused":
            # Claimed just before the pause committed: park it with the others.
            await self.queue.release(session, task_id=task.id, owner=owner, run_at=PARKED)
            return None
        if transition is None or not transition.active:
            await self.queue.complete(session, task_id=task.id, owner=owner)
            return None
        step = transition.step(payload["step_id"])
        iteration = NO_ITERATION if index is None else index
        recorded = await session.get(StepResult, (transition.execution.id, step.id, iteration))
        if recorded is not None:
            await self.queue.complete(session, task_id=task.id, owner=owner)
            return None
        transition.start_attempt(step, index=index, attempt=attempt)
        call = transition.call(step, index=index, attempt=attempt)
        return Prepared(task=task, step=step, index=index, attempt=attempt, call=call)

    async def _start(self, task: ClaimedTask, owner: str) -> Prepared | None:
        """The start transaction of one claimed attempt (None: nothing to run)."""
        return (await self.start_claimed([task], owner=owner))[task.id]

    async def _run(
        self, task: ClaimedTask, owner: str, *, capacity: int = 0, prepared: Prepared | None = None
    ) -> list[Prepared]:
        attempt_ = prepared or await self._start(task, owner)
        if attempt_ is None:
            return []
        step, index, attempt, call = attempt_.step, attempt_.index, attempt_.attempt, attempt_.call
        outcome = await self._run_tracked(call.execution_id, step, call)
        if outcome is None:
            return []  # cancelled: the cancel already settled the step
        async with self.database.session() as session:
            # Lock the execution before touching the task: every transaction takes
            # the execution first, so PostgreSQL never sees a lock-order deadlock.
            transition = await Transition.open(self, session, call.execution_id)
            await self.queue.complete(session, task_id=task.id, owner=owner)
            if transition is None or transition.execution.status in TERMINAL:
                return []
            if transition.execution.error is not None:
                return []  # failing: other steps' results no longer matter
            transition.claim_for = owner if capacity > 0 else None
            transition.claim_limit = capacity
            await transition.record(step, index, attempt, outcome)
            await transition.advance()
            return list(transition.prepared)

    async def run_prepared(
        self, prepared: Prepared, *, owner: str, capacity: int = 0
    ) -> list[Prepared]:
        """Run an attempt a previous transaction claimed and started for this worker."""
        return await self._run(prepared.task, owner, capacity=capacity, prepared=prepared)

    async def _run_tracked(
        self, execution_id: str, step: StepDefinition, call: StepCall
    ) -> Outcome | None:
        running = asyncio.get_running_loop().create_task(self.run_step(step, call))
        self._running.setdefault(execution_id, set()).add(running)
        try:
            return await running
        except asyncio.CancelledError:
            if running.cancelled() and not _current_task_cancelling():
                return None
            raise
        finally:
            tasks = self._running.get(execution_id)
            if tasks is not None:
                tasks.discard(running)
                if not tasks:
                    self._running.pop(execution_id, None)

    def cancel_local(self, execution_ids: set[str]) -> None:
        """Stop the step attempts this process runs for these executions."""
        for execution_id in execution_ids:
            for running in self._running.get(execution_id, set()):
                running.cancel()

    def running_executions(self) -> set[str]:
        """Executions with a step attempt running in this process."""
        return set(self._running)

    async def _timer(self, task: ClaimedTask, owner: str) -> None:
        payload = task.payload
        index: int | None = payload.get("index")
        async with self.database.session() as session:
            transition = await Transition.open(self, session, payload["execution_id"])
            await self.queue.complete(session, task_id=task.id, owner=owner)
            if transition is None or transition.execution.status in TERMINAL:
                return
            iteration = NO_ITERATION if index is None else index
            wait = await session.get(Wait, (transition.execution.id, payload["step_id"], iteration))
            if wait is None or wait.attempt != payload["attempt"]:
                return
            if payload["kind"] == "resume":
                outcome: Outcome = Succeeded({})
            else:
                outcome = Failed(f"timed out waiting for {wait.kind}", retryable=False)
            await transition.resolve_wait(wait, outcome)
            await transition.advance()

    async def _compensate(self, task: ClaimedTask, owner: str) -> None:
        payload = task.payload
        order: list[str] = payload["order"]
        position = int(payload["position"])
        async with self.database.session() as session:
            transition = await Transition.open(self, session, payload["execution_id"])
            if transition is None or transition.execution.status in TERMINAL:
                await self.queue.complete(session, task_id=task.id, owner=owner)
                return
            step = transition.step(order[position])
            body = step.compensate
            call = StepCall(
                execution_id=transition.execution.id,
                tenant_id=transition.execution.tenant_id,
                step_id=step.id,
                index=None,
                attempt=1,
                raw_with=body.with_ if body else {},
                context=transition.context(),
                services=self.services,
            )
        outcome = await self.run_step(body, call) if body else Succeeded(None)
        async with self.database.session() as session:
            transition = await Transition.open(self, session, payload["execution_id"])
            if not await self.queue.complete(session, task_id=task.id, owner=owner):
                return  # another worker took over this compensation
            if transition is None or transition.execution.status in TERMINAL:
                return
            if isinstance(outcome, Succeeded):
                transition.emit("step.compensated", step.id, output=outcome.output)
            else:
                message = (
                    outcome.message if isinstance(outcome, Failed) else "compensation cannot wait"
                )
                transition.emit("step.compensation_failed", step.id, error={"message": message})
            if position + 1 < len(order):
                await transition.enqueue(
                    "compensate",
                    order[position + 1],
                    extra={"order": order, "position": position + 1},
                )
            else:
                await transition.finish("failed")

    # --- control -------------------------------------------------------------------

    async def _open(self, session: AsyncSession, execution_id: str) -> Transition:
        transition = await Transition.open(self, session, execution_id)
        if transition is None:
            raise NotFound(f"execution {execution_id} not found")
        return transition

    async def cancel(self, session: AsyncSession, *, execution_id: str, by: str | None) -> None:
        """Cancel a running, waiting or paused execution (409 once it has ended)."""
        transition = await self._open(session, execution_id)
        if transition.execution.status in TERMINAL:
            raise Conflict(f"execution is already {transition.execution.status}")
        await transition.cancel(by=by)

    async def pause(self, session: AsyncSession, *, execution_id: str, by: str | None) -> None:
        """Stop scheduling new steps; running ones finish and are recorded."""
        transition = await self._open(session, execution_id)
        if transition.execution.status not in ("running", "waiting") or transition.execution.error:
            raise Conflict(f"cannot pause an execution that is {transition.execution.status}")
        # Queued attempts are parked, not dropped: resume un-parks them. Waits and
        # timers stay, so an approval may still arrive while paused.
        await transition.park_tasks(parked=True)
        transition.execution.status = "paused"
        transition.emit("execution.paused", by=by)

    async def resume(self, session: AsyncSession, *, execution_id: str, by: str | None) -> None:
        """Continue a paused execution."""
        transition = await self._open(session, execution_id)
        if transition.execution.status != "paused":
            raise Conflict(f"cannot resume an execution that is {transition.execution.status}")
        transition.execution.status = "running"
        transition.emit("execution.resumed", by=by)
        await transition.park_tasks(parked=False)
        await transition.advance()

    async def retry(self, session: AsyncSession, *, execution_id: str, by: str | None) -> None:
        """Run a failed or cancelled execution again from where it stopped."""
        transition = await self._open(session, execution_id)
        execution = transition.execution
        if execution.status not in ("failed", "cancelled"):
            raise Conflict(
                f"only failed or cancelled executions can be retried, not {execution.status}"
            )
        for state in transition.states.values():
            if state.status in ("succeeded", "skipped"):
                continue
            failed = await session.execute(
                select(StepResult).where(
                    StepResult.execution_id == execution.id,
                    StepResult.step_id == state.step_id,
                    StepResult.status == "failed",
                )
            )
            for row in failed.scalars():
                await session.delete(row)
            state.status = "pending"
            state.error = None
            state.attempts = 0
            state.launched = 0
            state.items = None
        execution.status = "running"
        execution.error = None
        execution.outputs = None
        execution.finished_at = None
        transition.emit("execution.retried", by=by)
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
        """Approve or reject a waiting ``approval`` step (or one of its iterations)."""
        transition = await self._open(session, execution_id)
        if transition.execution.status in TERMINAL:
            raise Conflict(f"execution is already {transition.execution.status}")
        waits = await transition.waits(step_id=step_id, kind="approval")
        if index is not None:
            waits = [w for w in waits if w.iteration == index]
        if not waits:
            raise Conflict(f"step {step_id!r} is not waiting for an approval")
        wait = waits[0]
        if approved:
            errors = schema_errors(wait.data.get("schema") or {}, data, where="data")
            if errors:
                raise ValidationFailed(
                    "the approval data do not match the step's schema", errors=errors
                )
        iteration = None if wait.iteration == NO_ITERATION else wait.iteration
        decision = {"approved": approved, "data": data, "by": by}
        transition.emit(
            "step.approved" if approved else "step.rejected",
            step_id,
            index=iteration,
            by=by,
            data=data,
        )
        outcome: Outcome = Succeeded(decision)
        if not approved:
            outcome = Failed(f"rejected by {by}", retryable=False, details=decision)
        await transition.resolve_wait(wait, outcome)
        await transition.advance()

    async def signal(
        self, session: AsyncSession, *, execution_id: str, name: str, data: Any
    ) -> bool:
        """Deliver an event; True when a waiting step took it, False when it is kept."""
        transition = await self._open(session, execution_id)
        if transition.execution.status in TERMINAL:
            raise Conflict(f"execution is already {transition.execution.status}")
        transition.emit("signal.received", name=name, data=data)
        for wait in await transition.waits(kind="event"):
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


def _concurrency_key(definition: WorkflowDefinition, inputs: dict[str, Any]) -> str:
    policy = definition.concurrency
    if policy is None or policy.key is None:
        return ""
    try:
        value = parse_expression(policy.key).render({"inputs": inputs})
    except ExpressionError as exc:
        raise ValidationFailed(
            f"the concurrency key cannot be computed from these inputs: {exc}",
            errors=[{"loc": ["inputs"], "msg": str(exc)}],
        ) from None
    return str(value)[:255]


def _current_task_cancelling() -> bool:
    current = asyncio.current_task()
    return bool(current is not None and current.cancelling())
