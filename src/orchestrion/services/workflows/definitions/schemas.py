"""Response shapes of the workflows service (requests are engine definitions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel


class WorkflowRead(BaseModel):
    """A workflow: its metadata and its current version's definition."""

    id: str
    tenant_id: str
    name: str
    description: str
    version: int
    status: Literal["draft", "active", "archived"]
    tags: list[str]
    inputs: dict[str, Any]
    steps: list[dict[str, Any]]
    outputs: dict[str, Any]
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
    steps: list[dict[str, Any]]
    outputs: dict[str, Any]
    created_by: str | None
    created_at: datetime


class StepTypeRead(BaseModel):
    """A step type a definition may use, with the JSON Schema of its ``with``."""

    name: str
    description: str
    with_schema: dict[str, Any]
