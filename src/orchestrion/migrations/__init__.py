"""Schema migrations (Alembic) for every service's tables, and how to apply them.

They live inside the package so ``orchestrion db upgrade`` works from any install.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData

HERE = Path(__file__).parent


def target_metadata() -> MetaData:
    """The metadata of every table, after importing every model module."""
    import orchestrion.engine.models
    import orchestrion.kernel.bus.outbox
    import orchestrion.kernel.http.idempotency
    import orchestrion.kernel.queue.models
    import orchestrion.services.auth.models
    import orchestrion.services.content.plugins.models
    import orchestrion.services.knowledge.models
    import orchestrion.services.templates.models
    import orchestrion.services.workflows.automation.models
    import orchestrion.services.workflows.definitions.models
    import orchestrion.services.workflows.llm.models
    import orchestrion.services.workflows.mcp.models  # noqa: F401
    from orchestrion.kernel.db.base import Base

    return Base.metadata


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at these migrations and ``url``."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``; safe to call on an up-to-date database.

    Alembic drives its own event loop, so call this from synchronous code (or a thread).
    """
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    """:func:`upgrade` from async code, run in a worker thread."""
    await asyncio.to_thread(upgrade, url, revision)
