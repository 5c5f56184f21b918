"""Prometheus metrics for HTTP traffic, labelled by route template, not raw path.

Raw paths would create one series per id and exhaust the server's memory; the route
template (``/api/v1/workflows/{id}``) keeps cardinality bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrion.kernel.errors import PROBLEM_JSON, Unauthenticated, error_response, problem_body

REQUESTS = Counter(
    "orchestrion_http_requests_total",
    "HTTP requests handled, by component, method, route template and status.",
    ["component", "method", "route", "status"],
)
LATENCY = Histogram(
    "orchestrion_http_request_duration_seconds",
    "Time to the end of the response, by component, method and route template.",
    ["component", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# Gateway policies: labelled by route prefix, a bounded set.
GATEWAY_RATE_LIMITED = Counter(
    "orchestrion_gateway_rate_limited_total",
    "Requests the gateway refused with 429, by route prefix.",
    ["route"],
)
GATEWAY_CACHE = Counter(
    "orchestrion_gateway_cache_total",
    "Cacheable GET/HEAD requests by route prefix and result (hit, miss).",
    ["route", "result"],
)
GATEWAY_POLICY_STORAGE_ERRORS = Counter(
    "orchestrion_gateway_policy_storage_errors_total",
    "Failed or skipped calls to the shared store (Redis) that a policy went past "
    "(fail open), by policy.",
    ["policy"],
)


def route_template(scope: Scope) -> str:
    """The matched route's path template, or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request of one component."""

    def __init__(self, app: ASGIApp, *, component: str) -> None:
        self.app = app
        self.component = component
        # Label lookups hash and lock on every call; the children are kept instead.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Observe the request once its response is complete (or it failed)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            self.record(scope, status, start)

    def record(self, scope: Scope, status: int, start: float) -> None:
        """Count an HTTP request answered ``status``, begun at ``start`` (``perf_counter``)."""
        route = scope.get("orchestrion.route") or route_template(scope)
        method = scope["method"]
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = REQUESTS.labels(self.component, method, route, str(status))
            self._counters[(method, route, status)] = counter
        counter.inc()
        timer = self._timers.get((method, route))
        if timer is None:
            timer = self._timers[(method, route)] = LATENCY.labels(self.component, method, route)
        timer.observe(time.perf_counter() - start)


async def metrics_endpoint(request: Request, *, token: SecretStr | None = None) -> Response:
    """The Prometheus text exposition of this process's metrics.

    With ``token`` (``ORCHESTRION_OBSERVABILITY__METRICS_TOKEN``), only a request bearing
    it (``Authorization: Bearer <token>``) is answered; others get a 401 problem.
    """
    if not authorized(request.headers.get("authorization", ""), token):
        return error_response(request, Unauthenticated(_REFUSAL))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


_REFUSAL = (
    "/metrics needs Authorization: Bearer <token>, the token set by "
    "ORCHESTRION_OBSERVABILITY__METRICS_TOKEN"
)


def authorized(authorization: str, token: SecretStr | None) -> bool:
    """Whether an ``Authorization`` header value may read ``/metrics`` (no token: anyone)."""
    if token is None or not token.get_secret_value():
        return True
    scheme, _, given = authorization.partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


@contextlib.asynccontextmanager
async def serving_metrics(
    *, host: str, port: int, token: SecretStr | None = None
) -> AsyncIterator[int]:
    """Serve ``/metrics`` on ``host:port`` while the block runs; yields the bound port.

    For processes without an HTTP API of their own (``orchestrion worker``). aiohttp's
    server runs on the caller's event loop and, unlike uvicorn's, leaves its signal
    handlers alone: the worker's own SIGTERM handling (drain, then stop) stays in charge.
    """
    from aiohttp import web

    async def metrics(request: web.Request) -> web.Response:
        if not authorized(request.headers.get("Authorization", ""), token):
            refused = Unauthenticated(_REFUSAL)
            body = problem_body(
                status=refused.status_code,
                detail=refused.detail,
                instance=request.path,
                request_id=None,
                title=refused.default_title(),
                type_uri=refused.type_uri,
            )
            return web.Response(
                text=json.dumps(body),
                status=refused.status_code,
                headers={"Content-Type": PROBLEM_JSON, **refused.headers},
            )
        data = await asyncio.to_thread(generate_latest)
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield int(runner.addresses[0][1]) if runner.addresses else port
    finally:
        await runner.cleanup()
