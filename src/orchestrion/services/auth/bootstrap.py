"""The first admin: created once, when the platform has no user at all."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from orchestrion.kernel.db.engine import Database
from orchestrion.services.auth import repository, service
from orchestrion.services.auth.crypto import fernet_for
from orchestrion.services.auth.errors import WeakPassword
from orchestrion.services.auth.keys import KeyRing
from orchestrion.services.auth.passwords import PasswordPolicy
from orchestrion.settings import Settings, generate_password

logger = logging.getLogger("orchestrion.auth")


@dataclass(frozen=True)
class BootstrapResult:
    """What :func:`ensure_bootstrap` did; ``generated_password`` is shown once, never stored."""

    created: bool
    email: str
    generated_password: str | None = None


async def check_signing_keys(database: Database, settings: Settings) -> None:
    """Raise :class:`~.keys.UnreadableSigningKey` when the configured secret (and
    ``secret_key_previous``) cannot decrypt the stored signing keys; checked before a
    server starts so a changed secret is a clear message, not a failed startup."""
    secret = settings.secret_key.get_secret_value().encode()
    keys = KeyRing(
        fernet=fernet_for(secret, previous=settings.previous_secrets),
        rotation=timedelta(days=settings.auth.signing_key_rotation_days),
        token_ttl=timedelta(seconds=settings.auth.access_token_ttl_seconds),
    )
    async with database.session() as session:
        await keys.check_readable(session)


def _generated_password(policy: PasswordPolicy, email: str) -> str:
    """A random password the policy accepts (however long it asks them to be)."""
    while True:
        candidate = generate_password()
        while len(candidate) < policy.min_length:
            candidate += generate_password()
        try:
            policy.check(candidate, email=email)
        except WeakPassword:
            continue
        return candidate


async def ensure_bootstrap(database: Database, settings: Settings) -> BootstrapResult:
    """Create the default tenant and a platform admin in it if there are no users yet.

    The password is ``ORCHESTRION_ADMIN_PASSWORD`` or, when unset, generated and
    returned so the caller can print it once.
    """
    async with database.session() as session:
        if await repository.count_users(session) > 0:
            return BootstrapResult(created=False, email=settings.admin_email)
        tenant = await repository.tenant_by_name(session, settings.default_tenant)
        if tenant is None:
            tenant = await service.create_tenant(session, name=settings.default_tenant)
        generated = None
        policy = PasswordPolicy(min_length=settings.auth.password_min_length)
        if settings.admin_password is not None:
            password = settings.admin_password.get_secret_value()
            try:
                policy.check(password, email=settings.admin_email)
            except WeakPassword as exc:
                raise WeakPassword(f"ORCHESTRION_ADMIN_PASSWORD: {exc.detail}") from None
        else:
            password = generated = _generated_password(policy, settings.admin_email)
        user = await service.create_user(
            session,
            tenant_id=tenant.id,
            email=settings.admin_email,
            password=password,
            roles=["admin"],
            passwords=policy,
            platform_admin=True,
        )
        service.audit(
            session,
            action="admin.bootstrapped",
            tenant_id=tenant.id,
            actor_id=None,
            target_type="user",
            target_id=user.id,
        )
    return BootstrapResult(created=True, email=user.email, generated_password=generated)
