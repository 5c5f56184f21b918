"""Request bodies and response shapes of schedules and webhook triggers.

Responses are built by :mod:`.service` (``schedule_to_dict``, ``trigger_to_dict``);
these models document them exactly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ScheduleCreate(BaseModel):
    """A cron schedule; ``inputs`` are checked against the workflow's schema."""

    model_config = ConfigDict(extra="forbid")
    cron: str = Field(min_length=1, max_length=200, examples=["*/15 * * * *"])
    timezone: str = Field(default="UTC", max_length=64, examples=["Europe/Berlin"])
    inputs: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class ScheduleUpdate(BaseModel):
    """Changes to a schedule; absent fields stay."""

    model_config = ConfigDict(extra="forbid")
    cron: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    inputs: dict[str, Any] | None = None
    enabled: bool | None = None


class ScheduleRead(BaseModel):
    """A schedule with its next and last run."""

    id: str
    workflow_id: str
    cron: str
    timezone: str
    inputs: dict[str, Any]
    enabled: bool
    next_run_at: datetime | None = Field(description="Null while disabled.")
    last_run_at: datetime | None
    last_execution_id: str | None
    created_at: datetime
    updated_at: datetime


class TriggerCreate(BaseModel):
    """A webhook trigger."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


class TriggerRead(BaseModel):
    """A webhook trigger (never its secret)."""

    id: str
    workflow_id: str
    name: str
    enabled: bool
    url: str = Field(description="Where to POST, relative to the gateway.")
    last_called_at: datetime | None
    created_at: datetime


class TriggerCreated(TriggerRead):
    """A new trigger, with the secret that signs its calls (shown only now)."""

    secret: str = Field(description="`whsec_` + base64: the Standard Webhooks signing key.")
