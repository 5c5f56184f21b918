"""The analytics service's ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from orchestrion.kernel.bus import service_bus
from orchestrion.kernel.bus.outbox import OutboxRelay
from orchestrion.kernel.http.app import create_service_app
from orchestrion.services.analytics import consumer
from orchestrion.services.analytics.endpoints import router
from orchestrion.settings import Settings, open_database, service_app_options


def create_app(settings: Settings) -> FastAPI:
    """The analytics service, on the configured database; with a bus, it projects the
    execution events of the workflows service (:mod:`.consumer`) and publishes SLO
    changes through its outbox."""
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
                # Many handlers at once, their events applied in batches (one
                # transaction each); out-of-order entries of an execution count right.
                batcher = consumer.Batcher(database)
                stack.push_async_callback(batcher.close)
                subscription = await bus.subscribe(
                    consumer.TOPIC,
                    consumer.GROUP,
                    consumer.handler(bus, batcher),
                    concurrency=consumer.CONCURRENCY,
                )
                # The in-process bus outlives this app: stop handling before the database
                # is disposed, or a late event would open a connection nobody closes.
                stack.push_async_callback(subscription.stop)
            yield

    app = create_service_app(
        **service_app_options(settings, "analytics"),
        database=database,
        lifespan=lifespan,
    )
    app.include_router(router)
    return app
