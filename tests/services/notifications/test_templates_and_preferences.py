"""Templates (sandboxed, versioned), preferences and the in-app inbox."""

from __future__ import annotations

from typing import Any

from tests.conftest import user_headers
from tests.services.notifications.conftest import Platform, SmtpServer, send, settled


async def _template(platform: Platform, **body: Any) -> dict[str, Any]:
    response = await platform.http.post(
        "/api/v1/notifications/templates", json=body, headers=platform.admin
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_send_renders_the_newest_version_of_its_template(
    platform: Platform, smtp_server: SmtpServer
) -> None:
    first = await _template(
        platform, name="welcome", channel="email", subject="Hi {{ name }}", body="v1"
    )
    second = await _template(
        platform,
        name="welcome",
        channel="email",
        subject="Welcome, {{ name }}!",
        body="{% for item in items %}- {{ item }}\n{% endfor %}",
    )
    assert (first["version"], second["version"]) == (1, 2)
    notification_id = await send(
        platform,
        channel="email",
        to="ada@example.com",
        template="welcome",
        data={"name": "Ada", "items": ["a", "b"]},
    )
    done = await settled(platform, notification_id)
    assert done["status"] == "delivered", done
    assert (done["subject"], done["template"], done["template_version"]) == (
        "Welcome, Ada!",
        "welcome",
        2,
    )
    [message] = smtp_server.mailbox.messages
    assert message["Subject"] == "Welcome, Ada!"
    assert message.get_content().splitlines() == ["- a", "- b"]
    listed = await platform.http.get(
        "/api/v1/notifications/templates",
        params={"name": "welcome", "sort": "version:asc"},
        headers=platform.admin,
    )
    assert [t["version"] for t in listed.json()["data"]] == [1, 2]
    got = await platform.http.get(
        f"/api/v1/notifications/templates/{first['id']}", headers=platform.admin
    )
    assert got.json()["body"] == "v1"


async def test_templates_are_per_channel_and_sandboxed(platform: Platform) -> None:
    await _template(platform, name="alert", channel="sms", body="{{ x.__class__.__mro__ }}")
    # No email template of that name: a 422 at once, nothing queued.
    missing = await platform.http.post(
        "/api/v1/notifications",
        json={"channel": "email", "to": "a@b.co", "template": "alert"},
        headers=platform.admin,
    )
    assert missing.status_code == 422, missing.text
    assert "no email template named 'alert'" in missing.json()["detail"]
    unsafe = await platform.http.post(
        "/api/v1/notifications",
        json={"channel": "sms", "to": "+14155550100", "template": "alert", "data": {"x": 1}},
        headers=platform.admin,
    )
    assert unsafe.status_code == 422, unsafe.text
    assert "unsafe" in unsafe.json()["detail"]
    await _template(
        platform,
        name="loop",
        channel="sms",
        body="{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    )
    looping = await platform.http.post(
        "/api/v1/notifications",
        json={"channel": "sms", "to": "+14155550100", "template": "loop"},
        headers=platform.admin,
    )
    assert looping.status_code == 422, looping.text
    assert "loops more than" in looping.json()["detail"]
    broken = await platform.http.post(
        "/api/v1/notifications/templates",
        json={"name": "broken", "channel": "email", "body": "{% if %}"},
        headers=platform.admin,
    )
    assert broken.status_code == 422, broken.text
    assert broken.json()["errors"][0]["loc"] == ["body", "body"]


async def test_a_send_needs_a_body_or_a_template_and_a_to_fit_for_its_channel(
    platform: Platform,
) -> None:
    for body in (
        {"channel": "email", "to": "ada@example.com"},
        {"channel": "email", "to": "not an address", "body": "x"},
        {"channel": "email", "to": "a@b.co\r\nBcc: c@d.e", "body": "x"},
        {"channel": "webhook", "to": "ftp://example.com/", "body": "x"},
        {"channel": "sms", "to": "0123", "body": "x"},
        {"channel": "carrier-pigeon", "to": "x", "body": "x"},
    ):
        response = await platform.http.post(
            "/api/v1/notifications", json=body, headers=platform.admin
        )
        assert response.status_code == 422, (body, response.text)


async def test_a_muted_channel_sends_nothing_and_says_why(
    platform: Platform, smtp_server: SmtpServer
) -> None:
    put = await platform.http.put(
        "/api/v1/notifications/preferences",
        json={"muted_channels": ["email", "sms"]},
        headers=platform.admin,
    )
    assert put.status_code == 200, put.text
    got = await platform.http.get("/api/v1/notifications/preferences", headers=platform.admin)
    assert got.json() == {"muted_channels": ["email", "sms"]}
    notification_id = await send(platform, channel="email", to="ada@example.com", body="x")
    done = await settled(platform, notification_id)
    assert (done["status"], done["attempts"]) == ("failed", 0)
    assert "email channel is muted" in done["last_error"]
    assert smtp_server.mailbox.messages == []
    bad = await platform.http.put(
        "/api/v1/notifications/preferences",
        json={"muted_channels": ["fax"]},
        headers=platform.admin,
    )
    assert bad.status_code == 422


async def test_in_app_messages_land_in_the_recipients_inbox_only(platform: Platform) -> None:
    viewer = await user_headers(
        platform.http, platform.admin, email="viewer@example.com", roles=["viewer"]
    )
    me = await platform.http.get("/api/v1/auth/me", headers=viewer)
    viewer_id = me.json()["id"]
    notification_id = await send(
        platform, channel="in_app", to=viewer_id, subject="Approve?", body="A run waits",
        data={"execution_id": "e1"},
    )  # fmt: skip
    assert (await settled(platform, notification_id))["status"] == "delivered"
    inbox = await platform.http.get("/api/v1/notifications/inbox", headers=viewer)
    assert inbox.status_code == 200, inbox.text
    [item] = inbox.json()["data"]
    assert (item["subject"], item["body"], item["read"]) == ("Approve?", "A run waits", False)
    assert item["notification_id"] == notification_id
    admin_inbox = await platform.http.get("/api/v1/notifications/inbox", headers=platform.admin)
    assert admin_inbox.json()["data"] == []
    # A viewer reads and marks their own messages, but sends nothing.
    read = await platform.http.post(
        f"/api/v1/notifications/inbox/{item['id']}/read", headers=viewer
    )
    assert read.status_code == 200, read.text
    assert read.json()["read"] is True
    unread = await platform.http.get(
        "/api/v1/notifications/inbox", params={"read": "false"}, headers=viewer
    )
    assert unread.json()["data"] == []
    other = await platform.http.post(
        f"/api/v1/notifications/inbox/{item['id']}/read", headers=platform.admin
    )
    assert other.status_code == 404
    refused = await platform.http.post(
        "/api/v1/notifications",
        json={"channel": "in_app", "to": viewer_id, "body": "x"},
        headers=viewer,
    )
    assert refused.status_code == 403


async def test_another_tenant_sees_none_of_it(platform: Platform) -> None:
    notification_id = await send(platform, channel="email", to="ada@example.com", body="x")
    tenant = await platform.http.post(
        "/api/v1/auth/tenants", json={"name": "other"}, headers=platform.admin
    )
    other = await user_headers(
        platform.http,
        platform.admin,
        email="editor@other.example",
        roles=["editor"],
        tenant_id=tenant.json()["id"],
    )
    got = await platform.http.get(f"/api/v1/notifications/{notification_id}", headers=other)
    assert got.status_code == 404
    listed = await platform.http.get("/api/v1/notifications", headers=other)
    assert listed.json()["meta"]["total"] == 0
    mine = await platform.http.get(
        "/api/v1/notifications", params={"channel": "email"}, headers=platform.admin
    )
    assert [n["id"] for n in mine.json()["data"]] == [notification_id]
