"""Request and response models of the analytics service (named ``Analytics*``: one
OpenAPI document covers every service)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrion.services.analytics.models import ID_LENGTH, NAME_LENGTH

Objective = Literal["success_rate", "duration_p95_ms"]
Window = Literal["1h", "1d", "7d"]
Metric = Literal["executions", "succeeded", "failures", "cost_usd", "duration_p95"]
Interval = Literal["hour", "day"]
ReportFormat = Literal["csv", "json"]
#: A day: a p95 objective above it is a mistake.
MAX_TARGET_MS = 86_400_000


class AnalyticsExecutionCounts(BaseModel):
    """Executions that started in the range, by status."""

    total: int = Field(description="Every execution, finished or not.")
    succeeded: int
    failed: int
    cancelled: int
    success_rate: float | None = Field(
        description="succeeded / (succeeded + failed + cancelled); null when none finished."
    )


class AnalyticsDurations(BaseModel):
    """Durations of the finished executions, in milliseconds."""

    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None = None
    exact: bool = Field(
        default=True,
        description="false when the percentiles come from the sketch (within 1 % relative).",
    )


class AnalyticsSteps(BaseModel):
    """Step outcomes: `total` counts succeeded and failed steps."""

    total: int
    failed: int


class AnalyticsTokens(BaseModel):
    """Model tokens of `llm` steps."""

    input: int
    output: int


class AnalyticsModel(BaseModel):
    """Usage of one model."""

    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class AnalyticsFigures(BaseModel):
    """The figures of a set of executions."""

    executions: AnalyticsExecutionCounts
    duration_ms: AnalyticsDurations
    steps: AnalyticsSteps
    tokens: AnalyticsTokens
    cost_usd: float


class AnalyticsSummary(AnalyticsFigures):
    """Figures over the range, and the usage per model."""

    models: list[AnalyticsModel] = Field(default_factory=list)
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "executions": {
                    "total": 13,
                    "succeeded": 10,
                    "failed": 3,
                    "cancelled": 0,
                    "success_rate": 0.769231,
                },
                "duration_ms": {
                    "p50": 12.5,
                    "p95": 40.1,
                    "p99": 51.7,
                    "mean": 17.2,
                    "exact": True,
                },
                "steps": {"total": 26, "failed": 3},
                "tokens": {"input": 120, "output": 50},
                "cost_usd": 0.00042,
                "models": [],
            }
        }
    )


class AnalyticsWorkflow(AnalyticsFigures):
    """The figures of one workflow (`id` is the workflow's id)."""

    id: str
    workflow_id: str
    tenant_id: str


class AnalyticsPoint(BaseModel):
    """One interval of a series: its start and value (null: nothing to measure)."""

    at: str
    value: float | None


class AnalyticsSeries(BaseModel):
    """A time series, one point per interval from `from` to `to`."""

    metric: Metric
    interval: Interval
    data: list[AnalyticsPoint]


class AnalyticsReportRow(BaseModel):
    """One day of one workflow."""

    day: str = Field(description="The UTC day, YYYY-MM-DD.")
    tenant_id: str
    workflow_id: str
    executions: int
    succeeded: int
    failed: int
    cancelled: int
    success_rate: float | None
    duration_p50_ms: float | None
    duration_p95_ms: float | None
    duration_p99_ms: float | None
    steps_total: int
    steps_failed: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class AnalyticsReportMeta(BaseModel):
    """The range a report covers (whole hours) and its columns."""

    from_: str | None = Field(alias="from")
    to: str | None
    columns: list[str]


class AnalyticsReport(BaseModel):
    """The JSON report (the CSV one has the same columns)."""

    meta: AnalyticsReportMeta
    data: list[AnalyticsReportRow]


class _SloBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_LENGTH)
    workflow_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=ID_LENGTH,
        description="Only this workflow's executions (default: every workflow of the tenant).",
    )
    window: Window


class AnalyticsSuccessRateSlo(_SloBase):
    """At least `target` (a share) of the executions finished in the window succeed."""

    objective: Literal["success_rate"]
    target: float = Field(ge=0, le=1, strict=True, description="A share in [0, 1].")


class AnalyticsDurationSlo(_SloBase):
    """The 95th percentile of durations over the window is at most `target` ms."""

    objective: Literal["duration_p95_ms"]
    target: float = Field(gt=0, le=MAX_TARGET_MS, strict=True, description="Milliseconds.")


#: A new SLO: the objective decides what the target means.
AnalyticsSloCreate = Annotated[
    AnalyticsSuccessRateSlo | AnalyticsDurationSlo, Field(discriminator="objective")
]


class AnalyticsSlo(BaseModel):
    """An SLO with its figures now."""

    id: str
    tenant_id: str
    name: str
    workflow_id: str | None
    objective: Objective
    target: float
    window: Window
    current: float | None = Field(description="The objective's figure over the window.")
    met: bool
    error_budget_remaining: float | None = Field(
        description="Share of the error budget left, 1 (untouched) to 0 (spent)."
    )
    executions: int = Field(description="Executions finished in the window.")
    state: Literal["ok", "breached"] = Field(
        description="As last evaluated when an execution finished (a change publishes "
        "`analytics.slo_breached` or `analytics.slo_recovered`)."
    )
    created_at: str
    updated_at: str


class AnalyticsSloList(BaseModel):
    """Every SLO the caller sees."""

    data: list[AnalyticsSlo]
