"""Executions through the gateway: each step type and field, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx

from tests.fixtures.definitions import DOUBLE_THEN_ADD
from tests.fixtures.lifespan import in_process
from tests.services.workflows.helpers import (
    create_workflow,
    events,
    get,
    run,
    start,
    step,
    wait_until,
)


async def test_api_example_runs_to_its_outputs(client: httpx.AsyncClient, admin_headers) -> None:
    created = await client.post("/api/v1/workflows", json=DOUBLE_THEN_ADD, headers=admin_headers)
    workflow_id = created.json()["id"]
    response = await client.post(
        f"/api/v1/workflows/{workflow_id}/executions?wait=10",
        json={"inputs": {"x": 20}},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    execution = response.json()
    assert execution["status"] == "succeeded"
    assert execution["outputs"] == {"result": 41}
    assert execution["workflow_version"] == 1
    assert step(execution, "double")["output"] == {"value": 40}
    assert set(execution["usage"]) == {"input_tokens", "output_tokens", "cost_usd"}
    log = await events(client, admin_headers, execution["id"])
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert log[0]["type"] == "execution.started"
    assert log[-1]["type"] == "execution.succeeded"
    later = await events(client, admin_headers, execution["id"], after=log[-2]["seq"])
    assert [e["seq"] for e in later] == [log[-1]["seq"]]


async def test_inputs_are_checked_and_unknown_workflows_are_404(client, admin_headers) -> None:
    created = await client.post("/api/v1/workflows", json=DOUBLE_THEN_ADD, headers=admin_headers)
    url = f"/api/v1/workflows/{created.json()['id']}/executions"
    bad = await client.post(url, json={"inputs": {"x": "twenty"}}, headers=admin_headers)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["inputs", "x"]
    missing = await client.post(url, json={"inputs": {}}, headers=admin_headers)
    assert missing.status_code == 422
    extra = await client.post(url, json={"inputs": {"x": 1}, "colour": 1}, headers=admin_headers)
    assert extra.status_code == 422
    bad_wait = await client.post(
        url + "?wait=soon", json={"inputs": {"x": 1}}, headers=admin_headers
    )
    assert bad_wait.status_code == 400
    nowhere = await client.post(
        "/api/v1/workflows/nope/executions", json={"inputs": {}}, headers=admin_headers
    )
    assert nowhere.status_code == 404


async def test_start_without_wait_is_202_and_finishes(client, admin_headers) -> None:
    created = await client.post("/api/v1/workflows", json=DOUBLE_THEN_ADD, headers=admin_headers)
    response = await client.post(
        f"/api/v1/workflows/{created.json()['id']}/executions",
        json={"inputs": {"x": 1}},
        headers={**admin_headers, "Idempotency-Key": "run-1"},
    )
    assert response.status_code in (200, 202)
    assert response.headers["location"] == f"/api/v1/executions/{response.json()['id']}"
    again = await client.post(
        f"/api/v1/workflows/{created.json()['id']}/executions",
        json={"inputs": {"x": 1}},
        headers={**admin_headers, "Idempotency-Key": "run-1"},
    )
    assert again.json()["id"] == response.json()["id"]
    done = await wait_until(
        client, admin_headers, response.json()["id"], lambda e: e["status"] == "succeeded"
    )
    assert done["outputs"] == {"result": 3}
    listed = await client.get(
        "/api/v1/executions",
        params={"workflow_id": created.json()["id"], "status": "succeeded"},
        headers=admin_headers,
    )
    assert [e["id"] for e in listed.json()["data"]] == [response.json()["id"]]


async def test_when_false_skips_and_dependents_still_run(client, admin_headers) -> None:
    execution = await run(
        client,
        admin_headers,
        [
            {"id": "maybe", "type": "transform", "when": "inputs.go", "with": {"v": 1}},
            {
                "id": "after",
                "type": "transform",
                "needs": ["maybe"],
                "with": {"seen": "{{ steps.maybe.status }}"},
            },
        ],
        {"go": False},
    )
    assert execution["status"] == "succeeded"
    assert step(execution, "maybe")["status"] == "skipped"
    assert step(execution, "after")["output"] == {"seen": "skipped"}


async def test_for_each_keeps_order_and_concurrency(client, admin_headers, upstream) -> None:
    execution = await run(
        client,
        admin_headers,
        [
            {
                "id": "each",
                "type": "http",
                "for_each": "inputs.items",
                "concurrency": 2,
                "with": {"url": upstream.url + "/slow/fe-{{ execution.id }}?seconds=0.15"},
            },
            {
                "id": "square",
                "type": "transform",
                "for_each": "inputs.items",
                "with": {"v": "{{ item * item }}", "i": "{{ index }}"},
            },
        ],
        {"items": [1, 2, 3, 4, 5]},
    )
    assert execution["status"] == "succeeded", execution["error"]
    assert step(execution, "square")["output"] == [
        {"v": n * n, "i": i} for i, n in enumerate([1, 2, 3, 4, 5])
    ]
    assert len(step(execution, "each")["output"]) == 5
    assert upstream.state.peak[f"fe-{execution['id']}"] == 2


async def test_switch_and_loop(client, admin_headers) -> None:
    execution = await run(
        client,
        admin_headers,
        [
            {
                "id": "route",
                "type": "switch",
                "with": {
                    "cases": [
                        {"when": "inputs.n < 0", "value": "negative"},
                        {"when": "inputs.n < 10", "value": "small"},
                    ],
                    "default": "large",
                },
            },
            {
                "id": "count",
                "type": "loop",
                "with": {
                    "max_iterations": 10,
                    "until": "loop.output.v >= 4",
                    "body": {"type": "transform", "with": {"v": "{{ loop.index + 1 }}"}},
                },
            },
        ],
        {"n": 5},
    )
    assert step(execution, "route")["output"] == {"case": 1, "value": "small"}
    assert step(execution, "count")["output"]["iterations"] == 4
    assert step(execution, "count")["output"]["output"] == {"v": 4}


async def test_fail_step_fails_the_execution_naming_the_step(client, admin_headers) -> None:
    execution = await run(
        client,
        admin_headers,
        [
            {"id": "ok", "type": "transform", "with": {}},
            {
                "id": "boom",
                "type": "fail",
                "needs": ["ok"],
                "with": {"message": "no {{ inputs.why }}"},
            },
            {"id": "never", "type": "transform", "needs": ["boom"], "with": {}},
        ],
        {"why": "luck"},
    )
    assert execution["status"] == "failed"
    assert execution["error"]["step_id"] == "boom"
    assert execution["error"]["message"] == "no luck"
    assert step(execution, "never")["status"] == "cancelled"


async def test_http_retries_with_backoff_then_succeeds(client, admin_headers, upstream) -> None:
    workflow_id = await create_workflow(
        client,
        admin_headers,
        [
            {
                "id": "call",
                "type": "http",
                "with": {"url": upstream.url + "/flaky/{{ execution.id }}?fail=2"},
                "retry": {"max_attempts": 3, "backoff": "exponential", "delay": 0.05},
            }
        ],
    )
    execution = await start(client, admin_headers, workflow_id, wait=15)
    assert execution["status"] == "succeeded", execution["error"]
    call = step(execution, "call")
    assert call["attempts"] == 3
    assert call["output"]["body"] == {"ok": True, "call": 3}
    log = await events(client, admin_headers, execution["id"])
    retries = [e for e in log if e["type"] == "step.retry_scheduled"]
    assert [e["data"]["retry_in"] for e in retries] == [0.05, 0.1]
    keys = [h["idempotency-key"] for h in upstream.state.headers[execution["id"]]]
    assert keys == [f"{execution['id']}:call:{n}" for n in (1, 2, 3)]


async def test_http_client_errors_are_not_retried(client, admin_headers, upstream) -> None:
    execution = await run(
        client,
        admin_headers,
        [
            {
                "id": "call",
                "type": "http",
                "with": {"url": upstream.url + "/status/404"},
                "retry": {"max_attempts": 5, "delay": 0.01},
            }
        ],
    )
    assert execution["status"] == "failed"
    assert step(execution, "call")["attempts"] == 1
    assert "404" in execution["error"]["message"]


async def test_http_refuses_private_addresses_unless_allowed(
    tmp_path, database_url, upstream
) -> None:
    from orchestrion.platform import create_embedded_app
    from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_settings

    settings = make_settings(tmp_path, database_url, engine={"http_allowlist": []})
    app = create_embedded_app(settings)
    async with in_process(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            tokens = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            execution = await run(
                http,
                headers,
                [{"id": "call", "type": "http", "with": {"url": upstream.url + "/status/200"}}],
            )
    assert execution["status"] == "failed"
    assert "not a public address" in execution["error"]["message"]
    assert step(execution, "call")["attempts"] == 1


async def test_step_timeout(client, admin_headers, upstream) -> None:
    execution = await run(
        client,
        admin_headers,
        [
            {
                "id": "slow",
                "type": "http",
                "timeout": 0.2,
                "with": {"url": upstream.url + "/slow/t-{{ execution.id }}?seconds=3"},
            }
        ],
    )
    assert execution["status"] == "failed"
    assert "timed out" in execution["error"]["message"]


async def test_cancel_while_a_step_runs(client, admin_headers, upstream) -> None:
    workflow_id = await create_workflow(
        client,
        admin_headers,
        [
            {
                "id": "slow",
                "type": "http",
                "with": {"url": upstream.url + "/slow/c-{{ execution.id }}?seconds=10"},
            },
            {"id": "next", "type": "transform", "needs": ["slow"], "with": {}},
        ],
    )
    execution = await start(client, admin_headers, workflow_id)
    await wait_until(
        client, admin_headers, execution["id"], lambda e: step(e, "slow")["status"] == "running"
    )
    cancelled = await client.post(
        f"/api/v1/executions/{execution['id']}/cancel", headers=admin_headers
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert step(cancelled.json(), "slow")["status"] == "cancelled"
    assert step(cancelled.json(), "next")["status"] == "cancelled"
    again = await client.post(f"/api/v1/executions/{execution['id']}/cancel", headers=admin_headers)
    assert again.status_code == 409
    log = await events(client, admin_headers, execution["id"])
    assert log[-1]["type"] == "execution.cancelled"


async def test_approval_with_typed_data(client, admin_headers) -> None:
    workflow_id = await create_workflow(
        client,
        admin_headers,
        [
            {
                "id": "ok",
                "type": "approval",
                "with": {
                    "schema": {
                        "type": "object",
                        "properties": {"amount": {"type": "number"}},
                        "required": ["amount"],
                    }
                },
            },
            {
                "id": "use",
                "type": "transform",
                "needs": ["ok"],
                "with": {"a": "{{ steps.ok.output.data.amount }}"},
            },
        ],
    )
    execution = await start(client, admin_headers, workflow_id)
    waiting = await wait_until(
        client, admin_headers, execution["id"], lambda e: e["status"] == "waiting"
    )
    assert step(waiting, "ok")["status"] == "waiting"
    url = f"/api/v1/executions/{execution['id']}/steps/ok/approve"
    invalid = await client.post(
        url, json={"approved": True, "data": {"amount": "lots"}}, headers=admin_headers
    )
    assert invalid.status_code == 422
    approved = await client.post(
        url, json={"approved": True, "data": {"amount": 12.5}}, headers=admin_headers
    )
    assert approved.status_code == 200, approved.text
    done = await wait_until(
        client, admin_headers, execution["id"], lambda e: e["status"] == "succeeded"
    )
    assert step(done, "ok")["output"] == {
        "approved": True,
        "data": {"amount": 12.5},
        "by": "admin@example.com",
    }
    assert step(done, "use")["output"] == {"a": 12.5}
    twice = await client.post(
        url, json={"approved": True, "data": {"amount": 1}}, headers=admin_headers
    )
    assert twice.status_code == 409


async def test_rejection_fails_the_step(client, admin_headers) -> None:
    workflow_id = await create_workflow(
        client, admin_headers, [{"id": "ok", "type": "approval", "with": {}}]
    )
    execution = await start(client, admin_headers, workflow_id)
    await wait_until(client, admin_headers, execution["id"], lambda e: e["status"] == "waiting")
    rejected = await client.post(
        f"/api/v1/executions/{execution['id']}/steps/ok/approve",
        json={"approved": False},
        headers=admin_headers,
    )
    assert rejected.status_code == 200
    done = await wait_until(
        client, admin_headers, execution["id"], lambda e: e["status"] == "failed"
    )
    assert "rejected" in done["error"]["message"]


async def test_approval_inside_for_each_and_parallel_branches(client, admin_headers) -> None:
    workflow_id = await create_workflow(
        client,
        admin_headers,
        [
            {"id": "each", "type": "approval", "for_each": "inputs.people", "with": {}},
            {"id": "side", "type": "approval", "with": {}},
            {
                "id": "join",
                "type": "transform",
                "needs": ["each", "side"],
                "with": {"n": "{{ steps.each.output | length }}"},
            },
        ],
    )
    execution = await start(client, admin_headers, workflow_id, {"people": ["a", "b", "c"]})
    await wait_until(client, admin_headers, execution["id"], lambda e: e["status"] == "waiting")
    base = f"/api/v1/executions/{execution['id']}/steps"
    for index in (2, 0, 1):
        decided = await client.post(
            f"{base}/each/approve",
            json={"approved": True, "index": index, "data": {"i": index}},
            headers=admin_headers,
        )
        assert decided.status_code == 200, decided.text
    assert (await get(client, admin_headers, execution["id"]))["status"] == "waiting"
    await client.post(f"{base}/side/approve", json={"approved": True}, headers=admin_headers)
    done = await wait_until(
        client, admin_headers, execution["id"], lambda e: e["status"] == "succeeded"
    )
    assert [o["data"] for o in step(done, "each")["output"]] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert step(done, "join")["output"] == {"n": 3}


async def test_compensation_runs_in_reverse_order_of_completion(
    client, admin_headers, upstream
) -> None:
    def undo(name: str) -> dict[str, object]:
        return {
            "type": "http",
            "with": {
                "method": "POST",
                "url": upstream.url + "/record/{{ execution.id }}",
                "json": {"undo": name},
            },
        }

    execution = await run(
        client,
        admin_headers,
        [
            {"id": "a", "type": "transform", "with": {}, "compensate": undo("a")},
            {"id": "b", "type": "transform", "needs": ["a"], "with": {}, "compensate": undo("b")},
            {"id": "c", "type": "transform", "needs": ["b"], "with": {}, "compensate": undo("c")},
            {"id": "boom", "type": "fail", "needs": ["c"], "with": {"message": "no"}},
        ],
    )
    assert execution["status"] == "failed"
    assert upstream.state.records[execution["id"]] == [{"undo": "c"}, {"undo": "b"}, {"undo": "a"}]
    types = [e["type"] for e in await events(client, admin_headers, execution["id"])]
    assert types.count("step.compensated") == 3
    assert types[-1] == "execution.failed"


async def test_retry_reuses_completed_steps(client, admin_headers, upstream) -> None:
    workflow_id = await create_workflow(
        client,
        admin_headers,
        [
            {
                "id": "paid",
                "type": "http",
                "with": {"url": upstream.url + "/flaky/paid-{{ execution.id }}"},
            },
            {
                "id": "shaky",
                "type": "http",
                "needs": ["paid"],
                "with": {"url": upstream.url + "/flaky/shaky-{{ execution.id }}?fail=1&status=500"},
            },
        ],
        outputs={"calls": "{{ steps.shaky.output.body.call }}"},
    )
    execution = await start(client, admin_headers, workflow_id, wait=15)
    assert execution["status"] == "failed"
    retried = await client.post(
        f"/api/v1/executions/{execution['id']}/retry", headers=admin_headers
    )
    assert retried.status_code == 200, retried.text
    done = await wait_until(
        client, admin_headers, execution["id"], lambda e: e["status"] == "succeeded"
    )
    assert done["outputs"] == {"calls": 2}
    assert upstream.state.calls[f"paid-{execution['id']}"] == 1  # never called again
    conflict = await client.post(
        f"/api/v1/executions/{execution['id']}/retry", headers=admin_headers
    )
    assert conflict.status_code == 409


async def test_sub_workflow_outputs(client, admin_headers) -> None:
    child = await create_workflow(
        client,
        admin_headers,
        [{"id": "t", "type": "transform", "with": {"v": "{{ inputs.n + 1 }}"}}],
        name="child",
        outputs={"v": "{{ steps.t.output.v }}"},
    )
    execution = await run(
        client,
        admin_headers,
        [
            {
                "id": "call",
                "type": "sub_workflow",
                "with": {"workflow_id": child, "inputs": {"n": "{{ inputs.n }}"}},
            }
        ],
        {"n": 41},
        outputs={"answer": "{{ steps.call.output.v }}"},
    )
    assert execution["status"] == "succeeded", execution["error"]
    assert execution["outputs"] == {"answer": 42}
    children = await client.get(
        "/api/v1/executions", params={"parent_execution_id": execution["id"]}, headers=admin_headers
    )
    assert [c["workflow_id"] for c in children.json()["data"]] == [child]


async def test_wait_for_event_and_signal(client, admin_headers) -> None:
    workflow_id = await create_workflow(
        client,
        admin_headers,
        [{"id": "hear", "type": "wait_for_event", "with": {"event": "paid"}}],
        outputs={"got": "{{ steps.hear.output.data }}"},
    )
    execution = await start(client, admin_headers, workflow_id)
    await wait_until(client, admin_headers, execution["id"], lambda e: e["status"] == "waiting")
    signal = await client.post(
        f"/api/v1/executions/{execution['id']}/signal",
        json={"event": "paid", "data": {"amount": 3}},
        headers=admin_headers,
    )
    assert signal.json() == {"delivered": True, "event": "paid"}
    done = await wait_until(
        client, admin_headers, execution["id"], lambda e: e["status"] == "succeeded"
    )
    assert done["outputs"] == {"got": {"amount": 3}}


async def test_pause_and_resume(client, admin_headers) -> None:
    workflow_id = await create_workflow(
        client,
        admin_headers,
        [
            {"id": "hold", "type": "approval", "with": {}},
            {"id": "after", "type": "transform", "needs": ["hold"], "with": {"v": 1}},
        ],
    )
    execution = await start(client, admin_headers, workflow_id)
    await wait_until(client, admin_headers, execution["id"], lambda e: e["status"] == "waiting")
    paused = await client.post(f"/api/v1/executions/{execution['id']}/pause", headers=admin_headers)
    assert paused.json()["status"] == "paused"
    await client.post(
        f"/api/v1/executions/{execution['id']}/steps/hold/approve",
        json={"approved": True},
        headers=admin_headers,
    )
    still = await get(client, admin_headers, execution["id"])
    assert still["status"] == "paused"
    assert step(still, "after")["status"] == "pending"
    resumed = await client.post(
        f"/api/v1/executions/{execution['id']}/resume", headers=admin_headers
    )
    assert resumed.status_code == 200
    done = await wait_until(
        client, admin_headers, execution["id"], lambda e: e["status"] == "succeeded"
    )
    assert step(done, "after")["output"] == {"v": 1}


async def test_time_travel_and_sse_stream(client, admin_headers) -> None:
    created = await client.post("/api/v1/workflows", json=DOUBLE_THEN_ADD, headers=admin_headers)
    execution = await start(client, admin_headers, created.json()["id"], {"x": 2}, wait=10)
    log = await events(client, admin_headers, execution["id"])
    first_success = next(e["seq"] for e in log if e["type"] == "step.succeeded")
    response = await client.get(
        f"/api/v1/executions/{execution['id']}/events",
        params={"until": first_success},
        headers=admin_headers,
    )
    state = response.json()["state"]
    assert state["steps"]["double"] == {
        "status": "succeeded",
        "attempts": 1,
        "output": {"value": 4},
        "error": None,
    }
    assert state["steps"]["add"]["status"] == "pending"
    assert state["status"] == "running"
    final = (
        await client.get(
            f"/api/v1/executions/{execution['id']}/events",
            params={"until": log[-1]["seq"]},
            headers=admin_headers,
        )
    ).json()["state"]
    assert final["status"] == "succeeded"
    assert final["outputs"] == {"result": 5}

    stream = await client.get(
        f"/api/v1/executions/{execution['id']}/stream",
        headers={**admin_headers, "Last-Event-ID": str(log[1]["seq"])},
    )
    assert stream.headers["content-type"].startswith("text/event-stream")
    ids = [int(line[4:]) for line in stream.text.splitlines() if line.startswith("id: ")]
    assert ids == [e["seq"] for e in log[2:]]


async def test_other_tenants_executions_are_404(client, admin_headers) -> None:
    from tests.conftest import user_headers

    created = await client.post("/api/v1/workflows", json=DOUBLE_THEN_ADD, headers=admin_headers)
    execution = await start(client, admin_headers, created.json()["id"], {"x": 1}, wait=10)
    tenant = await client.post(
        "/api/v1/auth/tenants", json={"name": "other"}, headers=admin_headers
    )
    outsider = await user_headers(
        client, admin_headers, email="o@other.test", roles=["admin"], tenant_id=tenant.json()["id"]
    )
    for path in ("", "/events", "/stream"):
        response = await client.get(f"/api/v1/executions/{execution['id']}{path}", headers=outsider)
        assert response.status_code == 404, path
    cancel = await client.post(f"/api/v1/executions/{execution['id']}/cancel", headers=outsider)
    assert cancel.status_code == 404
    viewer = await user_headers(client, admin_headers, email="v@example.com", roles=["viewer"])
    assert (
        await client.get(f"/api/v1/executions/{execution['id']}", headers=viewer)
    ).status_code == 200
    refused = await client.post(
        f"/api/v1/workflows/{created.json()['id']}/executions",
        json={"inputs": {"x": 1}},
        headers=viewer,
    )
    assert refused.status_code == 403


async def test_concurrency_limit_per_key_with_priorities(client, admin_headers) -> None:
    workflow_id = await create_workflow(
        client,
        admin_headers,
        [{"id": "hold", "type": "approval", "with": {}}],
        concurrency={"limit": 1, "key": "inputs.customer"},
    )
    url = f"/api/v1/workflows/{workflow_id}/executions"

    async def begin(customer: str, priority: int = 0) -> str:
        response = await client.post(
            url,
            json={"inputs": {"customer": customer}, "priority": priority},
            headers=admin_headers,
        )
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    first = await begin("acme")
    await wait_until(client, admin_headers, first, lambda e: e["status"] == "waiting")
    low = await begin("acme")
    high = await begin("acme", priority=5)
    other = await begin("globex")
    await wait_until(client, admin_headers, other, lambda e: e["status"] == "waiting")
    assert (await get(client, admin_headers, low))["status"] == "pending"
    assert (await get(client, admin_headers, high))["status"] == "pending"
    queued = await events(client, admin_headers, low)
    assert [e["type"] for e in queued] == ["execution.queued"]

    async def approve(execution_id: str) -> None:
        response = await client.post(
            f"/api/v1/executions/{execution_id}/steps/hold/approve",
            json={"approved": True},
            headers=admin_headers,
        )
        assert response.status_code == 200, response.text

    await approve(first)
    await wait_until(client, admin_headers, high, lambda e: e["status"] == "waiting")
    assert (await get(client, admin_headers, low))["status"] == "pending"
    cancelled = await client.post(f"/api/v1/executions/{high}/cancel", headers=admin_headers)
    assert cancelled.status_code == 200
    await wait_until(client, admin_headers, low, lambda e: e["status"] == "waiting")
    await approve(low)
    await wait_until(client, admin_headers, low, lambda e: e["status"] == "succeeded")
    workflow = await client.get(f"/api/v1/workflows/{workflow_id}", headers=admin_headers)
    assert workflow.json()["concurrency"] == {"limit": 1, "key": "inputs.customer"}


async def test_event_bounds_past_the_end_are_empty_not_errors(client, admin_headers) -> None:
    created = await client.post("/api/v1/workflows", json=DOUBLE_THEN_ADD, headers=admin_headers)
    execution = await start(client, admin_headers, created.json()["id"], {"x": 1}, wait=10)
    huge = 2**53 - 1  # what JavaScript clients send for "everything"
    after = await events(client, admin_headers, execution["id"], after=huge)
    assert after == []
    until = await events(client, admin_headers, execution["id"], until=huge)
    assert until[-1]["type"] == "execution.succeeded"
