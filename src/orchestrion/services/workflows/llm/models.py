"""Tables of LLM providers a tenant configures, of spending budgets and of the money
set aside for model calls in flight."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.db.base import Base, IdMixin, TimestampMixin
from orchestrion.kernel.ids import utcnow


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


class LlmReservation(IdMixin, Base):
    """USD set aside for one model call while a tenant has budgets that it counts against.

    Made before the call, in the transaction that checks the budgets (their rows
    locked), so concurrent steps on any worker see each other's calls. Counted against
    a budget until the usage ledger covers it: ``amount_usd`` is the estimate until the
    call ends (``settled_at``), then its real cost, until the attempt's ledger row is
    written; a failed call's is deleted. ``expires_at`` bounds what a crashed worker
    leaves behind.
    """

    __tablename__ = "llm_reservations"
    __table_args__ = (
        Index("ix_llm_reservations_tenant_expires", "tenant_id", "expires_at"),
        Index("ix_llm_reservations_root", "root_execution_id"),
    )

    tenant_id: Mapped[str] = mapped_column(String(36))
    workflow_id: Mapped[str] = mapped_column(String(36))
    root_execution_id: Mapped[str] = mapped_column(String(36))
    execution_id: Mapped[str] = mapped_column(String(36))
    step_id: Mapped[str] = mapped_column(String(64))
    iteration: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    amount_usd: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
