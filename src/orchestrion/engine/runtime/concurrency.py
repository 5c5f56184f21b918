"""Concurrency limits: at most ``limit`` executions of a workflow run per key.

Executions over the limit are created ``pending`` and started, highest priority first,
as running ones end. Two starts must not both see a free slot: PostgreSQL serialises
them on an advisory lock for (workflow, key); SQLite already serialises writers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine.definition import WorkflowDefinition
from orchestrion.engine.events import ExecutionStarted
from orchestrion.engine.expressions import ExpressionError, parse_expression
from orchestrion.engine.models import Execution
from orchestrion.engine.runtime.core import TransitionCore
from orchestrion.engine.statuses import HOLDING_SLOT, ExecutionStatus
from orchestrion.kernel.errors import ValidationFailed
from orchestrion.kernel.ids import utcnow


def concurrency_key(definition: WorkflowDefinition, inputs: dict[str, Any]) -> str:
    """The evaluated key of a limited workflow ("" when it has no key expression)."""
    policy = definition.concurrency
    if policy is None or policy.key is None:
        return ""
    try:
        value = parse_expression(policy.key).render({"inputs": inputs})
    except ExpressionError as exc:
        raise ValidationFailed(
            f"the concurrency key cannot be computed from these inputs: {exc}",
            errors=[{"loc": ["inputs"], "msg": str(exc)}],
        ) from None
    return str(value)[:255]


async def _lock_slots(session: AsyncSession, *, postgres: bool, workflow_id: str, key: str) -> None:
    if postgres:
        lock_id = func.hashtext(f"orchestrion:{workflow_id}:{key}")
        await session.execute(select(func.pg_advisory_xact_lock(lock_id)))


async def _busy(session: AsyncSession, workflow_id: str, key: str) -> int:
    busy = await session.execute(
        select(func.count())
        .select_from(Execution)
        .where(
            Execution.workflow_id == workflow_id,
            Execution.concurrency_key == key,
            Execution.status.in_(HOLDING_SLOT),
        )
    )
    return int(busy.scalar_one())


async def slot_free(
    session: AsyncSession, execution: Execution, limit: int, *, postgres: bool
) -> bool:
    """Whether a new execution may take a slot now (locks the slots until commit)."""
    key = execution.concurrency_key or ""
    await _lock_slots(session, postgres=postgres, workflow_id=execution.workflow_id, key=key)
    return await _busy(session, execution.workflow_id, key) < limit


class Concurrency(TransitionCore):
    """Handing a finished execution's slot to those waiting for one."""

    async def release_slot(self) -> None:
        """An execution ended: start those waiting for a slot while slots are free."""
        execution = self.execution
        policy = self.definition.concurrency
        if execution.concurrency_key is None or policy is None:
            return
        session = self.session
        key = execution.concurrency_key
        await _lock_slots(
            session, postgres=self.parts.postgres, workflow_id=execution.workflow_id, key=key
        )
        await session.flush()  # the count must see this execution's end
        free = policy.limit - await _busy(session, execution.workflow_id, key)
        if free <= 0:
            return
        waiting = await session.execute(
            select(Execution.id)
            .where(
                Execution.workflow_id == execution.workflow_id,
                Execution.concurrency_key == key,
                Execution.status == ExecutionStatus.PENDING,
            )
            .order_by(Execution.priority.desc(), Execution.created_at)
            .limit(free)
        )
        for next_id in list(waiting.scalars()):
            transition = await type(self).open(self.parts, session, next_id)
            if transition is None or transition.execution.status != ExecutionStatus.PENDING:
                continue
            transition.execution.status = ExecutionStatus.RUNNING
            transition.execution.started_at = utcnow()
            transition.emit(
                ExecutionStarted(workflow_version=transition.execution.workflow_version)
            )
            await transition.advance()
