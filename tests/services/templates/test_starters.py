"""Every starter template, instantiated and run on the embedded platform (LLM ones on the
loopback provider), and their seeding: idempotent, upgraded by version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import wasmtime

from orchestrion.services.templates import starters
from orchestrion.services.templates.starters import STARTERS, seed
from orchestrion.settings import open_database
from tests.conftest import make_settings
from tests.fixtures.llm import LlmServer
from tests.fixtures.upstream import Upstream
from tests.services.templates.conftest import Headers, listed
from tests.services.workflows.helpers import start, step, wait_until

LLM = {"provider": "loop", "model": "test-model"}
EXAMPLES = Path(__file__).parents[3] / "examples" / "plugins"


async def _starter(client: httpx.AsyncClient, headers: Headers, slug: str) -> dict[str, Any]:
    found = [
        t
        for t in await listed(client, headers, visibility="public", limit=100)
        if t["slug"] == slug
    ]
    assert len(found) == 1, slug
    return found[0]


async def _make(
    client: httpx.AsyncClient, headers: Headers, slug: str, parameters: dict[str, Any]
) -> str:
    template = await _starter(client, headers, slug)
    made = await client.post(
        f"/api/v1/templates/{template['id']}/instantiate",
        json={"parameters": parameters},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def _run(
    client: httpx.AsyncClient,
    headers: Headers,
    slug: str,
    parameters: dict[str, Any],
    inputs: dict[str, Any],
) -> dict[str, Any]:
    workflow_id = await _make(client, headers, slug, parameters)
    execution = await start(client, headers, workflow_id, inputs, wait=20)
    failures = [(s["id"], s["error"]) for s in execution["steps"] if s.get("error")]
    assert execution["status"] == "succeeded", (execution["error"], failures)
    return execution


async def test_a_fresh_platform_lists_the_starters(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    public = [t for t in await listed(client, admin, visibility="public", limit=100) if t["slug"]]
    assert len(public) >= 8
    assert {t["slug"] for t in public} == {s.slug for s in STARTERS}
    assert len({t["category"] for t in public}) >= 3
    for template in public:
        assert template["description"].startswith("# ")
        assert template["parameters"]["properties"], template["slug"]
        assert template["tenant_id"] == "platform"


async def test_nightly_report_runs_as_it_is(client: httpx.AsyncClient, admin: Headers) -> None:
    metrics = [{"name": "cpu", "value": 150}, {"name": "mem", "value": 50}]
    done = await _run(client, admin, "nightly-report", {"title": "Ops"}, {"metrics": metrics})
    assert done["outputs"]["report"] == {
        "title": "Ops",
        "count": 2,
        "total": 200,
        "over_threshold": ["cpu"],
    }
    assert done["outputs"]["text"] == "Ops: 2 metrics, total 200, 1 over 100"


async def test_json_reshaping_runs_as_it_is(client: httpx.AsyncClient, admin: Headers) -> None:
    records = [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}, {"sku": "c", "qty": 5}]
    params = {"key_field": "sku", "value_field": "qty", "large_above": 2}
    done = await _run(client, admin, "json-reshaping", params, {"records": records})
    assert done["outputs"] == {
        "keys": ["a", "b", "c"],
        "values": [1, 2, 5],
        "count": 3,
        "size": "large",
    }
    done = await _run(client, admin, "json-reshaping", {}, {"records": []})
    assert done["outputs"]["size"] == "empty"


async def test_translation_on_the_loopback_provider(
    client: httpx.AsyncClient, admin: Headers, llm_server: LlmServer, llm_key: str
) -> None:
    params = {**LLM, "target_language": "German", "formality": "formal"}
    done = await _run(client, admin, "translation", params, {"text": "Good morning"})
    assert done["outputs"] == {"translation": "Hello, world!"}
    sent = llm_server.state.bodies[llm_key][0]
    assert sent["model"] == "test-model"
    assert "German" in sent["messages"][0]["content"]
    assert sent["messages"][-1] == {"role": "user", "content": "Good morning"}


async def test_research_digest_fetches_every_url(
    client: httpx.AsyncClient,
    admin: Headers,
    llm_server: LlmServer,
    llm_key: str,
    upstream: Upstream,
) -> None:
    urls = [f"{upstream.url}/echo/first", f"{upstream.url}/echo/second"]
    done = await _run(client, admin, "research-digest", {**LLM, "concurrency": 2}, {"urls": urls})
    assert done["outputs"]["statuses"] == [200, 200]
    assert done["outputs"]["digest"] == "Hello, world!"
    prompt = llm_server.state.bodies[llm_key][0]["messages"][-1]["content"]
    assert "/echo/first" in prompt
    assert "/echo/second" in prompt


async def test_rag_answers_from_the_knowledge_graph(
    client: httpx.AsyncClient, admin: Headers, llm_server: LlmServer, llm_key: str
) -> None:
    node = await client.post(
        "/api/v1/knowledge/nodes",
        json={"type": "concept", "name": "Photosynthesis", "text": "Plants turn light into sugar."},
        headers=admin,
    )
    assert node.status_code == 201, node.text
    params = {**LLM, "mode": "keyword", "limit": 3}
    done = await _run(client, admin, "rag-question-answering", params, {"question": "light sugar"})
    assert done["outputs"]["answer"] == "Hello, world!"
    assert [s["name"] for s in done["outputs"]["sources"]] == ["Photosynthesis"]
    prompt = llm_server.state.bodies[llm_key][0]["messages"][-1]["content"]
    assert "Photosynthesis" in prompt


async def test_support_triage_waits_for_a_person(
    client: httpx.AsyncClient, admin: Headers, llm_server: LlmServer, llm_key: str
) -> None:
    answer = {"category": "billing", "urgency": "high", "reply": "We are on it."}
    llm_server.state.script(llm_key, {"chunks": [json.dumps(answer)]})
    workflow_id = await _make(client, admin, "support-ticket-triage", {**LLM, "queue_prefix": "t1"})
    started = await start(
        client, admin, workflow_id, {"subject": "Refund", "body": "Charged twice"}
    )
    waiting = await wait_until(client, admin, started["id"], lambda e: e["status"] == "waiting")
    assert step(waiting, "classify")["output"]["data"] == answer
    approved = await client.post(
        f"/api/v1/executions/{started['id']}/steps/review/approve",
        json={"approved": True, "data": {"urgency": "normal"}},
        headers=admin,
    )
    assert approved.status_code in (200, 202), approved.text
    done = await wait_until(client, admin, started["id"], lambda e: e["status"] == "succeeded")
    assert done["outputs"] == {
        "category": "billing",
        "urgency": "normal",
        "queue": "t1-billing",
        "reply": "We are on it.",
    }
    schema = llm_server.state.bodies[llm_key][0]
    assert "billing" in json.dumps(schema)


async def test_document_summarizer_analyses_then_summarizes(
    client: httpx.AsyncClient, admin: Headers, llm_server: LlmServer, llm_key: str
) -> None:
    text = "Photosynthesis lets plants turn light, water and carbon dioxide into sugar. " * 3
    done = await _run(
        client, admin, "document-summarizer", {**LLM, "max_words": 40}, {"text": text}
    )
    assert done["outputs"]["summary"] == "Hello, world!"
    assert done["outputs"]["language"] == "en"
    assert done["outputs"]["keywords"]
    prompt = llm_server.state.bodies[llm_key][0]["messages"][-1]["content"]
    assert "at most 40 words" in prompt


async def test_content_moderation_scores_with_a_plugin(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    module = bytes(wasmtime.wat2wasm((EXAMPLES / "text.wat").read_text()))
    uploaded = await client.post(
        "/api/v1/plugins",
        data={"name": "vowels"},
        files={"module": ("text.wasm", module, "application/wasm")},
        headers=admin,
    )
    assert uploaded.status_code == 201, uploaded.text
    params = {
        "plugin": "vowels",
        "function": "count_vowels",
        "score_field": "vowels",
        "threshold": 5,
    }
    done = await _run(client, admin, "content-moderation", params, {"text": "aeiou aeiou"})
    assert done["outputs"] == {"decision": "rejected", "score": 10}
    done = await _run(client, admin, "content-moderation", params, {"text": "xyz"})
    assert done["outputs"] == {"decision": "approved", "score": 0}


async def test_seeding_is_idempotent_and_upgrades_by_version(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = open_database(make_settings(tmp_path, database_url))
    try:
        await seed(database)
        await seed(database)
        from sqlalchemy import func, select

        from orchestrion.services.templates.models import TplTemplate, TplVersion

        async with database.session() as session:
            count = await session.scalar(select(func.count()).select_from(TplTemplate))
            assert count == len(STARTERS)
        first = STARTERS[0]
        newer = starters.Starter(
            **{**first.__dict__, "version": first.version + 1, "name": "Renamed"}
        )
        monkeypatch.setattr(starters, "STARTERS", [newer, *STARTERS[1:]])
        await seed(database)
        async with database.session() as session:
            row = (
                await session.execute(select(TplTemplate).where(TplTemplate.slug == first.slug))
            ).scalar_one()
            assert (row.name, row.version) == ("Renamed", first.version + 1)
            versions = await session.scalar(
                select(func.count()).select_from(TplVersion).where(TplVersion.template_id == row.id)
            )
            assert versions == 2
            count = await session.scalar(select(func.count()).select_from(TplTemplate))
            assert count == len(STARTERS)
    finally:
        await database.dispose()
