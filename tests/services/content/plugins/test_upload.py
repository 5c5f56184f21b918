"""Uploading, listing, reading and deleting plugins; what an upload must be; tenancy."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.services.content.plugins.conftest import call, upload, wasm

BASE = "/api/v1/plugins"


async def test_upload_list_get_delete(pclient, editor) -> None:
    module = wasm("hostile")
    created = await upload(pclient, editor, module, name="hostile", description="misbehaves")
    assert created["name"] == "hostile"
    assert created["version"] == "1.0.0"
    assert created["description"] == "misbehaves"
    assert created["sha256"] == hashlib.sha256(module).hexdigest()
    assert created["size_bytes"] == len(module)
    # Only functions Extism can call: no `helper` (parameters), no `_start`, no memory.
    assert created["functions"] == ["big", "fail", "grow", "spin", "trap"]
    assert created["limits"] == {"timeout_ms": 500, "max_memory_pages": 64}
    assert set(created) >= {"id", "name", "version", "functions", "sha256", "created_at"}

    url = f"{BASE}/{created['id']}"
    got = await pclient.get(url, headers=editor)
    assert got.status_code == 200
    assert got.json() == created
    etag = got.headers["etag"]
    assert (await pclient.get(url, headers={**editor, "If-None-Match": etag})).status_code == 304

    await upload(pclient, editor, wasm("echo"), name="echo", version="2.1.0")
    listed = await pclient.get(f"{BASE}?sort=name:asc&fields=name,version", headers=editor)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["data"] == [
        {"id": body["data"][0]["id"], "name": "echo", "version": "2.1.0"},
        {"id": created["id"], "name": "hostile", "version": "1.0.0"},
    ]
    assert body["meta"] == {"page": 1, "limit": 20, "total": 2}
    by_name = await pclient.get(f"{BASE}?name=echo", headers=editor)
    assert [p["version"] for p in by_name.json()["data"]] == ["2.1.0"]
    assert (await pclient.get(f"{BASE}?colour=red", headers=editor)).status_code == 400

    stale = await pclient.delete(url, headers={**editor, "If-Match": '"stale"'})
    assert stale.status_code == 412
    assert (await pclient.delete(url, headers=editor)).status_code == 204
    missing = await pclient.get(url, headers=editor)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_same_name_and_version_is_a_conflict(pclient, editor, identity) -> None:
    await upload(pclient, editor, wasm("echo"), name="echo")
    again = await upload(pclient, editor, wasm("echo"), name="echo", expect=409)
    assert again["status"] == 409
    assert "echo" in again["detail"]
    await upload(pclient, editor, wasm("echo"), name="echo", version="1.0.1")
    # Names are per tenant.
    await upload(pclient, identity(tenant="tenant-b"), wasm("echo"), name="echo")


async def test_modules_that_cannot_run_here_are_422(pclient, editor) -> None:
    not_wasm = await upload(pclient, editor, b"MZ\x90\x00 not a module", expect=422)
    assert "not a WebAssembly binary" in not_wasm["detail"]
    truncated = await upload(pclient, editor, wasm("echo")[:40], expect=422)
    assert "does not compile" in truncated["detail"]
    # WASI is not given: the module cannot reach files (nor clocks, sockets, environment).
    wasi = await upload(pclient, editor, wasm("wasi"), expect=422)
    assert "wasi_snapshot_preview1" in wasi["detail"]
    assert (await pclient.get(BASE, headers=editor)).json()["meta"]["total"] == 0


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"version": "!"}, "version"),
        ({"limits": "{not json"}, "limits"),
        ({"limits": json.dumps({"timeout_ms": 0})}, "limits"),
        ({"limits": json.dumps({"cpu": 1})}, "limits"),
    ],
)
async def test_bad_fields_are_422(pclient, editor, fields, loc) -> None:
    problem = await upload(pclient, editor, wasm("echo"), expect=422, **fields)
    assert problem["errors"][0]["loc"][:2] == ["body", loc]


async def test_upload_needs_a_module_in_a_multipart_form(pclient, editor) -> None:
    # A multipart form with only the name field.
    no_file = await pclient.post(BASE, files={"name": (None, "x")}, headers=editor)
    assert no_file.status_code == 422
    assert no_file.json()["errors"][0]["loc"] == ["body", "module"]
    for wrong in ({"json": {"name": "x"}}, {"data": {"name": "x"}}):
        answer = await pclient.post(BASE, headers=editor, **wrong)
        assert answer.status_code == 422
        assert "multipart" in answer.json()["detail"]


class TestSizeLimit:
    @pytest.fixture
    def plugin_overrides(self) -> dict[str, object]:
        return {"max_module_bytes": 2048}

    async def test_a_module_over_the_size_limit_is_413(self, pclient, editor) -> None:
        big = b"\0asm\x01\0\0\0" + bytes(3000)
        problem = await upload(pclient, editor, big, expect=413)
        assert "2048" in problem["detail"]
        # Far over: refused from Content-Length before the body is read.
        huge = await upload(pclient, editor, bytes(200_000), expect=413)
        assert huge["status"] == 413
        await upload(pclient, editor, wasm("echo"))


async def test_plugins_are_invisible_across_tenants(pclient, editor, identity) -> None:
    created = await upload(pclient, editor, wasm("echo"), name="echo")
    other = identity(tenant="tenant-b")
    url = f"{BASE}/{created['id']}"
    assert (await pclient.get(url, headers=other)).status_code == 404
    assert (await pclient.delete(url, headers=other)).status_code == 404
    problem = await call(pclient, other, created["id"], "echo", input="x", expect=404)
    assert problem["status"] == 404
    assert (await pclient.get(BASE, headers=other)).json()["data"] == []
    assert (await pclient.get(url, headers=editor)).status_code == 200


async def test_permissions(pclient, editor, identity) -> None:
    created = await upload(pclient, editor, wasm("echo"), name="echo")
    viewer = identity(role="viewer", subject="viewer-1")
    assert (await pclient.get(BASE, headers=viewer)).status_code == 200
    assert (await pclient.get(f"{BASE}/{created['id']}", headers=viewer)).status_code == 200
    await upload(pclient, viewer, wasm("echo"), name="mine", expect=403)
    assert (await pclient.delete(f"{BASE}/{created['id']}", headers=viewer)).status_code == 403
    # Calling runs code: viewers, who run no workflows either, may not.
    await call(pclient, viewer, created["id"], "echo", input="x", expect=403)
    assert (await pclient.get(BASE)).status_code == 401
