"""A person's records in the content service: who uploaded a document or a plugin is
exported, and anonymised on erasure while the tenant keeps the document as it was."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from orchestrion.kernel.audit import anonymous_actor
from orchestrion.kernel.personal import Person
from orchestrion.services.content import personal
from orchestrion.services.content.models import ContentDocument
from orchestrion.settings import Settings, open_database
from tests.conftest import user_headers
from tests.services.content.helpers import BASE, add_text, upload
from tests.services.content.plugins.conftest import wasm


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.get("/api/v1/auth/me", headers=headers)
    assert response.status_code == 200, response.text
    user_id: str = response.json()["id"]
    return user_id


async def records(settings: Settings, person: Person, *, erase: bool = False) -> dict[str, Any]:
    """The service's export of ``person``, after erasing them when ``erase``."""
    database = open_database(settings)
    try:
        if erase:
            async with database.session() as session:
                await personal.erase(session, person)
        async with database.session() as session:
            return await personal.export(session, person)
    finally:
        await database.dispose()


async def test_uploads_are_exported_then_anonymised_and_kept(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    pat = await user_headers(client, admin_headers, email="pat@example.com", roles=["editor"])
    pat_id = await me(client, pat)
    admin_id = await me(client, admin_headers)
    # A file named after its uploader: the name is the tenant's data, kept on erasure.
    document = await upload(client, pat, b"Pat's curriculum vitae.\n", filename="pat-cv.txt")
    plugin = await client.post(
        "/api/v1/plugins",
        data={"name": "echo"},
        files={"module": ("echo.wasm", wasm("echo"), "application/wasm")},
        headers=pat,
    )
    assert plugin.status_code == 201, plugin.text
    theirs = await add_text(client, admin_headers, "The admin's own notes.", title="admin")

    person = Person(user_id=pat_id, tenant_id=document["tenant_id"])
    before = await records(settings, person)
    assert before["documents"] == [
        {
            "id": document["id"],
            "title": "pat-cv.txt",
            "content_type": "text/plain",
            "size": len(b"Pat's curriculum vitae.\n"),
            "status": "processed",
            "created_by": pat_id,
            "created_at": document["created_at"],
        }
    ]
    assert [(p["id"], p["name"], p["created_by"]) for p in before["plugins"]] == [
        (plugin.json()["id"], "echo", pat_id)
    ]
    # Who uploaded it is not part of the public answer (API.md does not list it).
    shown = await client.get(f"{BASE}/{document['id']}", headers=admin_headers)
    assert shown.status_code == 200
    assert "created_by" not in shown.json()
    assert "created_by" not in plugin.json()

    after = await records(settings, person, erase=True)
    pseudonym = anonymous_actor(pat_id)
    assert [(d["id"], d["title"], d["created_by"]) for d in after["documents"]] == [
        (document["id"], "pat-cv.txt", pseudonym)
    ]
    assert [p["created_by"] for p in after["plugins"]] == [pseudonym]
    assert pat_id not in str(after)
    # The tenant's document is unchanged for everyone: same ETag, same text.
    still = await client.get(f"{BASE}/{document['id']}", headers=admin_headers)
    assert still.status_code == 200
    assert still.headers["etag"] == shown.headers["etag"]
    text = await client.get(f"{BASE}/{document['id']}/text", headers=admin_headers)
    assert text.text == "Pat's curriculum vitae."
    # Someone else's upload is not touched.
    database = open_database(settings)
    try:
        async with database.session() as session:
            owner = await session.scalar(
                select(ContentDocument.created_by).where(ContentDocument.id == theirs["id"])
            )
    finally:
        await database.dispose()
    assert owner == admin_id

    # The event delivered again changes nothing.
    assert await records(settings, person, erase=True) == after
