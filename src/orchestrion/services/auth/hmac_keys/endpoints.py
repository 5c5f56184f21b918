"""HTTP routes of HMAC keys (``/api/v1/auth/hmac-keys``) and the gateway's check of a
signed request (``/internal/auth/hmac-keys/verify``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.http.deps import Internal, client_ip, require
from orchestrion.kernel.http.etag import resource_response
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
from orchestrion.services.auth import repository
from orchestrion.services.auth.endpoints import PREFIX, Runtime, Session
from orchestrion.services.auth.hmac_keys import service
from orchestrion.services.auth.hmac_keys.schemas import (
    HmacKeyCreate,
    HmacKeyCreated,
    HmacKeyRead,
    SignatureCheck,
    SignaturePrincipal,
)
from orchestrion.services.auth.hmac_keys.service import HmacRuntime

router = APIRouter(tags=["auth"])
KEYS = f"{PREFIX}/hmac-keys"
Reader = Annotated[Principal, Depends(require(Permission.API_KEYS_READ))]
Writer = Annotated[Principal, Depends(require(Permission.API_KEYS_WRITE))]


def _hmac(request: Request) -> HmacRuntime:
    runtime: HmacRuntime = request.app.state.hmac
    return runtime


Hmac = Annotated[HmacRuntime, Depends(_hmac)]


@router.post(
    KEYS,
    status_code=201,
    response_model=HmacKeyCreated,
    summary="Create an HMAC key for signed requests",
    responses=problems(409),
)
async def create_hmac_key(
    body: HmacKeyCreate,
    request: Request,
    session: Session,
    runtime: Runtime,
    hmac: Hmac,
    principal: Writer,
) -> Response:
    """The key id and its ``secret`` (``ohs_...``), shown this once: store the secret
    now. Requests signed with them act as the caller, within ``scopes``."""

    async def produce() -> tuple[int, Any]:
        row, secret = await service.create_key(
            session,
            runtime=hmac,
            principal=principal,
            name=body.name,
            scopes=body.scopes,
            expires_at=body.expires_at,
            ip=client_ip(request),
        )
        return 201, {**service.key_to_dict(row), "secret": secret}

    return await run_idempotent(
        session,
        request=request,
        scope=f"{principal.tenant_id}:{principal.subject}:POST:{KEYS}",
        payload=body.model_dump(mode="json"),
        produce=produce,
        sealing=runtime.sealing,
    )


@router.get(
    KEYS,
    response_model=ListPage[HmacKeyRead],
    openapi_extra=list_parameters(repository.HMAC_KEY_LIST),
    summary="List HMAC keys",
    responses=problems(400),
)
async def list_hmac_keys(request: Request, session: Session, principal: Reader) -> Response:
    """The caller's keys (every key of the tenant for user admins)."""
    query = parse_list_query(request, repository.HMAC_KEY_LIST)
    owner = None if principal.can(Permission.USERS_WRITE) else principal.user_id
    stmt = repository.hmac_keys_in(principal.tenant_id, user_id=owner)
    page = await fetch_page(session, stmt, repository.HMAC_KEY_LIST, query)
    return JSONResponse(
        list_body(request, [service.key_to_dict(k) for k in page.rows], query, page)
    )


@router.get(
    f"{KEYS}/{{key_id}}",
    response_model=HmacKeyRead,
    summary="Get an HMAC key",
    responses={**problems(404), **not_modified()},
)
async def get_hmac_key(
    key_id: str, request: Request, session: Session, principal: Reader
) -> Response:
    """One key's metadata."""
    key = await service.get_key(session, principal=principal, key_id=key_id)
    return resource_response(request, service.key_to_dict(key))


@router.delete(
    f"{KEYS}/{{key_id}}",
    status_code=204,
    summary="Revoke an HMAC key",
    responses=problems(404),
)
async def revoke_hmac_key(
    key_id: str, request: Request, session: Session, principal: Writer
) -> Response:
    """The key's signatures are refused from now on."""
    key = await service.get_key(session, principal=principal, key_id=key_id)
    await service.revoke_key(session, principal=principal, key=key, ip=client_ip(request))
    return Response(status_code=204)


@router.post(
    f"{KEYS}/{{key_id}}/rotate",
    response_model=HmacKeyCreated,
    summary="Rotate an HMAC key's secret",
    responses=problems(404),
)
async def rotate_hmac_key(
    key_id: str, request: Request, session: Session, hmac: Hmac, principal: Writer
) -> dict[str, Any]:
    """Same key id and scopes, new secret shown once; the old secret stops working."""
    key = await service.get_key(session, principal=principal, key_id=key_id)
    secret = await service.rotate_key(
        session, runtime=hmac, principal=principal, key=key, ip=client_ip(request)
    )
    return {**service.key_to_dict(key), "secret": secret}


@router.post(
    "/internal/auth/hmac-keys/verify",
    response_model=SignaturePrincipal,
    include_in_schema=False,
)
async def verify_signature(
    body: SignatureCheck, session: Session, hmac: Hmac, _internal: Internal
) -> Response:
    """The principal a signed request stands for; 401 naming the failed check."""
    principal, expires_at = await service.verify(
        session,
        runtime=hmac,
        key_id=body.key_id,
        timestamp=body.timestamp,
        nonce=body.nonce,
        signature=body.signature,
        method=body.method,
        target=body.target,
        digest=body.digest,
    )
    return JSONResponse({"principal": principal.to_claims(), "expires_at": isoformat(expires_at)})
