"""Rules of executions: starting them from a workflow, reading them, their event log.

The engine (``orchestrion.engine``) does the running; this module ties it to the
workflows service's tenancy and shapes what the API returns.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine.fold import fold
from orchestrion.engine.models import Execution, ExecutionEvent, StepState
from orchestrion.engine.runtime import Engine
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.errors import Conflict
from orchestrion.kernel.http.lists import ListSpec, equals, query_int
from orchestrion.kernel.ids import isoformat
from orchestrion.services.workflows.definitions import service as definitions
from orchestrion.services.workflows.errors import ExecutionNotFound, WorkflowNotFound

EXECUTION_LIST = ListSpec(
    sortable={
        "created_at": Execution.created_at,
        "finished_at": Execution.finished_at,
        "status": Execution.status,
    },
    filters={
        "workflow_id": equals(Execution.workflow_id),
        "status": equals(Execution.status),
        "parent_execution_id": equals(Execution.parent_execution_id),
    },
    fields=frozenset(
        {
            "id",
            "workflow_id",
            "workflow_version",
            "status",
            "inputs",
            "outputs",
            "error",
            "steps",
            "usage",
            "parent_execution_id",
            "created_at",
            "started_at",
            "finished_at",
        }
    ),
    id_column=Execution.id,
)
MAX_EVENTS_PAGE = 1000
MAX_SEQ = 2**31 - 1


async def resolve_workflow(
    session: AsyncSession, tenant_id: str, workflow_id: str
) -> tuple[int, dict[str, Any]] | None:
    """The current version and runnable definition of a tenant's workflow."""
    workflow = await definitions.find_workflow(
        session, tenant_id=tenant_id, workflow_id=workflow_id
    )
    if workflow is None:
        return None
    return workflow.version, {"name": workflow.name, **workflow.definition}


async def start_execution(
    session: AsyncSession,
    *,
    engine: Engine,
    principal: Principal,
    workflow_id: str,
    inputs: dict[str, Any],
    priority: int = 0,
) -> Execution:
    """Run the workflow's current version with ``inputs`` (422 when they do not fit)."""
    workflow = await definitions.find_workflow(
        session, tenant_id=principal.tenant_id, workflow_id=workflow_id
    )
    if workflow is None:
        raise WorkflowNotFound(f"workflow '{workflow_id}' not found")
    if workflow.status == "archived":
        raise Conflict("archived workflows cannot run; set its status to active first")
    return await engine.start(
        session,
        tenant_id=principal.tenant_id,
        workflow_id=workflow.id,
        version=workflow.version,
        definition={"name": workflow.name, **workflow.definition},
        inputs=inputs,
        created_by=principal.user_id,
        priority=priority,
    )


def executions_of(tenant_id: str) -> Select[Execution]:
    """A tenant's executions."""
    return select(Execution).where(Execution.tenant_id == tenant_id)


async def get_execution(session: AsyncSession, *, tenant_id: str, execution_id: str) -> Execution:
    """An execution of the tenant; another tenant's is a 404."""
    found = (
        await session.execute(executions_of(tenant_id).where(Execution.id == execution_id))
    ).scalar_one_or_none()
    if found is None:
        raise ExecutionNotFound(f"execution '{execution_id}' not found")
    return found


async def step_states(
    session: AsyncSession, execution_ids: list[str]
) -> dict[str, list[StepState]]:
    """Step states of several executions, by execution id."""
    if not execution_ids:
        return {}
    rows = await session.execute(select(StepState).where(StepState.execution_id.in_(execution_ids)))
    found: dict[str, list[StepState]] = {}
    for row in rows.scalars():
        found.setdefault(row.execution_id, []).append(row)
    return found


def to_dict(execution: Execution, states: list[StepState]) -> dict[str, Any]:
    """The API shape of an execution, steps in definition order."""
    order = {step["id"]: i for i, step in enumerate(execution.definition.get("steps", []))}
    steps = sorted(states, key=lambda s: order.get(s.step_id, len(order)))
    return {
        "id": execution.id,
        "workflow_id": execution.workflow_id,
        "workflow_version": execution.workflow_version,
        "status": execution.status,
        "inputs": execution.inputs,
        "outputs": execution.outputs,
        "error": execution.error,
        "steps": [
            {
                "id": s.step_id,
                "status": "pending" if s.status == "queued" else s.status,
                "attempts": s.attempts,
                "output": s.output,
                "error": s.error,
                "started_at": isoformat(s.started_at),
                "finished_at": isoformat(s.finished_at),
            }
            for s in steps
        ],
        "usage": {
            "input_tokens": int(execution.usage.get("input_tokens", 0)),
            "output_tokens": int(execution.usage.get("output_tokens", 0)),
            "cost_usd": float(execution.usage.get("cost_usd", 0.0)),
        },
        "parent_execution_id": execution.parent_execution_id,
        "created_at": isoformat(execution.created_at),
        "started_at": isoformat(execution.started_at),
        "finished_at": isoformat(execution.finished_at),
    }


async def execution_dict(session: AsyncSession, execution: Execution) -> dict[str, Any]:
    """:func:`to_dict` with the step states loaded."""
    states = await step_states(session, [execution.id])
    return to_dict(execution, states.get(execution.id, []))


def event_to_dict(event: ExecutionEvent) -> dict[str, Any]:
    """The API shape of a log entry."""
    return {
        "seq": event.seq,
        "type": event.type,
        "step_id": event.step_id,
        "data": event.data,
        "at": isoformat(event.at),
    }


def event_window(params: Any) -> tuple[int, int | None, int]:
    """``after``, ``until`` and ``limit`` from a query string (400 when malformed)."""
    after = query_int(params.get("after"), "after", default=0, minimum=0)
    raw_until = params.get("until")
    until = query_int(raw_until, "until", default=1) if raw_until else None
    limit = query_int(params.get("limit"), "limit", default=100)
    # seq is a 32-bit column: a larger bound means "past every event", not an error.
    after = min(after, MAX_SEQ)
    until = None if until is None else min(until, MAX_SEQ)
    return after, until, min(limit, MAX_EVENTS_PAGE)


async def events(
    session: AsyncSession, *, execution_id: str, after: int, until: int | None, limit: int
) -> list[ExecutionEvent]:
    """Log entries with ``after < seq <= until``, oldest first."""
    stmt = select(ExecutionEvent).where(
        ExecutionEvent.execution_id == execution_id, ExecutionEvent.seq > after
    )
    if until is not None:
        stmt = stmt.where(ExecutionEvent.seq <= until)
    rows = await session.execute(stmt.order_by(ExecutionEvent.seq).limit(limit))
    return list(rows.scalars())


async def state_at(session: AsyncSession, *, execution: Execution, until: int) -> dict[str, Any]:
    """The execution as it was at ``seq == until``, folded from the log."""
    rows = await session.execute(
        select(ExecutionEvent)
        .where(ExecutionEvent.execution_id == execution.id, ExecutionEvent.seq <= until)
        .order_by(ExecutionEvent.seq)
    )
    step_ids = [step["id"] for step in execution.definition.get("steps", [])]
    return fold((event_to_dict(e) for e in rows.scalars()), step_ids)
