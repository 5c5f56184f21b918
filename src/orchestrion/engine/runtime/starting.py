"""Starting an execution: checked inputs, its rows, the first steps scheduled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine.events import ExecutionQueued, ExecutionStarted
from orchestrion.engine.models import Execution, StepState
from orchestrion.engine.runtime.concurrency import concurrency_key, slot_free
from orchestrion.engine.runtime.held import hold
from orchestrion.engine.runtime.limits import check_active, check_child, check_inputs
from orchestrion.engine.runtime.parts import EngineParts
from orchestrion.engine.runtime.transition import Transition
from orchestrion.engine.statuses import ExecutionStatus, StepStatus
from orchestrion.engine.tenant_schemas import TenantValidator
from orchestrion.kernel.errors import ValidationFailed
from orchestrion.kernel.ids import utcnow
from orchestrion.kernel.observability import tracing


def schema_errors(schema: Mapping[str, Any], value: Any, *, where: str) -> list[dict[str, Any]]:
    """JSON Schema violations of ``value`` as API ``errors`` entries."""
    validator = TenantValidator(dict(schema))
    return [
        {"loc": [where, *error.absolute_path], "msg": error.message}
        for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    ]


async def start_execution(
    parts: EngineParts,
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
    """Create an execution and schedule its first steps, in the caller's transaction.

    Inputs over the size limit answer 413, a tenant's root executions over its limit
    429; a child past its tree's limits raises ``ChildLimitReached``.
    """
    check_inputs(parts.limits, inputs)
    # Off the event loop: a large input against a tenant's schema is CPU work.
    errors = await anyio.to_thread.run_sync(
        lambda: schema_errors(definition.get("inputs") or {}, inputs, where="inputs")
    )
    if errors:
        raise ValidationFailed("the inputs do not match the workflow's schema", errors=errors)
    if parent is None:
        await check_active(session, parts.limits, tenant_id=tenant_id)
    else:
        await check_child(session, parts.limits, parent_id=parent[0])
    now = utcnow()
    execution = Execution(
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        workflow_version=version,
        definition=definition,
        status=ExecutionStatus.RUNNING,
        inputs=inputs,
        usage={"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0},
        priority=priority,
        created_by=created_by,
        last_seq=0,
        states_version=0,
        created_at=now,
        updated_at=now,
        started_at=now,
        traceparent=tracing.traceparent(),
    )
    if parent is not None:
        execution.parent_execution_id, execution.parent_step_id, execution.parent_index = parent
    parsed = parts.definition_of(execution)
    has_slot = True
    if parsed.concurrency is not None:
        execution.concurrency_key = concurrency_key(parsed, inputs)
        has_slot = await slot_free(
            session, execution, parsed.concurrency.limit, postgres=parts.postgres
        )
    if not has_slot:
        execution.status = ExecutionStatus.PENDING
        execution.started_at = None
    session.add(execution)
    await session.flush()
    states = {s.id: StepState(execution_id=execution.id, step_id=s.id) for s in parsed.steps}
    for state in states.values():
        state.status = StepStatus.PENDING
        state.attempts = 0
        state.launched = 0
    session.add_all(states.values())
    hold(session, execution, states, detached=False)
    transition = Transition(parts, session, execution, parsed, states)
    parts.tracker.track(session, transition)
    if not has_slot:
        transition.emit(
            ExecutionQueued(
                inputs=inputs,
                workflow_version=version,
                concurrency_key=execution.concurrency_key,
            )
        )
        return execution
    transition.emit(ExecutionStarted(inputs=inputs, workflow_version=version))
    await transition.advance()
    return execution
