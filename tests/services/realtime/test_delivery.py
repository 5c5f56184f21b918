"""Backpressure and the platform's side: slow consumers, internal publish, token frames."""

from __future__ import annotations

import secrets
import socket
from typing import Any

from tests.services.realtime.conftest import (
    UNLIMITED,
    StartRealtime,
    close_code,
    recv,
    send,
    subscribe,
)


async def test_slow_consumer_is_disconnected_with_4408(realtime_server: StartRealtime) -> None:
    server = await realtime_server(send_queue_size=16, close_timeout_seconds=30, **UNLIMITED)
    chunk = secrets.token_urlsafe(24_000)  # incompressible: per-message deflate cannot shrink it
    count = 400
    # A small receive buffer and max_queue=1: this client soon stops taking frames in.
    host, port = server.address.split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32_768)
    sock.connect((host, int(port)))
    async with (
        server.connect("slow", sock=sock, max_queue=1) as slow,
        server.connect("fast") as fast,
    ):
        await recv(slow)
        await recv(fast)
        await subscribe(slow, "room:flood")

        for n in range(count):  # each publish waits for its ack: "fast" keeps up
            await send(fast, type="publish", channel="room:flood", data={"n": n, "pad": chunk})
            assert (await recv(fast))["seq"] == n + 1

        received = 0
        code = None
        while code is None:
            try:
                frame = await recv(slow)
            except Exception:
                code = await close_code(slow)
            else:
                assert frame["type"] == "message"
                received += 1
        assert code == 4408
        assert received < count  # what overflowed was dropped, not buffered
        # The service itself is fine.
        await send(fast, type="ping")
        assert (await recv(fast))["type"] == "pong"


async def test_internal_publish_stores_or_keeps_the_given_seq(
    realtime_server: StartRealtime,
) -> None:
    server = await realtime_server()
    async with server.connect("ann", permissions=("workflows:read",)) as ann:
        await recv(ann)
        await subscribe(ann, "workflow:w1")
        stored = await server.publish(
            {"tenant_id": "t1", "channel": "workflow:w1", "data": {"status": "active"}}
        )
        assert stored.status_code == 200, stored.text
        assert stored.json() == {"channel": "workflow:w1", "seq": 1}
        assert await recv(ann) == {
            "type": "message", "channel": "workflow:w1", "seq": 1, "data": {"status": "active"},
        }  # fmt: skip
        other_tenant = await server.publish(
            {"tenant_id": "t2", "channel": "workflow:w1", "data": "not for t1"}
        )
        assert other_tenant.json()["seq"] == 1  # t2's own channel
        await send(ann, type="ping")
        assert (await recv(ann))["type"] == "pong"


async def test_internal_publish_refuses_bad_requests(realtime_server: StartRealtime) -> None:
    server = await realtime_server()
    outsider = await server.publish(
        {"tenant_id": "t1", "channel": "tenant", "data": 1}, internal=False
    )
    assert outsider.status_code == 404
    bad: list[dict[str, Any]] = [
        {"tenant_id": "t1", "channel": "tenant", "data": 1, "seq": 4},
        {"tenant_id": "t1", "channel": "execution:e1", "data": 1},
        {"tenant_id": "t1", "channel": "nowhere", "data": 1},
        {"tenant_id": "t1", "channel": "execution:e1", "data": {"no": "text"}, "ephemeral": True},
        {"channel": "tenant", "data": 1},
    ]
    for body in bad:
        response = await server.publish(body)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"
