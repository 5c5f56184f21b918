"""The gateway's own behaviour: ids, health, metrics, OpenAPI, limits, identity headers, CORS."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from orchestrion.kernel.auth.identity import encode_identity
from orchestrion.kernel.auth.principal import Principal
from orchestrion.platform import create_embedded_app
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings
from tests.fixtures.lifespan import in_process


async def test_request_id_is_echoed_or_made(client) -> None:
    mine = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    made = await client.get("/health/live")
    assert len(made.headers["x-request-id"]) >= 32
    hostile = await client.get("/health/live", headers={"X-Request-ID": "bad id\twith spaces"})
    assert hostile.headers["x-request-id"] != "bad id\twith spaces"


async def test_request_id_reaches_service_errors(client) -> None:
    response = await client.get("/api/v1/workflows", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 401
    assert response.json()["request_id"] == "trace-me"
    assert response.headers["x-request-id"] == "trace-me"


async def test_health_endpoints(client) -> None:
    health = await client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    assert set(body["services"]) == {
        "auth",
        "workflows",
        "realtime",
        "knowledge",
        "content",
        "templates",
        "notifications",
        "analytics",
        "flags",
    }
    assert all(s["status"] == "ok" for s in body["services"].values())
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    assert (await client.get("/health/ready")).status_code == 200


async def test_metrics_count_requests_per_route_template(client, admin_headers) -> None:
    await client.get(
        "/api/v1/workflows/00000000-0000-0000-0000-000000000000", headers=admin_headers
    )
    text = (await client.get("/metrics")).text
    assert (
        'orchestrion_http_requests_total{component="workflows",method="GET",route="/api/v1/workflows/{workflow_id}",status="404"}'
        in text
    )
    assert "orchestrion_http_request_duration_seconds_bucket" in text
    assert 'component="gateway"' in text


async def test_openapi_covers_every_service(client) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    for path in (
        "/api/v1/auth/login",
        "/api/v1/auth/me",
        "/api/v1/workflows",
        "/api/v1/workflows/{workflow_id}",
        "/health",
    ):
        assert path in paths, path
    assert not [p for p in paths if p.startswith("/internal")]
    assert "bearer" in document["components"]["securitySchemes"]
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text


async def test_unknown_paths_and_methods_are_problems(client, admin_headers) -> None:
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert set(missing.json()) >= {
        "type",
        "title",
        "status",
        "detail",
        "instance",
        "request_id",
        "errors",
    }
    internal = await client.post("/internal/auth/api-keys/verify", json={"key": "x"})
    assert internal.status_code == 404
    wrong_method = await client.delete("/api/v1/workflows", headers=admin_headers)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["status"] == 405


async def test_forged_identity_headers_are_stripped(client, settings) -> None:
    forged = encode_identity(
        Principal(subject="x", tenant_id="t", permissions=frozenset({"workflows:read"})),
        settings.secret_key.get_secret_value().encode(),
    )
    response = await client.get("/api/v1/workflows", headers={"X-Orchestrion-Identity": forged})
    assert response.status_code == 401


async def test_bearer_garbage_is_401(client) -> None:
    for value in ("Bearer", "Basic abc", "Bearer not.a.jwt"):
        response = await client.get("/api/v1/workflows", headers={"Authorization": value})
        assert response.status_code == 401, value
        assert response.headers["content-type"] == "application/problem+json"


async def _gateway(tmp_path: Path, database_url: str, **gateway: object) -> LifespanManager:
    settings = make_settings(tmp_path, database_url, gateway=gateway)
    return in_process(create_embedded_app(settings))


@pytest.mark.parametrize("chunked", [False, True])
async def test_bodies_over_the_limit_are_413(
    tmp_path: Path, database_url: str, chunked: bool
) -> None:
    async with await _gateway(tmp_path, database_url, max_body_bytes=1024) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            body = b"x" * 4096

            async def stream():
                for start in range(0, len(body), 512):
                    yield body[start : start + 512]

            content = stream() if chunked else body
            response = await http.post("/api/v1/auth/login", content=content)
            assert response.status_code == 413
            assert response.json()["status"] == 413


async def test_cors_allows_configured_origins_only(tmp_path: Path, database_url: str) -> None:
    async with await _gateway(
        tmp_path, database_url, cors_origins=["https://app.example"]
    ) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            preflight = await http.options(
                "/api/v1/workflows",
                headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
            )
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == "https://app.example"
            simple = await http.get("/health/live", headers={"Origin": "https://app.example"})
            assert "X-Request-ID" in simple.headers["access-control-expose-headers"]
            other = await http.get("/health/live", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers


async def test_composites_say_which_parts_failed(tmp_path: Path, database_url: str) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "composites:\n"
        "  - path: /api/v1/overview\n"
        "    parts: {workflows: /api/v1/workflows, nothing: /api/v1/workflows/none}\n"
    )
    async with await _gateway(tmp_path, database_url, config=config) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            login = await http.post(
                "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            overview = await http.get("/api/v1/overview", headers=headers)
            assert overview.status_code == 200
            body = overview.json()
            assert body["partial"] is True
            assert body["data"]["workflows"]["data"] == []
            assert body["data"]["nothing"] is None
            assert body["errors"] == [
                {"part": "nothing", "status": 404, "detail": body["errors"][0]["detail"]}
            ]
            # Each part carries the caller's credentials: without any, every part is a 401.
            anonymous = await http.get("/api/v1/dashboard")
            assert anonymous.status_code == 502
            assert {e["status"] for e in anonymous.json()["errors"]} == {401}
            dashboard = await http.get("/api/v1/dashboard", headers=headers)
            assert dashboard.json()["partial"] is False
            assert dashboard.json()["data"]["me"]["email"] == ADMIN_EMAIL
            bad = await http.post("/api/v1/dashboard", headers=headers)
            assert bad.status_code == 405


async def test_ip_deny_list_refuses_clients(tmp_path: Path, database_url: str) -> None:
    async with await _gateway(tmp_path, database_url, ip_deny=["10.9.0.0/16"]) as manager:
        denied = httpx.ASGITransport(app=manager.app, client=("10.9.1.1", 1234))
        async with httpx.AsyncClient(transport=denied, base_url="http://testserver") as http:
            response = await http.get("/api/v1/workflows")
            assert response.status_code == 403
            assert response.json()["detail"] == "your address is not allowed"
        allowed = httpx.ASGITransport(app=manager.app, client=("10.8.1.1", 1234))
        async with httpx.AsyncClient(transport=allowed, base_url="http://testserver") as http:
            assert (await http.get("/api/v1/workflows")).status_code == 401
