"""Every workflows route declares its answer and its errors, and real answers fit them.

Routes answer with the JSON their services build; the declared ``response_model`` and
``responses`` are the OpenAPI contract. A tour of the API through the gateway checks
each answer against it: it must validate and carry no key the contract does not name.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any, get_origin

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from starlette.routing import Match

from orchestrion.kernel.errors import PROBLEM_JSON
from orchestrion.kernel.http.problems import Problem
from orchestrion.services.workflows.automation.endpoints import router as automation
from orchestrion.services.workflows.automation.service import sign
from orchestrion.services.workflows.definitions.endpoints import router as definitions
from orchestrion.services.workflows.executions.endpoints import router as executions
from orchestrion.services.workflows.llm.endpoints import router as llm
from orchestrion.services.workflows.mcp.endpoints import router as mcp
from orchestrion.services.workflows.responses import EventStream
from orchestrion.settings import Settings
from tests.conftest import make_settings
from tests.fixtures.llm import LlmServer, llm_server

__all__ = ["llm_server"]

ROUTES = [
    route
    for router in (definitions, executions, automation, llm, mcp)
    for route in router.routes
    if isinstance(route, APIRoute)
]
PREFIXES = (
    "/api/v1/workflows",
    "/api/v1/executions",
    "/api/v1/hooks",
    "/api/v1/llm",
    "/api/v1/budgets",
    "/api/v1/usage",
    "/api/v1/mcp",
)
PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _response_class(route: APIRoute) -> type:
    return getattr(route.response_class, "value", route.response_class)


def _can_fail_validation(route: APIRoute) -> bool:
    params = [*route.dependant.path_params, *route.dependant.query_params]
    return route.body_field is not None or any(
        p.field_info.annotation not in (str, str | None) for p in params
    )


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{min(r.methods)} {r.path}")
def test_each_route_declares_its_answer_and_its_problems(route: APIRoute) -> None:
    if route.status_code == 204:
        assert route.response_model is None
    elif issubclass(_response_class(route), EventStream):
        assert "text/event-stream" in route.responses[200]["content"]
    else:
        assert route.response_model is not None
        assert route.response_model not in (dict, Any)
        assert get_origin(route.response_model) is not dict
    problems = {status: r for status, r in route.responses.items() if int(status) >= 400}
    assert problems, "no error status declared"
    assert all(r["content"] == PROBLEM for r in problems.values())
    if _can_fail_validation(route):
        assert 422 in problems, "the request can fail validation: declare 422"


async def test_the_openapi_document_is_whole(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    text = json.dumps(document)
    assert "#/$defs/" not in text
    assert set(re.findall(r'"#/components/schemas/([^"]+)"', text)) <= set(
        document["components"]["schemas"]
    )
    for path, item in document["paths"].items():
        if not path.startswith(PREFIXES):
            continue
        for method, operation in item.items():
            answers = operation["responses"]
            assert "HTTPValidationError" not in json.dumps(answers), (method, path)
            assert [s for s in answers if s.startswith("2")], (method, path)
            for status, answer in answers.items():
                if status[0] in "45":
                    assert answer["content"] == PROBLEM, (method, path, status)
                elif status not in ("204", "304"):
                    (schema,) = [c["schema"] for c in answer["content"].values()]
                    assert schema not in ({}, {"type": "object"}), (method, path, status)
    body = document["paths"]["/api/v1/workflows"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/WorkflowDefinition"}


# --- real answers --------------------------------------------------------------------


def _route(method: str, path: str) -> APIRoute:
    scope = {"type": "http", "method": method, "path": path}
    for route in ROUTES:
        if route.matches(scope)[0] is Match.FULL:
            return route
    raise AssertionError(f"no route for {method} {path}")


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return None


def _fits(model: Any, body: Any) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(model)
    value = adapter.validate_python(body)
    dumped = adapter.dump_python(value, mode="json", by_alias=True, exclude_unset=True)
    assert _shape(dumped) == _shape(body), "the answer has keys its model does not name"


def check(response: httpx.Response) -> None:
    """``response`` is what its route declares."""
    route = _route(response.request.method, response.request.url.path)
    status = response.status_code
    where = f"{response.request.method} {response.request.url.path} {status}"
    if status >= 400:
        assert status in route.responses, where
        assert response.headers["content-type"] == PROBLEM_JSON, where
        _fits(Problem, response.json())
    elif status == 204:
        assert route.status_code == 204, where
        assert response.content == b"", where
    elif issubclass(_response_class(route), EventStream):
        assert response.headers["content-type"].startswith("text/event-stream"), where
    else:
        declared = route.responses.get(status, {}).get("model")
        assert declared is not None or status == (route.status_code or 200), where
        try:
            _fits(declared or route.response_model, response.json())
        except Exception as exc:
            raise AssertionError(f"{where}: {exc}") from exc


@pytest.fixture
def key() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, llm_server: LlmServer, key: str, everything_http: str
) -> Settings:
    """A platform LLM provider on loopback and a platform MCP server (URL)."""
    return make_settings(
        tmp_path,
        database_url,
        llm={
            "providers": {
                "oa": {"kind": "openai", "base_url": llm_server.openai(key), "api_key": "sk-oa"}
            },
            "pricing": {"test-model": {"input": 2.0, "output": 10.0}},
            "max_retries": 1,
        },
        mcp={"servers": {"plat": {"url": f"{everything_http}/mcp"}}},
    )


class Tour:
    """Calls through the gateway, each checked against its route's contract."""

    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    async def __call__(self, method: str, url: str, status: int, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        response = await self.client.request(method, url, headers=headers, **kwargs)
        assert response.status_code == status, f"{method} {url}: {response.text}"
        check(response)
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return None

    async def until(self, execution_id: str, status: str) -> None:
        deadline = time.monotonic() + 15
        while (await self("GET", f"/api/v1/executions/{execution_id}", 200))["status"] != status:
            assert time.monotonic() < deadline, f"execution never {status}"
            await asyncio.sleep(0.05)


async def test_answers_fit_their_declared_models(
    client: httpx.AsyncClient, admin_headers: dict[str, str], everything_http: str
) -> None:
    call = Tour(client, admin_headers)
    # definitions
    await call("GET", "/api/v1/workflows/step-types", 200)
    prompt = {"provider": "oa", "model": "test-model", "prompt": "{{ inputs.topic }}"}
    definition = {
        "name": "ask",
        "tags": ["t"],
        "inputs": {"type": "object", "properties": {"topic": {"type": "string"}}},
        "steps": [
            {"id": "ask", "type": "llm", "with": prompt, "retry": {"max_attempts": 2}},
            {"id": "out", "type": "transform", "needs": ["ask"], "with": {}},
        ],
        "outputs": {"text": "{{ steps.ask.output.text }}"},
        "concurrency": {"limit": 2},
    }
    wid = (await call("POST", "/api/v1/workflows", 201, json=definition))["id"]
    await call("PUT", f"/api/v1/workflows/{wid}", 200, json={**definition, "description": "d"})
    await call("GET", "/api/v1/workflows", 200)
    await call("GET", "/api/v1/workflows?cursor=&limit=1", 200)
    await call("GET", f"/api/v1/workflows/{wid}", 200)
    await call("PATCH", f"/api/v1/workflows/{wid}", 200, json={"description": "asks"})
    await call("GET", f"/api/v1/workflows/{wid}/versions", 200)
    await call("GET", f"/api/v1/workflows/{wid}/versions/1", 200)
    await call("GET", "/api/v1/workflows/nope", 404)
    await call("GET", "/api/v1/workflows?colour=red", 400)
    await call("POST", "/api/v1/workflows", 422, json={"name": "x", "steps": [{"id": "a"}]})
    # executions
    ran = await call(
        "POST", f"/api/v1/workflows/{wid}/executions?wait=15", 200, json={"inputs": {"topic": "x"}}
    )
    assert ran["status"] == "succeeded", ran
    await call("GET", "/api/v1/executions", 200)
    await call("GET", f"/api/v1/executions/{ran['id']}", 200)
    await call("GET", f"/api/v1/executions/{ran['id']}/events?limit=2", 200)
    await call("GET", f"/api/v1/executions/{ran['id']}/events?until=3", 200)
    await call("GET", f"/api/v1/executions/{ran['id']}/stream", 200)
    await call("POST", f"/api/v1/executions/{ran['id']}/signal", 409, json={"event": "go"})
    waits = [
        {"id": "ok", "type": "approval", "with": {}},
        {"id": "go", "type": "wait_for_event", "with": {"event": "go"}},
    ]
    waiting = await call("POST", "/api/v1/workflows", 201, json={"name": "w", "steps": waits})
    first = await call("POST", f"/api/v1/workflows/{waiting['id']}/executions", 202, json={})
    await call.until(first["id"], "waiting")
    await call("POST", f"/api/v1/executions/{first['id']}/signal", 200, json={"event": "go"})
    approve = f"/api/v1/executions/{first['id']}/steps/ok/approve"
    await call("POST", approve, 200, json={"approved": True})
    await call("POST", approve, 422, json={"a": 1})
    second = await call("POST", f"/api/v1/workflows/{waiting['id']}/executions", 202)
    await call.until(second["id"], "waiting")
    await call("POST", f"/api/v1/executions/{second['id']}/pause", 200)
    await call("POST", f"/api/v1/executions/{second['id']}/resume", 200)
    await call("POST", f"/api/v1/executions/{second['id']}/cancel", 200)
    await call("POST", f"/api/v1/executions/{second['id']}/retry", 200)
    # automation
    schedules = f"/api/v1/workflows/{wid}/schedules"
    schedule = await call("POST", schedules, 201, json={"cron": "0 0 1 1 *"})
    await call("GET", schedules, 200)
    await call("GET", f"{schedules}/{schedule['id']}", 200)
    await call("PATCH", f"{schedules}/{schedule['id']}", 200, json={"enabled": False})
    await call("DELETE", f"{schedules}/{schedule['id']}", 204)
    trigger = await call("POST", f"/api/v1/workflows/{wid}/triggers", 201, json={"name": "t"})
    await call("GET", f"/api/v1/workflows/{wid}/triggers", 200)
    raw = json.dumps({"topic": "y"}).encode()
    now = int(time.time())
    signature = sign(trigger["secret"], webhook_id="w1", timestamp=now, body=raw)
    hook = {"webhook-id": "w1", "webhook-timestamp": str(now), "webhook-signature": signature}
    await call("POST", trigger["url"], 202, content=raw, headers=hook)
    await call("POST", trigger["url"], 401, content=raw)
    await call("DELETE", f"/api/v1/workflows/{wid}/triggers/{trigger['id']}", 204)
    # llm
    provider = {"name": "mine", "kind": "anthropic", "base_url": "https://llm.example.com"}
    await call("POST", "/api/v1/llm/providers", 201, json={**provider, "api_key": "k"})
    await call("GET", "/api/v1/llm/providers", 200)
    await call("GET", "/api/v1/llm/providers/mine", 200)
    await call("POST", "/api/v1/llm/providers", 409, json=provider)
    await call("DELETE", "/api/v1/llm/providers/mine", 204)
    budget = await call(
        "POST", "/api/v1/budgets", 201, json={"scope": "tenant", "limit_usd": 5, "period": "day"}
    )
    await call("POST", "/api/v1/budgets", 201, json={"scope": "execution", "limit_usd": 1})
    await call("GET", "/api/v1/budgets", 200)
    await call("GET", f"/api/v1/budgets/{budget['id']}", 200)
    await call("DELETE", f"/api/v1/budgets/{budget['id']}", 204)
    for group in ("model", "workflow", "day"):
        usage = await call("GET", f"/api/v1/usage?group_by={group}", 200)
        assert usage["data"], group
    # mcp
    server = {"name": "mine", "url": f"{everything_http}/mcp", "headers": {"X-Token": "s"}}
    await call("POST", "/api/v1/mcp/servers", 201, json=server)
    servers = await call("GET", "/api/v1/mcp/servers", 200)
    assert [s["scope"] for s in servers["data"]] == ["platform", "tenant"]
    await call("GET", "/api/v1/mcp/servers/mine", 200)
    await call("GET", "/api/v1/mcp/servers/plat/tools", 200)
    await call("GET", "/api/v1/mcp/servers/none/tools", 404)
    await call("DELETE", "/api/v1/mcp/servers/mine", 204)
    # the last: deleting the workflow ends the tour
    await call("DELETE", f"/api/v1/workflows/{wid}", 204)
