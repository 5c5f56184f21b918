"""Upstreams: how the gateway reaches a service.

The embedded shape calls each service's ASGI app in the same process; the distributed
shape (HTTP with pooled keep-alive connections) plugs in behind the same two methods:
``dispatch`` forwards a client request as a stream, ``client`` makes the gateway's own
internal calls (JWKS, API-key checks, health, OpenAPI).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrion.gateway.balancer import OutlierPolicy, Strategy
from orchestrion.gateway.policies.breaker import BreakerPolicy
from orchestrion.kernel.auth.identity import INTERNAL_HEADER, internal_token
from orchestrion.kernel.errors import OrchestrionError, problem_response

logger = logging.getLogger("orchestrion.gateway")


class Upstream(Protocol):
    """A service as the gateway sees it."""

    name: str
    client: httpx.AsyncClient

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Forward one client request (or WebSocket) and stream the answer back."""


@dataclass(frozen=True)
class UpstreamPolicy:
    """How the gateway talks to one service's instances (the YAML config's ``upstreams``)."""

    strategy: Strategy = "round_robin"
    hash_key: str = "principal"
    retries: int = 2
    retry_ratio: float = 0.2
    connect_timeout: float = 2.0
    read_timeout: float | None = 300.0
    total_timeout: float | None = None
    max_response_bytes: int = 64 * 1024 * 1024
    max_connections: int = 256
    health_path: str = "/health/live"
    health_interval: float = 5.0
    health_timeout: float = 2.0
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    outlier: OutlierPolicy = field(default_factory=OutlierPolicy)

    def client_timeout(self) -> aiohttp.ClientTimeout:
        """The aiohttp timeouts: connect, between reads, and in all (None: unbounded)."""
        return aiohttp.ClientTimeout(
            total=self.total_timeout, sock_connect=self.connect_timeout,
            sock_read=self.read_timeout,
        )  # fmt: skip


async def problem(scope: Scope, receive: Receive, send: Send, exc: OrchestrionError) -> None:
    """Answer with ``exc`` as problem+json."""
    state: dict[str, Any] = scope.get("state", {})
    response = problem_response(
        status=exc.status_code,
        detail=exc.detail,
        instance=scope["path"],
        request_id=state.get("request_id"),
        title=exc.default_title(),
        type_uri=exc.type_uri,
        headers=exc.headers,
    )
    await response(scope, receive, send)


class InProcessUpstream:
    """A service running in this process, called through ASGI without a socket."""

    def __init__(self, name: str, app: ASGIApp, *, secret: bytes) -> None:
        self.name = name
        self.app = app
        # A peer sees the service's 500 answer, never its exception, as over the network.
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url=f"http://{name}.internal",
            headers={INTERNAL_HEADER: internal_token(secret)},
            timeout=10.0,
        )

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Call the service app; an error after the response started only gets logged."""
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept"):
                started = True
            await send(message)

        # A service sees the request as if it came over the network: none of the
        # gateway's own scope entries (its route label, for one) leak into it.
        service_scope = {k: v for k, v in scope.items() if not k.startswith("orchestrion.")}
        try:
            await self.app(service_scope, receive, tracking_send)
        except Exception:
            # Service apps render their own errors; Starlette re-raises after sending
            # the 500, so an exception here is either already answered or fatal.
            if started:
                logger.debug("service %s raised after responding", self.name, exc_info=True)
                return
            raise

    async def aclose(self) -> None:
        """Release the internal client."""
        await self.client.aclose()
