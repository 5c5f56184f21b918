"""Request bodies and response shapes of LLM providers, budgets and usage.

Responses are built by :mod:`.service` (``provider_to_dict``, ``budget_to_dict``,
``usage``); these models document them exactly.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, WithJsonSchema

#: A query's ISO 8601 date or date-time (``service._parse_time`` reads either).
IsoTime = Annotated[
    str,
    WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
    ),
]


class ProviderCreate(BaseModel):
    """A tenant's provider; ``api_key`` is write-only (stored encrypted, never returned)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    kind: Literal["openai", "anthropic", "bedrock"]
    base_url: str = Field(min_length=1, max_length=2000, pattern=r"^https?://")
    api_key: SecretStr | None = Field(default=None, max_length=4000)


class _BudgetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Strict: a JSON true is not a dollar amount.
    limit_usd: float = Field(ge=0, strict=True)
    name: str | None = Field(default=None, max_length=200)


class ExecutionBudgetCreate(_BudgetBody):
    """A limit on what each execution spends (no period: an execution is one)."""

    scope: Literal["execution"]


class WorkflowBudgetCreate(_BudgetBody):
    """A limit on what one workflow's executions spend, optionally per period."""

    scope: Literal["workflow"]
    workflow_id: str = Field(min_length=1, max_length=36)
    period: Literal["day", "month"] | None = None


class TenantBudgetCreate(_BudgetBody):
    """A limit on what the whole tenant spends, optionally per period."""

    scope: Literal["tenant"]
    period: Literal["day", "month"] | None = None


#: A spending limit; which fields it takes depends on its ``scope``.
BudgetCreate = Annotated[
    ExecutionBudgetCreate | WorkflowBudgetCreate | TenantBudgetCreate,
    Field(discriminator="scope"),
]


class ProviderRead(BaseModel):
    """A tenant's provider: never its key, only whether it has one."""

    id: str
    name: str
    kind: Literal["openai", "anthropic", "bedrock"]
    base_url: str
    has_api_key: bool
    created_at: datetime
    updated_at: datetime


class PlatformProviderRead(BaseModel):
    """A provider from the platform's settings: its name and kind only."""

    name: str
    kind: Literal["openai", "anthropic", "bedrock"]


class ProviderList(BaseModel):
    """The tenant's providers and the platform's."""

    data: list[ProviderRead]
    platform: list[PlatformProviderRead]


class BudgetRead(BaseModel):
    """A budget; ``spent_usd`` is what counts against it now (absent per execution)."""

    id: str
    name: str | None
    scope: Literal["execution", "workflow", "tenant"]
    workflow_id: str | None
    period: Literal["day", "month"] | None
    limit_usd: float
    created_at: datetime
    spent_usd: float | None = Field(
        default=None, description="In the current period; absent for execution budgets."
    )


class UsageTotal(BaseModel):
    """Tokens, cost and attempts summed over every group."""

    input_tokens: int
    output_tokens: int
    cost_usd: float
    attempts: int


class ModelUsage(BaseModel):
    """Usage of one model."""

    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    attempts: int


class WorkflowUsage(BaseModel):
    """Usage of one workflow's steps."""

    workflow_id: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    attempts: int


class DayUsage(BaseModel):
    """Usage of one UTC day."""

    day: date
    input_tokens: int
    output_tokens: int
    cost_usd: float
    attempts: int


class UsageByModel(BaseModel):
    """``group_by=model``."""

    group_by: Literal["model"]
    data: list[ModelUsage]
    total: UsageTotal


class UsageByWorkflow(BaseModel):
    """``group_by=workflow``."""

    group_by: Literal["workflow"]
    data: list[WorkflowUsage]
    total: UsageTotal


class UsageByDay(BaseModel):
    """``group_by=day``."""

    group_by: Literal["day"]
    data: list[DayUsage]
    total: UsageTotal


UsageReport = Annotated[
    UsageByModel | UsageByWorkflow | UsageByDay, Field(discriminator="group_by")
]
