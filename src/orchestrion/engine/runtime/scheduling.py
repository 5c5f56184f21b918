"""Scheduling: which steps start, their ``when`` and ``for_each``, and how they run.

Instant step types run inside the transaction that schedules them; any other attempt is
a task on the queue, or, when a worker recording an outcome has room, a task created
already leased to it and started here (a chain continues without a claim).
"""

from __future__ import annotations

import heapq

from orchestrion.engine.definition import StepDefinition
from orchestrion.engine.events import StepSkipped, StepStarted
from orchestrion.engine.expressions import ExpressionError, parse_expression
from orchestrion.engine.flags import step_flags
from orchestrion.engine.outcomes import Failed, Succeeded
from orchestrion.engine.runtime.core import TransitionCore
from orchestrion.engine.runtime.flags import flags_pending
from orchestrion.engine.runtime.limits import items_refusal
from orchestrion.engine.runtime.progress import Progress
from orchestrion.engine.statuses import STEP_DONE, StepStatus, TaskKind
from orchestrion.kernel.ids import utcnow


class Scheduling(TransitionCore):
    """Starting steps, iterations and attempts."""

    async def advance(self) -> None:
        """Schedule every step whose needs are met, run instant ones, then settle status."""
        # Changes are flushed once at commit (or where a query needs them), not
        # before every statement: a chain of instant steps is a handful of round trips.
        with self.session.no_autoflush:
            progress = self.progress()
            if progress is None:
                await self._walk_every_step()
            else:
                await self._walk_ready(progress)
            await self.settle()

    async def _walk_ready(self, progress: Progress) -> None:
        # The walk below over every step, visiting only the ready ones (see
        # :mod:`.progress`): the same steps start, in the same order.
        steps = progress.graph.steps
        progressed = True
        while progressed and self.active:
            progressed = False
            # One pass in the definition's order: a step that becomes ready ahead of
            # the pass is started in it, one behind it waits for the next pass.
            ahead = sorted(progress.ready)
            progress.became_ready.clear()
            visited = -1
            while ahead:
                position = heapq.heappop(ahead)
                if position <= visited or position not in progress.ready:
                    continue
                visited = position
                step = steps[position]
                await self._start_step(step)
                if self.states[step.id].status in STEP_DONE:
                    progressed = True
                for later in progress.became_ready:
                    if later > position:
                        heapq.heappush(ahead, later)
                progress.became_ready.clear()

    async def _walk_every_step(self) -> None:
        progressed = True
        while progressed and self.active:
            # Walk again only when a step started here is done already (an instant
            # step, a skip): only a done step lets another start. A step that was
            # queued, or failed, changes no one's needs (a failure ends the walk
            # through ``active``).
            progressed = False
            for step in self.definition.steps:
                state = self.states[step.id]
                if state.status != StepStatus.PENDING:
                    continue
                if not all(self.states[need].status in STEP_DONE for need in step.needs):
                    continue
                await self._start_step(step)
                if self.states[step.id].status in STEP_DONE:
                    progressed = True

    async def _start_step(self, step: StepDefinition) -> None:
        state = self.states[step.id]
        keys = step_flags(step)
        if keys and await flags_pending(self, step.id, keys):
            return  # a worker evaluates them, then starts the step again
        if step.when:
            try:
                go = parse_expression(step.when).render(self.context())
            except ExpressionError as exc:
                await self.record(step, None, 1, Failed(f"'when': {exc}", retryable=False))
                return
            if not go:
                state.status = StepStatus.SKIPPED
                state.finished_at = utcnow()
                self.emit(StepSkipped(step_id=step.id))
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
            await self.record(step, None, 1, Failed(f"'for_each': {exc}", retryable=False))
            return
        if not isinstance(items, list):
            message = f"'for_each' must give a list, got {type(items).__name__}"
            await self.record(step, None, 1, Failed(message, retryable=False))
            return
        refusal = items_refusal(self.parts.limits, len(items))
        if refusal is not None:
            await self.record(step, None, 1, Failed(refusal, retryable=False))
            return
        state.items = items
        state.status = StepStatus.RUNNING
        state.started_at = utcnow()
        self.emit(StepStarted(step_id=step.id, items=len(items)))
        if not items:
            await self.record(step, None, 1, Succeeded([]))
            return
        done = {r.iteration for r in await self.results(step.id) if r.status == "succeeded"}
        await self.launch_iterations(step, done=done)

    async def launch_iterations(self, step: StepDefinition, *, done: set[int]) -> None:
        """Start iterations while fewer than ``concurrency`` run (recorded ones are reused)."""
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
        from orchestrion.engine.runtime.steps import Prepared

        step_type = self.parts.registry.get(step.type)
        state = self.states[step.id]
        if index is None:
            state.status = StepStatus.QUEUED
        if step_type is not None and step_type.instant and not step.timeout:
            call = self.call(step, index=index, attempt=attempt)
            outcome = await self.parts.executor.run(step, call)
            if index is None:
                state.started_at = utcnow()
                self.emit(StepStarted(step_id=step.id, attempt=attempt))
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
                TaskKind.RUN, step.id, index=index, attempt=attempt, leased_to=self.claim_for
            )
            if task is not None:
                self.start_attempt(step, index=index, attempt=attempt)
                call = self.call(step, index=index, attempt=attempt)
                self.prepared.append(
                    Prepared(task=task, step=step, index=index, attempt=attempt, call=call)
                )
            return
        await self.enqueue(TaskKind.RUN, step.id, index=index, attempt=attempt)

    def start_attempt(self, step: StepDefinition, *, index: int | None, attempt: int) -> None:
        """Mark an attempt as running (``step.started``)."""
        state = self.states[step.id]
        if index is None:
            state.status = StepStatus.RUNNING
            state.attempts = max(state.attempts, attempt)
            state.started_at = state.started_at or utcnow()
        self.emit(StepStarted(step_id=step.id, attempt=attempt, index=index))
