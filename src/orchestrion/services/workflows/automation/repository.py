"""Queries of schedules, webhook triggers and schedules' pending firings."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.queue.models import Task
from orchestrion.services.workflows.automation.models import Schedule, Trigger


async def get_schedule(session: AsyncSession, *, schedule_id: str) -> Schedule | None:
    """A schedule by id, or None."""
    return await session.get(Schedule, schedule_id)


async def lock_schedule(
    session: AsyncSession, *, schedule_id: str | None, for_update: bool
) -> Schedule | None:
    """A schedule by id, its row locked until the transaction ends when ``for_update``."""
    stmt = select(Schedule).where(Schedule.id == schedule_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def schedules_of(session: AsyncSession, *, workflow_id: str) -> list[Schedule]:
    """A workflow's schedules, oldest first."""
    rows = await session.execute(
        select(Schedule).where(Schedule.workflow_id == workflow_id).order_by(Schedule.created_at)
    )
    return list(rows.scalars())


async def delete_task(session: AsyncSession, *, key: str) -> None:
    """Drop the queued task with this key (a schedule's pending firing), if any."""
    await session.execute(delete(Task).where(Task.key == key))


async def get_trigger(session: AsyncSession, *, trigger_id: str) -> Trigger | None:
    """A trigger by id, or None."""
    return await session.get(Trigger, trigger_id)


async def triggers_of(session: AsyncSession, *, workflow_id: str) -> list[Trigger]:
    """A workflow's triggers, oldest first."""
    rows = await session.execute(
        select(Trigger).where(Trigger.workflow_id == workflow_id).order_by(Trigger.created_at)
    )
    return list(rows.scalars())
