"""Bad input is a clear 4xx problem, never a 500; rights are checked."""

from __future__ import annotations

from tests.conftest import user_headers
from tests.services.analytics.conftest import Headers, Platform

BAD_READS: list[tuple[str, int]] = [
    ("/api/v1/analytics/summary?from=yesterday", 400),
    ("/api/v1/analytics/timeseries?metric=nope", 422),
    ("/api/v1/analytics/timeseries?metric=executions&interval=week", 422),
    ("/api/v1/analytics/timeseries?metric=executions&from=2000-01-01T00:00:00Z", 400),
    ("/api/v1/analytics/report?format=xml", 422),
    ("/api/v1/analytics/workflows?sort=nothing", 400),
    ("/api/v1/analytics/workflows?colour=red", 400),
    ("/api/v1/analytics/workflows?cursor=", 400),
    ("/api/v1/analytics/slos/nope", 404),
]
BAD_SLOS: list[dict[str, object]] = [
    {"name": "x", "objective": "success_rate", "target": 1.5, "window": "1d"},
    {"name": "x", "objective": "duration_p95_ms", "target": 0, "window": "1d"},
    {"name": "x", "objective": "uptime", "target": 0.5, "window": "1d"},
    {"name": "x", "objective": "success_rate", "target": 0.5, "window": "2d"},
    {"name": "", "objective": "success_rate", "target": 0.5, "window": "1d"},
]


async def test_bad_input_is_a_problem(platform: Platform, admin: Headers) -> None:
    for path, status in BAD_READS:
        response = await platform.client.get(path, headers=admin)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    for body in BAD_SLOS:
        response = await platform.client.post("/api/v1/analytics/slos", json=body, headers=admin)
        assert response.status_code == 422, (body, response.text)


async def test_viewers_read_and_admins_manage(platform: Platform, admin: Headers) -> None:
    client = platform.client
    viewer = await user_headers(client, admin, email="v@example.com", roles=["viewer"])
    assert (await client.get("/api/v1/analytics/summary", headers=viewer)).status_code == 200
    body = {"name": "x", "objective": "success_rate", "target": 0.5, "window": "1h"}
    refused = await client.post("/api/v1/analytics/slos", json=body, headers=viewer)
    assert refused.status_code == 403
    created = await client.post("/api/v1/analytics/slos", json=body, headers=admin)
    assert created.status_code == 201
    assert created.json()["current"] is None
    assert created.json()["met"] is True
    slo_id = created.json()["id"]
    deleted = await client.delete(f"/api/v1/analytics/slos/{slo_id}", headers=admin)
    assert deleted.status_code == 204
    assert (await client.get(f"/api/v1/analytics/slos/{slo_id}", headers=admin)).status_code == 404
    assert (await client.get("/api/v1/analytics/summary")).status_code == 401
