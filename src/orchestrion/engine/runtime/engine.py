"""The engine: one per process (API or worker), built whole by its constructor.

It starts executions, carries out the queue's tasks (:mod:`.tasks`) and controls
executions for the API (:mod:`.control`); the transitions that do the work are in
:mod:`.transition` and the concerns it joins.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine.models import Execution
from orchestrion.engine.registry import StepTypeRegistry, default_registry
from orchestrion.engine.requirements import Requirement, Resources
from orchestrion.engine.runtime.control import Control
from orchestrion.engine.runtime.limits import EngineLimits
from orchestrion.engine.runtime.parts import EngineParts, EventListener, Tracker, WorkflowResolver
from orchestrion.engine.runtime.starting import start_execution
from orchestrion.engine.runtime.steps import Prepared
from orchestrion.engine.runtime.tasks import TaskRunner
from orchestrion.kernel.db.engine import Database, is_sqlite
from orchestrion.kernel.queue import ClaimedTask, TaskQueue

#: Carries out a task of a kind the engine does not know (e.g. ``schedule``).
EngineTaskHandler = Callable[["Engine", ClaimedTask, str], Awaitable[None]]


class Engine(Control):
    """Runs executions on one database (see the module's docstring)."""

    def __init__(
        self,
        database: Database,
        *,
        resources: Resources | Mapping[Requirement[Any], Any] | None = None,
        env: Mapping[str, str] | None = None,
        queue: TaskQueue | None = None,
        registry: StepTypeRegistry = default_registry,
        resolver: WorkflowResolver | None = None,
        outbox_topic: str | None = None,
        handlers: Mapping[str, EngineTaskHandler] | None = None,
        listeners: Iterable[EventListener] = (),
        limits: EngineLimits | None = None,
    ) -> None:
        self.database = database
        self.limits = limits or EngineLimits()
        self.queue = queue or TaskQueue(database, max_attempts=self.limits.max_task_attempts)
        self.registry = registry
        self.resolver = resolver
        self.outbox_topic = outbox_topic
        #: Called after commit with each changed execution and its new events.
        self.listeners: list[EventListener] = list(listeners)
        self.resources = resources if isinstance(resources, Resources) else Resources(resources)
        self.postgres = not is_sqlite(database.url)
        super().__init__(
            EngineParts(
                database=database,
                queue=self.queue,
                registry=registry,
                tracker=Tracker(self.listeners),
                postgres=self.postgres,
                env=dict(env or {}),
                resolver=resolver,
                outbox_topic=outbox_topic,
                resources=self.resources,
                limits=self.limits,
            )
        )
        bound = {kind: functools.partial(h, self) for kind, h in (handlers or {}).items()}
        self.tasks = TaskRunner(self.parts, bound)
        if self.queue.on_dead is None:
            self.queue.on_dead = self.tasks.bury

    @property
    def queue_name(self) -> str:
        """The queue the engine's tasks go to."""
        return self.parts.queue_name

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
    ) -> Execution:
        """Create an execution and schedule its first steps, in the caller's transaction."""
        return await start_execution(
            self.parts,
            session,
            tenant_id=tenant_id,
            workflow_id=workflow_id,
            version=version,
            definition=definition,
            inputs=inputs,
            created_by=created_by,
            priority=priority,
        )

    async def wait_for_change(self, execution_id: str, seconds: float) -> None:
        """Sleep until this process commits a change to the execution, or ``seconds``."""
        await self.parts.tracker.wait_for_change(execution_id, seconds)

    # --- for workers ---------------------------------------------------------------

    async def process(self, task: ClaimedTask, *, owner: str, capacity: int = 0) -> list[Prepared]:
        """Carry out one claimed task (see :meth:`TaskRunner.process`)."""
        return await self.tasks.process(task, owner=owner, capacity=capacity)

    async def start_claimed(
        self, tasks: list[ClaimedTask], *, owner: str
    ) -> dict[str, Prepared | None]:
        """Start claimed ``run`` attempts (see :meth:`TaskRunner.start_claimed`)."""
        return await self.tasks.start_claimed(tasks, owner=owner)

    async def run_prepared(
        self, prepared: Prepared, *, owner: str, capacity: int = 0
    ) -> list[Prepared]:
        """Run an attempt a previous transaction claimed and started for this worker."""
        return await self.tasks.run(prepared.task, owner, capacity=capacity, prepared=prepared)

    def cancel_local(self, execution_ids: set[str]) -> None:
        """Stop the step attempts this process runs for these executions."""
        self.tasks.cancel_local(execution_ids)

    def running_executions(self) -> set[str]:
        """Executions with a step attempt running in this process."""
        return self.tasks.running_executions()
