"""The relying-party side of OpenID Connect: discovery, the code exchange, ID tokens.

Endpoints come from each provider's discovery document (cached an hour in each
process; nothing here is shared state, so any auth instance serves any step of a
sign-in). ID tokens are checked with PyJWT against the provider's ``jwks_uri`` through
:class:`jwt.PyJWKClient`, which refetches the key set once when a token names an unknown
``kid`` (the provider rotated its keys).

Failures map to problems: the provider unreachable (503), an unusable answer (502), a
refused code (400), an ID token that fails a check (401).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import jwt

from orchestrion.services.auth.errors import (
    IdentityProviderError,
    IdentityProviderUnavailable,
    InvalidIdToken,
    SsoRefused,
    UnknownProvider,
)
from orchestrion.settings import OidcProviderSettings

#: Signature algorithms an ID token may use: asymmetric only, so that neither ``none``
#: nor a client secret turned HMAC key can vouch for a user.
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
DISCOVERY_PATH = "/.well-known/openid-configuration"
#: Clock difference tolerated between us and the provider.
LEEWAY_SECONDS = 60


@dataclass(frozen=True)
class ProviderMetadata:
    """What a provider's discovery document says that sign-in needs."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    token_auth_method: str
    algorithms: tuple[str, ...]

    @classmethod
    def parse(cls, document: Any, *, issuer: str) -> ProviderMetadata:
        """Check a discovery document (OIDC Discovery 1.0 §3, §4.3); 502 when unusable."""
        if not isinstance(document, dict):
            raise IdentityProviderError("the provider's discovery document is not a JSON object")
        if document.get("issuer") != issuer:
            raise IdentityProviderError(
                f"the provider's discovery document names issuer {document.get('issuer')!r}, "
                f"not the configured {issuer!r}"
            )
        missing = [
            key
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri")
            if not isinstance(document.get(key), str) or not document[key]
        ]
        if missing:
            raise IdentityProviderError(
                f"the provider's discovery document lacks {', '.join(missing)}"
            )
        methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if "client_secret_basic" in methods:
            auth_method = "client_secret_basic"
        elif "client_secret_post" in methods:
            auth_method = "client_secret_post"
        else:
            raise IdentityProviderError(
                "the provider accepts neither client_secret_basic nor client_secret_post"
            )
        advertised = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = tuple(a for a in advertised if a in ASYMMETRIC)
        if not algorithms:
            raise IdentityProviderError(
                f"the provider signs ID tokens only with {advertised}; an asymmetric "
                "algorithm (RS256, ES256, EdDSA...) is required"
            )
        challenge = document.get("code_challenge_methods_supported")
        if challenge is not None and "S256" not in challenge:
            raise IdentityProviderError("the provider does not support PKCE with S256")
        userinfo = document.get("userinfo_endpoint")
        return cls(
            issuer=issuer,
            authorization_endpoint=document["authorization_endpoint"],
            token_endpoint=document["token_endpoint"],
            jwks_uri=document["jwks_uri"],
            userinfo_endpoint=userinfo if isinstance(userinfo, str) and userinfo else None,
            token_auth_method=auth_method,
            algorithms=algorithms,
        )


def code_challenge(verifier: str) -> str:
    """The PKCE ``S256`` challenge of ``verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def validate_id_token(
    token: str,
    *,
    keys: jwt.PyJWKClient,
    issuer: str,
    client_id: str,
    nonce: str,
    algorithms: tuple[str, ...],
) -> dict[str, Any]:
    """The claims of an ID token that passes OIDC Core §3.1.3.7; 401 otherwise.

    Checked: the signature by a key of the provider's JWKS, ``iss``, ``aud`` (and
    ``azp`` when there are several audiences), ``exp``, ``iat`` and ``nonce``.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidIdToken(f"the ID token is malformed: {exc}") from None
    if header.get("alg") not in algorithms:
        raise InvalidIdToken(f"the ID token's algorithm {header.get('alg')!r} is not accepted")
    try:
        # urllib under the hood: off the event loop.
        key = await asyncio.to_thread(keys.get_signing_key_from_jwt, token)
    except jwt.PyJWKClientConnectionError as exc:
        raise IdentityProviderUnavailable(
            f"the provider's keys could not be fetched: {exc}"
        ) from None
    except jwt.PyJWTError as exc:
        raise InvalidIdToken(f"no key of the provider verifies the ID token: {exc}") from None
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=list(algorithms),
            audience=client_id,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidIdToken(f"the ID token is not valid: {exc}") from None
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
        raise InvalidIdToken("the ID token has several audiences and another authorized party")
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
        raise InvalidIdToken("the ID token's nonce is not the one of this sign-in")
    return claims


class OidcClient:
    """Talks to the configured providers; one per auth process."""

    def __init__(
        self,
        providers: dict[str, OidcProviderSettings],
        *,
        timeout: float,
        jwks_cooldown: float = 30.0,
        discovery_ttl: float = 3600.0,
    ) -> None:
        self.providers = providers
        self._timeout = timeout
        self._jwks_cooldown = jwks_cooldown
        self._discovery_ttl = discovery_ttl
        self._http: httpx.AsyncClient | None = None
        self._metadata: dict[str, tuple[float, ProviderMetadata]] = {}
        self._keys: dict[str, jwt.PyJWKClient] = {}

    def provider(self, name: str) -> OidcProviderSettings:
        """The settings of provider ``name``; 404 when none has that name."""
        found = self.providers.get(name)
        if found is None:
            raise UnknownProvider(f"no identity provider named '{name}'")
        return found

    @property
    def http(self) -> httpx.AsyncClient:
        """The pooled client (made on first use, in the serving event loop)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        return self._http

    async def aclose(self) -> None:
        """Close the pooled connections."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _call(self, name: str, what: str, request: httpx.Request) -> httpx.Response:
        try:
            return await self.http.send(request)
        except (httpx.TimeoutException, httpx.NetworkError) as exc:
            raise IdentityProviderUnavailable(
                f"identity provider '{name}' is unreachable ({what}): {exc!r}"
            ) from None
        except httpx.HTTPError as exc:
            raise IdentityProviderError(
                f"identity provider '{name}' failed ({what}): {exc!r}"
            ) from None

    async def metadata(self, name: str) -> ProviderMetadata:
        """Provider ``name``'s endpoints, from its discovery document (cached)."""
        config = self.provider(name)
        cached = self._metadata.get(name)
        if cached is not None and time.monotonic() - cached[0] < self._discovery_ttl:
            return cached[1]
        url = config.issuer.rstrip("/") + DISCOVERY_PATH
        response = await self._call(name, "discovery", self.http.build_request("GET", url))
        if response.status_code != 200:
            raise IdentityProviderError(
                f"identity provider '{name}' answered {response.status_code} to discovery"
            )
        try:
            document = response.json()
        except ValueError:
            raise IdentityProviderError(
                f"identity provider '{name}' sent a discovery document that is not JSON"
            ) from None
        found = ProviderMetadata.parse(document, issuer=config.issuer)
        self._metadata[name] = (time.monotonic(), found)
        return found

    def keys(self, name: str, jwks_uri: str) -> jwt.PyJWKClient:
        """The JWKS client of provider ``name`` (kept, so its key set cache is too)."""
        client = self._keys.get(name)
        if client is None or client.uri != jwks_uri:
            client = jwt.PyJWKClient(
                jwks_uri, timeout=self._timeout, cooldown_duration=self._jwks_cooldown
            )
            self._keys[name] = client
        return client

    async def exchange_code(
        self, name: str, *, code: str, redirect_uri: str, code_verifier: str
    ) -> dict[str, Any]:
        """The provider's token response for an authorization code (RFC 6749 §4.1.3)."""
        config = self.provider(name)
        meta = await self.metadata(name)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        headers = {"Accept": "application/json"}
        secret = config.client_secret.get_secret_value()
        if meta.token_auth_method == "client_secret_basic":  # noqa: S105 - a method's name
            # RFC 6749 §2.3.1: both halves form-encoded before the Basic encoding.
            pair = f"{quote(config.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form |= {"client_id": config.client_id, "client_secret": secret}
        request = self.http.build_request("POST", meta.token_endpoint, data=form, headers=headers)
        response = await self._call(name, "token", request)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code in (400, 401) and isinstance(body, dict) and body.get("error"):
            described = f": {body['error_description']}" if body.get("error_description") else ""
            raise SsoRefused(
                f"identity provider '{name}' refused the code: {body['error']}{described}"
            )
        if response.status_code != 200 or not isinstance(body, dict):
            raise IdentityProviderError(
                f"identity provider '{name}' answered {response.status_code} to the token request"
            )
        if not isinstance(body.get("id_token"), str):
            raise IdentityProviderError(f"identity provider '{name}' returned no ID token")
        return body

    async def validate(self, name: str, id_token: str, *, nonce: str) -> dict[str, Any]:
        """The claims of an ID token from provider ``name`` (see :func:`validate_id_token`)."""
        config = self.provider(name)
        meta = await self.metadata(name)
        return await validate_id_token(
            id_token,
            keys=self.keys(name, meta.jwks_uri),
            issuer=meta.issuer,
            client_id=config.client_id,
            nonce=nonce,
            algorithms=meta.algorithms,
        )

    async def userinfo(self, name: str, access_token: str) -> dict[str, Any]:
        """The UserInfo claims (OIDC Core §5.3), for providers whose ID tokens omit email."""
        meta = await self.metadata(name)
        if meta.userinfo_endpoint is None:
            return {}
        request = self.http.build_request(
            "GET",
            meta.userinfo_endpoint,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )
        response = await self._call(name, "userinfo", request)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            raise IdentityProviderError(
                f"identity provider '{name}' answered {response.status_code} to userinfo"
            )
        return body
