"""Authentication at the gateway: request headers to a :class:`Principal`.

The verification itself (JWTs against the JWKS, API keys with the auth service, and
their caches, the revocation notices it honours) is
:class:`orchestrion.kernel.auth.tokens.TokenVerifier`, shared with the services that
authenticate clients themselves; this module only reads the headers.
"""

from __future__ import annotations

from orchestrion.gateway.upstream import Upstream
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.auth.revocation import Revocations
from orchestrion.kernel.auth.tokens import API_KEY_PREFIX, TokenVerifier
from orchestrion.kernel.errors import Unauthenticated

__all__ = ["API_KEY_PREFIX", "Authenticator"]


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
    ) -> None:
        self.auth = auth
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
        scheme, _, credentials = authorization.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise Unauthenticated("use 'Authorization: Bearer <token or API key>'")
        return await self.verifier.verify(credentials)

    async def refresh_keys(self) -> None:
        """Fetch the auth service's JWKS now."""
        await self.verifier.refresh_keys()

    def forget(self) -> None:
        """Drop cached verifications (tests and key revocation hooks)."""
        self.verifier.forget()
