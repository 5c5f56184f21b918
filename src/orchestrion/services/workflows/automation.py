"""Starting workflows without a person: cron schedules and signed webhook triggers.

Schedules fire through the durable task queue: each firing is a task due at the next
cron time, handled in one transaction that starts the execution, records the run and
enqueues the next firing, so a schedule fires once per time even across crashes.

Webhooks follow the Standard Webhooks scheme: ``webhook-id``, ``webhook-timestamp``
(seconds, within five minutes) and ``webhook-signature: v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`` under the trigger's secret. A repeated ``webhook-id``
answers the first response instead of starting a second execution.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine.runtime import Engine, schema_errors
from orchestrion.kernel.errors import NotFound, Unauthenticated, ValidationFailed
from orchestrion.kernel.ids import isoformat, utcnow
from orchestrion.kernel.queue import ClaimedTask
from orchestrion.services.workflows.definitions.models import Workflow
from orchestrion.services.workflows.models import Schedule, Trigger

SCHEDULE_TASK = "schedule"
SIGNATURE_TOLERANCE = timedelta(minutes=5)


class ScheduleNotFound(NotFound):
    """No such schedule on this workflow."""


class TriggerNotFound(NotFound):
    """No such webhook trigger."""


class InvalidSignature(Unauthenticated):
    """The webhook's signature, timestamp or id is missing or wrong."""


# --- schedules ---------------------------------------------------------------------


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first cron time strictly after ``after``, computed in ``timezone`` (DST-aware)."""
    zone = ZoneInfo(timezone)
    return next(CronSim(cron, after.astimezone(zone))).astimezone(ZoneInfo("UTC"))


def check_schedule(cron: str, timezone: str) -> None:
    """422 unless the cron expression and the time zone are valid."""
    errors = []
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append({"loc": ["body", "timezone"], "msg": f"unknown time zone {timezone!r}"})
        zone = ZoneInfo("UTC")
    try:
        next(CronSim(cron, utcnow().astimezone(zone)))
    except (CronSimError, StopIteration) as exc:
        errors.append({"loc": ["body", "cron"], "msg": f"invalid cron expression: {exc}"})
    if errors:
        raise ValidationFailed("invalid schedule", errors=errors)


def check_inputs(workflow: Workflow, inputs: dict[str, Any]) -> None:
    """422 unless ``inputs`` fit the workflow's input schema."""
    errors = schema_errors(workflow.definition.get("inputs") or {}, inputs, where="inputs")
    if errors:
        raise ValidationFailed("the inputs do not match the workflow's schema", errors=errors)


async def arm(session: AsyncSession, engine: Engine, schedule: Schedule) -> None:
    """Compute the next firing and enqueue it (nothing when disabled)."""
    if not schedule.enabled:
        schedule.next_run_at = None
        return
    schedule.next_run_at = next_fire(schedule.cron, schedule.timezone, utcnow())
    await engine.queue.enqueue(
        session,
        queue=engine.queue_name,
        payload={
            "kind": SCHEDULE_TASK,
            "schedule_id": schedule.id,
            "due": isoformat(schedule.next_run_at),
        },
        key=f"schedule:{schedule.id}:{isoformat(schedule.next_run_at)}",
        run_at=schedule.next_run_at,
    )


async def fire(engine: Engine, task: ClaimedTask, owner: str) -> None:
    """Handle a due schedule task: start the run, record it, arm the next one."""
    async with engine.database.session() as session:
        await engine.queue.complete(session, task_id=task.id, owner=owner)
        stmt = select(Schedule).where(Schedule.id == task.payload.get("schedule_id"))
        if engine.postgres:
            stmt = stmt.with_for_update()
        schedule = (await session.execute(stmt)).scalar_one_or_none()
        # A task for an older arming (the schedule was edited or disabled) is stale.
        if (
            schedule is None
            or not schedule.enabled
            or isoformat(schedule.next_run_at) != task.payload.get("due")
        ):
            return
        workflow = await session.get(Workflow, schedule.workflow_id)
        schedule.last_run_at = utcnow()
        if workflow is not None and workflow.deleted_at is None and workflow.status == "active":
            execution = await engine.start(
                session,
                tenant_id=schedule.tenant_id,
                workflow_id=workflow.id,
                version=workflow.version,
                definition={"name": workflow.name, **workflow.definition},
                inputs=dict(schedule.inputs),
                created_by=schedule.created_by,
            )
            schedule.last_execution_id = execution.id
        await arm(session, engine, schedule)


def schedule_to_dict(schedule: Schedule) -> dict[str, Any]:
    """The API shape of a schedule."""
    return {
        "id": schedule.id,
        "workflow_id": schedule.workflow_id,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "inputs": schedule.inputs,
        "enabled": schedule.enabled,
        "next_run_at": isoformat(schedule.next_run_at),
        "last_run_at": isoformat(schedule.last_run_at),
        "last_execution_id": schedule.last_execution_id,
        "created_at": isoformat(schedule.created_at),
        "updated_at": isoformat(schedule.updated_at),
    }


# --- webhook triggers --------------------------------------------------------------


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form (``whsec_`` + base64)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, *, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for a payload."""
    message = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, *, headers: Any, body: bytes, now: float | None = None) -> str:
    """The webhook id if the signature holds; 401 otherwise."""
    webhook_id = headers.get("webhook-id")
    raw_timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not webhook_id or not raw_timestamp or not signatures:
        raise InvalidSignature("send webhook-id, webhook-timestamp and webhook-signature")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp must be seconds since the epoch") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > SIGNATURE_TOLERANCE.total_seconds():
        raise InvalidSignature("webhook-timestamp is too old or in the future")
    expected = sign(secret, webhook_id=webhook_id, timestamp=timestamp, body=body)
    for candidate in signatures.split():
        if hmac.compare_digest(candidate, expected):
            return str(webhook_id)
    raise InvalidSignature("webhook-signature does not match")


def seal(fernet: Fernet, secret: str) -> str:
    """Encrypt a trigger secret for storage."""
    return fernet.encrypt(secret.encode()).decode()


def unseal(fernet: Fernet, stored: str) -> str:
    """Decrypt a stored trigger secret."""
    return fernet.decrypt(stored.encode()).decode()


def trigger_to_dict(trigger: Trigger) -> dict[str, Any]:
    """The API shape of a trigger (never its secret)."""
    return {
        "id": trigger.id,
        "workflow_id": trigger.workflow_id,
        "name": trigger.name,
        "enabled": trigger.enabled,
        "url": f"/api/v1/hooks/{trigger.id}",
        "last_called_at": isoformat(trigger.last_called_at),
        "created_at": isoformat(trigger.created_at),
    }
