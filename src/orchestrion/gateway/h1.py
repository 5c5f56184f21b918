"""A lean HTTP/1.1 client for the proxy's hot path: pooled keep-alive connections per
instance, raw ASGI-shaped headers in and out, bodies streamed both ways.

General-purpose clients (aiohttp, httpx) build URL objects, header multidicts, cookie
jars, timeout contexts and response wrappers for every request; a gateway forwarding
bytes needs none of it, and on this path they cost more CPU than everything else the
gateway does. This client writes the request head itself and parses the answer with
``httptools`` (llhttp, the parser uvicorn uses) on an ``asyncio.Protocol``.

``https://`` instances are reached over TLS with the pool's context (under mutual TLS:
the platform's CA trusted, the process's client certificate presented). What it does
not do, the proxy sends through aiohttp instead: HEAD (llhttp cannot be told that a
response to HEAD has no body).

Errors: :class:`ConnectFailed` when no connection could be made (the request reached
nobody); :class:`UpstreamClosed` when the connection died after the request was sent;
:class:`TimeoutError` when the instance was too slow.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools

from orchestrion.kernel.http.tls import client_context

# Unread body held per connection before reading from the socket pauses.
_HIGH_WATER = 1024 * 1024


class ConnectFailed(OSError):
    """No connection to the instance: the request reached nobody."""


class UpstreamClosed(ConnectionError):
    """The instance closed the connection before the whole answer arrived."""


class H1Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.idle_since = 0.0
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._keep_alive = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._head_done = False
        self._paused_reading = False
        self._drain: asyncio.Future[None] | None = None
        self.status = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamClosed(f"malformed answer: {exc}"))
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self._complete:
            self._fail(UpstreamClosed("the instance closed the connection"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(UpstreamClosed("closed while sending"))

    def pause_writing(self) -> None:
        self._drain = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self._keep_alive = self.parser.should_keep_alive()
        self._head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused_reading and self.transport:
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self._complete = True
        self._wake()

    # the client's side
    def reusable(self, now: float, max_idle: float) -> bool:
        """Whether an idle connection can take another request."""
        return (
            not self.lost
            and self.transport is not None
            and not self.transport.is_closing()
            and now - self.idle_since < max_idle
        )

    async def send(
        self, head: bytes, body: bytes | AsyncIterator[bytes] | None, chunked: bool
    ) -> None:
        """Write the request: head, then the body (chunked when its length is unknown)."""
        assert self.transport is not None
        self._reset()
        if body is None or isinstance(body, bytes):
            self.transport.write(head + body if body else head)
            return
        self.transport.write(head)
        async for chunk in body:
            if not chunk:
                continue
            if chunked:
                self.transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                self.transport.write(chunk)
            if self._drain is not None:
                await self._drain
        if chunked:
            self.transport.write(b"0\r\n\r\n")

    async def head(self, wait_seconds: float | None) -> list[tuple[bytes, bytes]]:
        """Wait for the status line and headers."""
        while not self._head_done:
            await self._wait(wait_seconds)
        return self._headers

    async def chunk(self, wait_seconds: float | None) -> bytes | None:
        """The next piece of the body, or None at its end."""
        while True:
            if self._chunks:
                piece = self._chunks.popleft()
                self._buffered -= len(piece)
                if self._paused_reading and self._buffered < _HIGH_WATER // 2 and self.transport:
                    self._paused_reading = False
                    self.transport.resume_reading()
                return piece
            if self._complete:
                return None
            await self._wait(wait_seconds)

    async def read(self, wait_seconds: float | None) -> bytes:
        """The whole (remaining) body."""
        while not self._complete:
            await self._wait(wait_seconds)
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return body

    @property
    def finished(self) -> bool:
        """The answer was read to its end and the connection may carry another."""
        return self._complete and self._keep_alive and not self.lost and not self._chunks

    def close(self) -> None:
        """Drop the connection."""
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self._headers = []
        self._chunks.clear()
        self._buffered = 0
        self._complete = False
        self._head_done = False
        self._error = None
        self.status = 0

    async def _wait(self, wait_seconds: float | None) -> None:
        if self._error is not None:
            raise self._error
        self._waiter = self.loop.create_future()
        timer = (
            self.loop.call_later(wait_seconds, self._timed_out, self._waiter)
            if wait_seconds is not None
            else None
        )
        try:
            await self._waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _timed_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError())
        self.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        self._error = error
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)


class H1Pool:
    """Idle keep-alive connections per instance base URL (``http://host:port`` or
    ``https://host:port``, the latter over TLS with ``tls``)."""

    def __init__(
        self,
        *,
        max_idle_per_instance: int = 64,
        max_idle_seconds: float = 4.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.max_idle = max_idle_per_instance
        self.tls = tls
        # Below the usual server keep-alive timeout (uvicorn: 5 s), so the gateway drops a
        # connection before the instance does and never writes into one being closed.
        self.max_idle_seconds = max_idle_seconds
        self._idle: dict[str, list[H1Connection]] = {}
        self._targets: dict[str, tuple[str, int, bytes]] = {}
        self._secure: set[str] = set()

    def target(self, base_url: str) -> tuple[str, int, bytes]:
        """Host, port and the ``Host`` header value of ``base_url``."""
        known = self._targets.get(base_url)
        if known is None:
            parts = urlsplit(base_url)
            host = parts.hostname or "127.0.0.1"
            secure = parts.scheme == "https"
            if secure:
                self._secure.add(base_url)
            port = parts.port or (443 if secure else 80)
            known = self._targets[base_url] = (host, port, parts.netloc.encode())
        return known

    async def acquire(self, base_url: str, connect_timeout: float) -> H1Connection:
        """An idle connection to ``base_url``, or a new one."""
        idle = self._idle.get(base_url)
        if idle:
            now = time.monotonic()
            while idle:
                connection = idle.pop()
                if connection.reusable(now, self.max_idle_seconds):
                    return connection
                connection.close()
        host, port, _ = self.target(base_url)
        loop = asyncio.get_running_loop()
        # The TLS handshake is part of connecting: a refused certificate reached nobody.
        secure = base_url in self._secure
        try:
            async with asyncio.timeout(connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: H1Connection(loop),
                    host,
                    port,
                    ssl=(self.tls or client_context()) if secure else None,
                    server_hostname=host if secure else None,
                )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(
                f"cannot connect to {base_url}: {exc or type(exc).__name__}"
            ) from None
        return protocol

    def release(self, base_url: str, connection: H1Connection) -> None:
        """Keep a connection whose answer was read whole; close any other."""
        if not connection.finished:
            connection.close()
            return
        idle = self._idle.setdefault(base_url, [])
        if len(idle) >= self.max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    def close(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
