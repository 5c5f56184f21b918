"""The done-when test: through the platform, 10 successful and 3 failed executions;
within seconds the summary, the per-workflow rows, the series, the CSV report and the
SLOs agree exactly with what ran (figures recomputed here from the workflows API); a
rebuild gives the same figures; redelivering an event changes nothing."""

from __future__ import annotations

import csv
import io
import statistics
from datetime import datetime
from typing import Any

import httpx
from prometheus_client import REGISTRY

from orchestrion.kernel.bus import CloudEvent
from orchestrion.services.analytics import consumer
from orchestrion.services.analytics.rebuild import rebuild
from tests.conftest import user_headers
from tests.services.analytics.conftest import Headers, Platform, eventually
from tests.services.workflows.helpers import create_workflow, start

CHAT = [
    {
        "id": "ask",
        "type": "llm",
        "with": {"provider": "oa", "model": "test-model", "prompt": "Say hello"},
    },
    {
        "id": "shout",
        "type": "transform",
        "needs": ["ask"],
        "with": {"text": "{{ steps.ask.output.text }}"},
    },
]
PLAIN = [{"id": "one", "type": "transform", "with": {"v": 1}}]
BROKEN = [
    {"id": "one", "type": "transform", "with": {"v": 1}},
    {"id": "boom", "type": "fail", "needs": ["one"], "with": {"message": "no"}},
]


def _at(raw: str) -> datetime:
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


def _pct(values: list[float], p: int) -> float:
    # statistics' "inclusive" method is the linear interpolation the service promises.
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[p - 1], 3)


async def _facts(client: httpx.AsyncClient, headers: Headers, execution_id: str) -> dict[str, Any]:
    """An execution's figures, from the workflows API."""
    events = (
        await client.get(f"/api/v1/executions/{execution_id}/events?limit=1000", headers=headers)
    ).json()["data"]
    execution = (await client.get(f"/api/v1/executions/{execution_id}", headers=headers)).json()
    terminal = events[-1]
    assert terminal["type"] in ("execution.succeeded", "execution.failed"), terminal
    duration = round((_at(terminal["at"]) - _at(events[0]["at"])).total_seconds() * 1000, 3)
    return {
        "execution_id": execution_id,
        "workflow_id": execution["workflow_id"],
        "status": execution["status"],
        "duration": duration,
        "steps": sum(e["type"] in ("step.succeeded", "step.failed") for e in events),
        "steps_failed": sum(e["type"] == "step.failed" for e in events),
        "usage": execution["usage"] or {},
        "events": events,
    }


def _expected(facts: list[dict[str, Any]]) -> dict[str, Any]:
    durations = [f["duration"] for f in facts]
    succeeded = sum(f["status"] == "succeeded" for f in facts)
    failed = sum(f["status"] == "failed" for f in facts)
    return {
        "executions": {
            "total": len(facts),
            "succeeded": succeeded,
            "failed": failed,
            "cancelled": 0,
            "success_rate": round(succeeded / len(facts), 6),
        },
        "duration_ms": {
            "p50": _pct(durations, 50),
            "p95": _pct(durations, 95),
            "p99": _pct(durations, 99),
            "exact": True,
        },
        "steps": {
            "total": sum(f["steps"] for f in facts),
            "failed": sum(f["steps_failed"] for f in facts),
        },
        "tokens": {
            "input": sum(f["usage"].get("input_tokens", 0) for f in facts),
            "output": sum(f["usage"].get("output_tokens", 0) for f in facts),
        },
        "cost_usd": round(sum(f["usage"].get("cost_usd", 0.0) for f in facts), 9),
    }


def _comparable(figures: dict[str, Any]) -> dict[str, Any]:
    found = {k: figures[k] for k in ("executions", "steps", "tokens")}
    found["duration_ms"] = {k: figures["duration_ms"][k] for k in ("p50", "p95", "p99", "exact")}
    found["cost_usd"] = round(figures["cost_usd"], 9)
    return found


def _agree(figures: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal, but for the last digit of interpolated percentiles (both round floats)."""
    found = _comparable(figures)
    for p in ("p50", "p95", "p99"):
        assert abs(found["duration_ms"][p] - expected["duration_ms"][p]) <= 0.0011, (p, found)
        found["duration_ms"][p] = expected["duration_ms"][p]
    assert found == expected


async def test_figures_agree_with_what_ran_and_survive_rebuild_and_redelivery(
    platform: Platform, admin: Headers
) -> None:
    client = platform.client
    breaches: list[CloudEvent] = []

    async def heard(event: CloudEvent) -> None:
        breaches.append(event)

    await platform.bus.subscribe("analytics.slo_breached", "test-listener", heard)
    ids = {
        "chat": await create_workflow(client, admin, CHAT, name="chat"),
        "plain": await create_workflow(client, admin, PLAIN, name="plain"),
        "broken": await create_workflow(client, admin, BROKEN, name="broken"),
    }
    ran: list[str] = []
    for name, times in (("chat", 6), ("plain", 4), ("broken", 3)):
        for _ in range(times):
            done = await start(client, admin, ids[name], wait=15)
            assert done["status"] in ("succeeded", "failed"), done
            ran.append(done["id"])
    facts = [await _facts(client, admin, execution_id) for execution_id in ran]
    assert sum(f["status"] == "succeeded" for f in facts) == 10
    assert sum(f["usage"].get("input_tokens", 0) for f in facts) > 0
    expected = _expected(facts)

    async def summary() -> dict[str, Any]:
        response = await client.get("/api/v1/analytics/summary", headers=admin)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def complete(body: dict[str, Any]) -> bool:
        e = body["executions"]
        return bool(e["total"] == 13 and e["succeeded"] + e["failed"] == 13)

    body = await eventually(summary, complete)
    _agree(body, expected)
    assert body["models"] == [
        {
            "model": "test-model",
            "calls": 6,
            "input_tokens": expected["tokens"]["input"],
            "output_tokens": expected["tokens"]["output"],
            "cost_usd": expected["cost_usd"],
        }
    ]

    # Per workflow: the same figures over each workflow's executions.
    listed = await client.get("/api/v1/analytics/workflows?sort=failed:desc", headers=admin)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["meta"]["total"] == 3
    assert page["data"][0]["id"] == ids["broken"]
    for item in page["data"]:
        mine = [f for f in facts if f["workflow_id"] == item["id"]]
        _agree(item, _expected(mine))
    trimmed = await client.get("/api/v1/analytics/workflows?fields=executions", headers=admin)
    assert all(set(i) == {"id", "executions"} for i in trimmed.json()["data"])

    # Series: every execution in one of the points, hour by hour and day by day.
    wanted = (
        ("executions", 13),
        ("succeeded", 10),
        ("failures", 3),
        ("cost_usd", expected["cost_usd"]),
    )
    for metric, total in wanted:
        for interval in ("hour", "day"):
            series = await client.get(
                f"/api/v1/analytics/timeseries?metric={metric}&interval={interval}", headers=admin
            )
            assert series.status_code == 200, series.text
            values = [p["value"] for p in series.json()["data"]]
            assert round(sum(values), 9) == total, (metric, interval, values)
    p95 = await client.get(
        "/api/v1/analytics/timeseries?metric=duration_p95&interval=day", headers=admin
    )
    found = [p["value"] for p in p95.json()["data"] if p["value"] is not None]
    if len(found) == 1:  # (two when the run straddled midnight UTC)
        assert abs(found[0] - expected["duration_ms"]["p95"]) <= 0.0011

    # The CSV report: rows per day and workflow adding up to the same figures.
    report = await client.get("/api/v1/analytics/report?format=csv", headers=admin)
    assert report.status_code == 200, report.text
    assert report.headers["content-type"].startswith("text/csv")
    assert "attachment" in report.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert sum(int(r["executions"]) for r in rows) == 13
    assert sum(int(r["failed"]) for r in rows) == 3
    assert sum(int(r["steps_total"]) for r in rows) == expected["steps"]["total"]
    assert sum(int(r["input_tokens"]) for r in rows) == expected["tokens"]["input"]
    assert round(sum(float(r["cost_usd"]) for r in rows), 9) == expected["cost_usd"]
    as_json = await client.get("/api/v1/analytics/report?format=json", headers=admin)
    assert sum(r["executions"] for r in as_json.json()["data"]) == 13

    # SLOs: the success rate is 10/13, below 90 %: breached at once, and published.
    slo = await client.post(
        "/api/v1/analytics/slos",
        json={"name": "mostly fine", "objective": "success_rate", "target": 0.9, "window": "1d"},
        headers=admin,
    )
    assert slo.status_code == 201, slo.text
    assert slo.json()["current"] == expected["executions"]["success_rate"]
    assert slo.json()["met"] is False
    assert slo.json()["error_budget_remaining"] == 0.0
    fast = await client.post(
        "/api/v1/analytics/slos",
        json={
            "name": "fast",
            "objective": "duration_p95_ms",
            "target": 60_000,
            "window": "1h",
            "workflow_id": ids["plain"],
        },
        headers=admin,
    )
    assert fast.status_code == 201, fast.text
    slos = (await client.get("/api/v1/analytics/slos", headers=admin)).json()["data"]
    by_name = {s["name"]: s for s in slos}
    assert by_name["mostly fine"]["state"] == "breached"
    plain = [f["duration"] for f in facts if f["workflow_id"] == ids["plain"]]
    assert abs(by_name["fast"]["current"] - _pct(plain, 95)) <= 0.0011
    assert by_name["fast"]["met"] is True
    assert by_name["fast"]["error_budget_remaining"] == 1.0
    await eventually(lambda: _value(breaches), lambda found: len(found) == 1)
    assert breaches[0].data["name"] == "mostly fine"

    # Redelivery: the bus hands the same entries again (a new CloudEvent id, as a
    # producer's repeat would have): nothing changes.
    duplicates = _duplicates()
    tenant_id = (await _me(client, admin))["tenant_id"]
    for fact in facts[-3:]:
        for entry in fact["events"]:
            data = {
                "tenant_id": tenant_id,
                "execution_id": fact["execution_id"],
                "workflow_id": fact["workflow_id"],
                "event": entry,
            }
            await platform.bus.publish(
                consumer.TOPIC,
                CloudEvent(source=consumer.SOURCE, type=f"orchestrion.{entry['type']}", data=data),
            )
    replayed = sum(len(f["events"]) for f in facts[-3:])
    await eventually(_duplicates_now, lambda n: n >= duplicates + replayed)
    _agree(await summary(), expected)

    # A rebuild from the workflows API gives the same figures.
    done = await rebuild(
        platform.database,
        workflows=platform.peer("workflows"),
        auth=platform.peer("auth"),
        secret=platform.settings.secret_key.get_secret_value().encode(),
    )
    assert done.executions == 13
    _agree(await summary(), expected)
    again = await client.get("/api/v1/analytics/workflows?sort=failed:desc", headers=admin)
    assert again.json()["data"] == page["data"]

    # The projection's lag is a metric.
    metrics = await client.get("/metrics", headers=admin)
    assert "orchestrion_analytics_projection_lag_seconds" in metrics.text


async def test_tenants_see_only_their_figures(platform: Platform, admin: Headers) -> None:
    client = platform.client
    workflow = await create_workflow(client, admin, PLAIN, name="plain")
    await start(client, admin, workflow, wait=15)
    tenant = await client.post("/api/v1/auth/tenants", json={"name": "other"}, headers=admin)
    other = await user_headers(
        client, admin, email="a@other.example", roles=["admin"], tenant_id=tenant.json()["id"]
    )
    mine = await eventually(
        lambda: _get(client, "/api/v1/analytics/summary", admin),
        lambda body: body["executions"]["succeeded"] == 1,
    )
    assert mine["executions"]["succeeded"] == 1
    theirs = await _get(client, "/api/v1/analytics/summary", other)
    assert theirs["executions"]["total"] == 0
    assert (await _get(client, "/api/v1/analytics/workflows", other))["data"] == []
    own_tenant = (await _me(client, admin))["tenant_id"]
    refused = await client.get(f"/api/v1/analytics/summary?tenant_id={own_tenant}", headers=other)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    # A platform admin narrows to one tenant, or sees them all.
    narrowed = f"/api/v1/analytics/summary?tenant_id={tenant.json()['id']}"
    assert (await _get(client, narrowed, admin))["executions"]["total"] == 0
    slo = await client.post(
        "/api/v1/analytics/slos",
        headers=admin,
        json={"name": "x", "objective": "success_rate", "target": 0.5, "window": "7d"},
    )
    hidden = await client.get(f"/api/v1/analytics/slos/{slo.json()['id']}", headers=other)
    assert hidden.status_code == 404
    assert (await _get(client, "/api/v1/analytics/slos", other))["data"] == []


async def _get(client: httpx.AsyncClient, path: str, headers: Headers) -> Any:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _me(client: httpx.AsyncClient, headers: Headers) -> dict[str, Any]:
    body: dict[str, Any] = await _get(client, "/api/v1/auth/me", headers)
    return body


async def _value(found: list[CloudEvent]) -> list[CloudEvent]:
    return found


def _duplicates() -> float:
    value = REGISTRY.get_sample_value("orchestrion_analytics_events_total", {"result": "duplicate"})
    return value or 0.0


async def _duplicates_now() -> float:
    return _duplicates()
