"""Slow and greedy clients against a real uvicorn on 127.0.0.1, over raw sockets.

The server runs the gateway's protocol (``orchestrion.gateway.connections``) with limits
set low; the app answers ``ok`` after reading the whole body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from orchestrion.gateway.connections import protocol_class
from orchestrion.settings import GatewaySettings


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope.get("path") == "/early":  # answers without reading the body
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b"too big"})
        return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@contextlib.asynccontextmanager
async def _server(**limits: Any) -> AsyncIterator[int]:
    settings = GatewaySettings(**limits)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        _app,
        http=protocol_class(settings),
        lifespan="off",
        log_level="warning",
        headers=[("server", "orchestrion")],
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        await task


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes (bounded, so a bug fails instead of hanging)."""
    async with asyncio.timeout(30):
        return await reader.read()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _problem(answer: bytes) -> dict[str, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    document: dict[str, Any] = json.loads(body)
    return document


async def test_headers_that_never_finish_get_408() -> None:
    async with _server(header_timeout_seconds=0.3, max_connections_per_ip=0) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        await writer.drain()
        answer = await _read_all(reader)
        writer.close()
    assert _status(answer) == 408
    assert "ORCHESTRION_GATEWAY__HEADER_TIMEOUT_SECONDS" in _problem(answer)["detail"]


async def test_a_silent_connection_is_closed() -> None:
    async with _server(header_timeout_seconds=0.3) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await _read_all(reader)
        writer.close()
    assert _status(answer) == 408


async def test_huge_headers_get_431() -> None:
    async with _server(max_header_bytes=4096) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for n in range(100):
            writer.write(b"X-Filler-%d: %s\r\n" % (n, b"a" * 100))
        writer.write(b"\r\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        answer = await _read_all(reader)
        writer.close()
    assert _status(answer) == 431
    assert answer.count(b"HTTP/1.1") == 1
    assert "ORCHESTRION_GATEWAY__MAX_HEADER_BYTES" in _problem(answer)["detail"]


async def test_headers_under_the_cap_are_served() -> None:
    async with _server(max_header_bytes=4096) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Some: " + b"a" * 2000 + b"\r\n")
        writer.write(b"Connection: close\r\n\r\n")
        answer = await _read_all(reader)
        writer.close()
    assert _status(answer) == 200


async def test_a_body_that_never_finishes_gets_408() -> None:
    async with _server(body_timeout_seconds=0.3) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
        await writer.drain()
        answer = await _read_all(reader)
        writer.close()
    assert _status(answer) == 408
    assert "ORCHESTRION_GATEWAY__BODY_TIMEOUT_SECONDS" in _problem(answer)["detail"]


async def test_connections_per_address_are_capped() -> None:
    async with _server(max_connections_per_ip=2, header_timeout_seconds=60) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await _read_all(reader)
        writer.close()
        assert _status(answer) == 429
        assert "ORCHESTRION_GATEWAY__MAX_CONNECTIONS_PER_IP" in _problem(answer)["detail"]

        # A slot freed is a slot taken again.
        held[0][1].close()
        await held[0][1].wait_closed()
        served = b""
        for _ in range(50):  # the server notices the close on its next loop turns
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            served = await _read_all(reader)
            writer.close()
            if _status(served) == 200:
                break
            await asyncio.sleep(0.05)
        assert _status(served) == 200
        for _, other in held[1:]:
            other.close()


@pytest.mark.parametrize("proxies", [["127.0.0.1"], ["127.0.0.0/8"]])
async def test_trusted_proxies_are_not_capped(proxies: list[str]) -> None:
    async with _server(max_connections_per_ip=1, trusted_proxies=proxies) as port:
        first = await asyncio.open_connection("127.0.0.1", port)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        answer = await _read_all(reader)
        writer.close()
        first[1].close()
    assert _status(answer) == 200


async def test_a_websocket_gives_its_slot_back() -> None:
    """An upgraded connection leaves the protocol: its slot must not stay taken."""
    from websockets.asyncio.client import connect

    async with _server(max_connections_per_ip=1) as port:
        for _ in range(3):
            async with connect(f"ws://127.0.0.1:{port}/ws"):
                pass
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        answer = await _read_all(reader)
        writer.close()
    assert _status(answer) == 200


async def test_a_body_late_after_an_early_answer_only_closes() -> None:
    """The app answered without reading the body: no second response, the connection closes."""
    async with _server(body_timeout_seconds=0.3) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
        await writer.drain()
        answer = await _read_all(reader)
        writer.close()
    assert _status(answer) == 413
    assert answer.count(b"HTTP/1.1 ") == 1
