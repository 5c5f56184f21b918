"""The knowledge service in the distributed shape: ``orchestrion serve knowledge`` as its
own process behind ``orchestrion gateway``, next to ``serve auth``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from orchestrion.cluster import SERVICES
from tests.fixtures.processes import free_port, run_command, spawn, stop, wait_ready

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

PASSWORD = "knowledge-password-1"


def test_serve_knowledge_behind_the_gateway(tmp_path: Path) -> None:
    settings = {
        "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
        "ORCHESTRION_OBSERVABILITY__LOG_LEVEL": "WARNING",
    }
    migrated = run_command(tmp_path, "db", "upgrade", **settings)
    assert migrated.returncode == 0, migrated.stderr
    ports = {name: free_port() for name in ("gateway", "auth", "knowledge")}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    processes: list[subprocess.Popen[str]] = []
    try:
        for service in ("auth", "knowledge"):
            processes.append(
                spawn(tmp_path, "serve", service, "--port", str(ports[service]), **settings)
            )
        upstreams = [f"--upstream={s}={url[s]}" for s in ("auth", "knowledge")]
        processes.append(
            spawn(tmp_path, "gateway", "--port", str(ports["gateway"]), *upstreams, **settings)
        )
        for name, process in zip(("auth", "knowledge", "gateway"), processes, strict=True):
            wait_ready(url[name], process, 60, "/health/live" if name == "gateway" else "/health")
        with httpx.Client(base_url=url["gateway"], timeout=15) as http:
            login = http.post(
                "/api/v1/auth/login",
                json={"email": "admin@orchestrion.local", "password": PASSWORD},
            )
            assert login.status_code == 200, login.text
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            imported = http.post(
                "/api/v1/knowledge/import",
                json={
                    "nodes": [
                        {"key": "a", "type": "t", "name": "A"},
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
            health = http.get("/health").json()
            assert health["services"]["knowledge"]["status"] == "ok", health
            assert http.get("/api/v1/knowledge/nodes").status_code == 401
    finally:
        for process in processes:
            if process.poll() is None:
                print(stop(process)[-2000:])


def test_knowledge_is_a_service_of_the_cluster(tmp_path: Path) -> None:
    assert "knowledge" in SERVICES
    unknown = run_command(tmp_path, "serve", "nope")
    assert unknown.returncode == 2
    assert "knowledge" in unknown.stdout + unknown.stderr
