"""A person's records in the templates service: exported, or erased.

What names a person here, and what erasure does with it (:mod:`orchestrion.kernel.personal`):

- their **private** templates (only they could see them): **deleted**, with their
  versions, tags and ratings; nobody else could ever use them again.
- their shared and public templates, and the versions they wrote of any template:
  ``created_by`` **anonymised** to ``erased:<digest>``; others use them, and the tenant
  keeps its catalogue.
- their ratings: the user becomes the pseudonym and the comment (free text) goes; the
  stars stay, so a template's rating count and average do not change.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.ids import isoformat
from orchestrion.kernel.personal import Person
from orchestrion.services.templates.models import TplRating, TplTemplate, TplVersion

SERVICE = "templates"


async def export(session: AsyncSession, person: Person) -> dict[str, Any]:
    """Everything of this service that names ``person``."""
    templates = (
        await session.execute(
            select(TplTemplate)
            .where(TplTemplate.created_by.in_(person.ids))
            .order_by(TplTemplate.created_at)
        )
    ).scalars()
    versions = (
        await session.execute(
            select(TplVersion)
            .where(TplVersion.created_by.in_(person.ids))
            .order_by(TplVersion.created_at)
        )
    ).scalars()
    ratings = (
        await session.execute(
            select(TplRating)
            .where(TplRating.user_id.in_(person.ids))
            .order_by(TplRating.created_at)
        )
    ).scalars()
    return {
        "templates": [
            {
                "id": t.id,
                "name": t.name,
                "visibility": t.visibility,
                "version": t.version,
                "created_by": t.created_by,
                "created_at": isoformat(t.created_at),
            }
            for t in templates
        ],
        "template_versions": [
            {
                "template_id": v.template_id,
                "version": v.version,
                "name": v.name,
                "created_by": v.created_by,
                "created_at": isoformat(v.created_at),
            }
            for v in versions
        ],
        "ratings": [
            {
                "template_id": r.template_id,
                "user_id": r.user_id,
                "stars": r.stars,
                "comment": r.comment,
                "created_at": isoformat(r.created_at),
            }
            for r in ratings
        ],
    }


async def erase(session: AsyncSession, person: Person) -> None:
    """Erase ``person`` here (idempotent: a second run finds nothing left to change)."""
    # Versions, tags and ratings of a deleted template cascade with it.
    await session.execute(
        delete(TplTemplate)
        .where(TplTemplate.created_by == person.user_id, TplTemplate.visibility == "private")
        .execution_options(synchronize_session=False)
    )
    for model in (TplTemplate, TplVersion):
        await session.execute(
            update(model)
            .where(model.created_by == person.user_id)
            .values(created_by=person.pseudonym)
            .execution_options(synchronize_session=False)
        )
    await session.execute(
        update(TplRating)
        .where(TplRating.user_id == person.user_id)
        .values(user_id=person.pseudonym, comment=None)
        .execution_options(synchronize_session=False)
    )
