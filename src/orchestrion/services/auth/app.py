"""The auth service's ASGI app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from orchestrion.kernel.bus import service_bus
from orchestrion.kernel.bus.outbox import OutboxRelay
from orchestrion.kernel.crypto import rotating_fernet
from orchestrion.kernel.http.app import create_service_app
from orchestrion.kernel.http.idempotency import Sealing
from orchestrion.kernel.http.openapi import refine_schemas
from orchestrion.kernel.http.peers import discover
from orchestrion.services.auth.audit import consumer as audit_consumer
from orchestrion.services.auth.audit.endpoints import router as audit_router
from orchestrion.services.auth.bootstrap import ensure_bootstrap
from orchestrion.services.auth.crypto import configure_hashing, fernet_for
from orchestrion.services.auth.endpoints import router
from orchestrion.services.auth.errors import InvalidUser
from orchestrion.services.auth.hmac_keys.endpoints import router as hmac_router
from orchestrion.services.auth.hmac_keys.service import FERNET_PURPOSE, HmacRuntime
from orchestrion.services.auth.keys import KeyRing
from orchestrion.services.auth.passwords import PasswordPolicy
from orchestrion.services.auth.schemas import password_schema
from orchestrion.services.auth.service import AuthRuntime, check_roles
from orchestrion.services.auth.sso.endpoints import router as sso_router
from orchestrion.services.auth.sso.oidc import OidcClient
from orchestrion.services.auth.sso.service import SsoRuntime
from orchestrion.services.auth.throttle import LoginThrottle
from orchestrion.settings import Settings, open_database, open_revocations, service_app_options

logger = logging.getLogger("orchestrion.auth")


def create_app(settings: Settings) -> FastAPI:
    """The auth service, on the configured database."""
    secret = settings.secret_key.get_secret_value().encode()
    configure_hashing(**settings.auth.password_hashing.model_dump())
    access_ttl = timedelta(seconds=settings.auth.access_token_ttl_seconds)
    runtime = AuthRuntime(
        issuer=settings.auth.issuer,
        audience=settings.auth.audience,
        access_ttl=access_ttl,
        refresh_ttl=timedelta(seconds=settings.auth.refresh_token_ttl_seconds),
        keys=KeyRing(
            fernet=fernet_for(secret, previous=settings.previous_secrets),
            rotation=timedelta(days=settings.auth.signing_key_rotation_days),
            token_ttl=access_ttl,
            publish_ahead=timedelta(seconds=settings.auth.signing_key_publish_seconds),
        ),
        throttle=LoginThrottle(
            max_attempts=settings.auth.login_max_attempts,
            window_seconds=settings.auth.login_window_seconds,
        ),
        passwords=PasswordPolicy(min_length=settings.auth.password_min_length),
        sealing=Sealing.from_secret(secret, previous=settings.previous_secrets),
    )
    sso = sso_runtime(settings)
    database = open_database(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        result = await ensure_bootstrap(database, settings)
        if result.generated_password:
            logger.warning(
                "admin account %s created with a generated password (shown once): %s",
                result.email,
                result.generated_password,
            )
        async with database.session() as session:
            await runtime.keys.check_readable(session)  # a changed secret fails here, clearly
            await runtime.keys.active(session)  # the first key exists before the first login
        bus, owned = await service_bus(getattr(app.state, "bus", None), settings.bus.url)
        relay = OutboxRelay(database, bus) if bus is not None else None
        if relay is not None:
            relay.start()
        # Exports gather every service's part: in process, or over the network.
        app.state.personal_peers, owned_peers = await discover(
            tuple(app.state.personal_names),
            secret=secret,
            given=getattr(app.state, "peers", None),
            urls={k: v for k, v in settings.peers.items() if k in app.state.personal_names},
            registry_url=settings.redis.url if settings.gateway.registry else None,
            registry_prefix=settings.gateway.registry_prefix,
        )
        # Other services' audit lines arrive on the bus; without one, auth's own only.
        trail = await audit_consumer.subscribe(bus, database) if bus is not None else None
        pruner = audit_consumer.Pruner(
            database,
            retention_days=settings.auth.audit_retention_days,
            interval=settings.auth.audit_prune_interval_seconds,
        )
        pruner.start()
        # The composer's (embedded shape), else our own: publish only, through Redis.
        revocations = getattr(app.state, "revocations", None)
        own_revocations = revocations is None
        if own_revocations:
            app.state.revocations = open_revocations(settings, follow=False)
        try:
            yield
        finally:
            await pruner.stop()
            if trail is not None:
                # The in-process bus outlives this app: stop before the database goes.
                await trail.stop()
            if own_revocations:
                await app.state.revocations.stop()
                del app.state.revocations
            if relay is not None:
                await relay.stop()
            if bus is not None and owned:
                await bus.close()
            await sso.client.aclose()
            for peers in owned_peers:
                await peers.aclose()

    app = create_service_app(
        **service_app_options(settings, "auth"),
        database=database,
        lifespan=lifespan,
    )
    app.state.auth = runtime
    app.state.sso = sso
    app.state.hmac = HmacRuntime(
        fernet=rotating_fernet(secret, purpose=FERNET_PURPOSE, previous=settings.previous_secrets),
        window=timedelta(seconds=settings.auth.hmac_window_seconds),
    )
    app.state.settings = settings
    app.state.personal_names = [n for n in settings.auth.personal_data_peers if n != "auth"]
    app.state.personal_peers = {}
    app.include_router(router)
    app.include_router(sso_router)
    app.include_router(hmac_router)
    app.include_router(audit_router)
    refine_schemas(app, password_schema(settings.auth.password_min_length))
    return app


def sso_runtime(settings: Settings) -> SsoRuntime:
    """Single sign-on as configured; a provider's unknown default role fails here, at start."""
    auth = settings.auth
    for name, provider in auth.oidc_providers.items():
        try:
            check_roles([provider.default_role])
        except InvalidUser as exc:
            raise ValueError(f"identity provider '{name}': {exc.detail}") from None
    return SsoRuntime(
        client=OidcClient(
            auth.oidc_providers,
            timeout=auth.sso_timeout_seconds,
            jwks_cooldown=auth.sso_jwks_cooldown_seconds,
        ),
        redirect_uris=frozenset(auth.sso_redirect_uris),
        state_ttl=timedelta(seconds=auth.sso_state_ttl_seconds),
        code_ttl=timedelta(seconds=auth.sso_code_ttl_seconds),
        default_tenant=settings.default_tenant,
    )
