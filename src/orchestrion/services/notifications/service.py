"""The rules of the notifications service: sends, templates, preferences, the inbox,
webhook secrets and subscriptions. Functions flush; the caller's unit of work commits.

A send is a row and a task of the kernel's queue (``notifications``) written in one
transaction, so a committed send is always delivered (or ends ``failed``), and nothing
is sent for a transaction that rolled back. The worker (:mod:`.delivery`) does the rest.
"""

from __future__ import annotations

import base64
import secrets as random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.http.lists import ListQuery, Page, fetch_page
from orchestrion.kernel.ids import isoformat, new_id, utcnow
from orchestrion.kernel.queue import TaskQueue
from orchestrion.services.notifications import repository
from orchestrion.services.notifications.errors import (
    InboxItemNotFound,
    InvalidTemplate,
    NotificationNotFound,
    RenderFailed,
    SubscriptionNotFound,
    TemplateNotFound,
)
from orchestrion.services.notifications.models import (
    NotifyInboxItem,
    NotifyNotification,
    NotifyPreference,
    NotifySubscription,
    NotifyTemplate,
    NotifyWebhookSecret,
)
from orchestrion.services.notifications.rendering import RenderError, check_source, render
from orchestrion.services.notifications.schemas import NotificationCreate, TemplateCreate
from orchestrion.settings import NotificationsSettings

QUEUE = "notifications"
#: What ``standardwebhooks.Webhook`` strips before decoding a secret (not a secret).
SECRET_PREFIX = "whsec_"  # noqa: S105


@dataclass
class NotificationsRuntime:
    """What the routes, the worker and the event consumer share in one process."""

    config: NotificationsSettings
    database: Database
    queue: TaskQueue
    fernet: Fernet


# --- sends ---------------------------------------------------------------------------------


async def compose(
    session: AsyncSession,
    *,
    tenant_id: str,
    channel: str,
    template: str | None,
    subject: str | None,
    body: str | None,
    data: Mapping[str, Any],
    max_chars: int,
) -> tuple[str | None, str, int | None]:
    """``(subject, body, template version)``: the template's newest version for the
    channel rendered with ``data``, else ``subject`` and ``body`` as given (422 when the
    template is missing or does not render)."""
    if template is None:
        return subject, body or "", None
    found = await repository.latest_template(
        session, tenant_id=tenant_id, name=template, channel=channel
    )
    if found is None:
        raise RenderFailed(
            f"no {channel} template named {template!r}",
            errors=[{"loc": ["body", "template"], "msg": "no such template for this channel"}],
        )
    try:
        rendered_subject = (
            render(found.subject, data, max_chars=max_chars) if found.subject is not None else None
        )
        rendered_body = render(found.body, data, max_chars=max_chars)
    except RenderError as exc:
        raise RenderFailed(
            f"template {template!r} v{found.version} does not render: {exc}",
            errors=[{"loc": ["body", "data"], "msg": str(exc)}],
        ) from None
    return rendered_subject, rendered_body, found.version


async def enqueue(
    session: AsyncSession,
    runtime: NotificationsRuntime,
    *,
    notification: NotifyNotification,
    run_at: datetime | None = None,
) -> None:
    """Queue (another) send attempt of ``notification`` in the caller's transaction."""
    await runtime.queue.enqueue(
        session,
        queue=QUEUE,
        payload={"notification_id": notification.id},
        key=f"notify:{notification.id}:{notification.attempts}",
        run_at=run_at,
    )


async def queue_notification(
    session: AsyncSession,
    runtime: NotificationsRuntime,
    *,
    tenant_id: str,
    owner_id: str,
    channel: str,
    to: str,
    subject: str | None,
    body: str,
    data: dict[str, Any],
    template: str | None = None,
    template_version: int | None = None,
    event: str | None = None,
    subscription_id: str | None = None,
    failed: str | None = None,
    notification_id: str | None = None,
) -> NotifyNotification:
    """A notification, queued for delivery; or recorded ``failed`` at once with the
    reason ``failed`` (a subscription whose template no longer renders)."""
    notification = NotifyNotification(
        id=notification_id or new_id(),
        tenant_id=tenant_id,
        owner_id=owner_id,
        channel=channel,
        to=to,
        subject=subject,
        body=body,
        data=data,
        template=template,
        template_version=template_version,
        event=event,
        subscription_id=subscription_id,
        status="failed" if failed else "queued",
        attempts=0,
        last_error=failed,
    )
    session.add(notification)
    await session.flush()
    if not failed:
        await enqueue(session, runtime, notification=notification)
    return notification


async def send(
    session: AsyncSession,
    runtime: NotificationsRuntime,
    *,
    principal: Principal,
    data: NotificationCreate,
) -> NotifyNotification:
    """Queue the caller's send (its template rendered now: a bad one is a 422)."""
    subject, body, version = await compose(
        session,
        tenant_id=principal.tenant_id,
        channel=data.channel,
        template=data.template,
        subject=data.subject,
        body=data.body,
        data=data.data,
        max_chars=runtime.config.max_rendered_chars,
    )
    return await queue_notification(
        session,
        runtime,
        tenant_id=principal.tenant_id,
        owner_id=principal.user_id,
        channel=data.channel,
        to=data.to,
        subject=subject,
        body=body,
        data=data.data,
        template=data.template,
        template_version=version,
    )


async def list_notifications(
    session: AsyncSession, *, principal: Principal, query: ListQuery
) -> Page:
    """One page of the tenant's notifications."""
    return await fetch_page(
        session,
        repository.notifications_of(principal.tenant_id),
        repository.NOTIFICATION_LIST,
        query,
    )


async def get_notification(
    session: AsyncSession, *, principal: Principal, notification_id: str
) -> NotifyNotification:
    """One notification of the caller's tenant; 404 otherwise."""
    found = await repository.get_notification(
        session, tenant_id=principal.tenant_id, notification_id=notification_id
    )
    if found is None:
        raise NotificationNotFound(f"no notification {notification_id}")
    return found


def to_dict(notification: NotifyNotification) -> dict[str, Any]:
    """The API shape of a notification."""
    return {
        "id": notification.id,
        "channel": notification.channel,
        "to": notification.to,
        "subject": notification.subject,
        "body": notification.body,
        "template": notification.template,
        "template_version": notification.template_version,
        "data": notification.data,
        "event": notification.event,
        "subscription_id": notification.subscription_id,
        "status": notification.status,
        "attempts": notification.attempts,
        "last_error": notification.last_error,
        "delivered_at": isoformat(notification.delivered_at) if notification.delivered_at else None,
        "created_at": isoformat(notification.created_at),
        "updated_at": isoformat(notification.updated_at),
    }


# --- templates -----------------------------------------------------------------------------


async def create_template(
    session: AsyncSession, *, principal: Principal, data: TemplateCreate, max_chars: int
) -> NotifyTemplate:
    """Version 1 of a new name, or the next version of an existing one (same channel)."""
    for where, source in (("subject", data.subject), ("body", data.body)):
        if source is None:
            continue
        try:
            check_source(source, max_chars=max_chars)
        except RenderError as exc:
            raise InvalidTemplate(
                f"the {where} does not parse: {exc}",
                errors=[{"loc": ["body", where], "msg": str(exc)}],
            ) from None
    latest = await session.execute(
        select(func.max(NotifyTemplate.version)).where(
            NotifyTemplate.tenant_id == principal.tenant_id,
            NotifyTemplate.name == data.name,
            NotifyTemplate.channel == data.channel,
        )
    )
    template = NotifyTemplate(
        tenant_id=principal.tenant_id,
        name=data.name,
        channel=data.channel,
        version=(latest.scalar_one() or 0) + 1,
        subject=data.subject,
        body=data.body,
        created_by=principal.user_id,
        created_at=utcnow(),
    )
    session.add(template)
    await session.flush()
    return template


async def list_templates(session: AsyncSession, *, principal: Principal, query: ListQuery) -> Page:
    """One page of the tenant's template versions."""
    return await fetch_page(
        session, repository.templates_of(principal.tenant_id), repository.TEMPLATE_LIST, query
    )


async def get_template(
    session: AsyncSession, *, principal: Principal, template_id: str
) -> NotifyTemplate:
    """One template version of the caller's tenant; 404 otherwise."""
    found = await repository.get_template(
        session, tenant_id=principal.tenant_id, template_id=template_id
    )
    if found is None:
        raise TemplateNotFound(f"no template {template_id}")
    return found


def template_to_dict(template: NotifyTemplate) -> dict[str, Any]:
    """The API shape of a template version."""
    return {
        "id": template.id,
        "name": template.name,
        "channel": template.channel,
        "version": template.version,
        "subject": template.subject,
        "body": template.body,
        "created_by": template.created_by,
        "created_at": isoformat(template.created_at),
    }


# --- preferences and inbox ---------------------------------------------------------------


async def get_preferences(session: AsyncSession, *, principal: Principal) -> dict[str, Any]:
    """The caller's preferences (nothing muted unless set)."""
    found = await repository.get_preference(
        session, tenant_id=principal.tenant_id, user_id=principal.user_id
    )
    return {"muted_channels": list(found.muted_channels) if found else []}


async def set_preferences(
    session: AsyncSession, *, principal: Principal, muted: list[str]
) -> dict[str, Any]:
    """Replace the caller's muted channels."""
    channels = list(dict.fromkeys(muted))
    found = await repository.get_preference(
        session, tenant_id=principal.tenant_id, user_id=principal.user_id
    )
    if found is None:
        session.add(
            NotifyPreference(
                tenant_id=principal.tenant_id, user_id=principal.user_id, muted_channels=channels
            )
        )
    else:
        found.muted_channels = channels
    await session.flush()
    return {"muted_channels": channels}


async def list_inbox(session: AsyncSession, *, principal: Principal, query: ListQuery) -> Page:
    """One page of the caller's inbox."""
    return await fetch_page(
        session,
        repository.inbox_of(principal.tenant_id, principal.user_id),
        repository.INBOX_LIST,
        query,
    )


async def mark_read(
    session: AsyncSession, *, principal: Principal, item_id: str
) -> NotifyInboxItem:
    """Mark a message of the caller's inbox read (once: the first time stays)."""
    item = await repository.get_inbox_item(
        session, tenant_id=principal.tenant_id, user_id=principal.user_id, item_id=item_id
    )
    if item is None:
        raise InboxItemNotFound(f"no message {item_id} in your inbox")
    if item.read_at is None:
        item.read_at = utcnow()
        await session.flush()
    return item


def inbox_to_dict(item: NotifyInboxItem) -> dict[str, Any]:
    """The API shape of an inbox message."""
    return {
        "id": item.id,
        "notification_id": item.notification_id,
        "subject": item.subject,
        "body": item.body,
        "data": item.data,
        "read": item.read_at is not None,
        "read_at": isoformat(item.read_at) if item.read_at else None,
        "created_at": isoformat(item.created_at),
    }


# --- webhook secrets ---------------------------------------------------------------------


async def rotate_secret(
    session: AsyncSession, runtime: NotificationsRuntime, *, principal: Principal
) -> dict[str, Any]:
    """A new signing secret for the tenant; the current one is retired (it keeps
    signing for the grace period). The value is shown only here."""
    now = utcnow()
    for current in await repository.secrets_of(session, tenant_id=principal.tenant_id):
        if current.retired_at is None:
            current.retired_at = now
    value = SECRET_PREFIX + base64.b64encode(random.token_bytes(32)).decode()
    row = NotifyWebhookSecret(
        tenant_id=principal.tenant_id,
        secret=runtime.fernet.encrypt(value.encode()).decode(),
        created_by=principal.user_id,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return {"id": row.id, "secret": value, "created_at": isoformat(row.created_at)}


async def list_secrets(
    session: AsyncSession, runtime: NotificationsRuntime, *, principal: Principal
) -> list[dict[str, Any]]:
    """The tenant's secrets (never their values), newest first."""
    grace = timedelta(seconds=runtime.config.webhook_secret_grace_seconds)
    now = utcnow()
    out = []
    for row in await repository.secrets_of(session, tenant_id=principal.tenant_id):
        expires = row.retired_at + grace if row.retired_at else None
        out.append(
            {
                "id": row.id,
                "created_at": isoformat(row.created_at),
                "retired_at": isoformat(row.retired_at) if row.retired_at else None,
                "expires_at": isoformat(expires) if expires else None,
                "active": expires is None or expires > now,
            }
        )
    return out


async def signing_secrets(
    session: AsyncSession, runtime: NotificationsRuntime, *, tenant_id: str
) -> list[str]:
    """The secret values that sign the tenant's webhooks now, newest first."""
    cutoff = utcnow() - timedelta(seconds=runtime.config.webhook_secret_grace_seconds)
    rows = await repository.signing_secrets(session, tenant_id=tenant_id, retired_after=cutoff)
    return [runtime.fernet.decrypt(row.secret.encode()).decode() for row in rows]


# --- subscriptions -------------------------------------------------------------------------


async def subscribe(
    session: AsyncSession, *, principal: Principal, data: Any
) -> NotifySubscription:
    """A subscription of the caller's tenant (``data``: a :data:`SubscriptionCreate`)."""
    subscription = NotifySubscription(
        tenant_id=principal.tenant_id,
        created_by=principal.user_id,
        event=data.event,
        workflow_id=data.workflow_id,
        channel=data.channel,
        to=data.to,
        template=data.template,
        created_at=utcnow(),
    )
    session.add(subscription)
    await session.flush()
    return subscription


async def list_subscriptions(
    session: AsyncSession, *, principal: Principal, query: ListQuery
) -> Page:
    """One page of the tenant's subscriptions."""
    return await fetch_page(
        session,
        repository.subscriptions_of(principal.tenant_id),
        repository.SUBSCRIPTION_LIST,
        query,
    )


async def get_subscription(
    session: AsyncSession, *, principal: Principal, subscription_id: str
) -> NotifySubscription:
    """One subscription of the caller's tenant; 404 otherwise."""
    found = await repository.get_subscription(
        session, tenant_id=principal.tenant_id, subscription_id=subscription_id
    )
    if found is None:
        raise SubscriptionNotFound(f"no subscription {subscription_id}")
    return found


async def unsubscribe(session: AsyncSession, *, subscription: NotifySubscription) -> None:
    """Delete a subscription (its notifications stay)."""
    await session.delete(subscription)
    await session.flush()


def subscription_to_dict(subscription: NotifySubscription) -> dict[str, Any]:
    """The API shape of a subscription."""
    return {
        "id": subscription.id,
        "event": subscription.event,
        "workflow_id": subscription.workflow_id,
        "channel": subscription.channel,
        "to": subscription.to,
        "template": subscription.template,
        "created_by": subscription.created_by,
        "created_at": isoformat(subscription.created_at),
    }
