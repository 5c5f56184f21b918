"""The flags service's ASGI app: its routes and the outbox relay that publishes
``flags.changed``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from orchestrion.kernel.bus import service_bus
from orchestrion.kernel.bus.outbox import OutboxRelay
from orchestrion.kernel.http.app import create_service_app
from orchestrion.kernel.personal import export_router, subscribe_erasure
from orchestrion.services.flags import personal
from orchestrion.services.flags.endpoints import router
from orchestrion.settings import Settings, open_database, service_app_options


def create_app(settings: Settings) -> FastAPI:
    """The flags service, on the configured database; with a bus, every change of a flag
    is published on ``flags.changed``."""
    database = open_database(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            bus, owned = await service_bus(getattr(app.state, "bus", None), settings.bus.url)
            if bus is not None:
                if owned:
                    stack.push_async_callback(bus.close)
                relay = OutboxRelay(database, bus)
                relay.start()
                stack.push_async_callback(relay.stop)
                erasures = await subscribe_erasure(
                    bus, database, service=personal.SERVICE, erase=personal.erase
                )
                stack.push_async_callback(erasures.stop)
            yield

    app = create_service_app(
        **service_app_options(settings, "flags"),
        database=database,
        lifespan=lifespan,
    )
    app.include_router(router)
    app.include_router(export_router(personal.SERVICE, personal.export))
    return app
