"""Every way a socket authenticates through the gateway, and 4401 for everything else."""

from __future__ import annotations

import contextlib

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.services.realtime.conftest import Platform, close_code, recv, send, subscribe


async def _me(platform: Platform, token: str) -> str:
    me = await platform.http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    return str(me.json()["id"])


async def test_authorization_header_is_verified_by_the_gateway(platform: Platform) -> None:
    me = await _me(platform, platform.admin_token)
    headers = {"Authorization": f"Bearer {platform.admin_token}"}
    async with connect(platform.ws_url, additional_headers=headers) as ws:
        welcome = await recv(ws)
        assert welcome["type"] == "welcome"
        assert welcome["connection_id"]
        answer = await subscribe(ws, f"user:{me}", ref="s1")
        assert answer == {"type": "subscribed", "channel": f"user:{me}", "seq": 0, "ref": "s1"}


async def test_subprotocol_pair_carries_the_token(platform: Platform) -> None:
    async with connect(platform.ws_url, subprotocols=["bearer", platform.admin_token]) as ws:
        assert ws.subprotocol == "bearer"
        assert (await recv(ws))["type"] == "welcome"
        await send(ws, type="ping", ref=7)
        assert await recv(ws) == {"type": "pong", "ref": 7}


async def test_auth_frame_with_a_token_or_an_api_key(platform: Platform) -> None:
    async with connect(platform.ws_url) as ws:
        await send(ws, type="auth", token=platform.admin_token, ref="a1")
        welcome = await recv(ws)
        assert welcome["type"] == "welcome"
        assert welcome["ref"] == "a1"

    created = await platform.http.post(
        "/api/v1/auth/api-keys",
        json={"name": "socket", "scopes": ["executions:read"]},
        headers={"Authorization": f"Bearer {platform.admin_token}"},
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("orn_")
    async with connect(platform.ws_url) as ws:
        await send(ws, type="auth", token=key)
        assert (await recv(ws))["type"] == "welcome"
        await send(ws, type="subscribe", channel="tenant")
        assert (await recv(ws))["type"] == "subscribed"


@pytest.mark.parametrize(
    "attempt",
    ["no_auth_frame", "garbage_token", "api_key_unknown", "subscribe_first", "silence"],
)
async def test_unauthenticated_sockets_are_closed_4401(platform: Platform, attempt: str) -> None:
    async with connect(platform.ws_url) as ws:
        if attempt == "no_auth_frame":
            await ws.send("not json")
        elif attempt == "garbage_token":
            await send(ws, type="auth", token="not.a.jwt")
        elif attempt == "api_key_unknown":
            await send(ws, type="auth", token="orn_unknown-key")
        elif attempt == "subscribe_first":
            await send(ws, type="subscribe", channel="tenant")
        # "silence": the service stops waiting after auth_timeout_seconds
        assert await close_code(ws) == 4401


async def test_bad_subprotocol_token_is_4401(platform: Platform) -> None:
    async with connect(platform.ws_url, subprotocols=["bearer", "forged.token.value"]) as ws:
        assert ws.subprotocol == "bearer"
        assert await close_code(ws) == 4401


async def test_bad_authorization_header_is_refused_by_the_gateway(platform: Platform) -> None:
    headers = {"Authorization": "Bearer not.a.jwt"}
    async with connect(platform.ws_url, additional_headers=headers) as ws:
        # Had the gateway passed the socket on, this valid auth frame would be welcomed.
        with contextlib.suppress(ConnectionClosed):
            await send(ws, type="auth", token=platform.admin_token)
        assert await close_code(ws) == 4401
        assert ws.close_reason == "malformed token"


async def test_revoked_credentials_close_their_open_sockets(platform: Platform) -> None:
    admin = {"Authorization": f"Bearer {platform.admin_token}"}
    created = await platform.http.post(
        "/api/v1/auth/users",
        json={"email": "rt@example.com", "password": "user-password-1", "roles": ["editor"]},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    login = await platform.http.post(
        "/api/v1/auth/login", json={"email": "rt@example.com", "password": "user-password-1"}
    )
    token = login.json()["access_token"]
    key = await platform.http.post(
        "/api/v1/auth/api-keys",
        json={"name": "socket", "scopes": ["executions:read"]},
        headers={"Authorization": f"Bearer {token}"},
    )
    async with (
        connect(platform.ws_url, subprotocols=["bearer", token]) as by_token,
        connect(platform.ws_url, additional_headers={"X-API-Key": key.json()["key"]}) as by_key,
        connect(platform.ws_url, subprotocols=["bearer", platform.admin_token]) as bystander,
    ):
        for ws in (by_token, by_key, bystander):
            assert (await recv(ws))["type"] == "welcome"
        out = await platform.http.post(
            "/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}
        )
        assert out.status_code == 204
        assert await close_code(by_token) == 4401
        assert by_token.close_reason == "credentials revoked"
        deleted = await platform.http.delete(
            f"/api/v1/auth/api-keys/{key.json()['id']}", headers=admin
        )
        assert deleted.status_code == 204
        assert await close_code(by_key) == 4401
        await send(bystander, type="ping", ref=1)
        assert await recv(bystander) == {"type": "pong", "ref": 1}
    async with connect(platform.ws_url) as ws:
        await send(ws, type="auth", token=token)
        assert await close_code(ws) == 4401
