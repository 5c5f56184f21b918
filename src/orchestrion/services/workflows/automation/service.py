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
import json
import logging
import secrets
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine import Engine, schema_errors
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.errors import BadRequest, OrchestrionError, ValidationFailed
from orchestrion.kernel.ids import isoformat, utcnow
from orchestrion.kernel.queue import ClaimedTask
from orchestrion.services.workflows.automation import repository
from orchestrion.services.workflows.automation.models import Schedule, Trigger
from orchestrion.services.workflows.definitions import service as definitions
from orchestrion.services.workflows.definitions.models import Workflow
from orchestrion.services.workflows.errors import (
    InvalidSignature,
    ScheduleNotFound,
    TriggerNotFound,
)
from orchestrion.services.workflows.executions import service as executions

logger = logging.getLogger("orchestrion.workflows.automation")
SCHEDULE_TASK = "schedule"
SIGNATURE_TOLERANCE = timedelta(minutes=5)


# --- schedules ---------------------------------------------------------------------


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first cron time strictly after ``after``, computed in ``timezone`` (DST-aware)."""
    zone = ZoneInfo(timezone)
    return next(CronSim(cron, after.astimezone(zone))).astimezone(ZoneInfo("UTC"))


def check_schedule(*, cron: str, timezone: str) -> None:
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


def check_inputs(*, workflow: Workflow, inputs: dict[str, Any]) -> None:
    """422 unless ``inputs`` fit the workflow's input schema."""
    errors = schema_errors(workflow.definition.get("inputs") or {}, inputs, where="inputs")
    if errors:
        raise ValidationFailed("the inputs do not match the workflow's schema", errors=errors)


async def arm(session: AsyncSession, *, engine: Engine, schedule: Schedule) -> None:
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
        schedule = await repository.lock_schedule(
            session, schedule_id=task.payload.get("schedule_id"), for_update=engine.postgres
        )
        # A task for an older arming (the schedule was edited or disabled) is stale.
        if (
            schedule is None
            or not schedule.enabled
            or isoformat(schedule.next_run_at) != task.payload.get("due")
        ):
            return
        workflow = await definitions.workflow_by_id(session, workflow_id=schedule.workflow_id)
        schedule.last_run_at = utcnow()
        if workflow is not None and workflow.deleted_at is None and workflow.status == "active":
            try:
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
            except OrchestrionError as exc:
                # Refused (inputs no longer fit, the tenant's limit of active runs): this
                # run is skipped and the next one armed; raising would retry it forever.
                logger.warning("schedule %s did not start a run: %s", schedule.id, exc.detail)
        await arm(session, engine=engine, schedule=schedule)


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


async def _workflow(session: AsyncSession, principal: Principal, workflow_id: str) -> Workflow:
    return await definitions.get_workflow(session, principal=principal, workflow_id=workflow_id)


async def _schedule(session: AsyncSession, workflow: Workflow, schedule_id: str) -> Schedule:
    schedule = await repository.get_schedule(session, schedule_id=schedule_id)
    if schedule is None or schedule.workflow_id != workflow.id:
        raise ScheduleNotFound(f"schedule '{schedule_id}' not found")
    return schedule


async def _disarm(session: AsyncSession, schedule: Schedule) -> None:
    if schedule.next_run_at is not None:
        key = f"schedule:{schedule.id}:{isoformat(schedule.next_run_at)}"
        await repository.delete_task(session, key=key)


async def create_schedule(
    session: AsyncSession,
    *,
    engine: Engine,
    principal: Principal,
    workflow_id: str,
    cron: str,
    timezone: str,
    inputs: dict[str, Any],
    enabled: bool,
) -> Schedule:
    """Check and store a schedule of the caller's workflow, and arm its first firing."""
    workflow = await _workflow(session, principal, workflow_id)
    check_schedule(cron=cron, timezone=timezone)
    check_inputs(workflow=workflow, inputs=inputs)
    schedule = Schedule(
        tenant_id=principal.tenant_id,
        workflow_id=workflow.id,
        cron=cron,
        timezone=timezone,
        inputs=inputs,
        enabled=enabled,
        created_by=principal.user_id,
    )
    session.add(schedule)
    await session.flush()
    await arm(session, engine=engine, schedule=schedule)
    await session.flush()
    return schedule


async def list_schedules(
    session: AsyncSession, *, principal: Principal, workflow_id: str
) -> list[Schedule]:
    """Every schedule of the caller's workflow, oldest first."""
    workflow = await _workflow(session, principal, workflow_id)
    return await repository.schedules_of(session, workflow_id=workflow.id)


async def get_schedule(
    session: AsyncSession, *, principal: Principal, workflow_id: str, schedule_id: str
) -> Schedule:
    """One schedule of the caller's workflow (404 otherwise)."""
    workflow = await _workflow(session, principal, workflow_id)
    return await _schedule(session, workflow, schedule_id)


async def update_schedule(
    session: AsyncSession,
    *,
    engine: Engine,
    principal: Principal,
    workflow_id: str,
    schedule_id: str,
    changes: dict[str, Any],
) -> Schedule:
    """Apply ``changes`` (the fields sent) and re-arm the next firing."""
    workflow = await _workflow(session, principal, workflow_id)
    schedule = await _schedule(session, workflow, schedule_id)
    check_schedule(
        cron=changes.get("cron") or schedule.cron,
        timezone=changes.get("timezone") or schedule.timezone,
    )
    if "inputs" in changes and changes["inputs"] is not None:
        check_inputs(workflow=workflow, inputs=changes["inputs"])
    await _disarm(session, schedule)
    for name, value in changes.items():
        if value is not None:
            setattr(schedule, name, value)
    schedule.updated_at = utcnow()
    await arm(session, engine=engine, schedule=schedule)
    await session.flush()
    return schedule


async def delete_schedule(
    session: AsyncSession, *, principal: Principal, workflow_id: str, schedule_id: str
) -> None:
    """Remove a schedule and its pending firing."""
    workflow = await _workflow(session, principal, workflow_id)
    schedule = await _schedule(session, workflow, schedule_id)
    await _disarm(session, schedule)
    await session.delete(schedule)


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


async def create_trigger(
    session: AsyncSession, *, fernet: Fernet, principal: Principal, workflow_id: str, name: str
) -> tuple[Trigger, str]:
    """A new trigger of the caller's workflow, and its secret in clear (shown once)."""
    workflow = await _workflow(session, principal, workflow_id)
    secret = new_secret()
    trigger = Trigger(
        tenant_id=principal.tenant_id,
        workflow_id=workflow.id,
        name=name,
        secret=seal(fernet, secret),
        enabled=True,
        created_by=principal.user_id,
    )
    session.add(trigger)
    await session.flush()
    return trigger, secret


async def list_triggers(
    session: AsyncSession, *, principal: Principal, workflow_id: str
) -> list[Trigger]:
    """Every trigger of the caller's workflow, oldest first."""
    workflow = await _workflow(session, principal, workflow_id)
    return await repository.triggers_of(session, workflow_id=workflow.id)


async def delete_trigger(
    session: AsyncSession, *, principal: Principal, workflow_id: str, trigger_id: str
) -> None:
    """Remove a trigger: its URL stops working."""
    workflow = await _workflow(session, principal, workflow_id)
    trigger = await repository.get_trigger(session, trigger_id=trigger_id)
    if trigger is None or trigger.workflow_id != workflow.id:
        raise TriggerNotFound(f"trigger '{trigger_id}' not found")
    await session.delete(trigger)


async def webhook_trigger(session: AsyncSession, *, trigger_id: str, path: str) -> Trigger:
    """The enabled trigger called at ``path`` (404 otherwise)."""
    trigger = await repository.get_trigger(session, trigger_id=trigger_id)
    if trigger is None or not trigger.enabled:
        raise TriggerNotFound(f"no webhook at {path}")
    return trigger


def accept_call(
    trigger: Trigger, *, fernet: Fernet, headers: Any, body: bytes
) -> tuple[str, dict[str, Any]]:
    """The webhook id and the inputs of a signed call (401 or 400 otherwise)."""
    secret = unseal(fernet, trigger.secret)
    webhook_id = verify(secret, headers=headers, body=body)
    try:
        inputs = json.loads(body) if body else {}
    except ValueError:
        raise BadRequest("the body must be JSON") from None
    except RecursionError:  # a body sent without a JSON content type skips the depth guard
        raise BadRequest("the body is JSON nested too deeply") from None
    if not isinstance(inputs, dict):
        raise BadRequest("the body must be a JSON object (the workflow's inputs)")
    trigger.last_called_at = utcnow()
    return webhook_id, inputs


async def run_trigger(
    session: AsyncSession, *, engine: Engine, trigger: Trigger, inputs: dict[str, Any]
) -> dict[str, Any]:
    """Start the trigger's workflow as its creator; the new execution."""
    caller = Principal(subject=trigger.created_by or trigger.id, tenant_id=trigger.tenant_id)
    execution = await executions.start_execution(
        session,
        engine=engine,
        principal=caller,
        workflow_id=trigger.workflow_id,
        inputs=inputs,
    )
    return await executions.execution_dict(session, execution)
