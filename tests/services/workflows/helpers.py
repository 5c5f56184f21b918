"""Helpers for execution tests: create a workflow, run it, wait for it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "cancelled"}


async def create_workflow(
    client: httpx.AsyncClient, headers: dict[str, str], steps: list[dict[str, Any]], **extra: Any
) -> str:
    """A workflow with ``steps``; its id."""
    body = {"name": extra.pop("name", "test"), "steps": steps, **extra}
    response = await client.post("/api/v1/workflows", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def start(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    workflow_id: str,
    inputs: dict[str, Any] | None = None,
    *,
    wait: float | None = None,
) -> dict[str, Any]:
    """Start an execution (waiting up to ``wait`` seconds); its body."""
    url = f"/api/v1/workflows/{workflow_id}/executions"
    if wait is not None:
        url += f"?wait={wait}"
    response = await client.post(url, json={"inputs": inputs or {}}, headers=headers)
    assert response.status_code in (200, 202), response.text
    body: dict[str, Any] = response.json()
    return body


async def run(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    steps: list[dict[str, Any]],
    inputs: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Create a workflow, run it and wait for the end (at most 60 s: the suite runs in
    parallel on a loaded machine; a run that ends sooner answers sooner)."""
    workflow_id = await create_workflow(client, headers, steps, **extra)
    started = await start(client, headers, workflow_id, inputs, wait=60)
    assert started["status"] in TERMINAL, started
    return started


async def get(
    client: httpx.AsyncClient, headers: dict[str, str], execution_id: str
) -> dict[str, Any]:
    """The execution now."""
    response = await client.get(f"/api/v1/executions/{execution_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_until(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    execution_id: str,
    predicate: Any,
    *,
    seconds: float = 15.0,
) -> dict[str, Any]:
    """Poll the execution until ``predicate(execution)`` holds (fails after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        execution = await get(client, headers, execution_id)
        if predicate(execution):
            return execution
        assert time.monotonic() < deadline, f"condition not reached: {execution}"
        await asyncio.sleep(0.05)


def step(execution: dict[str, Any], step_id: str) -> dict[str, Any]:
    """One step of an execution body."""
    found: dict[str, Any] = next(s for s in execution["steps"] if s["id"] == step_id)
    return found


async def events(
    client: httpx.AsyncClient, headers: dict[str, str], execution_id: str, **params: Any
) -> list[dict[str, Any]]:
    """The execution's log."""
    response = await client.get(
        f"/api/v1/executions/{execution_id}/events", params=params, headers=headers
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data
