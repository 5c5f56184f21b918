"""The domain metrics move: executions and steps, the gateway's open WebSockets, and the
worker's own ``/metrics`` (in process, and from a real ``orchestrion worker``)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from websockets.asyncio.client import connect

from orchestrion.kernel.http.app import expose_metrics
from orchestrion.kernel.observability.metrics import serving_metrics
from orchestrion.platform import create_embedded_app
from orchestrion.services.flags.app import create_app
from orchestrion.settings import Settings
from tests.fixtures.processes import free_port
from tests.fixtures.servers import serve
from tests.fixtures.upstream import Upstream
from tests.fixtures.worker_processes import api_and_worker
from tests.kernel.bus.conftest import broker_url
from tests.services.workflows.helpers import run

WAIT = 60.0  # a failure detector: conditions that hold return at once


def value(name: str, **labels: str) -> float:
    """A sample of this process's registry (0 when the series does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def until(check: object, what: str) -> None:
    """Poll ``check()`` until it is true; fail after ``WAIT`` seconds naming ``what``."""
    deadline = time.monotonic() + WAIT
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {WAIT} s")
        await asyncio.sleep(0.02)


async def test_executions_and_steps_are_counted(
    client: httpx.AsyncClient, admin_headers: dict[str, str], upstream: Upstream
) -> None:
    started = value("orchestrion_executions_started_total")
    succeeded = value("orchestrion_executions_finished_total", status="succeeded")
    failed = value("orchestrion_executions_finished_total", status="failed")
    http_ok = {"type": "http", "status": "succeeded"}
    fail_failed = {"type": "fail", "status": "failed"}
    http_steps = value("orchestrion_step_duration_seconds_count", **http_ok)
    fail_steps = value("orchestrion_step_duration_seconds_count", **fail_failed)
    claims = value("orchestrion_queue_claim_latency_seconds_count", queue="engine")

    ok = await run(
        client,
        admin_headers,
        [{"id": "call", "type": "http", "with": {"url": upstream.url + "/slow/m?seconds=0.1"}}],
    )
    assert ok["status"] == "succeeded", ok
    boom = await run(
        client, admin_headers, [{"id": "boom", "type": "fail", "with": {"message": "no"}}]
    )
    assert boom["status"] == "failed", boom

    assert value("orchestrion_executions_started_total") == started + 2
    assert value("orchestrion_executions_finished_total", status="succeeded") == succeeded + 1
    assert value("orchestrion_executions_finished_total", status="failed") == failed + 1
    assert value("orchestrion_step_duration_seconds_count", **http_ok) == http_steps + 1
    # The http step waited 0.1 s upstream: its duration says at least that.
    assert value("orchestrion_step_duration_seconds_sum", **http_ok) >= 0.1
    assert value("orchestrion_step_duration_seconds_count", **fail_failed) == fail_steps + 1
    assert value("orchestrion_queue_claim_latency_seconds_count", queue="engine") > claims


async def test_gateway_counts_open_websockets(settings: Settings) -> None:
    labels = {"upstream": "realtime"}
    before = value("orchestrion_gateway_websocket_connections", **labels)
    async with serve(create_embedded_app(settings)) as address:
        async with connect(f"ws://{address}/ws") as first, connect(f"ws://{address}/ws"):
            await until(
                lambda: value("orchestrion_gateway_websocket_connections", **labels) == before + 2,
                "two open sockets counted",
            )
            await first.close()
            await until(
                lambda: value("orchestrion_gateway_websocket_connections", **labels) == before + 1,
                "a closed socket uncounted",
            )
        await until(
            lambda: value("orchestrion_gateway_websocket_connections", **labels) == before,
            "every closed socket uncounted",
        )


async def test_worker_metrics_server_answers_with_its_token_only() -> None:
    token = SecretStr("scrape-token-1")
    async with (
        serving_metrics(host="127.0.0.1", port=0, token=token) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        refused = await http.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "ORCHESTRION_OBSERVABILITY__METRICS_TOKEN" in refused.json()["detail"]
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        answer = await http.get("/metrics", headers={"Authorization": "Bearer scrape-token-1"})
        assert answer.status_code == 200
        names = {family.name for family in text_string_to_metric_families(answer.text)}
        assert {"orchestrion_queue_depth", "orchestrion_step_duration_seconds"} <= names


@pytest.mark.postgres
@pytest.mark.timeout(300)
async def test_worker_process_exports_its_steps_and_the_queue(
    tmp_path: Path, postgres_url: str, request: pytest.FixtureRequest
) -> None:
    metrics_port = free_port()
    async with api_and_worker(
        tmp_path,
        bus_url=broker_url(request, "redis"),
        password="metrics-password-1",
        ORCHESTRION_OBSERVABILITY__WORKER_METRICS_PORT=str(metrics_port),
    ) as running:
        steps = [
            {"id": "pause", "type": "delay", "with": {"seconds": 0.2}},
            {"id": "done", "type": "transform", "needs": ["pause"], "with": {"v": 1}},
        ]
        done = await run(running.http, {}, steps)
        assert done["status"] == "succeeded", done
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics_port}") as scrape:
            deadline = time.monotonic() + WAIT
            while True:
                try:
                    answer = await scrape.get("/metrics")
                    text = answer.text if answer.status_code == 200 else ""
                except httpx.TransportError:
                    text = ""
                samples = {
                    (s.name, frozenset(s.labels.items())): s.value
                    for family in text_string_to_metric_families(text)
                    for s in family.samples
                }
                if ("orchestrion_queue_depth", frozenset({("queue", "engine")})) in samples:
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"the worker's /metrics had no queue depth within {WAIT} s")
                await asyncio.sleep(0.2)

    def sample(name: str, **labels: str) -> float:
        return samples.get((name, frozenset(labels.items())), 0.0)

    # The steps ran in the worker, so it is the worker that reports them.
    assert sample("orchestrion_step_duration_seconds_count", type="delay", status="succeeded") >= 1
    assert sample("orchestrion_step_duration_seconds_sum", type="delay", status="succeeded") >= 0.2
    assert sample("orchestrion_queue_claim_latency_seconds_count", queue="engine") >= 1
    assert sample("orchestrion_executions_finished_total", status="succeeded") >= 1


async def test_a_service_on_its_own_serves_metrics_with_the_token(settings: Settings) -> None:
    token = SecretStr("scrape-token-2")
    app = expose_metrics(create_app(settings), token=token)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://flags") as http:
        refused = await http.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/problem+json")
        answer = await http.get("/metrics", headers={"Authorization": "Bearer scrape-token-2"})
    assert answer.status_code == 200
    names = {family.name for family in text_string_to_metric_families(answer.text)}
    assert "orchestrion_http_requests" in names  # the counter family, `_total` on its samples
