"""Tables of the analytics service: projections of the execution events, and SLOs.

``analytics_executions`` is one row per execution seen on the bus: its latest status,
times, step outcomes and model usage, and which events of its log were applied (a
contiguous ``seq`` watermark plus the few applied out of order), so a redelivered event
changes nothing. Every change to that row moves its *contribution* (what it adds to the
aggregates) from the old to the new value in the same transaction:

- ``analytics_buckets``: counts and sums per tenant, workflow and hour;
- ``analytics_duration_bins``: per tenant, workflow and hour, how many durations fell in
  each bin of a logarithmic mapping (a DDSketch's store, kept as rows so that ranges
  merge with one ``GROUP BY``, and a correction is a decrement);
- ``analytics_model_usage``: tokens and cost per tenant, workflow, hour and model.

The aggregates are a cache of the execution rows, which are themselves rebuildable from
the workflows service's event logs (``orchestrion analytics rebuild``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.db.base import Base, IdMixin, JSONType, TimestampMixin

ID_LENGTH = 36
MODEL_LENGTH = 200
NAME_LENGTH = 200


class AnalyticsExecution(Base):
    """One execution as the projection knows it."""

    __tablename__ = "analytics_executions"
    __table_args__ = (
        Index("ix_analytics_executions_tenant_bucket", "tenant_id", "bucket_at"),
        Index("ix_analytics_executions_tenant_finished", "tenant_id", "finished_at"),
    )

    execution_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    workflow_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    #: The ``seq`` of the event that set ``status`` (a later one wins, whatever the order).
    status_seq: Mapped[int] = mapped_column(Integer, default=0)
    #: When it was first queued or started (else the first event seen).
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: The hour its contribution counts in: ``started_at`` truncated.
    bucket_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    duration_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    steps_total: Mapped[int] = mapped_column(Integer, default=0)
    steps_failed: Mapped[int] = mapped_column(Integer, default=0)
    #: ``{model: [input_tokens, output_tokens, cost_usd]}``
    models: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: Every ``seq`` up to this one was applied...
    seq_done: Mapped[int] = mapped_column(Integer, default=0)
    #: ...and these above it (events that arrived out of order).
    seq_extra: Mapped[list[int]] = mapped_column(JSONType, default=list)


class AnalyticsBucket(Base):
    """Counts and sums of one workflow of one tenant in one hour."""

    __tablename__ = "analytics_buckets"
    __table_args__ = (Index("ix_analytics_buckets_bucket", "bucket_at"),)

    tenant_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    bucket_at: Mapped[datetime] = mapped_column(primary_key=True)
    executions: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    #: Finished executions with a known duration (the percentiles' population).
    durations: Mapped[int] = mapped_column(Integer, default=0)
    duration_sum_ms: Mapped[float] = mapped_column(Float, default=0.0)
    steps_total: Mapped[int] = mapped_column(Integer, default=0)
    steps_failed: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)


class AnalyticsDurationBin(Base):
    """How many durations of one bucket fell in one bin of the sketch's mapping."""

    __tablename__ = "analytics_duration_bins"

    tenant_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    bucket_at: Mapped[datetime] = mapped_column(primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(Integer, default=0)


class AnalyticsModelUsage(Base):
    """Tokens and cost of one model in one bucket."""

    __tablename__ = "analytics_model_usage"

    tenant_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    bucket_at: Mapped[datetime] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(MODEL_LENGTH), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)


class AnalyticsSlo(IdMixin, TimestampMixin, Base):
    """A service level objective of a tenant (over one workflow, or all of them)."""

    __tablename__ = "analytics_slos"
    __table_args__ = (Index("ix_analytics_slos_tenant", "tenant_id", "created_at"),)

    tenant_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    workflow_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    objective: Mapped[str] = mapped_column(String(32))
    target: Mapped[float] = mapped_column(Float)
    window: Mapped[str] = mapped_column(String(8))
    #: ``ok`` or ``breached``, as last evaluated by the projector (a change publishes).
    state: Mapped[str] = mapped_column(String(16), default="ok")
    state_changed_at: Mapped[datetime | None] = mapped_column(nullable=True)
