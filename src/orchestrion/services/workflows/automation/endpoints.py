"""HTTP routes of schedules and webhook triggers."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from orchestrion.engine import Engine
from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.http.deps import CurrentPrincipal, Session
from orchestrion.kernel.http.etag import resource_response
from orchestrion.kernel.http.idempotency import run_idempotent
from orchestrion.services.workflows.automation import service
from orchestrion.services.workflows.automation.schemas import (
    ScheduleCreate,
    ScheduleRead,
    ScheduleUpdate,
    TriggerCreate,
    TriggerCreated,
    TriggerRead,
)
from orchestrion.services.workflows.executions.schemas import START_LIMITS, ExecutionRead
from orchestrion.services.workflows.responses import Items, not_modified, problems

router = APIRouter(tags=["automation"])
WORKFLOW = "/api/v1/workflows/{workflow_id}"


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _can(principal: CurrentPrincipal, *, write: bool) -> None:
    principal.require(Permission.WORKFLOWS_WRITE if write else Permission.WORKFLOWS_READ)


# --- schedules ---------------------------------------------------------------------


@router.post(
    f"{WORKFLOW}/schedules",
    status_code=201,
    response_model=ScheduleRead,
    responses=problems(401, 403, 404, 422),
    summary="Schedule a workflow",
)
async def create_schedule(
    workflow_id: str,
    body: ScheduleCreate,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
) -> Response:
    """Run the workflow at every time matching `cron` in `timezone`."""
    _can(principal, write=True)
    schedule = await service.create_schedule(
        session,
        engine=_engine(request),
        principal=principal,
        workflow_id=workflow_id,
        cron=body.cron,
        timezone=body.timezone,
        inputs=body.inputs,
        enabled=body.enabled,
    )
    return JSONResponse(service.schedule_to_dict(schedule), status_code=201)


@router.get(
    f"{WORKFLOW}/schedules",
    response_model=Items[ScheduleRead],
    responses=problems(401, 403, 404),
    summary="A workflow's schedules",
)
async def list_schedules(
    workflow_id: str, session: Session, principal: CurrentPrincipal
) -> Response:
    """Every schedule of the workflow, oldest first."""
    _can(principal, write=False)
    schedules = await service.list_schedules(session, principal=principal, workflow_id=workflow_id)
    return JSONResponse({"data": [service.schedule_to_dict(s) for s in schedules]})


@router.get(
    f"{WORKFLOW}/schedules/{{schedule_id}}",
    response_model=ScheduleRead,
    responses={**not_modified(), **problems(401, 403, 404)},
    summary="Get a schedule",
)
async def get_schedule(
    workflow_id: str,
    schedule_id: str,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
) -> Response:
    """One schedule with its next and last run."""
    _can(principal, write=False)
    schedule = await service.get_schedule(
        session, principal=principal, workflow_id=workflow_id, schedule_id=schedule_id
    )
    return resource_response(request, service.schedule_to_dict(schedule))


@router.patch(
    f"{WORKFLOW}/schedules/{{schedule_id}}",
    response_model=ScheduleRead,
    responses=problems(401, 403, 404, 422),
    summary="Change a schedule",
)
async def update_schedule(
    workflow_id: str,
    schedule_id: str,
    body: ScheduleUpdate,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
) -> Response:
    """New cron, time zone, inputs or enabled flag; the next run is recomputed."""
    _can(principal, write=True)
    schedule = await service.update_schedule(
        session,
        engine=_engine(request),
        principal=principal,
        workflow_id=workflow_id,
        schedule_id=schedule_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return JSONResponse(service.schedule_to_dict(schedule))


@router.delete(
    f"{WORKFLOW}/schedules/{{schedule_id}}",
    status_code=204,
    response_class=Response,
    responses=problems(401, 403, 404),
    summary="Delete a schedule",
)
async def delete_schedule(
    workflow_id: str, schedule_id: str, session: Session, principal: CurrentPrincipal
) -> Response:
    """No further runs."""
    _can(principal, write=True)
    await service.delete_schedule(
        session, principal=principal, workflow_id=workflow_id, schedule_id=schedule_id
    )
    return Response(status_code=204)


# --- webhook triggers --------------------------------------------------------------


@router.post(
    f"{WORKFLOW}/triggers",
    status_code=201,
    response_model=TriggerCreated,
    responses=problems(401, 403, 404, 422),
    summary="Create a webhook trigger",
)
async def create_trigger(
    workflow_id: str,
    body: TriggerCreate,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
) -> Response:
    """A URL that starts the workflow; `secret` signs calls and is shown only now."""
    _can(principal, write=True)
    trigger, secret = await service.create_trigger(
        session,
        fernet=request.app.state.fernet,
        principal=principal,
        workflow_id=workflow_id,
        name=body.name,
    )
    return JSONResponse({**service.trigger_to_dict(trigger), "secret": secret}, status_code=201)


@router.get(
    f"{WORKFLOW}/triggers",
    response_model=Items[TriggerRead],
    responses=problems(401, 403, 404),
    summary="A workflow's webhook triggers",
)
async def list_triggers(
    workflow_id: str, session: Session, principal: CurrentPrincipal
) -> Response:
    """Every trigger of the workflow (secrets are never shown again)."""
    _can(principal, write=False)
    triggers = await service.list_triggers(session, principal=principal, workflow_id=workflow_id)
    return JSONResponse({"data": [service.trigger_to_dict(t) for t in triggers]})


@router.delete(
    f"{WORKFLOW}/triggers/{{trigger_id}}",
    status_code=204,
    response_class=Response,
    responses=problems(401, 403, 404),
    summary="Delete a webhook trigger",
)
async def delete_trigger(
    workflow_id: str, trigger_id: str, session: Session, principal: CurrentPrincipal
) -> Response:
    """The URL stops working."""
    _can(principal, write=True)
    await service.delete_trigger(
        session, principal=principal, workflow_id=workflow_id, trigger_id=trigger_id
    )
    return Response(status_code=204)


@router.post(
    "/api/v1/hooks/{trigger_id}",
    status_code=202,
    response_model=ExecutionRead,
    responses={**problems(400, 401, 404, 409, 422), **START_LIMITS},
    summary="Call a webhook trigger",
)
async def call_trigger(trigger_id: str, request: Request, session: Session) -> Response:
    """Start the trigger's workflow with the JSON body as inputs (signed; no token needed)."""
    trigger = await service.webhook_trigger(session, trigger_id=trigger_id, path=request.url.path)
    webhook_id, inputs = service.accept_call(
        trigger, fernet=request.app.state.fernet, headers=request.headers, body=await request.body()
    )

    async def produce() -> tuple[int, Any]:
        execution = await service.run_trigger(
            session, engine=_engine(request), trigger=trigger, inputs=inputs
        )
        return 202, execution

    response = await run_idempotent(
        session,
        request=request,
        scope=f"hook:{trigger.id}",
        payload=inputs,
        produce=produce,
        key=webhook_id,
    )
    return JSONResponse(json.loads(bytes(response.body)), status_code=response.status_code)
