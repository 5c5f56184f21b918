"""Bounds on what one request may cost: body depth, YAML aliases and nodes, list offsets and
cursors, tenant regexes, expression results (settings ``limits``)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrion.engine import sandbox
from orchestrion.settings import Settings
from tests.conftest import make_settings
from tests.services.workflows.helpers import create_workflow, run, start, wait_until

YAML = {"Content-Type": "application/yaml"}
STEP = {"id": "a", "type": "transform", "with": {}}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Iterator[Settings]:
    """Test settings with small limits, so that each one is easy to reach."""
    yield make_settings(
        tmp_path,
        database_url,
        limits={"expression_max_size": 5000, "list_max_offset": 100, "yaml_max_nodes": 1000},
    )
    sandbox.configure(max_size=sandbox.DEFAULT_MAX_SIZE)  # create_app set it for the process


def _deep_json(depth: int) -> bytes:
    return b'{"name": "deep", "steps": [], "x": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [65, 200_000])
async def test_a_deeply_nested_json_body_is_422_naming_the_limit(
    client, admin_headers, depth: int
) -> None:
    response = await client.post(
        "/api/v1/workflows",
        content=_deep_json(depth),
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "limits.body_max_depth" in response.json()["detail"]


async def test_a_deep_body_without_a_content_type_is_422_too(client, admin_headers) -> None:
    response = await client.post(
        "/api/v1/workflows", content=_deep_json(100_000), headers=admin_headers
    )
    assert response.status_code == 422, response.text
    assert "limits.body_max_depth" in response.json()["detail"]


def _laughs(levels: int) -> str:
    lines = ["name: lol", "steps: []", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("document", "limit"),
    [
        (_laughs(9), "limits.yaml_max_nodes"),  # 9**9 nodes from under 400 bytes
        (
            "name: x\nsteps: []\na: &a 1\n" + "".join(f"k{i}: *a\n" for i in range(101)),
            "limits.yaml_max_aliases",
        ),
        ("name: x\nsteps: []\nx: " + "[" * 100 + "]" * 100 + "\n", "limits.body_max_depth"),
    ],
)
async def test_yaml_bombs_are_422_naming_the_limit(
    client, admin_headers, document: str, limit: str
) -> None:
    response = await client.post(
        "/api/v1/workflows", content=document, headers={**admin_headers, **YAML}
    )
    assert response.status_code == 422, response.text
    assert limit in response.json()["detail"]


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


async def test_unfinished_deep_yaml_is_400_not_500(client, admin_headers) -> None:
    document = "name: x\nsteps: []\nx: " + "[" * 100_000 + "\n"
    response = await client.post(
        "/api/v1/workflows", content=document, headers={**admin_headers, **YAML}
    )
    assert response.status_code in (400, 422), response.text


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("page=7&limit=20", "page"),  # skips 120 > list_max_offset
        (f"page={10**30}", "page"),
        ("cursor=" + base64.urlsafe_b64encode(b"[" * 1500 + b"]" * 1500).decode(), "cursor"),
        (f"cursor={_cursor([[1], {'a': 2}])}", "cursor"),
        (f"cursor={_cursor(['not a date', 'x'])}", "cursor"),
        (f"cursor={_cursor([12, 'x'])}", "cursor"),
        ("cursor=" + base64.urlsafe_b64encode(b"[" * 4000 + b"]" * 4000).decode(), "cursor"),
    ],
)
async def test_far_pages_and_bad_cursors_are_400(
    client, admin_headers, query: str, where: str
) -> None:
    response = await client.get(f"/api/v1/workflows?{query}", headers=admin_headers)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["errors"][0]["loc"] == ["query", where]
    if where == "page":
        assert "limits.list_max_offset" in problem["detail"]


async def test_a_catastrophic_pattern_is_answered_at_once(client, admin_headers) -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}
    workflow_id = await create_workflow(client, admin_headers, [STEP], inputs=schema)
    response = await client.post(
        f"/api/v1/workflows/{workflow_id}/executions",
        json={"inputs": {"s": "a" * 5000 + "!"}},
        headers=admin_headers,
    )
    assert response.status_code == 422, response.text
    assert "does not match" in response.json()["errors"][0]["msg"]


async def test_a_catastrophic_pattern_in_an_approval_schema_is_answered_at_once(
    client, admin_headers
) -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}
    approval = {"id": "ok", "type": "approval", "with": {"schema": schema}}
    workflow_id = await create_workflow(client, admin_headers, [approval])
    execution = await start(client, admin_headers, workflow_id)
    await wait_until(client, admin_headers, execution["id"], lambda e: e["status"] == "waiting")
    response = await client.post(
        f"/api/v1/executions/{execution['id']}/steps/ok/approve",
        json={"approved": True, "data": {"s": "a" * 5000 + "!"}},
        headers=admin_headers,
    )
    assert response.status_code == 422, response.text
    assert "does not match" in response.json()["errors"][0]["msg"]


@pytest.mark.parametrize(
    "step",
    [
        {"id": "ok", "type": "approval", "with": {"schema": {"pattern": "(a)\\1"}}},
        {
            "id": "ask",
            "type": "llm",
            "with": {"model": "m", "prompt": "p", "response_schema": {"pattern": "(?<=a)b"}},
        },
    ],
)
async def test_step_schemas_re2_cannot_run_are_422_when_saved(
    client, admin_headers, step: dict[str, Any]
) -> None:
    response = await client.post(
        "/api/v1/workflows", json={"name": "bad", "steps": [step]}, headers=admin_headers
    )
    assert response.status_code == 422, response.text
    assert "not supported" in response.text


async def test_a_pattern_re2_cannot_run_is_422_when_saved(client, admin_headers) -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "(?=a)b"}}}
    response = await client.post(
        "/api/v1/workflows",
        json={"name": "look-ahead", "steps": [STEP], "inputs": schema},
        headers=admin_headers,
    )
    assert response.status_code == 422, response.text
    assert "not supported" in response.text


async def test_expression_growth_fails_the_step_naming_the_limit(client, admin_headers) -> None:
    execution = await run(
        client,
        admin_headers,
        [{"id": "grow", "type": "transform", "with": {"v": "{{ inputs.s ~ inputs.s }}"}}],
        {"s": "y" * 3000},
    )
    assert execution["status"] == "failed"
    assert execution["error"]["step_id"] == "grow"
    assert "limits.expression_max_size" in execution["error"]["message"]


@pytest.mark.parametrize("source", ["{{ range }}", "x {{ 'a'.upper }}", "{{ [dict] | string }}"])
async def test_non_json_results_fail_the_step_without_an_address(
    client, admin_headers, source: str
) -> None:
    execution = await run(
        client, admin_headers, [{"id": "leak", "type": "transform", "with": {"v": source}}]
    )
    assert execution["status"] == "failed"
    assert "is not JSON" in execution["error"]["message"]
    assert "0x" not in json.dumps(execution)
