"""The merged OpenAPI document is exact: what it says is what the platform answers.

Unit-style checks walk the document (every ``$ref`` resolves, every operation has a typed
2xx and declares its errors as problem+json, public operations say ``security: []``) and
send methods a path does not take (405 with the full ``Allow``). The conformance test runs
schemathesis (every check; phases examples, coverage, fuzzing, stateful) against the
embedded platform served by uvicorn on a loopback port, with a bounded number of examples.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from schemathesis.cli import schemathesis as schemathesis_cli

from orchestrion.engine import default_registry
from orchestrion.gateway.openapi import OWN_PATHS
from orchestrion.kernel.http.openapi import lift_defs, operations
from orchestrion.platform import create_embedded_app
from orchestrion.settings import AuthSettings, Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings
from tests.fixtures.databases import copy_template
from tests.fixtures.lifespan import in_process
from tests.fixtures.servers import serve

PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
SOME_ID = "01a23a77-4f5a-72e9-8909-37f7d7ebee62"

#: Operations whose schema-valid requests the service may still refuse on a rule JSON
#: Schema cannot say; each declares the 422 it answers, and only ``positive_data_acceptance``
#: (ST202) is off for it, every other check runs.
UNSAYABLE = {
    "POST /api/v1/auth/api-keys": "expires_at must be in the future (checked against now)",
    "POST /api/v1/auth/hmac-keys": "expires_at must be in the future (checked against now)",
    "POST /api/v1/auth/users": "the password policy past its length: not one repeated "
    "character, not a common password, not the email's name",
    "PATCH /api/v1/auth/users/{user_id}": "the password policy past its length",
    "POST /api/v1/knowledge/edges": "source and target must be existing nodes",
    "POST /api/v1/knowledge/import": "edges must name the keys of imported or existing nodes",
    "POST /api/v1/mcp/servers": "the URL's host must resolve to an allowed destination",
    "POST /api/v1/workflows": "a {{ }} string must parse as an expression; needs must name "
    "steps of the definition; step ids unique; no cycles",
    "PUT /api/v1/workflows/{workflow_id}": "the same rules as creating a workflow",
    "PATCH /api/v1/workflows/{workflow_id}": "the same rules, on the changed definition",
    "POST /api/v1/workflows/{workflow_id}/schedules": "inputs must match the workflow's "
    "inputs schema (a tenant's JSON Schema, stored with the workflow)",
    "POST /api/v1/executions/{execution_id}/steps/{step_id}/approve": "the data must be "
    "storable as JSON in the database: no NUL character in a string",
    "POST /api/v1/content": "the file's type is read from its bytes (a PDF, DOCX, text...), "
    "and a PDF or DOCX must parse",
    "POST /api/v1/plugins": "the module must be WebAssembly that compiles; limits is JSON text",
    "GET /api/v1/analytics/timeseries": "from..to spans at most 5,000 points of the interval",
    "POST /api/v1/templates": "parameters must be an object JSON Schema declaring every "
    "{{ params.<name> }} the definition uses",
    "PUT /api/v1/templates/{template_id}": "the same rules as creating a template",
    "POST /api/v1/notifications": "a named template must exist for the channel (the "
    "tenant's, newest version) and render within the sandbox's bounds",
    "POST /api/v1/notifications/templates": "subject and body must parse as Jinja",
    "POST /api/v1/flags": "variant names unique, weights not all 0, a rule's variant one of "
    "the flag's and only with enabled: true",
    "PATCH /api/v1/flags/{key}": "the same rules, on the changed flag",
    "POST /api/v1/templates/{template_id}/instantiate": "parameters must match the "
    "template's parameters schema (its author's JSON Schema)",
    "POST /api/v1/workflows/{workflow_id}/executions": "inputs must match the workflow's "
    "inputs schema (a tenant's JSON Schema, stored with the workflow)",
}
#: Operations without the coverage phase (the other phases run): a definition's steps are a
#: ``oneOf`` of every registered step type, and the coverage phase enumerates each keyword's
#: boundaries in every variant (some 30,000 cases for one operation, minutes of the run).
NO_COVERAGE = (
    "POST /api/v1/workflows",
    "PUT /api/v1/workflows/{workflow_id}",
    "PATCH /api/v1/workflows/{workflow_id}",
)
#: Error statuses answered with a health body, not a problem: readiness probes read it.
HEALTH_BODIES = {("/health/ready", "503")}
#: Operations left out: logging out would end the session the run authenticates with.
EXCLUDED_PATHS = ("/api/v1/auth/logout",)


def _settings(tmp_path: Path, template: Path) -> Settings:
    url = f"sqlite+aiosqlite:///{copy_template(template, tmp_path / 'data')}"
    # No rate limits: the run sends thousands of requests as one caller.
    return make_settings(tmp_path, url, gateway={"rate_limit": "", "login_rate_limit": ""})


async def _token(http: httpx.AsyncClient) -> str:
    response = await http.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture
async def platform(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The embedded platform in-process, as an admin."""
    app = create_embedded_app(_settings(tmp_path, sqlite_template))
    async with in_process(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            http.headers["Authorization"] = f"Bearer {await _token(http)}"
            yield http


@pytest.fixture
async def document(platform: httpx.AsyncClient) -> dict[str, Any]:
    """The merged document the gateway serves."""
    response = await platform.get("/openapi.json")
    assert response.status_code == 200
    served: dict[str, Any] = response.json()
    return served


# --- 405 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("TRACE", "/api/v1/auth/users", "GET, POST"),
        ("PUT", "/api/v1/auth/users", "GET, POST"),
        ("TRACE", "/api/v1/workflows", "GET, POST"),
        ("POST", f"/api/v1/auth/users/{SOME_ID}", "DELETE, GET, PATCH"),
        ("OPTIONS", "/api/v1/knowledge/nodes", "GET, POST"),
        ("OPTIONS", "/api/v1/workflows/step-types", "GET"),
        ("TRACE", f"/api/v1/workflows/{SOME_ID}", "DELETE, GET, PATCH, PUT"),
        ("TRACE", "/health", "GET, HEAD"),
        ("DELETE", "/health/live", "GET, HEAD"),
        ("TRACE", "/metrics", "GET, HEAD"),
    ],
)
async def test_a_method_the_path_does_not_take_answers_405_with_every_allowed_one(
    platform: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await platform.request(method, path)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    assert response.headers["content-type"] == PROBLEM_JSON
    assert allow in response.json()["detail"]


@pytest.mark.parametrize(
    "url", ["https://\U0004584a\u00fdT\x1a\U000f1f45-\x0e", "https://\U000f1f45.example/mcp"]
)
async def test_an_mcp_url_no_client_could_send_is_a_422_not_a_crash(
    platform: httpx.AsyncClient, url: str
) -> None:
    # Found by the conformance run: the URL passed validation and crashed the SSRF check.
    response = await platform.post(
        "/api/v1/mcp/servers", json={"name": "approval", "url": url, "transport": "streamable_http"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "url"]


# --- the document --------------------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} is not a local reference"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref} does not resolve"
        assert part in node, f"{ref} does not resolve"
        node = node[part]
    return node


async def test_every_reference_resolves(document: dict[str, Any]) -> None:
    refs = set(_refs(document))
    assert PROBLEM_REF in refs
    for ref in sorted(refs):
        _resolve(document, ref)
    assert "$defs" not in json.dumps(document)


def test_definitions_nested_under_defs_are_lifted_into_components() -> None:
    document = {
        "paths": {
            "/x": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "$defs": {"RetryPolicy": {"type": "object"}},
                                    "properties": {"retry": {"$ref": "#/$defs/RetryPolicy"}},
                                }
                            }
                        }
                    }
                }
            }
        },
        "components": {"schemas": {}},
    }
    lifted = lift_defs(document)
    assert lifted["components"]["schemas"]["RetryPolicy"] == {"type": "object"}
    body = lifted["paths"]["/x"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"properties": {"retry": {"$ref": "#/components/schemas/RetryPolicy"}}}


def _typed(schema: dict[str, Any]) -> bool:
    """A schema a client can generate a type from: not empty, not a bare object."""
    if not schema:
        return False
    return not (
        schema.get("type") == "object"
        and not schema.get("properties")
        and set(schema) <= {"type", "title", "additionalProperties", "description"}
    )


async def test_every_operation_has_a_typed_success_answer(document: dict[str, Any]) -> None:
    untyped = []
    for path, method, operation in operations(document):
        answers = operation["responses"]
        successes = [status for status in answers if status.startswith("2")]
        redirects = [status for status in answers if status.startswith("3") and status != "304"]
        assert successes or redirects, f"{method.upper()} {path} declares no 2xx nor redirect"
        for status in redirects:
            # A browser step (single sign-on): where it goes next is the answer.
            if "Location" not in answers[status].get("headers", {}):
                untyped.append(f"{method.upper()} {path} {status}: no Location header")
        for status in successes:
            for media, content in answers[status].get("content", {}).items():
                if media.endswith("json") and not _typed(content.get("schema", {})):
                    untyped.append(f"{method.upper()} {path} {status} {media}")
            if status != "204" and not answers[status].get("content"):
                untyped.append(f"{method.upper()} {path} {status}: no content")
    assert untyped == []


async def test_every_error_is_declared_as_a_problem(document: dict[str, Any]) -> None:
    wrong = []
    for path, method, operation in operations(document):
        name = f"{method.upper()} {path}"
        answers = operation["responses"]
        wanted = set()
        if operation.get("security") != []:
            wanted |= {"401", "403"}
        if "{" in path:
            wanted.add("404")
        if operation.get("parameters") or "requestBody" in operation:
            wanted.add("422")
        wrong += [f"{name}: {status} undeclared" for status in sorted(wanted - set(answers))]
        for status, answer in answers.items():
            if status.startswith(("4", "5")) and (path, status) not in HEALTH_BODIES:
                content = answer.get("content", {})
                if content != {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}:
                    wrong.append(f"{name}: {status} is {sorted(content)}, not problem+json")
    assert wrong == []


async def test_the_gateway_declares_what_it_answers_in_place_of_a_service(
    document: dict[str, Any],
) -> None:
    own = set(OWN_PATHS)
    proxied = [(p, m, op) for p, m, op in operations(document) if p not in own]
    assert len(proxied) > 50
    for path, method, operation in proxied:
        answers = operation["responses"]
        for status in ("429", "502", "503", "504"):
            assert status in answers, f"{method.upper()} {path}: {status} undeclared"
        headers = answers["429"]["headers"]
        assert {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(
            headers
        ), f"{method.upper()} {path}"
    for path, method, operation in operations(document):
        if path in own:
            # The gateway answers these itself: no upstream to fail, no rate limit.
            assert not {"429", "502", "504"} & set(operation["responses"]), f"{method} {path}"


async def test_the_document_says_the_rules_the_app_was_built_with(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    mapping = schemas["StepDefinition"]["discriminator"]["mapping"]
    assert sorted(mapping) == default_registry.names()
    create = document["paths"]["/api/v1/workflows"]["post"]["requestBody"]["content"]
    assert create["application/yaml"]["schema"] == create["application/json"]["schema"]
    # The password policy's configured length, where a password is chosen.
    length = AuthSettings().password_min_length
    assert schemas["UserCreate"]["properties"]["password"]["minLength"] == length
    update = schemas["UserUpdate"]["properties"]["password"]["anyOf"]
    assert [b["minLength"] for b in update if b.get("type") == "string"] == [length]
    # Every search mode, with the default (local) embedding provider.
    for search in ("SearchRequest", "ContentSearch"):
        assert schemas[search]["properties"]["mode"]["enum"] == ["keyword", "semantic", "hybrid"]
    body = document["paths"]["/api/v1/budgets"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["discriminator"]["propertyName"] == "scope"


async def test_security_schemes_and_public_operations(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    public = {
        (path, method) for path, method, op in operations(document) if op.get("security") == []
    }
    for expected in [
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/sso/exchange", "post"),
        ("/api/v1/auth/sso/providers", "get"),
        ("/api/v1/auth/sso/{name}/login", "get"),
        ("/api/v1/auth/sso/{name}/callback", "get"),
        ("/.well-known/jwks.json", "get"),
        ("/.well-known/openid-configuration", "get"),
        ("/api/v1/hooks/{trigger_id}", "post"),
        ("/health", "get"),
    ]:
        assert expected in public
    assert ("/api/v1/workflows", "get") not in public


# --- conformance ---------------------------------------------------------------------


#: The run is split by path so pytest-xdist spreads it over its workers; each shard has its
#: own platform. Operations that link to each other (the stateful phase) share a shard.
SHARDS = {
    "auth": r"^/api/v1/auth",
    "workflows": r"^/api/v1/workflows",
    "executions": r"^/api/v1/(executions|llm|budgets|usage)",
    "knowledge": r"^/api/v1/knowledge",
    "content": r"^/api/v1/(content|plugins)",
    "templates": r"^/api/v1/templates",
    "notifications": r"^/api/v1/notifications",
    "analytics": r"^/api/v1/analytics",
    "flags": r"^/api/v1/flags",
}
#: The shard of every other operation (health, MCP, the gateway's own...).
OTHERS = "others"


def _shard_arguments(shard: str) -> list[str]:
    if shard == OTHERS:
        return ["--exclude-path-regex", "|".join(f"({regex})" for regex in SHARDS.values())]
    return ["--include-path-regex", SHARDS[shard]]


def _schemathesis(base: str, token: str, directory: Path, shard: str) -> tuple[int, str]:
    config = directory / "schemathesis.toml"
    # No crash cache in the working directory: the run leaves nothing behind.
    unsayable = "".join(
        f'[[operations]]\ninclude-name = "{name}"\n'
        "checks.positive_data_acceptance.enabled = false\n"
        + ("phases.coverage.enabled = false\n" if name in NO_COVERAGE else "")
        + "\n"
        for name in UNSAYABLE
    )
    # A list's cursor is made by the server (``meta.next_cursor``), like an id: the run
    # sends the one a client has before any, the empty cursor of the first page. A list's
    # items are typed whole (what clients use); ``fields=`` trims them to a sparse fieldset
    # the item schema cannot follow, so the run asks for whole items.
    parameters = '[parameters]\n"query.cursor" = ""\n"query.fields" = ""\n\n'
    # Every check, switched on here rather than with ``--checks all``: a flag on the
    # command line would win over the per-operation ``enabled = false`` above.
    checks = "[checks]\nenabled = true\n\n"
    config.write_text(f"[cache]\nenabled = false\n\n{checks}{parameters}{unsayable}")
    arguments = [
        "--config-file",
        str(config),
        "run",
        str(directory / "openapi.json"),
        "--url",
        base,
        # Seconds a response may take: the suite loads two cores with other tests.
        "--request-timeout",
        "60",
        *_shard_arguments(shard),
        *(argument for path in EXCLUDED_PATHS for argument in ("--exclude-path", path)),
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        "10",
        "--seed",
        "1",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
    ]
    result = CliRunner().invoke(schemathesis_cli, arguments, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.timeout(600)
@pytest.mark.parametrize("shard", [*SHARDS, OTHERS])
async def test_schemathesis_finds_no_failure(
    tmp_path: Path, sqlite_template: Path, shard: str
) -> None:
    app = create_embedded_app(_settings(tmp_path, sqlite_template))
    async with serve(app) as hostport:
        base = f"http://{hostport}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            token = await _token(http)
            # Fetched here, not by the run: its loader waits 10 s, too short on a loaded machine.
            document = await http.get("/openapi.json")
            assert document.status_code == 200, document.text
            (tmp_path / "openapi.json").write_bytes(document.content)
        code, output = await asyncio.to_thread(_schemathesis, base, token, tmp_path, shard)
    assert code == 0, output[-20000:]
