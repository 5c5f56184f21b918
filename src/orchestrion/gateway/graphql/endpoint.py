"""``/graphql`` at the gateway: the same principal, permissions, tenancy and rate limit
as REST, one code path for both shapes.

HTTP: the gateway's authenticator turns ``Authorization`` / ``X-API-Key`` into the
principal (none or bad: a 401 problem, as REST), the request counts once against the
caller's rate-limit bucket (the one its REST calls use), then strawberry runs the
operation; each resolver's REST call is checked against the route's permission
(:meth:`Gateway.call_as`). A browser's ``GET /graphql`` gets GraphiQL, served from
files in this package (no CDN: it works offline).

WebSocket (``graphql-transport-ws``): credentials in the upgrade's headers, or in the
``connection_init`` payload (``{"Authorization": "Bearer ..."}``: browsers cannot set
headers on a socket); the connection counts once against the rate limit.
"""

from __future__ import annotations

import gzip
import hashlib
from datetime import timedelta
from importlib import resources
from typing import Any, Protocol

from cross_web import AsyncHTTPRequestAdapter
from graphql import GraphQLError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from orchestrion.gateway.graphql import ASSETS, PATH
from orchestrion.gateway.graphql.calls import Dispatcher, Problem
from orchestrion.gateway.graphql.context import Context
from orchestrion.gateway.graphql.persisted import PersistedQueries, PersistedQueryError
from orchestrion.gateway.graphql.schema import build_schema
from orchestrion.gateway.policies.auth import Authenticator
from orchestrion.gateway.policies.ratelimit import RateLimiter
from orchestrion.gateway.routes import Route
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.errors import (
    MethodNotAllowed,
    NotFound,
    OrchestrionError,
    PayloadTooLarge,
    Unauthenticated,
)
from orchestrion.settings import Settings

PRINCIPAL = "orchestrion.graphql.principal"
#: The route GraphQL counts under: no limit of its own, so the caller's default bucket.
ROUTE = Route(prefix=PATH, service="gateway")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# GraphiQL sets styles inline (React); scripts come from this origin only.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Refuse(Protocol):
    """The gateway's way of answering an error (problem+json, or a WebSocket close)."""

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, exc: OrchestrionError
    ) -> None: ...


def _assets() -> dict[str, bytes]:
    """GraphiQL's files, gzipped as they ship (``name`` without ``.gz``)."""
    root = resources.files(__package__) / "static"
    return {
        child.name.removesuffix(".gz"): (
            child.read_bytes() if child.name.endswith(".gz") else gzip.compress(child.read_bytes())
        )
        for child in root.iterdir()
        if child.name.endswith((".js.gz", ".css.gz", ".js", ".css", ".html"))
    }


class View(GraphQL[Context, None]):
    """Strawberry's ASGI view, given our context, socket authentication and APQ."""

    def __init__(self, endpoint: GraphQLEndpoint, **options: Any) -> None:
        super().__init__(endpoint.schema, **options)
        self.endpoint = endpoint

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        return Context(
            gateway=self.endpoint.gateway,
            request=request,
            principal=request.scope.get(PRINCIPAL),
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        if context.principal is None:
            params = {str(k).lower(): v for k, v in (context.connection_params or {}).items()}
            authorization = params.get("authorization")
            api_key = params.get("x-api-key") or params.get("apikey")
            try:
                context.principal = await self.endpoint.authenticator.authenticate(
                    authorization if isinstance(authorization, str) else None,
                    api_key if isinstance(api_key, str) else None,
                )
            except Unauthenticated as exc:
                raise ConnectionRejectionError({"message": exc.detail}) from None
            if context.principal is None:
                raise ConnectionRejectionError(
                    {"message": "authentication required: send Authorization in connection_init"}
                )
            try:
                await self.endpoint.rate_limiter.check(
                    context.request.scope, ROUTE, context.principal, _no_send
                )
            except OrchestrionError as exc:
                raise ConnectionRejectionError({"message": exc.detail}) from None
        unset: UnsetType = UNSET
        return unset

    def should_render_graphql_ide(self, request: Any) -> bool:
        """Only a browser's page load (``Accept: text/html``) gets the IDE; a bare
        ``GET /graphql`` from a client is an operation (APQ sends hash-only GETs)."""
        params = request.query_params
        return (
            request.method == "GET"
            and params.get("query") is None
            and params.get("extensions") is None
            and "text/html" in request.headers.get("accept", "")
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self.endpoint.page, headers=_PAGE_HEADERS)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        try:
            request_data.query = await self.endpoint.persisted.resolve(
                request_data.query, request_data.extensions
            )
        except PersistedQueryError as exc:
            error = GraphQLError(str(exc), extensions={"code": exc.code})
            return ExecutionResult(data=None, errors=[error])
        return await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )


def _graphql_error(exc: OrchestrionError) -> Response:
    """A refusal before any operation ran, as GraphQL clients read one: ``errors`` with
    ``extensions.code``, under the HTTP status REST would answer (and its headers)."""
    problem = Problem.of(exc)
    body = {"errors": [{"message": exc.detail, "extensions": problem.extensions()}]}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _no_send(message: Any) -> None:  # pragma: no cover - never called for sockets
    return None


class GraphQLEndpoint:
    """Answers ``/graphql`` (and GraphiQL's assets) inside the gateway."""

    def __init__(
        self,
        *,
        gateway: Dispatcher,
        settings: Settings,
        authenticator: Authenticator,
        rate_limiter: RateLimiter,
        refuse: Refuse,
    ) -> None:
        config = settings.graphql
        self.gateway = gateway
        self.authenticator = authenticator
        self.rate_limiter = rate_limiter
        self.refuse = refuse
        self.graphiql = config.graphiql
        self.max_body = settings.gateway.max_body_bytes
        self.schema = build_schema(max_depth=config.max_depth, max_cost=config.max_cost)
        self.persisted = PersistedQueries(
            size=config.persisted_queries_size,
            ttl_seconds=config.persisted_queries_ttl_seconds,
            redis_url=settings.redis.url,
            prefix=config.persisted_queries_prefix,
            timeout=settings.gateway.policy_timeout_seconds,
        )
        self.assets = _assets()
        self.page = gzip.decompress(self.assets.pop("graphiql.html")).decode()
        self.etags = {
            name: '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            for name, body in self.assets.items()
        }
        self.view = View(
            self,
            graphql_ide="graphiql" if config.graphiql else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=30),
            max_subscriptions_per_connection=50,
        )

    async def aclose(self) -> None:
        """Release the persisted-query store."""
        await self.persisted.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request or socket."""
        try:
            if scope["type"] == "websocket":
                await self._socket(scope, receive, send)
            elif scope["path"].startswith(ASSETS):
                await self._asset(Request(scope, receive))(scope, receive, send)
            else:
                await self._http(scope, receive, send)
        except OrchestrionError as exc:
            if scope["type"] == "http" and scope["path"] == PATH:
                await _graphql_error(exc)(scope, receive, send)
            else:
                await self.refuse(scope, receive, send, exc)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "POST"):
            raise MethodNotAllowed(f"{PATH} answers GET and POST", headers={"Allow": "GET, POST"})
        headers = Headers(scope=scope)
        if method == "GET" and self._wants_page(scope, headers):
            if not self.graphiql:
                raise NotFound("GraphiQL is turned off here (graphql.graphiql)")
            await self.view(scope, receive, send)  # the IDE, which needs no credentials
            return
        principal = await self._principal(headers)
        if principal is None:
            raise Unauthenticated("authentication required: send a bearer token or an API key")
        send = await self.rate_limiter.check(scope, ROUTE, principal, send)
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            raise PayloadTooLarge(f"request body exceeds {self.max_body} bytes")
        scope[PRINCIPAL] = principal
        await self.view(scope, self._bounded(receive), send)

    def _bounded(self, receive: Receive) -> Receive:
        """``receive``, refusing a (chunked) body past the gateway's limit."""
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise PayloadTooLarge(f"request body exceeds {self.max_body} bytes")
            return message

        return bounded

    async def _socket(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = await self._principal(Headers(scope=scope))
        if principal is not None:
            await self.rate_limiter.check(scope, ROUTE, principal, send)
            scope[PRINCIPAL] = principal
        await self.view(scope, receive, send)

    async def _principal(self, headers: Headers) -> Principal | None:
        return await self.authenticator.authenticate(
            headers.get("authorization"), headers.get("x-api-key")
        )

    @staticmethod
    def _wants_page(scope: Scope, headers: Headers) -> bool:
        query = scope.get("query_string", b"")
        return (
            "text/html" in headers.get("accept", "")
            and b"query=" not in query
            and (b"extensions=" not in query)
        )

    def _asset(self, request: Request) -> Response:
        name = request.url.path.removeprefix(ASSETS)
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed(
                f"{request.url.path} answers GET and HEAD", headers={"Allow": "GET, HEAD"}
            )
        body = self.assets.get(name)
        if body is None:
            raise NotFound(f"no GraphiQL file at {request.url.path}")
        etag = self.etags[name]
        headers = {
            "ETag": etag, "Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding",
            "X-Content-Type-Options": "nosniff",
        }  # fmt: skip
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        media = _TYPES.get("." + name.rsplit(".", 1)[-1], "application/octet-stream")
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
        else:
            body = gzip.decompress(body)
        return Response(
            b"" if request.method == "HEAD" else body, media_type=media, headers=headers
        )
