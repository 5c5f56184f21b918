"""FastAPI dependencies every service uses: the session and the principal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.identity import (
    CLIENT_IP_HEADER,
    IDENTITY_HEADER,
    INTERNAL_HEADER,
    decode_identity,
    is_internal_call,
)
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import NotFound, Unauthenticated


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, committed when the endpoint returns without raising."""
    database: Database = request.app.state.database
    async with database.session() as session:
        yield session


def get_database(request: Request) -> Database:
    """The app's database, for routes that open their sessions themselves: around their
    queries only, when slow work (a model, a plugin) must not hold SQLite's writer lock."""
    database: Database = request.app.state.database
    return database


def get_principal(request: Request) -> Principal:
    """The identity the gateway verified and signed; 401 without one."""
    value = request.headers.get(IDENTITY_HEADER)
    principal = decode_identity(value, request.app.state.identity_secret) if value else None
    if principal is None:
        raise Unauthenticated("authentication required")
    return principal


# scope="function" runs the commit before the response is sent, so a failed commit
# is the client's error response rather than a lost write behind a 2xx.
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(permission: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency giving the principal if it holds ``permission`` (else 403)."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        principal.require(permission)
        return principal

    return dependency


def client_ip(request: Request) -> str:
    """The caller's address as the gateway saw it (it strips the header from clients)."""
    forwarded = request.headers.get(CLIENT_IP_HEADER)
    if forwarded:
        return forwarded
    return request.client.host if request.client else "unknown"


def require_internal(request: Request) -> None:
    """Refuse calls that do not come from the gateway's internal client (404: nothing to see)."""
    if not is_internal_call(
        request.headers.get(INTERNAL_HEADER), request.app.state.identity_secret
    ):
        raise NotFound(f"no resource at {request.url.path}")


Internal = Annotated[None, Depends(require_internal)]
Db = Annotated[Database, Depends(get_database)]
