"""The ASGI apps ``bench.gateway`` serves, each in its own uvicorn process.

    uvicorn bench.gateway_apps:<factory> --factory --http httptools --no-access-log

- ``upstream``: the fast upstream, a Starlette app answering every path with a
  ~70-byte JSON document (``BODY``);
- ``aiohttp_proxy`` / ``httpx_proxy``: the naive proxies, Starlette apps forwarding
  every request to ``BENCH_TARGET`` through one pooled client made at start-up,
  reading each body whole, the way a proxy is first written;
- ``orchestrion_gateway``: the Orchestrion gateway built through the Python API,
  for builds whose ``orchestrion gateway`` command has no ``--config`` yet: the
  ``auth`` service at ``BENCH_AUTH_URL``, ``/bench`` routed to ``BENCH_TARGET``,
  logging configured as the command configures it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

BODY = b'{"service":"bench","status":"ok","message":"hello from the upstream"}'
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the client recomputes.
SKIP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer", "host",
     "content-length", "content-encoding"}
)  # fmt: skip


def upstream() -> ASGIApp:
    """Every path answers 200 with ``BODY``."""

    async def answer(_: Request) -> Response:
        return Response(BODY, media_type="application/json")

    return Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST", "HEAD"])])


def _target() -> str:
    return os.environ["BENCH_TARGET"].rstrip("/")


def _headers(items: Any) -> dict[str, str]:
    return {k: v for k, v in items if k.lower() not in SKIP}


def asgi_floor() -> ASGIApp:
    """``bench.gateway_floor``'s forwarding as a bare ASGI app (no Starlette)."""
    from bench.gateway_floor import asgi

    app: ASGIApp = asgi(_target())
    return app


def aiohttp_proxy() -> ASGIApp:
    """Starlette + one ``aiohttp.ClientSession`` (default connector: 100 pooled connections)."""
    import aiohttp

    target = _target()
    state: dict[str, aiohttp.ClientSession] = {}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        state["session"] = aiohttp.ClientSession()
        yield
        await state["session"].close()

    async def forward(request: Request) -> Response:
        url = target + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        async with state["session"].request(
            request.method,
            url,
            headers=_headers(request.headers.items()),
            data=await request.body(),
        ) as answer:
            body = await answer.read()
            return Response(body, answer.status, headers=_headers(answer.headers.items()))

    return Starlette(
        routes=[Route("/{path:path}", forward, methods=["GET", "POST"])], lifespan=lifespan
    )


def httpx_proxy() -> ASGIApp:
    """Starlette + one ``httpx.AsyncClient`` (default limits)."""
    import httpx

    target = _target()
    state: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        state["client"] = httpx.AsyncClient(base_url=target)
        yield
        await state["client"].aclose()

    async def forward(request: Request) -> Response:
        answer = await state["client"].request(
            request.method,
            request.url.path,
            params=request.url.query or None,
            headers=_headers(request.headers.items()),
            content=await request.body(),
        )
        return Response(
            answer.content, answer.status_code, headers=_headers(answer.headers.items())
        )

    return Starlette(
        routes=[Route("/{path:path}", forward, methods=["GET", "POST"])], lifespan=lifespan
    )


def orchestrion_gateway() -> ASGIApp:
    """The gateway as ``orchestrion gateway --config`` builds it, from the Python API."""
    from orchestrion.gateway.app import create_gateway
    from orchestrion.gateway.proxy import HttpUpstream
    from orchestrion.gateway.routes import DEFAULT_ROUTES
    from orchestrion.gateway.routes import Route as GatewayRoute
    from orchestrion.kernel.observability.logging import configure_logging
    from orchestrion.settings import Settings

    settings = Settings()
    configure_logging(
        level=settings.observability.log_level, format=settings.observability.log_format
    )
    secret = settings.secret_key.get_secret_value().encode()
    upstreams: dict[str, Any] = {
        "auth": HttpUpstream("auth", os.environ["BENCH_AUTH_URL"], secret=secret),
        "bench": HttpUpstream("bench", _target(), secret=secret),
    }
    routes = [GatewayRoute(prefix="/bench", service="bench"), *DEFAULT_ROUTES]
    return create_gateway(settings, upstreams, routes=routes)
