"""Shapes of the audit trail's answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AuditLine(BaseModel):
    """One line of the audit trail: who did what, when, from where."""

    id: str
    time: datetime
    tenant_id: str | None
    actor_id: str | None = Field(
        description="The user or API key that acted; `erased:<digest>` once the person was erased."
    )
    actor_type: str | None = Field(description="`user`, `api_key` or `system`.")
    action: str = Field(description="`<resource>.<verb>`, e.g. `workflow.created`.")
    resource_type: str | None
    resource_id: str | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    service: str | None = Field(description="The service that recorded the line.")
    data: dict[str, Any]
    seq: int | None = Field(description="The line's place in its tenant's hash chain.")
    hash: str | None = Field(description="SHA-256 of the previous line's hash and this content.")
    erased: bool = Field(description="Whether personal fields were erased.")


class BrokenLink(BaseModel):
    """The first line where a chain stops verifying."""

    id: str | None
    seq: int | None
    reason: str


class ChainVerdict(BaseModel):
    """What recomputing one tenant's chain found."""

    tenant_id: str | None
    ok: bool
    checked: int = Field(description="Lines recomputed, from the anchor to the head.")
    anchor_seq: int = Field(description="Lines up to this place were pruned by retention.")
    head_seq: int
    first_broken: BrokenLink | None


class AuditVerification(BaseModel):
    """The verdict on every chain verified."""

    ok: bool
    chains: list[ChainVerdict]
