"""The floor of a proxy in Python on this machine: the ``python floor`` row of ``bench.gateway``.

    python -m bench.gateway_floor --port 8081 --target http://127.0.0.1:8080

A reverse proxy with nothing but what every request needs: uvloop, httptools parsing the
client's request and the upstream's answer, one task per request (as an ASGI server
makes), keep-alive connections to the upstream, the upstream's head passed on without its
hop-by-hop headers. No ASGI, no routing, no auth, no rate limit, no metrics. Whatever the
gateway spends above this row is its own; what this row spends is Python's and the
event loop's, which no gateway written on them goes under.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import uvloop

HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length"})


class _Answer:
    """One answer from the upstream, read by :class:`UpstreamConnection`."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done.set_result(None)


class UpstreamConnection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection to the upstream, one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: _Answer | None = None
        self.parser: httptools.HttpResponseParser | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.parser is not None:
            self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.answer is not None and not self.answer.done.done():
            self.answer.done.set_exception(ConnectionError("upstream closed"))

    async def request(self, head: bytes) -> tuple[int, _Answer]:
        answer = self.answer = _Answer()
        self.parser = parser = httptools.HttpResponseParser(answer)
        assert self.transport is not None
        self.transport.write(head)
        await answer.done
        return parser.get_status_code(), answer


class Proxy:
    """Idle upstream connections, and the forwarding of one request."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[UpstreamConnection] = []

    async def forward(
        self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, headers (hop-by-hop ones dropped) and body of the upstream's answer."""
        connection = self.idle.pop() if self.idle else None
        if connection is None or connection.lost:
            _, connection = await asyncio.get_running_loop().create_connection(
                UpstreamConnection, self.host, self.port
            )
        lines = [method, b" ", url, b" HTTP/1.1\r\n"]
        for name, value in headers:
            lines += [name, b": ", value, b"\r\n"]
        status, answer = await connection.request(b"".join([*lines, b"\r\n"]))
        self.idle.append(connection)
        kept = [(k, v) for k, v in answer.headers if k.lower() not in HOP]
        return status, kept, bytes(answer.body)


def encode(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """An HTTP/1.1 answer."""
    out = [b"HTTP/1.1 %d OK\r\n" % status]
    for name, value in headers:
        out += [name, b": ", value, b"\r\n"]
    out.append(b"content-length: %d\r\n\r\n" % len(body))
    return b"".join([*out, body])


class ClientConnection(asyncio.Protocol):
    """A client's connection: each request parsed, forwarded in a task, answered."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_message_complete(self) -> None:
        method, url, headers = self.parser.get_method(), self.url, self.headers
        self.headers = []
        asyncio.get_running_loop().create_task(self._answer(method, url, headers))

    async def _answer(self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        forwarded = [(k, v) for k, v in headers if k.lower() not in HOP]
        answer = encode(*await self.proxy.forward(method, url, forwarded))
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.write(answer)


def proxy_to(target: str) -> Proxy:
    parts = urlsplit(target)
    return Proxy(parts.hostname or "127.0.0.1", parts.port or 80)


def asgi(target: str) -> Any:
    """The same forwarding as a bare ASGI app (no framework, no middleware): served by
    uvicorn, the ``asgi floor`` row adds the ASGI server's request cycle to the floor."""
    proxy = proxy_to(target)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        url = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP]
        status, kept, body = await proxy.forward(scope["method"].encode(), url, headers)
        await send({"type": "http.response.start", "status": status, "headers": kept})
        await send({"type": "http.response.body", "body": body})

    return app


async def serve(port: int, target: str) -> None:
    proxy = proxy_to(target)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ClientConnection(proxy), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True, help="the upstream's base URL")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.target))


if __name__ == "__main__":
    main()
