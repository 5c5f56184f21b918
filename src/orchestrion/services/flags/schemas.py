"""Request and response models of the flags service (named ``Flag*``: one OpenAPI
document covers every service).

Checks that need more than one field (a rule's variant must be one of the flag's, and
only with ``enabled: true``) are the service's, since a PATCH is checked against the
flag it changes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrion.services.flags.models import KEY_LENGTH

#: Flag and variant names: what fits a URL path segment and an expression identifier.
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
MAX_VARIANTS = 20
MAX_RULES = 50
MAX_VALUES = 100
MAX_WEIGHT = 10_000
Key = Annotated[str, Field(min_length=1, max_length=KEY_LENGTH, pattern=KEY_PATTERN)]
Rollout = Annotated[
    float,
    Field(ge=0, le=100, description="Percent of principals the flag is on for (0-100)."),
]
#: What a rule may match on besides tenant and role: the principal's own identity.
Attribute = Literal["id", "email", "email_domain", "kind"]
Short = Annotated[str, Field(min_length=1, max_length=255)]


class FlagVariant(BaseModel):
    """One value of a multivariate flag and its share of the principals it is on for."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Key
    weight: int = Field(ge=0, le=MAX_WEIGHT, description="Relative weight among the variants.")


class FlagRule(BaseModel):
    """When every condition given holds (a rule without conditions matches everyone),
    the flag is forced off (`enabled: false`) or on (`enabled: true`), with `variant`
    if given, else the caller's variant by weight."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tenants: list[Short] | None = Field(
        default=None, max_length=MAX_VALUES, description="The caller's tenant is one of these."
    )
    roles: list[Short] | None = Field(
        default=None, max_length=MAX_VALUES, description="The caller holds one of these roles."
    )
    attributes: dict[Attribute, Short] | None = Field(
        default=None, description="Each attribute of the caller's identity equals the value."
    )
    enabled: bool = Field(description="Force the flag on or off.")
    variant: Key | None = Field(
        default=None, description="Force this variant (with `enabled: true` only)."
    )


Variants = Annotated[list[FlagVariant], Field(max_length=MAX_VARIANTS)]
Rules = Annotated[list[FlagRule], Field(max_length=MAX_RULES)]


class FlagCreate(BaseModel):
    """A new flag: boolean without `variants`, multivariate with them."""

    model_config = ConfigDict(extra="forbid", strict=True)

    key: Key
    description: str = Field(default="", max_length=2000)
    enabled: bool = Field(default=False, description="false is the kill switch: off for all.")
    rollout: Rollout = 0.0
    variants: Variants = Field(default_factory=list)
    rules: Rules = Field(default_factory=list, description="The first that matches wins.")


class FlagUpdate(BaseModel):
    """The fields to change; `variants` and `rules` are replaced whole."""

    model_config = ConfigDict(extra="forbid", strict=True)

    description: str | None = Field(default=None, max_length=2000)
    enabled: bool | None = None
    rollout: Rollout | None = None
    variants: Variants | None = None
    rules: Rules | None = None


class Flag(BaseModel):
    """A feature flag of a tenant."""

    id: str
    tenant_id: str
    key: str
    description: str
    enabled: bool
    rollout: float
    variants: list[FlagVariant]
    rules: list[FlagRule]
    version: int
    created_by: str | None
    created_at: str
    updated_at: str


class FlagEvaluation(BaseModel):
    """A flag's answer for the caller; the same caller always gets the same answer
    while the flag is unchanged."""

    key: str
    enabled: bool
    variant: str | None = Field(description="null for a boolean flag, or when off.")
    reason: Literal["DISABLED", "TARGETING_MATCH", "SPLIT"] = Field(
        description="The kill switch, a rule, or the percentage rollout (OpenFeature reasons)."
    )
    version: int
