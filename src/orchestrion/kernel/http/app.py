"""The common shape of every service's ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import text

from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import ServiceUnavailable, install_error_handlers
from orchestrion.kernel.http.bodylimits import (
    DEFAULT_MAX_DEPTH,
    BodyLimits,
    JsonDepthMiddleware,
)
from orchestrion.kernel.http.methods import MethodGuardMiddleware
from orchestrion.kernel.http.openapi import finish_openapi
from orchestrion.kernel.http.requestid import RequestIdMiddleware
from orchestrion.kernel.observability.metrics import MetricsMiddleware

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class ServiceHealth(BaseModel):
    """A service's own ``/health``: it runs and its database answers."""

    status: str = "ok"
    database: str = "ok"


def create_service_app(
    *,
    name: str,
    title: str,
    version: str,
    database: Database,
    identity_secret: bytes,
    lifespan: Lifespan | None = None,
    limits: BodyLimits | None = None,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with the platform's conventions; its lifespan disposes ``database``.

    ``lifespan`` runs inside the database's lifetime, for a service's own start-up
    (bootstrap data, background tasks). ``limits`` (the settings' ``limits`` section)
    bounds request bodies: JSON nested deeper than ``body_max_depth`` answers 422.
    """

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield
        finally:
            await database.dispose()

    app = FastAPI(title=title, version=version, lifespan=_lifespan, **fastapi_kwargs)
    app.state.service_name = name
    app.state.database = database
    app.state.identity_secret = identity_secret
    app.state.limits = limits
    if limits is not None:
        app.state.list_max_offset = limits.list_max_offset
    install_error_handlers(app)
    finish_openapi(app)

    @app.get("/health", include_in_schema=False, response_model=ServiceHealth)
    async def service_health() -> ServiceHealth:
        """Healthy when the database answers."""
        try:
            async with database.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            raise ServiceUnavailable(f"database unreachable: {type(exc).__name__}") from exc
        return ServiceHealth()

    max_depth = limits.body_max_depth if limits is not None else DEFAULT_MAX_DEPTH
    app.add_middleware(MethodGuardMiddleware, routes=app.router.routes)
    app.add_middleware(JsonDepthMiddleware, max_depth=max_depth)
    app.add_middleware(MetricsMiddleware, component=name)
    app.add_middleware(RequestIdMiddleware)
    return app
