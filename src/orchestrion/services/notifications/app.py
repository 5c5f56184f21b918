"""The notifications service's ASGI app: its routes, the delivery worker, and the
consumer that fires subscriptions on the platform's events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from orchestrion.kernel.bus import service_bus
from orchestrion.kernel.crypto import rotating_fernet
from orchestrion.kernel.http.app import create_service_app
from orchestrion.kernel.http.peers import discover
from orchestrion.kernel.personal import export_router, subscribe_erasure
from orchestrion.kernel.queue import DeadLetter, TaskQueue
from orchestrion.services.notifications import events, personal
from orchestrion.services.notifications.channels import Channels
from orchestrion.services.notifications.delivery import (
    MAX_TASK_ATTEMPTS,
    DeliveryWorker,
    give_up,
)
from orchestrion.services.notifications.endpoints import item_router, router
from orchestrion.services.notifications.service import NotificationsRuntime
from orchestrion.services.notifications.subscription_endpoints import (
    router as subscription_router,
)
from orchestrion.settings import Settings, open_database, service_app_options

#: Services this one calls: realtime, for in-app messages on ``user:<id>``.
PEER_SERVICES = ("realtime",)
#: How long a worker may hold a send before another may take it over.
LEASE = timedelta(minutes=2)


def create_app(settings: Settings) -> FastAPI:
    """The notifications service, on the configured database, with its worker; with a
    bus (in process, the shared memory bus), it fires subscriptions on execution events."""
    database = open_database(settings)
    secret = settings.secret_key.get_secret_value().encode()
    config = settings.notifications

    async def on_dead(letters: list[DeadLetter]) -> None:
        await give_up(runtime, letters)

    runtime = NotificationsRuntime(
        config=config,
        database=database,
        queue=TaskQueue(database, lease=LEASE, max_attempts=MAX_TASK_ATTEMPTS, on_dead=on_dead),
        fernet=rotating_fernet(
            secret,
            purpose="orchestrion-notification-webhook-secrets-v1",
            previous=settings.previous_secrets,
        ),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            peers, owned = await discover(
                PEER_SERVICES,
                secret=secret,
                given=getattr(app.state, "peers", None),
                urls={k: v for k, v in settings.peers.items() if k in PEER_SERVICES},
                registry_url=settings.redis.url if settings.gateway.registry else None,
                registry_prefix=settings.gateway.registry_prefix,
                verify=settings.tls.client_context(),
            )
            for peer_set in owned:
                stack.push_async_callback(peer_set.aclose)
            channels: Channels = app.state.channels
            stack.push_async_callback(channels.aclose)
            stack.push_async_callback(runtime.queue.close)
            worker = DeliveryWorker(
                runtime, channels, peers=peers, poll_seconds=settings.engine.poll_seconds
            )
            worker.start()
            stack.push_async_callback(worker.stop)
            bus, owns_bus = await service_bus(getattr(app.state, "bus", None), settings.bus.url)
            if bus is not None:
                if owns_bus:
                    stack.push_async_callback(bus.close)
                subscription = await bus.subscribe(
                    events.TOPIC, events.GROUP, events.handler(bus, runtime)
                )
                # The in-process bus outlives this app: stop handling before the database
                # is disposed, or a late event would open a connection nobody closes.
                stack.push_async_callback(subscription.stop)
                erasures = await subscribe_erasure(
                    bus, database, service=personal.SERVICE, erase=personal.erase
                )
                stack.push_async_callback(erasures.stop)
            yield

    app = create_service_app(
        **service_app_options(settings, "notifications"),
        database=database,
        lifespan=lifespan,
    )
    app.state.notifications = runtime
    app.state.channels = Channels(config)
    app.include_router(subscription_router)
    app.include_router(router)
    app.include_router(item_router)
    app.include_router(export_router(personal.SERVICE, personal.export))
    return app
