"""A workflow budget under parallel ``llm`` steps run by two worker processes.

Each call reserves its estimated cost in the database before it starts (the budgets'
rows locked while it is counted), settles it with the real cost after, and releases it
on failure, so steps running at once see each other's calls. Before, each step checked
only the ledger, written when a step ends: four parallel steps under a budget worth 2.5
calls all called the model (issue 21).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.fixtures.llm import LlmServer, llm_server
from tests.replicas.conftest import Replicas, sign_in

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

__all__ = ["llm_server"]
#: 1 USD per output token, input free: a call with max_tokens 10 is estimated at 10 USD.
PRICING = {"m": {"input": 0.0, "output": 1_000_000.0}}
ESTIMATE = 10.0


@pytest.mark.postgres
async def test_parallel_steps_on_two_workers_stay_within_a_budget(
    replicas: Replicas, llm_server: LlmServer
) -> None:
    key = uuid.uuid4().hex
    # Each answer costs exactly its estimate and takes a while, so the steps overlap.
    answer = {"chunks": ["a", "b", "c"], "delay": 0.4, "output_tokens": 10}
    llm_server.state.script(key, *[answer] * 4)
    replicas.settings.update(
        ORCHESTRION_LLM__PROVIDERS=json.dumps(
            {"oa": {"kind": "openai", "base_url": llm_server.openai(key)}}
        ),
        ORCHESTRION_LLM__PRICING=json.dumps(PRICING),
    )
    auth = await replicas.serve("auth", "auth")
    workflows = await replicas.serve("workflows", "workflows")
    replicas.worker("worker-1")
    replicas.worker("worker-2")
    gateway = await replicas.gateway(
        "gateway", f"--upstream=auth={auth}", f"--upstream=workflows={workflows}"
    )
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as http:
        await sign_in(http)
        steps = [
            {"id": name, "type": "llm", "with": {"model": "m", "prompt": "Hi", "max_tokens": 10}}
            for name in ("a", "b", "c", "d")
        ]
        workflow = await http.post("/api/v1/workflows", json={"name": "four", "steps": steps})
        assert workflow.status_code == 201, workflow.text
        workflow_id = workflow.json()["id"]
        budget = await http.post(
            "/api/v1/budgets",
            json={"scope": "workflow", "workflow_id": workflow_id, "limit_usd": 2.5 * ESTIMATE},
        )
        assert budget.status_code == 201, budget.text
        started = await http.post(f"/api/v1/workflows/{workflow_id}/executions", json={})
        assert started.status_code in (201, 202), started.text
        done = await wait_until_done(http, started.json()["id"])
        usage = await http.get("/api/v1/usage", params={"group_by": "workflow"})
    # Two calls fit, a third only if an estimate was short (here they are exact).
    assert llm_server.state.calls[key] <= 3, done
    assert done["status"] == "failed", done
    assert "budget" in json.dumps(done["error"]), done
    assert usage.status_code == 200, usage.text
    assert usage.json()["total"]["cost_usd"] <= 3 * ESTIMATE, usage.text


async def wait_until_done(http: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    """The execution once it has ended (the test's timeout bounds the wait)."""
    while True:
        response = await http.get(f"/api/v1/executions/{execution_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.2)
