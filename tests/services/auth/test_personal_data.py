"""A person's data across every service: one export gathers it, one erasure deletes or
anonymises it everywhere (each service on ``user.erased``), and audit lines arriving
after the erasure are anonymised on append."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from orchestrion.kernel.audit import Actor, anonymous_actor, record
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.personal import Person, email_digest
from orchestrion.platform import create_embedded_app
from orchestrion.services.auth.models import AuditEvent
from orchestrion.services.content import personal as content
from orchestrion.services.flags import personal as flags
from orchestrion.services.notifications import personal as notifications
from orchestrion.services.templates import personal as templates_personal
from orchestrion.services.workflows import personal as workflows
from orchestrion.settings import Settings, open_database
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_settings, user_headers
from tests.fixtures.lifespan import in_process
from tests.fixtures.processes import free_port

DEADLINE = 60.0
EMAIL = "pat@example.com"
APPROVAL = [{"id": "ok", "type": "approval", "with": {}}]


async def until(check: Callable[[], Awaitable[Any]]) -> Any:
    """``check()``'s first truthy answer (work crosses the bus and the queue)."""
    async with asyncio.timeout(DEADLINE):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.05)


async def ok(response: Awaitable[httpx.Response], *statuses: int) -> Any:
    answer = await response
    assert answer.status_code in (statuses or (200, 201)), answer.text
    return answer.json() if answer.content else None


async def export(client: httpx.AsyncClient, headers: dict[str, str], user_id: str) -> Any:
    return await ok(client.get(f"/api/v1/auth/users/{user_id}/export", headers=headers))


async def a_person_leaves_traces(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> tuple[dict[str, str], str, dict[str, str]]:
    """Pat works in every service; their headers, id and the ids of what they made."""
    pat = await user_headers(client, admin_headers, email=EMAIL, roles=["editor"])
    pat_id = (await ok(client.get("/api/v1/auth/me", headers=pat)))["id"]
    made: dict[str, str] = {}
    # workflows: a workflow, a run of it, and its approval decided by Pat
    workflow = await ok(
        client.post("/api/v1/workflows", json={"name": "pat-flow", "steps": APPROVAL}, headers=pat)
    )
    made["workflow"] = workflow["id"]
    execution = await ok(
        client.post(f"/api/v1/workflows/{workflow['id']}/executions", json={}, headers=pat),
        200,
        201,
        202,
    )
    made["execution"] = execution["id"]

    async def waiting() -> bool:
        body = await ok(client.get(f"/api/v1/executions/{execution['id']}", headers=pat))
        return bool(body["status"] == "waiting")

    await until(waiting)
    await ok(
        client.post(
            f"/api/v1/executions/{execution['id']}/steps/ok/approve",
            json={"approved": True, "data": {}},
            headers=pat,
        )
    )
    # templates: a private one of Pat's, and a rating of the admin's shared one
    mine = await ok(
        client.post(
            "/api/v1/templates",
            json={"name": "pat-private", "definition": {"name": "t", "steps": APPROVAL}},
            headers=pat,
        )
    )
    made["private_template"] = mine["id"]
    shared = await ok(
        client.post(
            "/api/v1/templates",
            json={"name": "team", "definition": {"name": "t", "steps": APPROVAL}},
            headers=admin_headers,
        )
    )
    made["shared_template"] = shared["id"]
    await ok(
        client.post(
            f"/api/v1/templates/{shared['id']}/publish",
            json={"visibility": "tenant"},
            headers=admin_headers,
        )
    )
    await ok(
        client.post(
            f"/api/v1/templates/{shared['id']}/ratings",
            json={"stars": 4, "comment": "Pat likes it"},
            headers=pat,
        )
    )
    # notifications: a message to Pat's inbox, one Pat sends, Pat's preferences
    to_pat = await ok(
        client.post(
            "/api/v1/notifications",
            json={"channel": "in_app", "to": pat_id, "subject": "Hi Pat", "body": "Welcome"},
            headers=admin_headers,
        ),
        201,
        202,
    )
    made["to_pat"] = to_pat["id"]
    from_pat = await ok(
        client.post(
            "/api/v1/notifications",
            json={"channel": "email", "to": "someone@example.net", "subject": "s", "body": "b"},
            headers=pat,
        ),
        201,
        202,
    )
    made["from_pat"] = from_pat["id"]
    await ok(
        client.put(
            "/api/v1/notifications/preferences", json={"muted_channels": ["sms"]}, headers=pat
        )
    )

    # content: a text document Pat uploads (the tenant's knowledge from then on)
    text = {"text": "Notes on the harbour project.", "title": "notes"}
    document = await ok(client.post("/api/v1/content", json=text, headers=pat))
    made["document"] = document["id"]

    async def delivered() -> Any:
        inbox = await ok(client.get("/api/v1/notifications/inbox", headers=pat))
        return inbox["data"]

    await until(delivered)
    return pat, pat_id, made


async def test_export_gathers_every_service_and_erasure_reaches_each(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    pat, pat_id, made = await a_person_leaves_traces(client, admin_headers)
    pseudonym = anonymous_actor(pat_id)

    # The audit lines of Pat's work have crossed the bus to the trail.
    async def audited() -> bool:
        body = await export(client, admin_headers, pat_id)
        actions = {line["action"] for line in body["services"]["auth"]["audit"]}
        return {"workflow.created", "template.created"} <= actions

    await until(audited)
    body = await export(client, admin_headers, pat_id)
    assert body["user"]["email"] == EMAIL
    services = body["services"]
    assert set(services) == {"auth", "workflows", "templates", "notifications", "flags", "content"}
    assert len(services["auth"]["sessions"]) == 1
    flows = services["workflows"]
    assert [w["id"] for w in flows["workflows"]] == [made["workflow"]]
    assert [e["id"] for e in flows["executions"]] == [made["execution"]]
    assert [(a["type"], a["by"]) for a in flows["actions"]] == [("step.approved", EMAIL)]
    templates = services["templates"]
    assert [t["id"] for t in templates["templates"]] == [made["private_template"]]
    assert [(r["template_id"], r["comment"]) for r in templates["ratings"]] == [
        (made["shared_template"], "Pat likes it")
    ]
    notes = services["notifications"]
    assert [i["subject"] for i in notes["inbox"]] == ["Hi Pat"]
    assert notes["preferences"] == [
        {"muted_channels": ["sms"], "updated_at": notes["preferences"][0]["updated_at"]}
    ]
    assert {n["id"] for n in notes["notifications"]} == {made["to_pat"], made["from_pat"]}
    assert services["flags"] == {"flags": []}
    documents = services["content"]["documents"]
    assert [(d["id"], d["title"], d["content_type"], d["created_by"]) for d in documents] == [
        (made["document"], "notes", "text/plain", pat_id)
    ]
    assert services["content"]["plugins"] == []
    # Only those who manage users export them.
    refused = await client.get(f"/api/v1/auth/users/{pat_id}/export", headers=pat)
    assert refused.status_code == 403

    erased = await client.delete(
        f"/api/v1/auth/users/{pat_id}", params={"erase": "true"}, headers=admin_headers
    )
    assert erased.status_code == 204, erased.text
    login = await client.post(
        "/api/v1/auth/login", json={"email": EMAIL, "password": "user-password-1"}
    )
    assert login.status_code == 401

    # Each service handles the erasure from the bus; the re-export shows when all have.
    async def erased_everywhere() -> Any:
        again = await export(client, admin_headers, pat_id)
        flows = again["services"]["workflows"]
        done = (
            flows["workflows"]
            and flows["workflows"][0]["created_by"] == pseudonym
            and flows["actions"]
            and flows["actions"][0]["by"] == pseudonym
            and again["services"]["templates"]["ratings"]
            and again["services"]["templates"]["ratings"][0]["user_id"] == pseudonym
            and not again["services"]["notifications"]["inbox"]
            and again["services"]["content"]["documents"]
            and again["services"]["content"]["documents"][0]["created_by"] == pseudonym
        )
        return again if done else None

    after = await until(erased_everywhere)
    assert after["user"]["erased"] is True
    assert after["user"]["pseudonym"] == pseudonym
    kept = json.dumps(after["services"])
    assert pat_id not in kept
    assert EMAIL not in kept
    assert "Pat likes it" not in kept
    assert pseudonym in kept
    flows = after["services"]["workflows"]
    assert [e["created_by"] for e in flows["executions"]] == [pseudonym]
    templates = after["services"]["templates"]
    assert templates["templates"] == []  # the private one is gone
    assert [(r["stars"], r["comment"]) for r in templates["ratings"]] == [(4, None)]
    notes = after["services"]["notifications"]
    assert notes["preferences"] == []
    assert [(n["id"], n["sent_by"]) for n in notes["notifications"]] == [
        (made["from_pat"], pseudonym)
    ]
    assert [(d["id"], d["title"]) for d in after["services"]["content"]["documents"]] == [
        (made["document"], "notes")
    ]
    # What others see keeps its shape: the rating still counts, the approval still shows,
    # the document is still the tenant's (and never said who uploaded it).
    shared = await ok(
        client.get(f"/api/v1/templates/{made['shared_template']}", headers=admin_headers)
    )
    assert shared["rating"] == {"average": 4.0, "count": 1}
    run = await ok(client.get(f"/api/v1/executions/{made['execution']}", headers=admin_headers))
    approval = next(s for s in run["steps"] if s["id"] == "ok")
    assert approval["output"]["by"] == pseudonym
    kept_document = await ok(
        client.get(f"/api/v1/content/{made['document']}", headers=admin_headers)
    )
    assert kept_document["status"] == "processed"
    assert "created_by" not in kept_document
    # The trail keeps Pat's lines under the pseudonym, and still verifies.
    lines = after["services"]["auth"]["audit"]
    assert lines
    assert {line["actor_id"] for line in lines} == {pseudonym}
    verdict = await ok(client.get("/api/v1/audit/verify", headers=admin_headers))
    assert verdict["ok"] is True, verdict

    # A line Pat's work staged before the erasure, relayed after it, is anonymised.
    database = open_database(settings)
    try:
        late = await stage_late_line(database, tenant_id=after["user"]["tenant_id"], actor=pat_id)

        async def appended() -> Any:
            async with database.session() as session:
                return await session.get(AuditEvent, late)

        line = await until(appended)
        assert (line.actor_id, line.ip, line.user_agent) == (pseudonym, None, None)
        assert line.data == {}
        assert line.erased_at is not None
        async with database.session() as session:
            named = (
                await session.execute(select(AuditEvent.id).where(AuditEvent.actor_id == pat_id))
            ).all()
        assert named == []
    finally:
        await database.dispose()
    verdict = await ok(client.get("/api/v1/audit/verify", headers=admin_headers))
    assert verdict["ok"] is True, verdict

    # The event delivered again: every service's erasure finds nothing left to change.
    database = open_database(settings)
    try:
        person = Person(
            user_id=pat_id, tenant_id=after["user"]["tenant_id"], email_digest=email_digest(EMAIL)
        )
        for service in (workflows, templates_personal, notifications, flags, content):
            async with database.session() as session:
                await service.erase(session, person)
    finally:
        await database.dispose()
    again = await export(client, admin_headers, pat_id)
    for name in ("workflows", "templates", "notifications", "flags", "content"):
        assert again["services"][name] == after["services"][name]


async def stage_late_line(database: Database, *, tenant_id: str, actor: str) -> str:
    """Stage an audit line naming ``actor`` in an outbox, as a service that recorded it
    before the erasure would (its relay publishes it now)."""
    async with database.session() as session:
        return record(
            session,
            service="workflows",
            actor=Actor(
                tenant_id=tenant_id, actor_id=actor, ip="203.0.113.9", user_agent="late/1.0"
            ),
            action="workflow.updated",
            resource_type="workflow",
            resource_id="w-late",
            data={"name": "renamed by Pat"},
        )


async def test_an_export_fails_whole_when_a_service_does_not_answer(
    tmp_path: Path, database_url: str
) -> None:
    # Auth reaches notifications at an address nothing listens on.
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(tmp_path, database_url, peers={"notifications": nowhere})
    async with in_process(create_embedded_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            tokens = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
            admin = {"Authorization": f"Bearer {tokens['access_token']}"}
            pat = await user_headers(client, admin, email=EMAIL, roles=["editor"])
            pat_id = (await ok(client.get("/api/v1/auth/me", headers=pat)))["id"]
            answer = await client.get(f"/api/v1/auth/users/{pat_id}/export", headers=admin)
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["title"] == "Personal Data Unavailable"
    assert "['notifications'] did not answer" in problem["detail"]
    assert [error["loc"] for error in problem["errors"]] == [["services", "notifications"]]
    assert "user" not in problem
