"""Schema migrations (Alembic) for every service's tables, and how to apply them.

They live inside the package so ``orchestrion db upgrade`` works from any install.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

HERE = Path(__file__).parent


def target_metadata() -> MetaData:
    """The metadata of every table, after importing every model module."""
    import orchestrion.engine.models
    import orchestrion.kernel.bus.outbox
    import orchestrion.kernel.http.idempotency
    import orchestrion.kernel.queue.models
    import orchestrion.services.analytics.models
    import orchestrion.services.auth.models
    import orchestrion.services.content.models
    import orchestrion.services.content.plugins.models
    import orchestrion.services.flags.models
    import orchestrion.services.knowledge.models
    import orchestrion.services.notifications.models
    import orchestrion.services.templates.models
    import orchestrion.services.workflows.automation.models
    import orchestrion.services.workflows.definitions.models
    import orchestrion.services.workflows.llm.models
    import orchestrion.services.workflows.mcp.models  # noqa: F401
    from orchestrion.kernel.db.base import Base

    return Base.metadata


#: Objects migrations create by hand (keyword indexes, PostgreSQL's generated
#: ``fts_vector`` column) that no model declares; they and their shadow tables (SQLite
#: FTS5 ``*_data``, ``*_idx``...) are not compared.
UNMANAGED_PREFIXES = ("content_chunks_fts", "ix_content_chunks_fts", "fts_vector")


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Whether Alembic compares a reflected object (hand-made keyword indexes are not)."""
    return not (name or "").startswith(UNMANAGED_PREFIXES)


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


_REVISION = re.compile(r"^revision(?:: *str)? *= *[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN = re.compile(r"^down_revision(?:: *[^=]+)? *= *[\"']([^\"']+)[\"']", re.MULTILINE)


def revisions() -> list[str]:
    """The package's revisions, oldest first, read from the scripts' text.

    Reading beats :class:`alembic.script.ScriptDirectory`, which imports every script:
    starting a migrated platform asks this on every start. The chain is linear (a test
    checks Alembic agrees).
    """
    parent: dict[str, str | None] = {}
    for script in (HERE / "versions").glob("*.py"):
        text = script.read_text()
        revision = _REVISION.search(text)
        if revision is not None:
            down = _DOWN.search(text)
            parent[revision.group(1)] = down.group(1) if down else None
    children = {down: revision for revision, down in parent.items()}
    chain: list[str] = []
    current = children.get(None)
    while current is not None:
        chain.append(current)
        current = children.get(current)
    return chain


def head_revision() -> str:
    """The newest revision the package's migrations reach."""
    return revisions()[-1]


def is_behind(revision: str) -> bool:
    """Whether ``revision`` is one of this package's, older than its head.

    A revision this package does not know is newer (a rolling upgrade migrated the database
    first): older code keeps running on it, as migrations only add what it ignores.
    """
    chain = revisions()
    return revision in chain and revision != chain[-1]


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at; ``None`` when it was never migrated."""
    from sqlalchemy import inspect, text

    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        if "alembic_version" not in tables:
            return None
        row = (await connection.execute(text("SELECT version_num FROM alembic_version"))).first()
        return None if row is None else str(row[0])
