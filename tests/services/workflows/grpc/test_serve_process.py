"""``orchestrion serve workflows`` as its own process serves gRPC on
``ORCHESTRION_GRPC__PORT`` and verifies tokens with the ``serve auth`` process it is told
of (``ORCHESTRION_PEERS``), as in the distributed shape."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import grpc
import httpx
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orchestrion.kernel.auth.identity import IDENTITY_HEADER, encode_identity
from orchestrion.kernel.auth.principal import Principal
from tests.fixtures.processes import free_port, run_command, spawn, stop, wait_ready
from tests.services.workflows.grpc.reflected import SERVICE, ReflectionClient, bearer

# Real processes start slowly on a loaded machine (tests run side by side).
pytestmark = pytest.mark.timeout(300)

PASSWORD = "grpc-process-password-1"
SECRET = "grpc-process-secret-0123456789abcdef"


def _wait_serving(target: str, seconds: float = 60) -> None:
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=seconds)
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=10
        )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_serve_workflows_serves_grpc_with_tokens_checked_by_auth(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("auth", "workflows", "grpc")}
    url = {name: f"http://127.0.0.1:{ports[name]}" for name in ("auth", "workflows")}
    settings = {
        "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
        "ORCHESTRION_SECRET_KEY": SECRET,
        "ORCHESTRION_OBSERVABILITY__LOG_LEVEL": "WARNING",
        "ORCHESTRION_PEERS": json.dumps({"auth": url["auth"]}),
        "ORCHESTRION_GRPC__PORT": str(ports["grpc"]),
    }
    migrated = run_command(tmp_path, "db", "upgrade", **settings)
    assert migrated.returncode == 0, migrated.stderr
    processes: dict[str, subprocess.Popen[str]] = {}
    try:
        for name in ("auth", "workflows"):
            processes[name] = spawn(tmp_path, "serve", name, "--port", str(ports[name]), **settings)
        for name, process in processes.items():
            wait_ready(url[name], process, 120, "/health")
        target = f"127.0.0.1:{ports['grpc']}"
        _wait_serving(target)

        async with httpx.AsyncClient(timeout=30) as http:
            login = await http.post(
                f"{url['auth']}/api/v1/auth/login",
                json={"email": "admin@orchestrion.local", "password": PASSWORD},
            )
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            # No gateway here: sign the identity it would forward, to create a workflow.
            claims = jwt.decode(token, options={"verify_signature": False})
            admin = Principal(
                subject=claims["sub"],
                tenant_id=claims["tid"],
                permissions=frozenset(claims["perms"]),
            )
            created = await http.post(
                f"{url['workflows']}/api/v1/workflows",
                json={"name": "p", "steps": [{"id": "t", "type": "transform", "with": {"v": 2}}]},
                headers={IDENTITY_HEADER: encode_identity(admin, SECRET.encode())},
            )
            assert created.status_code == 201, created.text

        client = await ReflectionClient.connect(target)
        try:
            body = {"workflow_id": created.json()["id"]}
            streamed = await client.collect("ExecuteWorkflow", body, bearer(token))
            assert [int(e["seq"]) for e in streamed] == list(range(1, len(streamed) + 1))
            assert streamed[-1]["type"] == "execution.succeeded"
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await client.collect("ExecuteWorkflow", body, bearer("forged"))
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            await client.close()
    finally:
        for process in processes.values():
            stop(process)
