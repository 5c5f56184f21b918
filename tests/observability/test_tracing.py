"""Tracing in one process: off unless an exporter is named, and on, the context crosses
the task table, the bus and outgoing HTTP; logs carry the ids. Spans are read from the
SDK's in-memory exporter; the queue runs on a real database, the bus in memory, HTTP
goes to a loopback server."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from orchestrion.engine import NetGuard, guarded_client
from orchestrion.kernel.bus import CloudEvent, open_bus
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.observability import tracing
from orchestrion.kernel.observability.logging import configure_logging
from orchestrion.kernel.queue import TaskQueue, task_span
from tests.fixtures.upstream import Upstream

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """Tracing on for the test, spans kept in memory; off again after."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider, service="test")
    try:
        yield exporter
    finally:
        tracing.shutdown_tracing()


@pytest.fixture
async def queue(database_url: str) -> AsyncIterator[TaskQueue]:
    """A queue on a fresh database (instrumented when tracing is on before it is made)."""
    database = Database(database_url)
    try:
        yield TaskQueue(database)
    finally:
        await database.dispose()


def _named(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def test_off_without_an_exporter_and_on_with_an_endpoint() -> None:
    assert not tracing.configure_tracing("gateway", env={})
    assert not tracing.configure_tracing("gateway", env={"OTEL_TRACES_EXPORTER": "none"})
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert not tracing.configure_tracing("gateway", env={**endpoint, "OTEL_SDK_DISABLED": "true"})
    assert not tracing.enabled()
    # Off, nothing is recorded and nothing propagates.
    with tracing.span("nothing") as span:
        assert not span.is_recording()
        assert tracing.traceparent() is None
        headers: dict[str, str] = {}
        tracing.inject(headers)
        assert headers == {}
    assert CloudEvent(source="/t", type="t.happened").traceparent is None
    try:
        assert tracing.configure_tracing("gateway", env=endpoint)
        assert tracing.enabled()
        assert tracing._state.provider.resource.attributes["service.name"] == "gateway"
    finally:
        tracing.shutdown_tracing()


def test_a_traceparent_is_continued_and_its_trace_id_read_back(
    exported: InMemorySpanExporter,
) -> None:
    with tracing.span("child", parent=CLIENT_PARENT) as span:
        current = tracing.traceparent()
        assert current is not None
        assert tracing.trace_id_of(current) == CLIENT_TRACE
        assert current.split("-")[2] == format(span.get_span_context().span_id, "016x")
    child = _named(exported.get_finished_spans(), "child")
    assert child.parent is not None
    assert format(child.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert tracing.context_of("00-garbage") is None
    assert tracing.trace_id_of(None) is None


def test_logs_carry_trace_and_span_ids(exported: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    configure_logging(format="json", stream=stream)
    try:
        with tracing.span("logged", parent=CLIENT_PARENT) as span:
            logging.getLogger("orchestrion.test").warning("inside")
        logging.getLogger("orchestrion.test").warning("outside")
    finally:
        logging.getLogger().handlers.clear()
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["trace_id"] == CLIENT_TRACE
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "trace_id" not in outside


async def test_a_task_carries_the_trace_to_the_worker_that_claims_it(
    exported: InMemorySpanExporter, queue: TaskQueue
) -> None:
    with tracing.span("request", parent=CLIENT_PARENT):
        async with queue.database.session() as session:
            await queue.enqueue(session, queue="traced", payload={"execution_id": "e1"})
    [claimed] = await queue.claim(queue="traced", owner="w")
    with task_span(claimed, "traced"), tracing.span("work"):
        pass
    spans = exported.get_finished_spans()
    enqueue = _named(spans, "enqueue traced")
    process = _named(spans, "process traced")
    assert enqueue.kind == SpanKind.PRODUCER
    assert process.kind == SpanKind.CONSUMER
    assert claimed.traceparent == tracing.traceparent(enqueue)  # type: ignore[arg-type]
    assert process.parent is not None
    assert process.parent.span_id == enqueue.context.span_id
    assert {format(s.context.trace_id, "032x") for s in (enqueue, process)} == {CLIENT_TRACE}
    assert process.attributes is not None
    assert process.attributes["orchestrion.execution_id"] == "e1"
    # The SQL of the enqueue is in the trace too (our engines are instrumented).
    assert any(
        s.attributes and "db.system" in str(dict(s.attributes)) and s.parent
        and s.parent.span_id == enqueue.context.span_id
        for s in spans
    )  # fmt: skip
    # The claim ran outside any trace: its statements made no spans of their own.
    statements = [s for s in spans if "db.system" in str(dict(s.attributes or {}))]
    assert statements
    assert all(s.parent is not None for s in statements)


async def test_a_bus_event_carries_the_trace_to_its_consumer(
    exported: InMemorySpanExporter,
) -> None:
    handled: list[str | None] = []
    done = asyncio.Event()

    async def handler(event: CloudEvent) -> None:
        handled.append(tracing.traceparent())
        done.set()

    async with open_bus("memory://") as bus:
        subscription = await bus.subscribe("traced.events", "g", handler)
        with tracing.span("emit", parent=CLIENT_PARENT) as emit:
            event = CloudEvent(source="/test", type="test.happened")
            assert event.traceparent == tracing.traceparent(emit)
            await bus.publish("traced.events", event)
        await asyncio.wait_for(done.wait(), 10)
        await subscription.stop()
    spans = exported.get_finished_spans()
    consume = _named(spans, "process traced.events")
    assert consume.kind == SpanKind.CONSUMER
    assert consume.parent is not None
    assert consume.parent.span_id == emit.get_span_context().span_id
    assert tracing.trace_id_of(handled[0]) == CLIENT_TRACE


async def test_outgoing_http_sends_the_client_span_as_traceparent(
    upstream: Upstream, exported: InMemorySpanExporter
) -> None:
    async with guarded_client(NetGuard(["127.0.0.1"])) as http:
        with tracing.span("step", parent=CLIENT_PARENT):
            answer = await http.get(f"{upstream.url}/flaky/tracing-out?fail=0")
    assert answer.status_code == 200
    sent = upstream.state.headers["tracing-out"][-1]["traceparent"]
    client = _named(exported.get_finished_spans(), "GET")
    assert client.kind == SpanKind.CLIENT
    assert sent == tracing.traceparent(client)  # type: ignore[arg-type]
    assert client.attributes is not None
    assert client.attributes["http.response.status_code"] == 200
    assert "?" not in str(client.attributes["url.full"])
