"""The ``notify`` step in a workflow, and in-app messages live on realtime's ``user:<id>``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI
from websockets.asyncio.client import connect

from orchestrion.platform import create_embedded_app
from orchestrion.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.fixtures.servers import serve
from tests.services.notifications.conftest import Platform, SmtpServer, settled
from tests.services.realtime.conftest import recv_type, subscribe
from tests.services.workflows.helpers import run, step


def notify(step_id: str, **with_: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "notify", "with": with_}


async def test_a_notify_step_queues_a_notification_in_the_executions_tenant(
    platform: Platform, smtp_server: SmtpServer
) -> None:
    execution = await run(
        platform.http,
        platform.admin,
        [
            notify(
                "tell",
                channel="email",
                to="{{ inputs.to }}",
                subject="Order {{ inputs.order }}",
                body="Shipped {{ inputs.count }} items",
            )
        ],
        {"to": "ada@example.com", "order": "A-1", "count": 3},
        outputs={"id": "{{ steps.tell.output.id }}"},
    )
    assert execution["status"] == "succeeded", execution
    output = step(execution, "tell")["output"]
    assert output["status"] == "queued"
    assert execution["outputs"] == {"id": output["id"]}
    done = await settled(platform, output["id"])
    assert done["status"] == "delivered", done
    [message] = smtp_server.mailbox.messages
    assert message["Subject"] == "Order A-1"
    assert message.get_content().strip() == "Shipped 3 items"


async def test_a_refused_notify_step_fails_without_retries(platform: Platform) -> None:
    execution = await run(
        platform.http,
        platform.admin,
        [notify("tell", channel="email", to="not an address", body="x")],
        {},
    )
    assert execution["status"] == "failed", execution
    failed = step(execution, "tell")
    assert failed["attempts"] == 1
    assert "notifications answered 422" in failed["error"]["message"]
    missing = await run(
        platform.http, platform.admin, [notify("tell", channel="email", to="a@b.co")], {}
    )
    assert "give 'body' or 'template'" in step(missing, "tell")["error"]["message"]


@contextlib.asynccontextmanager
async def _served(settings: Settings) -> AsyncIterator[tuple[str, httpx.AsyncClient, str]]:
    async with contextlib.AsyncExitStack() as stack:
        address = await stack.enter_async_context(serve(create_embedded_app(settings)))
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://{address}", timeout=15)
        )
        login = await http.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        yield address, http, login.json()["access_token"]


async def test_an_in_app_message_arrives_on_the_users_realtime_channel(
    settings: Settings, monkeyed_factories: dict[str, FastAPI]
) -> None:
    async with _served(settings) as (address, http, token):
        auth = {"Authorization": f"Bearer {token}"}
        me = (await http.get("/api/v1/auth/me", headers=auth)).json()["id"]
        async with connect(f"ws://{address}/ws", subprotocols=["bearer", token]) as ws:
            await recv_type(ws, "welcome")
            await subscribe(ws, f"user:{me}")
            sent = await http.post(
                "/api/v1/notifications",
                json={"channel": "in_app", "to": me, "subject": "Hi", "body": "Live"},
                headers=auth,
            )
            assert sent.status_code == 202, sent.text
            frame = await recv_type(ws, "message")
        assert frame["channel"] == f"user:{me}"
        data = frame["data"]
        assert (data["type"], data["subject"], data["body"]) == ("notification", "Hi", "Live")
        assert data["notification_id"] == sent.json()["id"]
        inbox = await http.get("/api/v1/notifications/inbox", headers=auth)
        assert [item["id"] for item in inbox.json()["data"]] == [data["id"]]
