"""Response shapes of workflows and versions (requests are engine definitions).

The JSON itself is built by :mod:`.service` (``to_dict``, ``version_to_dict``) so that
bytes and ETags do not depend on these models; they document it exactly. A definition
is open-ended JSON: a step keeps every key it was written with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: A definition as the document shows it: two steps, the second needing the first.
DEFINITION_EXAMPLE: dict[str, Any] = {
    "name": "double-then-add",
    "description": "Doubles x, then adds one",
    "tags": ["demo"],
    "inputs": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
    "steps": [
        {"id": "double", "type": "transform", "with": {"value": "{{ inputs.x * 2 }}"}},
        {
            "id": "add",
            "type": "transform",
            "needs": ["double"],
            "with": {"value": "{{ steps.double.output.value + 1 }}"},
        },
    ],
    "outputs": {"result": "{{ steps.add.output.value }}"},
}


class StepRead(BaseModel):
    """A step as stored: ``id`` and ``type`` first, then the keys it was written with."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: str


class WorkflowRead(BaseModel):
    """A workflow: its metadata and its current version's definition."""

    id: str
    tenant_id: str
    name: str
    description: str
    version: int
    status: Literal["draft", "active", "archived"]
    tags: list[str]
    inputs: dict[str, Any] = Field(description="JSON Schema of the inputs.")
    steps: list[StepRead]
    outputs: dict[str, Any]
    concurrency: dict[str, Any] | None = Field(
        description="`{limit, key?}` when executions are limited, else null."
    )
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class WorkflowVersionRead(BaseModel):
    """One immutable version of a workflow."""

    workflow_id: str
    version: int
    name: str
    description: str
    inputs: dict[str, Any]
    steps: list[StepRead]
    outputs: dict[str, Any]
    concurrency: dict[str, Any] | None
    created_by: str | None
    created_at: datetime


class StepTypeRead(BaseModel):
    """A step type a definition may use, with the JSON Schema of its ``with``."""

    name: str
    description: str
    with_schema: dict[str, Any]
    instant: bool = Field(
        description="Runs inside the transaction that schedules it, without a worker."
    )
    requires: list[str] = Field(
        description="What it needs from the platform (http, llm, mcp, children, steps, journal)."
    )
    waits: list[str] = Field(description="What it may wait for (timer, approval, event, child).")
