"""The HTTP upstream against a real loopback server: headers in and out, retries,
body limits, rewrites, field allow-lists, trusted proxies."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from orchestrion.gateway.app import create_gateway
from orchestrion.gateway.proxy import HttpUpstream
from orchestrion.gateway.routes import Route, Transform, rule
from orchestrion.gateway.upstream import Upstream, UpstreamPolicy
from tests.conftest import make_settings
from tests.fixtures.lifespan import in_process
from tests.fixtures.processes import free_port
from tests.fixtures.servers import serve
from tests.fixtures.upstream import Upstream as Loopback

PUBLIC = (rule("*", r".*", None),)


async def _gateway(
    tmp_path: Path, database_url: str, urls: list[str], **overrides: object
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path, database_url, **overrides)
    secret = settings.secret_key.get_secret_value().encode()
    upstream = HttpUpstream(
        "loop", urls, secret=secret, policy=UpstreamPolicy(health_interval=0, retries=2)
    )
    routes = [
        Route(prefix="/echo", service="loop", public=PUBLIC),
        Route(
            prefix="/old",
            service="loop",
            public=PUBLIC,
            transform=Transform(
                rewrite="/echo/new",
                request_set=(("x-team", "core"),),
                request_remove=frozenset({"cookie"}),
                response_remove=frozenset({"server"}),
                response_set=(("cache-control", "no-store"),),
                response_fields=frozenset({"method", "path"}),
            ),
        ),
        Route(prefix="/status", service="loop", public=PUBLIC),
        Route(prefix="/sse", service="loop", public=PUBLIC),
        Route(prefix="/blob", service="loop", public=PUBLIC),
    ]
    upstreams: dict[str, Upstream] = {"loop": upstream}
    app = create_gateway(settings, upstreams, routes=routes)
    async with in_process(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("10.1.2.3", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield client


@pytest.fixture
async def gateway(
    tmp_path: Path, database_url: str, upstream: Loopback
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _gateway(tmp_path, database_url, [upstream.url]):
        yield client


async def test_hop_by_hop_and_spoofed_headers_are_dropped(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get(
        "/echo/a?x=1",
        headers={
            "Connection": "keep-alive, X-Drop-Me",
            "X-Drop-Me": "1",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic abc",
            "X-Forwarded-For": "6.6.6.6",
            "X-Orchestrion-Identity": "forged",
            "X-Orchestrion-Client-IP": "6.6.6.6",
            "X-Custom": "kept",
        },
    )
    assert response.status_code == 200
    seen = response.json()["headers"]
    for dropped in ("x-drop-me", "keep-alive", "te", "proxy-authorization"):
        assert dropped not in seen, dropped
    assert seen["x-custom"] == ["kept"]
    assert seen["x-forwarded-for"] == ["10.1.2.3"]  # the client's forgery is not believed
    assert seen["x-orchestrion-client-ip"] == ["10.1.2.3"]
    assert "x-orchestrion-identity" not in seen
    assert response.json()["query"] == "x=1"
    assert response.headers["x-upstream"] == "yes"


async def test_trusted_proxies_extend_the_forwarded_chain(
    tmp_path: Path, database_url: str, upstream: Loopback
) -> None:
    async for client in _gateway(
        tmp_path, database_url, [upstream.url], gateway={"trusted_proxies": ["10.0.0.0/8"]}
    ):
        response = await client.get("/echo/b", headers={"X-Forwarded-For": "203.0.113.9"})
        seen = response.json()["headers"]
        assert seen["x-forwarded-for"] == ["203.0.113.9, 10.1.2.3"]
        assert seen["x-orchestrion-client-ip"] == ["203.0.113.9"]


async def test_route_transform_rewrites_and_trims(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(
        "/old/thing", content=b"abc", headers={"Cookie": "a=b", "X-Team": "forged"}
    )
    assert response.status_code == 200
    assert response.json() == {"method": "POST", "path": "/echo/new/thing", "id": "echo"}
    assert response.headers["cache-control"] == "no-store"
    assert "server" not in response.headers
    assert response.headers["content-length"] == str(len(response.content))


async def test_bodies_stream_and_oversize_is_413(
    tmp_path: Path, database_url: str, upstream: Loopback
) -> None:
    async for client in _gateway(
        tmp_path, database_url, [upstream.url], gateway={"max_body_bytes": 100_000}
    ):
        small = await client.put("/echo/c", content=b"x" * 90_000)
        assert small.json()["body_bytes"] == 90_000

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b"y" * 10_000

        big = await client.post("/echo/d", content=chunks())
        assert big.status_code == 413
        assert big.headers["content-type"].startswith("application/problem+json")


async def test_dead_instance_is_skipped_by_retries(
    tmp_path: Path, database_url: str, upstream: Loopback
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async for client in _gateway(tmp_path, database_url, [dead, upstream.url]):
        for _ in range(6):
            response = await client.post("/echo/e", json={"n": 1})
            # Even a POST: a refused connection never reached anyone.
            assert response.status_code == 200, response.text


async def test_unreachable_service_is_503_problem(tmp_path: Path, database_url: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async for client in _gateway(tmp_path, database_url, [dead]):
        response = await client.get("/echo/f")
        assert response.status_code == 503
        assert response.json()["status"] == 503
        assert "unreachable" in response.json()["detail"]


async def test_upstream_errors_pass_through_when_not_retryable(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.post("/status/503")
    # A POST may have had effects: its 503 is the service's own answer, not retried.
    assert response.status_code == 503
    assert response.json() == {"status": "as asked"}


async def test_sse_streams_through_unbuffered(
    tmp_path: Path, database_url: str, upstream: Loopback
) -> None:
    # A real server: httpx's in-process ASGI transport would itself buffer the stream.
    settings = make_settings(tmp_path, database_url)
    secret = settings.secret_key.get_secret_value().encode()
    upstreams: dict[str, Upstream] = {"loop": HttpUpstream("loop", [upstream.url], secret=secret)}
    app = create_gateway(
        settings, upstreams, routes=[Route(prefix="/sse", service="loop", public=PUBLIC)]
    )
    key = f"sse-{uuid.uuid4().hex[:8]}"
    received: list[str] = []
    async with (
        serve(app) as address,
        httpx.AsyncClient(base_url=f"http://{address}") as client,
        client.stream("GET", f"/sse/{key}?n=4&gap=0.3") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                received.append(line)
                if len(received) == 1:
                    # The first event is here while the upstream has yet to send the last.
                    assert upstream.state.calls[key] < 4
    assert received == [f"data: event {n}" for n in range(4)]


@pytest.mark.parametrize("chunked", ["0", "1"])
async def test_large_answers_stream_whole_and_connections_are_reused(
    gateway: httpx.AsyncClient, chunked: str
) -> None:
    expected = bytes(range(256)) * 1200 + bytes(range(7))
    for _ in range(3):  # the same pooled connection carries answer after answer
        response = await gateway.get(f"/blob?size={len(expected)}&chunked={chunked}")
        assert response.status_code == 200
        assert response.content == expected
    head = await gateway.head("/blob?size=10")
    assert head.status_code == 200
    assert head.content == b""
