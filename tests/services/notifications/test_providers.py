"""Email over TLS (STARTTLS and SMTPS) and the SMS and push adapters, against loopback
stand-ins speaking the providers' formats."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fixtures.servers import free_port, serve
from tests.fixtures.tls import self_signed
from tests.services.notifications.conftest import (
    Mailbox,
    platform_settings,
    running,
    send,
    settled,
)


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
async def test_email_over_tls(
    tmp_path: Path,
    database_url: str,
    monkeyed_factories: dict[str, FastAPI],
    mode: str,
) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    port = free_port()
    if mode == "starttls":
        controller = Controller(
            mailbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
        )
        url, starttls = f"smtp://127.0.0.1:{port}", True
    else:
        controller = Controller(mailbox, hostname="127.0.0.1", port=port, ssl_context=context)
        url, starttls = f"smtps://127.0.0.1:{port}", None
    controller.start()
    try:
        settings = platform_settings(
            tmp_path, database_url, url, smtp_starttls=starttls, smtp_ca_file=str(cert)
        )
        async with running(settings, monkeyed_factories) as platform:
            notification_id = await send(
                platform, channel="email", to="ada@example.com", subject="Secure", body="tls"
            )
            done = await settled(platform, notification_id)
    finally:
        controller.stop()
    assert done["status"] == "delivered", done
    [message] = mailbox.messages
    assert message["Subject"] == "Secure"


async def test_a_certificate_that_does_not_verify_fails_for_good(
    tmp_path: Path, database_url: str, monkeyed_factories: dict[str, FastAPI]
) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    port = free_port()
    controller = Controller(Mailbox(), hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    try:
        # No smtp_ca_file: the self-signed certificate is not trusted.
        settings = platform_settings(tmp_path, database_url, f"smtps://127.0.0.1:{port}")
        async with running(settings, monkeyed_factories) as platform:
            notification_id = await send(platform, channel="email", to="a@b.co", body="x")
            done = await settled(platform, notification_id)
    finally:
        controller.stop()
    assert (done["status"], done["attempts"]) == ("failed", 1)
    assert "CERTIFICATE_VERIFY_FAILED" in done["last_error"]


class Providers:
    """Loopback stand-ins of a Twilio-style SMS API and an FCM-v1-style push API."""

    def __init__(self) -> None:
        self.sms: list[dict[str, Any]] = []
        self.push: list[dict[str, Any]] = []
        self.base = ""

    def app(self) -> Starlette:
        async def messages(request: Request) -> JSONResponse:
            form = await request.form()
            self.sms.append(
                {
                    "sid": request.path_params["sid"],
                    "auth": request.headers.get("authorization"),
                    "form": dict(form),
                }
            )
            return JSONResponse({"sid": f"SM{len(self.sms)}", "status": "queued"}, 201)

        async def push(request: Request) -> JSONResponse:
            self.push.append(
                {
                    "project": request.path_params["project"],
                    "auth": request.headers.get("authorization"),
                    "json": await request.json(),
                }
            )
            return JSONResponse({"name": f"projects/p/messages/{len(self.push)}"})

        return Starlette(
            routes=[
                Route("/2010-04-01/Accounts/{sid}/Messages.json", messages, methods=["POST"]),
                Route("/v1/projects/{project}/messages:send", push, methods=["POST"]),
            ]
        )


@pytest.fixture
async def providers() -> AsyncIterator[Providers]:
    stand_ins = Providers()
    async with serve(stand_ins.app()) as address:
        stand_ins.base = f"http://{address}"
        yield stand_ins


async def test_sms_and_push_go_through_their_adapters(
    tmp_path: Path,
    database_url: str,
    monkeyed_factories: dict[str, FastAPI],
    providers: Providers,
) -> None:
    settings = platform_settings(
        tmp_path,
        database_url,
        None,
        sms_base_url=providers.base,
        sms_account_sid="AC123",
        sms_auth_token="sms-token",
        sms_from="+15005550006",
        push_base_url=providers.base,
        push_project_id="demo-project",
        push_access_token="push-token",
    )
    async with running(settings, monkeyed_factories) as platform:
        sms_id = await send(platform, channel="sms", to="+14155550100", body="Your code is 42")
        push_id = await send(
            platform,
            channel="push",
            to="device:token-1",
            subject="Done",
            body="Your workflow finished",
            data={"execution": "e1", "count": 3},
        )
        sms, push = await settled(platform, sms_id), await settled(platform, push_id)
    assert sms["status"] == push["status"] == "delivered"
    [text] = providers.sms
    assert text["sid"] == "AC123"
    assert text["auth"] == "Basic " + base64.b64encode(b"AC123:sms-token").decode()
    assert text["form"] == {"To": "+14155550100", "From": "+15005550006", "Body": "Your code is 42"}
    [note] = providers.push
    assert note["project"] == "demo-project"
    assert note["auth"] == "Bearer push-token"
    assert note["json"] == {
        "message": {
            "token": "device:token-1",
            "notification": {"title": "Done", "body": "Your workflow finished"},
            "data": {"execution": "e1", "count": "3"},
        }
    }
