"""Request and response bodies of HMAC keys."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from orchestrion.services.auth.schemas import Scope


class HmacKeyCreate(BaseModel):
    """A new key for signed requests; its scopes must be permissions the owner holds."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "billing-sync", "scopes": ["workflows:read", "executions:run"]}]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1)
    # Must be in the future: checked against the clock, so the document cannot say it.
    expires_at: datetime | None = None


class HmacKeyRead(BaseModel):
    """A key's metadata (its secret is never shown again)."""

    id: str = Field(description="The key id callers name in `keyId`.")
    name: str
    scopes: list[str]
    user_id: str
    tenant_id: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class HmacKeyCreated(HmacKeyRead):
    """A new or rotated key: ``secret`` is shown this once."""

    secret: str = Field(description="The shared secret requests are signed with.")


class SignatureCheck(BaseModel):
    """A signed request as the gateway received it (its internal check)."""

    model_config = ConfigDict(extra="forbid")

    key_id: str = Field(min_length=1, max_length=64)
    timestamp: int
    nonce: str = Field(min_length=1, max_length=128)
    signature: str = Field(min_length=1, max_length=256)
    method: str = Field(min_length=1, max_length=16)
    target: str = Field(min_length=1, max_length=16_384)
    digest: str = Field(min_length=1, max_length=128)


class SignaturePrincipal(BaseModel):
    """Whom a valid signature stands for."""

    principal: dict[str, object]
    expires_at: datetime | None
