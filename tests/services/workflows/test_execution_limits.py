"""Limits of starting executions over HTTP: inputs too large (413) and too many
unfinished executions in a tenant (429 with ``Retry-After``), as problem+json naming
the limit and its setting; and the OpenAPI document declaring both."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from orchestrion.settings import Settings
from tests.conftest import make_settings
from tests.services.workflows.helpers import create_workflow, wait_until


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Small limits, so that a test reaches them with a few requests."""
    return make_settings(
        tmp_path,
        database_url,
        engine={
            "http_allowlist": ["127.0.0.1"],
            "poll_seconds": 0.2,
            "max_input_bytes": 1024,
            "max_active_executions": 2,
        },
    )


async def test_inputs_over_the_limit_answer_413(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    workflow_id = await create_workflow(
        client, admin_headers, [{"id": "t", "type": "transform", "with": {}}]
    )
    url = f"/api/v1/workflows/{workflow_id}/executions"
    fits = await client.post(url, json={"inputs": {"text": "x" * 900}}, headers=admin_headers)
    assert fits.status_code in (200, 202), fits.text
    refused = await client.post(url, json={"inputs": {"text": "x" * 2000}}, headers=admin_headers)
    assert refused.status_code == 413, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["status"] == 413
    assert "over the limit of 1024 bytes" in problem["detail"]
    assert "ORCHESTRION_ENGINE__MAX_INPUT_BYTES" in problem["detail"]
    # Inputs no backend stores the same way (PostgreSQL's JSONB refuses NaN) are invalid.
    nan = await client.post(
        url,
        content=b'{"inputs": {"x": NaN}}',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert nan.status_code == 422, nan.text
    assert "not storable as JSON" in nan.json()["detail"]
    listed = await client.get("/api/v1/executions", headers=admin_headers)
    assert [e["id"] for e in listed.json()["data"]] == [fits.json()["id"]]


async def test_too_many_active_executions_answer_429(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    workflow_id = await create_workflow(
        client, admin_headers, [{"id": "ok", "type": "approval", "with": {}}]
    )
    url = f"/api/v1/workflows/{workflow_id}/executions"
    started = []
    for _ in range(2):
        response = await client.post(url, json={"inputs": {}}, headers=admin_headers)
        assert response.status_code == 202, response.text
        started.append(response.json()["id"])
    refused = await client.post(url, json={"inputs": {}}, headers=admin_headers)
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == "10"
    assert refused.headers["content-type"].startswith("application/problem+json")
    detail = refused.json()["detail"]
    assert "2 unfinished executions" in detail
    assert "ORCHESTRION_ENGINE__MAX_ACTIVE_EXECUTIONS" in detail
    # Once one has ended there is room again.
    cancelled = await client.post(f"/api/v1/executions/{started[0]}/cancel", headers=admin_headers)
    assert cancelled.status_code == 200, cancelled.text
    await wait_until(client, admin_headers, started[0], lambda e: e["status"] == "cancelled")
    again = await client.post(url, json={"inputs": {}}, headers=admin_headers)
    assert again.status_code == 202, again.text
    # Retrying an ended execution makes it active again: the same limit applies.
    retried = await client.post(f"/api/v1/executions/{started[0]}/retry", headers=admin_headers)
    assert retried.status_code == 429, retried.text
    assert retried.headers["retry-after"] == "10"


async def test_start_routes_declare_413_and_429(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    for path in ("/api/v1/workflows/{workflow_id}/executions", "/api/v1/hooks/{trigger_id}"):
        answers = document["paths"][path]["post"]["responses"]
        assert {"413", "429"} <= set(answers), (path, sorted(answers))
        assert "Retry-After" in answers["429"]["headers"]
    retry = document["paths"]["/api/v1/executions/{execution_id}/retry"]["post"]["responses"]
    assert "Retry-After" in retry["429"]["headers"]
    for action in ("signal", "steps/{step_id}/approve"):
        answers = document["paths"][f"/api/v1/executions/{{execution_id}}/{action}"]["post"]
        assert "413" in answers["responses"], action


async def test_signal_data_over_the_limit_answer_413(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    workflow_id = await create_workflow(
        client,
        admin_headers,
        [{"id": "hear", "type": "wait_for_event", "with": {"event": "go"}}],
    )
    started = await client.post(
        f"/api/v1/workflows/{workflow_id}/executions", json={"inputs": {}}, headers=admin_headers
    )
    assert started.status_code == 202, started.text
    url = f"/api/v1/executions/{started.json()['id']}/signal"
    refused = await client.post(
        url, json={"event": "go", "data": {"text": "x" * 2000}}, headers=admin_headers
    )
    assert refused.status_code == 413, refused.text
    assert "the signal's data are" in refused.json()["detail"]
    assert "ORCHESTRION_ENGINE__MAX_INPUT_BYTES" in refused.json()["detail"]
    taken = await client.post(url, json={"event": "go", "data": {"ok": 1}}, headers=admin_headers)
    assert taken.status_code in (200, 202), taken.text
