"""Canary routing: a route's traffic split between two versions of its upstream.

Two loopback HTTP servers answer their version; the embedded platform's gateway routes
``/api/v1/shop`` to ``shop`` and, by header, flag or sticky weight, to ``shop-v2``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrion.gateway.app import Gateway
from orchestrion.gateway.canary import in_weight
from orchestrion.gateway.config import ConfigError, GatewayConfig
from orchestrion.gateway.proxy import HttpUpstream
from orchestrion.gateway.routes import Canary
from orchestrion.gateway.routes import Route as GatewayRoute
from orchestrion.kernel.auth.principal import Principal
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings
from tests.fixtures.servers import free_port, serve_in_thread
from tests.gateway.conftest import SharedRedis, from_ip, open_gateway

PREFIX = "/api/v1/shop"
CONFIG = """
upstreams:
  shop: {{instances: ["{stable}"]}}
  shop-v2: {{instances: ["{canary}"]}}
routes:
  - prefix: /api/v1/shop
    service: shop
    public: true
    canary:
      upstream: shop-v2
      header: {{name: X-Canary, value: "1"}}
      weight: {weight}
  - prefix: /api/v1/shop-beta
    service: shop
    canary: {{upstream: shop-v2, flag: shop-beta}}
"""


def _version(name: str) -> Starlette:
    async def answer(request: Request) -> JSONResponse:
        return JSONResponse({"version": name, "path": request.url.path})

    return Starlette(
        routes=[
            Route("/health/live", lambda _: JSONResponse({"status": "ok"})),
            Route("/{rest:path}", answer),
        ]
    )


@pytest.fixture(scope="module")
def versions() -> Iterator[dict[str, str]]:
    """The stable and canary versions' base URLs."""
    with serve_in_thread(_version("v1")) as stable, serve_in_thread(_version("v2")) as canary:
        yield {"stable": stable, "canary": canary}


def _write(config: Path, versions: dict[str, str], weight: float) -> None:
    config.write_text(CONFIG.format(weight=weight, **versions))


async def _answered(http: httpx.AsyncClient, path: str = PREFIX, **headers: str) -> str:
    response = await http.get(path, headers=headers)
    assert response.status_code == 200, response.text
    version: str = response.json()["version"]
    upstream = response.headers["x-orchestrion-upstream"]
    assert upstream == {"v1": "shop", "v2": "shop-v2"}[version]
    return version


async def _login(http: httpx.AsyncClient) -> dict[str, str]:
    login = await http.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def _spread(http: httpx.AsyncClient, addresses: int) -> Counter[str]:
    """The version each of ``addresses`` anonymous clients gets, asked twice (sticky)."""
    seen: Counter[str] = Counter()
    for n in range(addresses):
        async with from_ip(http, f"10.{n // 250}.{n % 250}.9") as client:
            first = await _answered(client)
            assert await _answered(client) == first
            seen[first] += 1
    return seen


async def test_weight_header_rollback_and_reload(
    tmp_path: Path, sqlite_template: Path, versions: dict[str, str]
) -> None:
    config = tmp_path / "gateway.yaml"
    _write(config, versions, weight=30)
    async with open_gateway(tmp_path, sqlite_template, gateway={"config": config}) as http:
        # The weight: close to 30 % of 400 client addresses, each staying on its version.
        seen = await _spread(http, 400)
        assert seen["v1"] + seen["v2"] == 400
        assert 0.23 <= seen["v2"] / 400 <= 0.37, seen

        # An authenticated caller is hashed by subject: always the same version.
        admin = await _login(http)
        mine = {await _answered(http, **admin) for _ in range(10)}
        assert len(mine) == 1

        # The header forces the canary, and caches are told the answer depends on it.
        forced = await http.get(PREFIX, headers={"X-Canary": "1"})
        assert forced.json()["version"] == "v2"
        assert forced.headers["x-orchestrion-upstream"] == "shop-v2"
        assert "x-canary" in forced.headers["vary"].lower()
        assert await _answered(http, **{"X-Canary": "0"}) in ("v1", "v2")

        # The metrics label each version's upstream.
        metrics = (await http.get("/metrics")).text
        for name in ("shop", "shop-v2"):
            assert f'orchestrion_gateway_upstream_duration_seconds_count{{upstream="{name}"}}' in (
                metrics
            )

        # Everyone to the canary, then the rollback: at once, everyone back on v1.
        canary_url = f"/admin/routes{PREFIX}/canary"
        to_all = await http.patch(canary_url, json={"weight": 100}, headers=admin)
        assert to_all.status_code == 200, to_all.text
        assert to_all.json()["weight"] == 100
        assert await _spread(http, 20) == {"v2": 20}
        rollback = await http.patch(canary_url, json={"weight": 0}, headers=admin)
        assert rollback.json()["overridden"] == ["weight"]
        assert await _spread(http, 20) == {"v1": 20}
        assert await _answered(http, **{"X-Canary": "1"}) == "v2"

        # Disabled: the header no longer picks the canary either.
        off = await http.patch(canary_url, json={"enabled": False}, headers=admin)
        assert off.json()["enabled"] is False
        assert await _answered(http, **{"X-Canary": "1"}) == "v1"
        listed = (await http.get("/admin/routes", headers=admin)).json()["data"]
        shop = next(r for r in listed if r["prefix"] == PREFIX)
        assert shop["canary"]["upstream"] == "shop-v2"
        assert shop["canary"]["enabled"] is False

        # Back to the file's canary; then a reloaded file applies too.
        reset = await http.delete(canary_url, headers=admin)
        assert reset.json() | {"overridden": []} == reset.json()
        assert reset.json()["weight"] == 30
        _write(config, versions, weight=100)
        assert (await http.post("/admin/reload", headers=admin)).status_code == 200
        assert await _spread(http, 20) == {"v2": 20}

        # Bad requests are problems, not failures.
        bad = await http.patch(canary_url, json={"weight": 101}, headers=admin)
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["loc"] == ["weight"]
        extra = await http.patch(canary_url, json={"share": 5}, headers=admin)
        assert extra.status_code == 400
        none = await http.patch("/admin/routes/api/v1/workflows/canary", json={}, headers=admin)
        assert none.status_code == 404
        assert "no canary" in none.json()["detail"]
        missing = await http.patch("/admin/routes/nowhere/canary", json={}, headers=admin)
        assert missing.status_code == 404
        anonymous = await http.patch(canary_url, json={"weight": 0})
        assert anonymous.status_code == 401


async def _until(http: httpx.AsyncClient, version: str, headers: dict[str, str]) -> None:
    """Wait (60 s at most) for the flag's cached answer to give ``version``."""
    deadline = time.monotonic() + 60
    while await _answered(http, "/api/v1/shop-beta", **headers) != version:
        assert time.monotonic() < deadline, f"still not on {version}"
        await asyncio.sleep(0.25)


async def test_a_flag_picks_the_canary_per_caller_and_follows_its_kill_switch(
    tmp_path: Path, sqlite_template: Path, versions: dict[str, str]
) -> None:
    config = tmp_path / "gateway.yaml"
    _write(config, versions, weight=0)
    async with open_gateway(tmp_path, sqlite_template, gateway={"config": config}) as http:
        admin = await _login(http)
        # No such flag yet: off, the stable version answers.
        assert await _answered(http, "/api/v1/shop-beta", **admin) == "v1"
        # The route still needs credentials: the flag is asked as the caller.
        assert (await http.get("/api/v1/shop-beta")).status_code == 401

        created = await http.post(
            "/api/v1/flags",
            json={"key": "shop-beta", "enabled": True, "rollout": 100},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        await _until(http, "v2", admin)

        # A rule off for the caller's role: the caller's own answer decides.
        ruled = await http.patch(
            "/api/v1/flags/shop-beta",
            json={"rules": [{"roles": ["admin"], "enabled": False}]},
            headers=admin,
        )
        assert ruled.status_code == 200, ruled.text
        await _until(http, "v1", admin)
        await http.patch("/api/v1/flags/shop-beta", json={"rules": []}, headers=admin)
        await _until(http, "v2", admin)

        # The kill switch sends the caller back.
        killed = await http.patch("/api/v1/flags/shop-beta", json={"enabled": False}, headers=admin)
        assert killed.status_code == 200, killed.text
        await _until(http, "v1", admin)


def test_the_weight_is_sticky_close_and_only_grows() -> None:
    subjects = [f"user-{n}" for n in range(400)]
    at = {w: {s for s in subjects if in_weight(Canary("v2", weight=w), s)} for w in (10, 50)}
    assert 0.05 <= len(at[10]) / 400 <= 0.15
    assert 0.42 <= len(at[50]) / 400 <= 0.58
    assert at[10] <= at[50]  # raising the weight only adds callers
    assert not {s for s in subjects if in_weight(Canary("v2", weight=0), s)}
    assert all(in_weight(Canary("v2", weight=100), s) for s in subjects)


@pytest.mark.parametrize(
    ("canary", "named"),
    [
        ("{upstream: shop-v3, weight: 5}", "no upstream named 'shop-v3'"),
        ("{upstream: shop, weight: 5}", "another upstream than the route's"),
        ("{upstream: shop-v2, weight: 101}", r"routes\.0\.canary\.weight"),
        ("{upstream: shop-v2}", "by weight, header or flag"),
        ("{upstream: shop-v2, header: {name: X-Canary}}", r"routes\.0\.canary\.header\.value"),
        ("{upstream: shop-v2, header: {name: 'bad name', value: '1'}}", r"header\.name"),
        ("{upstream: shop-v2, flag: 'not a key'}", r"routes\.0\.canary\.flag"),
        ("{upstream: shop-v2, weight: 5, share: 5}", r"routes\.0\.canary\.share"),
    ],
)
def test_a_bad_canary_is_refused_at_load(tmp_path: Path, canary: str, named: str) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "upstreams:\n  shop: {}\n  shop-v2: {}\n"
        f"routes:\n  - prefix: /shop\n    service: shop\n    canary: {canary}\n"
    )
    with pytest.raises(ConfigError, match=named):
        GatewayConfig.load(config)


async def test_a_bad_canary_stops_the_gateway_and_a_bad_reload_keeps_the_last(
    tmp_path: Path, sqlite_template: Path, versions: dict[str, str]
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG.format(weight=500, **versions))
    with pytest.raises(ConfigError, match=r"canary\.weight"):
        async with open_gateway(tmp_path / "a", sqlite_template, gateway={"config": config}):
            pass
    _write(config, versions, weight=100)
    async with open_gateway(tmp_path / "b", sqlite_template, gateway={"config": config}) as http:
        admin = await _login(http)
        config.write_text(CONFIG.format(weight=-1, **versions))
        assert (await http.post("/admin/reload", headers=admin)).status_code == 200
        assert await _spread(http, 5) == {"v2": 5}


async def test_a_rollback_reaches_every_replica_through_redis(
    tmp_path: Path, shared_redis: SharedRedis
) -> None:
    registry = f"{shared_redis.prefix}registry:"
    settings = make_settings(
        tmp_path,
        "sqlite+aiosqlite:///unused.db",
        **shared_redis.gateway(registry_prefix=registry),
    )
    route = GatewayRoute(prefix="/shop", service="shop", canary=Canary("shop-v2", weight=30))
    one, other = (
        Gateway(settings=settings, upstreams={}, routes=[route], discover=True) for _ in "ab"
    )
    assert one.shared is not None
    assert other.shared is not None
    try:
        await one.shared.override_canary("/shop", {"weight": 0.0, "enabled": False})
        await other.shared.refresh()
        assert other.canaries.effective(route) == Canary("shop-v2", weight=0.0, enabled=False)
        # A malformed shared value is ignored, not applied.
        await shared_redis.client.hset(f"{registry}admin:canaries", "/shop", '{"weight": "all"}')
        await other.shared.refresh()
        assert other.canaries.effective(route) == route.canary
        await one.shared.override_canary("/shop", None)
        await other.shared.refresh()
        assert other.canaries.overrides == {}
    finally:
        for gateway in (one, other):
            await gateway.shared.aclose()  # type: ignore[union-attr]
            await gateway.revocations.stop()


async def test_an_unreachable_flags_service_counts_as_off(tmp_path: Path) -> None:
    route = GatewayRoute(prefix="/shop", service="shop", canary=Canary("shop-v2", flag="beta"))
    nowhere = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    gateway = Gateway(
        settings=make_settings(tmp_path, "sqlite+aiosqlite:///unused.db"),
        upstreams={"flags": HttpUpstream("flags", [nowhere], secret=b"s")},
        routes=[route],
    )
    principal = Principal(subject="user-1", tenant_id="t")
    scope = {"type": "http", "headers": [], "orchestrion.client_ip": "10.0.0.1"}
    try:
        assert await gateway.canaries.flag_enabled("beta", principal) is False
        assert await gateway.canaries.choose(route, scope, principal) == "shop"
    finally:
        await gateway.upstreams["flags"].client.aclose()
        await gateway.revocations.stop()


async def test_a_flag_change_reaches_the_canary_at_once_not_when_its_cache_expires(
    tmp_path: Path, sqlite_template: Path, versions: dict[str, str]
) -> None:
    """Embedded shape: with answers cached for an hour, only the bus's ``flags.changed``
    can move the caller, so each flip proves the cache was dropped."""
    config = tmp_path / "gateway.yaml"
    _write(config, versions, weight=0)
    gateway = {"config": config, "canary_flag_cache_seconds": 3600}
    async with open_gateway(tmp_path, sqlite_template, gateway=gateway) as http:
        admin = await _login(http)
        assert await _answered(http, "/api/v1/shop-beta", **admin) == "v1"  # no flag: off, cached
        created = await http.post(
            "/api/v1/flags",
            json={"key": "shop-beta", "enabled": True, "rollout": 100},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        await _until(http, "v2", admin)
        killed = await http.patch("/api/v1/flags/shop-beta", json={"enabled": False}, headers=admin)
        assert killed.status_code == 200, killed.text
        await _until(http, "v1", admin)


class _Flags:
    """A stand-in flags service whose one answer the test sets."""

    def __init__(self) -> None:
        self.enabled = False
        self.asked = 0

    def app(self) -> Starlette:
        async def evaluate(request: Request) -> JSONResponse:
            self.asked += 1
            return JSONResponse({"key": request.path_params["key"], "enabled": self.enabled})

        return Starlette(
            routes=[
                Route("/health/live", lambda _: JSONResponse({"status": "ok"})),
                Route("/api/v1/flags/{key}/evaluate", evaluate),
            ]
        )


async def test_a_gateway_of_its_own_follows_flag_changes_on_a_broker(tmp_path: Path) -> None:
    """Distributed shape: the gateway joins ``flags.changed`` on ORCHESTRION_BUS__URL
    (Redis here) in its lifespan; a change published by another process drops the flag's
    cached answers there."""
    from asgi_lifespan import LifespanManager

    from orchestrion.gateway.app import create_gateway
    from orchestrion.kernel.bus import CloudEvent, open_bus
    from tests.gateway.conftest import REDIS_URL

    flags = _Flags()
    route = GatewayRoute(prefix="/shop", service="shop", canary=Canary("shop-v2", flag="beta"))
    settings = make_settings(
        tmp_path,
        "sqlite+aiosqlite:///unused.db",
        bus={"url": REDIS_URL},
        gateway={"canary_flag_cache_seconds": 3600},
    )
    principal = Principal(subject="user-1", tenant_id="t")
    scope = {"type": "http", "headers": [], "orchestrion.client_ip": "10.0.0.1"}
    with serve_in_thread(flags.app()) as flags_url:
        app = create_gateway(
            settings, {"flags": HttpUpstream("flags", [flags_url], secret=b"s")}, routes=[route]
        )
        core = app
        while not isinstance(core, Gateway):
            core = core.app  # type: ignore[attr-defined]
        async with LifespanManager(app, startup_timeout=60), open_bus(REDIS_URL) as other:
            assert await core.canaries.choose(route, scope, principal) == "shop"
            flags.enabled = True  # changed behind the cache's back: still cached
            assert await core.canaries.choose(route, scope, principal) == "shop"
            assert flags.asked == 1
            await other.publish(
                "flags.changed",
                CloudEvent(
                    source="orchestrion/flags",
                    type="orchestrion.flag.updated",
                    subject="flags/beta",
                    data={"tenant_id": "t", "key": "beta", "action": "updated", "version": 2},
                ),
            )
            deadline = time.monotonic() + 60
            while await core.canaries.choose(route, scope, principal) != "shop-v2":
                assert time.monotonic() < deadline, "the change never reached the gateway"
                await asyncio.sleep(0.05)
