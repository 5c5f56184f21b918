"""A service's ``GET /health``: its database, and the checks the service adds.

A check is an async function that returns when what it probes answers and raises when
it does not (a Redis ``PING``, say); a service registers it by name in
``app.state.health_checks``, at creation (``create_service_app(checks=...)``) or in its
lifespan, once what it probes exists. Every check runs at once, each within
:data:`CHECK_TIMEOUT_SECONDS`, and is reported under its name::

    200 {"status": "ok", "database": "ok", "redis": {"status": "up", "latency_ms": 0.4}}

When the database or any check fails, the answer is a 503 problem+json naming what is
down, carrying the same members (``"redis": {"status": "down", "latency_ms", "error"}``)
as extensions: readiness fails, and the gateway's ``/health`` shows why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text
from starlette.responses import Response

from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import ServiceUnavailable, problem_response, request_id_of

#: One probe: returns when its dependency answers, raises when it does not.
HealthCheck = Callable[[], Awaitable[object]]

#: A check slower than this counts as down (the gateway gives a service 3 s in all).
CHECK_TIMEOUT_SECONDS = 2.0


class CheckResult(BaseModel):
    """One check's outcome: up or down, how long it took, and why it failed."""

    status: Literal["up", "down"]
    latency_ms: float
    error: str | None = None


class ServiceHealth(BaseModel):
    """A service's own ``/health``: it runs, its database answers, and so does each check
    (one member per check, named as registered)."""

    model_config = ConfigDict(extra="allow")

    status: str = "ok"
    database: str = "ok"


async def probe(check: HealthCheck, *, within: float = CHECK_TIMEOUT_SECONDS) -> CheckResult:
    """Run ``check`` once, timed; a failure or a timeout is ``down``, never an exception."""
    start = time.perf_counter()
    error: str | None = None
    try:
        async with asyncio.timeout(within):
            await check()
    except TimeoutError:
        error = f"no answer within {within:g} s"
    except Exception as exc:
        error = type(exc).__name__
    latency = round((time.perf_counter() - start) * 1000, 2)
    return CheckResult(status="up" if error is None else "down", latency_ms=latency, error=error)


def database_check(database: Database) -> HealthCheck:
    """A check that the database answers ``SELECT 1``."""

    async def check() -> None:
        async with database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return check


def install_health(
    app: FastAPI, *, database: Database, checks: Mapping[str, HealthCheck] | None = None
) -> None:
    """Serve ``GET /health`` on ``app`` from ``database`` and ``app.state.health_checks``."""
    app.state.health_checks = dict(checks or {})
    check_database = database_check(database)

    @app.get(
        "/health",
        include_in_schema=False,
        response_model=ServiceHealth,
        response_model_exclude_none=True,
    )
    async def service_health(request: Request) -> Response:
        """Healthy when the database and every registered check answer."""
        registered: dict[str, HealthCheck] = dict(request.app.state.health_checks)
        names = list(registered)
        results = await asyncio.gather(
            probe(check_database), *(probe(registered[name]) for name in names)
        )
        database_result, checked = results[0], dict(zip(names, results[1:], strict=True))
        members: dict[str, Any] = {
            "database": "ok" if database_result.status == "up" else "down",
            **{name: result.model_dump(exclude_none=True) for name, result in checked.items()},
        }
        down = [
            f"{name} unreachable: {result.error}"
            for name, result in (("database", database_result), *checked.items())
            if result.status == "down"
        ]
        if not down:
            return JSONResponse({"status": "ok", **members})
        exc = ServiceUnavailable("; ".join(down))
        return problem_response(
            status=exc.status_code,
            detail=exc.detail,
            instance=request.url.path,
            request_id=request_id_of(request),
            title=exc.default_title(),
            type_uri=exc.type_uri,
            extensions=members,
        )
