"""The templates service's ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from orchestrion.kernel.bus import service_bus
from orchestrion.kernel.bus.outbox import OutboxRelay
from orchestrion.kernel.http.app import create_service_app
from orchestrion.kernel.http.peers import discover
from orchestrion.kernel.personal import export_router, subscribe_erasure
from orchestrion.services.templates import personal
from orchestrion.services.templates.endpoints import router
from orchestrion.services.templates.starters import seed
from orchestrion.settings import Settings, open_database, service_app_options

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
            verify=settings.tls.client_context(),
        )
        app.state.template_peers = clients
        # Audit lines leave through the outbox, like every service's.
        bus, owns_bus = await service_bus(getattr(app.state, "bus", None), settings.bus.url)
        relay = OutboxRelay(app.state.database, bus) if bus is not None else None
        if relay is not None:
            relay.start()
        erasures = (
            await subscribe_erasure(
                bus, app.state.database, service=personal.SERVICE, erase=personal.erase
            )
            if bus is not None
            else None
        )
        try:
            yield
        finally:
            if erasures is not None:
                # The in-process bus outlives this app: stop before the database goes.
                await erasures.stop()
            if relay is not None:
                await relay.stop()
            if bus is not None and owns_bus:
                await bus.close()
            for peers in owned:
                await peers.aclose()

    app = create_service_app(
        **service_app_options(settings, "templates"),
        database=open_database(settings),
        lifespan=lifespan,
    )
    app.state.template_peers = {}
    app.include_router(router)
    app.include_router(export_router(personal.SERVICE, personal.export))
    return app
