"""Services in the distributed shape: ``orchestrion serve content`` and ``serve knowledge``
as their own processes behind ``orchestrion gateway`` (next to ``serve auth``), and a
``serve workflows`` process whose steps reach them by base URL
(``ORCHESTRION_PEERS``). One platform for all: processes start slowly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from orchestrion.cluster import SERVICES
from tests.fixtures.processes import free_port, run_command, spawn, stop_all, wait_ready

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

PASSWORD = "content-password-1"
TEXT = (
    "Photosynthesis lets green plants turn sunlight, water and carbon dioxide into sugar. "
    "Chlorophyll in the leaves absorbs the light that photosynthesis needs."
)
SERVED = ("auth", "content", "knowledge", "workflows")


def test_serve_content_and_knowledge_behind_the_gateway_and_steps_reach_them(
    tmp_path: Path,
) -> None:
    ports = {name: free_port() for name in ("gateway", *SERVED)}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    settings = {
        "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
        "ORCHESTRION_OBSERVABILITY__LOG_LEVEL": "WARNING",
        "ORCHESTRION_EMBEDDINGS__PROVIDER": "none",
        "ORCHESTRION_PEERS": json.dumps({"content": url["content"], "knowledge": url["knowledge"]}),
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
            _knowledge(http, auth)
            health = http.get("/health").json()
            for service in ("content", "knowledge"):
                assert health["services"][service]["status"] == "ok", health
            assert http.get("/api/v1/content").status_code == 401
            assert http.get("/api/v1/knowledge/nodes").status_code == 401
    finally:
        stop_all(processes, tail=2000)


def _knowledge(http: httpx.Client, auth: dict[str, str]) -> None:
    imported = http.post(
        "/api/v1/knowledge/import",
        json={
            "nodes": [
                {"key": "a", "type": "t", "name": "Chlorophyll"},
                {"key": "b", "type": "t", "name": "B"},
            ],
            "edges": [{"source": "a", "target": "b", "type": "link"}],
        },
        headers=auth,
    )
    assert imported.status_code == 200, imported.text
    ids = imported.json()["ids"]
    path = http.get(f"/api/v1/knowledge/path?from={ids['a']}&to={ids['b']}", headers=auth)
    assert path.json()["cost"] == 1.0, path.text
    workflow = http.post(
        "/api/v1/workflows",
        json={
            "name": "find-it",
            "steps": [
                {
                    "id": "find",
                    "type": "knowledge",
                    "with": {"query": "chlorophyll", "mode": "keyword"},
                }
            ],
            "outputs": {"best": "{{ steps.find.output[0].name }}"},
        },
        headers=auth,
    )
    assert workflow.status_code == 201, workflow.text
    run = http.post(
        f"/api/v1/workflows/{workflow.json()['id']}/executions?wait=20", json={}, headers=auth
    )
    assert run.json()["outputs"] == {"best": "Chlorophyll"}, run.json()


def test_the_new_services_are_services_of_the_cluster(tmp_path: Path) -> None:
    assert {"content", "knowledge"} <= set(SERVICES)
    unknown = run_command(tmp_path, "serve", "nope")
    assert unknown.returncode == 2
    assert "content" in unknown.stdout + unknown.stderr
