"""Tables of workflow definitions: workflows, their versions and tags (``wf_workflows*``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.db.base import Base, IdMixin, JSONType, TimestampMixin
from orchestrion.kernel.ids import utcnow


class Workflow(IdMixin, TimestampMixin, Base):
    """A workflow's current state: metadata plus the latest version's definition."""

    __tablename__ = "wf_workflows"
    __table_args__ = (Index("ix_wf_workflows_tenant_created", "tenant_id", "created_at"),)

    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="active")
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    definition: Mapped[dict[str, Any]] = mapped_column()
    created_by: Mapped[str | None] = mapped_column(String(36))
    deleted_at: Mapped[datetime | None] = mapped_column()


class WorkflowVersion(Base):
    """An immutable snapshot: executions run a version, never a moving target."""

    __tablename__ = "wf_workflow_versions"

    workflow_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("wf_workflows.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    definition: Mapped[dict[str, Any]] = mapped_column()
    created_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkflowTag(Base):
    """One row per tag, so ``?tag=`` is an indexed lookup on every database."""

    __tablename__ = "wf_workflow_tags"

    workflow_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("wf_workflows.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
