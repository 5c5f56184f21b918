"""The HTTP upstream: a service running as one or more processes elsewhere.

Each request goes through the service's circuit breaker, then to an instance the
:class:`~orchestrion.gateway.balancer.Pool` picks, over pooled keep-alive connections
(aiohttp: under concurrency it costs a fraction of httpx's CPU per request). Bodies
stream both ways and are never buffered, except a small body of a retryable request,
kept so that it can be sent again.

Retries: a request that never reached an instance (connection refused) is retried on
another for any method; one that may have reached it (reset, timeout, a 502/503/504
answer) only when it is idempotent (GET, HEAD, OPTIONS, PUT, DELETE, or it carries
``Idempotency-Key``). Either way only while the retry budget allows and before any
byte of the answer went to the client.

WebSockets are proxied frame by frame in both directions, keeping the close code the
other side chose.

``https://`` instances are reached with the upstream's ``tls`` context on every path
(requests, health checks, the gateway's own calls, WebSockets): under mutual TLS that is
the process's internal context, which trusts the platform's CA and presents the
gateway's client certificate (``TlsSettings.client_context()``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import httpx
from starlette.types import Receive, Scope, Send

from orchestrion.gateway import metrics
from orchestrion.gateway.balancer import Instance, Pool
from orchestrion.gateway.forwarded import HOP_BY_HOP, upstream_headers
from orchestrion.gateway.h1 import ConnectFailed, H1Connection, H1Pool
from orchestrion.gateway.policies.breaker import CircuitBreaker, RetryBudget
from orchestrion.gateway.upstream import UpstreamPolicy, problem
from orchestrion.gateway.websocket import proxy_websocket
from orchestrion.kernel.errors import (
    OrchestrionError,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from orchestrion.kernel.http.peers import internal_headers
from orchestrion.kernel.http.tls import client_context
from orchestrion.kernel.observability import tracing

logger = logging.getLogger("orchestrion.gateway")
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})
# The gateway sends its own Server (gateway/origin.py); the service's would be a second.
_RESPONSE_DROP = HOP_BY_HOP | {b"host", b"server"}
# A retryable request body up to this size is kept in memory so it can be sent again.
_REPLAYABLE_BODY_BYTES = 64 * 1024
# An answer up to this size is read whole before it is relayed.
_SMALL_BODY_BYTES = 64 * 1024


class _Refused(Exception):
    """An attempt that failed before a byte went to the client."""

    def __init__(self, error: OrchestrionError, *, reached: bool) -> None:
        self.error = error
        self.reached = reached


class HttpUpstream:
    """A service at one or more base URLs."""

    def __init__(
        self,
        name: str,
        instances: str | list[str] | list[Instance],
        *,
        secret: bytes,
        policy: UpstreamPolicy | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.latency = metrics.UPSTREAM_LATENCY.labels(name)  # the child, once
        self.policy = policy or UpstreamPolicy()
        self.tls = tls or client_context()
        listed = [instances] if isinstance(instances, str) else instances
        self.pool = Pool(
            [i if isinstance(i, Instance) else Instance(url=i) for i in listed],
            strategy=self.policy.strategy,
            outlier=self.policy.outlier,
        )
        self.breaker = CircuitBreaker(self.policy.breaker)
        self.budget = RetryBudget(ratio=self.policy.retry_ratio)
        self.client = httpx.AsyncClient(
            transport=_BalancedTransport(self.pool, self.tls),
            base_url=f"http://{name}.upstream",
            headers=internal_headers(secret),
            timeout=10.0,
        )
        self._session: aiohttp.ClientSession | None = None
        self.h1 = H1Pool(max_idle_per_instance=self.policy.max_connections, tls=self.tls)
        self._checks: asyncio.Task[None] | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pooled connections (made on first use: aiohttp wants a running loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.policy.max_connections,
                    keepalive_timeout=30,
                    ttl_dns_cache=60,
                    ssl=self.tls,
                ),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def start(self) -> None:
        """Start the active health checks."""
        if self._checks is None and self.policy.health_interval > 0:
            self._checks = asyncio.create_task(self._check_forever(), name=f"checks-{self.name}")

    async def aclose(self) -> None:
        """Stop the checks and close the pooled connections."""
        if self._checks is not None:
            self._checks.cancel()
            await asyncio.gather(self._checks, return_exceptions=True)
            self._checks = None
        await self.client.aclose()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.h1.close()

    def reconfigure(self, instances: list[Instance], policy: UpstreamPolicy) -> None:
        """New instances (state kept for known ones) and policy, without dropping connections."""
        if policy != self.policy:
            self.policy = policy
            self.pool.strategy = policy.strategy
            self.pool.outlier = policy.outlier
            self.breaker.policy = policy.breaker
        self.pool.replace(instances)

    def describe(self) -> dict[str, Any]:
        """Breaker state and instances, for ``/health`` and the admin API."""
        now = time.monotonic()
        return {
            "breaker": self.breaker.state,
            "balancing": self.pool.strategy,
            "instances": [i.describe(now) for i in self.pool.instances],
        }

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Forward one request or socket."""
        if scope["type"] == "websocket":
            instance = self.pool.pick(_hash_key(scope, self.policy.hash_key))
            if instance is None:
                await send({"type": "websocket.close", "code": 1013})
                return
            await proxy_websocket(instance.url, self.name, scope, receive, send, tls=self.tls)
            return
        await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        headers = upstream_headers(scope, trusted_peer=scope.get("orchestrion.trusted_peer", False))
        replayable = True
        body: bytes | AsyncIterator[bytes] | None = None
        length = _content_length(scope)
        if length is not None or _chunked(scope):
            if length is not None and length <= _REPLAYABLE_BODY_BYTES:
                body = await _read_body(receive)
            else:
                replayable = False
                body = _stream_body(receive)
        request = UpstreamRequest(method, headers, body, length)
        await self.exchange(scope, receive, send, request, replayable=replayable)

    async def exchange(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: UpstreamRequest,
        *,
        replayable: bool = True,
    ) -> None:
        """Send ``request`` (made from ``scope``) through the breaker to an instance, with
        retries under the budget; its answer, or a problem, to ``send``. The ASGI path
        and the fast lane (gateway/lane.py) both come here."""
        method = request.method
        headers = request.headers
        idempotent = method in IDEMPOTENT or any(k == b"idempotency-key" for k, _ in headers)
        url = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        key = _hash_key(scope, self.policy.hash_key)
        # The breaker judges the service by whole requests: one dead instance whose
        # requests succeed on retry elsewhere is the balancer's business, not a reason
        # to refuse everyone.
        if not self.breaker.allow():
            await problem(scope, receive, send, self._open_error())
            return
        tried: set[str] = set()
        self.budget.request()
        attempts = 0
        verdict: bool | None = None
        try:
            while True:
                attempts += 1
                may_retry = replayable and attempts <= self.policy.retries
                try:
                    with tracing.span(
                        f"upstream {self.name}",
                        kind=tracing.SpanKind.CLIENT,
                        attributes={
                            "orchestrion.upstream": self.name,
                            "orchestrion.attempt": attempts,
                        },
                    ) as attempt:
                        try:
                            status = await self._attempt(
                                send, _traced(request), url, key, tried,
                                retry_statuses=may_retry and idempotent,
                            )  # fmt: skip
                        except _Refused as refused:
                            tracing.fail(attempt, refused.error.detail)
                            raise
                        tracing.set_attributes({"http.response.status_code": status}, attempt)
                    verdict = status not in RETRY_STATUSES
                    return
                except _Refused as refused:
                    retry = (
                        may_retry
                        and (not refused.reached or idempotent)
                        and self.budget.try_retry()
                    )
                    if not retry:
                        verdict = False
                        await problem(scope, receive, send, refused.error)
                        return
                    metrics.UPSTREAM_RETRIES.labels(self.name).inc()
                    tracing.add_event(
                        "upstream.retry",
                        {"orchestrion.upstream": self.name, "orchestrion.attempt": attempts + 1},
                    )
        finally:
            if verdict is None:
                self.breaker.release_probe()  # the client left: no verdict on the service
            else:
                self.breaker.record(ok=verdict)

    async def _attempt(
        self,
        send: Send,
        request: UpstreamRequest,
        url: str,
        key: str | None,
        tried: set[str],
        *,
        retry_statuses: bool,
    ) -> int:
        """Send once; the status relayed to the client, or :class:`_Refused`."""
        instance = self.pool.pick(key, frozenset(tried)) or self.pool.pick(key)
        if instance is None:
            raise _Refused(ServiceUnavailable(f"{self.name} has no instance"), reached=False)
        tried.add(instance.id)
        tracing.set_attributes({"server.address": instance.url})
        if request.method != "HEAD":
            return await self._attempt_h1(send, request, url, instance, retry_statuses)
        instance.outstanding += 1
        start = time.perf_counter()
        timeout = self.policy.client_timeout()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers]
        if request.length is not None and not isinstance(request.body, bytes | None):
            headers.append(("content-length", str(request.length)))
        try:
            response = await self.session.request(
                request.method, instance.url + url, headers=headers, data=request.body,
                allow_redirects=False, timeout=timeout, compress=None,
            )  # fmt: skip
        except Exception as exc:
            instance.outstanding -= 1
            self._failed(instance)
            raise _Refused(self._error(exc), reached=_reached(exc)) from None
        try:
            status = response.status
            if status in RETRY_STATUSES and retry_statuses:
                self._failed(instance)
                raise _Refused(UpstreamError(f"{self.name} answered {status}"), reached=True)
            await self._relay(instance, response, send)
            return status
        finally:
            instance.outstanding -= 1
            response.release()
            self.latency.observe(time.perf_counter() - start)

    async def _attempt_h1(
        self,
        send: Send,
        request: UpstreamRequest,
        url: str,
        instance: Instance,
        retry_statuses: bool,
    ) -> int:
        """:meth:`_attempt` over the lean client (not HEAD)."""
        policy = self.policy
        read_timeout = policy.read_timeout
        if policy.total_timeout is not None:
            read_timeout = min(read_timeout or policy.total_timeout, policy.total_timeout)
        instance.outstanding += 1
        start = time.perf_counter()
        connection: H1Connection | None = None
        try:
            try:
                connection = await self.h1.acquire(instance.url, policy.connect_timeout)
            except ConnectFailed as exc:
                self._failed(instance)
                raise _Refused(self._error(exc), reached=False) from None
            try:
                await connection.send(
                    _head(request, url, self.h1.target(instance.url)[2]),
                    request.body,
                    chunked=request.length is None and request.body is not None,
                )
                raw_headers = await connection.head(read_timeout)
            except (OSError, TimeoutError) as exc:
                self._failed(instance)
                raise _Refused(self._error(exc), reached=True) from None
            status = connection.status
            if status in RETRY_STATUSES and retry_statuses:
                self._failed(instance)
                raise _Refused(UpstreamError(f"{self.name} answered {status}"), reached=True)
            headers = _relayed(raw_headers)
            length = _length_of(raw_headers)
            cap = policy.max_response_bytes
            if length is not None and length > cap:
                raise _Refused(
                    UpstreamError(f"{self.name}'s answer exceeds {cap} bytes"), reached=True
                )
            if length is not None and length <= _SMALL_BODY_BYTES:
                try:
                    body = await connection.read(read_timeout)
                except (OSError, TimeoutError) as exc:
                    self._failed(instance)
                    raise _Refused(self._error(exc), reached=True) from None
                self.pool.record(instance, ok=True)
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return status
            self.pool.record(instance, ok=True)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            sent = 0
            while (piece := await connection.chunk(read_timeout)) is not None:
                sent += len(piece)
                if sent > cap:
                    logger.warning("%s: response cut at %d bytes", self.name, cap)
                    connection.close()
                    break
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return status
        finally:
            instance.outstanding -= 1
            if connection is not None:
                self.h1.release(instance.url, connection)
            self.latency.observe(time.perf_counter() - start)

    async def _relay(
        self, instance: Instance, response: aiohttp.ClientResponse, send: Send
    ) -> None:
        headers = _relayed(response.raw_headers)
        cap = self.policy.max_response_bytes
        length = response.content_length
        if length is not None and length > cap:
            raise _Refused(UpstreamError(f"{self.name}'s answer exceeds {cap} bytes"), reached=True)
        if length is not None and length <= _SMALL_BODY_BYTES:
            # A small body is read whole before anything reaches the client: an instance
            # dying mid-body is then retried elsewhere instead of cutting the answer, and
            # the client gets one message instead of two.
            try:
                body = await response.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                self._failed(instance)
                raise _Refused(self._error(exc), reached=True) from None
            self.pool.record(instance, ok=True)
            start = {"type": "http.response.start", "status": response.status, "headers": headers}
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        self.pool.record(instance, ok=True)
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        sent = 0
        async for chunk in response.content.iter_any():
            sent += len(chunk)
            if sent > cap:
                logger.warning("%s: response cut at %d bytes", self.name, cap)
                response.close()
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _failed(self, instance: Instance) -> None:
        self.pool.record(instance, ok=False)

    def _open_error(self) -> ServiceUnavailable:
        seconds = max(1, round(self.breaker.retry_after() + 0.5))
        error = ServiceUnavailable(f"{self.name} is failing; its circuit breaker is open")
        error.headers = {"Retry-After": str(seconds)}
        return error

    def _error(self, exc: Exception) -> OrchestrionError:
        if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
            return UpstreamTimeout(f"{self.name} did not answer in time")
        return ServiceUnavailable(f"{self.name} is unreachable: {type(exc).__name__}")

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self.policy.health_interval)
            await asyncio.gather(*(self._check(i) for i in list(self.pool.instances)))

    async def _check(self, instance: Instance) -> None:
        try:
            async with self.session.get(
                instance.url + self.policy.health_path,
                timeout=aiohttp.ClientTimeout(total=self.policy.health_timeout),
            ) as response:
                ok = response.status < 500
        except Exception:
            ok = False
        if ok and instance.check_failed:
            logger.info("%s instance %s passes its health check again", self.name, instance.url)
            instance.ejected_until = 0.0
        elif not ok and not instance.check_failed:
            logger.warning("%s instance %s fails its health check", self.name, instance.url)
        instance.check_failed = not ok


class _BalancedTransport(httpx.AsyncBaseTransport):
    """The gateway's own calls to a service (JWKS, API keys, health) go to a picked instance."""

    def __init__(self, pool: Pool, tls: ssl.SSLContext) -> None:
        self.pool = pool
        self.inner = httpx.AsyncHTTPTransport(verify=tls)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        tried: set[str] = set()
        while True:
            instance = self.pool.pick(None, frozenset(tried))
            if instance is None or instance.id in tried:
                raise httpx.ConnectError("no instance answers", request=request)
            tried.add(instance.id)
            base = httpx.URL(instance.url)
            request.url = request.url.copy_with(scheme=base.scheme, host=base.host, port=base.port)
            request.headers["host"] = base.netloc.decode()
            try:
                return await self.inner.handle_async_request(request)
            except httpx.ConnectError:
                self.pool.record(instance, ok=False)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """What is sent to an instance, the same on every attempt."""

    method: str
    headers: list[tuple[bytes, bytes]]
    body: bytes | AsyncIterator[bytes] | None
    length: int | None


def _traced(request: UpstreamRequest) -> UpstreamRequest:
    """``request`` carrying the current span (this attempt's) as its ``traceparent``."""
    if not tracing.enabled():
        return request
    return replace(request, headers=tracing.inject_raw(request.headers))


def _head(request: UpstreamRequest, target: str, host: bytes) -> bytes:
    lines = [
        b"%s %s HTTP/1.1\r\nhost: %s\r\n"
        % (request.method.encode(), target.encode("latin-1"), host)
    ]
    lines.extend(name + b": " + value + b"\r\n" for name, value in request.headers)
    if isinstance(request.body, bytes):
        lines.append(b"content-length: %d\r\n" % len(request.body))
    elif request.body is not None:
        if request.length is not None:
            lines.append(b"content-length: %d\r\n" % request.length)
        else:
            lines.append(b"transfer-encoding: chunked\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def _relayed(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The service's answer headers that reach the client: no hop-by-hop ones, no
    ``Server``, and its first ``Date`` only (a singleton field; gateway/origin.py)."""
    headers: list[tuple[bytes, bytes]] = []
    dated = False
    for name, value in raw:
        lower = name.lower()
        if lower in _RESPONSE_DROP:
            continue
        if lower == b"date":
            if dated:
                continue
            dated = True
        headers.append((name, value))
    return headers


def _length_of(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if len(name) == 14 and name.lower() == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


def _chunked(scope: Scope) -> bool:
    return any(name == b"transfer-encoding" for name, _ in scope["headers"])


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _stream_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def _reached(exc: Exception) -> bool:
    """Whether the request may have reached the instance (a refused connect did not)."""
    return not isinstance(exc, aiohttp.ClientConnectorError)


def _hash_key(scope: Scope, hash_key: str) -> str | None:
    if hash_key == "principal":
        principal = scope.get("orchestrion.principal_id")
        return str(principal or scope.get("orchestrion.client_ip") or "") or None
    if hash_key == "ip":
        return str(scope.get("orchestrion.client_ip") or "") or None
    if hash_key.startswith("header:"):
        wanted = hash_key.removeprefix("header:").lower().encode()
        for name, value in scope["headers"]:
            if name == wanted:
                return bytes(value).decode("latin-1")
    return None
