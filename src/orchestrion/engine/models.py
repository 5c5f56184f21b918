"""Tables of durable execution: the event log and the read models folded from it.

``wf_execution_events`` is the source of truth: an append-only log per execution,
numbered by ``seq``. ``wf_executions`` and ``wf_step_states`` are read models kept in
step with it in the same transaction. ``wf_step_results`` holds the one recorded
outcome of each step (or iteration): its primary key is what makes a completion happen
once even when two workers race after a lost lease.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.db.base import Base, IdMixin, JSONType
from orchestrion.kernel.ids import utcnow


class Execution(IdMixin, Base):
    """One run of one workflow version."""

    __tablename__ = "wf_executions"
    __table_args__ = (
        Index("ix_wf_executions_tenant_created", "tenant_id", "created_at"),
        Index("ix_wf_executions_workflow", "workflow_id", "status"),
        Index("ix_wf_executions_slots", "workflow_id", "concurrency_key", "status"),
        Index("ix_wf_executions_tenant_status", "tenant_id", "status"),
    )

    tenant_id: Mapped[str] = mapped_column(String(36))
    workflow_id: Mapped[str] = mapped_column(String(36))
    workflow_version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="pending")
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    usage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    #: Set when the workflow limits concurrency: the evaluated key ("" for the whole workflow).
    concurrency_key: Mapped[str | None] = mapped_column(String(255))
    parent_execution_id: Mapped[str | None] = mapped_column(String(36), index=True)
    parent_step_id: Mapped[str | None] = mapped_column(String(64))
    parent_index: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(String(36))
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    #: Bumped by every transaction that changes one of its step states: a worker keeps
    #: the states between its transactions while this has not moved (see
    #: ``engine/runtime/held.py``).
    states_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    #: The W3C trace context it was started under (tracing on), for its trace id.
    traceparent: Mapped[str | None] = mapped_column(String(55))


class ExecutionEvent(Base):
    """One transition of an execution; ``seq`` is gap-free per execution."""

    __tablename__ = "wf_execution_events"

    execution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("wf_executions.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    step_id: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class StepState(Base):
    """The current state of one step of an execution."""

    __tablename__ = "wf_step_states"

    execution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("wf_executions.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    output: Mapped[Any] = mapped_column(JSONType, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    #: ``for_each`` items once evaluated; iteration outcomes live in ``wf_step_results``.
    items: Mapped[list[Any] | None] = mapped_column(JSONType)
    #: How many ``for_each`` iterations have been started (at most ``concurrency`` run).
    launched: Mapped[int] = mapped_column(Integer, default=0)
    #: Log position of the success: compensation runs in reverse of this order.
    completed_seq: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class StepResult(Base):
    """The recorded outcome of a step (``iteration`` -1) or of one ``for_each`` iteration."""

    __tablename__ = "wf_step_results"

    execution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("wf_executions.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    iteration: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    output: Mapped[Any] = mapped_column(JSONType, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class JournalRecord(Base):
    """One recorded part of a step (a loop's iteration), kept across the step's attempts.

    Retrying or re-running the step finds it and does not run that part again.
    """

    __tablename__ = "wf_step_journal"

    execution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("wf_executions.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    iteration: Mapped[int] = mapped_column(Integer, primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    output: Mapped[Any] = mapped_column(JSONType, nullable=True)
    usage: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class Wait(Base):
    """A step (or iteration) waiting for an approval, an event, a timer or a child."""

    __tablename__ = "wf_waits"

    execution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("wf_executions.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    iteration: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    child_execution_id: Mapped[str | None] = mapped_column(String(36), index=True)
    timeout_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Signal(IdMixin, Base):
    """An event delivered to an execution (``wait_for_event``), kept until consumed."""

    __tablename__ = "wf_signals"

    execution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("wf_executions.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    data: Mapped[Any] = mapped_column(JSONType, nullable=True)
    consumed_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LlmUsage(IdMixin, Base):
    """Tokens and cost of one attempt of one step (or iteration) on one model.

    Unique per attempt and model: an attempt's usage is recorded once, even when two
    workers race to record it. ``root_execution_id`` is the top of a sub-workflow tree,
    so execution budgets count what children spend while they run.
    """

    __tablename__ = "wf_llm_usage"
    __table_args__ = (
        Index(
            "ux_wf_llm_usage_attempt",
            "execution_id",
            "step_id",
            "iteration",
            "attempt",
            "part",
            "provider",
            "model",
            unique=True,
        ),
        Index("ix_wf_llm_usage_tenant_at", "tenant_id", "created_at"),
        Index("ix_wf_llm_usage_workflow_at", "workflow_id", "created_at"),
        Index("ix_wf_llm_usage_root", "root_execution_id"),
    )

    tenant_id: Mapped[str] = mapped_column(String(36))
    workflow_id: Mapped[str] = mapped_column(String(36))
    execution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("wf_executions.id", ondelete="CASCADE")
    )
    root_execution_id: Mapped[str] = mapped_column(String(36))
    step_id: Mapped[str] = mapped_column(String(64))
    iteration: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    #: The journal part (a loop's iteration) the usage was recorded with; -1: the attempt's.
    part: Mapped[int] = mapped_column(Integer, default=-1, server_default="-1")
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float)
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
