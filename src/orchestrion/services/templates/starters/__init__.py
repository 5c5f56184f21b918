"""The starter templates and their seeding.

:func:`seed` runs at every start of the service and is idempotent: a starter missing from
the database is written (public, owned by the platform); one stored at an older version
is upgraded in place with a new version row, keeping its ratings and installs; one at
its version or newer is left alone. Two processes starting at once may race on a slug:
the loser's transaction fails on the unique slug and it tries again, finding the rows.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from orchestrion.kernel.db.engine import Database
from orchestrion.services.templates import repository
from orchestrion.services.templates.models import PLATFORM_TENANT, TplTemplate
from orchestrion.services.templates.starters.catalog import STARTERS as _FIRST
from orchestrion.services.templates.starters.catalog import Starter
from orchestrion.services.templates.starters.more import STARTERS as _MORE

__all__ = ["STARTERS", "Starter", "seed"]

STARTERS: list[Starter] = [*_FIRST, *_MORE]
logger = logging.getLogger("orchestrion.templates")
_ATTEMPTS = 3


def _content(starter: Starter) -> dict[str, object]:
    return {
        "name": starter.name,
        "description": starter.description,
        "category": starter.category,
        "tags": list(starter.tags),
        "parameters": starter.parameters,
        "definition": starter.definition,
    }


async def _seed_once(database: Database) -> int:
    changed = 0
    async with database.session() as session:
        stored = await repository.starter_versions(session, [s.slug for s in STARTERS])
        for starter in STARTERS:
            if stored.get(starter.slug, 0) >= starter.version:
                continue  # the usual start: one query finds every starter current
            template = await repository.get_by_slug(session, starter.slug)
            if template is None:
                template = TplTemplate(
                    tenant_id=PLATFORM_TENANT,
                    created_by=None,
                    slug=starter.slug,
                    visibility="public",
                    rating_count=0,
                    rating_average=0.0,
                    installs=0,
                    version=starter.version,
                    **_content(starter),
                )
                session.add(template)
                await session.flush()
            else:
                for key, value in _content(starter).items():
                    setattr(template, key, value)
                template.version = starter.version
            await repository.set_tags(session, template_id=template.id, tags=starter.tags)
            repository.add_version(session, template)
            await session.flush()
            changed += 1
    return changed


async def seed(database: Database) -> None:
    """Write or upgrade the starter templates (see the module's docstring)."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            changed = await _seed_once(database)
        except IntegrityError:
            if attempt == _ATTEMPTS:
                raise
            logger.info("starter templates seeded concurrently; reading them again")
            continue
        if changed:
            logger.info("seeded %d starter templates", changed)
        return
