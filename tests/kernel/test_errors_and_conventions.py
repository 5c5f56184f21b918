"""Kernel conventions on a bare service app: problem+json for every failure, identity."""

from __future__ import annotations

import time

import httpx
from fastapi import APIRouter, FastAPI

from orchestrion.kernel.auth.identity import decode_identity, encode_identity
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import Conflict
from orchestrion.kernel.http.app import create_service_app
from orchestrion.kernel.http.lists import encode_cursor

SECRET = b"secret"


def _app(tmp_path) -> FastAPI:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    app = create_service_app(
        name="probe", title="probe", version="0", database=database, identity_secret=SECRET
    )

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict("already there", errors=[{"loc": ["body", "name"], "msg": "taken"}])

    @app.post("/typed")
    async def typed(body: dict[str, int]) -> dict[str, int]:
        return body

    return app


async def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_unexpected_exception_is_a_problem_without_a_trace(tmp_path) -> None:
    async with await _client(_app(tmp_path)) as client:
        response = await client.get("/boom", headers={"X-Request-ID": "r1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["request_id"] == "r1"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text


async def test_domain_errors_and_validation_are_problems(tmp_path) -> None:
    async with await _client(_app(tmp_path)) as client:
        conflict = await client.get("/conflict")
        invalid = await client.post("/typed", json={"a": "not a number"})
        missing = await client.get("/nope")
        method = await client.delete("/conflict")
    assert conflict.status_code == 409
    assert conflict.json()["errors"] == [{"loc": ["body", "name"], "msg": "taken"}]
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["loc"] == ["body", "a"]
    assert missing.status_code == 404
    assert missing.json()["title"] == "Not Found"
    assert method.status_code == 405
    assert method.headers["content-type"] == "application/problem+json"


def test_identity_round_trip_and_refusals() -> None:
    principal = Principal(
        subject="u1", tenant_id="t1", roles=("admin",), permissions=frozenset({"a:b"})
    )
    value = encode_identity(principal, SECRET)
    assert decode_identity(value, SECRET) == principal
    assert decode_identity(value, b"other") is None
    payload, _, signature = value.partition(".")
    assert decode_identity(payload[:-2] + "xx." + signature, SECRET) is None
    stale = encode_identity(principal, SECRET, now=time.time() - 3600)
    assert decode_identity(stale, SECRET) is None
    assert decode_identity("garbage", SECRET) is None


def test_cursor_encodes_datetimes() -> None:
    from datetime import UTC, datetime

    from orchestrion.kernel.http.lists import _decode_cursor

    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert _decode_cursor(encode_cursor([moment, "id-1"]), 2) == [moment, "id-1"]


async def test_a_database_busy_past_its_wait_is_a_503_to_retry(tmp_path) -> None:
    # SQLite has one writer: a request that cannot get it within the wait is told to retry.
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'busy.db'}", busy_timeout_ms=100)
    app = create_service_app(
        name="probe", title="probe", version="0", database=database, identity_secret=SECRET
    )

    @app.get("/write")
    async def write() -> dict[str, bool]:
        async with database.session():
            return {"ok": True}

    async with await _client(app) as client, database.session():
        response = await client.get("/write")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert "busy" in response.json()["detail"]
    async with await _client(app) as client:
        assert (await client.get("/write")).json() == {"ok": True}
    await database.dispose()


async def test_405_names_every_method_of_routers_included_in_routers(tmp_path) -> None:
    app = _app(tmp_path)
    inner = APIRouter(prefix="/items")

    @inner.get("/{item_id}")
    async def read(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    @inner.delete("/{item_id}", status_code=204)
    async def remove(item_id: str) -> None:
        return None

    @inner.get("/special")
    async def special() -> dict[str, str]:
        return {"id": "special"}

    outer = APIRouter(prefix="/shop")
    outer.include_router(inner)
    app.include_router(outer, prefix="/v1")
    async with await _client(app) as client:
        item = await client.put("/v1/shop/items/1")
        literal = await client.post("/v1/shop/items/special")
        served = await client.get("/v1/shop/items/1")

        # A route added after the first request is known to the next one.
        @app.post("/late")
        async def late() -> dict[str, str]:
            return {}

        added = await client.put("/late")
    assert item.status_code == 405
    assert item.headers["allow"] == "DELETE, GET"
    # The path written for exactly this one is its own resource.
    assert literal.headers["allow"] == "GET"
    assert served.json() == {"id": "1"}
    assert added.status_code == 405
    assert added.headers["allow"] == "POST"
