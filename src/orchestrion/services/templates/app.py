"""The templates service's ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from orchestrion import __version__
from orchestrion.kernel.http.app import create_service_app
from orchestrion.kernel.http.peers import discover
from orchestrion.services.templates.endpoints import router
from orchestrion.services.templates.starters import seed
from orchestrion.settings import Settings, open_database

#: Services this one calls: workflows makes the instantiated workflows.
PEER_SERVICES = ("workflows",)


def _explicit_urls(settings: Settings) -> dict[str, str]:
    """Base URLs of the peers for a standalone instance (``ORCHESTRION_PEERS``, which
    ``orchestrion cluster`` hands every process)."""
    return {name: url for name, url in settings.peers.items() if name in PEER_SERVICES}


def create_app(settings: Settings) -> FastAPI:
    """The templates service, on the configured database; it seeds the starter templates
    at start-up and reaches the workflows service through the composer's in-process
    client or, standalone, the service registry."""
    secret = settings.secret_key.get_secret_value().encode()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await seed(app.state.database)
        clients, owned = await discover(
            PEER_SERVICES,
            secret=secret,
            given=getattr(app.state, "peers", None),
            urls=_explicit_urls(settings),
            registry_url=settings.redis.url if settings.gateway.registry else None,
            registry_prefix=settings.gateway.registry_prefix,
        )
        app.state.template_peers = clients
        try:
            yield
        finally:
            for peers in owned:
                await peers.aclose()

    app = create_service_app(
        name="templates",
        title="Orchestrion templates",
        version=__version__,
        database=open_database(settings),
        identity_secret=secret,
        limits=settings.limits,
        lifespan=lifespan,
    )
    app.state.template_peers = {}
    app.include_router(router)
    return app
