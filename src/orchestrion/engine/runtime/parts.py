"""What every transition of every execution shares: the engine's parts.

:class:`EngineParts` is built once per process by :class:`~.engine.Engine`; transitions,
task handlers and the step executor read it. It holds configuration and collaborators,
never an execution's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from orchestrion.engine import metrics
from orchestrion.engine.definition import WorkflowDefinition
from orchestrion.engine.models import Execution
from orchestrion.engine.registry import StepTypeRegistry
from orchestrion.engine.requirements import Resources
from orchestrion.engine.runtime.held import StateCache
from orchestrion.engine.runtime.limits import EngineLimits
from orchestrion.engine.statuses import TERMINAL
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.queue import ClaimedTask, TaskQueue

if TYPE_CHECKING:
    from orchestrion.engine.runtime.core import TransitionCore
    from orchestrion.engine.runtime.steps import StepExecutor

logger = logging.getLogger("orchestrion.engine")

#: ``(session, tenant_id, workflow_id) -> (version, definition)`` for child workflows.
WorkflowResolver = Callable[[AsyncSession, str, str], Awaitable[tuple[int, dict[str, Any]] | None]]
#: Called after commit with the execution and the events it just got.
EventListener = Callable[[Execution, list[dict[str, Any]]], Awaitable[None]]
#: Runs one claimed task of a kind the engine does not know (e.g. ``schedule``).
TaskHandler = Callable[[ClaimedTask, str], Awaitable[None]]

QUEUE_NAME = "engine"
#: ``session.info`` key of the transitions to announce when the session commits.
_TRACKED = "orchestrion.transitions"


class Tracker:
    """Announces committed transitions: wakes waiters, stops cancelled attempts, and
    calls the event listeners (realtime, the token stream...)."""

    def __init__(self, listeners: list[EventListener]) -> None:
        self.listeners = listeners
        #: Step states kept between an execution's transactions (see :mod:`.held`).
        self.states = StateCache()
        self.changed: dict[str, asyncio.Event] = {}
        #: Step attempts running in this process, by execution.
        self.running: dict[str, set[asyncio.Task[Any]]] = {}
        self._background: set[asyncio.Task[None]] = set()

    def track(self, session: AsyncSession, transition: TransitionCore) -> None:
        """Announce a transition's events once its transaction commits."""
        session.info.setdefault(_TRACKED, []).append(transition)

    def committed(self, transition: TransitionCore) -> None:
        """Announce a tracked transition whose transaction committed."""
        metrics.observe(transition)
        execution_id = transition.execution.id
        if transition.keep_states:
            if transition.execution.status in TERMINAL:
                self.states.forget(execution_id)
            else:
                self.states.keep(transition.execution, transition.states)
        if not transition.events:
            return
        self.changed.setdefault(execution_id, asyncio.Event()).set()
        if transition.execution.status in TERMINAL:
            for running in self.running.get(execution_id, set()):
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
        changed = self.changed.setdefault(execution_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), seconds)
        changed.clear()


# Listeners on every session, registered once: one registered per session and
# transaction (``event.listen(..., once=True)``) cost a tenth of a queued step's time.
@event.listens_for(Session, "after_commit")
def _announce_committed(session: Session) -> None:
    for transition in session.info.pop(_TRACKED, ()):
        transition.parts.tracker.committed(transition)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_TRACKED, None)


@dataclass
class EngineParts:
    """The engine's configuration and collaborators, shared by its transitions."""

    database: Database
    queue: TaskQueue
    registry: StepTypeRegistry
    tracker: Tracker
    postgres: bool
    env: Mapping[str, str] = field(default_factory=dict)
    resolver: WorkflowResolver | None = None
    #: When set, every log entry is also staged in the outbox for this bus topic.
    outbox_topic: str | None = None
    queue_name: str = QUEUE_NAME
    #: What this process provides to step types (the runtime adds its own).
    resources: Resources = field(default_factory=Resources)
    #: What one request, execution tree or tenant may use (see :mod:`.limits`).
    limits: EngineLimits = field(default_factory=EngineLimits)
    executor: StepExecutor = field(init=False)
    _definitions: dict[tuple[str, int], WorkflowDefinition] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from orchestrion.engine.runtime.steps import StepExecutor

        self.executor = StepExecutor(self)

    def cached_definition(self, execution: Execution) -> WorkflowDefinition | None:
        """The parsed definition an execution runs, if it is cached."""
        return self._definitions.get((execution.workflow_id, execution.workflow_version))

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
