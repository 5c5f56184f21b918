"""A person's records in the workflows service: exported, or anonymised on erasure.

What names a person here, and what erasure does with it (:mod:`orchestrion.kernel.personal`):

- ``created_by`` of workflows and their versions, executions, schedules, triggers, LLM
  providers and budgets, MCP servers: **anonymised** to ``erased:<digest>``. These are the
  tenant's working assets (other people run them, executions are their history): deleting
  them with the person would break the tenant's work, and the pseudonym still tells
  "the same (erased) person" apart from others.
- who cancelled, paused, resumed, retried, approved or rejected an execution (``by`` in
  the execution's log, a user id or the approver's email): **anonymised** in the log, and
  in the approval step's recorded outcome (``{"approved", "data", "by"}``, "rejected by
  ..."). Values a workflow itself copied further (into later steps' outputs) are the
  workflow's data and are not rewritten.

Execution inputs and outputs are the workflow's data: exported with the executions the
person started, kept on erasure.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine import Execution, ExecutionEvent, StepResult, StepState
from orchestrion.kernel.ids import isoformat
from orchestrion.kernel.personal import Person
from orchestrion.services.workflows.automation.models import Schedule, Trigger
from orchestrion.services.workflows.definitions.models import Workflow, WorkflowVersion
from orchestrion.services.workflows.llm.models import LlmBudget, LlmProvider
from orchestrion.services.workflows.mcp.models import McpServer

SERVICE = "workflows"
#: Log entries that say who acted (``data.by``).
ACTED_BY = (
    "execution.cancelled",
    "execution.paused",
    "execution.resumed",
    "execution.retried",
    "step.approved",
    "step.rejected",
)
_OWNED = (
    Workflow,
    WorkflowVersion,
    Execution,
    Schedule,
    Trigger,
    LlmProvider,
    LlmBudget,
    McpServer,
)


async def _acts(session: AsyncSession, person: Person) -> list[ExecutionEvent]:
    """Log entries in which the person acted (by id, email or pseudonym)."""
    query = (
        select(ExecutionEvent)
        .join(Execution, Execution.id == ExecutionEvent.execution_id)
        .where(ExecutionEvent.type.in_(ACTED_BY))
        .order_by(ExecutionEvent.at, ExecutionEvent.execution_id, ExecutionEvent.seq)
    )
    if person.tenant_id is not None:
        query = query.where(Execution.tenant_id == person.tenant_id)
    events = (await session.execute(query)).scalars()
    return [
        e
        for e in events
        if person.named_by(e.data.get("by")) or e.data.get("by") == person.pseudonym
    ]


async def export(session: AsyncSession, person: Person) -> dict[str, Any]:
    """Everything of this service that names ``person``."""

    async def owned(model: Any) -> list[Any]:
        query = select(model).where(model.created_by.in_(person.ids))
        return list((await session.execute(query.order_by(model.created_at))).scalars())

    return {
        "workflows": [
            {
                "id": w.id,
                "name": w.name,
                "version": w.version,
                "status": w.status,
                "created_by": w.created_by,
                "created_at": isoformat(w.created_at),
                "deleted_at": isoformat(w.deleted_at),
            }
            for w in await owned(Workflow)
        ],
        "workflow_versions": [
            {
                "workflow_id": v.workflow_id,
                "version": v.version,
                "name": v.name,
                "created_by": v.created_by,
                "created_at": isoformat(v.created_at),
            }
            for v in await owned(WorkflowVersion)
        ],
        "executions": [
            {
                "id": e.id,
                "workflow_id": e.workflow_id,
                "workflow_version": e.workflow_version,
                "status": e.status,
                "inputs": e.inputs,
                "created_by": e.created_by,
                "created_at": isoformat(e.created_at),
                "finished_at": isoformat(e.finished_at),
            }
            for e in await owned(Execution)
        ],
        "actions": [
            {
                "execution_id": e.execution_id,
                "seq": e.seq,
                "type": e.type,
                "step_id": e.step_id,
                "by": e.data.get("by"),
                "at": isoformat(e.at),
            }
            for e in await _acts(session, person)
        ],
        "schedules": [
            {"id": s.id, "workflow_id": s.workflow_id, "cron": s.cron, "created_by": s.created_by}
            for s in await owned(Schedule)
        ],
        "triggers": [
            {"id": t.id, "workflow_id": t.workflow_id, "name": t.name, "created_by": t.created_by}
            for t in await owned(Trigger)
        ],
        "llm_providers": [
            {"id": p.id, "name": p.name, "created_by": p.created_by}
            for p in await owned(LlmProvider)
        ],
        "llm_budgets": [
            {"id": b.id, "name": b.name, "scope": b.scope, "created_by": b.created_by}
            for b in await owned(LlmBudget)
        ],
        "mcp_servers": [
            {"id": m.id, "name": m.name, "created_by": m.created_by} for m in await owned(McpServer)
        ],
    }


def _scrub(value: Any, old: str, new: str) -> Any:
    """``value`` with ``old`` replaced by ``new`` in every string it holds."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_scrub(item, old, new) for item in value]
    if isinstance(value, dict):
        return {key: _scrub(item, old, new) for key, item in value.items()}
    return value


async def erase(session: AsyncSession, person: Person) -> None:
    """Anonymise ``person`` here (idempotent: a second run finds nothing left to change)."""
    for model in _OWNED:
        await session.execute(
            update(model)
            .where(model.created_by == person.user_id)
            .values(created_by=person.pseudonym)
            .execution_options(synchronize_session=False)
        )
    for event in await _acts(session, person):
        by = event.data.get("by")
        if not isinstance(by, str) or by == person.pseudonym:
            continue
        event.data = {**event.data, "by": person.pseudonym}
        if event.step_id is None:
            continue
        # The approval's recorded outcome carries the same name.
        states = await session.execute(
            select(StepState).where(
                StepState.execution_id == event.execution_id, StepState.step_id == event.step_id
            )
        )
        results = await session.execute(
            select(StepResult).where(
                StepResult.execution_id == event.execution_id,
                StepResult.step_id == event.step_id,
            )
        )
        rows: list[StepState | StepResult] = [*states.scalars(), *results.scalars()]
        for row in rows:
            row.output = _scrub(row.output, by, person.pseudonym)
            row.error = _scrub(row.error, by, person.pseudonym)
        execution = await session.get(Execution, event.execution_id)
        if execution is not None and execution.error:
            execution.error = _scrub(execution.error, by, person.pseudonym)
    await session.flush()
