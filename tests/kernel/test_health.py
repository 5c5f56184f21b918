"""A service's ``/health``: the database and the checks a service registers, each up or
down with its latency; any of them down is a 503 problem naming it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.http.app import create_service_app
from orchestrion.kernel.http.health import probe


async def test_checks_are_reported_and_one_down_makes_the_service_unready(
    tmp_path: Path,
) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
    state = {"up": True}

    async def cache() -> None:
        if not state["up"]:
            raise ConnectionRefusedError("cache down")

    app = create_service_app(
        name="probe",
        title="probe",
        version="0",
        database=database,
        identity_secret=b"secret",
        checks={"cache": cache},
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            healthy = await client.get("/health")
            assert healthy.status_code == 200, healthy.text
            body = healthy.json()
            assert (body["status"], body["database"]) == ("ok", "ok")
            assert body["cache"]["status"] == "up"
            assert body["cache"]["latency_ms"] >= 0
            assert "error" not in body["cache"]

            state["up"] = False
            down = await client.get("/health")
            assert down.status_code == 503
            assert down.headers["content-type"] == "application/problem+json"
            problem = down.json()
            assert problem["status"] == 503
            assert problem["detail"] == "cache unreachable: ConnectionRefusedError"
            assert problem["cache"]["status"] == "down"
            assert problem["cache"]["error"] == "ConnectionRefusedError"
            assert problem["database"] == "ok"

            # A check registered later (in a lifespan) is reported too.
            app.state.health_checks["late"] = lambda: asyncio.sleep(0)
            state["up"] = True
            late = (await client.get("/health")).json()
            assert late["late"]["status"] == "up"
    finally:
        await database.dispose()


async def test_a_check_that_hangs_is_down_within_its_limit() -> None:
    result = await probe(lambda: asyncio.sleep(30), within=0.05)
    assert (result.status, result.error) == ("down", "no answer within 0.05 s")
