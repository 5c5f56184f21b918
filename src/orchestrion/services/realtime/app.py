"""The realtime service's ASGI app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from orchestrion import __version__
from orchestrion.kernel.auth.tokens import TokenVerifier
from orchestrion.kernel.bus import (
    CloudEvent,
    Handler,
    MemoryDeduplicator,
    is_memory,
    service_bus,
)
from orchestrion.kernel.collector import tune_collector
from orchestrion.kernel.http.app import create_service_app
from orchestrion.kernel.http.peers import Peers
from orchestrion.kernel.ids import utcnow
from orchestrion.services.realtime.backends import open_backend
from orchestrion.services.realtime.config import RealtimeSettings, realtime_settings
from orchestrion.services.realtime.endpoints import router
from orchestrion.services.realtime.executions import HttpExecutionSource
from orchestrion.services.realtime.schemas import InternalPublish
from orchestrion.services.realtime.service import Realtime
from orchestrion.settings import Settings, open_database

logger = logging.getLogger("orchestrion.realtime")


def _verifier(settings: Settings, peers: Peers) -> TokenVerifier | None:
    auth = peers.get("auth")
    if auth is None:
        return None  # only gateway-signed identities are accepted then
    return TokenVerifier(
        auth,
        issuer=settings.auth.issuer,
        audience=settings.auth.audience,
        jwks_cache_seconds=settings.gateway.jwks_cache_seconds,
        jwks_min_refresh_seconds=settings.gateway.jwks_min_refresh_seconds,
        api_key_cache_seconds=settings.auth.api_key_cache_seconds,
    )


#: The workflows service's execution events (a topic name, not an import of it).
EXECUTION_TOPIC = "workflows.executions"


def _forward_to(realtime: Realtime) -> Handler:
    """A bus handler putting an execution event on its ``execution:<id>`` channel."""

    async def forward(event: CloudEvent) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        entry = data.get("event") or {}
        await realtime.publish_internal(
            InternalPublish(
                tenant_id=str(data["tenant_id"]),
                channel=f"execution:{data['execution_id']}",
                seq=int(entry["seq"]),
                data=entry,
            )
        )

    return forward


#: LLM token batches of steps run in other processes: ``{"origin", "chunks": [...]}``.
CHUNK_TOPIC = "workflows.tokens"
#: Token batches older than this are dropped (a member catching up after a pause).
STALE_TOKENS = timedelta(seconds=30)


def _tokens_to(realtime: Realtime) -> Handler:
    """A bus handler fanning each chunk of a token batch out as a ``token`` frame."""

    async def forward(event: CloudEvent) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        if utcnow() - event.time > STALE_TOKENS:
            return
        for chunk in data.get("chunks") or []:
            try:
                await realtime.publish_internal(
                    InternalPublish(
                        tenant_id=str(chunk["tenant_id"]),
                        channel=f"execution:{chunk['execution_id']}",
                        ephemeral=True,
                        data={"step_id": chunk.get("step_id"), "text": chunk["text"]},
                    )
                )
            except Exception:
                # Tokens are best effort: a bad chunk or a backend hiccup loses it only.
                logger.warning("dropped a token chunk", exc_info=True)

    return forward


def create_app(settings: Settings, *, config: RealtimeSettings | None = None) -> FastAPI:
    """The realtime service: ``GET /ws`` and ``POST /internal/realtime/publish``.

    Other services are reached through ``app.state.peers`` when the composer set it
    (embedded shape), completed or overridden by the base URLs in ``config.peers``.
    """
    config = config or realtime_settings(settings)
    secret = settings.secret_key.get_secret_value().encode()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        given: Any = getattr(app.state, "peers", None)
        peers = Peers.from_urls(config.peers, secret=secret).merged(given or {})
        realtime = Realtime(
            config=config,
            backend=open_backend(config),
            executions=HttpExecutionSource(peers.get("workflows")),
        )
        app.state.verifier = _verifier(settings, peers)
        app.state.realtime = realtime
        await realtime.start()
        bus, owned = await service_bus(getattr(app.state, "bus", None), settings.bus.url)
        if bus is not None and not is_memory(settings.bus.url):
            await bus.subscribe(EXECUTION_TOPIC, config.bus_group, _forward_to(realtime))
            # One batch at a time keeps a step's chunks in order; no retries, and dedup
            # in memory: a lost or repeated token is harmless, a round trip per batch not.
            await bus.subscribe(
                CHUNK_TOPIC,
                f"{config.bus_group}-tokens",
                _tokens_to(realtime),
                max_attempts=1,
                dedup=MemoryDeduplicator(max_entries=10_000, ttl=600.0),
            )
        if config.tune_gc if config.tune_gc is not None else settings.environment != "test":
            tune_collector()
        try:
            yield
        finally:
            if bus is not None and owned:
                await bus.close()
            await realtime.stop()
            await peers.aclose()

    app = create_service_app(
        name="realtime",
        title="Orchestrion realtime",
        version=__version__,
        database=open_database(settings),
        identity_secret=secret,
        lifespan=lifespan,
    )
    app.state.realtime_config = config
    app.include_router(router)
    return app
