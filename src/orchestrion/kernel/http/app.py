"""The common shape of every service's ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from pydantic import SecretStr

from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import install_error_handlers
from orchestrion.kernel.http.bodylimits import (
    DEFAULT_MAX_DEPTH,
    BodyLimits,
    JsonDepthMiddleware,
)
from orchestrion.kernel.http.health import HealthCheck, ServiceHealth, install_health
from orchestrion.kernel.http.methods import MethodGuardMiddleware
from orchestrion.kernel.http.openapi import finish_openapi
from orchestrion.kernel.http.requestid import RequestIdMiddleware
from orchestrion.kernel.observability.metrics import MetricsMiddleware, metrics_endpoint
from orchestrion.kernel.observability.tracing import TracingMiddleware

__all__ = ["Lifespan", "ServiceHealth", "create_service_app"]

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    *,
    name: str,
    title: str,
    version: str,
    database: Database,
    identity_secret: bytes,
    lifespan: Lifespan | None = None,
    limits: BodyLimits | None = None,
    checks: Mapping[str, HealthCheck] | None = None,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with the platform's conventions; its lifespan disposes ``database``.

    ``lifespan`` runs inside the database's lifetime, for a service's own start-up
    (bootstrap data, background tasks). ``limits`` (the settings' ``limits`` section)
    bounds request bodies: JSON nested deeper than ``body_max_depth`` answers 422.
    ``/health`` checks the database and each of ``checks`` (see
    :mod:`orchestrion.kernel.http.health`; the lifespan may add more to
    ``app.state.health_checks``).
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

    install_health(app, database=database, checks=checks)

    max_depth = limits.body_max_depth if limits is not None else DEFAULT_MAX_DEPTH
    app.add_middleware(MethodGuardMiddleware, routes=app.router.routes)
    app.add_middleware(JsonDepthMiddleware, max_depth=max_depth)
    app.add_middleware(MetricsMiddleware, component=name)
    app.add_middleware(TracingMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app


def expose_metrics(app: FastAPI, *, token: SecretStr | None) -> FastAPI:
    """Add ``/metrics`` to a service running on its own (``orchestrion serve``), for
    Prometheus to scrape; ``token`` as the gateway's (``ORCHESTRION_OBSERVABILITY__METRICS_TOKEN``).

    Embedded services share the gateway's process, whose ``/metrics`` reports them.
    """

    async def metrics(request: Request) -> Response:
        return await metrics_endpoint(request, token=token)

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    return app
