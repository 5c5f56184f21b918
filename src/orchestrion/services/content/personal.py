"""A person's records in the content service: exported, or anonymised on erasure.

What names a person here, and what erasure does with it (:mod:`orchestrion.kernel.personal`):

- documents and plugins they uploaded (``created_by``): **anonymised** to
  ``erased:<digest>``. A document is the tenant's knowledge, not its uploader's: others
  search it, read it and build on it (the knowledge graph holds its entities, workflows
  cite its chunks), so it stays, like a plugin that the tenant's workflows call.
- what a document or plugin *says* (its title, which may be the uploaded file's name, its
  text, chunks, analysis and tags; a plugin's name and description) is the tenant's
  data, kept as it is, even when it names the person: it is not a record *of* them, and
  telling which words name someone is not a decision a service can make for a tenant.
  A tenant that must remove such a document deletes it (``DELETE /api/v1/content/{id}``).

Documents and plugins stored before ``created_by`` existed name no one and are left out.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.ids import isoformat
from orchestrion.kernel.personal import Person
from orchestrion.services.content.models import ContentDocument
from orchestrion.services.content.plugins.models import ContentPlugin

SERVICE = "content"


async def export(session: AsyncSession, person: Person) -> dict[str, Any]:
    """Every document and plugin ``person`` uploaded (without their bytes or text)."""
    documents = await session.execute(
        select(
            ContentDocument.id,
            ContentDocument.title,
            ContentDocument.content_type,
            ContentDocument.size,
            ContentDocument.status,
            ContentDocument.created_by,
            ContentDocument.created_at,
        )
        .where(ContentDocument.created_by.in_(person.ids))
        .order_by(ContentDocument.created_at, ContentDocument.id)
    )
    plugins = await session.execute(
        select(
            ContentPlugin.id,
            ContentPlugin.name,
            ContentPlugin.version,
            ContentPlugin.sha256,
            ContentPlugin.size_bytes,
            ContentPlugin.created_by,
            ContentPlugin.created_at,
        )
        .where(ContentPlugin.created_by.in_(person.ids))
        .order_by(ContentPlugin.created_at, ContentPlugin.id)
    )
    return {
        "documents": [
            {
                "id": d.id,
                "title": d.title,
                "content_type": d.content_type,
                "size": d.size,
                "status": d.status,
                "created_by": d.created_by,
                "created_at": isoformat(d.created_at),
            }
            for d in documents
        ],
        "plugins": [
            {
                "id": p.id,
                "name": p.name,
                "version": p.version,
                "sha256": p.sha256,
                "size_bytes": p.size_bytes,
                "created_by": p.created_by,
                "created_at": isoformat(p.created_at),
            }
            for p in plugins
        ],
    }


async def erase(session: AsyncSession, person: Person) -> None:
    """Anonymise ``person`` here (idempotent: a second run finds nothing left to change)."""
    # ``updated_at`` is kept (it would move on its own): the public document did not
    # change, so neither do its ETag nor its place in a list sorted by it.
    await session.execute(
        update(ContentDocument)
        .where(ContentDocument.created_by == person.user_id)
        .values(created_by=person.pseudonym, updated_at=ContentDocument.updated_at)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(ContentPlugin)
        .where(ContentPlugin.created_by == person.user_id)
        .values(created_by=person.pseudonym)
        .execution_options(synchronize_session=False)
    )
