"""PostgreSQL connections leaving the pool: one the server closed is replaced without a
round trip, and only one that sat idle is pinged (every checkout was three round trips
of a queued step's dozen; see ``kernel/db/engine.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.engine import make_url

from orchestrion.kernel.db.engine import Database

pytestmark = pytest.mark.postgres


async def _backend_and_driver(database: Database) -> tuple[int, Any]:
    async with database.session() as session:
        pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        raw = await (await session.connection()).get_raw_connection()
        return int(pid), raw.driver_connection


async def test_a_connection_the_server_closed_is_replaced_at_checkout(postgres_url: str) -> None:
    database = Database(postgres_url, pool_size=1, ping_after_idle=3600)
    url = make_url(postgres_url).set(drivername="postgresql")
    admin = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        pid, driver = await _backend_and_driver(database)
        await admin.execute("SELECT pg_terminate_backend($1, 10000)", pid)
        for _ in range(500):  # until asyncpg has read the server's goodbye
            if driver.is_closed():
                break
            await asyncio.sleep(0.01)
        assert driver.is_closed()

        # Not pinged (it was idle a moment only), yet not handed out dead either.
        again, _ = await _backend_and_driver(database)
        assert again != pid
    finally:
        await admin.close()
        await database.dispose()


@pytest.mark.parametrize(("ping_after_idle", "pings"), [(3600.0, 0), (0.0, 2)])
async def test_only_a_connection_idle_past_the_limit_is_pinged(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, ping_after_idle: float, pings: int
) -> None:
    pinged = 0
    original = AsyncAdapt_asyncpg_connection.ping

    def counted(self: AsyncAdapt_asyncpg_connection) -> None:
        nonlocal pinged
        pinged += 1
        original(self)

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counted)
    database = Database(postgres_url, pool_size=1, ping_after_idle=ping_after_idle)
    try:
        first, _ = await _backend_and_driver(database)  # a fresh connection: never pinged
        for _ in range(2):
            assert (await _backend_and_driver(database))[0] == first
        assert pinged == pings
    finally:
        await database.dispose()
