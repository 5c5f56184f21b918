"""Queries of the notifications service; every one is scoped to a tenant."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.http.lists import ListSpec, equals
from orchestrion.kernel.ids import utcnow
from orchestrion.services.notifications.models import (
    NotifyFired,
    NotifyInboxItem,
    NotifyNotification,
    NotifyPreference,
    NotifySubscription,
    NotifyTemplate,
    NotifyWebhookSecret,
)

NOTIFICATION_LIST = ListSpec(
    sortable={
        "created_at": NotifyNotification.created_at,
        "updated_at": NotifyNotification.updated_at,
    },
    filters={
        "channel": equals(NotifyNotification.channel),
        "status": equals(NotifyNotification.status),
        "subscription_id": equals(NotifyNotification.subscription_id),
    },
    fields=frozenset(
        {
            "id",
            "channel",
            "to",
            "subject",
            "body",
            "template",
            "template_version",
            "data",
            "event",
            "subscription_id",
            "status",
            "attempts",
            "last_error",
            "delivered_at",
            "created_at",
            "updated_at",
        }
    ),
    id_column=NotifyNotification.id,
)

TEMPLATE_LIST = ListSpec(
    sortable={
        "created_at": NotifyTemplate.created_at,
        "name": NotifyTemplate.name,
        "version": NotifyTemplate.version,
    },
    filters={"name": equals(NotifyTemplate.name), "channel": equals(NotifyTemplate.channel)},
    fields=frozenset(
        {"id", "name", "channel", "version", "subject", "body", "created_by", "created_at"}
    ),
    id_column=NotifyTemplate.id,
)

INBOX_LIST = ListSpec(
    sortable={"created_at": NotifyInboxItem.created_at},
    filters={
        "read": lambda value: (
            NotifyInboxItem.read_at.is_not(None)
            if value.lower() in ("true", "1")
            else NotifyInboxItem.read_at.is_(None)
        )
    },
    fields=frozenset(
        {"id", "notification_id", "subject", "body", "data", "read", "read_at", "created_at"}
    ),
    id_column=NotifyInboxItem.id,
)

SUBSCRIPTION_LIST = ListSpec(
    sortable={"created_at": NotifySubscription.created_at, "event": NotifySubscription.event},
    filters={
        "event": equals(NotifySubscription.event),
        "channel": equals(NotifySubscription.channel),
        "workflow_id": equals(NotifySubscription.workflow_id),
    },
    fields=frozenset(
        {"id", "event", "workflow_id", "channel", "to", "template", "created_by", "created_at"}
    ),
    id_column=NotifySubscription.id,
)


def _insert(session: AsyncSession) -> Any:
    """The dialect's INSERT (for ``ON CONFLICT DO NOTHING``)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


# --- notifications ---------------------------------------------------------------------


def notifications_of(tenant_id: str) -> Select[Any]:
    """The tenant's notifications."""
    return select(NotifyNotification).where(NotifyNotification.tenant_id == tenant_id)


async def get_notification(
    session: AsyncSession, *, tenant_id: str, notification_id: str
) -> NotifyNotification | None:
    """One notification of the tenant, or None."""
    stmt = notifications_of(tenant_id).where(NotifyNotification.id == notification_id)
    found: NotifyNotification | None = (await session.execute(stmt)).scalar_one_or_none()
    return found


async def for_delivery(session: AsyncSession, notification_id: str) -> NotifyNotification | None:
    """A notification by id alone: the worker acts for whichever tenant queued it."""
    return await session.get(NotifyNotification, notification_id)


# --- templates ---------------------------------------------------------------------------


def templates_of(tenant_id: str) -> Select[Any]:
    """The tenant's template versions."""
    return select(NotifyTemplate).where(NotifyTemplate.tenant_id == tenant_id)


async def get_template(
    session: AsyncSession, *, tenant_id: str, template_id: str
) -> NotifyTemplate | None:
    """One template version of the tenant, or None."""
    stmt = templates_of(tenant_id).where(NotifyTemplate.id == template_id)
    found: NotifyTemplate | None = (await session.execute(stmt)).scalar_one_or_none()
    return found


async def latest_template(
    session: AsyncSession, *, tenant_id: str, name: str, channel: str
) -> NotifyTemplate | None:
    """The newest version of the tenant's template ``name`` for ``channel``."""
    stmt = (
        templates_of(tenant_id)
        .where(NotifyTemplate.name == name, NotifyTemplate.channel == channel)
        .order_by(NotifyTemplate.version.desc())
        .limit(1)
    )
    found: NotifyTemplate | None = (await session.execute(stmt)).scalar_one_or_none()
    return found


# --- preferences and inbox -------------------------------------------------------------


async def get_preference(
    session: AsyncSession, *, tenant_id: str, user_id: str
) -> NotifyPreference | None:
    """A user's preferences, or None (nothing muted)."""
    return await session.get(NotifyPreference, (tenant_id, user_id))


async def muted_by(
    session: AsyncSession, *, tenant_id: str, user_ids: Sequence[str], channel: str
) -> str | None:
    """The first of ``user_ids`` who muted ``channel``, or None."""
    rows = await session.execute(
        select(NotifyPreference).where(
            NotifyPreference.tenant_id == tenant_id, NotifyPreference.user_id.in_(user_ids)
        )
    )
    for preference in rows.scalars():
        if channel in (preference.muted_channels or []):
            return preference.user_id
    return None


def inbox_of(tenant_id: str, user_id: str) -> Select[Any]:
    """A user's inbox."""
    return select(NotifyInboxItem).where(
        NotifyInboxItem.tenant_id == tenant_id, NotifyInboxItem.user_id == user_id
    )


async def get_inbox_item(
    session: AsyncSession, *, tenant_id: str, user_id: str, item_id: str
) -> NotifyInboxItem | None:
    """One message of a user's inbox, or None."""
    stmt = inbox_of(tenant_id, user_id).where(NotifyInboxItem.id == item_id)
    found: NotifyInboxItem | None = (await session.execute(stmt)).scalar_one_or_none()
    return found


async def add_inbox_item(
    session: AsyncSession, *, notification: NotifyNotification
) -> NotifyInboxItem:
    """The inbox message of an in-app notification, made once however often it is sent."""
    existing = (
        await session.execute(
            select(NotifyInboxItem).where(NotifyInboxItem.notification_id == notification.id)
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    item = NotifyInboxItem(
        tenant_id=notification.tenant_id,
        user_id=notification.to,
        notification_id=notification.id,
        subject=notification.subject,
        body=notification.body,
        data=notification.data,
    )
    session.add(item)
    await session.flush()
    return item


# --- webhook secrets ---------------------------------------------------------------------


async def secrets_of(session: AsyncSession, *, tenant_id: str) -> list[NotifyWebhookSecret]:
    """The tenant's webhook secrets, newest first."""
    rows = await session.execute(
        select(NotifyWebhookSecret)
        .where(NotifyWebhookSecret.tenant_id == tenant_id)
        .order_by(NotifyWebhookSecret.created_at.desc(), NotifyWebhookSecret.id.desc())
    )
    return list(rows.scalars())


async def signing_secrets(
    session: AsyncSession, *, tenant_id: str, retired_after: datetime
) -> list[NotifyWebhookSecret]:
    """The secrets that sign now: the current one and those retired after the cutoff."""
    rows = await session.execute(
        select(NotifyWebhookSecret)
        .where(
            NotifyWebhookSecret.tenant_id == tenant_id,
            or_(
                NotifyWebhookSecret.retired_at.is_(None),
                NotifyWebhookSecret.retired_at > retired_after,
            ),
        )
        .order_by(NotifyWebhookSecret.created_at.desc(), NotifyWebhookSecret.id.desc())
    )
    return list(rows.scalars())


# --- subscriptions -----------------------------------------------------------------------


def subscriptions_of(tenant_id: str) -> Select[Any]:
    """The tenant's subscriptions."""
    return select(NotifySubscription).where(NotifySubscription.tenant_id == tenant_id)


async def get_subscription(
    session: AsyncSession, *, tenant_id: str, subscription_id: str
) -> NotifySubscription | None:
    """One subscription of the tenant, or None."""
    stmt = subscriptions_of(tenant_id).where(NotifySubscription.id == subscription_id)
    found: NotifySubscription | None = (await session.execute(stmt)).scalar_one_or_none()
    return found


async def matching(
    session: AsyncSession, *, tenant_id: str, event: str, workflow_id: str | None
) -> list[NotifySubscription]:
    """The tenant's subscriptions to ``event`` (of any workflow or of this one), oldest first."""
    workflows: list[ColumnElement[bool]] = [NotifySubscription.workflow_id.is_(None)]
    if workflow_id:
        workflows.append(NotifySubscription.workflow_id == workflow_id)
    rows = await session.execute(
        subscriptions_of(tenant_id)
        .where(NotifySubscription.event == event, or_(*workflows))
        .order_by(NotifySubscription.created_at, NotifySubscription.id)
    )
    return list(rows.scalars())


async def claim_firing(
    session: AsyncSession, *, subscription_id: str, event_key: str, notification_id: str
) -> bool:
    """Record that the subscription fires for this event; False if it already did."""
    stmt = (
        _insert(session)(NotifyFired)
        .values(
            subscription_id=subscription_id,
            event_key=event_key,
            notification_id=notification_id,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["subscription_id", "event_key"])
    )
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))
