"""The gateway ASGI app: request id, metrics, CORS, then route → authenticate →
authorize → size limit → dispatch to the service, streaming both ways.

Written as plain ASGI rather than a framework app: the proxied path is the hot path,
and it must never buffer a body or a stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

from fastapi.openapi.docs import get_swagger_ui_html
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrion import __version__
from orchestrion.gateway import health, openapi
from orchestrion.gateway.policies.auth import Authenticator
from orchestrion.gateway.policies.runtime import open_policies
from orchestrion.gateway.policies.shared import vary_key
from orchestrion.gateway.routes import DEFAULT_ROUTES, Route, RouteTable
from orchestrion.gateway.upstream import Upstream
from orchestrion.kernel.auth.identity import (
    CLIENT_IP_HEADER,
    IDENTITY_HEADER,
    INTERNAL_PREFIX,
    encode_identity,
)
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.errors import (
    Forbidden,
    NotFound,
    OrchestrionError,
    PayloadTooLarge,
    Unauthenticated,
    problem_response,
)
from orchestrion.kernel.http.requestid import RequestIdMiddleware
from orchestrion.kernel.observability.metrics import MetricsMiddleware, metrics_endpoint
from orchestrion.settings import Settings

logger = logging.getLogger("orchestrion.gateway")
access_logger = logging.getLogger("orchestrion.access")
Lifespan = Callable[[], AbstractAsyncContextManager[None]]
Handler = Callable[[Request], Awaitable[Response]]
_INTERNAL_PREFIX_BYTES = INTERNAL_PREFIX.encode()
EXPOSED_HEADERS = [
    "X-Request-ID", "ETag", "Location", "Retry-After", "Idempotent-Replayed",
    "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "X-Cache",
]  # fmt: skip


class _BodyTooLarge(Exception):
    pass


class Gateway:
    """The routing core; :func:`create_gateway` wraps it in the cross-cutting middleware."""

    def __init__(
        self,
        *,
        settings: Settings,
        upstreams: dict[str, Upstream],
        routes: RouteTable,
        lifespan: Lifespan | None = None,
    ) -> None:
        self.settings = settings
        self.upstreams = upstreams
        self.routes = routes
        self.lifespan = lifespan
        self.secret = settings.secret_key.get_secret_value().encode()
        self.max_body = settings.gateway.max_body_bytes
        self.authenticator = Authenticator(
            upstreams["auth"],
            issuer=settings.auth.issuer,
            audience=settings.auth.audience,
            jwks_cache_seconds=settings.gateway.jwks_cache_seconds,
            jwks_min_refresh_seconds=settings.gateway.jwks_min_refresh_seconds,
            api_key_cache_seconds=settings.auth.api_key_cache_seconds,
        )
        self.rate_limiter, self.cache, self.lifespan = open_policies(settings, lifespan)
        self._openapi: dict[str, Any] | None = None
        self.own: dict[str, Handler] = {
            "/health": self.health,
            "/health/live": self.live,
            "/health/ready": self.ready,
            "/metrics": metrics_endpoint,
            "/openapi.json": self.openapi_json,
            "/docs": self.docs,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the gateway's own endpoints, else route to a service."""
        if scope["type"] == "lifespan":
            await self._run_lifespan(receive, send)
            return
        path: str = scope["path"]
        own = self.own.get(path)
        if own is not None and scope["type"] == "http":
            scope["orchestrion.route"] = path
            request = Request(scope, receive)
            response = await self._guard(request, own)
            await response(scope, receive, send)
            return
        route = None if path.startswith("/internal/") else self.routes.match(path)
        if route is None:
            await self._refuse(scope, receive, send, NotFound(f"no resource at {path}"))
            return
        scope["orchestrion.route"] = route.prefix
        try:
            principal = await self._authorize(scope, route)
            send = await self.rate_limiter.check(scope, route, principal, send)
        except OrchestrionError as exc:
            await self._refuse(scope, receive, send, exc)
            return
        forward = partial(self._forward, route=route, principal=principal)
        if route.cache_ttl is None or scope["type"] != "http":
            await forward(scope, receive, send)
            return
        await self.cache.handle(
            scope, receive, send, forward, vary_key(principal), ttl=route.cache_ttl
        )

    async def _authorize(self, scope: Scope, route: Route) -> Principal | None:
        headers = Headers(scope=scope)
        method = scope.get("method", "GET")
        path = scope["path"]
        public = route.is_public(method, path)
        try:
            principal = await self.authenticator.authenticate(
                headers.get("authorization"), headers.get("x-api-key")
            )
        except Unauthenticated:
            # A stale token must not lock anyone out of login; a socket with bad
            # credentials is refused (4401) rather than passed on anonymous.
            if public and scope["type"] == "http":
                return None
            raise
        if public:
            return principal
        if principal is None:
            raise Unauthenticated("authentication required: send a bearer token or an API key")
        permission = route.permission_for(method, path)
        if permission is not None and not principal.can(permission):
            raise Forbidden(f"missing permission '{permission}'")
        return principal

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, route: Route, principal: Principal | None
    ) -> None:
        headers: list[tuple[bytes, bytes]] = [
            (k, v) for k, v in scope["headers"] if not k.startswith(_INTERNAL_PREFIX_BYTES)
        ]
        if principal is not None:
            identity = encode_identity(principal, self.secret)
            headers.append((IDENTITY_HEADER.encode(), identity.encode()))
        client = scope.get("client")
        if client:
            headers.append((CLIENT_IP_HEADER.encode(), str(client[0]).encode()))
        request_id = scope.get("state", {}).get("request_id")
        if request_id:
            headers = [(k, v) for k, v in headers if k != b"x-request-id"]
            headers.append((b"x-request-id", request_id.encode()))
        upstream_scope = {**scope, "headers": headers}
        upstream = self.upstreams.get(route.service)
        if upstream is None:
            await self._refuse(
                scope, receive, send, NotFound(f"service '{route.service}' is not running")
            )
            return
        if scope["type"] != "http":
            await upstream.dispatch(upstream_scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            await self._refuse(scope, receive, send, self._too_large())
            return
        await self._dispatch_limited(upstream, upstream_scope, receive, send)

    async def _dispatch_limited(
        self, upstream: Upstream, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Forward, counting body bytes as they stream: a chunked body past the limit is a 413."""
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the service's answer to a cut-off body is replaced by the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await upstream.dispatch(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            pass
        except Exception:
            logger.exception("service %s failed", upstream.name)
            if not started:
                await self._refuse(scope, receive, send, OrchestrionError("the service failed"))
            return
        if exceeded and not started:
            await self._refuse(scope, receive, send, self._too_large())

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body exceeds {self.max_body} bytes")

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, exc: OrchestrionError
    ) -> None:
        if scope["type"] == "websocket":
            # Accept, then close: a close before the handshake reaches a browser as a bare
            # failure, while the code (4401, 4403, 4404...) tells it what went wrong.
            code = 4401 if isinstance(exc, Unauthenticated) else 4000 + exc.status_code
            if (await receive())["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": code, "reason": exc.detail[:120]})
            return
        response = problem_response(
            status=exc.status_code,
            detail=exc.detail,
            instance=scope["path"],
            request_id=scope.get("state", {}).get("request_id"),
            title=exc.default_title(),
            type_uri=exc.type_uri,
            errors=exc.errors,
            headers=exc.headers,
        )
        await response(scope, receive, send)

    async def _guard(self, request: Request, handler: Handler) -> Response:
        try:
            return await handler(request)
        except OrchestrionError as exc:
            return problem_response(
                status=exc.status_code, detail=exc.detail, instance=request.url.path,
                request_id=getattr(request.state, "request_id", None), headers=exc.headers,
            )  # fmt: skip

    async def health(self, _: Request) -> Response:
        """Every service's health, summarised."""
        body = await health.aggregate(self.upstreams)
        return JSONResponse(body, status_code=503 if body["status"] == "down" else 200)

    async def live(self, _: Request) -> Response:
        """The process answers: nothing more is checked."""
        return JSONResponse({"status": "ok"})

    async def ready(self, _: Request) -> Response:
        """Ready when every service is healthy."""
        body = await health.aggregate(self.upstreams)
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    async def openapi_json(self, _: Request) -> Response:
        """The merged OpenAPI document (built once: the services do not change at run time)."""
        if self._openapi is None:
            self._openapi = await openapi.merged_document(
                self.upstreams, title="Orchestrion", version=__version__, own_paths=_OWN_PATHS
            )
        return JSONResponse(self._openapi)

    async def docs(self, _: Request) -> Response:
        """Swagger UI over the merged document."""
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Orchestrion API")

    async def _run_lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        context = self.lifespan() if self.lifespan else None
        try:
            if context is not None:
                await context.__aenter__()
        except Exception as exc:
            logger.exception("start-up failed")
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        try:
            if context is not None:
                await context.__aexit__(None, None, None)
            for upstream in self.upstreams.values():
                close = getattr(upstream, "aclose", None)
                if close is not None:
                    await close()
        except Exception as exc:
            logger.exception("shutdown failed")
            await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


def _own_path(summary: str, tag: str = "gateway") -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "tags": [tag],
            "security": [],
            "responses": {"200": {"description": "OK"}},
        }
    }


_OWN_PATHS = {
    "/health": _own_path("Aggregated health of every service"),
    "/health/live": _own_path("Liveness: the gateway process answers"),
    "/health/ready": _own_path("Readiness: every service is healthy"),
    "/metrics": _own_path("Prometheus metrics"),
}


class AccessLogMiddleware:
    """One structured line per request, with the request id bound by the outer middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and log method, path, status and duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            access_logger.info(
                "%s %s %s %.1fms", scope["method"], scope["path"], status,
                (time.perf_counter() - start) * 1000,
            )  # fmt: skip


def create_gateway(
    settings: Settings,
    upstreams: dict[str, Upstream],
    *,
    routes: list[Route] | None = None,
    lifespan: Lifespan | None = None,
) -> ASGIApp:
    """The gateway app in front of ``upstreams``, with the platform's middleware."""
    core = Gateway(
        settings=settings,
        upstreams=upstreams,
        routes=RouteTable(routes if routes is not None else DEFAULT_ROUTES),
        lifespan=lifespan,
    )
    app: ASGIApp = core
    if settings.gateway.cors_origins:
        app = CORSMiddleware(
            app,
            allow_origins=settings.gateway.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            allow_credentials=True,
            expose_headers=EXPOSED_HEADERS,
        )
    app = MetricsMiddleware(app, component="gateway")
    app = AccessLogMiddleware(app)
    return RequestIdMiddleware(app)
