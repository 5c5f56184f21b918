"""The ``bus`` fixture: one started bus per backend, each on the local test server.

Redis 127.0.0.1:6379, RabbitMQ 127.0.0.1:5672 (guest/guest), NATS JetStream
127.0.0.1:4222; Kafka on the Tansu broker the fixtures start (``kafka_url`` in
tests/fixtures/brokers.py), or at ``ORCHESTRION_TEST_KAFKA_URL``. A missing server
fails the test in CI and skips it elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from orchestrion.kernel.bus import Bus, BusUnavailable, CloudEvent, open_bus
from tests.fixtures.databases import server_missing

URLS = {
    "memory": "memory://",
    "redis": os.environ.get("ORCHESTRION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "rabbitmq": os.environ.get("ORCHESTRION_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    "nats": os.environ.get("ORCHESTRION_TEST_NATS_URL", "nats://127.0.0.1:4222"),
}
# One partition keeps Kafka's order total, as the other backends' is per group queue
# (the contract's events have no subject, the key that orders them on Kafka).
OPTIONS: dict[str, dict[str, Any]] = {"kafka": {"partitions": 1}}
BACKENDS = [
    "memory",
    "redis",
    "rabbitmq",
    "nats",
    pytest.param("kafka", marks=pytest.mark.kafka),
]
WAIT = 15.0


def broker_url(request: pytest.FixtureRequest, name: str) -> str:
    """The URL of backend ``name`` for this test (Kafka: the broker the fixtures run)."""
    if name == "kafka":
        url: str = request.getfixturevalue("kafka_url")
        return url
    return URLS[name]


def process_broker_url(request: pytest.FixtureRequest, name: str) -> str:
    """The URL of backend ``name`` for a test whose ``orchestrion`` processes join the
    services' own groups (Kafka: a broker of the test's own, see ``fresh_kafka_url``)."""
    if name == "kafka":
        url: str = request.getfixturevalue("fresh_kafka_url")
        return url
    return URLS[name]


@pytest.fixture(params=BACKENDS)
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    """A started bus of each backend, closed after the test."""
    name: str = request.param
    url = broker_url(request, name)
    options = dict(OPTIONS.get(name, {}))
    if name == "redis":
        # Streams and dedup keys of this test only, removed with the prefix afterwards.
        options["prefix"] = f"test:bus:{uuid.uuid4().hex[:12]}:"
    instance = open_bus(url, **options)
    try:
        await asyncio.wait_for(instance.start(), timeout=10)
    except (BusUnavailable, OSError, TimeoutError) as exc:
        server_missing(f"{name} at {url}", exc)
    try:
        yield instance
    finally:
        if name == "redis":
            await _drop_redis_keys(instance, options["prefix"])
        await instance.close(grace=1.0)


async def _drop_redis_keys(instance: Bus, prefix: str) -> None:
    for subscription in instance.subscriptions:
        await subscription.stop(grace=0)
    client = instance.client  # type: ignore[attr-defined]
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)


@pytest.fixture
async def topic(bus: Bus) -> AsyncIterator[str]:
    """A fresh topic, deleted with its groups and dead letters after the test."""
    name = f"t{uuid.uuid4().hex[:12]}.events"
    yield name
    for subscription in bus.subscriptions:
        await subscription.stop(grace=0)
    await bus.delete(name)


def group_name() -> str:
    """A group name no other test uses."""
    return f"g{uuid.uuid4().hex[:12]}"


class Collector:
    """A handler that records events and lets a test wait until enough arrived."""

    def __init__(self, behaviour: Callable[[CloudEvent], Awaitable[None]] | None = None) -> None:
        self.events: list[CloudEvent] = []
        self.calls = 0
        self.behaviour = behaviour
        self._changed = asyncio.Condition()

    async def __call__(self, event: CloudEvent) -> None:
        async with self._changed:
            self.calls += 1
            self._changed.notify_all()
        if self.behaviour is not None:
            await self.behaviour(event)
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    @property
    def ids(self) -> list[str]:
        """Ids of the events handled successfully, in order."""
        return [event.id for event in self.events]

    async def wait_until(
        self, predicate: Callable[[Collector], bool], within: float = WAIT
    ) -> None:
        """Block until ``predicate(self)`` holds; fail the test after ``within`` seconds."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def wait_for_ids(self, *ids: str, within: float = WAIT) -> None:
        """Block until every id in ``ids`` was handled."""
        await self.wait_until(lambda c: set(ids) <= set(c.ids), within)


async def eventually(
    check: Callable[[], Awaitable[Any]], within: float = WAIT, interval: float = 0.02
) -> Any:
    """Poll ``check`` until it returns something truthy; that value, or fail."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(interval)


def event(number: int = 0, **fields: Any) -> CloudEvent:
    """A small test event."""
    fields.setdefault("data", {"n": number})
    return CloudEvent(source="tests/bus", type="test.happened", **fields)
