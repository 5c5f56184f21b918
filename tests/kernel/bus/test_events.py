"""CloudEvent envelopes, names, backoff and the URL factory: no broker needed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrion.kernel.bus import Backoff, CloudEvent, InvalidEvent, InvalidName, open_bus
from orchestrion.kernel.bus.base import check_group, check_topic
from orchestrion.kernel.bus.memory import MemoryBus

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def structured(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "orchestrion/tests",
        "type": "thing.happened",
        "time": "2026-01-02T03:04:05.678901Z",
        "datacontenttype": "application/json",
        "data": {"a": 1},
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def test_an_event_gets_a_uuid7_id_and_utc_time() -> None:
    event = CloudEvent(source="s", type="t")

    assert len(event.id) == 36
    assert event.id[14] == "7"
    assert event.time.tzinfo is not None
    assert event.specversion == "1.0"


def test_structured_json_has_the_spec_attributes() -> None:
    event = CloudEvent(
        source="orchestrion/workflows",
        type="execution.completed",
        subject="executions/1",
        time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        data={"ok": True},
        traceparent=TRACEPARENT,
        extensions={"tenant": "acme"},
    )

    body = json.loads(event.to_json())

    assert body == {
        "specversion": "1.0",
        "id": event.id,
        "source": "orchestrion/workflows",
        "type": "execution.completed",
        "subject": "executions/1",
        "time": "2026-01-02T03:04:05Z",
        "datacontenttype": "application/json",
        "traceparent": TRACEPARENT,
        "tenant": "acme",
        "data": {"ok": True},
    }
    assert CloudEvent.from_json(event.to_json()) == event


def test_optional_attributes_are_left_out_when_unset() -> None:
    body = json.loads(CloudEvent(source="s", type="t").to_json())

    assert "subject" not in body
    assert "traceparent" not in body
    assert body["data"] is None


def test_scalar_extensions_from_other_producers_become_strings() -> None:
    event = CloudEvent.from_dict(structured(priority=3, urgent=True))

    assert event.extensions == {"priority": "3", "urgent": "true"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (structured(specversion="0.3"), "specversion"),
        (structured(id=None), "id is required"),
        (structured(source=""), "source must be a non-empty"),
        (structured(type=5), "type is required"),
        (structured(time="yesterday"), "RFC 3339"),
        (structured(time="2026-01-02T03:04:05"), "timezone"),
        (structured(traceparent="00-abc-def-01"), "traceparent"),
        (structured(traceparent="00-" + "0" * 32 + "-00f067aa0ba902b7-01"), "traceparent"),
        (structured(subject=7), "subject must be a string"),
        (structured(data_base64="AAA="), "data_base64"),
        (structured(Tenant="acme"), "extension name"),
        (structured(nested={"a": 1}), "must be a scalar"),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_malformed_envelopes_are_rejected(body: Any, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        CloudEvent.from_dict(body)


def test_not_json_is_rejected() -> None:
    with pytest.raises(InvalidEvent, match="not JSON"):
        CloudEvent.from_json(b"\xff{")


def test_invalid_events_are_refused_at_construction() -> None:
    with pytest.raises(InvalidEvent) as caught:
        CloudEvent(source="", type="t", data={1, 2}, time=datetime(2026, 1, 1))  # noqa: DTZ001

    fields = {error["loc"][0] for error in caught.value.errors}
    assert fields == {"source", "data", "time"}
    assert caught.value.status_code == 422


def test_with_extensions_keeps_the_id_and_removes_with_none() -> None:
    event = CloudEvent(source="s", type="t", extensions={"a": "1"})

    changed = event.with_extensions(b="2", a=None)

    assert changed.id == event.id
    assert changed.extensions == {"b": "2"}
    assert event.extensions == {"a": "1"}


@pytest.mark.parametrize("topic", ["orders", "orders.created", "a-b_c.D9"])
def test_topic_names_accepted(topic: str) -> None:
    assert check_topic(topic) == topic


@pytest.mark.parametrize("topic", ["", "orders.", ".orders", "a..b", "a b", "a/b", "a*", "x" * 201])
def test_topic_names_refused(topic: str) -> None:
    with pytest.raises(InvalidName):
        check_topic(topic)


def test_group_names_have_no_dots() -> None:
    assert check_group("billing-v2") == "billing-v2"
    with pytest.raises(InvalidName):
        check_group("billing.v2")


def test_backoff_grows_then_caps() -> None:
    backoff = Backoff(initial=1.0, multiplier=2.0, maximum=5.0, jitter=0.0)

    assert [backoff.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_jitter_stays_within_its_fraction() -> None:
    backoff = Backoff(initial=1.0, jitter=0.1)

    assert all(0.9 <= backoff.delay(1) <= 1.1 for _ in range(100))


def test_open_bus_picks_the_backend_by_scheme() -> None:
    assert isinstance(open_bus("memory://"), MemoryBus)
    assert open_bus("amqp://guest:guest@127.0.0.1:5672/").scheme == "amqp"
    assert open_bus("nats://127.0.0.1:4222").scheme == "nats"
    assert open_bus("kafka://127.0.0.1:9092").scheme == "kafka"
    with pytest.raises(ValueError, match="unknown bus URL scheme"):
        open_bus("mqtt://127.0.0.1")


async def test_subscribe_refuses_bad_settings() -> None:
    async with open_bus("memory://") as bus:

        async def handler(_: CloudEvent) -> None:
            pass

        with pytest.raises(ValueError, match="max_attempts"):
            await bus.subscribe("orders", "g", handler, max_attempts=0)
        with pytest.raises(InvalidName):
            await bus.subscribe("orders", "g.1", handler)
