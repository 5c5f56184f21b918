"""Tables of LLM providers a tenant configures and of spending budgets."""

from __future__ import annotations

from sqlalchemy import Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.db.base import Base, IdMixin, TimestampMixin


class LlmProvider(IdMixin, TimestampMixin, Base):
    """A tenant's provider: its key is stored encrypted (Fernet) and never shown again."""

    __tablename__ = "llm_providers"
    __table_args__ = (Index("ux_llm_providers_tenant_name", "tenant_id", "name", unique=True),)

    tenant_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    base_url: Mapped[str] = mapped_column(String(2000))
    api_key: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(36))


class LlmBudget(IdMixin, TimestampMixin, Base):
    """A spending limit in USD on an execution, a workflow or the whole tenant.

    ``period`` (``day``, ``month`` or None for all time) windows workflow and tenant
    budgets in UTC; an execution budget limits each execution (with its sub-workflows),
    of one workflow when ``workflow_id`` is set, else of every workflow.
    """

    __tablename__ = "llm_budgets"
    __table_args__ = (Index("ix_llm_budgets_tenant", "tenant_id"),)

    tenant_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str | None] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(16))
    workflow_id: Mapped[str | None] = mapped_column(String(36))
    period: Mapped[str | None] = mapped_column(String(16))
    limit_usd: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(36))
