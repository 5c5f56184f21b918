"""HTTP routes of schedules and webhook triggers."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select

from orchestrion.engine.runtime import Engine
from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.errors import BadRequest
from orchestrion.kernel.http.deps import CurrentPrincipal, Session
from orchestrion.kernel.http.etag import resource_response
from orchestrion.kernel.http.idempotency import run_idempotent
from orchestrion.kernel.ids import isoformat, utcnow
from orchestrion.kernel.queue.models import Task
from orchestrion.services.workflows import automation
from orchestrion.services.workflows.definitions import service
from orchestrion.services.workflows.definitions.models import Workflow
from orchestrion.services.workflows.executions import service as execution_service
from orchestrion.services.workflows.models import Schedule, Trigger

router = APIRouter(tags=["automation"])
WORKFLOW = "/api/v1/workflows/{workflow_id}"


class ScheduleCreate(BaseModel):
    """A cron schedule; ``inputs`` are checked against the workflow's schema."""

    model_config = ConfigDict(extra="forbid")
    cron: str = Field(min_length=1, max_length=200, examples=["*/15 * * * *"])
    timezone: str = Field(default="UTC", max_length=64, examples=["Europe/Berlin"])
    inputs: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class ScheduleUpdate(BaseModel):
    """Changes to a schedule; absent fields stay."""

    model_config = ConfigDict(extra="forbid")
    cron: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    inputs: dict[str, Any] | None = None
    enabled: bool | None = None


class TriggerCreate(BaseModel):
    """A webhook trigger."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def _workflow(
    session: Session, principal: Principal, workflow_id: str, *, write: bool
) -> Workflow:
    principal.require(Permission.WORKFLOWS_WRITE if write else Permission.WORKFLOWS_READ)
    return await service.get_workflow(session, principal=principal, workflow_id=workflow_id)


async def _schedule(session: Session, workflow: Workflow, schedule_id: str) -> Schedule:
    schedule = await session.get(Schedule, schedule_id)
    if schedule is None or schedule.workflow_id != workflow.id:
        raise automation.ScheduleNotFound(f"schedule '{schedule_id}' not found")
    return schedule


async def _disarm(session: Session, schedule: Schedule) -> None:
    if schedule.next_run_at is not None:
        key = f"schedule:{schedule.id}:{isoformat(schedule.next_run_at)}"
        await session.execute(delete(Task).where(Task.key == key))


# --- schedules ---------------------------------------------------------------------


@router.post(f"{WORKFLOW}/schedules", status_code=201, summary="Schedule a workflow")
async def create_schedule(
    workflow_id: str,
    body: ScheduleCreate,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    """Run the workflow at every time matching `cron` in `timezone`."""
    workflow = await _workflow(session, principal, workflow_id, write=True)
    automation.check_schedule(body.cron, body.timezone)
    automation.check_inputs(workflow, body.inputs)
    schedule = Schedule(
        tenant_id=principal.tenant_id,
        workflow_id=workflow.id,
        cron=body.cron,
        timezone=body.timezone,
        inputs=body.inputs,
        enabled=body.enabled,
        created_by=principal.user_id,
    )
    session.add(schedule)
    await session.flush()
    await automation.arm(session, _engine(request), schedule)
    await session.flush()
    return automation.schedule_to_dict(schedule)


@router.get(f"{WORKFLOW}/schedules", summary="A workflow's schedules")
async def list_schedules(
    workflow_id: str, session: Session, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Every schedule of the workflow, oldest first."""
    workflow = await _workflow(session, principal, workflow_id, write=False)
    rows = await session.execute(
        select(Schedule).where(Schedule.workflow_id == workflow.id).order_by(Schedule.created_at)
    )
    return {"data": [automation.schedule_to_dict(s) for s in rows.scalars()]}


@router.get(f"{WORKFLOW}/schedules/{{schedule_id}}", summary="Get a schedule")
async def get_schedule(
    workflow_id: str,
    schedule_id: str,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
) -> Response:
    """One schedule with its next and last run."""
    workflow = await _workflow(session, principal, workflow_id, write=False)
    schedule = await _schedule(session, workflow, schedule_id)
    return resource_response(request, automation.schedule_to_dict(schedule))


@router.patch(f"{WORKFLOW}/schedules/{{schedule_id}}", summary="Change a schedule")
async def update_schedule(
    workflow_id: str,
    schedule_id: str,
    body: ScheduleUpdate,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    """New cron, time zone, inputs or enabled flag; the next run is recomputed."""
    workflow = await _workflow(session, principal, workflow_id, write=True)
    schedule = await _schedule(session, workflow, schedule_id)
    changes = body.model_dump(exclude_unset=True)
    automation.check_schedule(
        changes.get("cron") or schedule.cron, changes.get("timezone") or schedule.timezone
    )
    if "inputs" in changes and changes["inputs"] is not None:
        automation.check_inputs(workflow, changes["inputs"])
    await _disarm(session, schedule)
    for name, value in changes.items():
        if value is not None:
            setattr(schedule, name, value)
    schedule.updated_at = utcnow()
    await automation.arm(session, _engine(request), schedule)
    await session.flush()
    return automation.schedule_to_dict(schedule)


@router.delete(
    f"{WORKFLOW}/schedules/{{schedule_id}}", status_code=204, summary="Delete a schedule"
)
async def delete_schedule(
    workflow_id: str, schedule_id: str, session: Session, principal: CurrentPrincipal
) -> Response:
    """No further runs."""
    workflow = await _workflow(session, principal, workflow_id, write=True)
    schedule = await _schedule(session, workflow, schedule_id)
    await _disarm(session, schedule)
    await session.delete(schedule)
    return Response(status_code=204)


# --- webhook triggers --------------------------------------------------------------


@router.post(f"{WORKFLOW}/triggers", status_code=201, summary="Create a webhook trigger")
async def create_trigger(
    workflow_id: str,
    body: TriggerCreate,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    """A URL that starts the workflow; `secret` signs calls and is shown only now."""
    workflow = await _workflow(session, principal, workflow_id, write=True)
    secret = automation.new_secret()
    trigger = Trigger(
        tenant_id=principal.tenant_id,
        workflow_id=workflow.id,
        name=body.name,
        secret=automation.seal(request.app.state.fernet, secret),
        enabled=True,
        created_by=principal.user_id,
    )
    session.add(trigger)
    await session.flush()
    return {**automation.trigger_to_dict(trigger), "secret": secret}


@router.get(f"{WORKFLOW}/triggers", summary="A workflow's webhook triggers")
async def list_triggers(
    workflow_id: str, session: Session, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Every trigger of the workflow (secrets are never shown again)."""
    workflow = await _workflow(session, principal, workflow_id, write=False)
    rows = await session.execute(
        select(Trigger).where(Trigger.workflow_id == workflow.id).order_by(Trigger.created_at)
    )
    return {"data": [automation.trigger_to_dict(t) for t in rows.scalars()]}


@router.delete(
    f"{WORKFLOW}/triggers/{{trigger_id}}", status_code=204, summary="Delete a webhook trigger"
)
async def delete_trigger(
    workflow_id: str, trigger_id: str, session: Session, principal: CurrentPrincipal
) -> Response:
    """The URL stops working."""
    workflow = await _workflow(session, principal, workflow_id, write=True)
    trigger = await session.get(Trigger, trigger_id)
    if trigger is None or trigger.workflow_id != workflow.id:
        raise automation.TriggerNotFound(f"trigger '{trigger_id}' not found")
    await session.delete(trigger)
    return Response(status_code=204)


@router.post("/api/v1/hooks/{trigger_id}", status_code=202, summary="Call a webhook trigger")
async def call_trigger(trigger_id: str, request: Request, session: Session) -> Response:
    """Start the trigger's workflow with the JSON body as inputs (signed; no token needed)."""
    trigger = await session.get(Trigger, trigger_id)
    if trigger is None or not trigger.enabled:
        raise automation.TriggerNotFound(f"no webhook at {request.url.path}")
    body = await request.body()
    secret = automation.unseal(request.app.state.fernet, trigger.secret)
    webhook_id = automation.verify(secret, headers=request.headers, body=body)
    try:
        inputs = json.loads(body) if body else {}
    except ValueError:
        raise BadRequest("the body must be JSON") from None
    if not isinstance(inputs, dict):
        raise BadRequest("the body must be a JSON object (the workflow's inputs)")
    trigger.last_called_at = utcnow()
    caller = Principal(subject=trigger.created_by or trigger.id, tenant_id=trigger.tenant_id)

    async def produce() -> tuple[int, Any]:
        execution = await execution_service.start_execution(
            session,
            engine=_engine(request),
            principal=caller,
            workflow_id=trigger.workflow_id,
            inputs=inputs,
        )
        return 202, await execution_service.execution_dict(session, execution)

    response = await run_idempotent(
        session,
        request=request,
        scope=f"hook:{trigger.id}",
        payload=inputs,
        produce=produce,
        key=webhook_id,
    )
    return JSONResponse(json.loads(bytes(response.body)), status_code=response.status_code)
