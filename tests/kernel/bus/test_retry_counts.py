"""Retry counts survive a member's restart on the backends that count deliveries."""

from __future__ import annotations

import asyncio

import pytest

from orchestrion.kernel.bus import Backoff, Bus, CloudEvent
from tests.fixtures.brokers import TANSU_DROPS_COMMIT_METADATA, kafka_is_tansu
from tests.kernel.bus.conftest import Collector, event, eventually, group_name

#: The backends whose members count deliveries (Kafka in its offset commits' metadata,
#: which the Tansu broker of the tests does not give back: there the count starts over).
DELIVERY_COUNTING = [
    "redis",
    "rabbitmq",
    "nats",
    pytest.param(
        "kafka",
        marks=[
            pytest.mark.kafka,
            pytest.mark.xfail(kafka_is_tansu(), reason=TANSU_DROPS_COMMIT_METADATA, strict=True),
        ],
    ),
]
FAST = Backoff(initial=0.01, maximum=0.05)
#: Long enough that the first member is always stopped while waiting to retry.
SLOW = Backoff(initial=60.0, jitter=0.0)


async def fail(_: CloudEvent) -> None:
    raise RuntimeError("still broken")


@pytest.mark.parametrize("bus", DELIVERY_COUNTING, indirect=True)
async def test_a_restarted_member_goes_on_counting_attempts(bus: Bus, topic: str) -> None:
    group = group_name()
    first = Collector(fail)
    member = await bus.subscribe(topic, group, first, max_attempts=3, backoff=SLOW, ack_timeout=1)
    await bus.publish(topic, event(1))
    await first.wait_until(lambda c: c.calls == 1)
    await member.stop(grace=0)  # the member goes away between two attempts

    second = Collector(fail)
    await bus.subscribe(topic, group, second, max_attempts=3, backoff=FAST, ack_timeout=1)
    [letter] = await eventually(lambda: bus.dlq_list(topic, group), within=30)

    assert letter.attempts == 3
    assert first.calls + second.calls == 3  # not 1 + 3: the count did not start over


@pytest.mark.parametrize("bus", DELIVERY_COUNTING, indirect=True)
async def test_an_event_whose_members_keep_dying_is_dead_lettered(bus: Bus, topic: str) -> None:
    group = group_name()
    original = event(1)
    await bus.subscribe(topic, group, Collector(), ack_timeout=1)  # the group exists
    for subscription in bus.subscriptions:
        await subscription.stop(grace=0)
    await bus.publish(topic, original)
    calls = 0
    for _ in range(2):  # two members die in the handler, before it returns
        hanging = Collector(_hang)
        member = await bus.subscribe(topic, group, hanging, max_attempts=2, ack_timeout=1)
        await hanging.wait_until(lambda c: c.calls == 1, within=30)
        calls += hanging.calls
        await member.stop(grace=0)

    never = Collector()
    await bus.subscribe(topic, group, never, max_attempts=2, ack_timeout=1)
    [letter] = await eventually(lambda: bus.dlq_list(topic, group), within=30)

    assert calls == 2
    assert never.calls == 0
    assert letter.attempts == 2
    assert letter.event == original
    assert "delivered 2 times without an outcome" in letter.error


async def _hang(_: CloudEvent) -> None:
    await asyncio.Event().wait()
