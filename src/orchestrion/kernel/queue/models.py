"""The task table behind every durable queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.db.base import Base, IdMixin
from orchestrion.kernel.ids import utcnow


class Task(IdMixin, Base):
    """A unit of work: due at ``run_at``, leased to one worker at a time.

    ``key`` (optional, unique) makes enqueueing idempotent: the same piece of work
    enqueued twice, by a retried transaction or a recovering worker, is one task.
    ``group_key`` (e.g. an execution), ``kind`` and ``subject`` (e.g. a step) let the
    owner act on a group of tasks at once (drop, park) through an index, never by
    matching key strings. ``traceparent`` is the W3C trace context of the span that
    enqueued it (tracing on), so the worker that claims it continues that trace.
    """

    __tablename__ = "kernel_tasks"
    __table_args__ = (
        Index("ix_kernel_tasks_due", "queue", "run_at"),
        Index("ix_kernel_tasks_group", "group_key", "kind", "subject"),
    )

    queue: Mapped[str] = mapped_column(String(64))
    key: Mapped[str | None] = mapped_column(String(255), unique=True)
    group_key: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str | None] = mapped_column(String(32))
    subject: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column()
    priority: Mapped[int] = mapped_column(Integer, default=0)
    run_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    traceparent: Mapped[str | None] = mapped_column(String(55))
