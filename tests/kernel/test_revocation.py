"""Revocation notices between processes, on real Redis servers: followers learn of a
notice within moments, a follower started later learns of it at start, and one that lost
its connection (or Redis itself) catches up when it is back.

The connection-loss tests run a Redis server of their own (``redis-server`` on a free
port), so that they can cut it without disturbing anyone else's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as redis
from redis import Redis as SyncRedis
from redis.exceptions import RedisError

from orchestrion.kernel.auth.revocation import Revocation, Revocations
from tests.fixtures.databases import server_missing
from tests.fixtures.processes import free_port

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

REDIS_URL = os.environ.get("ORCHESTRION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WAIT = 5.0


async def eventually(condition: object, seconds: float = WAIT) -> None:
    """Poll ``condition()`` until it is true (fails the test after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("the condition never held")
        await asyncio.sleep(0.02)


@pytest.fixture
async def key() -> AsyncIterator[str]:
    """A revocation key of this test's own on the local Redis (removed after)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        server_missing(f"Redis at {REDIS_URL}", exc)
    name = f"orn-test:{uuid.uuid4().hex[:12]}:revoked"
    try:
        yield name
    finally:
        await client.delete(name)
        await client.aclose()


@asynccontextmanager
async def revocations(url: str, key: str, **options: object) -> AsyncIterator[Revocations]:
    async with Revocations(redis_url=url, key=key, **options) as started:  # type: ignore[arg-type]
        yield started


async def test_followers_learn_at_once_and_late_starters_at_start(key: str) -> None:
    async with (
        revocations(REDIS_URL, key, follow=False) as auth,
        revocations(REDIS_URL, key) as gateway,
    ):
        seen: list[Revocation] = []
        gateway.listen(seen.append)
        await asyncio.wait_for(gateway.following.wait(), WAIT)
        await auth.publish([("session", "s1"), ("api_key", "k1"), ("user", "u1")])
        assert auth.session_ended("s1")  # applied where it was published, before any wire
        await eventually(lambda: gateway.session_ended("s1"))
        await eventually(lambda: len(seen) == 3)
        assert [(n.kind, n.id) for n in seen] == [
            ("session", "s1"),
            ("api_key", "k1"),
            ("user", "u1"),
        ]
        assert all(n.until > time.time() + 900 for n in seen)
        assert not gateway.session_ended("s2")
        assert not gateway.session_ended(None)

        async with revocations(REDIS_URL, key) as late:
            assert late.session_ended("s1")  # read from the set before start() returned


async def test_lapsed_notices_are_forgotten(key: str) -> None:
    async with revocations(REDIS_URL, key, lifetime=0.5, follow=False) as auth:
        await auth.publish([("session", "short")])
        assert auth.session_ended("short")
        await asyncio.sleep(0.6)
        async with revocations(REDIS_URL, key) as late:
            assert not late.session_ended("short")
        auth.apply([Revocation("session", "old", time.time() - 1)])
        assert not auth.session_ended("old")


async def test_without_redis_notices_stay_in_the_process() -> None:
    async with Revocations() as local:
        seen: list[Revocation] = []
        local.listen(seen.append)
        await local.publish([("session", "s"), ("session", "s")])
        assert local.session_ended("s")
        assert len(seen) == 1  # one notice per credential, however often it is named


class OwnRedis:
    """A ``redis-server`` of this test's own, stopped and started again at will."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        probe = SyncRedis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                with contextlib.suppress(RedisError, OSError):
                    if probe.ping():
                        return
                time.sleep(0.05)
        finally:
            probe.close()
        pytest.fail("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        server_missing("redis-server (to run a Redis of the test's own)", FileNotFoundError())
    server = OwnRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_follower_cut_off_catches_up_from_the_set(own_redis: OwnRedis) -> None:
    async with (
        revocations(own_redis.url, "revoked", follow=False) as auth,
        revocations(own_redis.url, "revoked") as gateway,
    ):
        await asyncio.wait_for(gateway.following.wait(), WAIT)
        admin = redis.Redis.from_url(own_redis.url)
        try:
            # Drop the follower's subscription, then publish before it is back: the
            # message is lost to it, the sorted set is not.
            await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            await auth.publish([("session", "while-away")])
        finally:
            await admin.aclose()
        await eventually(lambda: gateway.session_ended("while-away"))


async def test_notices_published_while_redis_is_down_arrive_when_it_is_back(
    own_redis: OwnRedis,
) -> None:
    async with (
        revocations(own_redis.url, "revoked", follow=False, timeout=0.5) as auth,
        revocations(own_redis.url, "revoked") as gateway,
    ):
        await asyncio.wait_for(gateway.following.wait(), WAIT)
        own_redis.stop()
        await auth.publish([("session", "during-outage")])  # does not raise
        assert auth.session_ended("during-outage")
        await asyncio.sleep(0.3)
        assert not gateway.session_ended("during-outage")
        own_redis.start()
        await eventually(lambda: gateway.session_ended("during-outage"), 10)
