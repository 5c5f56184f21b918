"""The bus metrics move on every backend: publishes, handled deliveries, dead letters, lag."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import REGISTRY

from orchestrion.kernel.bus import Backoff, Bus, CloudEvent
from orchestrion.kernel.ids import utcnow
from tests.kernel.bus.conftest import Collector, event, eventually, group_name

FAST = Backoff(initial=0.01, maximum=0.05, jitter=0.0)


def value(name: str, **labels: str) -> float:
    """A sample of the process's registry (0 when the series does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_publish_consume_dead_letter_and_lag_are_counted(bus: Bus, topic: str) -> None:
    good, bad = group_name(), group_name()

    async def fail(_: CloudEvent) -> None:
        raise RuntimeError("downstream is down")

    handled, failing = Collector(), Collector(fail)
    await bus.subscribe(topic, good, handled)
    await bus.subscribe(topic, bad, failing, max_attempts=2, backoff=FAST)
    # An event made a minute ago: the lag the groups see is at least that.
    old = event(1, time=utcnow() - timedelta(seconds=60))
    await bus.publish(topic, old)
    await bus.publish(topic, event(2))

    await handled.wait_until(lambda c: len(c.events) == 2)
    await eventually(lambda: bus.dlq_list(topic))

    async def counted() -> bool:
        handled_ = value(
            "orchestrion_bus_consumed_total", topic=topic, group=good, result="handled"
        )
        dead = value("orchestrion_bus_dead_letters_total", topic=topic, group=bad)
        return handled_ == 2 and dead == 2

    await eventually(counted)
    assert value("orchestrion_bus_published_total", topic=topic) == 2
    assert value("orchestrion_bus_consumed_total", topic=topic, group=bad, result="handled") == 0
    assert value("orchestrion_bus_published_total", topic=topic + ".dlq") == 2
    lag = {"topic": topic, "group": good}
    assert value("orchestrion_bus_consume_lag_seconds_count", **lag) == 2
    assert value("orchestrion_bus_consume_lag_seconds_sum", **lag) >= 60
    # The minute-old event lands above the 30 s bucket, the fresh one well below it.
    assert value("orchestrion_bus_consume_lag_seconds_bucket", **lag, le="30.0") == 1
