"""The fast lane: plain proxied requests served at the HTTP protocol, without uvicorn's
ASGI request cycle and the ASGI layers in front of the gateway's routing.

uvicorn's request cycle (the scope, a ``RequestResponseCycle``, its ``send`` validating
and re-encoding every header) and the layers above the gateway (``DateHeader``,
``_Edge``) cost a proxied request about as much CPU as the proxying itself
(``docs/bench.md``, Gateway). The gateway's protocol (``gateway/connections.py``) hands
a request to :class:`Lane` when its headers are in; the lane takes it when it is plain:

- ``GET``, ``HEAD``, ``DELETE`` or ``OPTIONS`` without a body (no ``Transfer-Encoding``,
  no ``Content-Length`` but ``0``), no ``Expect: 100-continue``, no upgrade;
- no signed request (``Orchestrion-HMAC``: its body is read to check it);
- the path on a route :meth:`Gateway.plain_route` accepts (an HTTP upstream; no cache,
  rewrite or canary; none of the gateway's own paths), from an address the allow and
  deny lists let through;
- tracing off; CORS and the access log off (else :func:`create_gateway` builds no lane),
  and uvicorn's ``limit_concurrency`` unset.

Anything else goes through the ASGI app as before. A request the lane takes runs the
same code as on the ASGI path from routing on (:meth:`Gateway.routed`: authorization, the
rate limit, the forwarded headers, the upstream's breaker, balancer, retries and its
HTTP/1.1 client); only what surrounds it is the lane's own: the request id and the
metrics (as ``_Edge``), the ``Date`` (as ``DateHeader``) and the answer's framing on the
socket (as uvicorn's cycle: the same bytes, keep-alive, pipelining, flow control and
``Connection: close``). :class:`LaneCycle` stands where uvicorn's cycle stands in the
protocol, so uvicorn's own pipelining, keep-alive timeout and shutdown handle it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import httptools
import structlog
from starlette.types import Message
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from orchestrion.gateway.forwarded import CLIENT_IP, upstream_headers
from orchestrion.gateway.origin import DateHeader, has_date, http_date
from orchestrion.gateway.policies.auth import is_signed
from orchestrion.gateway.proxy import HttpUpstream, UpstreamRequest
from orchestrion.kernel.errors import OrchestrionError
from orchestrion.kernel.http.requestid import request_id_from
from orchestrion.kernel.observability import tracing

if TYPE_CHECKING:
    from orchestrion.gateway.app import Gateway
    from orchestrion.gateway.connections import GuardedProtocol
    from orchestrion.gateway.routes import Route
    from orchestrion.kernel.observability.metrics import MetricsMiddleware

_METHODS = frozenset({b"GET", b"HEAD", b"DELETE", b"OPTIONS"})
# An answer's head waits for its body when the body is known to be this small: the
# gateway sends such a body at once (gateway/proxy.py), and both leave in one write.
_JOINED_BYTES = 64 * 1024
_REQUEST_ID = b"x-request-id"


class Lane:
    """The gateway's side of the fast lane: which requests it takes, and serving one."""

    def __init__(self, gateway: Gateway, metrics: MetricsMiddleware) -> None:
        self.gateway = gateway
        self.metrics = metrics

    def cycle(self, protocol: GuardedProtocol, dated: bool) -> LaneCycle | None:
        """A cycle serving the request whose headers ``protocol`` just parsed, or None
        when the ASGI path must serve it (the protocol's state is then untouched)."""
        parser = protocol.parser
        method = parser.get_method()
        if method not in _METHODS or protocol.expect_100_continue or parser.should_upgrade():
            return None
        authorization: str | None = None
        api_key: str | None = None
        for name, value in protocol.headers:
            if name == b"transfer-encoding" or name == b"content-length":
                return None
            if name == b"authorization":
                if authorization is None:  # the first, as Starlette's Headers.get
                    authorization = value.decode("latin-1")
            elif name == b"x-api-key" and api_key is None:
                api_key = value.decode("latin-1")
        if is_signed(authorization) or tracing.enabled():
            return None
        # The scope as uvicorn's on_headers_complete completes it.
        parsed = httptools.parse_url(protocol.url)
        raw_path = parsed.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        root = protocol.root_path
        route = self.gateway.plain_route(root + path)
        if route is None:
            return None
        scope: Any = protocol.scope
        scope["path"] = root + path
        scope["raw_path"] = root.encode("ascii") + raw_path if root else raw_path
        scope["query_string"] = parsed.query or b""
        if self.gateway.refuses(self.gateway.settle_client(scope)):
            return None  # the ASGI path answers the 403 (it settles the client again)
        scope["method"] = method.decode("ascii")
        http_version = parser.get_http_version()
        if http_version != "1.1":
            scope["http_version"] = http_version
        scope["orchestrion.route"] = route.prefix
        cycle = LaneCycle(
            self, protocol, scope, route, dated,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
        )  # fmt: skip
        cycle.credentials = (authorization, api_key)
        return cycle

    async def serve(self, cycle: LaneCycle) -> None:
        """Serve ``cycle``'s request as ``_Edge``, :meth:`Gateway.routed` and
        :meth:`Gateway._forward` would, with the same functions, in one coroutine."""
        scope = cycle.scope
        start = time.perf_counter()
        request_id = request_id_from(scope)
        scope["state"]["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        cycle.request_id = request_id.encode()
        try:
            await self._forward(cycle, scope)
        finally:
            self.metrics.record(scope, cycle.status, start)
            structlog.contextvars.unbind_contextvars("request_id")

    async def _forward(self, cycle: LaneCycle, scope: Any) -> None:
        gateway = self.gateway
        route = cycle.route
        receive, send = cycle.receive, cycle.app_send
        authorization, api_key = cycle.credentials
        try:
            principal = await gateway.authorize(
                route, scope["method"], scope["path"], authorization, api_key
            )
            decision = await gateway.rate_limiter.decide(scope, route, principal)
        except OrchestrionError as exc:
            await gateway.refuse(scope, receive, send, exc)
            return
        if decision is not None:
            cycle.extra = decision.raw_headers()
        upstream = gateway.upstreams.get(route.service)
        if not isinstance(upstream, HttpUpstream):  # changed while authorizing
            await gateway._forward(scope, receive, send, route, principal)
            return
        headers = gateway.forward_headers(scope, principal)
        if principal is not None:
            scope["orchestrion.principal_id"] = principal.subject
        ip = scope[CLIENT_IP]
        if not gateway.hold(ip):
            await gateway.refuse(scope, receive, send, gateway.busy())
            return
        try:
            forwarded = upstream_headers(
                scope, trusted_peer=scope["orchestrion.trusted_peer"], given=headers
            )
            request = UpstreamRequest(scope["method"], forwarded, None, None)
            await upstream.exchange(scope, receive, send, request)
        except Exception:
            await gateway.failed(upstream, scope, receive, send, started=cycle.began)
        finally:
            gateway.release(ip)


def lane_of(app: Any) -> tuple[Lane, bool] | None:
    """The lane of the gateway app uvicorn serves (``DateHeader`` around it or not), or
    None when anything else stands in front of it (uvicorn's proxy headers, say)."""
    dated = isinstance(app, DateHeader)
    lane = getattr(app.app if dated else app, "lane", None)
    return (lane, dated) if isinstance(lane, Lane) else None


def _nothing() -> None:
    pass


class LaneCycle:
    """One request on the lane, in the place of uvicorn's ``RequestResponseCycle``.

    It has the attributes uvicorn's protocol (and ``GuardedProtocol``) read and write on
    a cycle, and ``run_asgi``, which serves the request through :class:`Lane` instead of
    an ASGI app; ``send`` frames the answer exactly as the cycle's ``send`` does.
    """

    __slots__ = (
        "began", "chunked", "credentials", "dated", "default_headers", "disconnected",
        "expected", "extra", "flow", "held", "keep_alive", "lane", "logger", "more_body",
        "on_response", "received", "request_id", "response_complete", "response_started",
        "route", "scope", "status", "transport", "waiter",
    )  # fmt: skip

    def __init__(
        self,
        lane: Lane,
        protocol: GuardedProtocol,
        scope: Any,
        route: Route,
        dated: bool,
        *,
        keep_alive: bool,
    ) -> None:
        self.lane = lane
        self.scope = scope
        self.route = route
        self.dated = dated
        self.transport: asyncio.Transport = protocol.transport
        self.flow: FlowControl = protocol.flow
        self.logger: logging.Logger = protocol.logger
        self.default_headers: list[tuple[bytes, bytes]] = protocol.server_state.default_headers
        self.on_response: Any = protocol.on_response_complete
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.more_body = True
        self.received = False
        self.chunked: bool | None = None
        self.expected = 0
        self.held: bytes | None = None
        self.status = 500
        self.began = False
        self.request_id = b""
        self.extra: list[tuple[bytes, bytes]] = []
        self.credentials: tuple[str | None, str | None] = (None, None)
        self.waiter: asyncio.Future[None] | None = None

    # --- what uvicorn's protocol uses of a cycle ---------------------------------------

    @property
    def message_event(self) -> LaneCycle:
        """uvicorn sets its cycle's event on a disconnect and at the request's end."""
        return self

    def set(self) -> None:
        """Wake a ``receive`` waiting for the client to leave."""
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def run_asgi(self, _app: object) -> None:
        """Serve the request (uvicorn starts this in a task, as it does its cycle's)."""
        try:
            await self.lane.serve(self)
        except BaseException as exc:
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started:
                await self.send_500_response()
            else:
                self.close()
        else:
            if not self.response_started and not self.disconnected:
                self.logger.error("ASGI callable returned without starting response.")
                await self.send_500_response()
            elif not self.response_complete and not self.disconnected:
                self.logger.error("ASGI callable returned without completing response.")
                self.close()
        finally:
            self.on_response = _nothing

    # --- the app's side -------------------------------------------------------------------

    async def receive(self) -> Message:
        """The request's (empty) body, then the client leaving, as uvicorn's cycle."""
        if not self.disconnected and not self.response_complete:
            self.flow.resume_reading()
        while not (self.disconnected or self.response_complete) and (
            self.more_body or self.received
        ):
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        self.received = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def app_send(self, message: Message) -> None:
        """``send`` as the gateway sees it: with the rate limit's headers, then through
        ``_Edge`` (the status, the request id) and ``DateHeader``, in one pass."""
        if message["type"] == "http.response.start":
            self.began = True
            self.status = int(message["status"])
            headers = [*message.get("headers", ()), *self.extra]
            rid = self.request_id
            if not any(k.lower() == _REQUEST_ID and v == rid for k, v in headers):
                headers = [(k, v) for k, v in headers if k.lower() != _REQUEST_ID]
                headers.append((_REQUEST_ID, rid))
            if self.dated and not has_date(headers):
                headers.append((b"date", http_date()))
            message = {"type": "http.response.start", "status": self.status, "headers": headers}
        await self.send(message)

    async def send(self, message: Message) -> None:
        """uvicorn's cycle's ``send``: the same bytes (the header checks aside: every
        header here was parsed by llhttp or made by the gateway)."""
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        head = self.scope["method"] == "HEAD"
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{message['type']}'."
                )
            self.response_started = True
            status = message["status"]
            content = [STATUS_LINE[status]]
            closing = False
            for name, value in (*self.default_headers, *message.get("headers", ())):
                name = name.lower()
                if name == b"content-length" and self.chunked is None:
                    self.expected = int(value.decode())
                    self.chunked = False
                elif name == b"transfer-encoding" and value.lower() == b"chunked":
                    self.expected = 0
                    self.chunked = True
                elif name == b"connection" and b"close" in [
                    token.lower().strip() for token in value.split(b",")
                ]:
                    self.keep_alive = False
                    closing = True
                content.extend((name, b": ", value, b"\r\n"))
            if not self.keep_alive and not closing:
                content.append(b"connection: close\r\n")
            if self.chunked is None and not head and status not in (204, 304):
                self.chunked = True
                content.append(b"transfer-encoding: chunked\r\n")
            content.append(b"\r\n")
            if head or (self.chunked is False and self.expected <= _JOINED_BYTES):
                self.held = b"".join(content)  # its body follows at once
            else:
                self.transport.write(b"".join(content))
            return
        if self.response_complete:
            raise RuntimeError(
                f"Unexpected ASGI message '{message['type']}' sent, after response already "
                "completed."
            )
        if message["type"] != "http.response.body":
            raise RuntimeError(
                f"Expected ASGI message 'http.response.body', but got '{message['type']}'."
            )
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if head:
            self.expected = 0
            data = b""
        elif self.chunked:
            data = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            if not more_body:
                data += b"0\r\n\r\n"
        else:
            if len(body) > self.expected:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected -= len(body)
            data = body
        held = self.held
        if held is not None:
            self.held = None
            data = held + data
        if data:
            self.transport.write(data)
        if not more_body:
            if self.expected != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()

    async def send_500_response(self) -> None:
        """uvicorn's answer to an app that failed before answering."""
        await self.send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"21"),
                    (b"connection", b"close"),
                ],
            }
        )
        await self.send(
            {"type": "http.response.body", "body": b"Internal Server Error", "more_body": False}
        )

    def close(self) -> None:
        """Send what waits, then close (a failed answer)."""
        held = self.held
        if held is not None:
            self.held = None
            if not self.transport.is_closing():
                self.transport.write(held)
        self.transport.close()
