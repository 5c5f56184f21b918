"""Subscriptions to platform events: a failing workflow sends exactly one signed webhook
and one email, even when its event is delivered again."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from standardwebhooks import Webhook

from orchestrion.kernel.bus import CloudEvent
from orchestrion.kernel.ids import new_id
from orchestrion.services.notifications import events
from tests.services.notifications.conftest import (
    WAIT,
    Platform,
    Receiver,
    SmtpServer,
    new_secret,
    settled,
)
from tests.services.workflows.helpers import create_workflow, start

FAILING = [{"id": "boom", "type": "fail", "with": {"message": "the disk is full"}}]


async def _subscribe(platform: Platform, **body: Any) -> dict[str, Any]:
    response = await platform.http.post(
        "/api/v1/notifications/subscriptions", json=body, headers=platform.admin
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _sent_by(platform: Platform, subscription_id: str) -> list[dict[str, Any]]:
    response = await platform.http.get(
        "/api/v1/notifications",
        params={"subscription_id": subscription_id},
        headers=platform.admin,
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def test_a_failing_workflow_sends_one_webhook_and_one_email_even_when_redelivered(
    platform: Platform, receiver: Receiver, smtp_server: SmtpServer
) -> None:
    seen: list[CloudEvent] = []

    async def capture(event: CloudEvent) -> None:
        seen.append(event)

    await platform.bus.subscribe(events.TOPIC, "test-capture", capture)
    secret = await new_secret(platform)
    hook = await _subscribe(
        platform, event="execution.failed", channel="webhook", to=receiver.url("/failed")
    )
    mail = await _subscribe(
        platform, event="execution.failed", channel="email", to="ops@example.com"
    )
    await _subscribe(
        platform, event="execution.succeeded", channel="webhook", to=receiver.url("/ok")
    )
    workflow_id = await create_workflow(platform.http, platform.admin, FAILING, name="breaks")
    execution = await start(platform.http, platform.admin, workflow_id, wait=15)
    assert execution["status"] == "failed", execution

    await _until(
        lambda: receiver.at("/failed") and smtp_server.mailbox.messages, "the webhook and email"
    )
    [delivered] = receiver.at("/failed")
    payload = Webhook(secret).verify(delivered.body, delivered.headers)
    assert payload["type"] == "execution.failed"
    context = payload["data"]["data"]
    assert (context["execution_id"], context["workflow_id"]) == (execution["id"], workflow_id)
    assert context["error"]["message"] == "the disk is full"
    [message] = smtp_server.mailbox.messages
    assert message["To"] == "ops@example.com"
    assert execution["id"] in message["Subject"]
    assert "Error: the disk is full" in message.get_content()

    # The broker delivers the event again, and a producer republishes it with a new id.
    [failed] = [e for e in seen if e.type == "orchestrion.execution.failed"]
    await platform.bus.publish(events.TOPIC, failed)
    await platform.bus.publish(events.TOPIC, dataclasses.replace(failed, id=new_id()))
    await _until(lambda: len(seen) > 1 and seen[-1].id != failed.id, "the republished event")
    # Handled in the same order by the notifications group: give it a moment more.
    await asyncio.sleep(0.5)
    runtime = platform.services["notifications"].state.notifications
    data = events.ExecutionEvent.model_validate(failed.data)
    async with runtime.database.session() as session:
        assert await events.fire(session, runtime, data) == 0

    for subscription in (hook, mail):
        [sent] = await _sent_by(platform, subscription["id"])
        assert sent["event"] == "execution.failed"
        assert (await settled(platform, sent["id"]))["status"] == "delivered"
    assert len(receiver.at("/failed")) == 1
    assert len(smtp_server.mailbox.messages) == 1
    assert receiver.at("/ok") == []


async def test_a_subscription_to_one_workflow_uses_its_template(
    platform: Platform, smtp_server: SmtpServer
) -> None:
    template = await platform.http.post(
        "/api/v1/notifications/templates",
        json={
            "name": "failure",
            "channel": "email",
            "subject": "{{ event }} in {{ workflow_id }}",
            "body": "Step {{ data.get('step_id') or 'boom' }}: {{ error.message }}",
        },
        headers=platform.admin,
    )
    assert template.status_code == 201, template.text
    watched = await create_workflow(platform.http, platform.admin, FAILING, name="watched")
    other = await create_workflow(platform.http, platform.admin, FAILING, name="other")
    subscription = await _subscribe(
        platform,
        event="execution.failed",
        workflow_id=watched,
        channel="email",
        to="ops@example.com",
        template="failure",
    )
    await start(platform.http, platform.admin, other, wait=15)
    await start(platform.http, platform.admin, watched, wait=15)
    await _until(lambda: smtp_server.mailbox.messages, "the email")
    await asyncio.sleep(0.3)
    [message] = smtp_server.mailbox.messages
    assert message["Subject"] == f"execution.failed in {watched}"
    assert message.get_content().strip() == "Step boom: the disk is full"
    [sent] = await _sent_by(platform, subscription["id"])
    assert (sent["template"], sent["template_version"]) == ("failure", 1)


async def test_approval_requested_fires_an_in_app_message(platform: Platform) -> None:
    me = (await platform.http.get("/api/v1/auth/me", headers=platform.admin)).json()["id"]
    await _subscribe(platform, event="approval.requested", channel="in_app", to=me)
    steps = [{"id": "gate", "type": "approval", "with": {}}]
    workflow_id = await create_workflow(platform.http, platform.admin, steps, name="gated")
    execution = await start(platform.http, platform.admin, workflow_id)

    async def inbox() -> list[dict[str, Any]]:
        response = await platform.http.get("/api/v1/notifications/inbox", headers=platform.admin)
        items: list[dict[str, Any]] = response.json()["data"]
        return items

    deadline = time.monotonic() + WAIT
    while not (items := await inbox()):
        assert time.monotonic() < deadline, "no inbox message"
        await asyncio.sleep(0.1)
    [item] = items
    assert item["data"]["event"] == "approval.requested"
    assert item["data"]["execution_id"] == execution["id"]
    assert item["data"]["step_id"] == "gate"


async def test_subscriptions_are_listed_validated_and_deleted(platform: Platform) -> None:
    created = await _subscribe(
        platform, event="execution.succeeded", channel="email", to="a@example.com"
    )
    bad = await platform.http.post(
        "/api/v1/notifications/subscriptions",
        json={"event": "execution.exploded", "channel": "email", "to": "a@example.com"},
        headers=platform.admin,
    )
    assert bad.status_code == 422, bad.text
    listed = await platform.http.get(
        "/api/v1/notifications/subscriptions",
        params={"event": "execution.succeeded"},
        headers=platform.admin,
    )
    assert [s["id"] for s in listed.json()["data"]] == [created["id"]]
    url = f"/api/v1/notifications/subscriptions/{created['id']}"
    assert (await platform.http.get(url, headers=platform.admin)).json() == created
    assert (await platform.http.delete(url, headers=platform.admin)).status_code == 204
    assert (await platform.http.get(url, headers=platform.admin)).status_code == 404
