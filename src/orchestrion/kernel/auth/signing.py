"""Signed requests: HMAC-SHA256 over a request, an alternative to bearer keys for
server-to-server callers (docs/identity.md, "Signed requests (HMAC)").

A caller holding a key id and its secret (``POST /api/v1/auth/hmac-keys``) sends::

    Content-Digest: sha-256=:<base64 SHA-256 of the body>:
    Authorization: Orchestrion-HMAC keyId="<id>", ts=<unix seconds>, nonce="<random>",
                   signature="<base64 HMAC-SHA256(secret, string to sign)>"

where the string to sign is these lines joined by ``\\n``::

    ORCHESTRION-HMAC-SHA256
    <key id>
    <ts>
    <nonce>
    <METHOD>
    <path and query, exactly as sent>
    sha-256=:<base64 SHA-256 of the body>:

``Content-Digest`` is RFC 9530's field; it may be left out when the body is empty. The
server recomputes the digest from the body it received (a ``Content-Digest`` that
disagrees is refused), checks the timestamp against its clock (within a window, either
way), recomputes the signature with the stored secret and compares in constant time,
and refuses a signature it has seen within the window (a replay). The nonce makes two
identical requests in the same second different signatures.

:class:`HmacAuth` signs ``httpx`` requests this way. Every refusal is an
:class:`InvalidSignature` (401) whose ``detail`` says which check failed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Generator
from dataclasses import dataclass

import httpx

from orchestrion.kernel.errors import Unauthenticated

SCHEME = "Orchestrion-HMAC"
ALGORITHM = "ORCHESTRION-HMAC-SHA256"
DIGEST_HEADER = "Content-Digest"
#: ``Content-Digest`` of an empty body.
EMPTY_DIGEST = "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*(?:"([^"]*)"|([^\s,"]+))\s*(?:,|$)')
_DIGEST_MEMBER = re.compile(r"(?:^|,)\s*sha-256\s*=\s*:([A-Za-z0-9+/=]+):\s*(?=,|$)")
_MAX_NONCE = 128


class InvalidSignature(Unauthenticated):
    """A signed request was refused: malformed, unknown key, stale timestamp, digest
    mismatch, bad signature or replay (``detail`` says which)."""

    title = "Invalid Signature"


@dataclass(frozen=True, slots=True)
class SignedHeader:
    """The parameters of an ``Authorization: Orchestrion-HMAC ...`` header."""

    key_id: str
    timestamp: int
    nonce: str
    signature: str

    @classmethod
    def parse(cls, value: str) -> SignedHeader:
        """The parameters of ``value`` (the whole header); :class:`InvalidSignature`
        when one is missing or malformed."""
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != SCHEME.lower():
            raise InvalidSignature(f"not an {SCHEME} authorization")
        params: dict[str, str] = {}
        position = 0
        rest = rest.strip()
        while position < len(rest):
            match = _PARAM.match(rest, position)
            if match is None or match.end() == position:
                raise InvalidSignature(
                    f'malformed {SCHEME} header: expected keyId="...", ts=..., nonce="...", '
                    'signature="..."'
                )
            quoted, bare = match.group(2), match.group(3)
            params[match.group(1)] = quoted if quoted is not None else bare
            position = match.end()
        missing = [name for name in ("keyId", "ts", "nonce", "signature") if not params.get(name)]
        if missing:
            raise InvalidSignature(f"{SCHEME} header lacks {', '.join(missing)}")
        if not params["ts"].isdigit():
            raise InvalidSignature("ts must be Unix seconds")
        if len(params["nonce"]) > _MAX_NONCE or len(params["keyId"]) > 64:
            raise InvalidSignature("keyId or nonce is too long")
        return cls(params["keyId"], int(params["ts"]), params["nonce"], params["signature"])

    def format(self) -> str:
        """The header's value."""
        return (
            f'{SCHEME} keyId="{self.key_id}", ts={self.timestamp}, nonce="{self.nonce}", '
            f'signature="{self.signature}"'
        )


def content_digest(body: bytes) -> str:
    """RFC 9530's ``Content-Digest`` of ``body`` (SHA-256)."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def check_digest(header: str | None, body: bytes) -> str:
    """The digest of ``body``, after checking it against the caller's ``Content-Digest``
    (required when there is a body); :class:`InvalidSignature` when they disagree."""
    actual = content_digest(body)
    if header is None:
        if body:
            raise InvalidSignature(f"a signed request with a body needs {DIGEST_HEADER}")
        return actual
    member = _DIGEST_MEMBER.search(header)
    if member is None:
        raise InvalidSignature(f"{DIGEST_HEADER} has no sha-256 member")
    if not hmac.compare_digest(f"sha-256=:{member.group(1)}:", actual):
        raise InvalidSignature(f"{DIGEST_HEADER} does not match the body")
    return actual


def check_timestamp(timestamp: int, *, window: float, now: float | None = None) -> None:
    """:class:`InvalidSignature` unless ``timestamp`` is within ``window`` seconds of now."""
    skew = (time.time() if now is None else now) - timestamp
    if abs(skew) > window:
        direction = "old" if skew > 0 else "far in the future"
        raise InvalidSignature(
            f"stale timestamp: ts is {abs(int(skew))} s {direction}, more than the "
            f"{int(window)} s allowed (check the caller's clock)"
        )


def string_to_sign(
    *, key_id: str, timestamp: int, nonce: str, method: str, target: str, digest: str
) -> bytes:
    """What the signature covers (the module docstring lists its lines)."""
    lines = (ALGORITHM, key_id, str(timestamp), nonce, method.upper(), target, digest)
    return "\n".join(lines).encode()


def sign(secret: str, message: bytes) -> str:
    """The base64 HMAC-SHA256 of ``message`` under ``secret``."""
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def same_signature(expected: str, given: str) -> bool:
    """Whether two signatures are equal, in time independent of where they differ."""
    return hmac.compare_digest(expected.encode(), given.encode())


def signed_headers(
    key_id: str,
    secret: str,
    *,
    method: str,
    target: str,
    body: bytes = b"",
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """``Content-Digest`` and ``Authorization`` for a request (``target``: its path and
    query as sent); a fresh timestamp and nonce unless given."""
    digest = content_digest(body)
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = secrets.token_urlsafe(16) if nonce is None else nonce
    message = string_to_sign(
        key_id=key_id, timestamp=timestamp, nonce=nonce, method=method, target=target,
        digest=digest,
    )  # fmt: skip
    header = SignedHeader(key_id, timestamp, nonce, sign(secret, message))
    return {DIGEST_HEADER: digest, "Authorization": header.format()}


class HmacAuth(httpx.Auth):
    """Signs each request with a key id and its secret, for ``httpx`` clients::

        auth = HmacAuth("01a2...", "ohs_...")
        httpx.post("http://127.0.0.1:8000/api/v1/workflows", json={...}, auth=auth)

    Each request gets a fresh timestamp and nonce: a request sent again (a retry) is
    signed again, never replayed.
    """

    requires_request_body = True

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id = key_id
        self.secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add ``Content-Digest`` and ``Authorization`` to ``request``."""
        request.headers.update(
            signed_headers(
                self.key_id,
                self.secret,
                method=request.method,
                target=request.url.raw_path.decode("ascii"),
                body=request.content,
            )
        )
        yield request
