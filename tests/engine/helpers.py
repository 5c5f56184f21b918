"""What the engine's tests share: an execution started straight on the engine."""

from __future__ import annotations

from typing import Any

from orchestrion.engine import Engine


async def start(engine: Engine, definition: dict[str, Any]) -> str:
    """Start ``definition`` (tenant ``t``, workflow ``w`` version 1, no inputs); its id."""
    async with engine.database.session() as session:
        execution = await engine.start(
            session,
            tenant_id="t",
            workflow_id="w",
            version=1,
            definition=definition,
            inputs={},
            created_by=None,
        )
        return execution.id
