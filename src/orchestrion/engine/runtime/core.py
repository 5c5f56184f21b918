"""One transaction's view of one execution: its row, step states, and the log.

A transition locks the execution row first (``FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` already serialises writers), so concurrent completions of parallel
steps apply one after the other and each sees the other's result. Every change appends
an event to the log and updates the read models; tasks that follow are enqueued in the
same transaction. Nothing here commits: the caller's unit of work does.

:class:`TransitionCore` holds the state and the primitives (the log, the queue, recorded
results); each concern adds its methods in its own module (scheduling, recording, waits,
children, compensation, concurrency) and :class:`~.transition.Transition` joins them.
Methods one concern calls on another are declared here, abstract.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.base import instance_state

from orchestrion.engine.context import expression_context
from orchestrion.engine.definition import (
    StepDefinition,
    WorkflowDefinition,
    once_per_definition,
)
from orchestrion.engine.events import Event
from orchestrion.engine.flags import definition_reads_flags
from orchestrion.engine.metrics import Metered
from orchestrion.engine.models import Execution, StepResult, StepState, Wait
from orchestrion.engine.outcomes import Outcome, StepCall, Waiting
from orchestrion.engine.runtime import folded, log
from orchestrion.engine.runtime.flags import recorded_flags
from orchestrion.engine.runtime.held import held_states, hold
from orchestrion.engine.runtime.parts import EngineParts
from orchestrion.engine.runtime.progress import Progress, graph_of
from orchestrion.engine.statuses import ExecutionStatus, StepStatus, TaskKind
from orchestrion.kernel.bus.events import CloudEvent
from orchestrion.kernel.bus.outbox import stage
from orchestrion.kernel.ids import isoformat, utcnow
from orchestrion.kernel.queue import ClaimedTask

if TYPE_CHECKING:
    from orchestrion.engine.runtime.steps import Prepared

NO_ITERATION = -1
#: Its hook writes a worker's transaction at commit without the unit of work (see
#: :mod:`.folded`): imported for it.
_HOOKS = (folded.write_folded,)

# The statements every transition runs, built once with bind parameters (building and
# hashing them per call cost more CPU than the database spent running them).
_EXECUTION = select(Execution).where(Execution.id == bindparam("id"))
_EXECUTION_LOCKED = _EXECUTION.with_for_update()
# The worker's: without the definition (the largest column, a JSON document decoded at
# every load), parsed once per workflow version and cached (``definition_of``); read only
# when the cache does not have it.
_LEAN = (
    _EXECUTION.options(defer(Execution.definition)),
    _EXECUTION_LOCKED.options(defer(Execution.definition)),
)
_DEFINITION = select(Execution.definition).where(Execution.id == bindparam("id"))
_STATES = select(StepState).where(StepState.execution_id == bindparam("id"))
_INSERT_RESULT = {
    dialect: dialect.insert(StepResult.__table__).on_conflict_do_nothing()
    for dialect in (postgresql, sqlite)
}


@once_per_definition
def steps_by_id(definition: WorkflowDefinition) -> Mapping[str, StepDefinition]:
    """``definition``'s steps by id (the first, should two share one), built once:
    ``step`` is called for every attempt (to start it, for its metrics), and walking the
    list each time made a step's cost grow with the workflow."""
    index: dict[str, StepDefinition] = {}
    for step in definition.steps:
        index.setdefault(step.id, step)
    return index


def task_key(
    execution_id: str, kind: TaskKind, step_id: str, index: int | None, attempt: int
) -> str:
    """The unique key of a task: enqueueing the same work twice makes one task."""
    iteration = NO_ITERATION if index is None else index
    return f"{execution_id}:{kind}:{step_id}:{iteration}:{attempt}"


def integration_event(entry: Mapping[str, Any], execution: Execution) -> CloudEvent:
    """The CloudEvent other services receive for a log entry (``orchestrion.<type>``;
    ``entry`` as the event listeners get it: ``seq``, ``type``, ``step_id``, ``data``, ``at``)."""
    return CloudEvent(
        source="orchestrion/workflows",
        type=f"orchestrion.{entry['type']}",
        subject=f"executions/{execution.id}",
        data={
            "tenant_id": execution.tenant_id,
            "execution_id": execution.id,
            "workflow_id": execution.workflow_id,
            "event": {**entry, "at": isoformat(entry["at"])},
        },
    )


@dataclass
class TransitionCore(ABC):
    """State and primitives of one transition (see the module's docstring)."""

    parts: EngineParts
    session: AsyncSession
    execution: Execution
    definition: WorkflowDefinition
    states: dict[str, StepState]
    events: list[dict[str, Any]] = field(default_factory=list)
    #: True while an instant step runs inside this transaction: nobody else can be
    #: recording it, so its result is added to the session instead of raced for.
    inline: bool = False
    #: A worker recording an outcome takes up to ``claim_limit`` of the attempts this
    #: transaction schedules for itself, already started (see ``schedule``).
    claim_for: str | None = None
    claim_limit: int = 0
    prepared: list[Prepared] = field(default_factory=list)
    #: Model usage this transaction added to the ledger, for the metrics at commit.
    metered: list[Metered] = field(default_factory=list)
    #: The flags the execution has read (``flags.<key>`` -> value), loaded only when
    #: its workflow reads any (see :mod:`.flags`).
    flags: dict[str, Any] = field(default_factory=dict)
    #: Keep the step states in this process's cache once committed (see :mod:`.held`).
    keep_states: bool = False

    @classmethod
    async def open(
        cls, parts: EngineParts, session: AsyncSession, execution_id: str, *, kept: bool = False
    ) -> Self | None:
        """Lock and load an execution, or None when it does not exist.

        ``kept``: reuse the step states this process's last transaction on it committed
        when no one changed them since, and keep them after this one commits (see
        :mod:`.held`), and load the execution without its definition when the parsed one
        is cached; for the worker's transactions, whose sessions run only the engine.
        """
        if kept:
            stmt = _LEAN[1] if parts.postgres else _LEAN[0]
        else:
            stmt = _EXECUTION_LOCKED if parts.postgres else _EXECUTION
        execution = (await session.execute(stmt, {"id": execution_id})).scalar_one_or_none()
        if execution is None:
            return None
        definition = parts.cached_definition(execution)
        if definition is None:
            if "definition" in instance_state(execution).unloaded:
                raw = await session.execute(_DEFINITION, {"id": execution_id})
                set_committed_value(execution, "definition", raw.scalar_one())
            definition = parts.definition_of(execution)
        held = held_states(session, execution_id)
        if held is not None:
            states = held.states  # opened again in this session: the same objects
        else:
            cache = parts.tracker.states
            found = cache.take(execution_id, execution.states_version) if kept else None
            if found is None:
                rows = await session.execute(_STATES, {"id": execution_id})
                states = {row.step_id: row for row in rows.scalars()}
            else:
                states = found
            hold(session, execution, states, detached=found is not None)
        transition = cls(parts, session, execution, definition, states)
        transition.keep_states = kept
        if definition_reads_flags(transition.definition):
            transition.flags = await recorded_flags(session, execution_id)
        parts.tracker.track(session, transition)
        return transition

    # --- the log -------------------------------------------------------------------

    def emit(self, event: Event) -> int:
        """Append ``event`` to the log; returns its ``seq``."""
        execution = self.execution
        execution.last_seq += 1
        now = utcnow()
        execution.updated_at = now
        entry = {
            "seq": execution.last_seq,
            "type": event.type,
            "step_id": event.step_id,
            "data": event.data(),
            "at": now,
        }
        log.append(self.session, {"execution_id": execution.id, **entry})
        self.events.append(entry)
        if self.parts.outbox_topic is not None:
            stage(
                self.session,
                topic=self.parts.outbox_topic,
                event_=integration_event(entry, execution),
            )
        return execution.last_seq

    # --- reading -------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether new work may be scheduled (not paused, failing or finished)."""
        return (
            self.execution.status in (ExecutionStatus.RUNNING, ExecutionStatus.WAITING)
            and self.execution.error is None
        )

    def progress(self) -> Progress | None:
        """The ready steps and the states by status, kept as statuses change (None for
        a definition without a graph: see :mod:`.progress`)."""
        graph = graph_of(self.definition)
        return None if graph is None else Progress.of(graph, self.states)

    def step(self, step_id: str) -> StepDefinition:
        """The definition of ``step_id`` (KeyError when the workflow has none)."""
        return steps_by_id(self.definition)[step_id]

    def context(self, *, item: Any = None, index: int | None = None) -> dict[str, Any]:
        """The expression context now (with ``item``/``index`` inside an iteration)."""
        progress = self.progress()
        return expression_context(
            self.execution,
            self.states,
            env=self.parts.env,
            item=item,
            index=index,
            iterating=index is not None,
            flags=self.flags or None,
            steps=None if progress is None else progress.entries(),
        )

    def call(self, step: StepDefinition, *, index: int | None, attempt: int) -> StepCall:
        """The call a step type's ``run`` receives for this attempt."""
        state = self.states[step.id]
        item = state.items[index] if index is not None and state.items is not None else None
        return self.parts.executor.bind(
            step.type,
            execution=self.execution,
            step_id=step.id,
            index=index,
            attempt=attempt,
            raw_with=step.with_,
            context=self.context(item=item, index=index),
        )

    # --- the queue -----------------------------------------------------------------

    async def enqueue(
        self,
        kind: TaskKind,
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
            "kind": str(kind),
            "step_id": step_id,
            "index": index,
            "attempt": attempt,
            **(extra or {}),
        }
        return await self.parts.queue.enqueue(
            self.session,
            queue=self.parts.queue_name,
            payload=payload,
            key=task_key(self.execution.id, kind, step_id, index, attempt),
            run_at=run_at,
            priority=self.execution.priority,
            leased_to=leased_to,
            group=self.execution.id,
            kind=str(kind),
            subject=step_id,
            # Outside any span (a schedule's timer), the trace the execution began in.
            traceparent=self.execution.traceparent,
        )

    async def drop_tasks(self, *, step_id: str | None = None, only_unleased: bool = False) -> None:
        """Delete this execution's queued tasks (of one step), e.g. on cancel."""
        await self.parts.queue.drop(
            self.session, group=self.execution.id, subject=step_id, only_unleased=only_unleased
        )

    async def park_tasks(self, *, parked: bool) -> None:
        """Park (pause) or release (resume) this execution's queued step attempts."""
        await self.parts.queue.park(
            self.session, group=self.execution.id, kind=TaskKind.RUN, parked=parked
        )

    # --- recorded results ----------------------------------------------------------

    async def insert_result(
        self,
        step_id: str,
        index: int | None,
        *,
        status: StepStatus,
        attempt: int,
        output: Any,
        error: Any,
    ) -> bool:
        """Record an outcome once; False when one was already recorded."""
        values = {
            "execution_id": self.execution.id,
            "step_id": step_id,
            "iteration": NO_ITERATION if index is None else index,
            "status": str(status),
            "attempt": attempt,
            "output": output,
            "error": error,
            "recorded_at": utcnow(),
        }
        if self.inline:
            self.session.add(StepResult(**values))
            return True
        stmt = _INSERT_RESULT[postgresql if self.parts.postgres else sqlite]
        result = await self.session.execute(stmt, values)
        return bool(getattr(result, "rowcount", 0))

    async def results(self, step_id: str) -> list[StepResult]:
        """The recorded outcomes of a step's iterations (or of the step), in order."""
        await self.session.flush()
        rows = await self.session.execute(
            select(StepResult)
            .where(StepResult.execution_id == self.execution.id, StepResult.step_id == step_id)
            .order_by(StepResult.iteration)
        )
        return list(rows.scalars())

    # --- what the concerns call on each other ----------------------------------------

    @abstractmethod
    async def advance(self) -> None:
        """Schedule every step whose needs are met (scheduling)."""

    @abstractmethod
    async def schedule(self, step: StepDefinition, *, index: int | None, attempt: int) -> None:
        """Run an instant attempt here, or queue it (scheduling)."""

    @abstractmethod
    async def record(
        self, step: StepDefinition, index: int | None, attempt: int, outcome: Outcome
    ) -> None:
        """Apply what one attempt produced (recording)."""

    @abstractmethod
    async def launch_iterations(self, step: StepDefinition, *, done: set[int]) -> None:
        """Start iterations while fewer than ``concurrency`` run (scheduling)."""

    @abstractmethod
    async def wait(
        self, step: StepDefinition, index: int | None, attempt: int, wait: Waiting
    ) -> None:
        """Enter a wait (waits)."""

    @abstractmethod
    async def waits(self, *, step_id: str | None = None, kind: str | None = None) -> list[Wait]:
        """This execution's open waits (waits)."""

    @abstractmethod
    async def resolve_wait(self, wait: Wait, outcome: Outcome) -> None:
        """End a wait with ``outcome`` (waits)."""

    @abstractmethod
    async def start_child(
        self, *, step: StepDefinition, index: int | None, spec: dict[str, Any]
    ) -> str | Outcome:
        """Start a child execution for a waiting step (children)."""

    @abstractmethod
    async def cancel_children(self) -> None:
        """Cancel running children (children)."""

    @abstractmethod
    async def tell_parent(self) -> None:
        """This child ended: resolve its parent's wait (children)."""

    @abstractmethod
    async def start_compensation(self) -> None:
        """Compensate completed steps, then fail (compensation)."""

    @abstractmethod
    async def release_slot(self) -> None:
        """Start executions waiting for this one's concurrency slot (concurrency)."""

    @abstractmethod
    async def settle(self) -> None:
        """Finish, fail or report waiting, from the step states (lifecycle)."""

    @abstractmethod
    async def finish(self, status: ExecutionStatus) -> None:
        """End the execution (lifecycle)."""

    @abstractmethod
    async def cancel(self, *, by: str | None) -> None:
        """Stop everything (lifecycle)."""
