"""Logins, token refresh and the security properties of access tokens, through the gateway."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_settings
from tests.fixtures.lifespan import in_process

ME = "/api/v1/auth/me"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_login_gives_a_token_pair_and_me(client: httpx.AsyncClient) -> None:
    tokens = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_token"].startswith("ort_")
    me = await client.get(ME, headers=_bearer(tokens["access_token"]))
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["email"] == ADMIN_EMAIL
    assert body["roles"] == ["admin"]
    assert "workflows:write" in body["permissions"]
    assert "platform:admin" in body["permissions"]


async def test_access_token_claims_and_jwks(client: httpx.AsyncClient, admin_tokens) -> None:
    token = admin_tokens["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    jwks = (await client.get("/.well-known/jwks.json")).json()
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert key["kty"] == "OKP"
    assert "d" not in key  # never the private half
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["EdDSA"], audience="orchestrion-api")
    assert claims["iss"] == "orchestrion"
    assert claims["exp"] - claims["iat"] == 900
    assert {"sub", "tid", "roles", "perms", "sid", "jti", "nbf"} <= set(claims)
    discovery = (await client.get("/.well-known/openid-configuration")).json()
    assert discovery["jwks_uri"].endswith("/.well-known/jwks.json")
    assert discovery["id_token_signing_alg_values_supported"] == ["EdDSA"]


async def test_wrong_password_is_401_without_saying_which(client: httpx.AsyncClient) -> None:
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "nope-nope"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": "ghost@example.com", "password": "nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert wrong.headers["content-type"] == "application/problem+json"


async def test_refresh_rotates_and_reuse_revokes_the_family(client: httpx.AsyncClient) -> None:
    first = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    second = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert second.status_code == 200, second.text
    pair = second.json()
    assert pair["refresh_token"] != first["refresh_token"]
    assert (await client.get(ME, headers=_bearer(pair["access_token"]))).status_code == 200

    reused = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reused.status_code == 401
    assert "reused" in reused.json()["detail"]
    # The whole family is gone: the newest refresh token and the session's tokens too.
    latest = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert latest.status_code == 401
    assert (await client.get(ME, headers=_bearer(pair["access_token"]))).status_code == 401
    # Another login is a different family and still works.
    assert (await login(client, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"]


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    tokens = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    out = await client.post("/api/v1/auth/logout", headers=_bearer(tokens["access_token"]))
    assert out.status_code == 204
    again = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert again.status_code == 401
    assert (await client.get(ME, headers=_bearer(tokens["access_token"]))).status_code == 401


async def test_unsigned_token_alg_none_is_refused(client: httpx.AsyncClient, admin_tokens) -> None:
    real = jwt.decode(admin_tokens["access_token"], options={"verify_signature": False})
    header = jwt.get_unverified_header(admin_tokens["access_token"])
    forged = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': header['kid']})}.{_b64(real)}."
    response = await client.get(ME, headers=_bearer(forged))
    assert response.status_code == 401


async def test_expired_token_is_refused(tmp_path, database_url: str) -> None:

    from orchestrion.platform import create_embedded_app

    settings = make_settings(tmp_path, database_url, auth={"access_token_ttl_seconds": 30})
    app = create_embedded_app(settings)
    async with in_process(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            tokens = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
            claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
            assert claims["exp"] - claims["iat"] == 30
            # Re-sign nothing: wait past expiry is too slow, so check the gateway's
            # verdict on a token whose exp is in the past but otherwise genuine.
            kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
            forged = _resign_with_unknown_key(claims | {"exp": int(time.time()) - 5}, kid)
            response = await http.get(ME, headers=_bearer(forged))
            assert response.status_code == 401


def _resign_with_unknown_key(claims: dict[str, Any], kid: str) -> str:
    return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid})


async def test_token_signed_by_another_key_with_a_known_kid_is_refused(
    client: httpx.AsyncClient, admin_tokens
) -> None:
    claims = jwt.decode(admin_tokens["access_token"], options={"verify_signature": False})
    kid = jwt.get_unverified_header(admin_tokens["access_token"])["kid"]
    forged = _resign_with_unknown_key(claims | {"perms": ["platform:admin"]}, kid)
    assert (await client.get(ME, headers=_bearer(forged))).status_code == 401
    assert (await client.get("/api/v1/workflows", headers=_bearer(forged))).status_code == 401


@pytest.mark.parametrize(
    ("claim", "value"), [("aud", "someone-else"), ("iss", "evil"), ("nbf", 4102444800)]
)
async def test_wrong_audience_issuer_or_not_yet_valid_is_refused(
    tmp_path, database_url: str, claim: str, value: Any
) -> None:
    """Genuinely signed tokens with a bad claim: the signing key comes from the database."""

    from orchestrion.platform import create_embedded_app

    settings = make_settings(tmp_path, database_url)
    app = create_embedded_app(settings)
    async with in_process(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            tokens = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
            claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
            token = await _sign_with_platform_key(settings, claims | {claim: value})
            response = await http.get(ME, headers=_bearer(token))
            assert response.status_code == 401, response.text
            genuine = await _sign_with_platform_key(settings, claims)
            assert (await http.get(ME, headers=_bearer(genuine))).status_code == 200


async def _sign_with_platform_key(settings: Any, claims: dict[str, Any]) -> str:
    from datetime import timedelta

    from orchestrion.services.auth.crypto import fernet_for
    from orchestrion.services.auth.keys import KeyRing
    from orchestrion.settings import open_database

    ring = KeyRing(
        fernet=fernet_for(settings.secret_key.get_secret_value().encode()),
        rotation=timedelta(days=30),
        token_ttl=timedelta(minutes=15),
    )
    database = open_database(settings)
    try:
        async with database.session() as session:
            return await ring.sign(session, claims)
    finally:
        await database.dispose()


async def test_signing_key_rotation_keeps_old_tokens_valid(tmp_path, database_url: str) -> None:

    from orchestrion.platform import create_embedded_app

    # Publish-ahead 0 and no JWKS refresh throttle: the new key signs at once and
    # the gateway must pick it up from the JWKS on the first unknown kid.
    settings = make_settings(
        tmp_path,
        database_url,
        auth={"signing_key_publish_seconds": 0},
        gateway={"jwks_min_refresh_seconds": 0},
    )
    app = create_embedded_app(settings)
    async with in_process(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            tokens = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
            headers = _bearer(tokens["access_token"])
            old_kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
            rotated = await http.post("/api/v1/auth/keys/rotate", headers=headers)
            assert rotated.status_code == 201, rotated.text
            new_kid = rotated.json()["kid"]
            fresh = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
            assert jwt.get_unverified_header(fresh["access_token"])["kid"] == new_kid
            kids = {k["kid"] for k in (await http.get("/.well-known/jwks.json")).json()["keys"]}
            assert {old_kid, new_kid} <= kids  # the retired key stays published
            assert (await http.get(ME, headers=_bearer(fresh["access_token"]))).status_code == 200
            assert (await http.get(ME, headers=headers)).status_code == 200


async def test_a_rotated_key_is_published_before_it_signs(settings: Any) -> None:
    import asyncio
    from datetime import timedelta

    from orchestrion.services.auth.crypto import fernet_for
    from orchestrion.services.auth.keys import KeyRing
    from orchestrion.settings import open_database

    ring = KeyRing(
        fernet=fernet_for(b"secret"),
        rotation=timedelta(days=30),
        token_ttl=timedelta(minutes=15),
        publish_ahead=timedelta(seconds=0.5),
    )
    database = open_database(settings)
    try:
        async with database.session() as session:
            first = (await ring.active(session)).kid
            pending = (await ring.rotate(session)).kid
            published = {k["kid"] for k in (await ring.jwks(session))["keys"]}
            assert {first, pending} <= published
            assert (await ring.active(session)).kid == first  # not yet
        await asyncio.sleep(0.6)
        ring._loaded_at = float("-inf")  # skip the per-process cache
        async with database.session() as session:
            assert (await ring.active(session)).kid == pending
            published = {k["kid"] for k in (await ring.jwks(session))["keys"]}
            assert first in published  # retired, still verifying its tokens
    finally:
        await database.dispose()


async def test_failed_logins_are_throttled_with_retry_after(tmp_path, database_url: str) -> None:

    from orchestrion.platform import create_embedded_app

    settings = make_settings(tmp_path, database_url, auth={"login_max_attempts": 3})
    app = create_embedded_app(settings)
    async with in_process(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            for _ in range(3):
                bad = await http.post(
                    "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "wrong-pass"}
                )
                assert bad.status_code == 401
            # Even the right password waits now: that is what stops guessing.
            blocked = await http.post(
                "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            )
            assert blocked.status_code == 429
            assert int(blocked.headers["retry-after"]) > 0
            assert blocked.json()["status"] == 429


async def test_failed_logins_are_audited(client: httpx.AsyncClient, admin_headers) -> None:
    await client.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "wrong-x"})
    audit = await client.get(
        "/api/v1/auth/audit", params={"action": "login.failed"}, headers=admin_headers
    )
    assert audit.status_code == 200, audit.text
    entries = audit.json()["data"]
    assert entries
    assert entries[0]["data"]["email"] == ADMIN_EMAIL
    unknown = await client.get(
        "/api/v1/auth/audit", params={"colour": "red"}, headers=admin_headers
    )
    assert unknown.status_code == 400
