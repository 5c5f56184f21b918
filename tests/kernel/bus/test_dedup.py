"""The deduplicator contract, on the in-memory store and on Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrion.kernel.bus import (
    Claim,
    CloudEvent,
    Deduplicator,
    MemoryDeduplicator,
    RedisDeduplicator,
    open_bus,
)
from tests.fixtures.databases import server_missing
from tests.kernel.bus.conftest import URLS, eventually


@pytest.fixture(params=["memory", "redis"])
async def dedup(request: pytest.FixtureRequest) -> AsyncIterator[Deduplicator]:
    """A deduplicator of each kind, with its own key space."""
    if request.param == "memory":
        yield MemoryDeduplicator()
        return
    client = Redis.from_url(URLS["redis"])
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        server_missing(f"Redis at {URLS['redis']}", exc)
    prefix = f"test:dedup:{uuid.uuid4().hex[:8]}:"
    try:
        yield RedisDeduplicator(client, prefix=prefix)
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_the_first_claim_wins_and_others_wait(dedup: Deduplicator) -> None:
    assert await dedup.claim("g", "e1", owner="a", lease=30) is Claim.NEW
    assert await dedup.claim("g", "e1", owner="b", lease=30) is Claim.BUSY
    # The holder renews its own lease.
    assert await dedup.claim("g", "e1", owner="a", lease=30) is Claim.NEW


async def test_a_completed_id_is_done_for_everyone(dedup: Deduplicator) -> None:
    await dedup.claim("g", "e1", owner="a", lease=30)
    await dedup.complete("g", "e1")

    assert await dedup.claim("g", "e1", owner="a", lease=30) is Claim.DONE
    assert await dedup.claim("g", "e1", owner="b", lease=30) is Claim.DONE


async def test_groups_are_independent(dedup: Deduplicator) -> None:
    await dedup.claim("g1", "e1", owner="a", lease=30)
    await dedup.complete("g1", "e1")

    assert await dedup.claim("g2", "e1", owner="b", lease=30) is Claim.NEW


async def test_a_released_id_can_be_claimed_again(dedup: Deduplicator) -> None:
    await dedup.claim("g", "e1", owner="a", lease=30)
    await dedup.release("g", "e1", owner="b")  # not the holder: no effect
    assert await dedup.claim("g", "e1", owner="b", lease=30) is Claim.BUSY

    await dedup.release("g", "e1", owner="a")

    assert await dedup.claim("g", "e1", owner="b", lease=30) is Claim.NEW


async def test_an_expired_lease_frees_the_id(dedup: Deduplicator) -> None:
    await dedup.claim("g", "e1", owner="dead", lease=0.05)

    async def free() -> bool:
        return await dedup.claim("g", "e1", owner="b", lease=30) is Claim.NEW

    assert await eventually(free, within=5)


async def test_the_memory_store_forgets_its_oldest_ids() -> None:
    store = MemoryDeduplicator(max_entries=2)
    for event_id in ("e1", "e2", "e3"):
        await store.claim("g", event_id, owner="a", lease=30)
        await store.complete("g", event_id)

    assert await store.claim("g", "e3", owner="a", lease=30) is Claim.DONE
    assert await store.claim("g", "e1", owner="a", lease=30) is Claim.NEW


async def test_claims_made_at_once_get_one_winner_each(dedup: Deduplicator) -> None:
    # Many members' claims in one turn of the loop (on Redis: one pipeline): each id
    # still has exactly one owner, and a repeated claim by the owner keeps it.
    owners = ["a", "b", "c"]
    ids = [f"e{n}" for n in range(20)]
    claims = await asyncio.gather(
        *(dedup.claim("g", event_id, owner=owner, lease=30) for event_id in ids for owner in owners)
    )
    per_id = [claims[i * len(owners) : (i + 1) * len(owners)] for i in range(len(ids))]

    assert all(answers == [Claim.NEW, Claim.BUSY, Claim.BUSY] for answers in per_id)
    await asyncio.gather(*(dedup.complete("g", event_id) for event_id in ids[:10]))
    again = await asyncio.gather(*(dedup.claim("g", i, owner="a", lease=30) for i in ids))
    assert again == [Claim.DONE] * 10 + [Claim.NEW] * 10


class _MarkLostOnce(MemoryDeduplicator):
    """A store that is gone for the first ``complete``: the broker keeping the marks
    crashed after the handler returned, before the mark reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = 0

    async def complete(self, group: str, event_id: str) -> None:
        if not self.lost:
            self.lost += 1
            raise ConnectionError("the store went away")
        await super().complete(group, event_id)


async def test_an_event_handled_whose_mark_was_lost_is_not_handled_again() -> None:
    # Seen under load in the broker-crash test (Redis as broker and store): the event
    # came back and its member, which had handled it, handled it again.
    dedup = _MarkLostOnce()
    handled: list[str] = []

    async def handler(event: CloudEvent) -> None:
        handled.append(event.id)

    async with open_bus("memory://") as bus:
        await bus.subscribe("orders", "billing", handler, dedup=dedup)
        event = CloudEvent(source="/test", type="order.placed", data={"n": 1})
        await bus.publish("orders", event)

        async def marked() -> bool:
            claim = await dedup.claim("billing", event.id, owner="another", lease=30)
            if claim is Claim.NEW:  # not yet: give it back
                await dedup.release("billing", event.id, owner="another")
            return claim is Claim.DONE

        await eventually(marked)
        await asyncio.sleep(0.2)  # a second handling would come now
    assert dedup.lost == 1
    assert handled == [event.id]
