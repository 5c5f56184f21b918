"""The identity header the gateway sets and services trust.

The gateway strips every ``X-Orchestrion-*`` header a client sends, verifies the
client's credentials, and forwards the principal as ``X-Orchestrion-Identity``:
base64url JSON plus an HMAC-SHA256 under the platform secret. A service accepts the
header only when the signature checks, so even a request that reaches a service
around the gateway cannot claim an identity.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from orchestrion.kernel.auth.principal import Principal

IDENTITY_HEADER = "x-orchestrion-identity"
INTERNAL_PREFIX = "x-orchestrion-"
# Forwarded identities are fresh by construction; a short life limits replay of a leaked one.
MAX_AGE_SECONDS = 300


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: str, secret: bytes) -> str:
    return _b64(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest())


def encode_identity(principal: Principal, secret: bytes, *, now: float | None = None) -> str:
    """The signed header value for ``principal``."""
    claims = principal.to_claims()
    claims["iat"] = int(now if now is not None else time.time())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{payload}.{_sign(payload, secret)}"


def decode_identity(value: str, secret: bytes, *, now: float | None = None) -> Principal | None:
    """The principal in a header value, or None when it is malformed, forged or stale."""
    payload, _, signature = value.partition(".")
    if not payload or not signature:
        return None
    if not hmac.compare_digest(signature, _sign(payload, secret)):
        return None
    try:
        claims = json.loads(_unb64(payload))
        issued = float(claims["iat"])
        principal = Principal.from_claims(claims)
    except (ValueError, KeyError, TypeError):
        return None
    current = now if now is not None else time.time()
    if abs(current - issued) > MAX_AGE_SECONDS:
        return None
    return principal


CLIENT_IP_HEADER = "x-orchestrion-client-ip"
INTERNAL_HEADER = "x-orchestrion-internal"


def internal_token(secret: bytes) -> str:
    """The token the gateway presents on internal calls (``/internal/...``) to services."""
    return _sign("orchestrion-internal-v1", secret)


def is_internal_call(value: str | None, secret: bytes) -> bool:
    """Whether ``value`` is the gateway's internal token."""
    return value is not None and hmac.compare_digest(value, internal_token(secret))
