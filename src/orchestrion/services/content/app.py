"""The content service's ASGI app: its routes and the plugins' (``plugins/``), the
worker that processes large documents, the outbox relay that publishes ``content.*``
events, and a person's records (:mod:`.personal`: the internal export route, the
erasure on ``user.erased``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

import anyio
from fastapi import FastAPI

from orchestrion.kernel.bus import service_bus
from orchestrion.kernel.bus.outbox import OutboxRelay
from orchestrion.kernel.embeddings import open_embedder
from orchestrion.kernel.http.app import create_service_app
from orchestrion.kernel.http.openapi import narrow_enum, refine_schemas
from orchestrion.kernel.personal import export_router, subscribe_erasure
from orchestrion.kernel.queue import DeadLetter, TaskQueue
from orchestrion.services.content import personal
from orchestrion.services.content.endpoints import router
from orchestrion.services.content.extract import Limits
from orchestrion.services.content.plugins.endpoints import router as plugins_router
from orchestrion.services.content.plugins.runtime import PluginRuntime
from orchestrion.services.content.search import VectorCache
from orchestrion.services.content.service import ContentRuntime
from orchestrion.services.content.worker import MAX_ATTEMPTS, ContentWorker, give_up
from orchestrion.settings import Settings, open_database, service_app_options

#: How long a worker may hold a document before another may take it over.
LEASE = timedelta(minutes=5)


def create_app(settings: Settings) -> FastAPI:
    """The content service, on the configured database, with its worker."""
    database = open_database(settings)
    config = settings.content

    async def on_dead(letters: list[DeadLetter]) -> None:
        await give_up(database, letters)

    runtime = ContentRuntime(
        limits=Limits.of(
            max_bytes=config.max_bytes, max_extracted_chars=config.max_extracted_chars
        ),
        max_bytes=config.max_bytes,
        inline_max_bytes=config.inline_max_bytes,
        chunk_size=config.chunk_size,
        chunk_overlap=config.chunk_overlap,
        queue=TaskQueue(database, lease=LEASE, max_attempts=MAX_ATTEMPTS, on_dead=on_dead),
        embedder=open_embedder(settings.embeddings),
        parsers=anyio.CapacityLimiter(2),
    )
    plugins = PluginRuntime(settings.plugins)

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
            stack.push_async_callback(runtime.queue.close)
            stack.callback(plugins.close)
            worker = ContentWorker(database, runtime, poll_seconds=settings.engine.poll_seconds)
            worker.start()
            stack.push_async_callback(worker.stop)
            yield

    app = create_service_app(
        **service_app_options(settings, "content"),
        database=database,
        lifespan=lifespan,
    )
    app.state.content = runtime
    app.state.vectors = VectorCache()
    if runtime.embedder is None:
        # Without an embedding provider only keyword search answers: the document says so.
        refine_schemas(app, narrow_enum("ContentSearch", "mode", ["keyword"]))
    app.state.plugin_runtime = plugins
    app.include_router(router)
    app.include_router(plugins_router)
    app.include_router(export_router(personal.SERVICE, personal.export))
    return app
