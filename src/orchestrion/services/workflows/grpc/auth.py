"""Who is calling: ``authorization: Bearer <token or key>`` metadata to a :class:`Principal`.

gRPC calls do not pass the gateway, so this server verifies credentials itself with the
kernel's :class:`TokenVerifier`, the one the gateway and realtime use: access tokens
against the auth service's JWKS, ``orn_`` API keys through the auth service's internal
lookup, both cached, with the same revocation notices honoured.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.auth.tokens import TokenVerifier
from orchestrion.kernel.errors import ServiceUnavailable, Unauthenticated

_USAGE = "send metadata 'authorization: Bearer <access token or API key>'"


def bearer(metadata: Iterable[tuple[str, Any]] | None) -> str:
    """The credential of the ``authorization`` metadata (401 when absent or malformed)."""
    values = [value for key, value in metadata or () if key.lower() == "authorization"]
    if not values:
        raise Unauthenticated(f"authentication required: {_USAGE}")
    if len(values) > 1:
        raise Unauthenticated("send one 'authorization' metadata entry, not several")
    value = values[0]
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    scheme, _, credential = str(value).partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise Unauthenticated(_USAGE)
    return credential


class CallAuthenticator:
    """Verifies the credential of each call; without a verifier (no auth service known
    to this process) every call is refused as unavailable rather than let through."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        self.verifier = verifier

    async def principal(self, metadata: Iterable[tuple[str, Any]] | None) -> Principal:
        """The caller; :class:`Unauthenticated` or :class:`ServiceUnavailable` otherwise."""
        credential = bearer(metadata)
        if self.verifier is None:
            raise ServiceUnavailable("token verification is not available here (no auth service)")
        # The verifier reports an unreachable auth service as ServiceUnavailable.
        return await self.verifier.verify(credential)
