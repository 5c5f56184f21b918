"""Authentication at the gateway: request headers to a :class:`Principal`.

The verification itself (JWTs against the JWKS, API keys with the auth service, and
their caches, the revocation notices it honours) is
:class:`orchestrion.kernel.auth.tokens.TokenVerifier`, shared with the services that
authenticate clients themselves; this module only reads the headers.

Signed requests (``Authorization: Orchestrion-HMAC ...``, :mod:`orchestrion.kernel.auth.signing`)
need the body too: :meth:`Authenticator.authenticate_signed` checks the timestamp first
(before reading anything), reads the body (up to the gateway's limit), checks it against
``Content-Digest``, has auth check the signature, and hands back a ``receive`` that
replays the body to the service.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope

from orchestrion.gateway.upstream import Upstream
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.auth.revocation import Revocations
from orchestrion.kernel.auth.signing import (
    DIGEST_HEADER,
    SCHEME,
    SignedHeader,
    check_digest,
    check_timestamp,
)
from orchestrion.kernel.auth.tokens import API_KEY_PREFIX, TokenVerifier
from orchestrion.kernel.errors import PayloadTooLarge, Unauthenticated

__all__ = ["API_KEY_PREFIX", "Authenticator", "is_signed"]
_SIGNED_PREFIX = SCHEME.lower() + " "


def is_signed(authorization: str | None) -> bool:
    """Whether ``authorization`` is a signature (``Orchestrion-HMAC ...``)."""
    return authorization is not None and authorization[: len(_SIGNED_PREFIX)].lower() == (
        _SIGNED_PREFIX
    )


class Authenticator:
    """Turns request credentials (``Authorization``, ``X-API-Key``) into a :class:`Principal`."""

    def __init__(
        self,
        auth: Upstream,
        *,
        issuer: str,
        audience: str,
        jwks_cache_seconds: float,
        api_key_cache_seconds: float,
        jwks_min_refresh_seconds: float = 5.0,
        revocations: Revocations | None = None,
        signature_window_seconds: float = 300.0,
    ) -> None:
        self.auth = auth
        self.signature_window = signature_window_seconds
        self.verifier = TokenVerifier(
            auth.client,
            issuer=issuer,
            audience=audience,
            jwks_cache_seconds=jwks_cache_seconds,
            jwks_min_refresh_seconds=jwks_min_refresh_seconds,
            api_key_cache_seconds=api_key_cache_seconds,
            revocations=revocations,
        )

    async def authenticate(
        self, authorization: str | None, api_key: str | None
    ) -> Principal | None:
        """The principal for the credentials given; None when there are none; 401 when bad."""
        if api_key:
            return await self.verifier.verify_api_key(api_key)
        if not authorization:
            return None
        if is_signed(authorization):
            raise Unauthenticated(
                f"{SCHEME} signatures are accepted on the REST API (/api/...); "
                "use a bearer token or API key here"
            )
        scheme, _, credentials = authorization.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise Unauthenticated("use 'Authorization: Bearer <token or API key>'")
        return await self.verifier.verify(credentials)

    async def authenticate_signed(
        self, scope: Scope, receive: Receive, *, max_body: int
    ) -> tuple[Principal, Receive]:
        """The principal of a signed request, and a ``receive`` that gives the service
        the body read to check it; :class:`InvalidSignature` (401) naming what failed,
        :class:`PayloadTooLarge` past ``max_body``."""
        headers = Headers(scope=scope)
        signed = SignedHeader.parse(headers["authorization"])
        check_timestamp(signed.timestamp, window=self.signature_window)
        body = b"" if scope["type"] != "http" else await _read_body(receive, max_body)
        digest = check_digest(headers.get(DIGEST_HEADER), body)
        target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        principal = await self.verifier.verify_signature(
            signed, method=scope.get("method", "GET"), target=target, digest=digest
        )
        return principal, _replaying(body, receive) if scope["type"] == "http" else receive

    async def refresh_keys(self) -> None:
        """Fetch the auth service's JWKS now."""
        await self.verifier.refresh_keys()

    def forget(self) -> None:
        """Drop cached verifications (tests and key revocation hooks)."""
        self.verifier.forget()


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; :class:`PayloadTooLarge` past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client left: what came is all there is
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then waits on the client (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
