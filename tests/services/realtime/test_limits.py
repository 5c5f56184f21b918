"""Limits on client publishing: who may publish, how large, how fast, how much is kept."""

from __future__ import annotations

from typing import Any

from orchestrion.services.realtime.limits import TokenBucket
from tests.services.realtime.conftest import (
    StartRealtime,
    close_code,
    recv,
    send,
    subscribe,
)

#: Refills so slowly that no token comes back during a test: only bursts count.
NO_REFILL = 1e-6


async def test_viewers_subscribe_but_may_not_publish(realtime_server: StartRealtime) -> None:
    server = await realtime_server()
    viewer = ("workflows:read", "executions:read")
    async with server.connect("vic", permissions=viewer) as vic, server.connect("ed") as ed:
        await recv(vic)
        await recv(ed)
        await subscribe(vic, "room:lobby")
        for channel in ("room:lobby", "tenant", "user:ed"):
            await send(vic, type="publish", channel=channel, data="spam", ref=channel)
            refused = await recv(vic)
            assert (refused["type"], refused["code"], refused["ref"]) == (
                "error",
                "forbidden",
                channel,
            )
            assert "workflows:write" in refused["message"]
        # Nothing was stored: the editor's message is the channel's first.
        await send(ed, type="publish", channel="room:lobby", data="hello")
        assert (await recv(ed))["seq"] == 1
        assert (await recv(vic))["data"] == "hello"


async def test_messages_larger_than_the_limit_are_refused(realtime_server: StartRealtime) -> None:
    server = await realtime_server(max_message_bytes=100)
    async with server.connect("ann") as ann:
        await recv(ann)
        await send(ann, type="publish", channel="room:a", data="x" * 98, ref=1)  # 100 bytes
        assert (await recv(ann))["seq"] == 1
        await send(ann, type="publish", channel="room:a", data="x" * 99, ref=2)
        refused = await recv(ann)
        assert (refused["code"], refused["ref"]) == ("message_too_large", 2)
        assert "100 bytes" in refused["message"]
        assert "ORCHESTRION_REALTIME__MAX_MESSAGE_BYTES" in refused["message"]
        # Multi-byte characters count as the bytes they take.
        await send(ann, type="publish", channel="room:a", data="é" * 50, ref=3)
        assert (await recv(ann))["code"] == "message_too_large"
        await send(ann, type="publish", channel="room:a", data="ok", ref=4)
        assert (await recv(ann))["seq"] == 2


async def test_a_connection_past_its_burst_is_rate_limited(realtime_server: StartRealtime) -> None:
    server = await realtime_server(publish_rate=NO_REFILL, publish_burst=3)
    async with server.connect("ann") as ann, server.connect("ann") as again:
        await recv(ann)
        await recv(again)
        for n in range(1, 4):
            await send(ann, type="publish", channel="room:a", data=n)
            assert (await recv(ann))["seq"] == n
        await send(ann, type="publish", channel="room:a", data=4, ref="r")
        refused = await recv(ann)
        assert (refused["code"], refused["ref"]) == ("rate_limited", "r")
        assert refused["retry_after"] > 0
        assert "ORCHESTRION_REALTIME__PUBLISH_RATE" in refused["message"]
        # Presence frames take tokens too.
        await subscribe(ann, "room:a")
        await send(ann, type="presence", channel="room:a", state="online")
        assert (await recv(ann))["code"] == "rate_limited"
        # The bucket is the connection's: another socket of the same user still publishes.
        await send(again, type="publish", channel="room:a", data=5)
        assert (await recv(again))["seq"] == 4


async def test_a_user_is_rate_limited_across_connections(realtime_server: StartRealtime) -> None:
    server = await realtime_server(user_publish_rate=NO_REFILL, user_publish_burst=4)
    async with server.connect("ann") as first, server.connect("ann") as second:
        await recv(first)
        await recv(second)
        for ws in (first, second, first, second):
            await send(ws, type="publish", channel="tenant", data="x")
            assert (await recv(ws))["type"] == "message"
        for ws in (first, second):
            await send(ws, type="publish", channel="tenant", data="x")
            refused = await recv(ws)
            assert refused["code"] == "rate_limited"
            assert "ORCHESTRION_REALTIME__USER_PUBLISH_RATE" in refused["message"]
    # Reconnecting does not refill the user's bucket.
    async with server.connect("ann") as third, server.connect("bob") as bob:
        await recv(third)
        await recv(bob)
        await send(third, type="publish", channel="tenant", data="x")
        assert (await recv(third))["code"] == "rate_limited"
        await send(bob, type="publish", channel="tenant", data="x")
        assert (await recv(bob))["type"] == "message"


async def test_too_many_violations_close_the_socket_with_1008(
    realtime_server: StartRealtime,
) -> None:
    server = await realtime_server(publish_rate=NO_REFILL, publish_burst=1, max_rate_violations=3)
    async with server.connect("ann") as ann:
        await recv(ann)
        await send(ann, type="publish", channel="room:a", data=0)
        assert (await recv(ann))["seq"] == 1
        for n in range(1, 4):
            await send(ann, type="publish", channel="room:a", data=n, ref=n)
            assert (await recv(ann))["code"] == "rate_limited"
        assert await close_code(ann) == 1008
        assert ann.close_reason is not None
        assert "ORCHESTRION_REALTIME__MAX_RATE_VIOLATIONS" in ann.close_reason


async def _replay(server: Any, channel: str, *, tenant: str = "t1") -> list[Any]:
    """Every frame a fresh subscriber resuming from the start of ``channel`` gets."""
    async with server.connect("reader", tenant=tenant) as reader:
        await recv(reader)
        latest = (await subscribe(reader, channel, after=0))["seq"]
        frames = []
        seen = 0
        while seen < latest:
            frame = await recv(reader)
            frames.append(frame)
            seen = frame["to"] if frame["type"] == "gap" else frame["seq"]
        return frames


async def test_history_is_bounded_per_tenant_oldest_first(realtime_server: StartRealtime) -> None:
    # backend_settings runs this on the memory backend and on the local Redis.
    server = await realtime_server(max_tenant_history_messages=4)
    async with server.connect("ann") as ann, server.connect("xi", tenant="t2") as xi:
        await recv(ann)
        await recv(xi)
        await send(xi, type="publish", channel="room:a", data="t2")
        await recv(xi)
        for n, channel in enumerate(["room:a", "room:b", "room:a", "room:b", "room:a", "room:b"]):
            await send(ann, type="publish", channel=channel, data=n)
            await recv(ann)
    # t1 keeps its 4 newest messages across both channels (data 2 to 5): the two
    # oldest, one per channel, were trimmed.
    assert await _replay(server, "room:a") == [
        {"type": "gap", "channel": "room:a", "from": 1, "to": 1},
        {"type": "message", "channel": "room:a", "seq": 2, "data": 2},
        {"type": "message", "channel": "room:a", "seq": 3, "data": 4},
    ]
    assert await _replay(server, "room:b") == [
        {"type": "gap", "channel": "room:b", "from": 1, "to": 1},
        {"type": "message", "channel": "room:b", "seq": 2, "data": 3},
        {"type": "message", "channel": "room:b", "seq": 3, "data": 5},
    ]
    # Another tenant's history is its own.
    assert await _replay(server, "room:a", tenant="t2") == [
        {"type": "message", "channel": "room:a", "seq": 1, "data": "t2"}
    ]


async def test_history_is_bounded_in_bytes_per_tenant(realtime_server: StartRealtime) -> None:
    # Each message is 12 bytes of JSON ("xxxxxxxxxx" with its quotes): three fit in 40.
    server = await realtime_server(max_tenant_history_bytes=40)
    async with server.connect("ann") as ann:
        await recv(ann)
        for channel in ("room:a", "room:b", "room:a", "room:b", "room:a"):
            await send(ann, type="publish", channel=channel, data="x" * 10)
            await recv(ann)
    assert await _replay(server, "room:a") == [
        {"type": "gap", "channel": "room:a", "from": 1, "to": 1},
        {"type": "message", "channel": "room:a", "seq": 2, "data": "x" * 10},
        {"type": "message", "channel": "room:a", "seq": 3, "data": "x" * 10},
    ]
    assert await _replay(server, "room:b") == [
        {"type": "gap", "channel": "room:b", "from": 1, "to": 1},
        {"type": "message", "channel": "room:b", "seq": 2, "data": "x" * 10},
    ]


def test_token_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    for _ in range(3):
        assert bucket.wait() == 0
        bucket.take()
    assert bucket.wait() == 0.5
    now[0] += 0.25
    assert bucket.wait() == 0.25
    now[0] += 0.25
    assert bucket.wait() == 0
    bucket.take()
    now[0] += 60
    assert bucket.full()
