"""Cron schedules and signed webhook triggers, through the gateway."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import httpx

from orchestrion.services.workflows.automation.service import next_fire, sign
from tests.services.workflows.helpers import create_workflow, wait_until

INPUTS = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
STEPS = [{"id": "t", "type": "transform", "with": {"double": "{{ inputs.n * 2 }}"}}]


def test_next_fire_follows_the_time_zone_across_dst() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29 (clocks jump 02:00 -> 03:00).
    after = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    first = next_fire("30 2 * * *", "Europe/Berlin", after)
    assert first == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    second = next_fire("30 2 * * *", "Europe/Berlin", first)
    assert second == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)  # 02:30 CEST
    assert next_fire("0 9 * * *", "America/New_York", after) == datetime(
        2026, 3, 28, 13, 0, tzinfo=UTC
    )


async def test_schedule_fires_and_rearms(client: httpx.AsyncClient, admin_headers) -> None:
    workflow_id = await create_workflow(client, admin_headers, STEPS, inputs=INPUTS)
    base = f"/api/v1/workflows/{workflow_id}/schedules"
    bad = await client.post(base, json={"cron": "every minute"}, headers=admin_headers)
    assert bad.status_code == 422
    bad_zone = await client.post(
        base, json={"cron": "* * * * *", "timezone": "Mars/Olympus"}, headers=admin_headers
    )
    assert bad_zone.status_code == 422
    bad_inputs = await client.post(
        base, json={"cron": "* * * * *", "inputs": {"n": "x"}}, headers=admin_headers
    )
    assert bad_inputs.status_code == 422

    # cronsim has second precision with a sixth field: fire every second.
    created = await client.post(
        base, json={"cron": "* * * * * *", "inputs": {"n": 21}}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["next_run_at"] is not None

    deadline = time.monotonic() + 10
    while True:
        listed = await client.get(
            "/api/v1/executions", params={"workflow_id": workflow_id}, headers=admin_headers
        )
        runs = listed.json()["data"]
        if len(runs) >= 2:
            break
        assert time.monotonic() < deadline, "the schedule did not fire twice in 10 s"
        await asyncio.sleep(0.2)
    done = await wait_until(
        client, admin_headers, runs[-1]["id"], lambda e: e["status"] == "succeeded"
    )
    assert done["outputs"] is not None or done["steps"][0]["output"] == {"double": 42}

    paused = await client.patch(
        f"{base}/{schedule['id']}", json={"enabled": False}, headers=admin_headers
    )
    assert paused.status_code == 200
    assert paused.json()["next_run_at"] is None
    count = len(
        (
            await client.get(
                "/api/v1/executions", params={"workflow_id": workflow_id}, headers=admin_headers
            )
        ).json()["data"]
    )
    await asyncio.sleep(1.5)
    later = (
        await client.get(
            "/api/v1/executions", params={"workflow_id": workflow_id}, headers=admin_headers
        )
    ).json()["data"]
    assert len(later) <= count + 1  # at most one firing was already under way
    assert (
        await client.delete(f"{base}/{schedule['id']}", headers=admin_headers)
    ).status_code == 204
    assert (await client.get(f"{base}/{schedule['id']}", headers=admin_headers)).status_code == 404


def _signed(
    secret: str, body: dict[str, object], *, webhook_id: str | None = None, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    hook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    timestamp = at if at is not None else int(time.time())
    headers = {
        "webhook-id": hook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id=hook_id, timestamp=timestamp, body=raw),
        "content-type": "application/json",
    }
    return raw, headers


async def test_signed_webhook_starts_the_workflow_once(
    client: httpx.AsyncClient, admin_headers
) -> None:
    workflow_id = await create_workflow(client, admin_headers, STEPS, inputs=INPUTS)
    created = await client.post(
        f"/api/v1/workflows/{workflow_id}/triggers", json={"name": "github"}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    trigger = created.json()
    secret = trigger["secret"]
    assert secret.startswith("whsec_")
    listed = await client.get(f"/api/v1/workflows/{workflow_id}/triggers", headers=admin_headers)
    assert "secret" not in listed.json()["data"][0]

    raw, headers = _signed(secret, {"n": 5})
    first = await client.post(trigger["url"], content=raw, headers=headers)  # no token
    assert first.status_code == 202, first.text
    again = await client.post(trigger["url"], content=raw, headers=headers)
    assert again.json()["id"] == first.json()["id"]  # same webhook-id: same execution
    done = await wait_until(
        client, admin_headers, first.json()["id"], lambda e: e["status"] == "succeeded"
    )
    assert done["steps"][0]["output"] == {"double": 10}

    tampered = dict(headers, **{"webhook-id": "msg_other"})
    assert (await client.post(trigger["url"], content=raw, headers=tampered)).status_code == 401
    stale_raw, stale = _signed(secret, {"n": 5}, at=int(time.time()) - 3600)
    assert (await client.post(trigger["url"], content=stale_raw, headers=stale)).status_code == 401
    unsigned = await client.post(trigger["url"], json={"n": 5})
    assert unsigned.status_code == 401
    wrong_raw, wrong_inputs = _signed(secret, {"n": "five"})
    assert (
        await client.post(trigger["url"], content=wrong_raw, headers=wrong_inputs)
    ).status_code == 422
    assert (
        await client.post("/api/v1/hooks/nope", content=raw, headers=headers)
    ).status_code == 404

    deleted = await client.delete(
        f"/api/v1/workflows/{workflow_id}/triggers/{trigger['id']}", headers=admin_headers
    )
    assert deleted.status_code == 204
    fresh_raw, fresh = _signed(secret, {"n": 1})
    assert (await client.post(trigger["url"], content=fresh_raw, headers=fresh)).status_code == 404


async def test_a_webhook_body_nested_too_deeply_is_400_whatever_its_content_type(
    client: httpx.AsyncClient, admin_headers
) -> None:
    workflow_id = await create_workflow(client, admin_headers, STEPS, inputs=INPUTS)
    created = await client.post(
        f"/api/v1/workflows/{workflow_id}/triggers", json={"name": "deep"}, headers=admin_headers
    )
    secret = created.json()["secret"]
    raw = b'{"n": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    hook_id, timestamp = f"msg_{uuid.uuid4().hex}", int(time.time())
    headers = {
        "webhook-id": hook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id=hook_id, timestamp=timestamp, body=raw),
        "content-type": "text/plain",  # not JSON: the body depth guard does not read it
    }
    answer = await client.post(created.json()["url"], content=raw, headers=headers)
    assert answer.status_code == 400, answer.text
    assert "nested too deeply" in answer.json()["detail"]
