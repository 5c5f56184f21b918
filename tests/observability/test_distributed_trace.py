"""One trace from a client to a worker: the distributed shape (gateway, auth, workflows
and a worker as separate processes on PostgreSQL and Redis) exports its spans over
OTLP/HTTP to a real receiver on loopback; a request carrying a ``traceparent`` starts a
workflow whose ``http`` step calls a loopback server."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fixtures.databases import PG_HOST, PG_PORT, PG_USER, _admin, in_thread
from tests.fixtures.processes import free_port, run_command, spawn, stop, wait_ready
from tests.fixtures.servers import serve
from tests.fixtures.upstream import Upstream
from tests.kernel.bus.conftest import broker_url

pytestmark = pytest.mark.timeout(300)

PASSWORD = "tracing-password-1"


@dataclass(frozen=True)
class Received:
    """One exported span, as the receiver decoded it."""

    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, object]
    start: int


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[Receiver]:
    """An OTLP/HTTP (protobuf) trace receiver on loopback."""
    spans: list[Received] = []
    arrived = asyncio.Event()

    async def traces(request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        for resource_spans in message.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        Received(
                            service=resource.get("service.name", ""),
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            start=span.start_time_unix_nano,
                        )
                    )
        arrived.set()
        return Response(
            ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf"
        )

    app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
    async with serve(app) as address:
        yield Receiver(f"http://{address}", spans, arrived)


@dataclass
class Receiver:
    """The receiver's base URL, the spans it got and a signal set on every export."""

    url: str
    spans: list[Received]
    arrived: asyncio.Event

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait for exports until ``condition`` holds (the test's timeout bounds it)."""
        while not condition():
            self.arrived.clear()
            await self.arrived.wait()


def _value(value: object) -> object:
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(value, kind) if kind else None


@pytest.mark.postgres
async def test_one_trace_from_the_client_through_the_gateway_and_service_to_the_worker(
    tmp_path: Path, postgres_url: str, upstream: Upstream, request: pytest.FixtureRequest
) -> None:
    name = f"orchestrion_otel_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(in_thread, asyncio.run, _admin(f'CREATE DATABASE "{name}"'))
    ports = {service: free_port() for service in ("gateway", "auth", "workflows")}
    url = {service: f"http://127.0.0.1:{port}" for service, port in ports.items()}
    processes: list[subprocess.Popen[str]] = []
    async with otlp_receiver() as receiver:
        settings = {
            "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
            "ORCHESTRION_DATABASE__URL": (
                f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
            ),
            "ORCHESTRION_BUS__URL": broker_url(request, "redis"),
            "ORCHESTRION_ENGINE__EMBEDDED_WORKERS": "false",
            "ORCHESTRION_ENGINE__POLL_SECONDS": "0.2",
            "ORCHESTRION_ENGINE__HTTP_ALLOWLIST": "127.0.0.1",
            "ORCHESTRION_OBSERVABILITY__LOG_LEVEL": "WARNING",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        try:
            migrated = await asyncio.to_thread(run_command, tmp_path, "db", "upgrade", **settings)
            assert migrated.returncode == 0, migrated.stderr
            for service in ("auth", "workflows"):
                port = str(ports[service])
                processes.append(spawn(tmp_path, "serve", service, "--port", port, **settings))
            upstreams = [f"--upstream={s}={url[s]}" for s in ("auth", "workflows")]
            processes.append(
                spawn(tmp_path, "gateway", "--port", str(ports["gateway"]), *upstreams, **settings)
            )
            processes.append(spawn(tmp_path, "worker", **settings))
            for service, process in zip(("auth", "workflows", "gateway"), processes, strict=False):
                path = "/health/live" if service == "gateway" else "/health"
                await asyncio.to_thread(wait_ready, url[service], process, 120, path)
            await _trace_a_run(url["gateway"], upstream, receiver)
        finally:
            # Off the loop: the receiver still answers the exports flushed at exit.
            for process in processes:
                if process.poll() is None:
                    print((await asyncio.to_thread(stop, process))[-2000:])
            in_thread(asyncio.run, _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _trace_a_run(base: str, upstream: Upstream, receiver: Receiver) -> None:
    trace_id = secrets.token_hex(16)
    client_span = secrets.token_hex(8)
    key = f"otel-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=base, timeout=15) as http:
        login = await http.post(
            "/api/v1/auth/login", json={"email": "admin@orchestrion.local", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        definition = {
            "name": "traced",
            "steps": [
                {"id": "call", "type": "http", "with": {"url": f"{upstream.url}/flaky/{key}"}},
            ],
        }
        workflow = await http.post("/api/v1/workflows", json=definition)
        assert workflow.status_code == 201, workflow.text
        started = await http.post(
            f"/api/v1/workflows/{workflow.json()['id']}/executions?wait=30",
            json={},
            headers={"traceparent": f"00-{trace_id}-{client_span}-01"},
        )
        assert started.status_code == 200, started.text
        execution_id = started.json()["id"]
        execution = (await http.get(f"/api/v1/executions/{execution_id}")).json()
        assert execution["status"] == "succeeded", execution
        assert execution["trace_id"] == trace_id

    # The loopback server got the trace, from the worker's HTTP client span.
    sent = upstream.state.headers[key][0]["traceparent"]
    assert sent.split("-")[1] == trace_id

    # Every process exports in the background: wait until the trace is whole (the
    # worker's task span, the last to end, is in and every parent has arrived).
    outgoing = sent.split("-")[2]
    spans = receiver.spans

    def in_trace() -> dict[str, Received]:
        return {s.span_id: s for s in spans if s.trace_id == trace_id}

    def whole() -> bool:
        found = in_trace()
        return (
            outgoing in found
            and all(s.parent_id in found or s.parent_id == client_span for s in found.values())
            and any(
                s.service == "worker" and s.kind == ProtoSpan.SPAN_KIND_CONSUMER
                for s in found.values()
            )
        )

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            await receiver.until(whole)
    trace = in_trace()
    print(_tree(trace, client_span))
    by_service = {s.service for s in trace.values()}
    assert {"gateway", "workflows", "worker"} <= by_service, by_service

    # One tree: the gateway's request span is the child of the client's span, every
    # other span's parent is in the trace.
    roots = [s for s in trace.values() if s.parent_id == client_span]
    assert [(r.service, r.kind) for r in roots] == [("gateway", ProtoSpan.SPAN_KIND_SERVER)]
    orphans = [s for s in trace.values() if s.parent_id != client_span and s.parent_id not in trace]
    assert not orphans, orphans

    def parent(span: Received) -> Received:
        return trace[span.parent_id]

    def ancestors(span: Received) -> list[Received]:
        chain = []
        while span.parent_id in trace:
            span = parent(span)
            chain.append(span)
        return chain

    # gateway request → upstream attempt → the workflows service's request span.
    service_request = next(
        s for s in trace.values()
        if s.service == "workflows" and s.kind == ProtoSpan.SPAN_KIND_SERVER
    )  # fmt: skip
    attempt = parent(service_request)
    assert (attempt.service, attempt.kind, attempt.name) == (
        "gateway", ProtoSpan.SPAN_KIND_CLIENT, "upstream workflows"
    )  # fmt: skip
    assert parent(attempt) is roots[0]
    assert service_request.attributes["http.route"] == "/api/v1/workflows/{workflow_id}/executions"

    # The workflows service enqueued the step's task (and its SQL is in the trace).
    enqueue = next(
        s for s in trace.values()
        if s.service == "workflows" and s.kind == ProtoSpan.SPAN_KIND_PRODUCER
        and s.attributes.get("messaging.system") == "orchestrion.tasks"
    )  # fmt: skip
    assert service_request in ancestors(enqueue)
    assert any(
        s.service == "workflows" and "db.system" in str(s.attributes) for s in trace.values()
    )

    # The worker continued from the stored traceparent: task → step attempt → HTTP call.
    task = next(
        s
        for s in trace.values()
        if s.service == "worker"
        and s.kind == ProtoSpan.SPAN_KIND_CONSUMER
        and s.attributes.get("messaging.system") == "orchestrion.tasks"
    )
    assert task.parent_id == enqueue.span_id
    client = trace[outgoing]
    assert (client.service, client.kind, client.name) == (
        "worker",
        ProtoSpan.SPAN_KIND_CLIENT,
        "GET",
    )
    step = parent(client)
    assert step.name == "step call"
    assert step.attributes["orchestrion.step.type"] == "http"
    assert step.attributes["orchestrion.execution_id"] == execution_id
    assert parent(step) is task


def _tree(trace: dict[str, Received], root: str, depth: int = 0) -> str:
    """The trace as an indented tree (shown when the test fails, and in the docs)."""
    kinds = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
    lines = []
    for span in sorted(trace.values(), key=lambda s: s.start):
        if span.parent_id == root:
            lines.append(f"{'  ' * depth}{span.service}: {span.name} ({kinds.get(span.kind, '?')})")
            lines.append(_tree(trace, span.span_id, depth + 1))
    return "\n".join(line for line in lines if line)
