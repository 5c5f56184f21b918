"""Queries of a tenant's LLM providers, its budgets and the usage ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Date, Row, and_, cast, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine import LlmUsage
from orchestrion.services.workflows.llm.models import LlmBudget, LlmProvider, LlmReservation


async def provider_named(session: AsyncSession, *, tenant_id: str, name: str) -> bool:
    """Whether the tenant has a provider of that name."""
    found = await session.execute(
        select(LlmProvider.id).where(LlmProvider.tenant_id == tenant_id, LlmProvider.name == name)
    )
    return found.first() is not None


async def providers_of(session: AsyncSession, *, tenant_id: str) -> list[LlmProvider]:
    """The tenant's providers by name."""
    rows = await session.execute(
        select(LlmProvider).where(LlmProvider.tenant_id == tenant_id).order_by(LlmProvider.name)
    )
    return list(rows.scalars())


async def find_provider(
    session: AsyncSession, *, tenant_id: str, id_or_name: str
) -> LlmProvider | None:
    """One of the tenant's providers, by id or name."""
    rows = await session.execute(
        select(LlmProvider).where(
            LlmProvider.tenant_id == tenant_id,
            (LlmProvider.id == id_or_name) | (LlmProvider.name == id_or_name),
        )
    )
    return rows.scalars().first()


async def budgets_of(session: AsyncSession, *, tenant_id: str) -> list[LlmBudget]:
    """The tenant's budgets, oldest first."""
    rows = await session.execute(
        select(LlmBudget).where(LlmBudget.tenant_id == tenant_id).order_by(LlmBudget.created_at)
    )
    return list(rows.scalars())


async def lock_budgets(session: AsyncSession, *, tenant_id: str) -> list[LlmBudget]:
    """The tenant's budgets, oldest first, their rows locked until the transaction ends
    (PostgreSQL; SQLite's transactions already run one at a time)."""
    rows = await session.execute(
        select(LlmBudget)
        .where(LlmBudget.tenant_id == tenant_id)
        .order_by(LlmBudget.created_at)
        .with_for_update()
    )
    return list(rows.scalars())


async def get_budget(session: AsyncSession, *, budget_id: str) -> LlmBudget | None:
    """A budget by id, or None."""
    return await session.get(LlmBudget, budget_id)


async def cost(
    session: AsyncSession,
    *,
    tenant_id: str,
    root_execution_id: str | None = None,
    workflow_id: str | None = None,
    since: datetime | None = None,
) -> float:
    """USD spent by the tenant, narrowed to an execution tree, a workflow, a period."""
    stmt = select(func.coalesce(func.sum(LlmUsage.cost_usd), 0.0)).where(
        LlmUsage.tenant_id == tenant_id
    )
    if root_execution_id is not None:
        stmt = stmt.where(LlmUsage.root_execution_id == root_execution_id)
    if workflow_id:
        stmt = stmt.where(LlmUsage.workflow_id == workflow_id)
    if since is not None:
        stmt = stmt.where(LlmUsage.created_at >= since)
    return float((await session.execute(stmt)).scalar_one())


async def usage_groups(
    session: AsyncSession,
    *,
    tenant_id: str,
    group_by: str,
    start: datetime | None,
    end: datetime | None,
    workflow_id: str | None,
) -> list[Row[Any]]:
    """``(key, input tokens, output tokens, cost, attempts)`` per model, workflow or UTC day."""
    key: Any = {
        "model": LlmUsage.model,
        "workflow": LlmUsage.workflow_id,
        "day": cast(LlmUsage.created_at, Date)
        if session.get_bind().dialect.name == "postgresql"
        else func.substr(LlmUsage.created_at, 1, 10),
    }[group_by]
    conditions: list[Any] = [LlmUsage.tenant_id == tenant_id]
    if start is not None:
        conditions.append(LlmUsage.created_at >= start)
    if end is not None:
        conditions.append(LlmUsage.created_at < end)
    if workflow_id:
        conditions.append(LlmUsage.workflow_id == workflow_id)
    rows = await session.execute(
        select(
            key.label("key"),
            func.sum(LlmUsage.input_tokens),
            func.sum(LlmUsage.output_tokens),
            func.sum(LlmUsage.cost_usd),
            func.count(),
        )
        .where(*conditions)
        .group_by(key)
        .order_by(key)
    )
    return list(rows.all())


def _outstanding(now: datetime) -> Any:
    """Reservations still counted: unexpired, and in flight or not yet in the ledger."""
    covered = exists().where(
        LlmUsage.execution_id == LlmReservation.execution_id,
        LlmUsage.step_id == LlmReservation.step_id,
        LlmUsage.iteration == LlmReservation.iteration,
        LlmUsage.attempt == LlmReservation.attempt,
        LlmUsage.created_at >= LlmReservation.settled_at,
    )
    return and_(
        LlmReservation.expires_at > now,
        or_(LlmReservation.settled_at.is_(None), ~covered),
    )


async def reserved(
    session: AsyncSession,
    *,
    tenant_id: str,
    now: datetime,
    root_execution_id: str | None = None,
    workflow_id: str | None = None,
    since: datetime | None = None,
) -> float:
    """USD reserved by calls not yet in the ledger, narrowed like :func:`cost`."""
    stmt = select(func.coalesce(func.sum(LlmReservation.amount_usd), 0.0)).where(
        LlmReservation.tenant_id == tenant_id, _outstanding(now)
    )
    if root_execution_id is not None:
        stmt = stmt.where(LlmReservation.root_execution_id == root_execution_id)
    if workflow_id:
        stmt = stmt.where(LlmReservation.workflow_id == workflow_id)
    if since is not None:
        stmt = stmt.where(LlmReservation.created_at >= since)
    return float((await session.execute(stmt)).scalar_one())


async def drop_expired_reservations(
    session: AsyncSession, *, tenant_id: str, now: datetime
) -> None:
    """Forget the tenant's reservations past their expiry."""
    await session.execute(
        delete(LlmReservation).where(
            LlmReservation.tenant_id == tenant_id, LlmReservation.expires_at <= now
        )
    )


async def settle_reservation(
    session: AsyncSession, *, reservation_id: str, amount_usd: float, now: datetime, until: datetime
) -> None:
    """Replace a reservation's estimate with the call's real cost."""
    await session.execute(
        update(LlmReservation)
        .where(LlmReservation.id == reservation_id)
        .values(amount_usd=amount_usd, settled_at=now, expires_at=until)
    )


async def delete_reservation(session: AsyncSession, *, reservation_id: str) -> None:
    """Release a reservation (its call failed)."""
    await session.execute(delete(LlmReservation).where(LlmReservation.id == reservation_id))
