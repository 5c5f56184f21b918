"""The bus contract, run against every backend through the ``bus`` fixture."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import pytest

from orchestrion.kernel.bus import Backoff, Bus, BusUnavailable, Claim, CloudEvent, Deduplicator
from tests.kernel.bus.conftest import Collector, event, eventually, group_name

FAST = Backoff(initial=0.01, maximum=0.05)


async def test_published_events_reach_a_subscribed_group(bus: Bus, topic: str) -> None:
    got = Collector()
    await bus.subscribe(topic, group_name(), got)
    sent = [event(n) for n in range(3)]
    for item in sent:
        await bus.publish(topic, item)

    await got.wait_for_ids(*[item.id for item in sent])

    assert got.ids == [item.id for item in sent]
    assert [e.data for e in got.events] == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_each_group_gets_every_event(bus: Bus, topic: str) -> None:
    first, second = Collector(), Collector()
    await bus.subscribe(topic, group_name(), first)
    await bus.subscribe(topic, group_name(), second)
    sent = [event(n) for n in range(5)]
    for item in sent:
        await bus.publish(topic, item)

    await first.wait_for_ids(*[item.id for item in sent])
    await second.wait_for_ids(*[item.id for item in sent])

    assert sorted(first.ids) == sorted(second.ids) == sorted(item.id for item in sent)


async def test_members_of_a_group_share_events_without_duplicates(bus: Bus, topic: str) -> None:
    group = group_name()
    seen = Collector()
    members = [await bus.subscribe(topic, group, seen) for _ in range(2)]
    sent = [event(n) for n in range(20)]
    for item in sent:
        await bus.publish(topic, item)

    await seen.wait_for_ids(*[item.id for item in sent])
    for member in members:
        await member.stop()

    assert sorted(seen.ids) == sorted(item.id for item in sent)
    assert seen.calls == len(sent)


async def test_cloudevent_round_trips_with_traceparent(bus: Bus, topic: str) -> None:
    got = Collector()
    await bus.subscribe(topic, group_name(), got)
    original = CloudEvent(
        source="orchestrion/workflows",
        type="execution.completed",
        subject="executions/42",
        time=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        data={"status": "ok", "cost": 0.25, "steps": [1, 2], "note": "naïve ✓"},
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        extensions={"tenant": "acme"},
    )
    await bus.publish(topic, original)

    await got.wait_for_ids(original.id)

    assert got.events == [original]
    assert got.events[0].traceparent == original.traceparent


async def test_failing_handler_is_retried_then_dead_lettered(bus: Bus, topic: str) -> None:
    async def fail(_: CloudEvent) -> None:
        raise RuntimeError("downstream is down")

    group = group_name()
    failing = Collector(fail)
    await bus.subscribe(topic, group, failing, max_attempts=3, backoff=FAST)
    original = event(7)
    await bus.publish(topic, original)

    letters = await eventually(lambda: bus.dlq_list(topic))

    assert failing.calls == 3
    [letter] = letters
    assert letter.group == group
    assert letter.topic == topic
    assert letter.attempts == 3
    assert "RuntimeError: downstream is down" in letter.error
    assert letter.event == original
    assert await bus.dlq_list(topic, group_name()) == []


async def test_dead_letters_replay_to_the_failed_group_only(bus: Bus, topic: str) -> None:
    fixed = asyncio.Event()

    async def flaky(_: CloudEvent) -> None:
        if not fixed.is_set():
            raise RuntimeError("bug")

    broken_group = group_name()
    broken, healthy = Collector(flaky), Collector()
    await bus.subscribe(topic, broken_group, broken, max_attempts=2, backoff=FAST)
    await bus.subscribe(topic, group_name(), healthy)
    original = event(1)
    await bus.publish(topic, original)
    await eventually(lambda: bus.dlq_list(topic, broken_group))

    fixed.set()
    assert await bus.dlq_replay(topic, broken_group) == 1
    await broken.wait_for_ids(original.id)
    # Events reach a group in order, so once the fence arrives the replay has too.
    fence = event(2)
    await bus.publish(topic, fence)
    await healthy.wait_for_ids(fence.id)

    assert broken.events[0] == original
    assert broken.ids.count(original.id) == 1
    assert healthy.ids == [original.id, fence.id]
    assert await bus.dlq_list(topic) == []


async def test_the_same_event_id_is_handled_once_per_group(bus: Bus, topic: str) -> None:
    got = Collector()
    await bus.subscribe(topic, group_name(), got)
    duplicate, fence = event(1), event(2)
    await bus.publish(topic, duplicate)
    await bus.publish(topic, duplicate)
    await bus.publish(topic, fence)

    await got.wait_for_ids(fence.id)

    assert got.ids == [duplicate.id, fence.id]


async def test_an_unacknowledged_event_goes_to_another_member_when_one_dies(
    bus: Bus, topic: str
) -> None:
    group = group_name()
    never = asyncio.Event()

    async def hang(_: CloudEvent) -> None:
        await never.wait()

    stuck = Collector(hang)
    dying = await bus.subscribe(topic, group, stuck, ack_timeout=1.0)
    held = event(1)
    await bus.publish(topic, held)
    await stuck.wait_until(lambda c: c.calls == 1)

    survivor = Collector()
    await bus.subscribe(topic, group, survivor, ack_timeout=1.0)
    await dying.stop(grace=0)

    await survivor.wait_for_ids(held.id, within=30)
    assert survivor.ids == [held.id]
    assert stuck.events == []


async def test_a_malformed_message_is_dead_lettered_without_retries(bus: Bus, topic: str) -> None:
    group = group_name()
    got = Collector()
    await bus.subscribe(topic, group, got)
    await bus._publish(topic, b'{"specversion": "0.3", "id": "x"}')
    fence = event(1)
    await bus.publish(topic, fence)
    await got.wait_for_ids(fence.id)

    [letter] = await eventually(lambda: bus.dlq_list(topic, group))

    assert letter.event is None
    assert letter.raw is not None
    assert "specversion" in letter.error
    assert got.calls == 1
    assert await bus.dlq_replay(topic, group) == 0


async def test_publishing_before_start_is_refused(bus: Bus, topic: str) -> None:
    await bus.close()

    with pytest.raises(BusUnavailable, match="not started"):
        await bus.publish(topic, event())
    await bus.start()


class CountingDedup:
    """Wraps a deduplicator and counts claims per (owner, event id)."""

    def __init__(self, inner: Deduplicator) -> None:
        self.inner = inner
        self.claims: Counter[tuple[str, str]] = Counter()
        self._changed = asyncio.Condition()

    async def claim(self, group: str, event_id: str, *, owner: str, lease: float) -> Claim:
        async with self._changed:
            self.claims[owner, event_id] += 1
            self._changed.notify_all()
        return await self.inner.claim(group, event_id, owner=owner, lease=lease)

    async def complete(self, group: str, event_id: str) -> None:
        await self.inner.complete(group, event_id)

    async def release(self, group: str, event_id: str, *, owner: str) -> None:
        await self.inner.release(group, event_id, owner=owner)

    def owners(self, event_id: str) -> set[str]:
        return {owner for owner, claimed in self.claims if claimed == event_id}

    async def wait_for_claims(self, event_id: str, count: int) -> None:
        def enough() -> bool:
            return sum(n for (_, e), n in self.claims.items() if e == event_id) >= count

        async with asyncio.timeout(15), self._changed:
            await self._changed.wait_for(enough)


async def test_a_slow_handler_keeps_its_event_past_the_ack_timeout(bus: Bus, topic: str) -> None:
    group = group_name()
    counting = CountingDedup(bus.dedup)
    release = asyncio.Event()
    held, fence = event(1), event(2)

    async def slow(item: CloudEvent) -> None:
        if item.id == held.id:
            await release.wait()

    first, second = Collector(slow), Collector()
    await bus.subscribe(topic, group, first, ack_timeout=1.0, dedup=counting)
    await bus.publish(topic, held)
    await first.wait_until(lambda c: c.calls == 1)
    await bus.subscribe(topic, group, second, ack_timeout=1.0, dedup=counting)
    # The first claim plus four renewals a third of the lease apart: the ack timeout
    # has passed while the handler still runs.
    await counting.wait_for_claims(held.id, 5)
    release.set()
    await first.wait_for_ids(held.id)
    await bus.publish(topic, fence)
    await eventually(lambda: _handled(fence.id, first, second))

    assert first.ids.count(held.id) + second.ids.count(held.id) == 1
    if bus.scheme != "kafka":
        # Per-message leases: the other member was never even handed the event. (Kafka
        # may move the partition when the second member joins; dedup then holds it.)
        assert len(counting.owners(held.id)) == 1


async def _handled(event_id: str, *collectors: Collector) -> bool:
    return any(event_id in collector.ids for collector in collectors)
