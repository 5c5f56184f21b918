"""Tables of the auth service (prefixed ``auth_``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.db.base import Base, IdMixin, JSONType, TimestampMixin
from orchestrion.kernel.ids import utcnow


class Tenant(IdMixin, Base):
    """An isolated organisation: every other row belongs to exactly one."""

    __tablename__ = "auth_tenants"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(IdMixin, TimestampMixin, Base):
    """A person who logs in with an email (unique across tenants) and a password."""

    __tablename__ = "auth_users"

    tenant_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("auth_tenants.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    roles: Mapped[list[str]] = mapped_column(JSONType, default=list)
    platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_login_at: Mapped[datetime | None] = mapped_column()


class AuthSession(IdMixin, Base):
    """A login: the family of refresh tokens it issues, revoked as one."""

    __tablename__ = "auth_sessions"

    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[str] = mapped_column(String(36))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_reason: Mapped[str | None] = mapped_column(String(50))


class RefreshToken(IdMixin, Base):
    """One opaque refresh token (its SHA-256 only); used once, then replaced."""

    __tablename__ = "auth_refresh_tokens"

    session_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


class SigningKey(Base):
    """An Ed25519 key pair; the private half encrypted under the platform secret."""

    __tablename__ = "auth_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_key: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activates_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column()


class ApiKey(IdMixin, Base):
    """``orn_<prefix>_<secret>``: the prefix finds the row, the secret's hash proves it."""

    __tablename__ = "auth_api_keys"
    __table_args__ = (Index("ix_auth_api_keys_tenant_created", "tenant_id", "created_at"),)

    tenant_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("auth_tenants.id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    expires_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(IdMixin, Base):
    """One line of the platform's audit trail: who did what, when, from where.

    Lines of a tenant form a hash chain (``seq``, ``hash``: see
    :mod:`orchestrion.services.auth.audit.chain`); personal fields (``actor_id``, ``ip``,
    ``user_agent``, ``data``) enter it through ``personal_digest``, so erasing a person
    leaves the chain verifiable.
    """

    __tablename__ = "auth_audit_events"
    __table_args__ = (
        Index("ix_auth_audit_events_tenant_created", "tenant_id", "created_at"),
        UniqueConstraint("chain", "seq"),
    )

    tenant_id: Mapped[str | None] = mapped_column(String(36))
    actor_id: Mapped[str | None] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_type: Mapped[str | None] = mapped_column(String(16))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    request_id: Mapped[str | None] = mapped_column(String(128))
    service: Mapped[str | None] = mapped_column(String(32))
    #: The tenant's chain (``-`` for lines of no tenant) and the line's place in it;
    #: None only for lines written before the chain existed.
    chain: Mapped[str | None] = mapped_column(String(36))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    personal_digest: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
    erased_at: Mapped[datetime | None] = mapped_column()


class AuditHead(Base):
    """The end of a tenant's chain, locked by every append (appends serialise per
    tenant), and its anchor: where retention cut it, so what is kept still verifies."""

    __tablename__ = "auth_audit_heads"

    chain: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    anchor_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    anchor_hash: Mapped[str] = mapped_column(String(64))
    pruned_at: Mapped[datetime | None] = mapped_column()


class SsoState(IdMixin, Base):
    """A sign-in under way at an OpenID Connect provider, until its callback (single use).

    Kept in the database, not in memory, so the callback may reach any auth instance.
    """

    __tablename__ = "auth_sso_states"

    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The digest of the random value in the browser's cookie: the callback must come
    #: from the browser that started the sign-in (no login CSRF).
    browser_hash: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(63))
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    callback_uri: Mapped[str] = mapped_column(Text)
    redirect_uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class SsoCode(IdMixin, Base):
    """The one-time code a frontend exchanges for a token pair (its SHA-256 only)."""

    __tablename__ = "auth_sso_codes"

    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column()
    #: The login its exchange started: ended if the code is presented again.
    session_id: Mapped[str | None] = mapped_column(String(36))


class SsoIdentity(IdMixin, Base):
    """A user's account at a provider (its ``sub``), linked at their first sign-in there."""

    __tablename__ = "auth_sso_identities"
    __table_args__ = (UniqueConstraint("provider", "subject"),)

    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(63))
    issuer: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column()


class Erasure(Base):
    """Someone erased, or one of their API keys, known by a digest of the id only.

    An audit line still in another service's outbox when its actor was erased arrives
    later with their real id: this table is how the trail recognises it and appends it
    anonymised (``actor`` is the pseudonym it gets), and how an export after the erasure
    says the person was erased rather than never existed.
    """

    __tablename__ = "auth_erasures"

    #: SHA-256 of the user's (or API key's) id.
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str | None] = mapped_column(String(36))
    actor: Mapped[str] = mapped_column(String(36))
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)


class HmacKey(IdMixin, Base):
    """A key for signed requests (``Orchestrion-HMAC``): its id names it in every request,
    its secret is kept encrypted (the server must recompute each signature)."""

    __tablename__ = "auth_hmac_keys"
    __table_args__ = (Index("ix_auth_hmac_keys_tenant_created", "tenant_id", "created_at"),)

    tenant_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("auth_tenants.id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    #: Fernet token of the secret, under a key derived from the platform secret.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    expires_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HmacSignatureSeen(Base):
    """A signature accepted within the replay window: the same one again is a replay.
    Rows past ``expires_at`` (the window) are pruned."""

    __tablename__ = "auth_hmac_signatures"

    #: SHA-256 of the key id and signature.
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
