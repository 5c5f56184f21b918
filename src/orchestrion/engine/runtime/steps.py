"""Running step attempts: binding a call to its resources, timeouts, and what the
runtime itself provides to step types (nested bodies, the journal, child workflows)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects import postgresql, sqlite

from orchestrion.engine.definition import StepBody, StepDefinition
from orchestrion.engine.expressions import ExpressionError
from orchestrion.engine.models import Execution, JournalRecord
from orchestrion.engine.outcomes import Failed, ModelUsage, Outcome, StepCall, Waiting
from orchestrion.engine.requirements import (
    CHILDREN,
    JOURNAL,
    STEPS,
    ChildWorkflowError,
    JournalEntry,
    Resources,
    Unavailable,
)
from orchestrion.engine.runtime.limits import (
    ChildLimitReached,
    InputsTooLarge,
    UnstorableValue,
    output_refusal,
)
from orchestrion.engine.statuses import TERMINAL, ExecutionStatus
from orchestrion.kernel.errors import ValidationFailed
from orchestrion.kernel.ids import utcnow
from orchestrion.kernel.queue import ClaimedTask

if TYPE_CHECKING:
    from collections.abc import Mapping

    from orchestrion.engine.runtime.parts import EngineParts

logger = logging.getLogger("orchestrion.engine")


@dataclass(frozen=True)
class Prepared:
    """An attempt claimed and started in a transaction, to run once it commits."""

    task: ClaimedTask
    step: StepDefinition
    index: int | None
    attempt: int
    call: StepCall


class StepExecutor:
    """Binds calls to what their step type declared, and runs attempts, never raising."""

    def __init__(self, parts: EngineParts) -> None:
        self.parts = parts
        self.resources: Resources = parts.resources.with_(
            {STEPS: self, JOURNAL: DatabaseJournal(parts), CHILDREN: ChildRunner(parts)}
        )

    def bind(
        self,
        type_name: str,
        *,
        execution: Execution,
        step_id: str,
        index: int | None,
        attempt: int,
        raw_with: Mapping[str, Any],
        context: Mapping[str, Any],
    ) -> StepCall:
        """The call of one attempt, with the resources its step type declared."""
        step_type = self.parts.registry.get(type_name)
        declared = step_type.requires if step_type is not None else ()
        return StepCall(
            execution_id=execution.id,
            tenant_id=execution.tenant_id,
            step_id=step_id,
            index=index,
            attempt=attempt,
            raw_with=raw_with,
            context=context,
            resources=self.resources.only(declared),
            declared=declared,
        )

    async def run(self, body: StepBody, call: StepCall) -> Outcome:
        """One attempt of a step (or of a compensation ``body``), never raising."""
        step_type = self.parts.registry.get(body.type)
        if step_type is None:
            return Failed(f"unknown step type {body.type!r}", retryable=False)
        try:
            async with asyncio.timeout(body.timeout):
                outcome = await step_type().run(call)
        except TimeoutError:
            return Failed(f"timed out after {body.timeout:g}s")
        except ExpressionError as exc:
            return Failed(f"expression error: {exc}", retryable=False)
        except Unavailable as exc:
            return Failed(f"step type {body.type!r}: {exc}", retryable=False)
        except UnstorableValue as exc:  # a part it would record cannot be: retrying won't help
            return Failed(str(exc), retryable=False)
        except Exception as exc:  # a step type's bug must fail the step, not the worker
            logger.exception("step %s (%s) raised", call.step_id, body.type)
            return Failed(f"{type(exc).__name__}: {exc}")
        if isinstance(outcome, Waiting) and outcome.kind not in step_type.waits:
            return Failed(
                f"step type {body.type!r} may not wait for {outcome.kind}", retryable=False
            )
        return outcome

    async def run_body(self, body: StepBody, call: StepCall) -> Outcome:
        """A nested body (a loop's): ``call`` rebound to the body's type and ``with``."""
        step_type = self.parts.registry.get(body.type)
        declared = step_type.requires if step_type is not None else ()
        inner = replace(
            call,
            raw_with=body.with_,
            resources=self.resources.only(declared),
            declared=declared,
        )
        return await self.run(body, inner)


class DatabaseJournal:
    """The :class:`~orchestrion.engine.requirements.Journal` of steps, in ``wf_step_journal``."""

    def __init__(self, parts: EngineParts) -> None:
        self.parts = parts

    async def get(self, call: StepCall, part: int) -> JournalEntry | None:
        """What was recorded for ``part`` of the calling step, if anything."""
        async with self.parts.database.session() as session:
            row = await session.get(
                JournalRecord, (call.execution_id, call.step_id, _iteration(call), part)
            )
            if row is None:
                return None
            usage = tuple(ModelUsage(**entry) for entry in row.usage or [])
            return JournalEntry(row.output, usage)

    async def put(self, call: StepCall, part: int, entry: JournalEntry) -> bool:
        """Record ``part`` and count its usage, in one transaction (once); whether this
        call recorded it (False: it was already, or the execution is gone)."""
        from orchestrion.engine.runtime.transition import Transition

        refusal = output_refusal(self.parts.limits, entry.output, what=f"part {part} of the output")
        if refusal is not None:
            raise UnstorableValue(refusal)
        async with self.parts.database.session() as session:
            transition = await Transition.open(self.parts, session, call.execution_id)
            if transition is None:
                return False
            dialect = postgresql if self.parts.postgres else sqlite
            values = {
                "execution_id": call.execution_id,
                "step_id": call.step_id,
                "iteration": _iteration(call),
                "part": part,
                "output": entry.output,
                "usage": [_usage_dict(u) for u in entry.usage],
                "recorded_at": utcnow(),
            }
            result = await session.execute(
                dialect.insert(JournalRecord).values(**values).on_conflict_do_nothing()
            )
            recorded = bool(getattr(result, "rowcount", 0))
            if recorded and entry.usage:
                await transition.record_usage(
                    call.step_id, call.index, call.attempt, entry.usage, part=part
                )
            return recorded


def _iteration(call: StepCall) -> int:
    return -1 if call.index is None else call.index


def _usage_dict(usage: ModelUsage) -> dict[str, Any]:
    return {
        "provider": usage.provider,
        "model": usage.model,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": usage.cost_usd,
        "estimated": usage.estimated,
    }


class ChildRunner:
    """The :class:`~orchestrion.engine.requirements.ChildWorkflows` of steps: another
    workflow run as a child of the calling step (its usage adds up to the caller's)."""

    def __init__(self, parts: EngineParts) -> None:
        self.parts = parts

    async def run(
        self, call: StepCall, *, workflow_id: str, inputs: dict[str, Any], seconds: float
    ) -> Any:
        """Start it, wait for its end; its outputs (raises ChildWorkflowError)."""
        from orchestrion.engine.runtime.starting import start_execution

        resolver = self.parts.resolver
        if resolver is None:
            raise ChildWorkflowError("child workflows are not available here")
        async with self.parts.database.session() as session:
            found = await resolver(session, call.tenant_id, workflow_id)
            if found is None:
                raise ChildWorkflowError(f"workflow {workflow_id} not found")
            parent = await session.get(Execution, call.execution_id)
            try:
                child = await start_execution(
                    self.parts,
                    session,
                    tenant_id=call.tenant_id,
                    workflow_id=workflow_id,
                    version=found[0],
                    definition=found[1],
                    inputs=inputs,
                    created_by=parent.created_by if parent else None,
                    parent=(call.execution_id, call.step_id, call.index),
                )
            except ValidationFailed as exc:
                raise ChildWorkflowError(f"inputs do not fit: {exc.errors or exc.detail}") from None
            except (ChildLimitReached, InputsTooLarge) as exc:
                raise ChildWorkflowError(f"not started: {exc.detail}") from None
            child_id = child.id
        deadline = time.monotonic() + seconds
        while True:
            async with self.parts.database.session() as session:
                execution = await session.get(Execution, child_id)
                if execution is not None and execution.status in TERMINAL:
                    if execution.status == ExecutionStatus.SUCCEEDED:
                        return execution.outputs or {}
                    message = (execution.error or {}).get("message", execution.status)
                    raise ChildWorkflowError(f"the workflow {execution.status}: {message}")
            if time.monotonic() > deadline:
                raise ChildWorkflowError(f"the workflow did not finish in {seconds:g}s")
            await self.parts.tracker.wait_for_change(child_id, 0.5)
