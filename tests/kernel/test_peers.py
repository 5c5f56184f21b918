"""Peers found in the service registry (Redis): requests go to the registered instances in
turn, skip one that refuses connections, and find an instance registered after start."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrion.kernel.auth.identity import INTERNAL_HEADER, internal_token
from orchestrion.kernel.http import peers as peers_module
from orchestrion.kernel.http.peers import Peers
from tests.fixtures.databases import server_missing
from tests.fixtures.processes import free_port
from tests.fixtures.servers import serve

REDIS_URL = os.environ.get("ORCHESTRION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = b"peers-test-secret"


def _instance(name: str) -> Starlette:
    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "name": name,
                "path": request.url.path,
                "query": request.url.query,
                "internal": request.headers.get(INTERNAL_HEADER) == internal_token(SECRET),
            }
        )

    return Starlette(routes=[Route("/{rest:path}", whoami)])


@pytest.fixture
async def registry() -> AsyncIterator[tuple[redis.Redis, str]]:
    """The local Redis and a registry prefix of this test's own (its keys removed after)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        server_missing(f"Redis at {REDIS_URL}", exc)
    prefix = f"orn-test:{uuid.uuid4().hex[:12]}:registry:"
    try:
        yield client, prefix
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def _register(client: redis.Redis, prefix: str, service: str, url: str) -> None:
    instance = uuid.uuid4().hex
    entry = {"service": service, "id": instance, "url": url}
    await client.set(f"{prefix}{service}:{instance}", json.dumps(entry), ex=30)


async def test_requests_reach_registered_instances_in_turn(
    registry: tuple[redis.Redis, str],
) -> None:
    client, prefix = registry
    async with serve(_instance("a")) as a, serve(_instance("b")) as b:
        await _register(client, prefix, "auth", f"http://{a}")
        await _register(client, prefix, "auth", f"http://{b}/")
        peers = await Peers.from_registry(
            REDIS_URL, prefix=prefix, names=["auth", "workflows"], secret=SECRET
        )
        try:
            assert set(peers) == {"auth", "workflows"}
            answers = [(await peers["auth"].get("/x/y", params={"q": 1})).json() for _ in range(4)]
            assert sorted(a["name"] for a in answers) == ["a", "a", "b", "b"]
            assert {(a["path"], a["query"], a["internal"]) for a in answers} == {
                ("/x/y", "q=1", True)
            }
            with pytest.raises(httpx.ConnectError, match="no instance of 'workflows'"):
                await peers["workflows"].get("/")
        finally:
            await peers.aclose()


async def test_a_dead_instance_is_skipped_and_a_new_one_found(
    registry: tuple[redis.Redis, str],
) -> None:
    client, prefix = registry
    await _register(client, prefix, "auth", f"http://127.0.0.1:{free_port()}")  # nobody there
    peers = await Peers.from_registry(
        REDIS_URL, prefix=prefix, names=["auth"], secret=SECRET, interval=60
    )
    try:
        with pytest.raises(httpx.ConnectError):
            await peers["auth"].get("/")
        async with serve(_instance("late")) as late:
            await _register(client, prefix, "auth", f"http://{late}")
            await peers._registry.read()  # type: ignore[union-attr]  # the periodic read
            for _ in range(4):  # whichever comes first, the dead one is passed over
                assert (await peers["auth"].get("/")).json()["name"] == "late"
    finally:
        await peers.aclose()


async def test_an_instance_registered_after_start_is_found_on_demand(
    registry: tuple[redis.Redis, str],
) -> None:
    client, prefix = registry
    peers = await Peers.from_registry(
        REDIS_URL, prefix=prefix, names=["auth"], secret=SECRET, interval=60
    )
    try:
        async with serve(_instance("new")) as new:
            await _register(client, prefix, "auth", f"http://{new}")
            # No periodic read for a minute: the request itself reads the registry again.
            await asyncio.sleep(peers_module._RESCAN_SECONDS)
            assert (await peers["auth"].get("/")).json()["name"] == "new"
    finally:
        await peers.aclose()
