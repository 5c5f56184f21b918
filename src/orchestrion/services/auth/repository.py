"""Queries of the auth service."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.http.lists import ListSpec, equals
from orchestrion.services.auth.models import (
    ApiKey,
    AuditEvent,
    AuthSession,
    HmacKey,
    RefreshToken,
    Tenant,
    User,
)

TENANT_LIST = ListSpec(
    sortable={"created_at": Tenant.created_at, "name": Tenant.name},
    filters={"name": equals(Tenant.name)},
    fields=frozenset({"id", "name", "created_at"}),
    default_sort="name:asc",
    id_column=Tenant.id,
)

USER_LIST = ListSpec(
    sortable={"created_at": User.created_at, "email": User.email},
    filters={
        "email": equals(User.email),
        "tenant_id": equals(User.tenant_id),
        "is_active": lambda v: User.is_active.is_(v.lower() in ("1", "true", "yes")),
    },
    fields=frozenset(
        {
            "id",
            "tenant_id",
            "email",
            "roles",
            "permissions",
            "platform_admin",
            "is_active",
            "last_login_at",
            "created_at",
            "updated_at",
        }
    ),
    id_column=User.id,
)

API_KEY_LIST = ListSpec(
    sortable={"created_at": ApiKey.created_at, "name": ApiKey.name},
    filters={"name": equals(ApiKey.name), "user_id": equals(ApiKey.user_id)},
    fields=frozenset(
        {
            "id",
            "name",
            "prefix",
            "scopes",
            "user_id",
            "tenant_id",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "created_at",
        }
    ),
    id_column=ApiKey.id,
)

HMAC_KEY_LIST = ListSpec(
    sortable={"created_at": HmacKey.created_at, "name": HmacKey.name},
    filters={"name": equals(HmacKey.name), "user_id": equals(HmacKey.user_id)},
    fields=frozenset(
        {
            "id",
            "name",
            "scopes",
            "user_id",
            "tenant_id",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "created_at",
        }
    ),
    id_column=HmacKey.id,
)

AUDIT_LIST = ListSpec(
    sortable={"created_at": AuditEvent.created_at, "action": AuditEvent.action},
    filters={
        "action": equals(AuditEvent.action),
        "actor_id": equals(AuditEvent.actor_id),
        "target_id": equals(AuditEvent.target_id),
    },
    fields=frozenset(
        {
            "id",
            "tenant_id",
            "actor_id",
            "action",
            "target_type",
            "target_id",
            "ip",
            "data",
            "created_at",
        }
    ),
    id_column=AuditEvent.id,
)


async def tenant_by_name(session: AsyncSession, name: str) -> Tenant | None:
    """The tenant called ``name``."""
    result = await session.execute(select(Tenant).where(Tenant.name == name))
    return result.scalar_one_or_none()


def tenants(tenant_id: str | None) -> Select[Tenant]:
    """One tenant, or every tenant when None."""
    stmt = select(Tenant)
    return stmt if tenant_id is None else stmt.where(Tenant.id == tenant_id)


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this (normalised) email."""
    result = await session.execute(select(User).where(User.email == email))
    return result.scalar_one_or_none()


async def count_users(session: AsyncSession) -> int:
    """How many users exist on the platform."""
    return int((await session.execute(select(func.count()).select_from(User))).scalar_one())


def users_in(tenant_id: str | None) -> Select[User]:
    """Users of a tenant (every tenant when None)."""
    stmt = select(User)
    return stmt if tenant_id is None else stmt.where(User.tenant_id == tenant_id)


def api_keys_in(tenant_id: str, *, user_id: str | None) -> Select[ApiKey]:
    """API keys of a tenant, or of one user in it."""
    stmt = select(ApiKey).where(ApiKey.tenant_id == tenant_id)
    return stmt if user_id is None else stmt.where(ApiKey.user_id == user_id)


def hmac_keys_in(tenant_id: str, *, user_id: str | None) -> Select[HmacKey]:
    """HMAC keys of a tenant, or of one user in it."""
    stmt = select(HmacKey).where(HmacKey.tenant_id == tenant_id)
    return stmt if user_id is None else stmt.where(HmacKey.user_id == user_id)


async def api_key_by_prefix(session: AsyncSession, prefix: str) -> ApiKey | None:
    """The key whose public prefix is ``prefix``."""
    result = await session.execute(select(ApiKey).where(ApiKey.prefix == prefix))
    return result.scalar_one_or_none()


def audit_in(tenant_id: str | None) -> Select[AuditEvent]:
    """Audit events of a tenant (every tenant when None)."""
    stmt = select(AuditEvent)
    return stmt if tenant_id is None else stmt.where(AuditEvent.tenant_id == tenant_id)


async def refresh_token_by_hash(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    """A refresh token by its digest."""
    result = await session.execute(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash)
    )
    return result.scalar_one_or_none()


async def mark_used(session: AsyncSession, token_id: str, at: datetime) -> bool:
    """Mark a refresh token used unless someone else did first (rotation race)."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
        .values(used_at=at)
    )
    return bool(getattr(result, "rowcount", 0))


async def revoke_session(
    session: AsyncSession, session_id: str, *, at: datetime, reason: str
) -> None:
    """End a login and with it every refresh token of its family."""
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=at, revoked_reason=reason)
    )


async def revoke_user_sessions(
    session: AsyncSession, user_id: str, *, at: datetime, reason: str = "user_changed"
) -> list[str]:
    """End every login of a user (demoted, deactivated, password changed, deleted); the
    ids of the sessions this ended."""
    result = await session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=at, revoked_reason=reason)
        .returning(AuthSession.id)
    )
    return list(result.scalars())
