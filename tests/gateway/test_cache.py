"""The response cache through the real gateway: hits, isolation, revalidation, invalidation."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrion.gateway.app import create_gateway
from orchestrion.gateway.proxy import HttpUpstream
from orchestrion.gateway.routes import DEFAULT_ROUTES, Route, rule
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_settings, user_headers
from tests.fixtures.definitions import DOUBLE_THEN_ADD
from tests.fixtures.lifespan import in_process
from tests.fixtures.upstream import Upstream
from tests.gateway.conftest import SharedRedis, open_gateway

CACHED_ROUTES = [
    dataclasses.replace(r, cache_ttl=60.0) if r.prefix == "/api/v1/workflows" else r
    for r in DEFAULT_ROUTES
]


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides for each cache store."""
    if request.param == "redis":
        shared: SharedRedis = request.getfixturevalue("shared_redis")
        return shared.gateway()
    return {}


async def _admin(http: httpx.AsyncClient) -> dict[str, str]:
    tokens = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_miss_then_hit_per_caller_and_tenant(
    tmp_path: Path, sqlite_template: Path, store: dict[str, Any]
) -> None:
    async with open_gateway(tmp_path, sqlite_template, routes=CACHED_ROUTES, **store) as http:
        admin = await _admin(http)
        created = await http.post("/api/v1/workflows", json=DOUBLE_THEN_ADD, headers=admin)
        assert created.status_code == 201

        first = await http.get("/api/v1/workflows", headers=admin)
        assert first.headers["x-cache"] == "MISS"
        second = await http.get("/api/v1/workflows", headers=admin)
        assert second.headers["x-cache"] == "HIT"
        assert second.json() == first.json()
        assert second.json()["meta"]["total"] == 1
        assert "age" in second.headers
        assert second.headers["x-request-id"] != first.headers["x-request-id"]
        assert "ratelimit-remaining" in second.headers  # the rate limit still counts hits

        tenant = await http.post("/api/v1/auth/tenants", json={"name": "other"}, headers=admin)
        outsider = await user_headers(
            http, admin, email="out@other.test", roles=["admin"], tenant_id=tenant.json()["id"]
        )
        theirs = await http.get("/api/v1/workflows", headers=outsider)
        assert theirs.headers["x-cache"] == "MISS"
        assert theirs.json()["meta"]["total"] == 0
        colleague = await user_headers(http, admin, email="col@example.com", roles=["viewer"])
        assert (await http.get("/api/v1/workflows", headers=colleague)).headers["x-cache"] == "MISS"

        metrics = (await http.get("/metrics")).text
        assert 'orchestrion_gateway_cache_total{result="hit",route="/api/v1/workflows"}' in metrics


async def test_writes_invalidate_the_path_and_its_collection(
    tmp_path: Path, sqlite_template: Path, store: dict[str, Any]
) -> None:
    async with open_gateway(tmp_path, sqlite_template, routes=CACHED_ROUTES, **store) as http:
        admin = await _admin(http)
        workflow = (
            await http.post("/api/v1/workflows", json=DOUBLE_THEN_ADD, headers=admin)
        ).json()
        one = f"/api/v1/workflows/{workflow['id']}"
        for url in (one, "/api/v1/workflows?limit=5", one, "/api/v1/workflows?limit=5"):
            await http.get(url, headers=admin)
        assert (await http.get(one, headers=admin)).headers["x-cache"] == "HIT"

        changed = await http.patch(one, json={"description": "changed"}, headers=admin)
        assert changed.status_code == 200, changed.text
        again = await http.get(one, headers=admin)
        assert again.headers["x-cache"] == "MISS"
        assert again.json()["description"] == "changed"
        listed = await http.get("/api/v1/workflows?limit=5", headers=admin)
        assert listed.headers["x-cache"] == "MISS"

        # A refused write changes nothing and invalidates nothing.
        await http.get(one, headers=admin)
        refused = await http.patch(one, json={"steps": "nope"}, headers=admin)
        assert refused.status_code == 422
        assert (await http.get(one, headers=admin)).headers["x-cache"] == "HIT"


@contextlib.asynccontextmanager
async def _proxy(
    tmp_path: Path, upstream: Upstream, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway whose ``/cache`` route goes to the loopback server over HTTP.

    Its callers are anonymous, so the auth upstream (required by the gateway) is never
    called; it points at the same server.
    """
    settings = make_settings(tmp_path, "sqlite+aiosqlite:///unused.db", **overrides)
    secret = b"unused-secret"
    routes = [
        Route(
            prefix="/cache",
            service="things",
            public=(rule("*", r".*", None),),
            cache_ttl=30.0,
        )
    ]
    upstreams: dict[str, Any] = {
        name: HttpUpstream(name, upstream.url, secret=secret) for name in ("auth", "things")
    }
    app = create_gateway(settings, upstreams, routes=routes)
    async with in_process(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            yield http


async def test_stale_entries_are_revalidated_with_the_etag(
    tmp_path: Path, upstream: Upstream, store: dict[str, Any]
) -> None:
    key = uuid.uuid4().hex
    url = f"/cache/{key}"  # the server says no-cache: every use is revalidated
    async with _proxy(tmp_path, upstream, **store) as http:
        first = await http.get(url)
        assert first.headers["x-cache"] == "MISS"
        assert first.json()["version"] == 1
        second = await http.get(url)
        assert second.headers["x-cache"] == "HIT"
        assert second.json() == first.json()
        assert upstream.state.calls[key] == 2
        assert upstream.state.headers[key][1]["if-none-match"] == '"v1"'

        # The client's own If-None-Match is answered by the gateway.
        mine = await http.get(url, headers={"If-None-Match": '"v1"'})
        assert mine.status_code == 304
        assert mine.headers["etag"] == '"v1"'

        await http.post(f"{upstream.url}/cache/{key}")  # changed behind the gateway's back
        changed = await http.get(url)
        assert changed.headers["x-cache"] == "MISS"
        assert changed.json()["version"] == 2


async def test_freshness_vary_no_store_and_size(
    tmp_path: Path, upstream: Upstream, store: dict[str, Any]
) -> None:
    key = uuid.uuid4().hex
    overrides = {**store, "gateway": {**store.get("gateway", {}), "cache_max_body_bytes": 2000}}
    async with _proxy(tmp_path, upstream, **overrides) as http:
        fresh = f"/cache/{key}?cc=max-age%3D60&vary=Accept-Language"
        en = await http.get(fresh, headers={"Accept-Language": "en"})
        fr = await http.get(fresh, headers={"Accept-Language": "fr"})
        assert [en.headers["x-cache"], fr.headers["x-cache"]] == ["MISS", "MISS"]
        en_again = await http.get(fresh, headers={"Accept-Language": "en"})
        assert en_again.headers["x-cache"] == "HIT"
        assert en_again.json()["lang"] == "en"
        assert upstream.state.calls[key] == 2  # fresh: the hit did not ask the server
        head = await http.head(fresh, headers={"Accept-Language": "fr"})
        assert head.headers["x-cache"] == "HIT"
        assert head.content == b""

        for url in (f"/cache/{key}?cc=no-store", f"/cache/{key}?size=5000"):
            answers = [await http.get(url) for _ in range(2)]
            assert [a.headers["x-cache"] for a in answers] == ["MISS", "MISS"], url
            assert all(a.status_code == 200 for a in answers)
        big = await http.get(f"/cache/{key}?size=5000")
        assert len(big.json()["pad"]) == 5000


async def test_invalidation_is_shared_between_gateways(
    tmp_path: Path, upstream: Upstream, shared_redis: SharedRedis
) -> None:
    key = uuid.uuid4().hex
    url = f"/cache/{key}?cc=max-age%3D60"
    overrides = shared_redis.gateway()
    async with (
        _proxy(tmp_path / "a", upstream, **overrides) as a,
        _proxy(tmp_path / "b", upstream, **overrides) as b,
    ):
        assert (await a.get(url)).headers["x-cache"] == "MISS"
        assert (await b.get(url)).headers["x-cache"] == "HIT"  # one cache for both
        assert (await b.post(f"/cache/{key}")).status_code == 200
        after = await a.get(url)
        assert after.headers["x-cache"] == "MISS"
        assert after.json()["version"] == 2


async def test_redis_down_serves_uncached(tmp_path: Path, upstream: Upstream) -> None:
    key = uuid.uuid4().hex
    overrides = {"redis": {"url": "redis://127.0.0.1:1/0"}}
    async with _proxy(tmp_path, upstream, **overrides) as http:
        answers = [await http.get(f"/cache/{key}?cc=max-age%3D60") for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        assert [a.headers["x-cache"] for a in answers] == ["MISS", "MISS"]
        metrics = (await http.get("/metrics")).text
    assert 'orchestrion_gateway_policy_storage_errors_total{policy="cache"}' in metrics
