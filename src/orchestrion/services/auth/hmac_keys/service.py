"""The rules of HMAC keys: what a key may do, and whether a signed request is genuine.

A key is an API key whose secret the server must read back: the signature is an HMAC
of the request under the shared secret, so the secret is stored encrypted (Fernet,
under a key derived from ``ORCHESTRION_SECRET_KEY`` for this purpose alone) rather than
hashed. Its power is that of an API key: its scopes within its owner's current
permissions, and the principal it yields is the same (``kind="api_key"``).

A signature counts once: each accepted one is recorded (its digest) until the replay
window has passed, in the database every auth instance shares, so a replay is refused
whichever instance it reaches, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.auth.signing import (
    InvalidSignature,
    check_timestamp,
    same_signature,
    sign,
    string_to_sign,
)
from orchestrion.kernel.ids import isoformat, utcnow
from orchestrion.services.auth import powers
from orchestrion.services.auth.crypto import random_token
from orchestrion.services.auth.errors import ApiKeyNotFound, InvalidUser
from orchestrion.services.auth.models import HmacKey, HmacSignatureSeen, User
from orchestrion.services.auth.service import (
    audit,
    check_scopes,
    key_visible,
    user_permissions,
)

SECRET_PREFIX = "ohs_"  # noqa: S105 - the prefix of generated secrets, not one
FERNET_PURPOSE = "orchestrion-hmac-key-secrets-v1"
# Expired signature records are deleted at most this often per process.
_PRUNE_SECONDS = 60.0


class HmacKeyNotFound(ApiKeyNotFound):
    """No such HMAC key visible to the caller."""


@dataclass
class HmacRuntime:
    """Per-process state: the cipher of the secrets and the replay window."""

    fernet: Fernet
    window: timedelta
    _pruned_at: float = field(default=float("-inf"), repr=False)


async def create_key(
    session: AsyncSession,
    *,
    runtime: HmacRuntime,
    principal: Principal,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
    ip: str,
) -> tuple[HmacKey, str]:
    """A new key for the caller; the secret is returned once and stored encrypted."""
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidUser(
            "expires_at must be in the future",
            errors=[{"loc": ["body", "expires_at"], "msg": "in the past"}],
        )
    secret = _new_secret()
    row = HmacKey(
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        name=name,
        secret_encrypted=runtime.fernet.encrypt(secret.encode()).decode(),
        scopes=check_scopes(principal, scopes),
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    data = {"name": name, "scopes": row.scopes}
    _audit(session, "hmac_key.created", principal, row, ip, data=data)
    return row, secret


async def get_key(session: AsyncSession, *, principal: Principal, key_id: str) -> HmacKey:
    """A key of the caller (any key of the tenant for holders of ``users:write``)."""
    row = await session.get(HmacKey, key_id)
    if row is None or not key_visible(row, principal):
        raise HmacKeyNotFound(f"no HMAC key {key_id}")
    return row


async def revoke_key(session: AsyncSession, *, principal: Principal, key: HmacKey, ip: str) -> None:
    """Stop a key working: its next signed request is refused (nothing caches it)."""
    await _check_power(session, principal=principal, key=key, action="revoke")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    _audit(session, "hmac_key.revoked", principal, key, ip)
    await session.flush()


async def rotate_key(
    session: AsyncSession, *, runtime: HmacRuntime, principal: Principal, key: HmacKey, ip: str
) -> str:
    """A new secret for the same key id; the old secret stops working at once."""
    if key.revoked_at is not None:
        raise HmacKeyNotFound(f"HMAC key {key.id} is revoked")
    await _check_power(session, principal=principal, key=key, action="rotate")
    secret = _new_secret()
    key.secret_encrypted = runtime.fernet.encrypt(secret.encode()).decode()
    _audit(session, "hmac_key.rotated", principal, key, ip)
    await session.flush()
    return secret


async def verify(
    session: AsyncSession,
    *,
    runtime: HmacRuntime,
    key_id: str,
    timestamp: int,
    nonce: str,
    signature: str,
    method: str,
    target: str,
    digest: str,
) -> tuple[Principal, datetime | None]:
    """The principal a signed request stands for; :class:`InvalidSignature` naming the
    check that failed. The gateway already checked the body against ``digest``."""
    window = runtime.window.total_seconds()
    check_timestamp(timestamp, window=window)
    row = await session.get(HmacKey, key_id)
    if row is None:
        raise InvalidSignature(f"unknown key id '{key_id}'")
    now = utcnow()
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        raise InvalidSignature(f"key '{key_id}' is revoked or expired")
    try:
        secret = runtime.fernet.decrypt(row.secret_encrypted.encode()).decode()
    except InvalidToken:
        # Stored under a secret key this process no longer has: nothing the caller did.
        raise InvalidSignature(f"key '{key_id}' cannot be read by this server") from None
    message = string_to_sign(
        key_id=key_id, timestamp=timestamp, nonce=nonce, method=method, target=target,
        digest=digest,
    )  # fmt: skip
    if not same_signature(sign(secret, message), signature):
        raise InvalidSignature(
            "bad signature: it does not match the request (method, path and query, "
            "timestamp, nonce, body digest) signed with this key's secret"
        )
    owner = await session.get(User, row.user_id)
    if owner is None or not owner.is_active:
        raise InvalidSignature("the key's owner is disabled")
    await _prune(session, runtime)
    # Past ts + window the timestamp check refuses it anyway: no need to remember longer.
    forget_at = datetime.fromtimestamp(timestamp + window + 1, tz=UTC)
    if not await _first_sighting(session, key_id, signature, expires=forget_at):
        raise InvalidSignature(
            f"replayed signature: this request was accepted once already (sign each "
            f"request anew, with a fresh nonce); signatures count once for {int(window)} s"
        )
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
    principal = Principal(
        subject=owner.id,
        tenant_id=row.tenant_id,
        kind="api_key",
        roles=tuple(owner.roles),
        permissions=frozenset(set(user_permissions(owner)) & set(row.scopes)),
        email=owner.email,
        api_key_id=row.id,
    )
    return principal, row.expires_at


def key_to_dict(key: HmacKey) -> dict[str, Any]:
    """The public shape of a key (never its secret)."""
    return {
        "id": key.id,
        "name": key.name,
        "scopes": list(key.scopes),
        "user_id": key.user_id,
        "tenant_id": key.tenant_id,
        "expires_at": isoformat(key.expires_at),
        "last_used_at": isoformat(key.last_used_at),
        "revoked_at": isoformat(key.revoked_at),
        "created_at": isoformat(key.created_at),
    }


def _new_secret() -> str:
    return SECRET_PREFIX + random_token(32)


async def _check_power(
    session: AsyncSession, *, principal: Principal, key: HmacKey, action: str
) -> None:
    """403 when ``key`` can do something the caller cannot (``service.check_can_act_on_key``)."""
    owner = await session.get(User, key.user_id)
    owner_power = frozenset(user_permissions(owner)) if owner is not None else frozenset()
    target = powers.key_power(key.scopes, owner_power=owner_power)
    powers.check_power(principal, target, action=f"{action} HMAC key {key.id}")


async def _first_sighting(
    session: AsyncSession, key_id: str, signature: str, *, expires: datetime
) -> bool:
    """Record the signature; False when it was recorded already (a replay)."""
    digest = hashlib.sha256(f"{key_id}\n{signature}".encode()).hexdigest()
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    result = await session.execute(
        insert(HmacSignatureSeen)
        .values(digest=digest, expires_at=expires)
        .on_conflict_do_nothing(index_elements=["digest"])
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def _prune(session: AsyncSession, runtime: HmacRuntime) -> None:
    """Forget signatures past the window (at most every minute per process)."""
    if time.monotonic() - runtime._pruned_at < _PRUNE_SECONDS:
        return
    runtime._pruned_at = time.monotonic()
    await session.execute(delete(HmacSignatureSeen).where(HmacSignatureSeen.expires_at <= utcnow()))


def _audit(
    session: AsyncSession,
    action: str,
    principal: Principal,
    key: HmacKey,
    ip: str,
    data: dict[str, Any] | None = None,
) -> None:
    audit(
        session,
        action=action,
        tenant_id=key.tenant_id,
        actor_id=principal.user_id,
        target_type="hmac_key",
        target_id=key.id,
        ip=ip,
        data=data,
    )
