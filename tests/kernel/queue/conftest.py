"""The queue tests' database: the migrated one of ``database_url`` (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orchestrion.kernel.db.engine import Database


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A :class:`Database` on ``database_url``, disposed of after the test."""
    found = Database(database_url)
    try:
        yield found
    finally:
        await found.dispose()
