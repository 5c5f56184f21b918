"""HTTP routes of the auth service: they map requests to service calls, nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.auth.revocation import Revocations
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import error_response
from orchestrion.kernel.http.deps import CurrentPrincipal, Db, Internal, client_ip, require
from orchestrion.kernel.http.etag import check_if_match, resource_response
from orchestrion.kernel.http.idempotency import run_idempotent
from orchestrion.kernel.http.lists import (
    ListPage,
    fetch_page,
    list_body,
    list_parameters,
    parse_list_query,
)
from orchestrion.kernel.http.openapi import not_modified, problems
from orchestrion.kernel.ids import isoformat
from orchestrion.services.auth import personal, repository, service
from orchestrion.services.auth.errors import (
    InvalidCredentials,
    InvalidRefreshToken,
    NotPlatformAdmin,
)
from orchestrion.services.auth.keys import ALGORITHM
from orchestrion.services.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPrincipal,
    ApiKeyRead,
    ApiKeyVerify,
    AuditEventRead,
    Jwks,
    LoginRequest,
    LogoutRequest,
    Me,
    OpenIdConfiguration,
    PersonalData,
    RefreshRequest,
    SigningKeyRead,
    TenantCreate,
    TenantRead,
    TokenPair,
    UserCreate,
    UserRead,
    UserUpdate,
)
from orchestrion.services.auth.service import AuthRuntime

router = APIRouter(tags=["auth"])
PREFIX = "/api/v1/auth"


def _runtime(request: Request) -> AuthRuntime:
    runtime: AuthRuntime = request.app.state.auth
    return runtime


Runtime = Annotated[AuthRuntime, Depends(_runtime)]


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work (``kernel.http.deps.Session``), whose revocations are
    announced once it commits: before the answer leaves, so the client's next request,
    at any gateway, finds the credential refused."""
    database: Database = request.app.state.database
    async with database.session() as session:
        yield session
    revoked = service.committed_revocations(session)
    if revoked:
        revocations: Revocations = request.app.state.revocations
        await revocations.publish(revoked)


Session = Annotated[AsyncSession, Depends(_session, scope="function")]


async def _live_principal(principal: CurrentPrincipal, session: Session) -> Principal:
    """The caller, refused when their session ended (logout takes effect at once here)."""
    await service.check_session_alive(session, principal=principal)
    return principal


LivePrincipal = Annotated[Principal, Depends(_live_principal)]


def _platform_admin(principal: LivePrincipal) -> Principal:
    if not principal.is_platform_admin:
        raise NotPlatformAdmin("only platform admins may do this")
    return principal


# --- discovery ---------------------------------------------------------------------


@router.get(
    "/.well-known/jwks.json", response_model=Jwks, summary="Public keys that verify access tokens"
)
async def jwks(session: Session, runtime: Runtime) -> Response:
    """The JSON Web Key Set; includes recently retired keys until their tokens expire."""
    return JSONResponse(
        await runtime.keys.jwks(session), headers={"Cache-Control": "public, max-age=300"}
    )


@router.get(
    "/.well-known/openid-configuration",
    response_model=OpenIdConfiguration,
    summary="OpenID Connect discovery document",
)
async def openid_configuration(request: Request, runtime: Runtime) -> dict[str, Any]:
    """Where the keys and endpoints are, for OIDC-aware clients and proxies."""
    settings = request.app.state.settings
    base = (settings.public_url or str(request.base_url)).rstrip("/")
    return {
        "issuer": runtime.issuer,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "token_endpoint": f"{base}{PREFIX}/login",
        "userinfo_endpoint": f"{base}{PREFIX}/me",
        "revocation_endpoint": f"{base}{PREFIX}/logout",
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "token_endpoint_auth_methods_supported": ["none"],
        "claims_supported": ["sub", "tid", "email", "roles", "perms", "sid", "iss", "aud"],
    }


# --- sessions ----------------------------------------------------------------------


@router.post(f"{PREFIX}/login", response_model=TokenPair, summary="Log in", responses=problems(429))
async def login(
    body: LoginRequest, request: Request, session: Session, runtime: Runtime
) -> Response:
    """A token pair for an email and password. Failures are throttled per account and IP."""
    try:
        pair = await service.login(
            session,
            runtime=runtime,
            email=body.email,
            password=body.password,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
    except InvalidCredentials as exc:
        return error_response(request, exc)  # the failed attempt stays in the audit log
    return JSONResponse(pair, headers={"Cache-Control": "no-store"})


@router.post(f"{PREFIX}/refresh", response_model=TokenPair, summary="Exchange a refresh token")
async def refresh(
    body: RefreshRequest, request: Request, session: Session, runtime: Runtime
) -> Response:
    """A new pair; the presented token stops working. Presenting it again ends the session."""
    try:
        pair = await service.refresh(
            session, runtime=runtime, refresh_token=body.refresh_token, ip=client_ip(request)
        )
    except InvalidRefreshToken as exc:
        return error_response(request, exc)  # a reuse's revocation must commit
    return JSONResponse(pair, headers={"Cache-Control": "no-store"})


@router.post(f"{PREFIX}/logout", status_code=204, summary="Log out")
async def logout(
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    body: LogoutRequest | None = None,
) -> Response:
    """End the session: its refresh tokens stop working and ``/me`` refuses its tokens."""
    await service.logout(
        session,
        principal=principal,
        refresh_token=body.refresh_token if body else None,
        ip=client_ip(request),
    )
    return Response(status_code=204)


@router.get(f"{PREFIX}/me", response_model=Me, summary="Who am I")
async def me(principal: LivePrincipal) -> dict[str, Any]:
    """The caller's identity, tenant and rights."""
    return {
        "id": principal.user_id,
        "email": principal.email,
        "tenant_id": principal.tenant_id,
        "roles": list(principal.roles),
        "permissions": sorted(principal.permissions),
        "kind": principal.kind,
        "platform_admin": principal.is_platform_admin,
    }


@router.post(
    f"{PREFIX}/keys/rotate",
    status_code=201,
    response_model=SigningKeyRead,
    summary="Rotate the signing key",
)
async def rotate_signing_key(
    session: Session, runtime: Runtime, request: Request, principal: CurrentPrincipal
) -> Response:
    """Publish a new key; it signs from ``activates_at`` and the old one retires then."""
    _platform_admin(principal)
    row = await runtime.keys.rotate(session)
    service.audit(
        session,
        action="signing_key.rotated",
        tenant_id=principal.tenant_id,
        actor_id=principal.user_id,
        target_type="signing_key",
        target_id=row.kid,
        ip=client_ip(request),
    )
    return JSONResponse(
        {
            "kid": row.kid,
            "created_at": isoformat(row.created_at),
            "activates_at": isoformat(row.activates_at),
        },
        status_code=201,
    )


# --- tenants -----------------------------------------------------------------------


@router.post(
    f"{PREFIX}/tenants",
    status_code=201,
    response_model=TenantRead,
    summary="Create a tenant",
    responses=problems(409),
)
async def create_tenant(
    body: TenantCreate, request: Request, session: Session, principal: LivePrincipal
) -> dict[str, Any]:
    """Platform admins only."""
    _platform_admin(principal)
    tenant = await service.create_tenant(session, name=body.name)
    service.audit(
        session,
        action="tenant.created",
        tenant_id=tenant.id,
        actor_id=principal.user_id,
        target_type="tenant",
        target_id=tenant.id,
        ip=client_ip(request),
    )
    return service.tenant_to_dict(tenant)


@router.get(
    f"{PREFIX}/tenants",
    response_model=ListPage[TenantRead],
    openapi_extra=list_parameters(repository.TENANT_LIST),
    summary="List tenants",
    responses=problems(400),
)
async def list_tenants(request: Request, session: Session, principal: LivePrincipal) -> Response:
    """Every tenant for a platform admin; one's own tenant otherwise."""
    query = parse_list_query(request, repository.TENANT_LIST)
    scope = None if principal.is_platform_admin else principal.tenant_id
    page = await fetch_page(session, repository.tenants(scope), repository.TENANT_LIST, query)
    return JSONResponse(
        list_body(request, [service.tenant_to_dict(t) for t in page.rows], query, page)
    )


@router.get(
    f"{PREFIX}/tenants/{{tenant_id}}",
    response_model=TenantRead,
    summary="Get a tenant",
    responses={**problems(404), **not_modified()},
)
async def get_tenant(
    tenant_id: str, request: Request, session: Session, principal: LivePrincipal
) -> Response:
    """One tenant the caller may see."""
    tenant = await service.get_tenant(session, principal=principal, tenant_id=tenant_id)
    return resource_response(request, service.tenant_to_dict(tenant))


# --- users -------------------------------------------------------------------------


@router.post(
    f"{PREFIX}/users",
    status_code=201,
    response_model=UserRead,
    summary="Create a user",
    responses=problems(404, 409),
)
async def create_user(
    body: UserCreate,
    request: Request,
    session: Session,
    runtime: Runtime,
    principal: Annotated[Principal, Depends(require(Permission.USERS_WRITE))],
) -> Response:
    """Admins create users in their tenant, never above themselves; platform admins in
    any tenant (``Idempotency-Key``)."""
    tenant_id = body.tenant_id or principal.tenant_id
    service.check_can_manage_tenant(principal, tenant_id)

    async def produce() -> tuple[int, Any]:
        await service.get_tenant(session, principal=principal, tenant_id=tenant_id)
        user = await service.create_user(
            session,
            tenant_id=tenant_id,
            email=body.email,
            password=body.password,
            roles=body.roles,
            platform_admin=body.platform_admin,
            passwords=runtime.passwords,
            principal=principal,
        )
        service.audit(
            session,
            action="user.created",
            tenant_id=tenant_id,
            actor_id=principal.user_id,
            target_type="user",
            target_id=user.id,
            ip=client_ip(request),
            data={"email": user.email, "roles": user.roles},
        )
        return 201, service.user_to_dict(user)

    return await run_idempotent(
        session,
        request=request,
        scope=f"{principal.tenant_id}:{principal.subject}:POST:{PREFIX}/users",
        payload=body.model_dump(mode="json"),
        produce=produce,
        sealing=runtime.sealing,
    )


@router.get(
    f"{PREFIX}/users",
    response_model=ListPage[UserRead],
    openapi_extra=list_parameters(repository.USER_LIST),
    summary="List users",
    responses=problems(400),
)
async def list_users(
    request: Request,
    session: Session,
    principal: Annotated[Principal, Depends(require(Permission.USERS_READ))],
) -> Response:
    """Users of the caller's tenant (platform admins: every tenant, filter `tenant_id`)."""
    query = parse_list_query(request, repository.USER_LIST)
    scope = None if principal.is_platform_admin else principal.tenant_id
    page = await fetch_page(session, repository.users_in(scope), repository.USER_LIST, query)
    return JSONResponse(
        list_body(request, [service.user_to_dict(u) for u in page.rows], query, page)
    )


@router.get(
    f"{PREFIX}/users/{{user_id}}",
    response_model=UserRead,
    summary="Get a user",
    responses={**problems(404), **not_modified()},
)
async def get_user(
    user_id: str,
    request: Request,
    session: Session,
    principal: Annotated[Principal, Depends(require(Permission.USERS_READ))],
) -> Response:
    """One user of the caller's tenant."""
    user = await service.get_user(session, principal=principal, user_id=user_id)
    return resource_response(request, service.user_to_dict(user))


@router.patch(
    f"{PREFIX}/users/{{user_id}}",
    response_model=UserRead,
    summary="Change a user",
    responses=problems(404, 409, 412),
)
async def update_user(
    user_id: str,
    body: UserUpdate,
    request: Request,
    session: Session,
    runtime: Runtime,
    principal: Annotated[Principal, Depends(require(Permission.USERS_WRITE))],
) -> Response:
    """Email, password, roles or active flag; a new password or deactivation ends sessions."""
    user = await service.get_user(session, principal=principal, user_id=user_id)
    check_if_match(request, service.user_to_dict(user))
    changes = body.model_dump(exclude_unset=True)
    user = await service.update_user(
        session, principal=principal, user=user, changes=changes, passwords=runtime.passwords
    )
    service.audit(
        session,
        action="user.updated",
        tenant_id=user.tenant_id,
        actor_id=principal.user_id,
        target_type="user",
        target_id=user.id,
        ip=client_ip(request),
        data={"changed": sorted(changes)},
    )
    return resource_response(request, service.user_to_dict(user))


@router.delete(
    f"{PREFIX}/users/{{user_id}}",
    status_code=204,
    summary="Delete a user",
    responses=problems(404, 409, 412),
)
async def delete_user(
    user_id: str,
    request: Request,
    session: Session,
    principal: Annotated[Principal, Depends(require(Permission.USERS_WRITE))],
    erase: Annotated[
        bool, Query(description="Erase the person's data everywhere (right to erasure).")
    ] = False,
) -> Response:
    """Remove a user, their sessions and API keys. With `erase=true`, also erase them
    everywhere: their audit lines are anonymised and every service holding personal data
    deletes or anonymises it (`user.erased` on the bus)."""
    user = await service.get_user(session, principal=principal, user_id=user_id)
    check_if_match(request, service.user_to_dict(user))
    if erase:
        await personal.erase_user(session, principal=principal, user=user, ip=client_ip(request))
        return Response(status_code=204)
    tenant_id = user.tenant_id
    await service.delete_user(session, principal=principal, user=user)
    service.audit(
        session,
        action="user.deleted",
        tenant_id=tenant_id,
        actor_id=principal.user_id,
        target_type="user",
        target_id=user_id,
        ip=client_ip(request),
    )
    return Response(status_code=204)


@router.get(
    f"{PREFIX}/users/{{user_id}}/export",
    response_model=PersonalData,
    summary="Export every personal record of a user",
    responses=problems(404, 503),
)
async def export_user(
    user_id: str,
    request: Request,
    database: Db,
    principal: Annotated[Principal, Depends(require(Permission.USERS_WRITE))],
) -> Response:
    """Everything the platform holds about a person, as JSON (right of access): the
    user, and by service what each keeps (auth: sessions, API keys without secrets,
    provider identities, audit lines). After an erasure, `user` says so and the services
    show only what was kept under the pseudonym. A service that does not answer fails
    the export (503 naming it), never a partial one."""
    # The session covers auth's own reads only, not the calls to the other services.
    async with database.session() as session:
        about, person, own = await personal.subject_of(
            session, principal=principal, user_id=user_id
        )
    others = await personal.gather(
        request.app.state.personal_peers, names=request.app.state.personal_names, person=person
    )
    return JSONResponse({"user": about, "services": {"auth": own, **others}})


# --- API keys ----------------------------------------------------------------------


@router.post(
    f"{PREFIX}/api-keys",
    status_code=201,
    response_model=ApiKeyCreated,
    summary="Create an API key",
    responses=problems(404, 409),
)
async def create_api_key(
    body: ApiKeyCreate,
    request: Request,
    session: Session,
    runtime: Runtime,
    principal: Annotated[Principal, Depends(require(Permission.API_KEYS_WRITE))],
) -> Response:
    """The key (``orn_...``) is in the answer this once; store it now."""

    async def produce() -> tuple[int, Any]:
        row, raw = await service.create_api_key(
            session,
            principal=principal,
            name=body.name,
            scopes=body.scopes,
            expires_at=body.expires_at,
            ip=client_ip(request),
        )
        return 201, {**service.api_key_to_dict(row), "key": raw}

    return await run_idempotent(
        session,
        request=request,
        scope=f"{principal.tenant_id}:{principal.subject}:POST:{PREFIX}/api-keys",
        payload=body.model_dump(mode="json"),
        produce=produce,
        sealing=runtime.sealing,
    )


@router.get(
    f"{PREFIX}/api-keys",
    response_model=ListPage[ApiKeyRead],
    openapi_extra=list_parameters(repository.API_KEY_LIST),
    summary="List API keys",
    responses=problems(400),
)
async def list_api_keys(
    request: Request,
    session: Session,
    principal: Annotated[Principal, Depends(require(Permission.API_KEYS_READ))],
) -> Response:
    """The caller's keys (every key of the tenant for user admins)."""
    query = parse_list_query(request, repository.API_KEY_LIST)
    owner = None if principal.can(Permission.USERS_WRITE) else principal.user_id
    stmt = repository.api_keys_in(principal.tenant_id, user_id=owner)
    page = await fetch_page(session, stmt, repository.API_KEY_LIST, query)
    return JSONResponse(
        list_body(request, [service.api_key_to_dict(k) for k in page.rows], query, page)
    )


@router.get(
    f"{PREFIX}/api-keys/{{key_id}}",
    response_model=ApiKeyRead,
    summary="Get an API key",
    responses={**problems(404), **not_modified()},
)
async def get_api_key(
    key_id: str,
    request: Request,
    session: Session,
    principal: Annotated[Principal, Depends(require(Permission.API_KEYS_READ))],
) -> Response:
    """One key's metadata."""
    key = await service.get_api_key(session, principal=principal, key_id=key_id)
    return resource_response(request, service.api_key_to_dict(key))


@router.delete(f"{PREFIX}/api-keys/{{key_id}}", status_code=204, summary="Revoke an API key")
async def revoke_api_key(
    key_id: str,
    request: Request,
    session: Session,
    principal: Annotated[Principal, Depends(require(Permission.API_KEYS_WRITE))],
) -> Response:
    """The key stops working, at every gateway before this answers."""
    key = await service.get_api_key(session, principal=principal, key_id=key_id)
    await service.revoke_api_key(session, principal=principal, key=key, ip=client_ip(request))
    return Response(status_code=204)


@router.post(
    f"{PREFIX}/api-keys/{{key_id}}/rotate",
    response_model=ApiKeyCreated,
    summary="Rotate an API key's secret",
)
async def rotate_api_key(
    key_id: str,
    request: Request,
    session: Session,
    principal: Annotated[Principal, Depends(require(Permission.API_KEYS_WRITE))],
) -> dict[str, Any]:
    """Same key id and scopes, new secret shown once; the old secret stops working."""
    key = await service.get_api_key(session, principal=principal, key_id=key_id)
    raw = await service.rotate_api_key(session, principal=principal, key=key, ip=client_ip(request))
    return {**service.api_key_to_dict(key), "key": raw}


# --- audit -------------------------------------------------------------------------


@router.get(
    f"{PREFIX}/audit",
    response_model=ListPage[AuditEventRead],
    openapi_extra=list_parameters(repository.AUDIT_LIST),
    summary="The audit log",
    responses=problems(400),
)
async def list_audit(
    request: Request,
    session: Session,
    principal: Annotated[Principal, Depends(require(Permission.AUDIT_READ))],
) -> Response:
    """Auth events of the caller's tenant (every tenant for platform admins)."""
    query = parse_list_query(request, repository.AUDIT_LIST)
    scope = None if principal.is_platform_admin else principal.tenant_id
    page = await fetch_page(session, repository.audit_in(scope), repository.AUDIT_LIST, query)
    return JSONResponse(
        list_body(request, [service.audit_to_dict(e) for e in page.rows], query, page)
    )


# --- internal (gateway only) -------------------------------------------------------


@router.post(
    "/internal/auth/api-keys/verify", response_model=ApiKeyPrincipal, include_in_schema=False
)
async def verify_api_key(body: ApiKeyVerify, session: Session, _internal: Internal) -> Response:
    """The principal a raw API key stands for; 401 when it is not valid."""
    principal, expires_at = await service.verify_api_key(session, raw=body.key)
    return JSONResponse({"principal": principal.to_claims(), "expires_at": isoformat(expires_at)})
