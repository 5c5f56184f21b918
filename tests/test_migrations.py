"""The migrations build exactly the tables the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from orchestrion.migrations import include_name, target_metadata


async def test_models_and_migrations_agree(database_url: str) -> None:
    engine = create_async_engine(database_url)

    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": include_name}
        )
        return list(compare_metadata(context, target_metadata()))

    try:
        async with engine.connect() as connection:
            changes = await connection.run_sync(diff)
    finally:
        await engine.dispose()
    assert changes == []


def test_the_revision_chain_read_from_the_scripts_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    from orchestrion.migrations import alembic_config, head_revision, revisions

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    # One head: the chain is linear, as the quick reading assumes.
    assert script.get_heads() == [head_revision()]
    assert revisions() == [rev.revision for rev in script.walk_revisions()][::-1]
