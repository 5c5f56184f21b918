"""The core path on PostgreSQL: a send retried through the queue (``SKIP LOCKED``,
``NOTIFY``), and a subscription firing once however often its event comes."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from standardwebhooks import Webhook

from orchestrion.kernel.bus import CloudEvent
from orchestrion.kernel.ids import new_id
from orchestrion.services.notifications import events
from tests.fixtures.databases import in_thread, truncate_all
from tests.services.notifications.conftest import (
    Platform,
    Receiver,
    SmtpServer,
    new_secret,
    send,
    settled,
)
from tests.services.workflows.helpers import create_workflow, start

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """The PostgreSQL test database, emptied."""
    in_thread(asyncio.run, truncate_all(postgres_url))
    return postgres_url


async def test_sends_retry_and_subscriptions_fire_once_on_postgres(
    platform: Platform, receiver: Receiver, smtp_server: SmtpServer
) -> None:
    seen: list[CloudEvent] = []

    async def capture(event: CloudEvent) -> None:
        seen.append(event)

    await platform.bus.subscribe(events.TOPIC, "test-capture", capture)
    secret = await new_secret(platform)
    notification_id = await send(
        platform, channel="webhook", to=receiver.url("/flaky", 502), body="retried"
    )
    done = await settled(platform, notification_id)
    assert (done["status"], done["attempts"]) == ("delivered", 2)
    for hook in receiver.at("/flaky"):
        assert hook.headers["webhook-id"] == notification_id
        Webhook(secret).verify(hook.body, hook.headers)

    subscription = await platform.http.post(
        "/api/v1/notifications/subscriptions",
        json={"event": "execution.failed", "channel": "email", "to": "ops@example.com"},
        headers=platform.admin,
    )
    assert subscription.status_code == 201, subscription.text
    steps = [{"id": "boom", "type": "fail", "with": {"message": "no"}}]
    workflow_id = await create_workflow(platform.http, platform.admin, steps)
    assert (await start(platform.http, platform.admin, workflow_id, wait=15))["status"] == "failed"
    for _ in range(300):
        if smtp_server.mailbox.messages:
            break
        await asyncio.sleep(0.05)
    [failed] = [e for e in seen if e.type == "orchestrion.execution.failed"]
    await platform.bus.publish(events.TOPIC, dataclasses.replace(failed, id=new_id()))
    await asyncio.sleep(1.0)
    assert len(smtp_server.mailbox.messages) == 1
    listed = await platform.http.get(
        "/api/v1/notifications",
        params={"subscription_id": subscription.json()["id"]},
        headers=platform.admin,
    )
    assert listed.json()["meta"]["total"] == 1
