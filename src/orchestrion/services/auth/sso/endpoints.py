"""HTTP routes of single sign-on (``/api/v1/auth/sso/...``), all public.

Failures are problem+json, except one: when the provider itself reports an error on the
callback (``error=access_denied`` when the user declines consent, ``login_required``...),
the browser goes back to the frontend's ``redirect_uri`` with that ``error`` and its
``error_description``, as OAuth 2.0 does (RFC 6749 §4.1.2.1), so the frontend can say
so in its own page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import OrchestrionError, error_response
from orchestrion.kernel.http.deps import client_ip
from orchestrion.kernel.http.openapi import problems
from orchestrion.services.auth.endpoints import PREFIX, Runtime, Session
from orchestrion.services.auth.errors import InvalidSsoCode, InvalidSsoState
from orchestrion.services.auth.schemas import TokenPair
from orchestrion.services.auth.service import audit
from orchestrion.services.auth.sso import service
from orchestrion.services.auth.sso.schemas import SsoExchange, SsoProviderList
from orchestrion.services.auth.sso.service import SsoRuntime, with_query

router = APIRouter(tags=["auth"])
SSO = f"{PREFIX}/sso"


def _sso(request: Request) -> SsoRuntime:
    runtime: SsoRuntime = request.app.state.sso
    return runtime


Sso = Annotated[SsoRuntime, Depends(_sso)]


def _redirect_doc(to: str) -> dict[int | str, dict[str, Any]]:
    return {
        302: {
            "description": f"Found: the browser goes on to {to}",
            "headers": {
                "Location": {"description": "Where to go next", "schema": {"type": "string"}}
            },
        }
    }


def _cookie(name: str) -> str:
    return f"orn_sso_{name}"


def _callback_path(name: str) -> str:
    return f"{SSO}/{name}/callback"


def _callback_uri(request: Request, name: str) -> str:
    """Where the provider sends the browser back: the public URL the gateway serves."""
    base: str | None = request.app.state.settings.public_url
    if not base:
        host = request.headers.get("x-forwarded-host")
        scheme = request.headers.get("x-forwarded-proto") or request.url.scheme
        base = f"{scheme}://{host}" if host else str(request.base_url)
    return base.rstrip("/") + _callback_path(name)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get(
    f"{SSO}/providers",
    response_model=SsoProviderList,
    summary="Identity providers to sign in with",
)
async def list_providers(sso: Sso) -> dict[str, Any]:
    """The configured OpenID Connect providers (for "Sign in with ..." buttons)."""
    return {
        "data": [
            {"name": name, "display_name": config.display_name or name}
            for name, config in sso.client.providers.items()
        ]
    }


@router.get(
    f"{SSO}/{{name}}/login",
    response_class=RedirectResponse,
    status_code=302,
    summary="Start signing in with a provider",
    responses={**_redirect_doc("the provider's sign-in page"), **problems(502, 503)},
)
async def sso_login(
    name: str,
    request: Request,
    session: Session,
    sso: Sso,
    redirect_uri: Annotated[
        str,
        Query(
            max_length=2048,
            description="The frontend page to return to with `code` (or `error`); it must "
            "be in `ORCHESTRION_AUTH__SSO_REDIRECT_URIS`, exactly.",
        ),
    ],
) -> Response:
    """Redirect to the provider (authorization code with PKCE, ``state``, ``nonce``).
    404 for an unknown provider, 422 for a ``redirect_uri`` not allowed, 502/503 when
    the provider's discovery document cannot be had."""
    callback = _callback_uri(request, name)
    started = await service.begin(
        session, sso=sso, provider=name, redirect_uri=redirect_uri, callback_uri=callback
    )
    response = RedirectResponse(started.authorization_url, status_code=302)
    # Binds the callback to this browser: a callback URL someone else obtained (login CSRF)
    # carries a state whose cookie this browser does not have.
    response.set_cookie(
        _cookie(name),
        started.browser_token,
        max_age=int(sso.state_ttl.total_seconds()),
        path=_callback_path(name),
        httponly=True,
        samesite="lax",
        secure=callback.startswith("https:"),
    )
    return _no_store(response)


async def _record_failure(database: Database, *, provider: str, ip: str, reason: str) -> None:
    async with database.session() as session:
        audit(
            session,
            action="login.failed",
            tenant_id=None,
            actor_id=None,
            ip=ip,
            data={"method": "sso", "provider": provider, "reason": reason[:300]},
        )


@router.get(
    f"{SSO}/{{name}}/callback",
    response_class=RedirectResponse,
    status_code=302,
    summary="Where the provider returns after sign-in",
    responses={
        **_redirect_doc("the frontend's redirect_uri with `code`, or `error`"),
        **problems(400, 401, 403, 502, 503),
    },
)
async def sso_callback(
    name: str,
    request: Request,
    sso: Sso,
    state: Annotated[str | None, Query(max_length=512)] = None,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=1000)] = None,
    iss: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    """Check ``state``, exchange the code, validate the ID token, match or create the user,
    and send the browser to the frontend with a one-time ``code`` (single use, short-lived).

    400: bad, expired or used state; 401: an ID token that fails validation; 403: the
    email is not verified, or the account is disabled or of another tenant; 502/503: the
    provider failed. A provider-reported ``error`` returns to the frontend with it.
    """
    config = sso.client.provider(name)
    database: Database = request.app.state.database
    ip = client_ip(request)
    # Spent in its own unit of work, committed before the provider is called: a state
    # serves once whatever happens next, and no transaction waits on the provider.
    async with database.session() as session:
        pending = await service.take_state(session, provider=name, state=state)
    try:
        service.check_pending(pending, browser_token=request.cookies.get(_cookie(name)))
        if iss is not None and iss != config.issuer:
            # RFC 9207: the answer comes from another provider than the one asked (mix-up).
            raise InvalidSsoState(f"the callback's issuer {iss!r} is not provider '{name}'")
        if error is not None:
            await _record_failure(database, provider=name, ip=ip, reason=error)
            extra = {"error_description": error_description} if error_description else {}
            location = with_query(pending.redirect_uri, error=error, **extra)
        else:
            claims = await service.authenticate(sso=sso, pending=pending, code=code)
            async with database.session() as session:
                location = await service.sign_in(
                    session, sso=sso, pending=pending, claims=claims, ip=ip
                )
    except OrchestrionError as exc:
        await _record_failure(database, provider=name, ip=ip, reason=exc.detail)
        raise
    response = RedirectResponse(location, status_code=302)
    response.delete_cookie(_cookie(name), path=_callback_path(name))
    return _no_store(response)


@router.post(
    f"{SSO}/exchange",
    response_model=TokenPair,
    summary="Exchange a single sign-on code for tokens",
    responses=problems(401),
)
async def sso_exchange(
    body: SsoExchange, request: Request, session: Session, runtime: Runtime
) -> Response:
    """The answer of ``POST /api/v1/auth/login`` for the one-time code of a sign-in.
    401 when the code is unknown, expired or used; a used code presented again also
    ends the session its first exchange started."""
    try:
        pair = await service.exchange(
            session,
            runtime=runtime,
            code=body.code,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
    except InvalidSsoCode as exc:
        return error_response(request, exc)  # a replay's revocation must commit
    return JSONResponse(pair, headers={"Cache-Control": "no-store"})
