"""Verifying bearer credentials: JWTs against the auth service's JWKS, API keys with auth.

Used by the gateway for every request and by services that authenticate clients
themselves (the realtime service's WebSocket subprotocol and ``auth`` frame). It only
needs an HTTP client to the auth service, so it works in-process and across hosts alike.

JWTs are verified locally against the JWKS, fetched once and refreshed when a token
names an unknown ``kid`` (key rotation) at most every ``jwks_min_refresh_seconds``, so a
flood of forged kids cannot hammer the auth service. Verified tokens are cached until
they expire: the hot path for a repeated token is a dict lookup, plus one more to refuse
tokens of an ended session. API keys are looked up through auth's internal endpoint and
the answer is cached for ``api_key_cache_seconds``. Signed requests
(:mod:`orchestrion.kernel.auth.signing`) are checked by auth every time, never cached:
each signature counts once.

Revocations reach the verifier as notices (:mod:`orchestrion.kernel.auth.revocation`):
an ended session's tokens are refused from the notice on, and a revoked or rotated key's
(or a changed user's) cached answers are dropped, so the next use asks auth again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

import httpx
import jwt
from jwt import PyJWK

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.auth.revocation import Revocation, Revocations
from orchestrion.kernel.auth.signing import InvalidSignature, SignedHeader
from orchestrion.kernel.errors import ServiceUnavailable, Unauthenticated

API_KEY_PREFIX = "orn_"
JWKS_PATH = "/.well-known/jwks.json"
API_KEY_VERIFY_PATH = "/internal/auth/api-keys/verify"
SIGNATURE_VERIFY_PATH = "/internal/auth/hmac-keys/verify"
_MAX_CACHED = 10_000
_SESSION_ENDED = "this session has ended; log in again"


class TTLCache:
    """A bounded map whose entries expire; the oldest is evicted first."""

    def __init__(self, max_items: int = _MAX_CACHED) -> None:
        self.items: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self.max_items = max_items

    def get(self, key: str) -> Any | None:
        """The live value under ``key``, or None."""
        entry = self.items.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self.items.pop(key, None)
            return None
        return entry[1]

    def put(self, key: str, value: Any, ttl: float) -> None:
        """Keep ``value`` under ``key`` for ``ttl`` seconds."""
        self.items[key] = (time.monotonic() + ttl, value)
        self.items.move_to_end(key)
        while len(self.items) > self.max_items:
            self.items.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        self.items.clear()


class TokenVerifier:
    """Turns a bearer credential (access token or ``orn_`` API key) into a :class:`Principal`.

    ``auth`` is an HTTP client whose base URL is the auth service and whose default
    headers carry the internal token (API-key lookups are internal calls).
    ``revocations``: the notices to honour (none are known without them).
    """

    def __init__(
        self,
        auth: httpx.AsyncClient,
        *,
        issuer: str,
        audience: str,
        jwks_cache_seconds: float = 300.0,
        jwks_min_refresh_seconds: float = 5.0,
        api_key_cache_seconds: float = 10.0,
        revocations: Revocations | None = None,
    ) -> None:
        self.auth = auth
        self.issuer = issuer
        self.audience = audience
        self.jwks_cache_seconds = jwks_cache_seconds
        self.jwks_min_refresh_seconds = jwks_min_refresh_seconds
        self.api_key_cache_seconds = api_key_cache_seconds
        self._keys: dict[str, PyJWK] = {}
        self._keys_fetched_at = float("-inf")
        self._tokens = TTLCache()
        self._api_keys = TTLCache()
        self.revocations = revocations if revocations is not None else Revocations()
        self._ended = self.revocations.sessions
        # Bumped by every notice about keys: a lookup that straddles one is not cached.
        self._key_epoch = 0
        self.revocations.listen(self._revoked)

    async def verify(self, credential: str) -> Principal:
        """The principal of a JWT or API key; :class:`Unauthenticated` when it is not valid."""
        credential = credential.strip()
        if not credential:
            raise Unauthenticated("empty credential")
        if credential.startswith(API_KEY_PREFIX):
            return await self.verify_api_key(credential)
        return await self.verify_jwt(credential)

    async def verify_jwt(self, token: str) -> Principal:
        """The principal of an access token signed by one of the auth service's keys."""
        cached = self._tokens.get(token)
        if cached is not None:
            if cached.session_id in self._ended:
                raise Unauthenticated(_SESSION_ENDED)
            return cached  # type: ignore[no-any-return]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed token") from None
        kid = header.get("kid")
        if header.get("alg") != "EdDSA" or not isinstance(kid, str):
            raise Unauthenticated("unsupported token algorithm or missing key id")
        key = await self._signing_key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "tid"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        principal = Principal(
            subject=str(claims["sub"]),
            tenant_id=str(claims["tid"]),
            kind="user",
            roles=tuple(claims.get("roles") or ()),
            permissions=frozenset(claims.get("perms") or ()),
            email=claims.get("email"),
            session_id=claims.get("sid"),
            expires_at=float(claims["exp"]),
        )
        if principal.session_id in self._ended:
            raise Unauthenticated(_SESSION_ENDED)
        self._tokens.put(token, principal, max(0.0, float(claims["exp"]) - time.time()))
        return principal

    async def _signing_key(self, kid: str) -> Any:
        stale = time.monotonic() - self._keys_fetched_at > self.jwks_cache_seconds
        if stale or (
            kid not in self._keys
            and time.monotonic() - self._keys_fetched_at >= self.jwks_min_refresh_seconds
        ):
            await self.refresh_keys()
        jwk = self._keys.get(kid)
        if jwk is None:
            raise Unauthenticated("token signed with an unknown key")
        return jwk.key

    async def refresh_keys(self) -> None:
        """Fetch the auth service's JWKS now (keeps the old keys if auth is unreachable)."""
        try:
            response = await self.auth.get(JWKS_PATH)
            response.raise_for_status()
            document = response.json()
        except Exception as exc:
            if self._keys:  # keep verifying with the keys we have
                return
            raise ServiceUnavailable("cannot reach the auth service to verify tokens") from exc
        keys: dict[str, PyJWK] = {}
        for entry in document.get("keys", []):
            try:
                keys[entry["kid"]] = PyJWK(entry)
            except (jwt.PyJWTError, KeyError, ValueError):
                continue
        self._keys = keys
        self._keys_fetched_at = time.monotonic()

    async def verify_api_key(self, key: str) -> Principal:
        """The principal of an API key, as the auth service answers for it (cached briefly)."""
        # Cache by digest: raw keys should not sit in memory longer than needed.
        cache_key = hashlib.sha256(key.encode()).hexdigest()
        cached = self._api_keys.get(cache_key)
        if cached is not None:
            if cached is False:
                raise Unauthenticated("invalid API key")
            return cached  # type: ignore[no-any-return]
        epoch = self._key_epoch
        try:
            response = await self.auth.post(API_KEY_VERIFY_PATH, json={"key": key})
        except Exception as exc:
            raise ServiceUnavailable("cannot reach the auth service to check the API key") from exc
        if response.status_code in (401, 403, 404, 422):
            self._api_keys.put(cache_key, False, self.api_key_cache_seconds)
            raise Unauthenticated("invalid API key")
        if response.status_code != 200:
            raise ServiceUnavailable("the auth service could not check the API key")
        answer = json.loads(response.content)
        principal = Principal.from_claims(answer["principal"])
        if answer.get("expires_at"):
            expires = datetime.fromisoformat(answer["expires_at"]).timestamp()
            principal = dataclasses.replace(principal, expires_at=expires)
        if epoch == self._key_epoch:  # else auth may have answered before a revocation
            self._api_keys.put(cache_key, principal, self.api_key_cache_seconds)
        return principal

    async def verify_signature(
        self, signed: SignedHeader, *, method: str, target: str, digest: str
    ) -> Principal:
        """The principal of a signed request whose body has ``digest`` (checked by the
        caller against the body); :class:`InvalidSignature` with auth's reason."""
        check = {
            "key_id": signed.key_id,
            "timestamp": signed.timestamp,
            "nonce": signed.nonce,
            "signature": signed.signature,
            "method": method,
            "target": target,
            "digest": digest,
        }
        try:
            response = await self.auth.post(SIGNATURE_VERIFY_PATH, json=check)
        except Exception as exc:
            raise ServiceUnavailable(
                "cannot reach the auth service to check the signature"
            ) from exc
        if response.status_code in (401, 422):
            detail = _detail(response) if response.status_code == 401 else None
            raise InvalidSignature(detail or "malformed signed request")
        if response.status_code != 200:
            raise ServiceUnavailable("the auth service could not check the signature")
        answer = json.loads(response.content)
        principal = Principal.from_claims(answer["principal"])
        if answer.get("expires_at"):
            expires = datetime.fromisoformat(answer["expires_at"]).timestamp()
            principal = dataclasses.replace(principal, expires_at=expires)
        return principal

    def _revoked(self, notice: Revocation) -> None:
        """Drop cached key answers a notice makes stale (sessions are checked per request)."""
        if notice.kind == "session":
            return
        self._key_epoch += 1
        field = "api_key_id" if notice.kind == "api_key" else "subject"
        items = self._api_keys.items
        stale = [
            digest
            for digest, (_, value) in items.items()
            if isinstance(value, Principal) and getattr(value, field) == notice.id
        ]
        for digest in stale:
            items.pop(digest, None)

    def forget(self) -> None:
        """Drop cached verifications (tests and key revocation hooks)."""
        self._tokens.clear()
        self._api_keys.clear()


def _detail(response: httpx.Response) -> str | None:
    """The ``detail`` of a problem answer, if it is one."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) else None
