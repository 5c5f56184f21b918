"""Several realtime instances sharing Redis: one seq, one history, one presence per channel."""

from __future__ import annotations

from tests.services.realtime.conftest import StartRealtime, recv, recv_type, send, subscribe


async def test_two_instances_share_seq_history_and_presence(
    start_realtime: StartRealtime, redis_settings: dict[str, str]
) -> None:
    first = await start_realtime(history_size=3, **redis_settings)
    second = await start_realtime(history_size=3, **redis_settings)
    async with first.connect("ann") as ann:
        async with second.connect("bob") as bob:
            await recv(ann)
            await recv(bob)
            await subscribe(ann, "room:shared")
            await subscribe(bob, "room:shared")
            await send(ann, type="publish", channel="room:shared", data="from first", ref="a")
            assert (await recv(ann))["ref"] == "a"
            assert (await recv(bob))["data"] == "from first"
            await send(bob, type="publish", channel="room:shared", data="from second")
            assert [(await recv(ws))["seq"] for ws in (bob, ann)] == [2, 2]

            await send(bob, type="presence", channel="room:shared", state="typing")
            assert (await recv(ann))["members"] == [{"user_id": "bob", "state": "typing"}]
            await recv(bob)

            for n in range(3, 6):
                await send(ann, type="publish", channel="room:shared", data=n)
                await recv(ann)
                assert (await recv(bob))["seq"] == n
        # The server drops bob's presence after his socket has closed, not before the
        # client's close returns: wait until ann sees him leave rather than racing it.
        assert (await recv_type(ann, "presence"))["members"] == []

    # A client that was on the first instance resumes on the second.
    async with second.connect("ann") as ann:
        await recv(ann)
        assert (await subscribe(ann, "room:shared", after=1))["seq"] == 5
        assert await recv(ann) == {"type": "gap", "channel": "room:shared", "from": 2, "to": 2}
        assert [(await recv(ann))["data"] for _ in range(3)] == [3, 4, 5]
        # bob left with his socket: his presence went with it.
        await send(ann, type="presence", channel="room:shared", state="online")
        assert (await recv(ann))["members"] == [{"user_id": "ann", "state": "online"}]
