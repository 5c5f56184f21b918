"""Steps that call the platform's other services (``knowledge``, ``content``, ``plugin``)
through the embedded platform: the call acts in the execution's tenant only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import wasmtime

from orchestrion.platform import create_embedded_app
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_settings, user_headers
from tests.fixtures.lifespan import in_process
from tests.services.workflows.helpers import run, step

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "plugins"


@pytest.fixture
async def platform(tmp_path: Path, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    application = create_embedded_app(make_settings(tmp_path, database_url))
    async with in_process(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture
async def headers(platform: httpx.AsyncClient) -> dict[str, str]:
    tokens = await login(platform, ADMIN_EMAIL, ADMIN_PASSWORD)
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def knowledge(step_id: str, **with_: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "knowledge", "with": with_}


async def test_knowledge_step_searches_the_tenants_graph(
    platform: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for name, text in [
        ("Photosynthesis", "Plants turn light, water and carbon dioxide into sugar."),
        ("Respiration", "Cells burn sugar with oxygen to release energy."),
    ]:
        created = await platform.post(
            "/api/v1/knowledge/nodes",
            json={"type": "concept", "name": name, "text": text},
            headers=headers,
        )
        assert created.status_code == 201, created.text
    execution = await run(
        platform,
        headers,
        [knowledge("find", query="{{ inputs.q }}", mode="keyword", limit=1)],
        {"q": "light sugar plants"},
        outputs={"best": "{{ steps.find.output[0].name }}"},
    )
    assert execution["status"] == "succeeded", execution
    assert execution["outputs"] == {"best": "Photosynthesis"}
    found = step(execution, "find")["output"]
    assert len(found) == 1
    assert set(found[0]) == {"node_id", "name", "score"}


async def test_a_refused_search_fails_the_step_without_retries(
    platform: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    execution = await run(
        platform,
        headers,
        [knowledge("find", query="{{ inputs.q }}", mode="keyword", limit="{{ inputs.n }}")],
        {"q": "anything", "n": 500},
    )
    assert execution["status"] == "failed", execution
    assert "'limit' must be an integer from 1 to 100" in step(execution, "find")["error"]["message"]


async def test_steps_reach_only_their_own_tenants_data(
    platform: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    created = await platform.post(
        "/api/v1/knowledge/nodes",
        json={"type": "secret", "name": "Quarterly numbers", "text": "revenue forecast"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    tenant = await platform.post("/api/v1/auth/tenants", json={"name": "other"}, headers=headers)
    assert tenant.status_code == 201, tenant.text
    other = await user_headers(
        platform,
        headers,
        email="editor@other.example",
        roles=["editor"],
        tenant_id=tenant.json()["id"],
    )
    execution = await run(
        platform, other, [knowledge("find", query="revenue forecast", mode="keyword")], {}
    )
    assert execution["status"] == "succeeded", execution
    assert step(execution, "find")["output"] == []


PHOTOSYNTHESIS = (
    "Photosynthesis is the process by which green plants use sunlight to make food. "
    "During photosynthesis, chlorophyll in the leaves absorbs light energy, which turns "
    "water and carbon dioxide into glucose and oxygen. Photosynthesis feeds nearly all "
    "life on Earth."
)


async def test_content_step_analyses_text_and_reads_a_stored_document(
    platform: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    stored = await platform.post(
        "/api/v1/content", json={"text": PHOTOSYNTHESIS, "title": "Leaves"}, headers=headers
    )
    assert stored.status_code == 201, stored.text
    assert stored.json()["status"] == "processed"
    execution = await run(
        platform,
        headers,
        [
            {"id": "inline", "type": "content", "with": {"text": "{{ inputs.text }}"}},
            {"id": "stored", "type": "content", "with": {"content_id": "{{ inputs.id }}"}},
        ],
        {"text": PHOTOSYNTHESIS, "id": stored.json()["id"]},
    )
    assert execution["status"] == "succeeded", execution
    inline, kept = step(execution, "inline")["output"], step(execution, "stored")["output"]
    assert inline["language"] == "en"
    assert any("photosynthesis" in k["term"].lower() for k in inline["keywords"][:3])
    assert kept["word_count"] == inline["word_count"]


async def test_content_step_on_an_unknown_document_fails_without_retries(
    platform: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    execution = await run(
        platform, headers, [{"id": "read", "type": "content", "with": {"content_id": "nope"}}]
    )
    assert execution["status"] == "failed", execution
    error = step(execution, "read")["error"]
    assert "content answered 404" in error["message"]
    assert step(execution, "read")["attempts"] == 1


async def test_plugin_step_calls_a_plugin_by_name(
    platform: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    module = wasmtime.wat2wasm((EXAMPLES / "text.wat").read_text())
    uploaded = await platform.post(
        "/api/v1/plugins",
        files={"module": ("text.wasm", bytes(module), "application/wasm")},
        data={"name": "text"},
        headers=headers,
    )
    assert uploaded.status_code == 201, uploaded.text
    execution = await run(
        platform,
        headers,
        [
            {
                "id": "vowels",
                "type": "plugin",
                "with": {"plugin": "text", "function": "count_vowels", "input": "{{ inputs.s }}"},
            },
            # After `vowels`: a failed step ends the execution, whatever still runs.
            {
                "id": "missing",
                "type": "plugin",
                "needs": ["vowels"],
                "with": {"plugin": "text", "function": "nope"},
            },
        ],
        {"s": "Orchestrion"},
    )
    assert step(execution, "vowels")["output"] == {"vowels": 4}
    assert execution["status"] == "failed"
    assert "content answered 422" in step(execution, "missing")["error"]["message"]
