"""Sends on each channel to real loopback servers: SMTP, signed webhooks with retries,
refused destinations, idempotency."""

from __future__ import annotations

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.services.notifications.conftest import (
    Platform,
    Receiver,
    SmtpServer,
    new_secret,
    send,
    settled,
)


async def test_an_email_arrives_with_its_subject_and_body(
    platform: Platform, smtp_server: SmtpServer
) -> None:
    notification_id = await send(
        platform, channel="email", to="ada@example.com", subject="Hello\r\nBcc: x@y.z",
        body="The report is ready.",
    )  # fmt: skip
    done = await settled(platform, notification_id)
    assert done["status"] == "delivered", done
    assert done["attempts"] == 1
    assert done["delivered_at"] is not None
    assert done["last_error"] is None
    [message] = smtp_server.mailbox.messages
    # The line break is folded away, not turned into a header.
    assert message["Subject"] == "Hello Bcc: x@y.z"
    assert message["To"] == "ada@example.com"
    assert message["Bcc"] is None
    assert message.get_content().strip() == "The report is ready."
    assert smtp_server.mailbox.envelopes[0].rcpt_tos == ["ada@example.com"]


async def test_a_webhook_is_signed_as_standard_webhooks(
    platform: Platform, receiver: Receiver
) -> None:
    secret = await new_secret(platform)
    notification_id = await send(
        platform,
        channel="webhook",
        to=receiver.url("/hook"),
        subject="Deployed",
        body="v2 is live",
        data={"version": 2},
    )
    done = await settled(platform, notification_id)
    assert done["status"] == "delivered", done
    [hook] = receiver.at("/hook")
    assert hook.headers["webhook-id"] == notification_id
    payload = Webhook(secret).verify(hook.body, hook.headers)
    assert payload["type"] == "notification"
    assert payload["data"] == {
        "notification_id": notification_id,
        "subject": "Deployed",
        "body": "v2 is live",
        "data": {"version": 2},
    }
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43).verify(hook.body, hook.headers)


async def test_retries_keep_the_webhook_id_and_count_attempts(
    platform: Platform, receiver: Receiver
) -> None:
    secret = await new_secret(platform)
    url = receiver.url("/flaky", 503, 500)
    notification_id = await send(platform, channel="webhook", to=url, body="again")
    done = await settled(platform, notification_id)
    assert done["status"] == "delivered", done
    assert done["attempts"] == 3
    hooks = receiver.at("/flaky")
    assert len(hooks) == 3
    assert {h.headers["webhook-id"] for h in hooks} == {notification_id}
    for hook in hooks:
        Webhook(secret).verify(hook.body, hook.headers)
    assert len({h.body for h in hooks}) == 1


async def test_a_send_that_keeps_failing_ends_failed_with_the_last_error(
    platform: Platform, receiver: Receiver
) -> None:
    await new_secret(platform)
    url = receiver.url("/down", 503, 503, 503, 503, 503)
    notification_id = await send(platform, channel="webhook", to=url, body="x")
    done = await settled(platform, notification_id)
    assert done["status"] == "failed"
    assert done["attempts"] == 4  # max_attempts of the test platform
    assert "answered 503" in done["last_error"]
    assert "after 4 attempts" in done["last_error"]
    assert done["delivered_at"] is None


async def test_a_permanent_refusal_is_not_retried(platform: Platform, receiver: Receiver) -> None:
    await new_secret(platform)
    notification_id = await send(
        platform, channel="webhook", to=receiver.url("/gone", 410), body="x"
    )
    done = await settled(platform, notification_id)
    assert (done["status"], done["attempts"]) == ("failed", 1)
    assert done["last_error"] == "the webhook answered 410"


async def test_private_addresses_are_refused_unless_allow_listed(
    platform: Platform, receiver: Receiver
) -> None:
    await new_secret(platform)
    # 127.0.0.1 is allow-listed on the test platform; 127.0.0.2 and 10.0.0.1 are not.
    port = receiver.base.rsplit(":", 1)[1]
    for url in (f"http://127.0.0.2:{port}/private", "http://10.0.0.1/private"):
        notification_id = await send(platform, channel="webhook", to=url, body="x")
        done = await settled(platform, notification_id)
        assert (done["status"], done["attempts"]) == ("failed", 1), done
        assert "not a public address" in done["last_error"]
        assert "ORCHESTRION_NOTIFICATIONS__WEBHOOK_ALLOWLIST" in done["last_error"]
    assert receiver.at("/private") == []


async def test_a_webhook_without_a_secret_fails_saying_how_to_make_one(
    platform: Platform, receiver: Receiver
) -> None:
    notification_id = await send(platform, channel="webhook", to=receiver.url("/h"), body="x")
    done = await settled(platform, notification_id)
    assert done["status"] == "failed"
    assert "webhook-secrets" in done["last_error"]
    assert receiver.at("/h") == []


async def test_a_rotated_secret_keeps_signing_during_its_grace_period(
    platform: Platform, receiver: Receiver
) -> None:
    old = await new_secret(platform)
    new = await new_secret(platform)
    notification_id = await send(platform, channel="webhook", to=receiver.url("/rot"), body="x")
    assert (await settled(platform, notification_id))["status"] == "delivered"
    [hook] = receiver.at("/rot")
    assert len(hook.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(hook.body, hook.headers)
    Webhook(new).verify(hook.body, hook.headers)
    listed = await platform.http.get(
        "/api/v1/notifications/webhook-secrets", headers=platform.admin
    )
    assert listed.status_code == 200, listed.text
    secrets = listed.json()["data"]
    assert [s["active"] for s in secrets] == [True, True]
    assert secrets[0]["retired_at"] is None
    assert secrets[1]["expires_at"] is not None
    assert "secret" not in secrets[0]


async def test_the_same_idempotency_key_gives_the_same_notification(
    platform: Platform, smtp_server: SmtpServer
) -> None:
    body = {"channel": "email", "to": "ada@example.com", "subject": "Once", "body": "only once"}
    headers = {**platform.admin, "Idempotency-Key": "send-42"}
    first = await platform.http.post("/api/v1/notifications", json=body, headers=headers)
    again = await platform.http.post("/api/v1/notifications", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await platform.http.post(
        "/api/v1/notifications", json={**body, "body": "changed"}, headers=headers
    )
    assert other.status_code == 422
    await settled(platform, first.json()["id"])
    assert len(smtp_server.mailbox.messages) == 1


async def test_channels_without_a_provider_fail_clearly(platform: Platform) -> None:
    for channel, to in (("sms", "+14155550100"), ("push", "device-token-1")):
        notification_id = await send(platform, channel=channel, to=to, body="x")
        done = await settled(platform, notification_id)
        assert done["status"] == "failed"
        assert "is not configured" in done["last_error"]
