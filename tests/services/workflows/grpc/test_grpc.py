"""The internal gRPC API, called as a client that learned it by reflection would."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import grpc
import pytest

from tests.services.workflows.grpc.conftest import Platform
from tests.services.workflows.grpc.reflected import SERVICE, bearer

TWO_STEPS = [
    {"id": "double", "type": "transform", "with": {"v": "{{ inputs.x * 2 }}"}},
    {
        "id": "add",
        "type": "transform",
        "needs": ["double"],
        "with": {"v": "{{ steps.double.output.v + 1 }}"},
    },
]
TYPED_INPUTS = {
    "type": "object",
    "properties": {"x": {"type": "integer"}},
    "required": ["x"],
}
APPROVAL = [{"id": "ok", "type": "approval", "with": {}}]


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _as_rest(event: dict[str, Any]) -> dict[str, Any]:
    """A streamed event in the shape of ``GET .../events``' entries."""
    return {
        "seq": int(event["seq"]),  # int64 is a string in proto3 JSON
        "type": event["type"],
        "step_id": event.get("step_id") or None,
        "data": event.get("data", {}),
        "at": _when(event["at"]),
    }


async def _rest_events(platform: Platform, execution_id: str) -> list[dict[str, Any]]:
    response = await platform.http.get(
        f"/api/v1/executions/{execution_id}/events?limit=1000", headers=platform.admin
    )
    assert response.status_code == 200, response.text
    return [{**e, "at": _when(e["at"])} for e in response.json()["data"]]


async def _code(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value.code()


async def test_reflection_lists_the_service_health_and_reflection(platform: Platform) -> None:
    assert set(platform.grpc.reflected.services) == {
        SERVICE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert set(platform.grpc.reflected.methods) == {"ExecuteWorkflow", "GetWorkflowStatus"}
    assert await platform.grpc.health() == 1  # SERVING
    assert await platform.grpc.health(SERVICE) == 1


async def test_execute_streams_exactly_the_rest_event_log(any_platform: Platform) -> None:
    platform = any_platform
    workflow_id = await platform.workflow(
        TWO_STEPS, inputs=TYPED_INPUTS, outputs={"result": "{{ steps.add.output.v }}"}
    )
    streamed = await platform.grpc.collect(
        "ExecuteWorkflow",
        # 3 travels as the double 3.0 and arrives as the integer the schema asks for.
        {"workflow_id": workflow_id, "inputs": {"x": 3}},
        platform.admin_metadata,
    )
    execution_ids = {event["execution_id"] for event in streamed}
    assert len(execution_ids) == 1
    (execution_id,) = execution_ids
    assert streamed[0]["seq"] == "1"
    assert streamed[-1]["type"] == "execution.succeeded"
    assert [_as_rest(e) for e in streamed] == await _rest_events(platform, execution_id)

    status = await platform.grpc.unary(
        "GetWorkflowStatus", {"execution_id": execution_id}, platform.admin_metadata
    )
    assert status == {
        "execution_id": execution_id,
        "status": "succeeded",
        "outputs": {"result": 7.0},
    }


async def test_status_of_a_failed_execution_carries_the_error(platform: Platform) -> None:
    workflow_id = await platform.workflow(
        [{"id": "boom", "type": "transform", "with": {"v": "{{ 1 / 0 }}"}}]
    )
    streamed = await platform.grpc.collect(
        "ExecuteWorkflow", {"workflow_id": workflow_id}, platform.admin_metadata
    )
    assert streamed[-1]["type"] == "execution.failed"
    status = await platform.grpc.unary(
        "GetWorkflowStatus", {"execution_id": streamed[0]["execution_id"]}, platform.admin_metadata
    )
    assert status["status"] == "failed"
    assert status["error"]
    assert "outputs" not in status


async def test_bad_requests_are_invalid_argument_or_not_found(platform: Platform) -> None:
    grpc_client, metadata = platform.grpc, platform.admin_metadata
    workflow_id = await platform.workflow(TWO_STEPS, inputs=TYPED_INPUTS)
    invalid = [
        {"workflow_id": ""},
        {"workflow_id": workflow_id, "inputs": {"x": "three"}},
        {"workflow_id": workflow_id, "inputs": {"x": 1.5}},
        {"workflow_id": workflow_id, "inputs": {"x": 1}, "idempotency_key": "k" * 256},
    ]
    for body in invalid:
        call = grpc_client.collect("ExecuteWorkflow", body, metadata)
        assert await _code(call) == grpc.StatusCode.INVALID_ARGUMENT, body
    missing = grpc_client.collect("ExecuteWorkflow", {"workflow_id": "nope"}, metadata)
    assert await _code(missing) == grpc.StatusCode.NOT_FOUND
    no_id = grpc_client.unary("GetWorkflowStatus", {"execution_id": ""}, metadata)
    assert await _code(no_id) == grpc.StatusCode.INVALID_ARGUMENT
    unknown = grpc_client.unary("GetWorkflowStatus", {"execution_id": "nope"}, metadata)
    assert await _code(unknown) == grpc.StatusCode.NOT_FOUND


async def test_an_archived_workflow_is_a_failed_precondition(platform: Platform) -> None:
    workflow_id = await platform.workflow(TWO_STEPS)
    archived = await platform.http.patch(
        f"/api/v1/workflows/{workflow_id}", json={"status": "archived"}, headers=platform.admin
    )
    assert archived.status_code == 200, archived.text
    call = platform.grpc.collect(
        "ExecuteWorkflow", {"workflow_id": workflow_id, "inputs": {"x": 1}}, platform.admin_metadata
    )
    assert await _code(call) == grpc.StatusCode.FAILED_PRECONDITION


async def test_an_idempotency_key_streams_the_first_execution_again(platform: Platform) -> None:
    workflow_id = await platform.workflow(TWO_STEPS)
    body = {"workflow_id": workflow_id, "inputs": {"x": 2}, "idempotency_key": "once"}
    first = await platform.grpc.collect("ExecuteWorkflow", body, platform.admin_metadata)
    again = await platform.grpc.collect("ExecuteWorkflow", body, platform.admin_metadata)
    assert again == first
    # The REST API shares the key: the same start there is the same execution.
    rest = await platform.http.post(
        f"/api/v1/workflows/{workflow_id}/executions",
        json={"inputs": {"x": 2}},
        headers={**platform.admin, "Idempotency-Key": "once"},
    )
    assert rest.json()["id"] == first[0]["execution_id"]
    other = {**body, "inputs": {"x": 5}}
    call = platform.grpc.collect("ExecuteWorkflow", other, platform.admin_metadata)
    assert await _code(call) == grpc.StatusCode.INVALID_ARGUMENT


async def test_calls_without_valid_credentials_are_unauthenticated(platform: Platform) -> None:
    workflow_id = await platform.workflow(TWO_STEPS)
    body = {"workflow_id": workflow_id, "inputs": {"x": 1}}
    for metadata in (
        (),
        (("authorization", "Basic YWRtaW46YWRtaW4="),),
        (("authorization", "Bearer"),),
        bearer("not-a-token"),
        bearer("orn_not-a-key"),
    ):
        call = platform.grpc.collect("ExecuteWorkflow", body, metadata)
        assert await _code(call) == grpc.StatusCode.UNAUTHENTICATED, metadata
        status = platform.grpc.unary("GetWorkflowStatus", {"execution_id": "x"}, metadata)
        assert await _code(status) == grpc.StatusCode.UNAUTHENTICATED, metadata


async def test_api_keys_work_within_their_scopes(platform: Platform) -> None:
    workflow_id = await platform.workflow(TWO_STEPS)
    keys = {}
    for name, scopes in (
        ("runner", ["executions:run", "executions:read"]),
        ("reader", ["executions:read"]),
    ):
        created = await platform.http.post(
            "/api/v1/auth/api-keys", json={"name": name, "scopes": scopes}, headers=platform.admin
        )
        assert created.status_code == 201, created.text
        keys[name] = created.json()["key"]
    body = {"workflow_id": workflow_id, "inputs": {"x": 1}}
    streamed = await platform.grpc.collect("ExecuteWorkflow", body, bearer(keys["runner"]))
    assert streamed[-1]["type"] == "execution.succeeded"
    denied = platform.grpc.collect("ExecuteWorkflow", body, bearer(keys["reader"]))
    assert await _code(denied) == grpc.StatusCode.PERMISSION_DENIED
    status = await platform.grpc.unary(
        "GetWorkflowStatus", {"execution_id": streamed[0]["execution_id"]}, bearer(keys["reader"])
    )
    assert status["status"] == "succeeded"


async def test_a_viewer_reads_but_may_not_execute(platform: Platform) -> None:
    workflow_id = await platform.workflow(TWO_STEPS)
    viewer = bearer(await platform.user_token("viewer@example.com", ["viewer"]))
    body = {"workflow_id": workflow_id, "inputs": {"x": 1}}
    call = platform.grpc.collect("ExecuteWorkflow", body, viewer)
    assert await _code(call) == grpc.StatusCode.PERMISSION_DENIED
    streamed = await platform.grpc.collect("ExecuteWorkflow", body, platform.admin_metadata)
    status = await platform.grpc.unary(
        "GetWorkflowStatus", {"execution_id": streamed[0]["execution_id"]}, viewer
    )
    assert status["status"] == "succeeded"


async def test_another_tenants_workflows_and_executions_are_not_found(platform: Platform) -> None:
    workflow_id = await platform.workflow(TWO_STEPS)
    body = {"workflow_id": workflow_id, "inputs": {"x": 1}}
    streamed = await platform.grpc.collect("ExecuteWorkflow", body, platform.admin_metadata)
    tenant = await platform.http.post(
        "/api/v1/auth/tenants", json={"name": "other"}, headers=platform.admin
    )
    assert tenant.status_code == 201, tenant.text
    outsider = bearer(
        await platform.user_token("o@other.test", ["admin"], tenant_id=tenant.json()["id"])
    )
    status = platform.grpc.unary(
        "GetWorkflowStatus", {"execution_id": streamed[0]["execution_id"]}, outsider
    )
    assert await _code(status) == grpc.StatusCode.NOT_FOUND
    call = platform.grpc.collect("ExecuteWorkflow", body, outsider)
    assert await _code(call) == grpc.StatusCode.NOT_FOUND


def _rpc_tasks() -> list[asyncio.Task[Any]]:
    """The server's tasks of RPCs in progress (grpc.aio names them), here in this loop."""
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done()
        and (task.get_name() == "rpc_task" or "/ExecuteWorkflow" in task.get_name())
    ]


async def _until(condition: Any, seconds: float = 10.0) -> bool:
    """Whether ``condition()`` holds within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return bool(condition())


async def test_a_stream_ends_at_the_deadline_and_leaves_no_task(platform: Platform) -> None:
    workflow_id = await platform.workflow(APPROVAL)
    request = {"workflow_id": workflow_id}
    # The check sees the server's task of a running stream; a client gone ends it.
    streaming = asyncio.create_task(
        platform.grpc.collect("ExecuteWorkflow", request, platform.admin_metadata)
    )
    assert await _until(_rpc_tasks)
    streaming.cancel()
    with pytest.raises(asyncio.CancelledError):
        await streaming
    assert await _until(lambda: not _rpc_tasks())

    received: list[dict[str, Any]] = []

    async def follow() -> None:
        stream = platform.grpc.stream(
            "ExecuteWorkflow", request, platform.admin_metadata, deadline=3.0
        )
        async for event in stream:
            received.append(event)

    # The execution waits for an approval that never comes: only the deadline ends this.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await follow()
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert received, "no event before the deadline"
    assert [int(e["seq"]) for e in received] == sorted(int(e["seq"]) for e in received)
    assert await _until(lambda: not _rpc_tasks()), _rpc_tasks()

    # The execution itself goes on to its approval: a deadline is the client's, not the
    # workflow's (under load it may reach it after the stream ended).
    async def waiting() -> bool:
        status = await platform.grpc.unary(
            "GetWorkflowStatus",
            {"execution_id": received[0]["execution_id"]},
            platform.admin_metadata,
        )
        return bool(status["status"] == "waiting")

    for _ in range(300):
        if await waiting():
            break
        await asyncio.sleep(0.1)
    assert await waiting()
