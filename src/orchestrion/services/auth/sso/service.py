"""The rules of single sign-on: start a sign-in, finish it, hand the frontend its tokens.

A sign-in crosses three requests, and any auth instance may serve each one:

1. ``login`` (:func:`begin`) checks the frontend's ``redirect_uri`` against the allow-list
   and stores a :class:`~orchestrion.services.auth.models.SsoState` (hashed ``state``,
   ``nonce``, PKCE verifier, a digest of a random value also set in the browser's cookie);
2. ``callback`` spends that state (:func:`take_state`, its own unit of work), talks to the
   provider with no transaction open (:func:`authenticate`), then matches or creates the
   user and issues a one-time code (:func:`sign_in`);
3. ``exchange`` (:func:`exchange`) swaps the code, once, for the usual token pair.

Functions never commit; the caller's unit of work does.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.errors import ServiceUnavailable
from orchestrion.kernel.ids import utcnow
from orchestrion.services.auth import repository
from orchestrion.services.auth.crypto import digest, random_token
from orchestrion.services.auth.errors import (
    EmailNotVerified,
    IdentityProviderError,
    InvalidSsoCode,
    InvalidSsoState,
    InvalidUser,
    RedirectNotAllowed,
    SsoAccountRefused,
)
from orchestrion.services.auth.models import SsoCode, SsoIdentity, SsoState, Tenant, User
from orchestrion.services.auth.service import (
    AuthRuntime,
    audit,
    check_roles,
    normalize_email,
    revoke_later,
    start_session,
)
from orchestrion.services.auth.sso.oidc import OidcClient, code_challenge

#: The password hash of accounts made at sign-in: no password verifies against it.
NO_PASSWORD = "!sso"  # noqa: S105 - not a hash, so never a match


@dataclass
class SsoRuntime:
    """Per-process single sign-on state: the provider client and the rules' settings."""

    client: OidcClient
    redirect_uris: frozenset[str]
    state_ttl: timedelta
    code_ttl: timedelta
    default_tenant: str


@dataclass(frozen=True)
class SignIn:
    """Where to send the browser, and the value its cookie must carry back."""

    authorization_url: str
    browser_token: str


@dataclass(frozen=True)
class Pending:
    """A spent sign-in state: what the rest of the callback needs."""

    provider: str
    nonce: str
    code_verifier: str
    callback_uri: str
    redirect_uri: str
    browser_hash: str
    expires_at: datetime


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query string."""
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    return urlunsplit(parts._replace(query=query))


def check_redirect(sso: SsoRuntime, redirect_uri: str) -> str:
    """``redirect_uri`` if the allow-list has it, exactly; 422 otherwise."""
    if redirect_uri not in sso.redirect_uris:
        hint = (
            ""
            if sso.redirect_uris
            else " (none is allowed: set ORCHESTRION_AUTH__SSO_REDIRECT_URIS)"
        )
        raise RedirectNotAllowed(
            f"redirect_uri {redirect_uri!r} is not an allowed single sign-on return address" + hint,
            errors=[{"loc": ["query", "redirect_uri"], "msg": "not allow-listed"}],
        )
    return redirect_uri


async def begin(
    session: AsyncSession,
    *,
    sso: SsoRuntime,
    provider: str,
    redirect_uri: str,
    callback_uri: str,
) -> SignIn:
    """Start signing in at ``provider``: authorization code flow with PKCE (S256),
    ``state`` and ``nonce``; 404 unknown provider, 422 redirect not allowed, 502/503
    provider trouble."""
    config = sso.client.provider(provider)
    check_redirect(sso, redirect_uri)
    # Before any query: no transaction is open while the provider answers.
    meta = await sso.client.metadata(provider)
    now = utcnow()
    await session.execute(delete(SsoState).where(SsoState.expires_at <= now))
    await session.execute(delete(SsoCode).where(SsoCode.expires_at <= now - sso.code_ttl))
    state, nonce, verifier, browser = (random_token() for _ in range(4))
    session.add(
        SsoState(
            state_hash=digest(state),
            browser_hash=digest(browser),
            provider=provider,
            nonce=nonce,
            code_verifier=verifier,
            callback_uri=callback_uri,
            redirect_uri=redirect_uri,
            expires_at=now + sso.state_ttl,
        )
    )
    await session.flush()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": config.client_id,
            "redirect_uri": callback_uri,
            "scope": " ".join(config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    separator = "&" if "?" in meta.authorization_endpoint else "?"
    return SignIn(f"{meta.authorization_endpoint}{separator}{query}", browser)


async def take_state(session: AsyncSession, *, provider: str, state: str | None) -> Pending:
    """Spend the sign-in ``state`` names, once; 400 when it is unknown, already spent or
    for another provider. Check the result with :func:`check_pending` after committing,
    so that a refused callback spends its state too."""
    if not state:
        raise InvalidSsoState(
            "the callback has no state", errors=[{"loc": ["query", "state"], "msg": "missing"}]
        )
    row = (
        await session.execute(select(SsoState).where(SsoState.state_hash == digest(state)))
    ).scalar_one_or_none()
    if row is None or row.provider != provider:
        raise InvalidSsoState("unknown or already used sign-in state; start signing in again")
    spent = await session.execute(delete(SsoState).where(SsoState.id == row.id))
    if not getattr(spent, "rowcount", 0):
        raise InvalidSsoState("this sign-in state was just used; start signing in again")
    return Pending(
        provider=row.provider,
        nonce=row.nonce,
        code_verifier=row.code_verifier,
        callback_uri=row.callback_uri,
        redirect_uri=row.redirect_uri,
        browser_hash=row.browser_hash,
        expires_at=row.expires_at,
    )


def check_pending(pending: Pending, *, browser_token: str | None) -> None:
    """400 when the sign-in expired or the callback comes from another browser than the
    one that started it (its cookie is missing or different: login CSRF)."""
    if pending.expires_at <= utcnow():
        raise InvalidSsoState("this sign-in took too long; start signing in again")
    if not browser_token or not hmac.compare_digest(digest(browser_token), pending.browser_hash):
        raise InvalidSsoState(
            "this sign-in was started in another browser (or its cookie was lost); "
            "start signing in again"
        )


async def authenticate(*, sso: SsoRuntime, pending: Pending, code: str | None) -> dict[str, Any]:
    """The user's claims: the code exchanged, the ID token validated, and the UserInfo
    claims added when the ID token leaves out the email (it may, for the code flow)."""
    if not code:
        raise InvalidSsoState(
            "the provider returned neither a code nor an error",
            errors=[{"loc": ["query", "code"], "msg": "missing"}],
        )
    name = pending.provider
    tokens = await sso.client.exchange_code(
        name, code=code, redirect_uri=pending.callback_uri, code_verifier=pending.code_verifier
    )
    claims = await sso.client.validate(name, tokens["id_token"], nonce=pending.nonce)
    if "email" not in claims and isinstance(tokens.get("access_token"), str):
        info = await sso.client.userinfo(name, tokens["access_token"])
        if info.get("sub") is not None and info.get("sub") != claims["sub"]:
            # OIDC Core §5.3.2: a different subject means the answer is not about this user.
            raise IdentityProviderError(f"identity provider '{name}' sent another user's info")
        claims = {**info, **claims}
    return claims


def _verified(claims: dict[str, Any]) -> bool:
    value = claims.get("email_verified")
    # Some providers send the boolean as a string.
    return value is True or (isinstance(value, str) and value.lower() == "true")


async def _tenant(session: AsyncSession, *, sso: SsoRuntime, provider: str) -> Tenant:
    wanted = sso.client.provider(provider).tenant_id or sso.default_tenant
    tenant = await session.get(Tenant, wanted) or await repository.tenant_by_name(session, wanted)
    if tenant is None:
        raise ServiceUnavailable(
            f"identity provider '{provider}' is configured for tenant {wanted!r}, which does "
            "not exist; an administrator must fix the provider's tenant_id"
        )
    return tenant


async def sign_in(
    session: AsyncSession,
    *,
    sso: SsoRuntime,
    pending: Pending,
    claims: dict[str, Any],
    ip: str,
) -> str:
    """The frontend URL with a one-time ``code`` for the user ``claims`` describe.

    The user is the one linked to this provider account, else the one with the
    provider-verified email, else a new user of the provider's tenant with its default
    role. 403 when the email is not verified, the account is disabled, or it belongs to
    another tenant than the provider's.
    """
    name = pending.provider
    config = sso.client.provider(name)
    tenant = await _tenant(session, sso=sso, provider=name)
    now = utcnow()
    subject = str(claims["sub"])
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    link = (
        await session.execute(
            select(SsoIdentity).where(SsoIdentity.provider == name, SsoIdentity.subject == subject)
        )
    ).scalar_one_or_none()
    user = await session.get(User, link.user_id) if link is not None else None
    if user is None or link is None:
        if email is None or not _verified(claims):
            raise EmailNotVerified(
                f"identity provider '{name}' does not vouch for this account's email address "
                "(email_verified is not true); verify it there, then sign in again"
            )
        try:
            address = normalize_email(email)
        except InvalidUser:
            raise IdentityProviderError(
                f"identity provider '{name}' gave an email that is not an address"
            ) from None
        user = await repository.user_by_email(session, address)
        if user is None:
            user = await _create_user(
                session, tenant=tenant, email=address, role=config.default_role, ip=ip, via=name
            )
        if link is not None:
            await session.delete(link)  # linked to a user since deleted
        link = SsoIdentity(
            user_id=user.id, provider=name, issuer=config.issuer, subject=subject, email=address
        )
        session.add(link)
    if user.tenant_id != tenant.id:
        raise SsoAccountRefused(
            f"this account belongs to another tenant than identity provider '{name}' serves"
        )
    if not user.is_active:
        raise SsoAccountRefused("this account is disabled")
    link.last_login_at = now
    if email is not None:
        link.email = email
    raw = random_token()
    session.add(
        SsoCode(
            code_hash=digest(raw),
            user_id=user.id,
            provider=name,
            expires_at=now + sso.code_ttl,
        )
    )
    await session.flush()
    return with_query(pending.redirect_uri, code=raw)


async def _create_user(
    session: AsyncSession, *, tenant: Tenant, email: str, role: str, ip: str, via: str
) -> User:
    user = User(
        tenant_id=tenant.id,
        email=email,
        password_hash=NO_PASSWORD,
        roles=check_roles([role]),
        platform_admin=False,
        is_active=True,
    )
    session.add(user)
    await session.flush()
    audit(
        session,
        action="user.created",
        tenant_id=tenant.id,
        actor_id=None,
        target_type="user",
        target_id=user.id,
        ip=ip,
        data={"email": email, "roles": user.roles, "provider": via},
    )
    return user


async def exchange(
    session: AsyncSession,
    *,
    runtime: AuthRuntime,
    code: str,
    ip: str,
    user_agent: str | None,
) -> dict[str, Any]:
    """The token pair for a one-time code; 401 when it is unknown, expired or used.

    A code presented a second time also ends the login its first exchange started
    (RFC 6749 §4.1.2): whoever holds a copy is not to be trusted. Raised after the
    revocation is flushed; the endpoint commits it.
    """
    now = utcnow()
    row = (
        await session.execute(select(SsoCode).where(SsoCode.code_hash == digest(code)))
    ).scalar_one_or_none()
    if row is None:
        raise InvalidSsoCode("unknown single sign-on code")
    user = await session.get(User, row.user_id)
    if row.used_at is not None or not await _mark_used(session, row.id, now):
        if row.session_id is not None:
            await repository.revoke_session(session, row.session_id, at=now, reason="reuse")
            revoke_later(session, "session", row.session_id)
        audit(
            session,
            action="sso_code.reused",
            tenant_id=user.tenant_id if user is not None else None,
            actor_id=row.user_id,
            target_type="session",
            target_id=row.session_id,
            ip=ip,
        )
        await session.flush()
        raise InvalidSsoCode(
            "this single sign-on code was already exchanged; the sign-in it started has ended"
        )
    if row.expires_at <= now:
        raise InvalidSsoCode("this single sign-on code expired; sign in again")
    if user is None or not user.is_active:
        raise InvalidSsoCode("this account is disabled")
    pair, auth_session = await start_session(
        session,
        runtime=runtime,
        user=user,
        ip=ip,
        user_agent=user_agent,
        data={"method": "sso", "provider": row.provider},
    )
    row.session_id = auth_session.id
    await session.flush()
    return pair


async def _mark_used(session: AsyncSession, code_id: str, at: datetime) -> bool:
    result = await session.execute(
        update(SsoCode).where(SsoCode.id == code_id, SsoCode.used_at.is_(None)).values(used_at=at)
    )
    return bool(getattr(result, "rowcount", 0))
