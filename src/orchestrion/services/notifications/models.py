"""Tables of the notifications service (``notify_*``).

A notification is one message to one recipient on one channel; its delivery state
(``status``, ``attempts``, ``last_error``) is kept on the row, and the work of sending it
is a task of the kernel's queue enqueued in the same transaction (the outbox). Templates
keep every version as a row. ``notify_fired`` holds one row per (subscription, platform
event): its primary key is what makes a subscription fire once per event, however often
the bus delivers it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.db.base import Base, IdMixin, JSONType, TimestampMixin
from orchestrion.kernel.ids import utcnow

NAME_LENGTH = 200
EVENT_LENGTH = 100
USER_LENGTH = 255


class NotifyNotification(IdMixin, TimestampMixin, Base):
    """One message to one recipient, and how its delivery went."""

    __tablename__ = "notify_notifications"
    __table_args__ = (
        Index("ix_notify_notifications_tenant_created", "tenant_id", "created_at"),
        Index("ix_notify_notifications_tenant_status", "tenant_id", "status"),
    )

    tenant_id: Mapped[str] = mapped_column(String(36))
    #: The user (or execution) that sent it, or the owner of the subscription that fired.
    owner_id: Mapped[str] = mapped_column(String(USER_LENGTH))
    channel: Mapped[str] = mapped_column(String(16))
    to: Mapped[str] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text, default="")
    template: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    template_version: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: The platform event that caused it (a subscription's), else None.
    event: Mapped[str | None] = mapped_column(String(EVENT_LENGTH))
    subscription_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(USER_LENGTH))
    delivered_at: Mapped[datetime | None] = mapped_column()


class NotifyTemplate(IdMixin, Base):
    """One version of a message template of a channel (never changed once written)."""

    __tablename__ = "notify_templates"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", "channel", "version"),
        Index("ix_notify_templates_tenant_created", "tenant_id", "created_at"),
    )

    tenant_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    channel: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(USER_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotifyPreference(Base):
    """A user's channel preferences."""

    __tablename__ = "notify_preferences"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(USER_LENGTH), primary_key=True)
    muted_channels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class NotifyInboxItem(IdMixin, Base):
    """An in-app message in a user's inbox (one per notification)."""

    __tablename__ = "notify_inbox"
    __table_args__ = (Index("ix_notify_inbox_user_created", "tenant_id", "user_id", "created_at"),)

    tenant_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(USER_LENGTH))
    notification_id: Mapped[str] = mapped_column(String(36), unique=True)
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    read_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotifyWebhookSecret(IdMixin, Base):
    """A tenant's webhook signing secret, encrypted; ``retired_at`` is set when a newer
    one replaced it (it keeps signing for the grace period after)."""

    __tablename__ = "notify_webhook_secrets"
    __table_args__ = (Index("ix_notify_webhook_secrets_tenant", "tenant_id", "created_at"),)

    tenant_id: Mapped[str] = mapped_column(String(36))
    secret: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(USER_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column()


class NotifySubscription(IdMixin, Base):
    """Send a notification whenever a platform event of the tenant matches."""

    __tablename__ = "notify_subscriptions"
    __table_args__ = (Index("ix_notify_subscriptions_tenant_event", "tenant_id", "event"),)

    tenant_id: Mapped[str] = mapped_column(String(36))
    created_by: Mapped[str] = mapped_column(String(USER_LENGTH))
    event: Mapped[str] = mapped_column(String(EVENT_LENGTH))
    workflow_id: Mapped[str | None] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(16))
    to: Mapped[str] = mapped_column(Text)
    template: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotifyFired(Base):
    """A subscription fired for an event: never twice for the same one."""

    __tablename__ = "notify_fired"

    subscription_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("notify_subscriptions.id", ondelete="CASCADE"), primary_key=True
    )
    event_key: Mapped[str] = mapped_column(String(EVENT_LENGTH + 100), primary_key=True)
    notification_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
