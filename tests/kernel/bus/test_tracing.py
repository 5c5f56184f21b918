"""On every backend a publish is a PRODUCER span in the publisher's trace, and the
consumer's span joins the same parent (the event carries the publisher's context).
Before, Kafka's own ``publish`` made no span."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from orchestrion.kernel.bus import Bus, CloudEvent
from orchestrion.kernel.observability import tracing
from tests.kernel.bus.conftest import Collector, group_name
from tests.observability.test_tracing import CLIENT_PARENT, CLIENT_TRACE, exported

__all__ = ["exported"]


async def test_a_publish_is_a_producer_span_in_the_trace_its_consumer_joins(
    bus: Bus, topic: str, exported: InMemorySpanExporter
) -> None:
    collector = Collector()
    await bus.subscribe(topic, group_name(), collector)
    with tracing.span("emit", parent=CLIENT_PARENT) as emit:
        await bus.publish(topic, CloudEvent(source="/test", type="test.traced", subject="a"))
    await collector.wait_until(lambda c: len(c.events) >= 1)
    spans = exported.get_finished_spans()
    [publish] = [s for s in spans if s.name == f"publish {topic}"]
    assert publish.kind == SpanKind.PRODUCER
    assert format(publish.context.trace_id, "032x") == CLIENT_TRACE
    assert tracing.trace_id_of(collector.events[0].traceparent) == CLIENT_TRACE
    [process] = [s for s in spans if s.name == f"process {topic}"]
    emitted = emit.get_span_context().span_id
    assert publish.parent is not None
    assert publish.parent.span_id == emitted
    assert process.parent is not None
    assert process.parent.span_id == emitted
