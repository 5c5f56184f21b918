"""Instantiation: parameters checked, values substituted with their types, run-time
expressions kept, the workflow made in the caller's tenant through the workflows API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.services.templates.conftest import Headers, body, create
from tests.services.workflows.helpers import start


def _typed_template() -> dict[str, Any]:
    return body(
        parameters={
            "type": "object",
            "properties": {
                "limit": {"type": "integer", "minimum": 1},
                "ratio": {"type": "number"},
                "flag": {"type": "boolean"},
                "labels": {"type": "array", "items": {"type": "string"}},
                "config": {
                    "type": "object",
                    "properties": {"depth": {"type": "integer"}},
                },
                "label": {"type": "string", "default": "run"},
            },
            "required": ["limit", "flag"],
        },
        definition={
            "name": "typed",
            "inputs": {"type": "object", "properties": {"x": {"type": "integer"}}},
            "steps": [
                {
                    "id": "t",
                    "type": "transform",
                    "with": {
                        "limit": "{{ params.limit }}",
                        "ratio": " {{params.ratio}} ",
                        "flag": "{{ params.flag }}",
                        "labels": "{{ params.labels }}",
                        "depth": "{{ params.config.depth }}",
                        "text": "{{ params.label }}: {{ params.limit }} of {{ params.labels }}",
                        "later": "{{ inputs.x * params_like }}",
                        "doubled": "{{ inputs.x * {{ params.limit }} }}",
                        "mixed": "{{ params.label }}-{{ inputs.x }}",
                    },
                }
            ],
            "outputs": {"doubled": "{{ steps.t.output.doubled }}"},
        },
    )


async def test_values_keep_their_types_and_runtime_expressions_stay(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    template = _typed_template()
    # ``params_like`` is not a parameter reference: only ``{{ params.<name> }}`` is.
    template["definition"]["steps"][0]["with"].pop("later")
    created = await client.post("/api/v1/templates", json=template, headers=admin)
    assert created.status_code == 201, created.text
    parameters = {
        "limit": 3,
        "ratio": 0.5,
        "flag": False,
        "labels": ["a", "b"],
        "config": {"depth": 2},
    }
    made = await client.post(
        f"/api/v1/templates/{created.json()['id']}/instantiate",
        json={"parameters": parameters, "name": "my typed"},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    workflow = made.json()
    assert workflow["name"] == "my typed"
    assert made.headers["Location"] == f"/api/v1/workflows/{workflow['id']}"
    spec = workflow["steps"][0]["with"]
    assert spec["limit"] == 3
    assert spec["ratio"] == 0.5
    assert spec["flag"] is False
    assert spec["labels"] == ["a", "b"]
    assert spec["depth"] == 2
    assert spec["text"] == 'run: 3 of ["a", "b"]'
    assert spec["doubled"] == "{{ inputs.x * 3 }}"
    assert spec["mixed"] == "run-{{ inputs.x }}"

    # The workflow is an ordinary workflow of the tenant: it is listed and runs.
    got = await client.get(f"/api/v1/workflows/{workflow['id']}", headers=admin)
    assert got.status_code == 200
    execution = await start(client, admin, workflow["id"], {"x": 7}, wait=15)
    assert execution["status"] == "succeeded", execution
    assert execution["outputs"] == {"doubled": 21}


async def test_parameters_failing_the_schema_are_422_naming_the_field(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    template = await create(client, admin)
    url = f"/api/v1/templates/{template['id']}/instantiate"
    missing = await client.post(url, json={"parameters": {}}, headers=admin)
    assert missing.status_code == 422
    assert "times" in missing.json()["errors"][0]["msg"]
    wrong = await client.post(url, json={"parameters": {"times": "many"}}, headers=admin)
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["loc"] == ["parameters", "times"]
    assert "times" in wrong.json()["detail"]
    low = await client.post(url, json={"parameters": {"times": 0}}, headers=admin)
    assert low.status_code == 422
    assert low.json()["errors"][0]["loc"] == ["parameters", "times"]
    listed = await client.get(f"/api/v1/templates/{template['id']}", headers=admin)
    assert listed.json()["installs"] == 0


async def test_a_definition_the_workflows_service_refuses_is_422_with_its_errors(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    template = body()
    template["definition"]["steps"].append(
        {"id": "bad", "type": "no-such-step", "with": {}, "needs": ["greet"]}
    )
    created = await client.post("/api/v1/templates", json=template, headers=admin)
    assert created.status_code == 201
    made = await client.post(
        f"/api/v1/templates/{created.json()['id']}/instantiate",
        json={"parameters": {"times": 1}},
        headers=admin,
    )
    assert made.status_code == 422, made.text
    assert "bad" in made.text


async def test_instantiating_needs_workflow_write_in_the_callers_tenant(
    client: httpx.AsyncClient, admin: Headers, viewer: Headers, other: Headers
) -> None:
    template = await create(client, admin)
    url = f"/api/v1/templates/{template['id']}"
    await client.post(f"{url}/publish", json={"visibility": "public"}, headers=admin)
    refused = await client.post(
        f"{url}/instantiate", json={"parameters": {"times": 1}}, headers=viewer
    )
    assert refused.status_code == 403
    made = await client.post(f"{url}/instantiate", json={"parameters": {"times": 1}}, headers=other)
    assert made.status_code == 201
    workflow_id = made.json()["id"]
    assert (await client.get(f"/api/v1/workflows/{workflow_id}", headers=other)).status_code == 200
    assert (await client.get(f"/api/v1/workflows/{workflow_id}", headers=admin)).status_code == 404
