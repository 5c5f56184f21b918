"""The embedded shape: every service in this process, behind the gateway.

This module composes parts that must not know each other (services never import one
another; the gateway knows services only as upstreams), so it is the one place that
names them all.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from orchestrion import __version__
from orchestrion.gateway.registry import Registrar, Registration, advertised_url
from orchestrion.settings import Settings, open_revocations

if TYPE_CHECKING:
    from orchestrion.gateway.routes import Route

ServiceFactory = Callable[[Settings], FastAPI]


#: Every service's app module, by service name, in the order the embedded shape starts
#: them: auth first; analytics before workflows (in process, its group must exist on the
#: bus before the workflows relay publishes the events staged while the platform was down).
SERVICE_MODULES = {
    "auth": "orchestrion.services.auth.app",
    "analytics": "orchestrion.services.analytics.app",
    "workflows": "orchestrion.services.workflows.app",
    "realtime": "orchestrion.services.realtime.app",
    "knowledge": "orchestrion.services.knowledge.app",
    "content": "orchestrion.services.content.app",
    "templates": "orchestrion.services.templates.app",
    "notifications": "orchestrion.services.notifications.app",
    "flags": "orchestrion.services.flags.app",
}


def _factory(module: str) -> ServiceFactory:
    def create_app(settings: Settings) -> FastAPI:
        app: FastAPI = importlib.import_module(module).create_app(settings)
        return app

    return create_app


def service_factories() -> dict[str, ServiceFactory]:
    """Every service's ``create_app``, by service name. A service's modules are imported
    when its app is made: ``orchestrion serve auth`` never loads the others."""
    return {name: _factory(module) for name, module in SERVICE_MODULES.items()}


def create_embedded_app(settings: Settings, *, routes: list[Route] | None = None) -> ASGIApp:
    """The gateway with every service called in-process; its lifespan runs theirs.

    ``routes`` replaces the default route table (to give routes their own policies).

    Starlette does not run a mounted app's lifespan, so the gateway enters each
    service's lifespan itself, in order, and leaves them in reverse.
    """
    # The gateway and every service are loaded only for the embedded shape.
    from orchestrion.gateway.app import create_gateway
    from orchestrion.gateway.upstream import InProcessUpstream, Upstream
    from orchestrion.kernel.bus import is_memory, open_bus
    from orchestrion.kernel.http.peers import Peers

    secret = settings.secret_key.get_secret_value().encode()
    apps = {name: factory(settings) for name, factory in service_factories().items()}
    upstreams: dict[str, Upstream] = {
        name: InProcessUpstream(name, app, secret=secret) for name, app in apps.items()
    }
    # Services call each other through the same in-process clients the gateway uses.
    peers = Peers({name: upstream.client for name, upstream in upstreams.items()})
    # One in-process bus for the whole process (a broker URL gives each service its own).
    bus = open_bus("memory://") if is_memory(settings.bus.url) else None
    # Auth publishes revocations here; the gateway and realtime honour them at once.
    revocations = open_revocations(settings)
    for app in apps.values():
        app.state.peers = peers
        app.state.bus = bus
        app.state.revocations = revocations

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if bus is not None:
                await stack.enter_async_context(bus)
            await stack.enter_async_context(revocations)
            for app in apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield

    return create_gateway(
        settings, upstreams, routes=routes, lifespan=lifespan, revocations=revocations, bus=bus
    )


def registered(service: str, app: FastAPI, settings: Settings, advertise: str | None) -> FastAPI:
    """``app``, registering itself in the service registry while it runs (if Redis is set)."""
    if not settings.redis.url or not settings.gateway.registry:
        return app
    default = advertised_url(settings.host, settings.port, scheme=settings.tls.scheme)
    url = (advertise or default).rstrip("/")
    registration = Registration(
        service=service,
        url=url,
        version=__version__,
        endpoints=_prefixes(app.routes),
        capabilities=["http", "websocket"] if service == "realtime" else ["http"],
        health_url=f"{url}/health",
        metadata={"pid": str(os.getpid())},
    )
    inner = app.router.lifespan_context
    redis_url = settings.redis.url

    @asynccontextmanager
    async def lifespan(running: FastAPI) -> AsyncIterator[Any]:
        async with (
            inner(running) as state,
            Registrar(
                redis_url,
                registration,
                prefix=settings.gateway.registry_prefix,
                ttl=settings.gateway.registry_ttl_seconds,
            ),
        ):
            yield state

    app.router.lifespan_context = lifespan
    return app


def _prefixes(routes: list[BaseRoute]) -> list[str]:
    """The first three path segments of every route (``/api/v1/workflows``)."""
    found = set()
    for route in routes:
        path = getattr(route, "path", "")
        if path.startswith("/"):
            found.add("/".join(path.split("/")[:4]))
    return sorted(found)
