"""Subscriptions firing on the platform's events.

The workflows service publishes every execution log entry on the bus topic
``workflows.executions`` (CloudEvents ``orchestrion.<type>``, data ``{"tenant_id",
"execution_id", "workflow_id", "event": {"seq", "type", "step_id", "data", "at"}}``), in
every shape (the in-process memory bus under ``orchestrion up``). This service consumes it
in group ``notifications``.

An entry is known by its type (``execution.failed``...) and, for a ``step.waiting`` entry
of an ``approval`` step, also as ``approval.requested``. Each subscription of the tenant
to that name (of any workflow, or of this one) fires once: the ``notify_fired`` row keyed
by (subscription, execution and seq) is inserted in the same transaction as the
notification and its task, so a redelivered or republished event finds the row and sends
nothing, whatever the bus's own deduplication remembers.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.bus import Bus, CloudEvent, Handler
from orchestrion.kernel.ids import new_id
from orchestrion.services.notifications import repository, service
from orchestrion.services.notifications.errors import RenderFailed
from orchestrion.services.notifications.models import NotifySubscription
from orchestrion.services.notifications.schemas import APPROVAL_REQUESTED
from orchestrion.services.notifications.service import NotificationsRuntime

TOPIC = "workflows.executions"
GROUP = "notifications"
logger = logging.getLogger("orchestrion.notifications.events")


class LogEntry(BaseModel):
    """One execution log entry as the bus carries it."""

    model_config = ConfigDict(extra="ignore")

    seq: int = Field(ge=0)
    type: str = Field(min_length=1, max_length=100)
    step_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    at: str | None = None


class ExecutionEvent(BaseModel):
    """The data of a ``workflows.executions`` event (unknown fields ignored)."""

    model_config = ConfigDict(extra="ignore")

    tenant_id: str = Field(min_length=1, max_length=36)
    execution_id: str = Field(min_length=1, max_length=36)
    workflow_id: str | None = Field(default=None, max_length=36)
    event: LogEntry

    def names(self) -> list[str]:
        """The event names subscriptions may know this entry by."""
        names = [self.event.type]
        if self.event.type == "step.waiting" and self.event.data.get("kind") == "approval":
            names.append(APPROVAL_REQUESTED)
        return names

    def context(self, name: str) -> dict[str, Any]:
        """What a template sees (and a webhook's payload carries)."""
        data = self.event.data
        return {
            "event": name,
            "tenant_id": self.tenant_id,
            "execution_id": self.execution_id,
            "workflow_id": self.workflow_id,
            "seq": self.event.seq,
            "step_id": self.event.step_id,
            "at": self.event.at,
            "data": data,
            "error": data.get("error"),
            "outputs": data.get("outputs"),
        }


def default_message(context: dict[str, Any]) -> tuple[str, str]:
    """Subject and body of a subscription without a template."""
    name = context["event"]
    subject = f"[Orchestrion] {name}: execution {context['execution_id']}"
    lines = [
        f"Event: {name}",
        f"Workflow: {context['workflow_id']}",
        f"Execution: {context['execution_id']}",
    ]
    if context["step_id"]:
        lines.append(f"Step: {context['step_id']}")
    error = context["error"]
    if isinstance(error, dict) and error.get("message"):
        lines.append(f"Error: {error['message']}")
    if context["at"]:
        lines.append(f"At: {context['at']}")
    return subject, "\n".join(lines) + "\n"


async def _fire_one(
    session: AsyncSession,
    runtime: NotificationsRuntime,
    *,
    subscription: NotifySubscription,
    event: ExecutionEvent,
    name: str,
) -> bool:
    """Fire ``subscription`` for ``event`` unless it already did; whether it fired now."""
    notification_id = new_id()
    claimed = await repository.claim_firing(
        session,
        subscription_id=subscription.id,
        event_key=f"{event.execution_id}:{event.event.seq}",
        notification_id=notification_id,
    )
    if not claimed:
        return False
    context = event.context(name)
    subject, body = default_message(context)
    version: int | None = None
    failed: str | None = None
    if subscription.template is not None:
        try:
            subject_or_none, body, version = await service.compose(
                session,
                tenant_id=subscription.tenant_id,
                channel=subscription.channel,
                template=subscription.template,
                subject=None,
                body=None,
                data=context,
                max_chars=runtime.config.max_rendered_chars,
            )
            subject = subject_or_none or subject
        except RenderFailed as exc:
            failed = exc.detail
    await service.queue_notification(
        session,
        runtime,
        notification_id=notification_id,
        tenant_id=subscription.tenant_id,
        owner_id=subscription.created_by,
        channel=subscription.channel,
        to=subscription.to,
        subject=subject,
        body=body,
        data=context,
        template=subscription.template,
        template_version=version,
        event=name,
        subscription_id=subscription.id,
        failed=failed,
    )
    return True


async def fire(session: AsyncSession, runtime: NotificationsRuntime, event: ExecutionEvent) -> int:
    """Fire every matching subscription once; how many fired now."""
    fired = 0
    for name in event.names():
        for subscription in await repository.matching(
            session, tenant_id=event.tenant_id, event=name, workflow_id=event.workflow_id
        ):
            if await _fire_one(session, runtime, subscription=subscription, event=event, name=name):
                fired += 1
    return fired


def handler(bus: Bus, runtime: NotificationsRuntime) -> Handler:
    """The bus handler: one transaction per event. Data that does not fit is parked as
    a dead letter at once; any other failure raises, so the bus retries it."""

    async def handle(event: CloudEvent) -> None:
        try:
            data = ExecutionEvent.model_validate(event.data)
        except ValidationError as exc:
            logger.warning("malformed %s event %s: %s", TOPIC, event.id, exc)
            await bus.dead_letter(topic=TOPIC, group=GROUP, attempts=0, error=exc, event=event)
            return
        async with runtime.database.session() as session:
            fired = await fire(session, runtime, data)
        if fired:
            logger.info(
                "%s of execution %s fired %d subscriptions",
                data.event.type,
                data.execution_id,
                fired,
            )

    return handle
