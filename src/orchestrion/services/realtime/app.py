"""The realtime service's ASGI app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from orchestrion.kernel.auth.revocation import Revocations
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
from orchestrion.kernel.http.peers import Peers, discover
from orchestrion.kernel.ids import utcnow
from orchestrion.services.realtime.backends import open_backend
from orchestrion.services.realtime.config import RealtimeSettings, realtime_settings
from orchestrion.services.realtime.endpoints import router
from orchestrion.services.realtime.executions import HttpExecutionSource
from orchestrion.services.realtime.schemas import InternalPublish
from orchestrion.services.realtime.service import Realtime
from orchestrion.settings import Settings, open_database, open_revocations, service_app_options

logger = logging.getLogger("orchestrion.realtime")


#: Services realtime calls: auth verifies tokens, workflows holds execution logs.
PEER_SERVICES = ("auth", "workflows")


async def _peers(
    settings: Settings, config: RealtimeSettings, given: Any
) -> tuple[Mapping[str, httpx.AsyncClient], list[Peers]]:
    """Explicit base URLs first, then the composer's clients, then the service registry
    (with Redis) for the services still missing; and the :class:`Peers` to close after."""
    return await discover(
        PEER_SERVICES,
        secret=settings.secret_key.get_secret_value().encode(),
        given=given,
        urls={**settings.peers, **config.peers},
        registry_url=settings.redis.url if settings.gateway.registry else None,
        registry_prefix=settings.gateway.registry_prefix,
        verify=settings.tls.client_context(),
    )


def _verifier(
    settings: Settings, peers: Mapping[str, httpx.AsyncClient], revocations: Revocations
) -> TokenVerifier | None:
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
        revocations=revocations,
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
    (embedded shape), overridden by the base URLs in ``config.peers``, and completed
    from the service registry when Redis is configured (``orchestrion serve``).
    Revocation notices come from ``app.state.revocations`` when the composer set it,
    else through Redis: they refuse tokens and close the sockets opened with them.
    ``/health`` reports Redis (``"redis": {"status": "up"|"down", "latency_ms"}``) when
    the backend is Redis, and answers 503 while it is down.
    """
    config = config or realtime_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        peers, peer_sets = await _peers(settings, config, getattr(app.state, "peers", None))
        revocations: Revocations | None = getattr(app.state, "revocations", None)
        own_revocations = revocations is None
        if revocations is None:
            revocations = open_revocations(settings)
            await revocations.start()
        realtime = Realtime(
            config=config,
            backend=open_backend(config),
            executions=HttpExecutionSource(peers.get("workflows")),
        )
        revocations.listen(realtime.end_revoked)
        app.state.verifier = _verifier(settings, peers, revocations)
        app.state.realtime = realtime
        if config.redis_url:
            # Without Redis no instance shares seq, history or fan-out: not ready.
            app.state.health_checks["redis"] = realtime.backend.ping
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
            if own_revocations:
                await revocations.stop()
            for each in peer_sets:
                await each.aclose()

    app = create_service_app(
        **service_app_options(settings, "realtime"),
        database=open_database(settings),
        lifespan=lifespan,
    )
    app.state.realtime_config = config
    app.include_router(router)
    return app
