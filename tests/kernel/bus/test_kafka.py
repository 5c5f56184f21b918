"""What only the Kafka backend does: options in its URL, and order per subject across
partitions (on the Tansu broker the fixtures start, or ``ORCHESTRION_TEST_KAFKA_URL``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from orchestrion.kernel.bus import BusUnavailable, open_bus
from orchestrion.kernel.bus.kafka import KafkaBus
from tests.fixtures.databases import server_missing
from tests.kernel.bus.conftest import Collector, event, group_name


def kafka(url: str, **options: object) -> KafkaBus:
    bus = open_bus(url, **options)  # type: ignore[arg-type]
    assert isinstance(bus, KafkaBus)
    return bus


def test_defaults_suit_apache_kafka() -> None:
    bus = kafka("kafka://broker-1:9092,broker-2:9092")

    assert bus.bootstrap == "broker-1:9092,broker-2:9092"
    assert (bus.partitions, bus.replication, bus.idempotent) == (3, 1, True)
    assert bus.session_timeout is None


def test_the_url_carries_options() -> None:
    url = "kafka://127.0.0.1:9092?idempotent=false&partitions=6&replication=3&session_timeout=2.5"
    bus = kafka(url)

    assert bus.bootstrap == "127.0.0.1:9092"
    assert (bus.partitions, bus.replication, bus.idempotent) == (6, 3, False)
    assert bus.session_timeout == 2.5


@pytest.mark.parametrize(("raw", "expected"), [("0", False), ("no", False), ("TRUE", True)])
def test_boolean_options_take_the_usual_spellings(raw: str, expected: bool) -> None:
    assert kafka(f"kafka://127.0.0.1:9092?idempotent={raw}").idempotent is expected


def test_an_option_given_in_code_wins_over_the_url() -> None:
    bus = kafka("kafka://127.0.0.1:9092?partitions=6&idempotent=false", partitions=1)

    assert (bus.partitions, bus.idempotent) == (1, False)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("idempotant=false", "unknown Kafka URL option 'idempotant'; known: idempotent, "),
        ("idempotent=maybe", "idempotent='maybe': expected true or false"),
        ("partitions=two", r"partitions='two': expected a number \(int\)"),
        ("partitions=1.5", r"expected a number \(int\)"),
        ("session_timeout=nan", r"expected a number \(float\)"),
        ("partitions=1&partitions=2", "'partitions' is given twice"),
        ("partitions=0", "partitions and replication must be >= 1"),
        ("session_timeout=0", "session_timeout must be > 0"),
    ],
)
def test_bad_options_are_refused_by_name(query: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_bus(f"kafka://127.0.0.1:9092?{query}")


@pytest.fixture
async def partitioned(kafka_url: str) -> AsyncIterator[KafkaBus]:
    """A started Kafka bus whose topics have three partitions."""
    bus = kafka(kafka_url, partitions=3)
    try:
        await asyncio.wait_for(bus.start(), timeout=10)
    except (BusUnavailable, OSError, TimeoutError) as exc:
        server_missing(f"Kafka at {kafka_url}", exc)
    try:
        yield bus
    finally:
        await bus.close(grace=1.0)


@pytest.mark.kafka
async def test_events_of_one_subject_keep_their_order_across_partitions(
    partitioned: KafkaBus,
) -> None:
    topic = f"t{uuid.uuid4().hex[:12]}.events"
    got = Collector()
    await partitioned.subscribe(topic, group_name(), got)
    subjects = [f"executions/{n}" for n in range(6)]
    sent = [event(n, subject=subjects[n % 6]) for n in range(60)]
    for item in sent:
        await partitioned.publish(topic, item)

    await got.wait_for_ids(*[item.id for item in sent])

    for subject in subjects:
        mine = [item.id for item in sent if item.subject == subject]
        assert [e.id for e in got.events if e.subject == subject] == mine
    assert len(await _partitions_used(partitioned, topic)) > 1
    await partitioned.delete(topic)


async def _partitions_used(bus: KafkaBus, topic: str) -> set[int]:
    """The partitions of ``topic`` that hold records."""
    reader = AIOKafkaConsumer(bootstrap_servers=bus.bootstrap)
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(bus.partitions)]
        ends = await reader.end_offsets(partitions)
        return {tp.partition for tp, end in ends.items() if end > 0}
    finally:
        await reader.stop()
