"""Request bodies and response shapes of executions and their event log.

Responses are built by :mod:`.service` (``to_dict``, ``event_to_dict``); these models
document them exactly. Outputs, errors and event data are the steps' own JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrion.services.workflows.responses import problems

ExecutionStatus = Literal[
    "pending", "running", "waiting", "paused", "succeeded", "failed", "cancelled"
]
StepStatus = Literal["pending", "running", "waiting", "succeeded", "failed", "skipped", "cancelled"]


class ExecutionStart(BaseModel):
    """Inputs for a new execution (checked against the workflow's ``inputs`` schema)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"inputs": {"x": 20}, "priority": 0}]}
    )
    inputs: dict[str, Any] = Field(default_factory=dict)
    # Strict: a JSON true is not a priority.
    priority: int = Field(default=0, ge=-100, le=100, strict=True)


class Approval(BaseModel):
    """A decision on an ``approval`` step; ``index`` picks a ``for_each`` iteration."""

    model_config = ConfigDict(extra="forbid")
    approved: bool
    data: dict[str, Any] = Field(default_factory=dict)
    index: int | None = Field(default=None, ge=0)


class SignalBody(BaseModel):
    """An event for ``wait_for_event`` steps."""

    model_config = ConfigDict(extra="forbid")
    event: str = Field(min_length=1, max_length=200)
    data: Any = None


class StepStateRead(BaseModel):
    """Where one step of an execution stands."""

    id: str
    status: StepStatus
    attempts: int
    output: Any
    error: dict[str, Any] | None
    started_at: datetime | None
    finished_at: datetime | None


class UsageRead(BaseModel):
    """Tokens and cost of an execution's LLM calls (its sub-workflows' included)."""

    input_tokens: int
    output_tokens: int
    cost_usd: float


class ExecutionRead(BaseModel):
    """An execution: status, inputs, outputs, error, steps and usage."""

    id: str
    workflow_id: str
    workflow_version: int
    status: ExecutionStatus
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None
    steps: list[StepStateRead]
    usage: UsageRead
    parent_execution_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    trace_id: str | None = Field(
        None,
        description="The OpenTelemetry trace the execution was started in (32 hex digits), "
        "to look up in Jaeger or Tempo; null when tracing was off.",
        examples=["4bf92f3577b34da6a3ce929d0e0e4736"],
    )


class EventRead(BaseModel):
    """One entry of an execution's log."""

    seq: int
    type: str = Field(examples=["step.succeeded"])
    step_id: str | None
    data: dict[str, Any]
    at: datetime


class EventMeta(BaseModel):
    """Where this page of the log sits."""

    after: int
    limit: int
    last_seq: int = Field(description="The execution's latest seq.")


class EventLinks(BaseModel):
    """This page and the next one (null when none)."""

    self: str
    next: str | None


class FoldedStep(BaseModel):
    """A step as the log says it stood."""

    status: StepStatus
    attempts: int
    output: Any
    error: dict[str, Any] | None


class ExecutionState(BaseModel):
    """The execution folded from its log up to ``seq``."""

    status: ExecutionStatus
    seq: int
    inputs: dict[str, Any] | None
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None
    steps: dict[str, FoldedStep]


class EventPage(BaseModel):
    """A page of the log; ``state`` only with ``until``."""

    data: list[EventRead]
    meta: EventMeta
    links: EventLinks
    state: ExecutionState | None = Field(
        default=None, description="Present with `until`: the execution as it stood then."
    )


class SignalRead(BaseModel):
    """Whether a waiting step took the event now (else it is kept for one that will)."""

    delivered: bool
    event: str


class RealtimeLog(BaseModel):
    """The log for the realtime service, with the execution's owner (internal)."""

    tenant_id: str
    workflow_id: str
    status: ExecutionStatus
    data: list[EventRead]


#: What a route that starts an execution may answer besides its own statuses: inputs
#: over ``max_input_bytes`` (413), the tenant at ``max_active_executions`` (429).
START_LIMITS: dict[int | str, dict[str, Any]] = problems(413, 429)
START_LIMITS[429] = {
    **START_LIMITS[429],
    "description": "The tenant has as many unfinished executions as it may; retry later",
    "headers": {
        "Retry-After": {
            "description": "Seconds to wait before trying again",
            "schema": {"type": "integer"},
        }
    },
}
START_LIMITS[413] = {**START_LIMITS[413], "description": "The inputs are larger than allowed"}
