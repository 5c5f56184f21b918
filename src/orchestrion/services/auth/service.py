"""The rules of the auth service: logins, tokens, tenants, users and API keys.

Functions take keyword arguments and never commit; the caller's unit of work does.
Failures that must still be recorded (a reused refresh token revokes its family) are
raised *after* the recording is flushed, and the endpoint answers with
:func:`~orchestrion.kernel.errors.error_response` so the revocation commits.

What stops working early (an ended session, a revoked or rotated key, a user whose rights
shrank) is recorded with :func:`revoke_later` and announced to every verifier once the
unit of work commits (:mod:`orchestrion.kernel.auth.revocation`); announcing earlier could
let a gateway re-cache a key answer that the commit is about to make stale.
"""

from __future__ import annotations

import hmac
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.audit import current_request_id
from orchestrion.kernel.auth.permissions import (
    ROLE_PERMISSIONS,
    Permission,
    permissions_for_roles,
)
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.auth.revocation import Kind
from orchestrion.kernel.bus.events import CloudEvent
from orchestrion.kernel.bus.outbox import stage
from orchestrion.kernel.http.idempotency import Sealing
from orchestrion.kernel.ids import isoformat, new_id, utcnow
from orchestrion.services.auth import powers, repository
from orchestrion.services.auth.audit.chain import add_line
from orchestrion.services.auth.crypto import digest, hash_password, random_token, verify_password
from orchestrion.services.auth.errors import (
    ApiKeyNotFound,
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidUser,
    NotPlatformAdmin,
    PrivilegeEscalation,
    SelfLockout,
    TenantExists,
    TenantNotFound,
    UserNotFound,
)
from orchestrion.services.auth.keys import KeyRing
from orchestrion.services.auth.models import (
    ApiKey,
    AuditEvent,
    AuthSession,
    HmacKey,
    RefreshToken,
    Tenant,
    User,
)
from orchestrion.services.auth.passwords import PasswordPolicy
from orchestrion.services.auth.throttle import LoginThrottle

AUTH_TOPIC = "auth.events"
INTEGRATION_EVENTS = frozenset(
    {
        "user.created",
        "user.updated",
        "user.deleted",
        "tenant.created",
        "api_key.created",
        "api_key.revoked",
        "api_key.rotated",
    }
)
API_KEY_PREFIX = "orn_"
REFRESH_PREFIX = "ort_"
_REVOKED = "orchestrion.revoked"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class AuthRuntime:
    """Per-process state of the auth service: its configuration, keys and throttle."""

    issuer: str
    audience: str
    access_ttl: timedelta
    refresh_ttl: timedelta
    keys: KeyRing
    throttle: LoginThrottle
    passwords: PasswordPolicy = field(default_factory=PasswordPolicy)
    #: Stored first responses (a new API key's secret) are kept encrypted.
    sealing: Sealing | None = None


# --- audit -------------------------------------------------------------------------


def audit(
    session: AsyncSession,
    *,
    action: str,
    tenant_id: str | None,
    actor_id: str | None,
    target_type: str | None = None,
    target_id: str | None = None,
    ip: str | None = None,
    data: dict[str, Any] | None = None,
    user_agent: str | None = None,
    actor_type: str | None = None,
) -> None:
    """Append a line to the audit trail (chained when the transaction commits) and, for
    changes other services care about, stage an integration event
    (``orchestrion.user.created``...) in the same transaction."""
    if action in INTEGRATION_EVENTS:
        stage(
            session,
            topic=AUTH_TOPIC,
            event_=CloudEvent(
                source="orchestrion/auth",
                type=f"orchestrion.{action}",
                subject=f"{target_type}s/{target_id}" if target_type else None,
                data={
                    "tenant_id": tenant_id,
                    "actor_id": actor_id,
                    "target_id": target_id,
                    **(data or {}),
                },
            ),
        )
    add_line(
        session,
        AuditEvent(
            id=new_id(),
            tenant_id=tenant_id,
            actor_id=actor_id,
            actor_type=actor_type or ("user" if actor_id else None),
            action=action,
            target_type=target_type,
            target_id=target_id,
            ip=ip,
            user_agent=(user_agent or "")[:300] or None,
            request_id=current_request_id(),
            service="auth",
            data=data or {},
            created_at=utcnow(),
        ),
    )


# --- revocations -------------------------------------------------------------------


def revoke_later(session: AsyncSession, kind: Kind, ident: str) -> None:
    """Record that ``kind`` ``ident`` stops working, to announce once ``session`` commits."""
    session.info.setdefault(_REVOKED, []).append((kind, ident))


def committed_revocations(session: AsyncSession) -> list[tuple[Kind, str]]:
    """The revocations recorded in ``session`` (taken: a second call gives none)."""
    revoked: list[tuple[Kind, str]] = session.info.pop(_REVOKED, [])
    return revoked


async def end_user_sessions(
    session: AsyncSession, *, user_id: str, at: datetime, reason: str = "user_changed"
) -> None:
    """End every login of a user, their outstanding access tokens with them, and drop
    cached answers for their API keys (their rights are read again at the next use)."""
    for session_id in await repository.revoke_user_sessions(session, user_id, at=at, reason=reason):
        revoke_later(session, "session", session_id)
    revoke_later(session, "user", user_id)


# --- validation --------------------------------------------------------------------


def normalize_email(email: str) -> str:
    """Lower-cased and trimmed; 422 when it does not look like an address."""
    value = email.strip().lower()
    if not _EMAIL.match(value):
        raise InvalidUser(
            "not a valid email address", errors=[{"loc": ["body", "email"], "msg": "invalid"}]
        )
    return value


def check_roles(roles: list[str]) -> list[str]:
    """The roles, de-duplicated; 422 on an unknown one."""
    unknown = [r for r in roles if r not in ROLE_PERMISSIONS]
    if unknown:
        raise InvalidUser(
            f"unknown role(s): {', '.join(unknown)}; known: {', '.join(ROLE_PERMISSIONS)}",
            errors=[{"loc": ["body", "roles"], "msg": "unknown role"}],
        )
    return list(dict.fromkeys(roles))


def user_permissions(user: User) -> list[str]:
    """What a user may do."""
    return permissions_for_roles(user.roles, platform_admin=user.platform_admin)


def check_can_act_on_user(principal: Principal, user: User, *, action: str) -> None:
    """403 when ``user`` holds a permission the caller does not (see :mod:`.powers`)."""
    target = powers.user_power(user.roles, platform_admin=user.platform_admin)
    powers.check_power(principal, target, action=f"{action} user {user.email}")


# --- tenants -----------------------------------------------------------------------


async def create_tenant(session: AsyncSession, *, name: str) -> Tenant:
    """A new tenant; 409 when the name is taken."""
    if await repository.tenant_by_name(session, name) is not None:
        raise TenantExists(f"a tenant named '{name}' exists")
    tenant = Tenant(name=name)
    session.add(tenant)
    await session.flush()
    return tenant


async def tenant_by_name(session: AsyncSession, *, name: str) -> Tenant:
    """The tenant called ``name``; 404 when there is none."""
    tenant = await repository.tenant_by_name(session, name)
    if tenant is None:
        raise TenantNotFound(f"no tenant named '{name}'")
    return tenant


async def get_tenant(session: AsyncSession, *, principal: Principal, tenant_id: str) -> Tenant:
    """A tenant the caller may see: their own, or any for a platform admin."""
    if tenant_id != principal.tenant_id and not principal.is_platform_admin:
        raise TenantNotFound(f"no tenant {tenant_id}")
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise TenantNotFound(f"no tenant {tenant_id}")
    return tenant


# --- users -------------------------------------------------------------------------


async def create_user(
    session: AsyncSession,
    *,
    tenant_id: str,
    email: str,
    password: str,
    roles: list[str],
    passwords: PasswordPolicy,
    platform_admin: bool = False,
    principal: Principal | None = None,
) -> User:
    """A new user with an argon2id password hash; 409 when the email is taken.

    With ``principal`` (a request, not the command line or the bootstrap), the new user
    may hold no permission the caller lacks (403 ``PrivilegeEscalation``).
    """
    address = normalize_email(email)
    roles = check_roles(roles)
    if principal is not None:
        target = powers.user_power(roles, platform_admin=platform_admin)
        powers.check_power(principal, target, action=f"create user {address}")
    passwords.check(password, email=address)
    if await repository.user_by_email(session, address) is not None:
        raise EmailTaken(f"a user with email '{address}' exists")
    user = User(
        tenant_id=tenant_id,
        email=address,
        password_hash=await hash_password(password),
        roles=roles,
        platform_admin=platform_admin,
        is_active=True,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise EmailTaken(f"a user with email '{address}' exists") from None
    return user


async def get_user(session: AsyncSession, *, principal: Principal, user_id: str) -> User:
    """A user of the caller's tenant (any tenant for a platform admin); else 404."""
    user = await session.get(User, user_id)
    if user is None or (user.tenant_id != principal.tenant_id and not principal.is_platform_admin):
        raise UserNotFound(f"no user {user_id}")
    return user


async def update_user(
    session: AsyncSession,
    *,
    principal: Principal,
    user: User,
    changes: dict[str, Any],
    passwords: PasswordPolicy,
) -> User:
    """Apply changes; a new password, deactivation or lost permissions end the user's
    sessions (their tokens carry the rights they were issued with).

    The caller must hold every permission of the user as they are and as they would be
    (403 ``PrivilegeEscalation``): no re-passwording a platform admin, no raising anyone
    above oneself.
    """
    now = utcnow()
    check_can_act_on_user(principal, user, action="change")
    if changes.get("roles") is not None:
        roles = check_roles(changes["roles"])
        raised = powers.user_power(roles, platform_admin=user.platform_admin)
        powers.check_power(principal, raised, action=f"give user {user.email} these roles")
    if user.id == principal.user_id and (
        changes.get("is_active") is False
        or ("roles" in changes and "admin" not in (changes["roles"] or []))
    ):
        raise SelfLockout("you cannot remove your own admin role or deactivate yourself")
    if changes.get("email") is not None:
        address = normalize_email(changes["email"])
        other = await repository.user_by_email(session, address)
        if other is not None and other.id != user.id:
            raise EmailTaken(f"a user with email '{address}' exists")
        user.email = address
    end_sessions = None
    if changes.get("roles") is not None:
        before = set(user_permissions(user))
        user.roles = check_roles(changes["roles"])
        if before - set(user_permissions(user)):
            end_sessions = "demoted"
    if changes.get("password") is not None:
        passwords.check(changes["password"], email=user.email)
        user.password_hash = await hash_password(changes["password"])
        end_sessions = "password_changed"
    if changes.get("is_active") is not None:
        user.is_active = bool(changes["is_active"])
        if not user.is_active:
            end_sessions = "deactivated"
    if end_sessions is not None:
        await end_user_sessions(session, user_id=user.id, at=now, reason=end_sessions)
    user.updated_at = now
    await session.flush()
    return user


async def delete_user(session: AsyncSession, *, principal: Principal, user: User) -> None:
    """Remove a user with their sessions and API keys."""
    if user.id == principal.user_id:
        raise SelfLockout("you cannot delete yourself")
    check_can_act_on_user(principal, user, action="delete")
    # Noted before the rows go (they cascade with the user): gateways still need the ids.
    await end_user_sessions(session, user_id=user.id, at=utcnow(), reason="user_deleted")
    await session.delete(user)
    await session.flush()


def check_can_manage_tenant(principal: Principal, tenant_id: str) -> None:
    """Admins manage their own tenant; other tenants need platform admin."""
    if tenant_id != principal.tenant_id and not principal.is_platform_admin:
        raise NotPlatformAdmin("only platform admins may manage users of another tenant")


# --- tokens ------------------------------------------------------------------------


async def _issue(
    session: AsyncSession, *, runtime: AuthRuntime, user: User, auth_session: AuthSession
) -> dict[str, Any]:
    now = utcnow()
    claims = {
        "iss": runtime.issuer,
        "aud": runtime.audience,
        "sub": user.id,
        "tid": user.tenant_id,
        "roles": list(user.roles),
        "perms": user_permissions(user),
        "email": user.email,
        "sid": auth_session.id,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + runtime.access_ttl).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    refresh = REFRESH_PREFIX + random_token()
    session.add(
        RefreshToken(
            session_id=auth_session.id,
            token_hash=digest(refresh),
            expires_at=now + runtime.refresh_ttl,
        )
    )
    access = await runtime.keys.sign(session, claims)
    await session.flush()
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": int(runtime.access_ttl.total_seconds()),
    }


async def login(
    session: AsyncSession,
    *,
    runtime: AuthRuntime,
    email: str,
    password: str,
    ip: str,
    user_agent: str | None,
) -> dict[str, Any]:
    """A token pair for valid credentials; 401 otherwise, 429 when throttled."""
    address = email.strip().lower()
    await runtime.throttle.check(email=address, ip=ip)
    user = await repository.user_by_email(session, address)
    valid = await verify_password(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        await runtime.throttle.failed(email=address, ip=ip)
        audit(
            session,
            action="login.failed",
            tenant_id=user.tenant_id if user else None,
            actor_id=user.id if user else None,
            ip=ip,
            user_agent=user_agent,
            data={"email": address},
        )
        await session.flush()
        raise InvalidCredentials("invalid email or password")
    pair, _ = await start_session(session, runtime=runtime, user=user, ip=ip, user_agent=user_agent)
    return pair


async def start_session(
    session: AsyncSession,
    *,
    runtime: AuthRuntime,
    user: User,
    ip: str,
    user_agent: str | None,
    data: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], AuthSession]:
    """A new login of ``user`` (already authenticated) and its first token pair;
    ``data`` goes into the ``login.succeeded`` audit entry (how they signed in)."""
    auth_session = AuthSession(
        user_id=user.id,
        tenant_id=user.tenant_id,
        ip=ip,
        user_agent=(user_agent or "")[:300] or None,
    )
    session.add(auth_session)
    user.last_login_at = utcnow()
    await session.flush()
    audit(
        session,
        action="login.succeeded",
        tenant_id=user.tenant_id,
        actor_id=user.id,
        ip=ip,
        user_agent=user_agent,
        data=data,
    )
    pair = await _issue(session, runtime=runtime, user=user, auth_session=auth_session)
    return pair, auth_session


async def refresh(
    session: AsyncSession, *, runtime: AuthRuntime, refresh_token: str, ip: str
) -> dict[str, Any]:
    """A new pair for a live refresh token; a reused one revokes its whole family."""
    now = utcnow()
    token = await repository.refresh_token_by_hash(session, digest(refresh_token))
    if token is None:
        raise InvalidRefreshToken("unknown refresh token")
    auth_session = await session.get(AuthSession, token.session_id)
    user = await session.get(User, auth_session.user_id) if auth_session else None
    if auth_session is None or user is None:
        raise InvalidRefreshToken("unknown refresh token")
    if auth_session.revoked_at is not None:
        raise InvalidRefreshToken("this session has ended; log in again")
    if token.used_at is not None or not await repository.mark_used(session, token.id, now):
        # Someone presents a token that was already exchanged: it leaked, or was
        # stolen and used first. Either way nobody holding this family is trusted.
        await repository.revoke_session(session, auth_session.id, at=now, reason="reuse")
        revoke_later(session, "session", auth_session.id)
        audit(
            session,
            action="refresh_token.reused",
            tenant_id=user.tenant_id,
            actor_id=user.id,
            target_type="session",
            target_id=auth_session.id,
            ip=ip,
        )
        await session.flush()
        raise InvalidRefreshToken("refresh token reused; the session has been revoked")
    if token.expires_at <= now:
        raise InvalidRefreshToken("refresh token expired; log in again")
    if not user.is_active:
        raise InvalidRefreshToken("this account is disabled")
    return await _issue(session, runtime=runtime, user=user, auth_session=auth_session)


async def logout(
    session: AsyncSession, *, principal: Principal, refresh_token: str | None, ip: str
) -> None:
    """End the caller's session (or the one ``refresh_token`` belongs to, if theirs)."""
    session_id = principal.session_id
    if refresh_token:
        token = await repository.refresh_token_by_hash(session, digest(refresh_token))
        if token is not None:
            owner = await session.get(AuthSession, token.session_id)
            if owner is not None and owner.user_id == principal.user_id:
                session_id = owner.id
    if session_id:
        await repository.revoke_session(session, session_id, at=utcnow(), reason="logout")
        revoke_later(session, "session", session_id)
    audit(
        session,
        action="logout",
        tenant_id=principal.tenant_id,
        actor_id=principal.user_id,
        target_type="session",
        target_id=session_id,
        ip=ip,
    )


async def check_session_alive(session: AsyncSession, *, principal: Principal) -> None:
    """401 when the access token's session was revoked (logout, reuse, disabled)."""
    if principal.kind != "user" or not principal.session_id:
        return
    found = await session.get(AuthSession, principal.session_id)
    if found is None or found.revoked_at is not None:
        raise InvalidCredentials("this session has ended; log in again")


# --- API keys ----------------------------------------------------------------------


def _new_key() -> tuple[str, str, str]:
    prefix = random_token(6).replace("_", "x").replace("-", "x")
    secret = random_token(32)
    return prefix, secret, f"{API_KEY_PREFIX}{prefix}_{secret}"


def check_scopes(principal: Principal, scopes: list[str]) -> list[str]:
    """Scopes must be known permissions the caller holds: a key never exceeds its owner,
    nor the key that created it (403 ``PrivilegeEscalation`` otherwise)."""
    known = {p.value for p in Permission}
    unknown = [s for s in scopes if s not in known]
    if unknown:
        raise InvalidUser(
            f"unknown scope(s): {', '.join(unknown)}",
            errors=[{"loc": ["body", "scopes"], "msg": "unknown scope"}],
        )
    missing = sorted({s for s in scopes if not principal.can(s)})
    if missing:
        holder = "this API key does" if principal.kind == "api_key" else "you do"
        raise PrivilegeEscalation(
            f"cannot create an API key with {', '.join(missing)}, which {holder} not hold "
            "(a key never holds more than the credential that creates it)",
            errors=[{"loc": ["body", "scopes"], "msg": f"missing {s}"} for s in missing],
        )
    return sorted(set(scopes))


async def check_can_act_on_key(
    session: AsyncSession, *, principal: Principal, key: ApiKey, action: str
) -> None:
    """403 when ``key`` can do something the caller cannot.

    A key's power is its scopes within its owner's current permissions, so a user may
    always manage their own keys, while a key that manages keys cannot rotate a broader
    key of its owner (and use its new secret) or an admin a platform admin's key.
    """
    owner = await session.get(User, key.user_id)
    owner_power = frozenset(user_permissions(owner)) if owner is not None else frozenset()
    target = powers.key_power(key.scopes, owner_power=owner_power)
    powers.check_power(principal, target, action=f"{action} API key {key.id}")


async def create_api_key(
    session: AsyncSession,
    *,
    principal: Principal,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
    ip: str,
) -> tuple[ApiKey, str]:
    """A new key for the caller; the raw key is returned once and stored only hashed."""
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidUser(
            "expires_at must be in the future",
            errors=[{"loc": ["body", "expires_at"], "msg": "in the past"}],
        )
    prefix, secret, raw = _new_key()
    row = ApiKey(
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        name=name,
        prefix=prefix,
        secret_hash=digest(secret),
        scopes=check_scopes(principal, scopes),
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    audit(
        session,
        action="api_key.created",
        tenant_id=principal.tenant_id,
        actor_id=principal.user_id,
        target_type="api_key",
        target_id=row.id,
        ip=ip,
        data={"name": name, "scopes": row.scopes},
    )
    return row, raw


def key_visible(row: ApiKey | HmacKey | None, principal: Principal) -> bool:
    """Whether ``principal`` sees a key: their own, or any of the tenant's with
    ``users:write``."""
    return (
        row is not None
        and row.tenant_id == principal.tenant_id
        and (row.user_id == principal.user_id or principal.can(Permission.USERS_WRITE))
    )


async def get_api_key(session: AsyncSession, *, principal: Principal, key_id: str) -> ApiKey:
    """A key of the caller (any key of the tenant for holders of ``users:write``)."""
    row = await session.get(ApiKey, key_id)
    if row is None or not key_visible(row, principal):
        raise ApiKeyNotFound(f"no API key {key_id}")
    return row


async def revoke_api_key(
    session: AsyncSession, *, principal: Principal, key: ApiKey, ip: str
) -> None:
    """Stop a key working, at every gateway once the change commits."""
    await check_can_act_on_key(session, principal=principal, key=key, action="revoke")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    revoke_later(session, "api_key", key.id)
    audit(
        session,
        action="api_key.revoked",
        tenant_id=key.tenant_id,
        actor_id=principal.user_id,
        target_type="api_key",
        target_id=key.id,
        ip=ip,
    )
    await session.flush()


async def rotate_api_key(
    session: AsyncSession, *, principal: Principal, key: ApiKey, ip: str
) -> str:
    """A new secret for the same key id; the old secret stops working at once."""
    if key.revoked_at is not None:
        raise ApiKeyNotFound(f"API key {key.id} is revoked")
    await check_can_act_on_key(session, principal=principal, key=key, action="rotate")
    prefix, secret, raw = _new_key()
    key.prefix = prefix
    key.secret_hash = digest(secret)
    revoke_later(session, "api_key", key.id)
    audit(
        session,
        action="api_key.rotated",
        tenant_id=key.tenant_id,
        actor_id=principal.user_id,
        target_type="api_key",
        target_id=key.id,
        ip=ip,
    )
    await session.flush()
    return raw


async def verify_api_key(session: AsyncSession, *, raw: str) -> tuple[Principal, datetime | None]:
    """The principal a raw key stands for: its scopes within its owner's current rights."""
    body = raw.removeprefix(API_KEY_PREFIX)
    prefix, _, secret = body.partition("_")
    if not raw.startswith(API_KEY_PREFIX) or not prefix or not secret:
        raise InvalidCredentials("malformed API key")
    row = await repository.api_key_by_prefix(session, prefix)
    if row is None or not _same(row.secret_hash, digest(secret)):
        raise InvalidCredentials("invalid API key")
    now = utcnow()
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        raise InvalidCredentials("API key revoked or expired")
    owner = await session.get(User, row.user_id)
    if owner is None or not owner.is_active:
        raise InvalidCredentials("the key's owner is disabled")
    # Recording every use would make each request a write; once a minute is enough.
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
    granted = set(user_permissions(owner)) & set(row.scopes)
    principal = Principal(
        subject=owner.id,
        tenant_id=row.tenant_id,
        kind="api_key",
        roles=tuple(owner.roles),
        permissions=frozenset(granted),
        email=owner.email,
        api_key_id=row.id,
    )
    return principal, row.expires_at


def _same(left: str, right: str) -> bool:
    return hmac.compare_digest(left, right)


# --- views -------------------------------------------------------------------------


def user_to_dict(user: User) -> dict[str, Any]:
    """The public shape of a user."""
    return {
        "id": user.id,
        "tenant_id": user.tenant_id,
        "email": user.email,
        "roles": list(user.roles),
        "permissions": user_permissions(user),
        "platform_admin": user.platform_admin,
        "is_active": user.is_active,
        "last_login_at": isoformat(user.last_login_at),
        "created_at": isoformat(user.created_at),
        "updated_at": isoformat(user.updated_at),
    }


def tenant_to_dict(tenant: Tenant) -> dict[str, Any]:
    """The public shape of a tenant."""
    return {"id": tenant.id, "name": tenant.name, "created_at": isoformat(tenant.created_at)}


def api_key_to_dict(key: ApiKey) -> dict[str, Any]:
    """The public shape of an API key (never its secret)."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": f"{API_KEY_PREFIX}{key.prefix}",
        "scopes": list(key.scopes),
        "user_id": key.user_id,
        "tenant_id": key.tenant_id,
        "expires_at": isoformat(key.expires_at),
        "last_used_at": isoformat(key.last_used_at),
        "revoked_at": isoformat(key.revoked_at),
        "created_at": isoformat(key.created_at),
    }


def audit_to_dict(event: AuditEvent) -> dict[str, Any]:
    """The public shape of an audit entry."""
    return {
        "id": event.id,
        "tenant_id": event.tenant_id,
        "actor_id": event.actor_id,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "ip": event.ip,
        "data": event.data,
        "created_at": isoformat(event.created_at),
    }
