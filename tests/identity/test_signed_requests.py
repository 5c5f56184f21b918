"""Signed requests (``Orchestrion-HMAC``) through the gateway: a signature acts as its
key's owner within the key's scopes, and every way of forging or reusing one is a 401
problem saying what failed. Run on SQLite and PostgreSQL (the replay record)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import httpx
import pytest

from orchestrion.kernel.auth.signing import HmacAuth, content_digest, signed_headers
from tests.conftest import user_headers

KEYS = "/api/v1/auth/hmac-keys"
DEFINITION = {
    "name": "signed",
    "steps": [{"id": "double", "type": "transform", "with": {"value": "{{ inputs.x * 2 }}"}}],
    "outputs": {"result": "{{ steps.double.output.value }}"},
}


async def _key(
    client: httpx.AsyncClient, headers: dict[str, str], scopes: list[str]
) -> dict[str, Any]:
    created = await client.post(KEYS, json={"name": "sync", "scopes": scopes}, headers=headers)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    assert body["secret"].startswith("ohs_")
    return body


def _problem(response: httpx.Response, fragment: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["title"] == "Invalid Signature"
    assert fragment in problem["detail"], problem["detail"]


async def _post_signed(
    client: httpx.AsyncClient, path: str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    return await client.post(
        path, content=body, headers={**headers, "Content-Type": "application/json"}
    )


async def test_a_signed_request_acts_as_the_key_owner_within_its_scopes(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    editor = await user_headers(client, admin_headers, email="signer@example.com", roles=["editor"])
    key = await _key(client, editor, ["workflows:read", "workflows:write", "executions:run"])
    auth = HmacAuth(key["id"], key["secret"])

    me = await client.get("/api/v1/auth/me", auth=auth)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "signer@example.com"
    assert me.json()["kind"] == "api_key"
    assert set(me.json()["permissions"]) == {"workflows:read", "workflows:write", "executions:run"}

    created = await client.post("/api/v1/workflows", json=DEFINITION, auth=auth)
    assert created.status_code == 201, created.text
    run = await client.post(
        f"/api/v1/workflows/{created.json()['id']}/executions?wait=30",
        json={"inputs": {"x": 21}},
        auth=auth,
    )
    assert run.status_code == 200, run.text
    assert run.json()["outputs"] == {"result": 42}
    listed = await client.get("/api/v1/workflows?limit=5&name=signed", auth=auth)
    assert listed.status_code == 200, listed.text
    assert [w["name"] for w in listed.json()["data"]] == ["signed"]
    # Outside the key's scopes, as for an API key: the owner could, the key cannot.
    refused = await client.get("/api/v1/executions", auth=auth)
    assert refused.status_code == 403, refused.text


async def test_forged_stale_replayed_and_unknown_signatures_are_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    key = await _key(client, admin_headers, ["workflows:read", "workflows:write"])
    path = "/api/v1/workflows"
    body = json.dumps(DEFINITION).encode()

    def sign(**options: Any) -> dict[str, str]:
        return signed_headers(
            options.pop("key_id", key["id"]),
            options.pop("secret", key["secret"]),
            method="POST",
            target=path,
            body=options.pop("body", body),
            **options,
        )

    # The body changed after signing: the digest says so.
    tampered = body.replace(b'"signed"', b'"evil"')
    _problem(await _post_signed(client, path, tampered, sign()), "does not match the body")
    # ...and a digest recomputed for the new body breaks the signature instead.
    headers = {**sign(), "Content-Digest": content_digest(tampered)}
    _problem(await _post_signed(client, path, tampered, headers), "bad signature")
    # A body without a digest.
    no_digest = {k: v for k, v in sign().items() if k != "Content-Digest"}
    _problem(await _post_signed(client, path, body, no_digest), "needs Content-Digest")

    stale = sign(timestamp=int(time.time()) - 301)
    _problem(await _post_signed(client, path, body, stale), "stale timestamp")
    future = sign(timestamp=int(time.time()) + 301)
    _problem(await _post_signed(client, path, body, future), "stale timestamp")

    _problem(
        await _post_signed(client, path, body, sign(key_id="01a2b3c4-0000-7000-8000-000000000000")),
        "unknown key id",
    )
    wrong = sign(secret="ohs_" + secrets.token_urlsafe(32))
    _problem(await _post_signed(client, path, body, wrong), "bad signature")

    # The genuine request passes once; the very same bytes again are a replay.
    genuine = sign()
    first = await _post_signed(client, path, body, genuine)
    assert first.status_code == 201, first.text
    _problem(await _post_signed(client, path, body, genuine), "replayed signature")
    # The same request signed anew (a fresh nonce) is a new request.
    again = await _post_signed(
        client,
        path,
        body.replace(b"signed", b"signed-2"),
        sign(body=body.replace(b"signed", b"signed-2")),
    )
    assert again.status_code == 201, again.text

    # Malformed headers say what is missing.
    partial = {"Authorization": f'Orchestrion-HMAC keyId="{key["id"]}", ts=1'}
    _problem(await client.get("/api/v1/workflows", headers=partial), "lacks nonce, signature")


async def test_rotation_and_revocation_stop_the_old_secret(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    key = await _key(client, admin_headers, ["workflows:read"])
    old = HmacAuth(key["id"], key["secret"])
    assert (await client.get("/api/v1/workflows", auth=old)).status_code == 200

    listed = await client.get(KEYS, headers=admin_headers)
    assert [k["id"] for k in listed.json()["data"]] == [key["id"]]
    assert "secret" not in listed.json()["data"][0]
    assert listed.json()["data"][0]["last_used_at"] is not None

    rotated = await client.post(f"{KEYS}/{key['id']}/rotate", headers=admin_headers)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["id"] == key["id"]
    _problem(await client.get("/api/v1/workflows", auth=old), "bad signature")
    new = HmacAuth(key["id"], rotated.json()["secret"])
    assert (await client.get("/api/v1/workflows", auth=new)).status_code == 200

    revoked = await client.delete(f"{KEYS}/{key['id']}", headers=admin_headers)
    assert revoked.status_code == 204, revoked.text
    _problem(await client.get("/api/v1/workflows", auth=new), "revoked or expired")


async def test_keys_never_exceed_their_creator_and_the_document_declares_the_scheme(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    viewer = await user_headers(client, admin_headers, email="v@example.com", roles=["viewer"])
    refused = await client.post(
        KEYS, json={"name": "x", "scopes": ["workflows:write"]}, headers=viewer
    )
    assert refused.status_code == 403, refused.text
    document = (await client.get("/openapi.json")).json()
    scheme = document["components"]["securitySchemes"]["hmac"]
    assert scheme == {**scheme, "type": "http", "scheme": "Orchestrion-HMAC"}
    assert {"hmac": []} in document["security"]
    assert "post" in document["paths"][KEYS]


@pytest.mark.parametrize("path", ["/graphql"])
async def test_signatures_elsewhere_than_rest_say_so(
    client: httpx.AsyncClient, admin_headers: dict[str, str], path: str
) -> None:
    key = await _key(client, admin_headers, ["workflows:read"])
    answer = await client.post(
        path,
        json={"query": "{ workflows { totalCount } }"},
        auth=HmacAuth(key["id"], key["secret"]),
    )
    assert "REST API" in answer.text, answer.text
