"""Queries of executions, their step states and their event log (the engine's tables)."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine import Execution, ExecutionEvent, StepState
from orchestrion.kernel.http.lists import ListQuery, ListSpec, Page, equals, fetch_page

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


def executions_of(tenant_id: str) -> Select[Execution]:
    """A tenant's executions."""
    return select(Execution).where(Execution.tenant_id == tenant_id)


async def page_of(session: AsyncSession, *, tenant_id: str, query: ListQuery) -> Page:
    """One page of a tenant's executions."""
    return await fetch_page(session, executions_of(tenant_id), EXECUTION_LIST, query)


async def get(session: AsyncSession, *, tenant_id: str, execution_id: str) -> Execution | None:
    """An execution of the tenant, or None (another tenant's is None too)."""
    result = await session.execute(executions_of(tenant_id).where(Execution.id == execution_id))
    return result.scalar_one_or_none()


async def get_any(session: AsyncSession, *, execution_id: str) -> Execution | None:
    """An execution by id, whatever its tenant."""
    return await session.get(Execution, execution_id)


async def recent(session: AsyncSession, *, tenant_id: str, limit: int) -> list[Execution]:
    """The tenant's latest executions, newest first."""
    rows = await session.execute(
        executions_of(tenant_id).order_by(Execution.created_at.desc()).limit(limit)
    )
    return list(rows.scalars())


async def step_states(
    session: AsyncSession, *, execution_ids: list[str]
) -> dict[str, list[StepState]]:
    """Step states of several executions, by execution id."""
    if not execution_ids:
        return {}
    rows = await session.execute(select(StepState).where(StepState.execution_id.in_(execution_ids)))
    found: dict[str, list[StepState]] = {}
    for row in rows.scalars():
        found.setdefault(row.execution_id, []).append(row)
    return found


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


async def events_until(
    session: AsyncSession, *, execution_id: str, until: int
) -> list[ExecutionEvent]:
    """Every log entry up to ``seq == until``, oldest first."""
    rows = await session.execute(
        select(ExecutionEvent)
        .where(ExecutionEvent.execution_id == execution_id, ExecutionEvent.seq <= until)
        .order_by(ExecutionEvent.seq)
    )
    return list(rows.scalars())
