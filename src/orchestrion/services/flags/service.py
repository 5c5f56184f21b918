"""Rules of flags: who manages them, what a valid flag is, and evaluation.

Flags are per tenant. Platform administrators manage them (``tenant_id`` picks another
tenant than their own); a tenant's admins read them; any authenticated principal
evaluates a flag of its own tenant for itself (:mod:`.evaluation`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.errors import Forbidden
from orchestrion.kernel.http.lists import ListQuery, Page, fetch_page
from orchestrion.services.flags import events, repository
from orchestrion.services.flags.errors import (
    FlagExists,
    FlagNotFound,
    InvalidFlag,
    NotPlatformAdmin,
)
from orchestrion.services.flags.evaluation import Outcome, Subject, evaluate
from orchestrion.services.flags.models import FlagsFlag
from orchestrion.services.flags.schemas import FlagCreate, FlagUpdate


def to_dict(flag: FlagsFlag) -> dict[str, Any]:
    """The API shape of a flag."""
    return {
        "id": flag.id,
        "tenant_id": flag.tenant_id,
        "key": flag.key,
        "description": flag.description,
        "enabled": flag.enabled,
        "rollout": flag.rollout,
        "variants": list(flag.variants),
        "rules": list(flag.rules),
        "version": flag.version,
        "created_by": flag.created_by,
        "created_at": flag.created_at.isoformat(),
        "updated_at": flag.updated_at.isoformat(),
    }


def tenant_of(principal: Principal, tenant_id: str | None) -> str:
    """The tenant a management call is about: the caller's, or (platform admins only)
    the one it names."""
    if tenant_id is None or tenant_id == principal.tenant_id:
        return principal.tenant_id
    if not principal.is_platform_admin:
        raise Forbidden("only platform administrators choose another tenant's flags")
    return tenant_id


def require_manager(principal: Principal) -> None:
    """Changing flags is for platform administrators holding ``flags:write``."""
    principal.require(Permission.FLAGS_WRITE)
    if not principal.is_platform_admin:
        raise NotPlatformAdmin("creating, changing or deleting flags needs a platform admin")


def _check(variants: list[dict[str, Any]], rules: list[dict[str, Any]]) -> None:
    """Variants and rules that fit together; each error names its field."""
    errors: list[dict[str, Any]] = []
    names = [v["name"] for v in variants]
    if len(set(names)) != len(names):
        errors.append({"loc": ["body", "variants"], "msg": "variant names must be unique"})
    if variants and sum(v["weight"] for v in variants) <= 0:
        errors.append({"loc": ["body", "variants"], "msg": "the weights must not all be 0"})
    for index, rule in enumerate(rules):
        variant = rule.get("variant")
        if variant is not None and rule.get("enabled") is False:
            errors.append(
                {
                    "loc": ["body", "rules", index, "variant"],
                    "msg": "a rule that forces the flag off cannot force a variant",
                }
            )
        elif variant is not None and variant not in names:
            errors.append(
                {
                    "loc": ["body", "rules", index, "variant"],
                    "msg": f"'{variant}' is not one of the flag's variants",
                }
            )
    if errors:
        raise InvalidFlag("; ".join(e["msg"] for e in errors), errors=errors)


def _dump_rules(rules: list[Any]) -> list[dict[str, Any]]:
    return [rule.model_dump(mode="json", exclude_none=True) for rule in rules]


async def create_flag(
    session: AsyncSession, *, principal: Principal, tenant_id: str, data: FlagCreate
) -> FlagsFlag:
    """A new flag of ``tenant_id``, version 1."""
    variants = [v.model_dump() for v in data.variants]
    rules = _dump_rules(data.rules)
    _check(variants, rules)
    if await repository.get_flag(session, tenant_id=tenant_id, key=data.key) is not None:
        raise FlagExists(f"flag '{data.key}' already exists")
    flag = FlagsFlag(
        tenant_id=tenant_id,
        key=data.key,
        description=data.description,
        enabled=data.enabled,
        rollout=round(data.rollout, 2),
        variants=variants,
        rules=rules,
        version=1,
        created_by=principal.subject,
    )
    session.add(flag)
    try:
        await session.flush()
    except IntegrityError:  # created by a concurrent request
        raise FlagExists(f"flag '{data.key}' already exists") from None
    events.changed(session, flag, action="created")
    return flag


async def list_flags(session: AsyncSession, *, tenant_id: str, query: ListQuery) -> Page:
    """One page of a tenant's flags."""
    return await fetch_page(session, repository.flags_of(tenant_id), repository.FLAG_LIST, query)


async def get_flag(session: AsyncSession, *, tenant_id: str, key: str) -> FlagsFlag:
    """The tenant's flag ``key``; 404 otherwise."""
    flag = await repository.get_flag(session, tenant_id=tenant_id, key=key)
    if flag is None:
        raise FlagNotFound(f"flag '{key}' not found")
    return flag


async def update_flag(session: AsyncSession, *, flag: FlagsFlag, data: FlagUpdate) -> FlagsFlag:
    """Change the fields given; a change bumps ``version`` and is announced."""
    changes = data.model_dump(exclude_unset=True)
    # An explicit null means "leave it": every field of a flag has a value.
    changes = {name: value for name, value in changes.items() if value is not None}
    variants = (
        [v.model_dump() for v in data.variants] if data.variants is not None else flag.variants
    )
    rules = _dump_rules(data.rules) if data.rules is not None else flag.rules
    _check(variants, rules)
    if "rollout" in changes:
        changes["rollout"] = round(changes["rollout"], 2)
    changes["variants"], changes["rules"] = variants, rules
    if all(getattr(flag, name) == value for name, value in changes.items()):
        return flag
    for name, value in changes.items():
        setattr(flag, name, value)
    flag.version += 1
    await session.flush()
    events.changed(session, flag, action="updated")
    return flag


async def delete_flag(session: AsyncSession, *, flag: FlagsFlag) -> None:
    """Delete the flag; it answers 404 from now on."""
    flag.version += 1
    events.changed(session, flag, action="deleted")
    await session.delete(flag)
    await session.flush()


def subject_of(principal: Principal) -> Subject:
    """What rules can see of the caller: its identity only."""
    attributes = {"id": principal.subject, "kind": principal.kind}
    if principal.email:
        attributes["email"] = principal.email
        attributes["email_domain"] = principal.email.rpartition("@")[2].lower()
    return Subject(
        id=principal.subject,
        tenant_id=principal.tenant_id,
        roles=tuple(principal.roles),
        attributes=attributes,
    )


async def evaluate_flag(
    session: AsyncSession, *, principal: Principal, key: str
) -> tuple[FlagsFlag, Outcome]:
    """The caller's answer from its tenant's flag ``key``."""
    flag = await get_flag(session, tenant_id=principal.tenant_id, key=key)
    outcome = evaluate(
        key=flag.key,
        enabled=flag.enabled,
        rollout=flag.rollout,
        variants=flag.variants,
        rules=flag.rules,
        subject=subject_of(principal),
    )
    return flag, outcome


def evaluation_to_dict(flag: FlagsFlag, outcome: Outcome) -> dict[str, Any]:
    """The API shape of an evaluation."""
    return {
        "key": flag.key,
        "enabled": outcome.enabled,
        "variant": outcome.variant,
        "reason": outcome.reason,
        "version": flag.version,
    }
