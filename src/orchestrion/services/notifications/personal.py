"""A person's records in the notifications service: exported, or erased.

What names a person here, and what erasure does with it (:mod:`orchestrion.kernel.personal`):

- their **inbox** and **preferences**: **deleted**; they are theirs alone.
- notifications **addressed to them** (in-app to their id, email to their address):
  **deleted** (a queued one is then never sent); they are messages to the person.
- subscriptions they made, or that send to them: **deleted**; they would keep acting
  for, or writing to, someone who is gone.
- notifications **they sent** to others, message templates and webhook secrets they
  created: the sender / ``created_by`` is **anonymised** to ``erased:<digest>``; the
  recipients' messages and the tenant's templates and secrets stay.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.ids import isoformat
from orchestrion.kernel.personal import Person
from orchestrion.services.notifications.models import (
    NotifyInboxItem,
    NotifyNotification,
    NotifyPreference,
    NotifySubscription,
    NotifyTemplate,
    NotifyWebhookSecret,
)

SERVICE = "notifications"


async def _addressed_to(session: AsyncSession, person: Person, model: Any) -> list[str]:
    """Ids of ``model`` rows (notifications, subscriptions) sent to the person: in-app to
    their id, email to their address (known by its digest, so compared row by row)."""
    query = select(model.id, model.channel, model.to).where(
        or_(model.to.in_(person.ids), model.channel == "email")
    )
    if person.tenant_id is not None:
        query = query.where(model.tenant_id == person.tenant_id)
    rows = (await session.execute(query)).all()
    return [
        row.id
        for row in rows
        if (row.channel == "in_app" and row.to in person.ids)
        or (row.channel == "email" and person.named_by(row.to))
    ]


async def export(session: AsyncSession, person: Person) -> dict[str, Any]:
    """Everything of this service that names ``person``."""

    async def rows(query: Any) -> list[Any]:
        return list((await session.execute(query)).scalars())

    received = await _addressed_to(session, person, NotifyNotification)
    notifications = await rows(
        select(NotifyNotification)
        .where(
            or_(NotifyNotification.owner_id.in_(person.ids), NotifyNotification.id.in_(received))
        )
        .order_by(NotifyNotification.created_at)
    )
    subscribed = await _addressed_to(session, person, NotifySubscription)
    subscriptions = await rows(
        select(NotifySubscription)
        .where(
            or_(
                NotifySubscription.created_by.in_(person.ids), NotifySubscription.id.in_(subscribed)
            )
        )
        .order_by(NotifySubscription.created_at)
    )
    inbox = await rows(
        select(NotifyInboxItem)
        .where(NotifyInboxItem.user_id.in_(person.ids))
        .order_by(NotifyInboxItem.created_at)
    )
    preferences = await rows(
        select(NotifyPreference).where(NotifyPreference.user_id.in_(person.ids))
    )
    templates = await rows(
        select(NotifyTemplate)
        .where(NotifyTemplate.created_by.in_(person.ids))
        .order_by(NotifyTemplate.created_at)
    )
    secrets = await rows(
        select(NotifyWebhookSecret)
        .where(NotifyWebhookSecret.created_by.in_(person.ids))
        .order_by(NotifyWebhookSecret.created_at)
    )
    return {
        "notifications": [
            {
                "id": n.id,
                "sent_by": n.owner_id,
                "channel": n.channel,
                "to": n.to,
                "subject": n.subject,
                "body": n.body,
                "status": n.status,
                "created_at": isoformat(n.created_at),
            }
            for n in notifications
        ],
        "inbox": [
            {
                "id": i.id,
                "notification_id": i.notification_id,
                "subject": i.subject,
                "body": i.body,
                "data": i.data,
                "read_at": isoformat(i.read_at),
                "created_at": isoformat(i.created_at),
            }
            for i in inbox
        ],
        "preferences": [
            {"muted_channels": list(p.muted_channels), "updated_at": isoformat(p.updated_at)}
            for p in preferences
        ],
        "subscriptions": [
            {
                "id": s.id,
                "created_by": s.created_by,
                "event": s.event,
                "workflow_id": s.workflow_id,
                "channel": s.channel,
                "to": s.to,
                "created_at": isoformat(s.created_at),
            }
            for s in subscriptions
        ],
        "templates": [
            {
                "id": t.id,
                "name": t.name,
                "channel": t.channel,
                "version": t.version,
                "created_by": t.created_by,
            }
            for t in templates
        ],
        # Which secrets they made, never the secrets.
        "webhook_secrets": [
            {"id": w.id, "created_by": w.created_by, "created_at": isoformat(w.created_at)}
            for w in secrets
        ],
    }


async def erase(session: AsyncSession, person: Person) -> None:
    """Erase ``person`` here (idempotent: a second run finds nothing left to change)."""
    user_id = person.user_id
    await session.execute(delete(NotifyInboxItem).where(NotifyInboxItem.user_id == user_id))
    await session.execute(delete(NotifyPreference).where(NotifyPreference.user_id == user_id))
    received = await _addressed_to(session, person, NotifyNotification)
    if received:
        await session.execute(delete(NotifyNotification).where(NotifyNotification.id.in_(received)))
    subscribed = await _addressed_to(session, person, NotifySubscription)
    await session.execute(
        delete(NotifySubscription).where(
            or_(NotifySubscription.created_by == user_id, NotifySubscription.id.in_(subscribed))
        )
    )
    await session.execute(
        update(NotifyNotification)
        .where(NotifyNotification.owner_id == user_id)
        .values(owner_id=person.pseudonym)
        .execution_options(synchronize_session=False)
    )
    for model in (NotifyTemplate, NotifyWebhookSecret):
        await session.execute(
            update(model)
            .where(model.created_by == user_id)
            .values(created_by=person.pseudonym)
            .execution_options(synchronize_session=False)
        )
