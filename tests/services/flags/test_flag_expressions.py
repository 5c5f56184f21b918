"""``{{ flags.<key> }}`` in workflows: what it yields (boolean, variant, off, missing) in
``with``, ``when``, a ``switch`` case and the outputs; one value per execution however
the flag changes meanwhile; an unreachable flags service retried under the step's
policy, then failing the step; a bad key refused with a 422 naming the step."""

from __future__ import annotations

from typing import Any

import httpx

from orchestrion.gateway.app import Gateway
from tests.fixtures.servers import free_port
from tests.services.flags.conftest import Headers
from tests.services.flags.test_api import create
from tests.services.workflows.helpers import (
    create_workflow,
    events,
    get,
    run,
    start,
    step,
    wait_until,
)

TERMINAL = ("succeeded", "failed", "cancelled")


def _flag_events(log: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for entry in log:
        if entry["type"] == "flag.evaluated":
            assert entry["data"]["key"] not in found, "a flag is recorded once per execution"
            found[entry["data"]["key"]] = entry
    return found


async def test_flags_yield_the_executions_answer_everywhere_expressions_run(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    await create(client, admin_headers, key="beta", enabled=True, rollout=100)
    await create(
        client,
        admin_headers,
        key="theme",
        enabled=True,
        rollout=100,
        variants=[{"name": "green", "weight": 1}],
    )
    await create(client, admin_headers, key="dark-mode", enabled=False, rollout=100)
    await create(client, admin_headers, key="only.outputs", enabled=True, rollout=0)
    steps = [
        {
            "id": "read",
            "type": "transform",
            "with": {
                "beta": "{{ flags.beta }}",
                "theme": "{{ flags.theme }}",
                "dark": "{{ flags['dark-mode'] }}",
                "missing": "{{ flags['nobody-made-me'] }}",
                "text": "theme {{ flags.theme }}",
            },
        },
        {"id": "gated", "type": "transform", "when": "flags.beta", "with": {"ran": True}},
        {"id": "skipped", "type": "transform", "when": "{{ flags['dark-mode'] }}", "with": {}},
        {
            "id": "route",
            "type": "switch",
            "with": {
                "cases": [{"when": "flags.theme == 'green'", "value": "new"}],
                "default": "old",
            },
        },
    ]
    execution = await run(
        client, admin_headers, steps, outputs={"outputs_flag": "{{ flags['only.outputs'] }}"}
    )
    assert execution["status"] == "succeeded", execution
    assert step(execution, "read")["output"] == {
        "beta": True,
        "theme": "green",
        "dark": False,
        "missing": None,
        "text": "theme green",
    }
    assert step(execution, "gated")["output"] == {"ran": True}
    assert step(execution, "skipped")["status"] == "skipped"
    assert step(execution, "route")["output"] == {"case": 0, "value": "new"}
    assert execution["outputs"] == {"outputs_flag": False}
    # Each flag read is in the log once, with the service's answer; nothing else was asked.
    recorded = _flag_events(await events(client, admin_headers, execution["id"]))
    assert set(recorded) == {"beta", "theme", "dark-mode", "nobody-made-me", "only.outputs"}
    assert recorded["theme"]["data"] == {
        "key": "theme",
        "value": "green",
        "enabled": True,
        "variant": "green",
    }
    assert recorded["nobody-made-me"]["data"]["value"] is None
    assert recorded["only.outputs"]["step_id"] is None


async def test_a_flag_keeps_its_first_value_for_the_whole_execution(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    await create(client, admin_headers, key="beta", enabled=True, rollout=100)
    steps = [
        {"id": "before", "type": "transform", "with": {"beta": "{{ flags.beta }}"}},
        {"id": "hold", "type": "approval", "needs": ["before"], "with": {}},
        {
            "id": "after",
            "type": "transform",
            "needs": ["hold"],
            "when": "flags.beta",
            "with": {"beta": "{{ flags.beta }}"},
        },
    ]
    workflow_id = await create_workflow(client, admin_headers, steps)
    started = await start(client, admin_headers, workflow_id)
    await wait_until(
        client, admin_headers, started["id"], lambda e: e["status"] == "waiting", seconds=60
    )
    # The kill switch, mid-execution: new executions see it, this one does not.
    killed = await client.patch(
        "/api/v1/flags/beta", json={"enabled": False}, headers=admin_headers
    )
    assert killed.status_code == 200, killed.text
    approved = await client.post(
        f"/api/v1/executions/{started['id']}/steps/hold/approve",
        json={"approved": True},
        headers=admin_headers,
    )
    assert approved.status_code in (200, 202), approved.text
    done = await wait_until(
        client, admin_headers, started["id"], lambda e: e["status"] in TERMINAL, seconds=60
    )
    assert done["status"] == "succeeded", done
    assert step(done, "before")["output"] == {"beta": True}
    assert step(done, "after")["output"] == {"beta": True}
    assert _flag_events(await events(client, admin_headers, started["id"]))["beta"]["step_id"] == (
        "before"
    )
    fresh = await run(client, admin_headers, steps[:1])
    assert step(fresh, "before")["output"] == {"beta": False}


async def test_an_unreachable_flags_service_fails_the_step_after_its_retries(
    client: httpx.AsyncClient, admin_headers: Headers, embedded: tuple[Any, Any]
) -> None:
    await create(client, admin_headers, key="beta", enabled=True, rollout=100)
    core = embedded[0]
    while not isinstance(core, Gateway):
        core = core.app
    peer_calls = core.upstreams["workflows"].app.state.runtime.peer_calls  # type: ignore[attr-defined]
    reachable = dict(peer_calls._clients)
    nowhere = httpx.AsyncClient(base_url=f"http://127.0.0.1:{free_port()}")  # nobody listens
    peer_calls.bind({**reachable, "flags": nowhere})
    steps = [
        {
            "id": "read",
            "type": "transform",
            "retry": {"max_attempts": 2, "delay": 0},
            "with": {"beta": "{{ flags.beta }}"},
        }
    ]
    try:
        failed = await run(client, admin_headers, steps)
    finally:
        peer_calls.bind(reachable)
        await nowhere.aclose()
    assert failed["status"] == "failed", failed
    error = step(failed, "read")["error"]
    assert error["message"].startswith("flags.beta could not be evaluated: flags:"), error
    assert error["details"]["retryable"] is True
    log = await events(client, admin_headers, failed["id"])
    assert [e["type"] for e in log].count("step.retry_scheduled") == 1
    assert not _flag_events(log)
    # Reachable again: a retry of the execution evaluates the flag then.
    retried = await client.post(f"/api/v1/executions/{failed['id']}/retry", headers=admin_headers)
    assert retried.status_code in (200, 202), retried.text
    done = await wait_until(
        client, admin_headers, failed["id"], lambda e: e["status"] in TERMINAL, seconds=60
    )
    assert done["status"] == "succeeded", await get(client, admin_headers, failed["id"])
    assert step(done, "read")["output"] == {"beta": True}


async def test_a_bad_flag_key_is_refused_naming_the_step(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    cases = [
        ({"id": "a", "type": "transform", "with": {"v": "{{ flags['no spaces'] }}"}}, "with"),
        ({"id": "b", "type": "transform", "when": "flags['-x']", "with": {}}, "when"),
        ({"id": "c", "type": "transform", "with": {"v": "{{ flags[inputs.key] }}"}}, "with"),
        ({"id": "d", "type": "transform", "with": {"v": "{{ flags | length }}"}}, "with"),
    ]
    for bad, field in cases:
        response = await client.post(
            "/api/v1/workflows", json={"name": "bad", "steps": [bad]}, headers=admin_headers
        )
        assert response.status_code == 422, response.text
        errors = response.json()["errors"]
        assert any(
            e["msg"].startswith(f"step {bad['id']!r}: ") and field in e["loc"] for e in errors
        ), errors
    outputs = await client.post(
        "/api/v1/workflows",
        json={
            "name": "bad",
            "steps": [{"id": "a", "type": "transform", "with": {}}],
            "outputs": {"v": "{{ flags['a b'] }}"},
        },
        headers=admin_headers,
    )
    assert outputs.status_code == 422, outputs.text
    assert "flags.'a b' is not a flag key" in outputs.text
