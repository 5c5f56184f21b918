"""The HTTP upstream: a service in another process, reached over pooled connections.

Requests and responses are streamed both ways, never buffered; hop-by-hop headers are
dropped (RFC 9110 §7.6.1) and ``X-Forwarded-*`` set. WebSockets are proxied frame by
frame in both directions, keeping the close code the other side chose.

This is the first cut of the distributed gateway (one base URL per service, httpx);
balancing, retries, circuit breaking and a faster client are the gateway's next steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.types import Message, Receive, Scope, Send
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from orchestrion.kernel.errors import ServiceUnavailable, UpstreamTimeout, problem_response
from orchestrion.kernel.http.peers import internal_headers

logger = logging.getLogger("orchestrion.gateway")
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)
_WS_HEADERS = frozenset(
    {
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
    }
)


def _forwarded(scope: Scope) -> list[tuple[bytes, bytes]]:
    connection = {
        token.strip().lower().encode()
        for name, value in scope["headers"]
        if name == b"connection"
        for token in value.decode("latin-1").split(",")
    }
    headers = [
        (name, value)
        for name, value in scope["headers"]
        if name not in HOP_BY_HOP and name not in connection and name not in _WS_HEADERS
    ]
    client = scope.get("client")
    host = dict(scope["headers"]).get(b"host", b"")
    if client:
        headers.append((b"x-forwarded-for", str(client[0]).encode()))
    headers.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode()))
    if host:
        headers.append((b"x-forwarded-host", host))
    return headers


class HttpUpstream:
    """A service at ``base_url``."""

    def __init__(self, name: str, base_url: str, *, secret: bytes, timeout: float = 30.0) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        self.client = httpx.AsyncClient(
            base_url=self.base_url, headers=internal_headers(secret), timeout=timeout
        )
        self._proxy = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=limits,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.client.aclose()
        await self._proxy.aclose()

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Forward one request or socket."""
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    return

        path = scope.get("raw_path") or scope["path"].encode()
        url = path.decode("latin-1") + (
            "?" + scope["query_string"].decode() if scope.get("query_string") else ""
        )
        has_body = any(
            name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"]
        )
        request = self._proxy.build_request(
            scope["method"], url, headers=_forwarded(scope), content=body() if has_body else None
        )
        try:
            response = await self._proxy.send(request, stream=True)
        except httpx.TimeoutException:
            await _problem(
                scope, receive, send, UpstreamTimeout(f"{self.name} did not answer in time")
            )
            return
        except httpx.TransportError as exc:
            await _problem(
                scope,
                receive,
                send,
                ServiceUnavailable(f"{self.name} is unreachable: {type(exc).__name__}"),
            )
            return
        try:
            headers = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": headers}
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        path = scope.get("raw_path") or scope["path"].encode()
        query = "?" + scope["query_string"].decode() if scope.get("query_string") else ""
        url = "ws" + self.base_url.removeprefix("http") + path.decode("latin-1") + query
        protocols = [p.strip() for p in scope.get("subprotocols", [])]
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in _forwarded(scope)]
        try:
            upstream = await connect(
                url,
                additional_headers=headers,
                subprotocols=protocols or None,
                open_timeout=10,
            )
        except (InvalidHandshake, InvalidStatus, OSError, TimeoutError) as exc:
            logger.warning("websocket to %s failed: %s", self.name, exc)
            await send({"type": "websocket.close", "code": 1011})
            return
        async with upstream:
            await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
            await _pump(upstream, receive, send)


async def _pump(upstream: Any, receive: Receive, send: Send) -> None:
    async def client_to_upstream() -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "websocket.disconnect":
                await upstream.close(code=message.get("code", 1000))
                return
            if message.get("text") is not None:
                await upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send(message["bytes"])

    async def upstream_to_client() -> None:
        try:
            async for frame in upstream:
                key = "text" if isinstance(frame, str) else "bytes"
                await send({"type": "websocket.send", key: frame})
        except ConnectionClosed:
            pass
        code = upstream.close_code or 1000
        with contextlib.suppress(Exception):
            await send(
                {"type": "websocket.close", "code": code, "reason": upstream.close_reason or ""}
            )

    tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
    _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await task


async def _problem(scope: Scope, receive: Receive, send: Send, exc: Any) -> None:
    response = problem_response(
        status=exc.status_code,
        detail=exc.detail,
        instance=scope["path"],
        request_id=scope.get("state", {}).get("request_id"),
        title=exc.default_title(),
        type_uri=exc.type_uri,
        headers=exc.headers,
    )
    await response(scope, receive, send)
