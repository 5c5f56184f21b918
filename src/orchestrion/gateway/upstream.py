"""Upstreams: how the gateway reaches a service.

The embedded shape calls each service's ASGI app in the same process; the distributed
shape (HTTP with pooled keep-alive connections) plugs in behind the same two methods:
``dispatch`` forwards a client request as a stream, ``client`` makes the gateway's own
internal calls (JWKS, API-key checks, health, OpenAPI).
"""

from __future__ import annotations

import logging
from typing import Protocol

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrion.kernel.auth.identity import INTERNAL_HEADER, internal_token

logger = logging.getLogger("orchestrion.gateway")


class Upstream(Protocol):
    """A service as the gateway sees it."""

    name: str
    client: httpx.AsyncClient

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Forward one client request (or WebSocket) and stream the answer back."""


class InProcessUpstream:
    """A service running in this process, called through ASGI without a socket."""

    def __init__(self, name: str, app: ASGIApp, *, secret: bytes) -> None:
        self.name = name
        self.app = app
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
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
