"""The content service in the distributed shape: ``orchestrion serve content`` as its own
process behind ``orchestrion gateway``, and a ``serve workflows`` process whose steps
reach it by base URL (``ORCHESTRION_ENGINE__PEERS``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from orchestrion.cluster import SERVICES
from tests.fixtures.processes import free_port, run_command, spawn, stop, wait_ready

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

PASSWORD = "content-password-1"
TEXT = (
    "Photosynthesis lets green plants turn sunlight, water and carbon dioxide into sugar. "
    "Chlorophyll in the leaves absorbs the light that photosynthesis needs."
)
SERVED = ("auth", "content", "workflows")


def test_serve_content_behind_the_gateway_and_steps_reach_it(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("gateway", *SERVED)}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    settings = {
        "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
        "ORCHESTRION_OBSERVABILITY__LOG_LEVEL": "WARNING",
        "ORCHESTRION_EMBEDDINGS__PROVIDER": "none",
        "ORCHESTRION_ENGINE__PEERS": json.dumps({"content": url["content"]}),
    }
    migrated = run_command(tmp_path, "db", "upgrade", **settings)
    assert migrated.returncode == 0, migrated.stderr
    processes: list[subprocess.Popen[str]] = []
    try:
        for service in SERVED:
            processes.append(
                spawn(tmp_path, "serve", service, "--port", str(ports[service]), **settings)
            )
        upstreams = [f"--upstream={s}={url[s]}" for s in SERVED]
        processes.append(
            spawn(tmp_path, "gateway", "--port", str(ports["gateway"]), *upstreams, **settings)
        )
        for name, process in zip((*SERVED, "gateway"), processes, strict=True):
            wait_ready(url[name], process, 120, "/health/live" if name == "gateway" else "/health")
        with httpx.Client(base_url=url["gateway"], timeout=30) as http:
            login = http.post(
                "/api/v1/auth/login",
                json={"email": "admin@orchestrion.local", "password": PASSWORD},
            )
            assert login.status_code == 200, login.text
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            uploaded = http.post(
                "/api/v1/content",
                files={"file": ("notes.bin", TEXT.encode(), "application/octet-stream")},
                data={"title": "Leaves"},
                headers=auth,
            )
            assert uploaded.status_code == 201, uploaded.text
            document = uploaded.json()
            assert document["status"] == "processed", document
            chunks = http.get(f"/api/v1/content/{document['id']}/chunks", headers=auth).json()
            assert "".join(c["text"] for c in chunks["data"]) == TEXT
            workflow = http.post(
                "/api/v1/workflows",
                json={
                    "name": "read-it",
                    "steps": [
                        {"id": "read", "type": "content", "with": {"content_id": "{{ inputs.id }}"}}
                    ],
                    "outputs": {"language": "{{ steps.read.output.language }}"},
                },
                headers=auth,
            )
            assert workflow.status_code == 201, workflow.text
            run = http.post(
                f"/api/v1/workflows/{workflow.json()['id']}/executions?wait=20",
                json={"inputs": {"id": document["id"]}},
                headers=auth,
            )
            assert run.status_code in (200, 202), run.text
            assert run.json()["status"] == "succeeded", run.json()
            assert run.json()["outputs"] == {"language": "en"}
            health = http.get("/health").json()
            assert health["services"]["content"]["status"] == "ok", health
            assert http.get("/api/v1/content").status_code == 401
    finally:
        for process in processes:
            if process.poll() is None:
                print(stop(process)[-2000:])


def test_content_is_a_service_of_the_cluster() -> None:
    assert "content" in SERVICES
