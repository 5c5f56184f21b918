"""A person's data, everywhere: exported whole, or erased.

Export gathers auth's own records (user, sessions, API keys, provider identities, the
audit lines they appear in) and every other service's, asked over HTTP
(``POST /internal/<service>/personal-data``, :mod:`orchestrion.kernel.personal`), into
one document ``{"user", "services": {"auth", "workflows", ...}}``. A service that does
not answer fails the whole export (503 naming it): a partial export is never presented
as complete.

Erasure deletes the user with their sessions, API keys and provider identities (they
cascade), anonymises their audit lines (the actor becomes ``erased:<digest>``; address,
user agent and data are blanked, their digest stays in the chain, which still verifies),
remembers the erased ids by digest (:class:`Erasure`: a late audit line naming them is
anonymised on append) and stages ``orchestrion.user.erased`` on ``auth.events`` in the
same transaction, for every other service to delete or anonymise its own records.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.audit import USER_ERASED, USERS_TOPIC, anonymous_actor
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.bus.events import CloudEvent
from orchestrion.kernel.bus.outbox import stage
from orchestrion.kernel.ids import isoformat, utcnow
from orchestrion.kernel.personal import PATH, Person, email_digest
from orchestrion.services.auth import service
from orchestrion.services.auth.audit.service import line_to_dict
from orchestrion.services.auth.errors import PersonalDataUnavailable, UserNotFound
from orchestrion.services.auth.models import (
    ApiKey,
    AuditEvent,
    AuthSession,
    Erasure,
    SsoIdentity,
    User,
)

#: How long one service may take to answer its part of an export.
EXPORT_TIMEOUT_SECONDS = 30.0


def id_digest(value: str) -> str:
    """How :class:`Erasure` knows an id without keeping it."""
    return hashlib.sha256(value.encode()).hexdigest()


async def _key_ids(session: AsyncSession, user_id: str) -> list[str]:
    result = await session.execute(select(ApiKey.id).where(ApiKey.user_id == user_id))
    return list(result.scalars())


def _theirs(user_id: str, key_ids: list[str]) -> Any:
    actors = [user_id, *key_ids]
    return or_(
        AuditEvent.actor_id.in_(actors),
        (AuditEvent.target_type == "user") & (AuditEvent.target_id == user_id),
    )


# --- export --------------------------------------------------------------------------


async def own_records(session: AsyncSession, *, user: User) -> dict[str, Any]:
    """Every record auth holds about ``user``, but the user row itself."""
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


async def erased_records(session: AsyncSession, *, erasure: Erasure) -> dict[str, Any]:
    """What auth keeps of an erased person: audit lines under their pseudonym only."""
    lines = (
        await session.execute(
            select(AuditEvent)
            .where(AuditEvent.actor_id == erasure.actor)
            .order_by(AuditEvent.created_at, AuditEvent.id)
        )
    ).scalars()
    return {
        "sessions": [],
        "api_keys": [],
        "sso_identities": [],
        "audit": [line_to_dict(line) for line in lines],
    }


async def subject_of(
    session: AsyncSession, *, principal: Principal, user_id: str
) -> tuple[dict[str, Any], Person, dict[str, Any]]:
    """The ``user`` part of an export, whom the services are asked about, and auth's own
    records: a live user, or one erased (404 for neither, or of another tenant)."""
    try:
        user = await service.get_user(session, principal=principal, user_id=user_id)
    except UserNotFound:
        erasure = await session.get(Erasure, id_digest(user_id))
        visible = erasure is not None and erasure.kind == "user"
        if not visible or (
            erasure is not None
            and erasure.tenant_id != principal.tenant_id
            and not principal.is_platform_admin
        ):
            raise
        assert erasure is not None
        about = {
            "id": user_id,
            "tenant_id": erasure.tenant_id,
            "erased": True,
            "pseudonym": erasure.actor,
            "erased_at": isoformat(erasure.erased_at),
        }
        person = Person(user_id=user_id, tenant_id=erasure.tenant_id)
        return about, person, await erased_records(session, erasure=erasure)
    person = Person(
        user_id=user.id, tenant_id=user.tenant_id, email_digest=email_digest(user.email)
    )
    return service.user_to_dict(user), person, await own_records(session, user=user)


async def gather(
    peers: Mapping[str, httpx.AsyncClient], *, names: list[str], person: Person
) -> dict[str, Any]:
    """Every service's records of ``person``, by service name; 503 naming the services
    that did not answer (or are not reachable at all)."""

    async def one(name: str) -> Any:
        client = peers.get(name)
        if client is None:
            raise LookupError("no address known")
        response = await client.post(
            PATH.format(service=name),
            json=person.model_dump(),
            timeout=EXPORT_TIMEOUT_SECONDS,
        )
        if response.status_code != 200:
            raise LookupError(f"answered {response.status_code}")
        return response.json()

    answers = await asyncio.gather(*(one(name) for name in names), return_exceptions=True)
    failed = {
        name: answer
        for name, answer in zip(names, answers, strict=True)
        if isinstance(answer, BaseException)
    }
    if failed:
        for answer in failed.values():
            if not isinstance(answer, (LookupError, httpx.HTTPError, ValueError)):
                raise answer  # a bug here, not a service down
        reasons = "; ".join(f"{name}: {_reason(error)}" for name, error in failed.items())
        raise PersonalDataUnavailable(
            f"the export is incomplete, so none is given: {sorted(failed)} did not answer "
            f"({reasons})",
            errors=[
                {"loc": ["services", name], "msg": _reason(error)} for name, error in failed.items()
            ],
        )
    return dict(zip(names, answers, strict=True))


def _reason(error: BaseException) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    if isinstance(error, httpx.HTTPError):
        return f"unreachable ({type(error).__name__})"
    return str(error) or type(error).__name__


# --- erasure -------------------------------------------------------------------------


async def erase_user(session: AsyncSession, *, principal: Principal, user: User, ip: str) -> None:
    """Erase ``user`` here and announce it to every other service."""
    user_id, tenant_id = user.id, user.tenant_id
    person = Person(user_id=user_id, tenant_id=tenant_id, email_digest=email_digest(user.email))
    key_ids = await _key_ids(session, user_id)
    await service.delete_user(session, principal=principal, user=user)
    anonymous = anonymous_actor(user_id)
    now = utcnow()
    await session.execute(
        update(AuditEvent)
        .where(AuditEvent.actor_id.in_([user_id, *key_ids]))
        .values(actor_id=anonymous, ip=None, user_agent=None, data={}, erased_at=now)
    )
    # Lines about them (their creation...) keep their actor and resource id: the id is
    # part of the chain's content, and names no one once the account is gone.
    await session.execute(
        update(AuditEvent)
        .where(AuditEvent.target_type == "user", AuditEvent.target_id == user_id)
        .values(data={}, erased_at=now)
    )
    for kind, ident in (("user", user_id), *(("api_key", key_id) for key_id in key_ids)):
        if await session.get(Erasure, id_digest(ident)) is None:
            session.add(
                Erasure(
                    digest=id_digest(ident),
                    kind=kind,
                    tenant_id=tenant_id,
                    actor=anonymous,
                    erased_at=now,
                )
            )
    stage(
        session,
        topic=USERS_TOPIC,
        event_=CloudEvent(
            source="orchestrion/auth",
            type=USER_ERASED,
            subject=f"users/{anonymous}",
            data={**person.model_dump(), "actor": anonymous},
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


async def anonymise_late_line(session: AsyncSession, line: AuditEvent) -> None:
    """Anonymise ``line`` before it is appended if it names someone already erased (it
    left another service's outbox after the erasure)."""
    erasure = await session.get(Erasure, id_digest(line.actor_id)) if line.actor_id else None
    if erasure is not None:
        line.actor_id = erasure.actor
        line.ip = None
        line.user_agent = None
        line.data = {}
        line.erased_at = utcnow()
    if line.target_type == "user" and line.target_id:
        about = await session.get(Erasure, id_digest(line.target_id))
        if about is not None:
            # Not chained yet: unlike older lines, its resource id can take the pseudonym.
            line.target_id = about.actor
            line.data = {}
            line.erased_at = line.erased_at or utcnow()
