"""What the engine's tests share: an execution started straight on the engine, and
waited for."""

from __future__ import annotations

import asyncio
from typing import Any

from orchestrion.engine import Engine
from orchestrion.engine.models import Execution


async def start(engine: Engine, definition: dict[str, Any], *, workflow_id: str = "w") -> str:
    """Start ``definition`` (tenant ``t``, version 1 of ``workflow_id``, no inputs); its id.
    The engine caches a parsed definition by workflow and version: give each shape its own
    ``workflow_id``."""
    async with engine.database.session() as session:
        execution = await engine.start(
            session,
            tenant_id="t",
            workflow_id=workflow_id,
            version=1,
            definition=definition,
            inputs={},
            created_by=None,
        )
        return execution.id


async def until_finished(engine: Engine, execution_id: str, within: float = 60) -> Execution:
    """The execution once it is no longer pending or running (within ``within`` seconds)."""
    async with asyncio.timeout(within):
        while True:
            async with engine.database.session() as session:
                execution = await session.get(Execution, execution_id)
                assert execution is not None
                if execution.status not in ("running", "pending"):
                    return execution
            await engine.wait_for_change(execution_id, 0.2)
