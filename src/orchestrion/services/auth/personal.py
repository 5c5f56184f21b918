"""A person's data held by auth: exported whole, or erased.

Erasure deletes the user with their sessions, API keys and provider identities (they
cascade), anonymises their audit lines (the actor becomes ``erased:<digest>``; address,
user agent and data are blanked, their digest stays in the chain, which still verifies)
and stages ``orchestrion.user.erased`` on ``auth.events`` in the same transaction, for
every other service holding personal data to delete or anonymise its own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.audit import USER_ERASED, USERS_TOPIC, anonymous_actor
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.bus.events import CloudEvent
from orchestrion.kernel.bus.outbox import stage
from orchestrion.kernel.ids import isoformat, utcnow
from orchestrion.services.auth import service
from orchestrion.services.auth.audit.service import line_to_dict
from orchestrion.services.auth.models import ApiKey, AuditEvent, AuthSession, SsoIdentity, User


async def _key_ids(session: AsyncSession, user_id: str) -> list[str]:
    result = await session.execute(select(ApiKey.id).where(ApiKey.user_id == user_id))
    return list(result.scalars())


def _theirs(user_id: str, key_ids: list[str]) -> Any:
    actors = [user_id, *key_ids]
    return or_(
        AuditEvent.actor_id.in_(actors),
        (AuditEvent.target_type == "user") & (AuditEvent.target_id == user_id),
    )


async def export_user(session: AsyncSession, *, user: User) -> dict[str, Any]:
    """Every record auth holds about ``user``."""
    sessions = (
        await session.execute(
            select(AuthSession)
            .where(AuthSession.user_id == user.id)
            .order_by(AuthSession.created_at)
        )
    ).scalars()
    keys = (
        await session.execute(
            select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.created_at)
        )
    ).scalars()
    identities = (
        await session.execute(select(SsoIdentity).where(SsoIdentity.user_id == user.id))
    ).scalars()
    key_ids = await _key_ids(session, user.id)
    lines = (
        await session.execute(
            select(AuditEvent)
            .where(_theirs(user.id, key_ids))
            .order_by(AuditEvent.created_at, AuditEvent.id)
        )
    ).scalars()
    return {
        "user": service.user_to_dict(user),
        "sessions": [
            {
                "id": s.id,
                "ip": s.ip,
                "user_agent": s.user_agent,
                "created_at": isoformat(s.created_at),
                "revoked_at": isoformat(s.revoked_at),
                "revoked_reason": s.revoked_reason,
            }
            for s in sessions
        ],
        "api_keys": [service.api_key_to_dict(k) for k in keys],
        "sso_identities": [
            {
                "provider": i.provider,
                "issuer": i.issuer,
                "subject": i.subject,
                "email": i.email,
                "created_at": isoformat(i.created_at),
                "last_login_at": isoformat(i.last_login_at),
            }
            for i in identities
        ],
        "audit": [line_to_dict(line) for line in lines],
    }


async def erase_user(session: AsyncSession, *, principal: Principal, user: User, ip: str) -> None:
    """Erase ``user`` here and announce it to every other service."""
    user_id, tenant_id = user.id, user.tenant_id
    key_ids = await _key_ids(session, user_id)
    await service.delete_user(session, principal=principal, user=user)
    anonymous = anonymous_actor(user_id)
    now = utcnow()
    await session.execute(
        update(AuditEvent)
        .where(AuditEvent.actor_id.in_([user_id, *key_ids]))
        .values(actor_id=anonymous, ip=None, user_agent=None, data={}, erased_at=now)
    )
    await session.execute(
        update(AuditEvent)
        .where(AuditEvent.target_type == "user", AuditEvent.target_id == user_id)
        .values(target_id=None if False else user_id, data={}, erased_at=now)
    )
    stage(
        session,
        topic=USERS_TOPIC,
        event_=CloudEvent(
            source="orchestrion/auth",
            type=USER_ERASED,
            subject=f"users/{user_id}",
            data={"user_id": user_id, "tenant_id": tenant_id, "actor": anonymous},
        ),
    )
    # The line of the erasure names the person only by their anonymous name.
    service.audit(
        session,
        action="user.erased",
        tenant_id=tenant_id,
        actor_id=principal.user_id,
        target_type="user",
        target_id=anonymous,
        ip=ip,
    )
