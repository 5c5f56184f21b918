"""Queries of the templates service."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.http.lists import ListSpec, equals
from orchestrion.kernel.ids import utcnow
from orchestrion.services.templates.models import TplRating, TplTag, TplTemplate, TplVersion

_FIELDS = frozenset(
    {
        "id",
        "tenant_id",
        "slug",
        "name",
        "description",
        "category",
        "tags",
        "parameters",
        "definition",
        "version",
        "visibility",
        "rating",
        "installs",
        "created_by",
        "created_at",
        "updated_at",
    }
)


def _has_tag(value: str) -> ColumnElement[bool]:
    return exists().where(TplTag.template_id == TplTemplate.id, TplTag.tag == value)


def _visibility(value: str) -> ColumnElement[bool]:
    return TplTemplate.visibility == value


TEMPLATE_LIST = ListSpec(
    sortable={
        "created_at": TplTemplate.created_at,
        "updated_at": TplTemplate.updated_at,
        "name": TplTemplate.name,
        "category": TplTemplate.category,
        "rating": TplTemplate.rating_average,
        "installs": TplTemplate.installs,
        "version": TplTemplate.version,
    },
    filters={
        "category": equals(TplTemplate.category),
        "tag": _has_tag,
        "visibility": _visibility,
        "name": equals(TplTemplate.name),
        "q": lambda value: matching(value),
    },
    fields=_FIELDS,
    id_column=TplTemplate.id,
)

VERSION_LIST = ListSpec(
    sortable={"version": TplVersion.version, "created_at": TplVersion.created_at},
    filters={},
    fields=frozenset(
        {
            "template_id",
            "version",
            "name",
            "description",
            "category",
            "tags",
            "parameters",
            "definition",
            "created_by",
            "created_at",
        }
    ),
    default_sort="version:desc",
    id_column=TplVersion.version,
)


def visible_to(tenant_id: str, subject: str) -> ColumnElement[bool]:
    """Templates a principal sees: public ones, its tenant's shared ones, its own."""
    own_tenant = TplTemplate.tenant_id == tenant_id
    return or_(
        TplTemplate.visibility == "public",
        and_(own_tenant, TplTemplate.visibility == "tenant"),
        and_(own_tenant, TplTemplate.created_by == subject),
    )


def _words(q: str) -> list[str]:
    return [w for w in q.lower().split() if w][:10]


def matching(q: str) -> ColumnElement[bool]:
    """Every word of ``q`` in the name or the description, ignoring case."""
    clauses: list[ColumnElement[bool]] = []
    for word in _words(q):
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        clauses.append(
            or_(
                func.lower(TplTemplate.name).like(pattern, escape="\\"),
                func.lower(TplTemplate.description).like(pattern, escape="\\"),
            )
        )
    return and_(*clauses) if clauses else true()


def templates_for(tenant_id: str, subject: str) -> Select[Any]:
    """The templates a principal sees."""
    return select(TplTemplate).where(visible_to(tenant_id, subject))


async def get_visible(
    session: AsyncSession, *, tenant_id: str, subject: str, template_id: str
) -> TplTemplate | None:
    """A template the principal sees, or None."""
    stmt = templates_for(tenant_id, subject).where(TplTemplate.id == template_id)
    found: TplTemplate | None = (await session.execute(stmt)).scalar_one_or_none()
    return found


async def get_by_slug(session: AsyncSession, slug: str) -> TplTemplate | None:
    """The starter with that slug, or None."""
    stmt = select(TplTemplate).where(TplTemplate.slug == slug)
    found: TplTemplate | None = (await session.execute(stmt)).scalar_one_or_none()
    return found


async def starter_versions(session: AsyncSession, slugs: list[str]) -> dict[str, int]:
    """Slug → stored version of the starters among ``slugs`` (one query)."""
    stmt = select(TplTemplate.slug, TplTemplate.version).where(TplTemplate.slug.in_(slugs))
    rows = (await session.execute(stmt)).all()
    return {slug: version for slug, version in rows if slug is not None}


async def set_tags(session: AsyncSession, *, template_id: str, tags: list[str]) -> None:
    """Replace the tag rows of a template."""
    await session.execute(delete(TplTag).where(TplTag.template_id == template_id))
    session.add_all(TplTag(template_id=template_id, tag=tag) for tag in dict.fromkeys(tags))


def add_version(session: AsyncSession, template: TplTemplate) -> None:
    """Record the template's current content as its current version."""
    session.add(
        TplVersion(
            template_id=template.id,
            version=template.version,
            name=template.name,
            description=template.description,
            category=template.category,
            tags=list(template.tags),
            parameters=template.parameters,
            definition=template.definition,
            created_by=template.created_by,
            created_at=utcnow(),
        )
    )


def versions_of(template_id: str) -> Select[Any]:
    """Every version of a template."""
    return select(TplVersion).where(TplVersion.template_id == template_id)


async def categories(session: AsyncSession, *, tenant_id: str, subject: str) -> list[Any]:
    """(category, count) of the templates the principal sees, by name."""
    stmt = (
        select(TplTemplate.category, func.count())
        .where(visible_to(tenant_id, subject))
        .group_by(TplTemplate.category)
        .order_by(TplTemplate.category)
    )
    return list((await session.execute(stmt)).all())


async def upsert_rating(
    session: AsyncSession,
    *,
    template_id: str,
    user_id: str,
    tenant_id: str,
    stars: int,
    comment: str | None,
) -> TplRating:
    """Write the user's rating of the template, replacing an earlier one, in one statement
    (two concurrent ratings by one user cannot both insert)."""
    now = utcnow()
    values = {
        "template_id": template_id,
        "user_id": user_id,
        "tenant_id": tenant_id,
        "stars": stars,
        "comment": comment,
        "created_at": now,
        "updated_at": now,
    }
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(TplRating).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[TplRating.template_id, TplRating.user_id],
        set_={"stars": stars, "comment": comment, "updated_at": now, "tenant_id": tenant_id},
    )
    await session.execute(stmt)
    found = await session.execute(
        select(TplRating)
        .where(TplRating.template_id == template_id, TplRating.user_id == user_id)
        .execution_options(populate_existing=True)
    )
    return found.scalar_one()


async def refresh_rating(session: AsyncSession, *, template_id: str) -> tuple[float, int]:
    """Recompute and store a template's rating summary from its ratings."""
    row = (
        await session.execute(
            select(func.avg(TplRating.stars), func.count()).where(
                TplRating.template_id == template_id
            )
        )
    ).one()
    average = round(float(row[0] or 0.0), 4)
    count = int(row[1])
    await session.execute(
        update(TplTemplate)
        .where(TplTemplate.id == template_id)
        # Marketplace figures are not content: updated_at stays.
        .values(rating_average=average, rating_count=count, updated_at=TplTemplate.updated_at)
        .execution_options(synchronize_session=False)
    )
    return average, count


async def count_install(session: AsyncSession, *, template_id: str) -> None:
    """One more workflow made from the template (an increment in the database, so
    concurrent instantiations all count)."""
    await session.execute(
        update(TplTemplate)
        .where(TplTemplate.id == template_id)
        .values(installs=TplTemplate.installs + 1, updated_at=TplTemplate.updated_at)
        .execution_options(synchronize_session=False)
    )
