"""The gateway ASGI app: request id, metrics, CORS, then route → authenticate →
authorize → size limit → dispatch to the service, streaming both ways.

Written as plain ASGI rather than a framework app: the proxied path is the hot path,
and it must never buffer a body or a stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

import structlog
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrion import __version__
from orchestrion.gateway import admin, health, metrics, openapi
from orchestrion.gateway.aggregate import DEFAULT_COMPOSITES, Composer
from orchestrion.gateway.balancer import Instance
from orchestrion.gateway.canary import UPSTREAM_HEADER, Canaries
from orchestrion.gateway.config import ConfigError, GatewayConfig
from orchestrion.gateway.console import Console
from orchestrion.gateway.forwarded import CLIENT_IP, client_ip, in_networks, networks
from orchestrion.gateway.graphql import GraphQLMount
from orchestrion.gateway.lane import Lane
from orchestrion.gateway.policies.auth import Authenticator, is_signed
from orchestrion.gateway.policies.runtime import open_policies
from orchestrion.gateway.policies.shared import vary_key
from orchestrion.gateway.proxy import HttpUpstream
from orchestrion.gateway.registry import RegistryWatcher
from orchestrion.gateway.routes import DEFAULT_ROUTES, Route, RouteTable
from orchestrion.gateway.shared import SharedAdmin
from orchestrion.gateway.transform import rewrite_request, rewrite_response
from orchestrion.gateway.upstream import Upstream, UpstreamPolicy
from orchestrion.kernel.auth.identity import (
    CLIENT_IP_HEADER,
    IDENTITY_HEADER,
    INTERNAL_PREFIX,
    encode_identity,
)
from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.auth.revocation import Revocations
from orchestrion.kernel.bus import Bus, service_bus
from orchestrion.kernel.collector import tune_collector
from orchestrion.kernel.errors import (
    Forbidden,
    NotFound,
    OrchestrionError,
    PayloadTooLarge,
    TooManyRequests,
    Unauthenticated,
    problem_response,
)
from orchestrion.kernel.http.methods import method_not_allowed
from orchestrion.kernel.http.requestid import (
    RequestIdMiddleware,
    echo_request_id,
    request_id_from,
)
from orchestrion.kernel.observability import tracing
from orchestrion.kernel.observability.metrics import MetricsMiddleware, metrics_endpoint
from orchestrion.kernel.observability.tracing import TracingMiddleware
from orchestrion.settings import Settings, open_revocations

logger = logging.getLogger("orchestrion.gateway")
access_logger = logging.getLogger("orchestrion.access")
Lifespan = Callable[[], AbstractAsyncContextManager[None]]
Handler = Callable[[Request], Awaitable[Response]]
_INTERNAL_PREFIX_BYTES = INTERNAL_PREFIX.encode()
_IDENTITY_HEADER_BYTES = IDENTITY_HEADER.encode()
_CLIENT_IP_HEADER_BYTES = CLIENT_IP_HEADER.encode()
_IDENTITY_REUSE_SECONDS = 30.0
EXPOSED_HEADERS = [
    "X-Request-ID", "ETag", "Location", "Retry-After", "Idempotent-Replayed",
    "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "X-Cache",
    "X-Orchestrion-Upstream",
]  # fmt: skip
_UPSTREAM_HEADER_BYTES = UPSTREAM_HEADER.encode()


class _BodyTooLarge(Exception):
    pass


class Gateway:
    """The routing core; :func:`create_gateway` wraps it in the cross-cutting middleware."""

    def __init__(
        self,
        *,
        settings: Settings,
        upstreams: dict[str, Upstream],
        routes: list[Route],
        lifespan: Lifespan | None = None,
        discover: bool = False,
        revocations: Revocations | None = None,
        bus: Bus | None = None,
    ) -> None:
        self.settings = settings
        # The process's in-memory bus (embedded shape); else the gateway connects to
        # ORCHESTRION_BUS__URL itself while it runs (flag changes for the canaries).
        self.bus = bus
        self._own_bus: Bus | None = None
        self.upstreams = upstreams
        self.default_routes = routes
        self.routes = RouteTable(routes)
        self.lifespan = lifespan
        self.secret = settings.secret_key.get_secret_value().encode()
        # Under mutual TLS: the platform's CA and the gateway's client certificate.
        self.tls = settings.tls.client_context()
        gateway = settings.gateway
        self.max_body = gateway.max_body_bytes
        self.trusted = networks(gateway.trusted_proxies)
        self.allow = networks(gateway.ip_allow)
        self.deny = networks(gateway.ip_deny)
        self.max_in_flight = gateway.max_concurrent_per_client
        self.in_flight: dict[str, int] = {}
        self.admin_prefix = gateway.admin_path.rstrip("/")
        # Instances by service, by where they come from; sync_upstreams() merges them.
        self.static: dict[str, list[Instance]] = {
            name: list(u.pool.instances)
            for name, u in upstreams.items()
            if isinstance(u, HttpUpstream)
        }
        self.registered: dict[str, list[Instance]] = {}
        self.admin_instances: dict[str, list[Instance]] = {}
        self.config = GatewayConfig()
        self.config_path = gateway.config
        self._config_mtime: float | None = None
        self.composites = dict(DEFAULT_COMPOSITES)
        self.composer = Composer(self)
        self.canaries = Canaries(self)
        self.watcher: RegistryWatcher | None = None
        if discover and settings.redis.url and gateway.registry:
            self.watcher = RegistryWatcher(
                settings.redis.url, prefix=gateway.registry_prefix, on_change=self._registered
            )
        # Admin API changes shared with the other gateway replicas (Redis).
        self.shared: SharedAdmin | None = None
        if discover and settings.redis.url:
            self.shared = SharedAdmin(self, settings.redis.url, prefix=gateway.registry_prefix)
        self._background: list[asyncio.Task[None]] = []
        self._identities: dict[Principal, tuple[bytes, float]] = {}
        self.running = False
        if "auth" not in upstreams:
            upstreams["auth"] = HttpUpstream("auth", [], secret=self.secret, tls=self.tls)
        if self.config_path is not None:
            self.reload_config(force=True, strict=True)
        # Shared with the auth service in one process; else followed through Redis.
        self.own_revocations = revocations is None
        self.revocations = revocations or open_revocations(settings)
        self.authenticator = Authenticator(
            upstreams["auth"],
            issuer=settings.auth.issuer,
            audience=settings.auth.audience,
            jwks_cache_seconds=settings.gateway.jwks_cache_seconds,
            jwks_min_refresh_seconds=settings.gateway.jwks_min_refresh_seconds,
            api_key_cache_seconds=settings.auth.api_key_cache_seconds,
            revocations=self.revocations,
            signature_window_seconds=settings.auth.hmac_window_seconds,
        )
        self.rate_limiter, self.cache, self.lifespan = open_policies(settings, lifespan)
        self.graphql: GraphQLMount | None = None
        if settings.graphql.enabled:
            self.graphql = GraphQLMount(
                gateway=self, settings=settings, authenticator=self.authenticator,
                rate_limiter=self.rate_limiter, refuse=self.refuse,
            )  # fmt: skip
        self._openapi: dict[str, Any] | None = None
        self.console = Console()
        self.own: dict[str, Handler] = {
            "/health": self.health,
            "/health/live": self.live,
            "/health/ready": self.ready,
            "/metrics": self.metrics,
            "/openapi.json": self.openapi_json,
            "/docs": self.docs,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the gateway's own endpoints, else route to a service."""
        if scope["type"] == "lifespan":
            await self._run_lifespan(receive, send)
            return
        path: str = scope["path"]
        if self.refuses(self.settle_client(scope)):
            await self.refuse(scope, receive, send, Forbidden("your address is not allowed"))
            return
        if self.graphql is not None and self.graphql.handles(path):
            scope["orchestrion.route"] = "/graphql"
            await self.graphql(scope, receive, send)
            return
        own = self.own.get(path)
        if scope["type"] == "http" and (
            own is not None or path in self.composites or path.startswith(self.admin_prefix + "/")
        ):
            scope["orchestrion.route"] = path if own or path in self.composites else "admin"
            request = Request(scope, receive)
            if own is not None and request.method not in _OWN_METHODS:
                await self.refuse(scope, receive, send, method_not_allowed(_OWN_METHODS))
                return
            response = await self._guard(request, own or self._special)
            await response(scope, receive, send)
            return
        route = None if path.startswith("/internal/") else self.routes.match(path)
        if route is None and scope["type"] == "http" and self.console.handles(path):
            scope["orchestrion.route"] = "console"
            response = await self._guard(Request(scope, receive), self.console)
            await response(scope, receive, send)
            return
        if route is None:
            await self.refuse(scope, receive, send, NotFound(f"no resource at {path}"))
            return
        scope["orchestrion.route"] = route.prefix
        await self.routed(scope, receive, send, route)

    def settle_client(self, scope: Scope) -> str:
        """The client's address (through trusted proxies), noted in ``scope`` with whether
        the peer is a trusted proxy."""
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        trusted_peer = bool(self.trusted) and in_networks(peer, self.trusted)
        ip = client_ip(scope, self.trusted) if trusted_peer else peer
        scope[CLIENT_IP] = ip
        scope["orchestrion.trusted_peer"] = trusted_peer
        return ip

    def refuses(self, ip: str) -> bool:
        """Whether the allow and deny lists refuse ``ip``."""
        return bool(
            (self.allow and not in_networks(ip, self.allow))
            or (self.deny and in_networks(ip, self.deny))
        )

    def plain_route(self, path: str) -> Route | None:
        """The route of an HTTP request for ``path`` when :meth:`__call__` would go
        straight to :meth:`routed` with it and on to an :class:`HttpUpstream` with nothing
        but the policies every route has (no cache, rewrite or canary); else None.

        The fast lane (gateway/lane.py) serves only these: keep it in step with
        :meth:`__call__`.
        """
        if (
            (self.graphql is not None and self.graphql.handles(path))
            or path in self.own
            or path in self.composites
            or path.startswith(self.admin_prefix + "/")
            or path.startswith("/internal/")
        ):
            return None
        route = self.routes.match(path)
        if (
            route is None
            or route.cache_ttl is not None
            or route.transform is not None
            or route.canary is not None
            or not isinstance(self.upstreams.get(route.service), HttpUpstream)
        ):
            return None
        return route

    async def routed(self, scope: Scope, receive: Receive, send: Send, route: Route) -> None:
        """A request on ``route``: authorize, count it, then the cache or the service.

        Shared by the ASGI path and the fast lane (gateway/lane.py).
        """
        try:
            principal, receive = await self._authorize(scope, route, receive)
            send = await self.rate_limiter.check(scope, route, principal, send)
        except OrchestrionError as exc:
            await self.refuse(scope, receive, send, exc)
            return
        forward = partial(self._forward, route=route, principal=principal)
        if route.cache_ttl is None or scope["type"] != "http":
            await forward(scope, receive, send)
            return
        await self.cache.handle(
            scope, receive, send, forward, vary_key(principal), ttl=route.cache_ttl
        )

    async def _authorize(
        self, scope: Scope, route: Route, receive: Receive
    ) -> tuple[Principal | None, Receive]:
        """The caller allowed on ``route`` (None: anonymous on a public route), and the
        ``receive`` to forward with (a signed request's body was read to check it)."""
        headers = Headers(scope=scope)
        method = scope.get("method", "GET")
        path = scope["path"]
        authorization = headers.get("authorization")
        if is_signed(authorization):
            # A caller that signs wants its signature checked: a bad one is never
            # passed on anonymous, even to a public route (its body is read already).
            signer, receive = await self.authenticator.authenticate_signed(
                scope, receive, max_body=self.max_body
            )
            return self._admit(route, method, path, signer), receive
        principal = await self.authorize(
            route, method, path, authorization, headers.get("x-api-key"),
            http=scope["type"] == "http",
        )  # fmt: skip
        return principal, receive

    async def authorize(
        self,
        route: Route,
        method: str,
        path: str,
        authorization: str | None,
        api_key: str | None,
        *,
        http: bool = True,
    ) -> Principal | None:
        """The caller of an unsigned request allowed on ``route`` (None: anonymous on a
        public route); :class:`Unauthenticated` or :class:`Forbidden` otherwise."""
        try:
            principal = await self.authenticator.authenticate(authorization, api_key)
        except Unauthenticated:
            # A stale token must not lock anyone out of login; a socket with bad
            # credentials is refused (4401) rather than passed on anonymous.
            if http and route.is_public(method, path):
                return None
            raise
        return self._admit(route, method, path, principal)

    def _admit(
        self, route: Route, method: str, path: str, principal: Principal | None
    ) -> Principal | None:
        if route.is_public(method, path):
            return principal
        if principal is None:
            raise Unauthenticated(
                "authentication required: send a bearer token, an API key or a signature"
            )
        permission = route.permission_for(method, path)
        if permission is not None and not principal.can(permission):
            raise Forbidden(f"missing permission '{permission}'")
        return principal

    async def call_as(
        self, principal: Principal, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Forward a request the gateway makes on ``principal``'s behalf (GraphQL's REST
        calls): the route's permission applies as to the client's own request; the
        client's credentials were checked, and its rate limit counted, once already."""
        path: str = scope["path"]
        route = None if path.startswith("/internal/") else self.routes.match(path)
        if route is None:
            raise NotFound(f"no resource at {path}")
        permission = route.permission_for(scope["method"], path)
        if permission is not None and not principal.can(permission):
            raise Forbidden(f"missing permission '{permission}'")
        await self._forward(scope, receive, send, route=route, principal=principal)

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, route: Route, principal: Principal | None
    ) -> None:
        headers = self.forward_headers(scope, principal)
        upstream_scope: Scope = {**scope, "headers": tracing.inject_raw(headers)}
        if principal is not None:
            upstream_scope["orchestrion.principal_id"] = principal.subject
        if route.transform is not None:
            upstream_scope = rewrite_request(route, route.transform, upstream_scope)
            send = rewrite_response(route.transform, send)
        service = route.service
        if route.canary is not None:
            service = await self.canaries.choose(route, scope, principal)
            header = route.canary.header
            send = _saying_upstream(service, header[0] if header else None, send)
        upstream = self.upstreams.get(service)
        if upstream is None:
            await self.refuse(scope, receive, send, NotFound(f"service '{service}' is not running"))
            return
        if scope["type"] != "http":
            await self._dispatch_socket(upstream, upstream_scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            await self.refuse(scope, receive, send, self._too_large())
            return
        ip = scope.get(CLIENT_IP, "")
        if not self.hold(ip):
            await self.refuse(scope, receive, send, self.busy())
            return
        try:
            await self._dispatch_limited(upstream, upstream_scope, receive, send)
        finally:
            self.release(ip)

    def forward_headers(
        self, scope: Scope, principal: Principal | None
    ) -> list[tuple[bytes, bytes]]:
        """The request's headers as the gateway passes them on: the client's own
        ``X-Orchestrion-*`` dropped; the signed identity, the client address and the
        request id set."""
        headers: list[tuple[bytes, bytes]] = [
            (k, v) for k, v in scope["headers"] if not k.startswith(_INTERNAL_PREFIX_BYTES)
        ]
        if principal is not None:
            headers.append((_IDENTITY_HEADER_BYTES, self.identity(principal)))
        if scope.get(CLIENT_IP):
            headers.append((_CLIENT_IP_HEADER_BYTES, str(scope[CLIENT_IP]).encode()))
        request_id = scope.get("state", {}).get("request_id")
        if request_id:
            headers = [(k, v) for k, v in headers if k != b"x-request-id"]
            headers.append((b"x-request-id", request_id.encode()))
        return headers

    def hold(self, ip: str) -> bool:
        """Count a request in flight from ``ip``; False (not counted) past the cap."""
        held = self.in_flight.get(ip, 0)
        if self.max_in_flight and held >= self.max_in_flight:
            return False
        self.in_flight[ip] = held + 1
        return True

    def release(self, ip: str) -> None:
        """A request :meth:`hold` counted is over."""
        left = self.in_flight[ip] - 1
        if left:
            self.in_flight[ip] = left
        else:
            del self.in_flight[ip]

    def busy(self) -> TooManyRequests:
        """The refusal of a request past ``max_concurrent_per_client``."""
        return TooManyRequests(
            f"more than {self.max_in_flight} requests in flight from your address",
            headers={"Retry-After": "1"},
        )

    async def failed(
        self, upstream: Upstream, scope: Scope, receive: Receive, send: Send, *, started: bool
    ) -> None:
        """A service's dispatch raised: logged, and a 500 problem unless its answer began."""
        logger.exception("service %s failed", upstream.name)
        if not started:
            await self.refuse(scope, receive, send, OrchestrionError("the service failed"))

    def identity(self, principal: Principal) -> bytes:
        """The signed identity header, re-signed at most every ``_IDENTITY_REUSE_SECONDS``
        per principal (signing costs an HMAC and a JSON dump; services accept a value
        for ``MAX_AGE_SECONDS``)."""
        now = time.time()
        cached = self._identities.get(principal)
        if cached is not None and now - cached[1] < _IDENTITY_REUSE_SECONDS:
            return cached[0]
        if len(self._identities) >= 10_000:
            self._identities.clear()
        value = encode_identity(principal, self.secret, now=now).encode()
        self._identities[principal] = (value, now)
        return value

    async def _dispatch_socket(
        self, upstream: Upstream, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Pass a WebSocket through, counted in the open-sockets gauge while it is open."""
        gauge = metrics.WEBSOCKETS.labels(upstream.name)
        accepted = False

        async def counting_send(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                gauge.inc()
            await send(message)

        try:
            await upstream.dispatch(scope, receive, counting_send)
        finally:
            if accepted:
                gauge.dec()

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
            await self.failed(upstream, scope, receive, send, started=started)
            return
        if exceeded and not started:
            await self.refuse(scope, receive, send, self._too_large())

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body exceeds {self.max_body} bytes")

    async def refuse(
        self, scope: Scope, receive: Receive, send: Send, exc: OrchestrionError
    ) -> None:
        """Answer ``exc`` as a problem (a WebSocket: accepted, then closed with its code)."""
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
                title=exc.default_title(), type_uri=exc.type_uri, errors=exc.errors,
            )  # fmt: skip

    async def _special(self, request: Request) -> Response:
        """Composite endpoints and the admin API."""
        path = request.url.path
        parts = self.composites.get(path)
        if parts is not None:
            if request.method not in ("GET", "HEAD"):
                raise method_not_allowed(_OWN_METHODS)
            return await self.composer.compose(request, parts)
        principal = await self.authenticator.authenticate(
            request.headers.get("authorization"), request.headers.get("x-api-key")
        )
        if principal is None:
            raise Unauthenticated("authentication required: send a bearer token or an API key")
        if not principal.can(Permission.PLATFORM_ADMIN):
            raise Forbidden(f"missing permission '{Permission.PLATFORM_ADMIN}'")
        return await admin.dispatch(self, request, path.removeprefix(self.admin_prefix))

    def reload_config(self, *, force: bool = False, strict: bool = False) -> None:
        """Re-read the config file if it changed (or ``force``); a bad file keeps the old one."""
        if self.config_path is None:
            return
        try:
            mtime = self.config_path.stat().st_mtime
        except OSError as exc:
            if strict:
                raise ConfigError(f"{self.config_path}: {exc}") from None
            return
        if not force and mtime == self._config_mtime:
            return
        self._config_mtime = mtime
        try:
            config = GatewayConfig.load(self.config_path)
        except ConfigError as exc:
            if strict:
                raise
            logger.error("configuration not reloaded: %s", exc)
            metrics.CONFIG_RELOADS.labels("failed").inc()
            return
        self.config = config
        self.routes = RouteTable(config.merged_routes(self.default_routes))
        self._openapi = None  # routes may add versions or deprecate some: built again
        self.composites = {**DEFAULT_COMPOSITES, **{c.path: c.parts for c in config.composites}}
        self.sync_upstreams()
        metrics.CONFIG_RELOADS.labels("ok").inc()
        logger.info("configuration loaded from %s: %d routes", self.config_path, len(config.routes))

    def sync_upstreams(self) -> None:
        """Merge static, configured, registered and hand-added instances into the upstreams."""
        names = set(self.static) | set(self.config.upstreams) | set(self.registered)
        for name in sorted(names | set(self.admin_instances)):
            existing = self.upstreams.get(name)
            if existing is not None and not isinstance(existing, HttpUpstream):
                continue  # a service running in this process
            configured = self.config.upstreams.get(name)
            policy = (
                configured.policy()
                if configured
                else (existing.policy if existing else UpstreamPolicy())
            )
            instances = _unique(
                self.static.get(name, []),
                configured.static_instances() if configured else [],
                self.registered.get(name, []),
                self.admin_instances.get(name, []),
            )
            if existing is None:
                upstream = HttpUpstream(
                    name, instances, secret=self.secret, policy=policy, tls=self.tls
                )
                self.upstreams[name] = upstream
                if self.running:
                    upstream.start()
            else:
                existing.reconfigure(instances, policy)

    def _registered(self, found: dict[str, list[Instance]]) -> None:
        logger.info(
            "registry: %s", ", ".join(f"{n}={len(i)}" for n, i in sorted(found.items())) or "empty"
        )
        self.registered = found
        self.sync_upstreams()

    async def _watch_config(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.reload_config()

    async def health(self, _: Request) -> Response:
        """Every service's health, summarised."""
        body = await health.aggregate(self.upstreams)
        return JSONResponse(body, status_code=503 if body["status"] == "down" else 200)

    async def metrics(self, request: Request) -> Response:
        """Prometheus metrics, with the upstream gauges read now."""
        metrics.refresh(self.upstreams)
        return await metrics_endpoint(request, token=self.settings.observability.metrics_token)

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
                self.upstreams,
                title="Orchestrion",
                version=__version__,
                own_paths=openapi.OWN_PATHS,
                public=self._public_operation,
                deprecated=self.routes.deprecated,
                versions=self.routes.versions(),
            )
        return JSONResponse(self._openapi)

    def _public_operation(self, method: str, path: str) -> bool:
        route = self.routes.match(path)
        return route is not None and route.is_public(method, path)

    async def docs(self, _: Request) -> Response:
        """Swagger UI over the merged document."""
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Orchestrion API")

    def _start_background(self) -> None:
        self.running = True
        if self.settings.environment != "test":
            tune_collector()
        if isinstance(self.upstreams.get("auth"), HttpUpstream) and not self.settings.redis.url:
            logger.warning(
                "auth runs in another process and ORCHESTRION_REDIS__URL is not set: logouts "
                "reach this gateway only when access tokens expire, API-key revocations "
                "after ORCHESTRION_AUTH__API_KEY_CACHE_SECONDS"
            )
        for upstream in self.upstreams.values():
            if isinstance(upstream, HttpUpstream):
                upstream.start()
        if self.watcher is not None:
            self.watcher.start()
        if self.shared is not None:
            self.shared.start()
        if self.config_path is not None:
            self._background.append(asyncio.create_task(self._watch_config()))

    async def _listen_for_flag_changes(self) -> None:
        """Follow ``flags.changed`` so that a flag change reaches the canaries at once.

        A broker that cannot be reached does not stop the gateway: the canaries' cached
        answers then expire on their own (``canary_flag_cache_seconds``).
        """
        try:
            bus, owned = await service_bus(self.bus, self.settings.bus.url)
            if bus is None:
                return
            if owned:
                self._own_bus = bus
            await self.canaries.listen(bus)
        except Exception as exc:  # any broker failure; the cache still expires
            logger.warning(
                "flag changes not followed (%s: %s): canary flag answers expire after %gs",
                type(exc).__name__, exc, self.canaries.flag_cache_seconds,
            )  # fmt: skip

    async def _run_lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        context = self.lifespan() if self.lifespan else None
        try:
            if context is not None:
                await context.__aenter__()
            if self.own_revocations:
                await self.revocations.start()
        except Exception as exc:
            logger.exception("start-up failed")
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        self._start_background()
        await self._listen_for_flag_changes()
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        try:
            await _closing("canary flag changes", self.canaries.aclose())
            if self._own_bus is not None:
                await _closing("bus", self._own_bus.close())
            for task in self._background:
                task.cancel()
            await _closing(
                "background tasks", asyncio.gather(*self._background, return_exceptions=True)
            )
            if self.watcher is not None:
                await _closing("registry watcher", self.watcher.aclose())
            if self.shared is not None:
                await _closing("shared admin changes", self.shared.aclose())
            if self.own_revocations:
                await _closing("revocations", self.revocations.stop())
            await _closing("composer", self.composer.aclose())
            if self.graphql is not None:
                await _closing("GraphQL", self.graphql.aclose())
            if context is not None:
                await context.__aexit__(None, None, None)
            for name, upstream in self.upstreams.items():
                close = getattr(upstream, "aclose", None)
                if close is not None:
                    await _closing(f"upstream {name}", close())
        except Exception as exc:
            logger.exception("shutdown failed")
            await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


#: How long one part of the gateway gets to close at shutdown before it is left behind.
_CLOSE_SECONDS = 10.0


async def _closing(part: str, closed: Awaitable[Any]) -> None:
    """Await ``closed``; a part that hangs is named in the log and left, so that the
    process still stops (the operator learns which one)."""
    try:
        async with asyncio.timeout(_CLOSE_SECONDS):
            await closed
    except TimeoutError:
        logger.warning("shutdown: %s did not close within %gs; left behind", part, _CLOSE_SECONDS)


_OWN_METHODS = frozenset({"GET", "HEAD"})


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
    discover: bool = False,
    revocations: Revocations | None = None,
    bus: Bus | None = None,
) -> ASGIApp:
    """The gateway app in front of ``upstreams``, with the platform's middleware.

    ``discover``: also route to the instances services register in Redis.
    ``revocations``: the notices the auth service publishes in this process (embedded
    shape; the caller starts and stops them); without, the gateway follows them itself.
    ``bus``: the process's in-memory bus (embedded shape; the caller starts and stops
    it); without, the gateway connects to ``ORCHESTRION_BUS__URL`` for flag changes.
    """
    core = Gateway(
        settings=settings,
        upstreams=upstreams,
        routes=routes if routes is not None else DEFAULT_ROUTES,
        lifespan=lifespan,
        discover=discover,
        revocations=revocations,
        bus=bus,
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
    inner = app
    measured = MetricsMiddleware(app, component="gateway")
    app = measured
    if settings.observability.access_log:
        app = AccessLogMiddleware(app)
        return RequestIdMiddleware(TracingMiddleware(app))
    edge = _Edge(inner, measured, RequestIdMiddleware(TracingMiddleware(app)))
    if settings.gateway.fast_lane and inner is core:
        edge.lane = Lane(core, measured)
    return edge


class _Edge:
    """Request id and metrics in one ``send`` wrapper while tracing is off (the proxied
    path's common case); the full middleware chain ``full`` while it is on.

    Behaves as ``RequestIdMiddleware(TracingMiddleware(MetricsMiddleware(app)))`` does
    with tracing off, one coroutine call per message instead of three.
    """

    def __init__(self, app: ASGIApp, metrics: MetricsMiddleware, full: ASGIApp) -> None:
        self.app = app
        self.metrics = metrics
        self.full = full
        # Set when the gateway's HTTP protocol may serve plain proxied requests itself.
        self.lane: Lane | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope`` with an id, counted in the metrics."""
        kind = scope["type"]
        if kind != "http" or tracing.enabled():
            await self.full(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        encoded = request_id.encode()
        status = 500

        async def edge_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                echo_request_id(message, encoded)
            await send(message)

        try:
            await self.app(scope, receive, edge_send)
        finally:
            self.metrics.record(scope, status, start)
            structlog.contextvars.unbind_contextvars("request_id")


def _saying_upstream(name: str, vary: str | None, send: Send) -> Send:
    """``send`` with ``X-Orchestrion-Upstream: <name>`` on the response (which version
    answered), and ``Vary: <vary>`` when a request header picks the version (caches)."""
    added = [(_UPSTREAM_HEADER_BYTES, name.encode())]
    if vary is not None:
        added.append((b"vary", vary.encode()))

    async def saying(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k != _UPSTREAM_HEADER_BYTES]
            message = {**message, "headers": [*headers, *added]}
        await send(message)

    return saying


def _unique(*sources: list[Instance]) -> list[Instance]:
    """Instances by URL, the first source naming a URL winning."""
    seen: dict[str, Instance] = {}
    for source in sources:
        for instance in source:
            seen.setdefault(instance.url, instance)
    return list(seen.values())
