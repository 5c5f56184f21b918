"""Request bodies of LLM providers and budgets."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class ProviderCreate(BaseModel):
    """A tenant's provider; ``api_key`` is write-only (stored encrypted, never returned)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    kind: Literal["openai", "anthropic", "bedrock"]
    base_url: str = Field(min_length=1, max_length=2000, pattern=r"^https?://")
    api_key: SecretStr | None = Field(default=None, max_length=4000)


class BudgetCreate(BaseModel):
    """A spending limit: per execution, per workflow or per tenant, optionally per period."""

    model_config = ConfigDict(extra="forbid")
    scope: Literal["execution", "workflow", "tenant"]
    workflow_id: str | None = Field(default=None, min_length=1, max_length=36)
    period: Literal["day", "month"] | None = None
    limit_usd: float = Field(ge=0)
    name: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> BudgetCreate:
        if self.scope == "workflow" and not self.workflow_id:
            raise ValueError("a workflow budget needs workflow_id")
        if self.scope == "tenant" and self.workflow_id:
            raise ValueError("a tenant budget takes no workflow_id")
        if self.scope == "execution" and self.period:
            raise ValueError("an execution budget has no period")
        return self
