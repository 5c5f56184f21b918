"""The workflows API through the gateway, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from tests.conftest import user_headers
from tests.fixtures.definitions import DOUBLE_THEN_ADD

EXAMPLE = DOUBLE_THEN_ADD


def example(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    body.update(changes)
    return body


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], **changes: Any
) -> dict[str, Any]:
    response = await client.post("/api/v1/workflows", json=example(**changes), headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_returns_the_definition_with_metadata(client, admin_headers) -> None:
    response = await client.post("/api/v1/workflows", json=EXAMPLE, headers=admin_headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "double-then-add"
    assert body["version"] == 1
    assert body["status"] == "active"
    assert body["tags"] == ["demo"]
    assert body["steps"][1]["needs"] == ["double"]
    assert body["steps"][0]["with"] == {"value": "{{ inputs.x * 2 }}"}
    assert body["outputs"] == EXAMPLE["outputs"]
    assert body["inputs"] == EXAMPLE["inputs"]
    assert body["created_at"].endswith("Z")
    assert body["updated_at"].endswith("Z")
    assert response.headers["location"] == f"/api/v1/workflows/{body['id']}"


async def test_get_has_etag_and_honours_if_none_match(client, admin_headers) -> None:
    created = await create(client, admin_headers)
    first = await client.get(f"/api/v1/workflows/{created['id']}", headers=admin_headers)
    assert first.status_code == 200
    assert first.json() == created
    etag = first.headers["etag"]
    again = await client.get(
        f"/api/v1/workflows/{created['id']}", headers={**admin_headers, "If-None-Match": etag}
    )
    assert again.status_code == 304
    assert again.content == b""


async def test_put_with_a_changed_definition_makes_a_new_version(client, admin_headers) -> None:
    created = await create(client, admin_headers)
    url = f"/api/v1/workflows/{created['id']}"
    changed = example(outputs={"result": "{{ steps.double.output.value }}"})
    response = await client.put(url, json=changed, headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    same = await client.put(url, json=changed, headers=admin_headers)
    assert same.json()["version"] == 2
    versions = await client.get(f"{url}/versions", headers=admin_headers)
    assert [v["version"] for v in versions.json()["data"]] == [2, 1]
    first = await client.get(f"{url}/versions/1", headers=admin_headers)
    assert first.json()["outputs"] == EXAMPLE["outputs"]
    missing = await client.get(f"{url}/versions/9", headers=admin_headers)
    assert missing.status_code == 404


async def test_patch_status_keeps_the_version(client, admin_headers) -> None:
    created = await create(client, admin_headers)
    url = f"/api/v1/workflows/{created['id']}"
    response = await client.patch(url, json={"status": "archived"}, headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "archived"
    assert response.json()["version"] == 1


async def test_if_match_mismatch_is_412_and_match_succeeds(client, admin_headers) -> None:
    created = await create(client, admin_headers)
    url = f"/api/v1/workflows/{created['id']}"
    etag = (await client.get(url, headers=admin_headers)).headers["etag"]
    stale = await client.patch(
        url, json={"description": "x"}, headers={**admin_headers, "If-Match": '"stale"'}
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    fresh = await client.patch(
        url, json={"description": "x"}, headers={**admin_headers, "If-Match": etag}
    )
    assert fresh.status_code == 200
    gone = await client.delete(url, headers={**admin_headers, "If-Match": etag})
    assert gone.status_code == 412


async def test_delete_then_404(client, admin_headers) -> None:
    created = await create(client, admin_headers)
    url = f"/api/v1/workflows/{created['id']}"
    assert (await client.delete(url, headers=admin_headers)).status_code == 204
    response = await client.get(url, headers=admin_headers)
    assert response.status_code == 404
    assert response.json()["status"] == 404


async def test_list_conventions(client, admin_headers) -> None:
    for index in range(3):
        await create(client, admin_headers, name=f"wf-{index}", tags=["a"] if index else ["b"])
    await create(client, admin_headers, name="draft-one", status="draft")
    listed = await client.get(
        "/api/v1/workflows?limit=2&sort=name:asc&fields=name", headers=admin_headers
    )
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["meta"] == {"page": 1, "limit": 2, "total": 4}
    assert body["data"] == [
        {"id": body["data"][0]["id"], "name": "draft-one"},
        {"id": body["data"][1]["id"], "name": "wf-0"},
    ]
    assert body["links"]["prev"] is None
    assert "page=2" in body["links"]["next"]
    second = await client.get(body["links"]["next"], headers=admin_headers)
    assert [w["name"] for w in second.json()["data"]] == ["wf-1", "wf-2"]
    assert second.json()["links"]["next"] is None
    tagged = await client.get("/api/v1/workflows?tag=a", headers=admin_headers)
    assert sorted(w["name"] for w in tagged.json()["data"]) == ["wf-1", "wf-2"]
    drafts = await client.get("/api/v1/workflows?status=draft", headers=admin_headers)
    assert [w["name"] for w in drafts.json()["data"]] == ["draft-one"]
    named = await client.get("/api/v1/workflows?name=wf-0", headers=admin_headers)
    assert named.json()["meta"]["total"] == 1
    capped = await client.get("/api/v1/workflows?limit=1000", headers=admin_headers)
    assert capped.json()["meta"]["limit"] == 100


async def test_cursor_pagination_walks_every_item_once(client, admin_headers) -> None:
    for index in range(5):
        await create(client, admin_headers, name=f"c-{index}")
    seen: list[str] = []
    url = "/api/v1/workflows?limit=2&sort=name:desc&cursor="
    while url:
        page = (await client.get(url, headers=admin_headers)).json()
        seen.extend(w["name"] for w in page["data"])
        url = page["links"]["next"]
        assert ("next_cursor" in page["meta"]) is True
    assert seen == ["c-4", "c-3", "c-2", "c-1", "c-0"]


@pytest.mark.parametrize(
    "query",
    [
        "sort=nope:asc",
        "sort=name:sideways",
        "colour=red",
        "fields=id,secret",
        "page=0",
        "limit=x",
        "cursor=%%%",
    ],
)
async def test_bad_list_parameters_are_400(client, admin_headers, query: str) -> None:
    response = await client.get(f"/api/v1/workflows?{query}", headers=admin_headers)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["errors"]
    assert problem["errors"][0]["loc"][0] == "query"


@pytest.mark.parametrize(
    ("steps", "step_id", "fragment"),
    [
        ([{"id": "a", "type": "nope"}], "a", "nope"),
        ([{"id": "a", "type": "transform", "needs": ["ghost"]}], "a", "ghost"),
        (
            [
                {"id": "a", "type": "transform", "needs": ["b"]},
                {"id": "b", "type": "transform", "needs": ["a"]},
            ],
            "a",
            "cycle",
        ),
        ([{"id": "a", "type": "transform", "with": {"v": "{{ 1 + }}"}}], "a", "1 +"),
        ([{"id": "a", "type": "transform"}, {"id": "a", "type": "transform"}], "a", "a"),
    ],
)
async def test_invalid_definitions_are_422_naming_the_step(
    client, admin_headers, steps: list[dict[str, Any]], step_id: str, fragment: str
) -> None:
    response = await client.post(
        "/api/v1/workflows", json=example(steps=steps, outputs={}), headers=admin_headers
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    messages = " ".join(e["msg"] for e in problem["errors"])
    assert f"'{step_id}'" in messages
    assert fragment in messages


async def test_unreadable_bodies_are_400(client, admin_headers) -> None:
    broken = await client.post(
        "/api/v1/workflows",
        content=b"{not json",
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert broken.status_code == 400
    assert broken.json()["detail"].startswith("the body is not valid JSON")
    listed = await client.post("/api/v1/workflows", json=[1, 2], headers=admin_headers)
    assert listed.status_code == 400


async def test_yaml_definitions_are_accepted(client, admin_headers) -> None:
    document = """
name: from-yaml
steps:
  - id: hello
    type: transform
    with:
      greeting: "hi {{ inputs.who }}"
"""
    response = await client.post(
        "/api/v1/workflows",
        content=document,
        headers={**admin_headers, "Content-Type": "application/yaml"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["steps"][0]["with"] == {"greeting": "hi {{ inputs.who }}"}


async def test_idempotency_key_replays_the_first_response(client, admin_headers) -> None:
    headers = {**admin_headers, "Idempotency-Key": "create-once"}
    first = await client.post("/api/v1/workflows", json=EXAMPLE, headers=headers)
    second = await client.post("/api/v1/workflows", json=EXAMPLE, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    listed = await client.get("/api/v1/workflows", headers=admin_headers)
    assert listed.json()["meta"]["total"] == 1
    other = await client.post("/api/v1/workflows", json=example(name="other"), headers=headers)
    assert other.status_code == 422


async def test_viewer_reads_but_cannot_write(client, admin_headers) -> None:
    created = await create(client, admin_headers)
    viewer = await user_headers(client, admin_headers, email="viewer@example.com", roles=["viewer"])
    assert (
        await client.get(f"/api/v1/workflows/{created['id']}", headers=viewer)
    ).status_code == 200
    denied = await client.post("/api/v1/workflows", json=EXAMPLE, headers=viewer)
    assert denied.status_code == 403
    assert denied.json()["status"] == 403
    assert (
        await client.delete(f"/api/v1/workflows/{created['id']}", headers=viewer)
    ).status_code == 403


async def test_another_tenants_workflow_is_404(client, admin_headers) -> None:
    created = await create(client, admin_headers)
    tenant = await client.post("/api/v1/auth/tenants", json={"name": "acme"}, headers=admin_headers)
    assert tenant.status_code == 201, tenant.text
    outsider = await user_headers(
        client,
        admin_headers,
        email="boss@acme.test",
        roles=["admin"],
        tenant_id=tenant.json()["id"],
    )
    url = f"/api/v1/workflows/{created['id']}"
    assert (await client.get(url, headers=outsider)).status_code == 404
    assert (await client.put(url, json=EXAMPLE, headers=outsider)).status_code == 404
    assert (await client.delete(url, headers=outsider)).status_code == 404
    assert (await client.get("/api/v1/workflows", headers=outsider)).json()["meta"]["total"] == 0


async def test_step_types_are_listed(client, admin_headers) -> None:
    response = await client.get("/api/v1/workflows/step-types", headers=admin_headers)
    assert response.status_code == 200
    names = {t["name"] for t in response.json()}
    assert {"transform", "http", "delay", "approval", "sub_workflow", "fail"} <= names


async def test_unauthenticated_is_401(client) -> None:
    response = await client.get("/api/v1/workflows")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_step_types_are_sorted_and_say_which_run_without_a_worker(
    client, admin_headers
) -> None:
    viewer = await user_headers(client, admin_headers, email="reader@x.test", roles=["viewer"])
    response = await client.get("/api/v1/workflows/step-types", headers=viewer)
    assert response.status_code == 200, response.text
    types = response.json()
    assert [t["name"] for t in types] == sorted(t["name"] for t in types)
    by_name = {t["name"]: t for t in types}
    assert set(by_name["delay"]) == {
        "name",
        "description",
        "with_schema",
        "instant",
        "requires",
        "waits",
    }
    assert by_name["delay"]["waits"] == ["timer"]
    assert by_name["http"]["requires"] == ["http"]
    assert by_name["loop"]["requires"] == ["steps", "journal"]
    assert by_name["transform"]["instant"] is True
    assert by_name["fail"]["instant"] is True
    assert by_name["delay"]["instant"] is False
    assert by_name["http"]["with_schema"]["type"] == "object"
