"""Channels on one instance: publish and acknowledgements, resume, gaps, presence, rules."""

from __future__ import annotations

import asyncio

from tests.services.realtime.conftest import (
    UNLIMITED,
    StartRealtime,
    close_code,
    recv,
    recv_type,
    send,
    subscribe,
)


async def test_publish_is_fanned_out_and_acknowledged_with_ref(
    realtime_server: StartRealtime,
) -> None:
    server = await realtime_server()
    async with server.connect("ann") as ann, server.connect("bob") as bob:
        for ws in (ann, bob):
            assert (await recv(ws))["type"] == "welcome"
            await subscribe(ws, "room:lobby")
        await send(ann, type="publish", channel="room:lobby", data={"text": "hi"}, ref="p1")
        mine = await recv(ann)
        assert mine == {
            "type": "message", "channel": "room:lobby", "seq": 1,
            "data": {"text": "hi"}, "ref": "p1",
        }  # fmt: skip
        theirs = await recv(bob)
        assert theirs == {
            "type": "message",
            "channel": "room:lobby",
            "seq": 1,
            "data": {"text": "hi"},
        }

        # A publisher that is not subscribed is answered with the stored message too.
        async with server.connect("cid") as cid:
            await recv(cid)
            await send(cid, type="publish", channel="room:lobby", data=2, ref=9)
            assert await recv(cid) == {
                "type": "message", "channel": "room:lobby", "seq": 2, "data": 2, "ref": 9,
            }  # fmt: skip
        assert (await recv(bob))["seq"] == 2
        assert (await recv(ann))["seq"] == 2

        await send(bob, type="unsubscribe", channel="room:lobby", ref="u")
        assert await recv(bob) == {"type": "unsubscribed", "channel": "room:lobby", "ref": "u"}
        await send(ann, type="publish", channel="room:lobby", data=3)
        assert (await recv(ann))["seq"] == 3
        await send(bob, type="ping")
        assert await recv(bob) == {"type": "pong"}  # nothing of room:lobby came in between


async def test_resume_delivers_every_message_once_in_order(realtime_server: StartRealtime) -> None:
    server = await realtime_server(history_size=1000, **UNLIMITED)
    total = 300
    async with server.connect("pub") as pub, server.connect("sub") as sub:
        await recv(pub)
        await recv(sub)
        await subscribe(sub, "room:feed")
        for n in range(1, 11):
            await send(pub, type="publish", channel="room:feed", data=n)
        seen = [(await recv_type(sub, "message"))["seq"] for _ in range(10)]
        assert seen == list(range(1, 11))

    async def publish_rest() -> None:
        async with server.connect("pub") as pub:
            await recv(pub)
            for n in range(11, total + 1):
                await send(pub, type="publish", channel="room:feed", data=n)
                if n % 50 == 0:
                    await asyncio.sleep(0)
            acks = [(await recv(pub))["seq"] for _ in range(11, total + 1)]
            assert acks == list(range(11, total + 1))

    # Reconnect while the rest is being published: replay and live traffic overlap.
    async with server.connect("sub") as sub:
        await recv(sub)
        publisher = asyncio.create_task(publish_rest())
        await send(sub, type="subscribe", channel="room:feed", after=4)
        answer = await recv(sub)
        assert answer["type"] == "subscribed"
        assert answer["seq"] >= 10
        received = []
        while len(received) < total - 4:
            frame = await recv_type(sub, "message")
            assert frame["data"] == frame["seq"]
            received.append(frame["seq"])
        await publisher
        assert received == list(range(5, total + 1))


async def test_gap_when_history_no_longer_holds_the_messages(
    realtime_server: StartRealtime,
) -> None:
    server = await realtime_server(history_size=3)
    async with server.connect("pub") as pub:
        await recv(pub)
        for n in range(1, 7):
            await send(pub, type="publish", channel="tenant", data=n, ref=n)
            assert (await recv(pub))["seq"] == n
    async with server.connect("sub") as sub:
        await recv(sub)
        assert (await subscribe(sub, "tenant", after=1))["seq"] == 6
        assert await recv(sub) == {"type": "gap", "channel": "tenant", "from": 2, "to": 3}
        assert [(await recv(sub))["seq"] for _ in range(3)] == [4, 5, 6]
        # Already up to date: nothing to replay, no gap.
        await send(sub, type="subscribe", channel="tenant", after=6)
        assert (await recv(sub))["seq"] == 6
        await send(sub, type="ping")
        assert (await recv(sub))["type"] == "pong"


async def test_presence_of_two_users(realtime_server: StartRealtime) -> None:
    server = await realtime_server()
    async with server.connect("ann") as ann:
        await recv(ann)
        await subscribe(ann, "room:doc")
        async with server.connect("bob") as bob:
            await recv(bob)
            await subscribe(bob, "room:doc")
            await send(ann, type="presence", channel="room:doc", state="online", ref="on")
            seen_by_ann = await recv(ann)
            assert seen_by_ann == {
                "type": "presence", "channel": "room:doc",
                "members": [{"user_id": "ann", "state": "online"}], "ref": "on",
            }  # fmt: skip
            assert (await recv(bob))["members"] == [{"user_id": "ann", "state": "online"}]

            await send(bob, type="presence", channel="room:doc", state="typing")
            both = [{"user_id": "ann", "state": "online"}, {"user_id": "bob", "state": "typing"}]
            assert (await recv(ann))["members"] == both
            assert (await recv(bob))["members"] == both

            await send(ann, type="presence", channel="room:doc", state="away")
            assert (await recv(bob))["members"][0] == {"user_id": "ann", "state": "away"}
            await recv(ann)
        # bob left: his presence goes with his socket.
        assert (await recv(ann))["members"] == [{"user_id": "ann", "state": "away"}]
        async with server.connect("cid") as cid:
            await recv(cid)
            await subscribe(cid, "room:doc")
            snapshot = await recv(cid)
            assert snapshot["members"] == [{"user_id": "ann", "state": "away"}]
            await send(cid, type="presence", channel="room:other", state="online", ref="x")
            assert (await recv(cid))["code"] == "not_subscribed"


async def test_tenants_never_see_each_other(realtime_server: StartRealtime) -> None:
    server = await realtime_server()
    async with server.connect("ann", tenant="t1") as ann, server.connect("xi", tenant="t2") as xi:
        await recv(ann)
        await recv(xi)
        for ws in (ann, xi):
            await subscribe(ws, "room:x")
            await subscribe(ws, "tenant")
        await send(xi, type="publish", channel="room:x", data="from t2")
        await send(xi, type="publish", channel="tenant", data="from t2")
        await send(xi, type="publish", channel="user:ann", data="dm across tenants")
        for _ in range(2):
            assert (await recv(xi))["data"] == "from t2"
        assert (await recv(xi))["data"] == "dm across tenants"  # its ack; no one else reads it
        await send(ann, type="publish", channel="room:x", data="from t1")
        frame = await recv(ann)
        assert (frame["data"], frame["seq"]) == ("from t1", 1)  # t2's message never came
        await send(xi, type="subscribe", channel="user:ann", ref="r")
        refused = await recv(xi)
        assert refused["type"] == "error"
        assert (refused["code"], refused["ref"]) == ("forbidden", "r")


async def test_rules_and_bad_frames_answer_error_frames(realtime_server: StartRealtime) -> None:
    server = await realtime_server(max_frame_bytes=1024, max_subscriptions=2)
    ann_may = ("workflows:write",)  # publish, but read neither executions nor workflows
    async with server.connect("ann", permissions=ann_may) as ann, server.connect("bob") as bob:
        await recv(ann)
        await recv(bob)
        cases = [
            ({"type": "subscribe", "channel": "execution:e1", "ref": 1}, "forbidden"),
            ({"type": "subscribe", "channel": "workflow:w1", "ref": 2}, "forbidden"),
            ({"type": "publish", "channel": "workflow:w1", "data": 1, "ref": 3}, "read_only"),
            ({"type": "publish", "channel": "execution:e1", "data": 1, "ref": 4}, "read_only"),
            ({"type": "subscribe", "channel": "nowhere:1", "ref": 5}, "bad_channel"),
            ({"type": "subscribe", "channel": "user:bob", "ref": 6}, "forbidden"),
            ({"type": "unsubscribe", "channel": "tenant", "ref": 7}, "not_subscribed"),
            ({"type": "launch", "ref": 8}, "bad_frame"),
            ({"type": "presence", "channel": "tenant", "state": "asleep", "ref": 9}, "bad_frame"),
            ({"type": "publish", "channel": "tenant", "data": "x" * 2000, "ref": 10},
             "frame_too_large"),
            ({"type": "auth", "token": "again", "ref": 11}, "unauthenticated"),
        ]  # fmt: skip
        for frame, code in cases:
            await send(ann, **frame)
            answer = await recv(ann)
            assert answer["type"] == "error", frame
            assert (answer["code"], answer["ref"]) == (code, frame["ref"])
            assert "Traceback" not in answer["message"]
        await ann.send("{not json")
        assert (await recv(ann))["code"] == "invalid_frame"
        await ann.send(b"\x00binary")
        assert (await recv(ann))["code"] == "bad_frame"
        await subscribe(ann, "tenant")
        await subscribe(ann, "room:a")
        await send(ann, type="subscribe", channel="room:b")
        assert (await recv(ann))["code"] == "too_many_subscriptions"
        # Direct messages: anyone in the tenant may write to a user's channel.
        await subscribe(bob, "user:bob")
        await send(ann, type="publish", channel="user:bob", data="psst")
        assert (await recv(ann))["seq"] == 1
        assert (await recv(bob))["data"] == "psst"


async def test_connection_limits_and_heartbeats(realtime_server: StartRealtime) -> None:
    server = await realtime_server(max_connections_per_user=1, heartbeat_timeout_seconds=0.5)
    async with server.connect("ann") as first:
        assert (await recv(first))["type"] == "welcome"
        async with server.connect("ann") as second:
            assert await close_code(second) == 4429
        # Silent for longer than the heartbeat timeout: closed, and the slot is free again.
        assert await close_code(first) == 4410
    async with server.connect("ann") as again:
        assert (await recv(again))["type"] == "welcome"
