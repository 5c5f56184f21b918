"""Children: ``child`` waits start another execution; its end resolves the wait.

A child's usage adds up to its parent's (only what it has not given yet: a retried
child finishes again). Children nest at most ``max_child_depth`` deep, a root starts at
most ``max_child_executions`` of them (:mod:`.limits`), and they stop when their parent
stops.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from orchestrion.engine.definition import StepDefinition
from orchestrion.engine.models import Execution, Wait
from orchestrion.engine.outcomes import Failed, Outcome, Succeeded
from orchestrion.engine.runtime.core import NO_ITERATION, TransitionCore
from orchestrion.engine.runtime.limits import ChildLimitReached, InputsTooLarge
from orchestrion.engine.runtime.recording import USAGE_KEYS, add_usage
from orchestrion.engine.statuses import TERMINAL, ExecutionStatus, WaitKind
from orchestrion.kernel.errors import ValidationFailed


class Children(TransitionCore):
    """Starting children, hearing of their end, cancelling them."""

    async def start_child(
        self, *, step: StepDefinition, index: int | None, spec: dict[str, Any]
    ) -> str | Outcome:
        """Start a waiting step's child; its id, or why it cannot start."""
        from orchestrion.engine.runtime.starting import start_execution

        resolver = self.parts.resolver
        if resolver is None:
            return Failed("sub-workflows are not available here", retryable=False)
        workflow_id = str(spec["workflow_id"])
        found = await resolver(self.session, self.execution.tenant_id, workflow_id)
        if found is None:
            return Failed(f"workflow {workflow_id} not found", retryable=False)
        version, definition = found
        try:
            child = await start_execution(
                self.parts,
                self.session,
                tenant_id=self.execution.tenant_id,
                workflow_id=workflow_id,
                version=version,
                definition=definition,
                inputs=spec.get("inputs") or {},
                created_by=self.execution.created_by,
                priority=self.execution.priority,
                parent=(self.execution.id, step.id, index),
            )
        except ValidationFailed as exc:
            return Failed(
                f"child inputs: {exc.detail}", retryable=False, details={"errors": exc.errors}
            )
        except (ChildLimitReached, InputsTooLarge) as exc:
            return Failed(f"sub-workflow not started: {exc.detail}", retryable=False)
        return child.id

    async def tell_parent(self) -> None:
        """This child ended: give its usage to its parent and resolve the parent's wait."""
        parent_id = self.execution.parent_execution_id
        parent = await type(self).open(self.parts, self.session, parent_id) if parent_id else None
        if parent is None:
            return
        usage = self.execution.usage or {}
        given = usage.get("given_to_parent") or {}
        delta = {k: float(usage.get(k, 0)) - float(given.get(k, 0)) for k in USAGE_KEYS}
        if any(delta.values()):
            parent.execution.usage = add_usage(parent.execution.usage, delta)
            self.execution.usage = {
                **usage,
                "given_to_parent": {k: usage.get(k, 0) for k in USAGE_KEYS},
            }
        iteration = self.execution.parent_index
        step_id = self.execution.parent_step_id
        key = (parent.execution.id, step_id, NO_ITERATION if iteration is None else iteration)
        wait = await self.session.get(Wait, key)
        if wait is None or wait.kind != WaitKind.CHILD:
            return
        if wait.child_execution_id not in (None, self.execution.id):
            return
        execution = self.execution
        outcome: Outcome
        if execution.status == ExecutionStatus.SUCCEEDED:
            outcome = Succeeded(execution.outputs or {})
        else:
            message = (execution.error or {}).get("message", execution.status)
            outcome = Failed(
                f"child execution {execution.id} {execution.status}: {message}", retryable=False
            )
        await parent.resolve_wait(wait, outcome)
        await parent.advance()

    async def cancel_children(self) -> None:
        """Cancel the running children of an execution that stops."""
        rows = await self.session.execute(
            select(Execution.id).where(
                Execution.parent_execution_id == self.execution.id,
                Execution.status.not_in(TERMINAL),
            )
        )
        for child_id in list(rows.scalars()):
            child = await type(self).open(self.parts, self.session, child_id)
            if child is not None and child.execution.status not in TERMINAL:
                await child.cancel(by="parent")
