"""ID token validation and discovery checks, against a JWKS served on loopback by the test.

The real provider (tests/services/auth/test_sso.py) signs only good tokens; here the test
holds the keys, so it can sign bad ones (another audience, another nonce, an unknown key)
and rotate the provider's keys between two sign-ins.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from jwt.algorithms import ECAlgorithm
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrion.services.auth.app import sso_runtime
from orchestrion.services.auth.errors import IdentityProviderError, InvalidIdToken
from orchestrion.services.auth.sso.oidc import ProviderMetadata, validate_id_token
from orchestrion.settings import Settings
from tests.fixtures.servers import serve_in_thread

ISSUER = "https://idp.example.test"
CLIENT = "orchestrion"
NONCE = "n-0S6_WzA2Mj"
ALGORITHMS = ("ES256",)


@dataclass
class Key:
    """An ES256 key pair with its key id."""

    kid: str
    private: Any = field(default_factory=lambda: generate_private_key(SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        public = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "alg": "ES256"}

    def sign(self, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": "user-1",
            "aud": CLIENT,
            "iat": now,
            "exp": now + 300,
            "nonce": NONCE,
            "email": "u@example.test",
            "email_verified": True,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.private, algorithm="ES256", headers={"kid": self.kid})


@dataclass
class Jwks:
    """The provider's published keys, and how often they were fetched."""

    keys: list[Key]
    fetches: int = 0


@pytest.fixture(scope="module")
def jwks() -> Iterator[tuple[Jwks, str]]:
    """A loopback JWKS endpoint whose keys the test sets; its URL."""
    published = Jwks([])

    async def serve(request: Request) -> JSONResponse:
        published.fetches += 1
        return JSONResponse({"keys": [k.jwk() for k in published.keys]})

    with serve_in_thread(Starlette(routes=[Route("/jwks", serve)])) as base:
        yield published, f"{base}/jwks"


def _client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, timeout=30, cooldown_duration=0)


async def _validate(token: str, keys: jwt.PyJWKClient, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "keys": keys,
        "issuer": ISSUER,
        "client_id": CLIENT,
        "nonce": NONCE,
        "algorithms": ALGORITHMS,
    }
    arguments.update(overrides)
    return await validate_id_token(token, **arguments)


async def test_a_good_token_gives_its_claims(jwks: tuple[Jwks, str]) -> None:
    published, url = jwks
    key = Key("k-good")
    published.keys = [key]
    claims = await _validate(key.sign(), _client(url))
    assert claims["sub"] == "user-1"
    assert claims["email_verified"] is True


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"aud": "someone-else"}, "audience"),
        ({"aud": ["someone-else", CLIENT]}, "authorized party"),
        ({"nonce": "replayed-nonce"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"iss": "https://evil.example.test"}, "issuer"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"sub": None}, "sub"),
    ],
)
async def test_a_token_failing_a_check_is_refused(
    jwks: tuple[Jwks, str], overrides: dict[str, Any], why: str
) -> None:
    published, url = jwks
    key = Key("k-checks")
    published.keys = [key]
    with pytest.raises(InvalidIdToken) as refused:
        await _validate(key.sign(**overrides), _client(url))
    assert why in refused.value.detail.lower()


async def test_several_audiences_need_us_as_authorized_party(jwks: tuple[Jwks, str]) -> None:
    published, url = jwks
    key = Key("k-azp")
    published.keys = [key]
    token = key.sign(aud=["someone-else", CLIENT], azp=CLIENT)
    assert (await _validate(token, _client(url)))["azp"] == CLIENT


async def test_a_token_no_published_key_signed_is_refused(jwks: tuple[Jwks, str]) -> None:
    published, url = jwks
    published.keys = [Key("k-real")]
    impostor = Key("k-real")  # same key id, another key
    with pytest.raises(InvalidIdToken, match="not valid"):
        await _validate(impostor.sign(), _client(url))
    stranger = Key("k-unknown")
    with pytest.raises(InvalidIdToken, match="no key"):
        await _validate(stranger.sign(), _client(url))


async def test_unsigned_and_symmetric_tokens_are_refused(jwks: tuple[Jwks, str]) -> None:
    published, url = jwks
    published.keys = [Key("k-alg")]
    claims = {"iss": ISSUER, "sub": "x", "aud": CLIENT, "nonce": NONCE, "exp": 2**31}
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(InvalidIdToken, match="algorithm"):
        await _validate(unsigned, _client(url))
    # The client secret as an HMAC key would let anyone who knows it mint identities.
    hashed = jwt.encode(claims, "client-secret-of-32-bytes-at-least!", algorithm="HS256")
    with pytest.raises(InvalidIdToken, match="algorithm"):
        await _validate(hashed, _client(url))


async def test_a_rotated_key_is_fetched_once_then_kept(jwks: tuple[Jwks, str]) -> None:
    published, url = jwks
    old, new = Key("k-2025"), Key("k-2026")
    published.keys = [old]
    keys = _client(url)  # one per provider, kept by the platform
    before = published.fetches
    await _validate(old.sign(), keys)
    await _validate(old.sign(), keys)
    assert published.fetches == before + 1  # the key set is cached
    published.keys = [new]  # the provider rotates
    claims = await _validate(new.sign(sub="after-rotation"), keys)
    assert claims["sub"] == "after-rotation"
    assert published.fetches == before + 2  # the unknown kid refetched the set once
    await _validate(new.sign(), keys)
    assert published.fetches == before + 2


def _discovery(**overrides: Any) -> dict[str, Any]:
    document = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": f"{ISSUER}/token",
        "jwks_uri": f"{ISSUER}/jwks",
        "userinfo_endpoint": f"{ISSUER}/me",
        "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
        "code_challenge_methods_supported": ["S256"],
    }
    document.update(overrides)
    return {k: v for k, v in document.items() if v is not None}


def test_discovery_picks_the_client_authentication_and_safe_algorithms() -> None:
    meta = ProviderMetadata.parse(_discovery(), issuer=ISSUER)
    assert meta.token_auth_method == "client_secret_basic"  # the default (RFC 8414)
    assert meta.algorithms == ("RS256",)
    post = ProviderMetadata.parse(
        _discovery(token_endpoint_auth_methods_supported=["client_secret_post", "none"]),
        issuer=ISSUER,
    )
    assert post.token_auth_method == "client_secret_post"
    both = ProviderMetadata.parse(
        _discovery(
            token_endpoint_auth_methods_supported=["client_secret_post", "client_secret_basic"]
        ),
        issuer=ISSUER,
    )
    assert both.token_auth_method == "client_secret_basic"


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"issuer": "https://other.example.test"}, "issuer"),
        ({"jwks_uri": None}, "jwks_uri"),
        ({"id_token_signing_alg_values_supported": ["HS256"]}, "asymmetric"),
        ({"token_endpoint_auth_methods_supported": ["private_key_jwt"]}, "client_secret"),
        ({"code_challenge_methods_supported": ["plain"]}, "pkce"),
    ],
)
def test_an_unusable_discovery_document_is_a_502(overrides: dict[str, Any], why: str) -> None:
    with pytest.raises(IdentityProviderError) as refused:
        ProviderMetadata.parse(_discovery(**overrides), issuer=ISSUER)
    assert refused.value.status_code == 502
    assert why.lower() in refused.value.detail.lower()


def test_providers_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "ORCHESTRION_AUTH__OIDC_PROVIDERS",
        '{"acme-sso": {"issuer": "https://idp.acme.test", "client_id": "c", '
        '"client_secret": "top-secret-value", "scopes": ["email"], "tenant_id": "acme"}}',
    )
    monkeypatch.setenv(
        "ORCHESTRION_AUTH__SSO_REDIRECT_URIS",
        "https://app.test/login, http://127.0.0.1:8000/sign-in",
    )
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    acme = settings.auth.oidc_providers["acme-sso"]
    assert acme.scopes == ["openid", "email"]
    assert acme.default_role == "viewer"
    assert acme.client_secret.get_secret_value() == "top-secret-value"
    assert "top-secret-value" not in repr(acme)
    assert settings.auth.sso_redirect_uris == [
        "https://app.test/login",
        "http://127.0.0.1:8000/sign-in",
    ]


def test_a_bad_provider_name_or_role_is_refused_at_start() -> None:
    provider = {"issuer": ISSUER, "client_id": "c", "client_secret": "s"}
    with pytest.raises(ValidationError, match="provider names"):
        Settings(_env_file=None, auth={"oidc_providers": {"Bad Name": provider}})  # type: ignore[call-arg]
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, auth={"oidc_providers": {"x": {**provider, "default_role": "owner"}}}
    )
    with pytest.raises(ValueError, match="identity provider 'x': unknown role"):
        sso_runtime(settings)
