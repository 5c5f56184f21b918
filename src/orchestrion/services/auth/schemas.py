"""Request and response bodies of the auth service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from orchestrion.kernel.auth.permissions import ROLE_PERMISSIONS, Permission
from orchestrion.kernel.http.openapi import ResponseModel, SchemaPatch

#: What the service takes as an address (``service.normalize_email``), for the document.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

# Roles and scopes are checked by the service (422 naming the unknown one); the document
# lists the known ones so that clients can offer them.
Role = Annotated[str, WithJsonSchema({"type": "string", "enum": list(ROLE_PERMISSIONS)})]
Scope = Annotated[str, WithJsonSchema({"type": "string", "enum": [p.value for p in Permission]})]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Body):
    """Credentials for ``POST /login``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct horse battery"}]
        }
    )

    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(_Body):
    """A refresh token to exchange for a new pair."""

    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutRequest(_Body):
    """Optionally the refresh token whose session should end (default: the caller's)."""

    refresh_token: str | None = Field(default=None, max_length=512)


class TokenPair(ResponseModel):
    """An access token and the refresh token that renews it."""

    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 - a scheme name, not a secret
    expires_in: int


class Me(BaseModel):
    """The caller."""

    id: str
    email: str | None
    tenant_id: str
    roles: list[str]
    permissions: list[str]
    kind: str
    platform_admin: bool


class TenantCreate(_Body):
    """A new tenant."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$")


class TenantRead(BaseModel):
    """A tenant."""

    id: str
    name: str
    created_at: datetime


class UserCreate(_Body):
    """A new user; ``tenant_id`` other than the caller's needs platform admin."""

    email: str = Field(min_length=3, max_length=320, pattern=EMAIL_PATTERN)
    # The password policy (service side) answers for length, naming its setting; the
    # document says the configured length (``password_schema``).
    password: str = Field(min_length=1, max_length=1024)
    roles: list[Role] = Field(default_factory=lambda: ["viewer"])
    tenant_id: str | None = None
    platform_admin: bool = False


class UserUpdate(_Body):
    """Changes to a user; absent fields stay as they are."""

    email: str | None = Field(default=None, min_length=3, max_length=320, pattern=EMAIL_PATTERN)
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    roles: list[Role] | None = None
    is_active: bool | None = None


class UserRead(BaseModel):
    """A user (never the password hash)."""

    id: str
    tenant_id: str
    email: str
    roles: list[str]
    permissions: list[str]
    platform_admin: bool
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ApiKeyCreate(_Body):
    """A new API key; its scopes must be permissions the owner holds."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "ci-deploy",
                    "scopes": ["workflows:read", "executions:run"],
                    "expires_at": "2099-01-01T00:00:00Z",
                }
            ]
        }
    )

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1)
    # Must be in the future: checked against the clock, so the document cannot say it.
    expires_at: datetime | None = None


class ApiKeyRead(BaseModel):
    """An API key's metadata (the secret is never shown again)."""

    id: str
    name: str
    prefix: str
    scopes: list[str]
    user_id: str
    tenant_id: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKeyRead):
    """A new or rotated key: ``key`` is shown this once."""

    key: str


class ApiKeyVerify(_Body):
    """A raw key for the gateway's internal check."""

    key: str = Field(min_length=1, max_length=512)


class Jwk(BaseModel):
    """One public key (RFC 7517): an Ed25519 key for ``EdDSA``."""

    model_config = ConfigDict(extra="allow")

    kid: str
    kty: str = Field(examples=["OKP"])


class Jwks(BaseModel):
    """The JSON Web Key Set that verifies access tokens."""

    keys: list[Jwk]


class OpenIdConfiguration(BaseModel):
    """The OpenID Connect discovery document."""

    issuer: str
    jwks_uri: str
    token_endpoint: str
    userinfo_endpoint: str
    revocation_endpoint: str
    grant_types_supported: list[str]
    response_types_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    claims_supported: list[str]


class SigningKeyRead(BaseModel):
    """A signing key just published: it signs from ``activates_at``."""

    kid: str
    created_at: datetime
    activates_at: datetime


class AuditEventRead(BaseModel):
    """One entry of the audit log."""

    id: str
    tenant_id: str | None
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    ip: str | None
    data: dict[str, object]
    created_at: datetime


class ErasedUser(BaseModel):
    """Who was erased: what remains of them is under ``pseudonym``."""

    id: str
    tenant_id: str | None
    erased: Literal[True]
    pseudonym: str = Field(description="`erased:<digest>`, the name their kept records carry.")
    erased_at: datetime


class PersonalData(BaseModel):
    """Every record the platform holds about one person, by service."""

    user: UserRead | ErasedUser
    services: dict[str, dict[str, object]] = Field(
        description="By service name, each service's records of the person: `auth` "
        "(`sessions`, `api_keys` without secrets, `sso_identities`, `audit` lines), "
        "`workflows`, `templates`, `notifications`, `flags`, `content` (the services of "
        "`auth.personal_data_peers`)."
    )


class ApiKeyPrincipal(BaseModel):
    """Whom a valid API key stands for (the gateway's internal check)."""

    principal: dict[str, object]
    expires_at: datetime | None


def password_schema(min_length: int) -> SchemaPatch:
    """A schema patch: the password policy's length where a password is chosen."""

    def patch(schemas: dict[str, Any]) -> None:
        schemas["UserCreate"]["properties"]["password"]["minLength"] = min_length
        for branch in schemas["UserUpdate"]["properties"]["password"]["anyOf"]:
            if branch.get("type") == "string":
                branch["minLength"] = min_length

    return patch
