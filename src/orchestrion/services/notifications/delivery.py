"""Delivering queued notifications: the worker of the ``notifications`` queue.

Each attempt runs in three steps so no transaction stays open across the network:
mark the notification ``sending`` (or end it: already done, or its channel muted),
send it, then record the outcome and complete the task in one transaction. A transient
failure queues the next attempt after an exponential backoff with jitter, up to
``max_attempts``; a permanent one, or the last attempt, ends it ``failed`` with
``last_error``. A worker that dies mid-send loses its lease and the task is claimed
again: delivery is at least once, and webhook receivers drop repeats by ``webhook-id``.

An in-app message is stored in the recipient's inbox with its ``delivered`` status, then
pushed (best effort) on realtime's ``user:<id>`` channel through its internal endpoint:
the inbox is the record, a client that was offline reads it there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx

from orchestrion.kernel.bus import Backoff
from orchestrion.kernel.ids import utcnow
from orchestrion.kernel.queue import ClaimedTask, DeadLetter
from orchestrion.kernel.queue.worker import QueueWorker
from orchestrion.services.notifications import repository, service
from orchestrion.services.notifications.channels import Channels, DeliveryFailed, Message, Sent
from orchestrion.services.notifications.models import NotifyNotification
from orchestrion.services.notifications.service import QUEUE, NotificationsRuntime

logger = logging.getLogger("orchestrion.notifications.delivery")
PUBLISH = "/internal/realtime/publish"
#: Times one task may be handed out before it is given up (a send that kills its worker).
MAX_TASK_ATTEMPTS = 3


def _recipients(notification: NotifyNotification) -> list[str]:
    """Whose preferences apply: the sender's (or subscription owner's), and for an
    in-app message its recipient's."""
    users = [notification.owner_id]
    if notification.channel == "in_app":
        users.append(notification.to)
    return users


class DeliveryWorker(QueueWorker):
    """Claims and sends up to ``config.concurrency`` notifications at a time until stopped."""

    def __init__(
        self,
        runtime: NotificationsRuntime,
        channels: Channels,
        *,
        peers: Mapping[str, httpx.AsyncClient],
        poll_seconds: float = 1.0,
    ) -> None:
        super().__init__(
            runtime.queue,
            QUEUE,
            concurrency=runtime.config.concurrency,
            poll_seconds=poll_seconds,
        )
        self.runtime = runtime
        self.channels = channels
        self.peers = peers
        config = runtime.config
        self.backoff = Backoff(
            initial=config.retry_initial_seconds,
            maximum=config.retry_max_seconds,
            jitter=config.retry_jitter,
        )

    def idle_seconds(self) -> float:
        """Sleep until the next poll, or the next retry this process queued if sooner."""
        due = self.runtime.queue.next_local_due(QUEUE)
        if due is None:
            return self.poll_seconds
        return max(0.01, min(self.poll_seconds, (due - utcnow()).total_seconds()))

    async def _begin(self, notification_id: str, task: ClaimedTask) -> Message | None:
        """Mark the notification ``sending``; None when there is nothing to send."""
        runtime = self.runtime
        async with runtime.database.session() as session:
            notification = await repository.for_delivery(session, notification_id)
            if notification is None or notification.status not in ("queued", "sending"):
                await runtime.queue.complete(session, task_id=task.id, owner=self.owner)
                return None
            muted = await repository.muted_by(
                session,
                tenant_id=notification.tenant_id,
                user_ids=_recipients(notification),
                channel=notification.channel,
            )
            if muted is not None:
                notification.status = "failed"
                notification.last_error = (
                    f"not sent: the {notification.channel} channel is muted in the "
                    f"preferences of user {muted}"
                )
                await runtime.queue.complete(session, task_id=task.id, owner=self.owner)
                return None
            notification.status = "sending"
            secrets: list[str] = []
            if notification.channel == "webhook":
                secrets = await service.signing_secrets(
                    session, runtime, tenant_id=notification.tenant_id
                )
            return Message(
                id=notification.id,
                tenant_id=notification.tenant_id,
                channel=notification.channel,
                to=notification.to,
                subject=notification.subject,
                body=notification.body,
                data=dict(notification.data or {}),
                event=notification.event,
                created_at=notification.created_at,
                secrets=tuple(secrets),
            )

    async def handle(self, task: ClaimedTask) -> None:
        """Send the task's notification once and record the outcome."""
        notification_id = str(task.payload.get("notification_id", ""))
        try:
            message = await self._begin(notification_id, task)
            if message is None:
                return
            outcome: Sent | DeliveryFailed
            try:
                outcome = await self.channels.send(message)
            except DeliveryFailed as exc:
                outcome = exc
            inbox = await self._finish(notification_id, task, outcome)
            if inbox is not None:
                await self._publish(message, inbox)
        except Exception:
            # The lease runs out and the task is claimed again (at most MAX_TASK_ATTEMPTS).
            logger.exception("delivering notification %s failed", notification_id)

    async def _finish(
        self, notification_id: str, task: ClaimedTask, outcome: Sent | DeliveryFailed
    ) -> dict[str, Any] | None:
        """Record the attempt; the inbox message to push, for a delivered in-app one."""
        runtime = self.runtime
        inbox: dict[str, Any] | None = None
        async with runtime.database.session() as session:
            notification = await repository.for_delivery(session, notification_id)
            if notification is None:
                await runtime.queue.complete(session, task_id=task.id, owner=self.owner)
                return None
            notification.attempts += 1
            if isinstance(outcome, Sent):
                if notification.channel == "in_app":
                    item = await repository.add_inbox_item(session, notification=notification)
                    inbox = service.inbox_to_dict(item)
                notification.status = "delivered"
                notification.delivered_at = utcnow()
                notification.last_error = None
                notification.provider_id = outcome.provider_id
            elif outcome.transient and notification.attempts < runtime.config.max_attempts:
                notification.status = "queued"
                notification.last_error = str(outcome)
                delay = self.backoff.delay(notification.attempts)
                await service.enqueue(
                    session,
                    runtime,
                    notification=notification,
                    run_at=utcnow() + timedelta(seconds=delay),
                )
            else:
                notification.status = "failed"
                notification.last_error = (
                    f"{outcome} (gave up after {notification.attempts} attempts)"
                    if outcome.transient
                    else str(outcome)
                )
            if not await runtime.queue.complete(session, task_id=task.id, owner=self.owner):
                # Another worker holds it now: let its outcome stand, not ours.
                await session.rollback()
                return None
        return inbox

    async def _publish(self, message: Message, inbox: dict[str, Any]) -> None:
        """Push an inbox message on realtime's ``user:<id>`` (best effort)."""
        client = self.peers.get("realtime")
        if client is None:
            return
        body = {
            "tenant_id": message.tenant_id,
            "channel": f"user:{message.to}",
            "data": {"type": "notification", **inbox},
        }
        try:
            response = await client.post(PUBLISH, json=body)
            if response.status_code >= 400:
                logger.warning("realtime refused an inbox message: %s", response.text[:200])
        except httpx.HTTPError as exc:
            logger.warning("realtime unreachable for an inbox message: %s", exc)


async def give_up(runtime: NotificationsRuntime, letters: list[DeadLetter]) -> None:
    """End the notifications of dead-lettered tasks ``failed``."""
    async with runtime.database.session() as session:
        for letter in letters:
            notification = await repository.for_delivery(
                session, str(letter.payload.get("notification_id", ""))
            )
            if notification is not None and notification.status in ("queued", "sending"):
                notification.status = "failed"
                notification.last_error = (
                    f"delivery failed {letter.attempts} times without an answer; giving up"
                )
