"""Rate limits through the real gateway: headers, 429, strategies, Redis shared by replicas."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from orchestrion.gateway.routes import DEFAULT_ROUTES
from orchestrion.platform import create_embedded_app
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_settings
from tests.fixtures.databases import copy_template
from tests.fixtures.servers import serve
from tests.gateway.conftest import SharedRedis, from_ip, open_gateway

JWKS = "/.well-known/jwks.json"  # public: anonymous callers are counted per client IP
ME = "/api/v1/auth/me"


def _limit_headers(response: httpx.Response) -> tuple[int, int, int]:
    h = response.headers
    return int(h["ratelimit-limit"]), int(h["ratelimit-remaining"]), int(h["ratelimit-reset"])


def _settings(backend: str, shared: SharedRedis | None, **gateway: Any) -> dict[str, Any]:
    if backend == "redis":
        assert shared is not None
        return shared.gateway(**gateway)
    return {"gateway": gateway}


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> tuple[str, SharedRedis | None]:
    if request.param == "redis":
        return "redis", request.getfixturevalue("shared_redis")
    return "memory", None


async def test_limit_headers_then_429_with_retry_after(
    tmp_path: Path, sqlite_template: Path, backend: tuple[str, SharedRedis | None]
) -> None:
    kind, shared = backend
    overrides = _settings(kind, shared, rate_limit="3/minute")
    async with open_gateway(tmp_path, sqlite_template, **overrides) as http:
        tokens = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
        admin = {"Authorization": f"Bearer {tokens['access_token']}"}
        seen = []
        for _ in range(3):
            response = await http.get(ME, headers=admin)
            assert response.status_code == 200, response.text
            seen.append(_limit_headers(response))
        assert [(limit, remaining) for limit, remaining, _ in seen] == [(3, 2), (3, 1), (3, 0)]
        assert all(0 < reset <= 60 for *_, reset in seen)

        refused = await http.get(ME, headers=admin)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["status"] == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert _limit_headers(refused)[:2] == (3, 0)

        # Another caller (anonymous, by IP) has its own count; own endpoints are not limited.
        assert (await http.get(JWKS)).headers["ratelimit-remaining"] == "2"
        assert "ratelimit-limit" not in (await http.get("/health/live")).headers
        metrics = (await http.get("/metrics")).text
        assert 'orchestrion_gateway_rate_limited_total{route="/api/v1/auth"}' in metrics


async def test_login_is_limited_per_ip(tmp_path: Path, sqlite_template: Path) -> None:
    body = {"email": "nobody@example.com", "password": "wrong-password"}
    async with open_gateway(
        tmp_path, sqlite_template, gateway={"login_rate_limit": "2/minute"}
    ) as http:
        statuses = [
            (await http.post("/api/v1/auth/login", json=body)).status_code for _ in range(3)
        ]
        assert statuses == [401, 401, 429]
        async with from_ip(http, "10.0.0.99") as elsewhere:
            assert (await elsewhere.post("/api/v1/auth/login", json=body)).status_code == 401


async def test_route_override_and_exemption(tmp_path: Path, sqlite_template: Path) -> None:
    routes = [
        dataclasses.replace(r, rate_limit="1/minute") if r.prefix == "/.well-known"
        else dataclasses.replace(r, rate_limit="") if r.prefix == "/api/v1/auth"
        else r
        for r in DEFAULT_ROUTES
    ]  # fmt: skip
    async with open_gateway(
        tmp_path, sqlite_template, routes=routes, gateway={"rate_limit": "100/minute"}
    ) as http:
        first = await http.get(JWKS)
        assert _limit_headers(first)[:2] == (1, 0)
        assert (await http.get(JWKS)).status_code == 429
        exempt = await http.get(ME)
        assert exempt.status_code == 401
        assert "ratelimit-limit" not in exempt.headers
        # The default (per caller, across routes) is counted apart from the route's own.
        tokens = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
        admin = {"Authorization": f"Bearer {tokens['access_token']}"}
        listed = await http.get("/api/v1/workflows", headers=admin)
        assert _limit_headers(listed)[:2] == (100, 99)


async def test_token_bucket_bursts_then_refills(
    tmp_path: Path, sqlite_template: Path, backend: tuple[str, SharedRedis | None]
) -> None:
    kind, shared = backend
    # Two tokens, one back every two seconds.
    overrides = _settings(
        kind, shared, rate_limit="2/4 seconds", rate_limit_strategy="token_bucket"
    )
    async with open_gateway(tmp_path, sqlite_template, **overrides) as http:
        began = time.monotonic()
        burst = [await http.get(JWKS) for _ in range(3)]
        took = time.monotonic() - began
        assert [r.status_code for r in burst] == [200, 200, 429]
        assert [_limit_headers(r)[1] for r in burst[:2]] == [1, 0]
        # The next token is due 2 s after the first was taken: "2", or "1" when a loaded
        # machine took a second or more over the three requests.
        expected = {"2"} if took < 1.0 else {"1", "2"}
        assert burst[2].headers["retry-after"] in expected, took
        await asyncio.sleep(2.1)
        refilled = await http.get(JWKS)
        assert refilled.status_code == 200
        assert (await http.get(JWKS)).status_code == 429  # one token came back, not two


@pytest.mark.parametrize("strategy", ["sliding", "token_bucket"])
async def test_two_gateways_on_redis_enforce_one_limit(
    tmp_path: Path, sqlite_template: Path, shared_redis: SharedRedis, strategy: str
) -> None:
    limit = 10
    # A loaded test machine may take long to open 30 connections; a timeout would let
    # requests through (fail open), which is not what this test is about.
    overrides = shared_redis.gateway(
        rate_limit=f"{limit}/minute", rate_limit_strategy=strategy, policy_timeout_seconds=10
    )
    async with (
        open_gateway(tmp_path / "a", sqlite_template, **overrides) as a,
        open_gateway(tmp_path / "b", sqlite_template, **overrides) as b,
    ):
        responses = await asyncio.gather(*(http.get(JWKS) for http in [a, b] * 15))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == limit, statuses
    assert statuses.count(429) == 30 - limit
    remaining = sorted(int(r.headers["ratelimit-remaining"]) for r in responses if r.is_success)
    assert remaining == list(range(limit))  # each allowed request saw a distinct count
    if strategy == "sliding":
        # The keys are the limits library's moving window: it reads the same state.
        storage = RedisStorage(
            f"async+{shared_redis.url}", implementation="redispy",
            key_prefix=f"{shared_redis.prefix}rl:sliding",
            connection_pool=shared_redis.client.connection_pool,  # closed with the fixture
        )  # fmt: skip
        stats = await MovingWindowRateLimiter(storage).get_window_stats(
            parse(f"{limit}/minute"), "all/ip:10.0.0.1"
        )
        assert stats.remaining == 0


async def test_redis_down_fails_open(tmp_path: Path, sqlite_template: Path) -> None:
    overrides = {
        "redis": {"url": "redis://127.0.0.1:1/0"},  # nothing listens there
        "realtime": {"redis_url": ""},
        "gateway": {"rate_limit": "1/minute"},
    }
    async with open_gateway(tmp_path, sqlite_template, **overrides) as http:
        for _ in range(3):
            response = await http.get(JWKS)
            assert response.status_code == 200
            assert "ratelimit-limit" not in response.headers
        metrics = (await http.get("/metrics")).text
    assert 'orchestrion_gateway_policy_storage_errors_total{policy="ratelimit"}' in metrics


async def test_websockets_count_once_when_they_open(tmp_path: Path, sqlite_template: Path) -> None:
    database = copy_template(sqlite_template, tmp_path / "data")
    settings = make_settings(
        tmp_path, f"sqlite+aiosqlite:///{database}", gateway={"rate_limit": "2/minute"}
    )
    async with serve(create_embedded_app(settings)) as address:
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            token = (await login(http, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"]
        # The token travels in the subprotocol, which the gateway does not read: sockets
        # are counted per client address.
        url = f"ws://{address}/ws"
        async with connect(url, subprotocols=["bearer", token]) as first:  # type: ignore[list-item]
            assert json.loads(await first.recv())["type"] == "welcome"
            async with connect(url, subprotocols=["bearer", token]) as second:  # type: ignore[list-item]
                assert json.loads(await second.recv())["type"] == "welcome"
                async with connect(url, subprotocols=["bearer", token]) as third:  # type: ignore[list-item]
                    with pytest.raises(ConnectionClosed) as closed:
                        await third.recv()
                    assert closed.value.rcvd is not None
                    assert closed.value.rcvd.code == 4429
                # Open sockets are not cut by the limit: it counts openings only.
                await second.send(json.dumps({"type": "ping"}))
                assert json.loads(await second.recv())["type"] == "pong"


@pytest.fixture
async def redis_keys() -> AsyncIterator[tuple[Redis, str]]:
    """A Redis client and a key prefix of this test's own, its keys deleted after."""
    from orchestrion.kernel.ids import new_id

    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"test-rl-{new_id()}:"
    try:
        yield redis, prefix
    finally:
        keys = [key async for key in redis.scan_iter(f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_redis_batch_loads_a_script_redis_lost(redis_keys: tuple[Redis, str]) -> None:
    """Checks of several counters batched in one pipeline send EVALSHA; a Redis without
    the script (restart, SCRIPT FLUSH) gets it and runs each check exactly once."""
    from orchestrion.gateway.policies.ratelimit import SLIDING_SCRIPT, RedisBackend

    redis, prefix = redis_keys
    backend = RedisBackend(redis, strategy="sliding", prefix=prefix)
    # A script text of its own: its SHA is unknown to Redis, as after a flush.
    backend.script = redis.register_script(f"{SLIDING_SCRIPT}\n-- {prefix}\n")
    items = [parse("3/minute")]
    decisions = await asyncio.gather(
        *(backend.acquire(caller, items) for caller in ["one"] * 5 + ["two"] * 2)
    )
    first, second = decisions[:5], decisions[5:]
    assert [d.allowed for d in first].count(True) == 3
    assert sorted(d.remaining for d in first if d.allowed) == [0, 1, 2]
    assert [(d.allowed, d.remaining) for d in second] == [(True, 2), (True, 1)]
    assert await redis.llen(f"{prefix}sliding:{items[0].key_for('one')}") == 3
    assert await redis.llen(f"{prefix}sliding:{items[0].key_for('two')}") == 2


@pytest.mark.parametrize("strategy", ["sliding", "token_bucket"])
async def test_a_burst_in_one_turn_gets_the_headers_of_checks_one_by_one(
    strategy: str, redis_keys: tuple[Redis, str]
) -> None:
    """Checks of one counter arriving together are one script call asking for that many
    hits; each check gets what it would have got alone (granted in order, exact remaining,
    the same reset), and other counters in the same batch are counted apart."""
    from orchestrion.gateway.policies.ratelimit import RedisBackend

    redis, prefix = redis_keys
    items = [parse("4/minute"), parse("3/hour")]
    together = RedisBackend(redis, strategy=strategy, prefix=f"{prefix}together:")
    alone = RedisBackend(redis, strategy=strategy, prefix=f"{prefix}alone:")
    sent: list[list[tuple[list[str], list[int]]]] = []
    evalsha = together._evalsha

    async def recording(calls: list[tuple[list[str], list[int]]]) -> list[Any]:
        sent.append(calls)
        return await evalsha(calls)

    together._evalsha = recording  # type: ignore[method-assign]
    burst = await asyncio.gather(
        *(together.acquire("busy", items) for _ in range(5)),
        together.acquire("quiet", items),
    )
    one_by_one = [await alone.acquire("busy", items) for _ in range(5)]
    quiet = burst.pop()
    # One round trip: a call asking for 5 hits of the busy counter, one for the quiet.
    assert [[args[0] for _, args in calls] for calls in sent] == [[5, 1]]
    assert [d.allowed for d in burst] == [True, True, True, False, False]
    assert [d.remaining for d in burst] == [2, 1, 0, 0, 0]
    assert [(d.allowed, d.limit, d.remaining) for d in burst] == [
        (d.allowed, d.limit, d.remaining) for d in one_by_one
    ]
    for got, expected in zip(burst, one_by_one, strict=True):
        assert got.reset == pytest.approx(expected.reset, abs=2.0)
        assert (got.retry_after > 0) == (expected.retry_after > 0)
    assert burst[-1].retry_after > 0
    assert (quiet.allowed, quiet.limit, quiet.remaining) == (True, 3, 2)
    if strategy == "sliding":
        assert await redis.llen(f"{prefix}together:sliding:{items[1].key_for('busy')}") == 3
        assert await redis.llen(f"{prefix}together:sliding:{items[0].key_for('busy')}") == 3


def _record_asks(gateway: Any) -> list[int]:
    """The hits each of ``gateway``'s script calls asks for, from now on, in order."""
    asked: list[int] = []
    script = gateway.script

    async def recording(keys: list[str], args: list[int]) -> Any:
        asked.append(args[0])
        return await script(keys=keys, args=args)

    gateway.script = recording
    return asked


async def _busy_second(
    backend: Any, counters: list[tuple[str, list[RateLimitItem]]], checks: int
) -> None:
    """``checks`` checks of every counter within one second, then wait for the next."""
    for _ in range(5):  # a loaded machine may spill over a second: try again
        await asyncio.sleep(1.0 - time.monotonic() % 1.0 + 0.01)
        second = int(time.monotonic())
        for _ in range(checks):
            for key, items in counters:
                await backend.acquire(key, items)
        if int(time.monotonic()) == second:
            break
    await asyncio.sleep(1.0 - time.monotonic() % 1.0 + 0.01)


async def test_a_busy_counter_takes_hits_ahead_and_reports_them_exactly(
    redis_keys: tuple[Redis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A counter busy in the last second takes hits ahead (its traffic of LEASE_SECONDS,
    at most 1 % of its limit) in one script call and spends them without a round trip,
    each check seeing the remaining count it would have seen alone; a replica sees them
    counted; unspent ones lapse; a limit under 200 is never taken ahead."""
    from orchestrion.gateway.policies import ratelimit

    monkeypatch.setattr(ratelimit, "LEASE_SECONDS", 0.5)  # room for a loaded machine
    redis, prefix = redis_keys
    busy, small = [parse("1000/minute")], [parse("150/minute")]
    hits = f"{prefix}sliding:{busy[0].key_for('busy')}"
    small_hits = f"{prefix}sliding:{small[0].key_for('small')}"
    gateway = ratelimit.RedisBackend(redis, strategy="sliding", prefix=prefix)
    replica = ratelimit.RedisBackend(redis, strategy="sliding", prefix=prefix)
    await _busy_second(gateway, [("busy", busy), ("small", small)], 40)
    counted = await redis.llen(hits)
    # min(1000 // 100, 40 checks x 0.5 s) = 10 hits taken ahead with this one.
    first = await gateway.acquire("busy", busy)
    assert (first.allowed, first.remaining) == (True, 1000 - counted - 1)
    assert await redis.llen(hits) == counted + 11
    spent = [await gateway.acquire("busy", busy) for _ in range(10)]
    assert [d.remaining for d in spent] == list(range(998 - counted, 988 - counted, -1))
    assert all(d.allowed for d in spent)
    assert await redis.llen(hits) == counted + 11  # no round trip for them
    seen = await replica.acquire("busy", busy)
    assert seen.remaining == 1000 - counted - 12  # hits taken ahead count for every replica
    await gateway.acquire("busy", busy)  # a new call: 10 more ahead
    assert await redis.llen(hits) == counted + 23
    await asyncio.sleep(ratelimit.LEASE_SECONDS * 2)
    await gateway.acquire("busy", busy)  # the unspent ones lapsed: a new call
    assert await redis.llen(hits) > counted + 23
    # 150/minute: 1 % is 1 hit, under 2, so never taken ahead, however busy.
    small_counted = await redis.llen(small_hits)
    for count in range(1, 6):
        await gateway.acquire("small", small)
        assert await redis.llen(small_hits) == small_counted + count


async def test_checks_arriving_while_hits_are_taken_ahead_wait_for_them(
    redis_keys: tuple[Redis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy counter's checks arriving while its call taking hits ahead is out spend
    those hits when it answers, instead of each sending a call (that would take more
    ahead again, leaving the first ones to lapse unused); each sees the exact remaining."""
    from orchestrion.gateway.policies import ratelimit

    monkeypatch.setattr(ratelimit, "LEASE_SECONDS", 0.5)  # room for a loaded machine
    redis, prefix = redis_keys
    busy = [parse("1000/minute")]
    hits = f"{prefix}sliding:{busy[0].key_for('busy')}"
    gateway = ratelimit.RedisBackend(redis, strategy="sliding", prefix=prefix)
    await _busy_second(gateway, [("busy", busy)], 40)
    counted = await redis.llen(hits)
    asked: list[int] = []
    out = asyncio.Event()
    script = gateway.script

    async def recording(keys: list[str], args: list[int]) -> Any:
        asked.append(args[0])
        out.set()
        return await script(keys=keys, args=args)

    gateway.script = recording  # type: ignore[assignment]
    first = asyncio.create_task(gateway.acquire("busy", busy))
    await out.wait()  # the call taking hits ahead is out
    later = await asyncio.gather(*(gateway.acquire("busy", busy) for _ in range(5)))
    # min(1000 // 100, 40 checks x 0.5 s) = 10 hits taken ahead with the first check.
    assert (await first).remaining == 1000 - counted - 1
    assert [d.remaining for d in later] == list(range(998 - counted, 993 - counted, -1))
    assert all(d.allowed for d in later)
    assert asked == [11]  # one call, for the first check and the hits ahead
    assert await redis.llen(hits) == counted + 11


async def test_a_burst_waiting_for_hits_taken_ahead_is_one_call(
    redis_keys: tuple[Redis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checks of a busy counter arriving together, more than it takes ahead, wait for
    the one call taking hits ahead, which asks for theirs too: one round trip, each
    check answered as if alone."""
    from orchestrion.gateway.policies import ratelimit

    monkeypatch.setattr(ratelimit, "LEASE_SECONDS", 0.5)  # room for a loaded machine
    redis, prefix = redis_keys
    busy = [parse("1000/minute")]
    gateway = ratelimit.RedisBackend(redis, strategy="sliding", prefix=prefix)
    await _busy_second(gateway, [("busy", busy)], 40)
    counted = await redis.llen(f"{prefix}sliding:{busy[0].key_for('busy')}")
    asked = _record_asks(gateway)
    burst = await asyncio.gather(*(gateway.acquire("busy", busy) for _ in range(20)))
    # min(1000 // 100, 40 checks x 0.5 s) = 10 hits ahead, and one for each check.
    assert asked == [30]
    assert all(d.allowed for d in burst)
    assert [d.remaining for d in burst] == list(range(999 - counted, 979 - counted, -1))


async def test_a_burst_past_the_limit_of_a_busy_counter_is_refused_at_once(
    redis_keys: tuple[Redis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checks that waited for hits taken ahead and found none (the limit is reached)
    ask for their own together, in one more call: not one call each, in turns."""
    from orchestrion.gateway.policies import ratelimit

    monkeypatch.setattr(ratelimit, "LEASE_SECONDS", 0.5)  # room for a loaded machine
    redis, prefix = redis_keys
    busy = [parse("300/minute")]
    gateway = ratelimit.RedisBackend(redis, strategy="sliding", prefix=prefix)
    await _busy_second(gateway, [("busy", busy)], 40)
    while (await gateway.acquire("busy", busy)).allowed:
        pass
    asked = _record_asks(gateway)
    burst = await asyncio.gather(*(gateway.acquire("busy", busy) for _ in range(10)))
    assert not any(d.allowed for d in burst)
    assert all(d.retry_after > 0 and d.remaining == 0 for d in burst)
    # min(300 // 100, 40 checks x 0.5 s) = 3 ahead, with the 9 waiting; then the 9.
    assert asked == [13, 9]


async def test_a_counter_busy_since_this_second_began_takes_hits_ahead_at_once(
    redis_keys: tuple[Redis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A counter quiet in the last second takes hits ahead as soon as its checks in this
    one call for them (not from the next second on), each check still exact."""
    from orchestrion.gateway.policies import ratelimit

    monkeypatch.setattr(ratelimit, "LEASE_SECONDS", 0.5)  # room for a loaded machine
    redis, prefix = redis_keys
    busy = [parse("1000/minute")]
    gateway = ratelimit.RedisBackend(redis, strategy="sliding", prefix=prefix)
    asked = _record_asks(gateway)
    for attempt in range(5):  # a loaded machine may spill over a second: try again
        await asyncio.sleep(1.0 - time.monotonic() % 1.0 + 0.01)
        second, key = int(time.monotonic()), f"busy{attempt}"
        asked.clear()
        remaining = [(await gateway.acquire(key, busy)).remaining for _ in range(30)]
        if int(time.monotonic()) == second:
            break
    assert remaining == list(range(999, 969, -1))
    # Its k-th check takes min(10, k x 0.5) ahead: calls at checks 1, 2, 4, 7, 11, 17, 26.
    assert asked == [1, 2, 3, 4, 6, 9, 11]


async def test_a_caller_key_with_another_limit_is_counted_in_its_own_keys(
    redis_keys: tuple[Redis, str],
) -> None:
    """A caller key's counter is worked out once per limit: the same limits parsed again
    keep it, other limits for the same key (a reloaded route) count in their own keys."""
    from orchestrion.gateway.policies.ratelimit import RedisBackend

    redis, prefix = redis_keys
    backend = RedisBackend(redis, strategy="sliding", prefix=prefix)
    three, five = [parse("3/minute")], [parse("5/minute")]
    assert (await backend.acquire("k", three)).remaining == 2
    assert (await backend.acquire("k", [parse("3/minute")])).remaining == 1
    counted = await backend.acquire("k", five)
    assert (counted.limit, counted.remaining) == (5, 4)
    assert (await backend.acquire("k", three)).remaining == 0
    assert await redis.llen(f"{prefix}sliding:{three[0].key_for('k')}") == 3
    assert await redis.llen(f"{prefix}sliding:{five[0].key_for('k')}") == 1


async def test_the_least_recently_checked_counter_is_forgotten_first(
    redis_keys: tuple[Redis, str],
) -> None:
    from orchestrion.gateway.policies.ratelimit import RedisBackend

    redis, prefix = redis_keys
    backend = RedisBackend(redis, strategy="sliding", prefix=prefix, max_counters=2)
    items = [parse("10/minute")]
    for key in ["a", "b", "a", "c"]:
        await backend.acquire(key, items)
    assert list(backend.counters) == ["a", "c"]
