"""Rules of templates: who sees and changes them, versions, ratings and instantiation.

Visibility: ``private`` templates are seen by their author only, ``tenant`` ones by every
user of the owning tenant, ``public`` ones by every tenant. Only the owning tenant
changes, publishes or deletes a template; a template the caller sees but does not own
(another tenant's public one, a starter) is a 403, one it does not see a 404.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.http.lists import ListQuery, Page, fetch_page
from orchestrion.services.templates import repository
from orchestrion.services.templates.errors import NotTemplateOwner, TemplateNotFound
from orchestrion.services.templates.models import PLATFORM_TENANT, TplRating, TplTemplate
from orchestrion.services.templates.schemas import (
    InstantiateRequest,
    RatingCreate,
    TemplateCreate,
    Visibility,
)
from orchestrion.services.templates.substitution import check_template, resolve, substitute

_CONTENT = ("name", "description", "category", "tags", "parameters", "definition")


def to_dict(template: TplTemplate) -> dict[str, Any]:
    """The API shape of a template."""
    return {
        "id": template.id,
        "tenant_id": template.tenant_id,
        "slug": template.slug,
        "name": template.name,
        "description": template.description,
        "category": template.category,
        "tags": list(template.tags),
        "parameters": template.parameters,
        "definition": template.definition,
        "version": template.version,
        "visibility": template.visibility,
        "rating": {"average": template.rating_average, "count": template.rating_count},
        "installs": template.installs,
        "created_by": template.created_by,
        "created_at": template.created_at.isoformat(),
        "updated_at": template.updated_at.isoformat(),
    }


def version_to_dict(version: Any) -> dict[str, Any]:
    """The API shape of a version."""
    return {
        "template_id": version.template_id,
        "version": version.version,
        "name": version.name,
        "description": version.description,
        "category": version.category,
        "tags": list(version.tags),
        "parameters": version.parameters,
        "definition": version.definition,
        "created_by": version.created_by,
        "created_at": version.created_at.isoformat(),
    }


def rating_to_dict(rating: TplRating, template: TplTemplate) -> dict[str, Any]:
    """The API shape of a rating, with the template's summary after it."""
    return {
        "template_id": rating.template_id,
        "user_id": rating.user_id,
        "stars": rating.stars,
        "comment": rating.comment,
        "created_at": rating.created_at.isoformat(),
        "updated_at": rating.updated_at.isoformat(),
        "rating": {"average": template.rating_average, "count": template.rating_count},
    }


def _normalised(data: TemplateCreate) -> dict[str, Any]:
    check_template(data.parameters, data.definition)
    content = data.model_dump()
    content["tags"] = list(dict.fromkeys(t.strip() for t in data.tags if t.strip()))
    content["category"] = data.category.strip().lower() or "general"
    return content


async def create_template(
    session: AsyncSession, *, principal: Principal, data: TemplateCreate
) -> TplTemplate:
    """A private template of the caller's tenant, as version 1."""
    content = _normalised(data)
    template = TplTemplate(
        tenant_id=principal.tenant_id,
        created_by=principal.subject,
        version=1,
        visibility="private",
        rating_count=0,
        rating_average=0.0,
        installs=0,
        **content,
    )
    session.add(template)
    await session.flush()
    await repository.set_tags(session, template_id=template.id, tags=template.tags)
    repository.add_version(session, template)
    await session.flush()
    return template


async def list_templates(session: AsyncSession, *, principal: Principal, query: ListQuery) -> Page:
    """One page of the templates the caller sees (``q`` is one of the list's filters)."""
    stmt = repository.templates_for(principal.tenant_id, principal.subject)
    return await fetch_page(session, stmt, repository.TEMPLATE_LIST, query)


async def categories(session: AsyncSession, *, principal: Principal) -> list[dict[str, Any]]:
    """Each category of the templates the caller sees, with their count, by name."""
    rows = await repository.categories(
        session, tenant_id=principal.tenant_id, subject=principal.subject
    )
    return [{"name": name, "count": count} for name, count in rows]


async def get_template(
    session: AsyncSession, *, principal: Principal, template_id: str
) -> TplTemplate:
    """A template the caller sees; 404 otherwise."""
    template = await repository.get_visible(
        session, tenant_id=principal.tenant_id, subject=principal.subject, template_id=template_id
    )
    if template is None:
        raise TemplateNotFound(f"no template {template_id}")
    return template


def require_owner(principal: Principal, template: TplTemplate) -> None:
    """403 unless the caller's tenant owns the template (starters: the platform's)."""
    if template.tenant_id == PLATFORM_TENANT or template.tenant_id != principal.tenant_id:
        raise NotTemplateOwner(f"template {template.id} belongs to another tenant")


async def update_template(
    session: AsyncSession, *, principal: Principal, template: TplTemplate, data: TemplateCreate
) -> TplTemplate:
    """Replace the content; a change makes a new version, the same content does not."""
    require_owner(principal, template)
    content = _normalised(data)
    if all(getattr(template, key) == content[key] for key in _CONTENT):
        return template
    for key in _CONTENT:
        setattr(template, key, content[key])
    template.version += 1
    await repository.set_tags(session, template_id=template.id, tags=template.tags)
    repository.add_version(session, template)
    await session.flush()
    await session.refresh(template)
    return template


async def delete_template(
    session: AsyncSession, *, principal: Principal, template: TplTemplate
) -> None:
    """Delete a template with its versions, tags and ratings (workflows made from it stay)."""
    require_owner(principal, template)
    await session.delete(template)
    await session.flush()


async def publish(
    session: AsyncSession, *, principal: Principal, template: TplTemplate, visibility: Visibility
) -> TplTemplate:
    """Share the template with its tenant or everyone (or take it back to its author)."""
    require_owner(principal, template)
    template.visibility = visibility
    await session.flush()
    await session.refresh(template)
    return template


async def list_versions(session: AsyncSession, *, template_id: str, query: ListQuery) -> Page:
    """One page of a template's versions (newest first by default)."""
    return await fetch_page(
        session, repository.versions_of(template_id), repository.VERSION_LIST, query
    )


async def rate(
    session: AsyncSession, *, principal: Principal, template: TplTemplate, data: RatingCreate
) -> dict[str, Any]:
    """Record the caller's stars (replacing any earlier rating); the rating with the
    template's new summary."""
    rating = await repository.upsert_rating(
        session,
        template_id=template.id,
        user_id=principal.subject,
        tenant_id=principal.tenant_id,
        stars=data.stars,
        comment=data.comment,
    )
    await repository.refresh_rating(session, template_id=template.id)
    await session.refresh(template)
    return rating_to_dict(rating, template)


def instance_definition(template: TplTemplate, data: InstantiateRequest) -> dict[str, Any]:
    """The workflow definition the template makes with these parameters; 422 naming each
    parameter that fails the schema."""
    values = resolve(template.parameters, data.parameters)
    definition: dict[str, Any] = substitute(template.definition, values)
    definition["name"] = data.name or definition.get("name") or template.name
    if not definition.get("description"):
        definition["description"] = f"Made from template '{template.name}'"
    return definition


async def count_install(session: AsyncSession, *, template_id: str) -> None:
    """One more workflow made from the template."""
    await repository.count_install(session, template_id=template_id)
