"""HTTP routes of executions: start, read, watch and control."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse

from orchestrion.engine import TERMINAL, Engine
from orchestrion.kernel import audit
from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import BadRequest
from orchestrion.kernel.http.deps import CurrentPrincipal, Internal, Session
from orchestrion.kernel.http.etag import resource_response
from orchestrion.kernel.http.idempotency import run_idempotent
from orchestrion.kernel.http.lists import (
    ListPage,
    list_body,
    list_parameters,
    parse_list_query,
    query_int,
)
from orchestrion.services.workflows.executions import service
from orchestrion.services.workflows.executions.schemas import (
    START_LIMITS,
    Approval,
    EventPage,
    ExecutionRead,
    ExecutionStart,
    RealtimeLog,
    SignalBody,
    SignalRead,
)
from orchestrion.services.workflows.responses import EventStream, not_modified, problems

router = APIRouter(tags=["executions"])
MAX_WAIT_SECONDS = 300.0
MAX_PER_WORKFLOW = 100
_EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The log as Server-Sent Events: `id:` is the event's `seq`, `event:` its "
        "`type`, `data:` the event as JSON (an `EventRead`); `event: token` frames carry "
        "LLM tokens (`{step_id, text, index?}`, no `id:`); `: keep-alive` comments every 15 s "
        "of quiet. Ends after the terminal event.",
        "content": {
            "text/event-stream": {
                # One event, as an EventSource client reads it.
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "event": {"type": "string"},
                        "data": {"type": "string"},
                    },
                    "required": ["data"],
                },
                "example": 'id: 1\nevent: execution.started\ndata: {"seq":1,'
                '"type":"execution.started","step_id":null,"data":{},'
                '"at":"2025-01-01T00:00:00Z"}\n\n',
            }
        },
    }
}


def _parameter(name: str, description: str, schema: dict[str, Any], where: str = "query") -> Any:
    return {
        "name": name,
        "in": where,
        "required": False,
        "description": description,
        "schema": schema,
    }


# Read from the request by the routes themselves (a malformed value is a 400, not a 422).
_WAIT = {
    "parameters": [
        _parameter(
            "wait",
            "Seconds to wait for the execution to finish before answering 202",
            {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS},
        )
    ]
}
_WINDOW = {
    "parameters": [
        _parameter("after", "Events with `seq` above this one", {"type": "integer", "minimum": 0}),
        _parameter(
            "until",
            "Events up to this `seq`, and the state then",
            {"type": "integer", "minimum": 1},
        ),
        _parameter(
            "limit",
            f"Events per page (at most {service.MAX_EVENTS_PAGE} are returned)",
            {"type": "integer", "minimum": 1},
        ),
    ]
}
_RESUME = {
    "parameters": [
        _parameter("after", "Resume after this `seq`", {"type": "integer", "minimum": 0}),
        _parameter(
            "Last-Event-ID",
            "Resume after this `seq` (what an EventSource sends on reconnecting)",
            {"type": "integer", "minimum": 0},
            "header",
        ),
    ]
}


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _wait_seconds(request: Request) -> float:
    raw = request.query_params.get("wait")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_WAIT_SECONDS:
        raise BadRequest(
            f"'wait' must be a number of seconds between 0 and {MAX_WAIT_SECONDS:g}",
            errors=[{"loc": ["query", "wait"], "msg": "out of range"}],
        )
    return value


@router.post(
    "/api/v1/workflows/{workflow_id}/executions",
    status_code=202,
    response_model=ExecutionRead,
    responses={
        200: {"description": "Finished within `wait` seconds", "model": ExecutionRead},
        **problems(400, 401, 403, 404, 409, 422),
        **START_LIMITS,
    },
    openapi_extra=_WAIT,
    summary="Start an execution",
)
async def start_execution(
    workflow_id: str,
    request: Request,
    principal: CurrentPrincipal,
    body: Annotated[ExecutionStart | None, Body()] = None,
) -> Response:
    """202 with the new execution; with `?wait=N`, 200 once it finished within N seconds."""
    principal.require(Permission.EXECUTIONS_RUN)
    start = body or ExecutionStart()
    wait = _wait_seconds(request)
    engine = _engine(request)
    database: Database = request.app.state.database
    # Committed before waiting: the workers must see the execution to run it.
    async with database.session() as session:

        async def produce() -> tuple[int, Any]:
            execution = await service.start_execution(
                session,
                engine=engine,
                principal=principal,
                workflow_id=workflow_id,
                inputs=start.inputs,
                priority=start.priority,
            )
            _audit(session, request, principal, "execution.started", execution.id, workflow_id)
            return 202, await service.execution_dict(session, execution)

        response = await run_idempotent(
            session,
            request=request,
            scope=service.start_scope(principal, workflow_id),
            payload=start.model_dump(mode="json"),
            produce=produce,
        )
    created = json.loads(bytes(response.body))
    headers = {"Location": f"/api/v1/executions/{created['id']}"}
    if wait <= 0 or created["status"] in TERMINAL:
        response.headers.update(headers)
        if created["status"] in TERMINAL and response.status_code == 202:
            return JSONResponse(created, status_code=200, headers=headers)
        return response
    now = await service.wait_for_end(
        database,
        engine=engine,
        tenant_id=principal.tenant_id,
        execution_id=created["id"],
        seconds=wait,
    )
    status = 200 if now["status"] in TERMINAL else 202
    return JSONResponse(now, status_code=status, headers=headers)


def _list_extra() -> dict[str, Any]:
    extra = list_parameters(service.EXECUTION_LIST)
    for parameter in extra["parameters"]:
        if parameter["name"] == "workflow_id":
            parameter["description"] = "Only executions of this workflow, or of these "
            "(comma-separated ids, at most 100)"
    extra["parameters"].append(
        _parameter(
            "per_workflow",
            "The first N executions of each workflow (of those `workflow_id` lists) in the "
            "sort order, for 100 workflows at most, in one answer that `page` and `cursor` "
            "do not apply to; `meta.total` counts every match",
            {"type": "integer", "minimum": 1, "maximum": MAX_PER_WORKFLOW},
        )
    )
    return extra


@router.get(
    "/api/v1/executions",
    response_model=ListPage[ExecutionRead],
    openapi_extra=_list_extra(),
    responses=problems(400, 401, 403),
    summary="List executions",
)
async def list_executions(
    request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Executions of the caller's tenant; filters `workflow_id` (one or several), `status`."""
    principal.require(Permission.EXECUTIONS_READ)
    raw = request.query_params.get("per_workflow")
    per_workflow = None
    listed = request
    if raw is not None:
        per_workflow = query_int(raw, "per_workflow", default=1)
        if per_workflow > MAX_PER_WORKFLOW:
            raise BadRequest(
                f"'per_workflow' must be at most {MAX_PER_WORKFLOW}",
                errors=[{"loc": ["query", "per_workflow"], "msg": "too large"}],
            )
        # The list conventions refuse parameters they do not know: read without it.
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "per_workflow"]
        listed = Request({**request.scope, "query_string": urlencode(kept).encode()})
    query = parse_list_query(listed, service.EXECUTION_LIST)
    page = await service.list_executions(
        session, tenant_id=principal.tenant_id, query=query, per_workflow=per_workflow
    )
    states = await service.step_states(session, execution_ids=[e.id for e in page.rows])
    items = [service.to_dict(e, states.get(e.id, [])) for e in page.rows]
    body = list_body(request, items, query, page)
    if per_workflow is not None:
        body["meta"]["limit"] = per_workflow
        body["links"]["next"] = None  # one answer: there is no next page
    return JSONResponse(body)


@router.get(
    "/api/v1/executions/{execution_id}",
    response_model=ExecutionRead,
    responses={**not_modified(), **problems(401, 403, 404)},
    summary="Get an execution",
)
async def get_execution(
    execution_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Status, inputs, outputs, error, steps and usage (with an ETag)."""
    principal.require(Permission.EXECUTIONS_READ)
    execution = await service.get_execution(
        session, tenant_id=principal.tenant_id, execution_id=execution_id
    )
    return resource_response(request, await service.execution_dict(session, execution))


@router.get(
    "/api/v1/executions/{execution_id}/events",
    response_model=EventPage,
    openapi_extra=_WINDOW,
    responses=problems(400, 401, 403, 404),
    summary="An execution's event log",
)
async def list_events(
    execution_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Events with `seq > after` (and `<= until`); `until` also returns the state then."""
    principal.require(Permission.EXECUTIONS_READ)
    execution = await service.get_execution(
        session, tenant_id=principal.tenant_id, execution_id=execution_id
    )
    after, until, limit = service.event_window(request.query_params)
    rows = await service.events(
        session, execution_id=execution_id, after=after, until=until, limit=limit
    )
    data = [service.event_to_dict(e) for e in rows]
    last = data[-1]["seq"] if data else after
    more = len(data) == limit and last < (until or execution.last_seq)
    body: dict[str, Any] = {
        "data": data,
        "meta": {"after": after, "limit": limit, "last_seq": execution.last_seq},
        "links": {
            "self": str(request.url),
            "next": str(request.url.include_query_params(after=last)) if more else None,
        },
    }
    if until is not None:
        body["state"] = await service.state_at(session, execution=execution, until=until)
    return JSONResponse(body)


@router.get(
    "/api/v1/executions/{execution_id}/stream",
    response_class=EventStream,
    responses={**_EVENT_STREAM, **problems(400, 401, 403, 404)},
    openapi_extra=_RESUME,
    summary="Watch an execution (Server-Sent Events)",
)
async def stream_events(
    execution_id: str, request: Request, principal: CurrentPrincipal
) -> EventStream:
    """`text/event-stream` of the log (`id:` is `seq`), resuming after `Last-Event-ID`."""
    principal.require(Permission.EXECUTIONS_READ)
    database: Database = request.app.state.database
    async with database.session() as session:
        await service.get_execution(
            session, tenant_id=principal.tenant_id, execution_id=execution_id
        )
    raw_after = request.headers.get("last-event-id") or request.query_params.get("after", "0")
    try:
        after = max(0, int(raw_after))
    except ValueError:
        raise BadRequest("Last-Event-ID must be an event seq (an integer)") from None
    frames = service.event_stream(
        database,
        engine=_engine(request),
        execution_id=execution_id,
        after=after,
        is_disconnected=request.is_disconnected,
    )
    return EventStream(frames, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _control(
    request: Request, session: Session, principal: CurrentPrincipal, execution_id: str, action: str
) -> Response:
    principal.require(Permission.EXECUTIONS_RUN)
    body = await service.control(
        session,
        engine=_engine(request),
        principal=principal,
        execution_id=execution_id,
        action=action,
    )
    _audit(session, request, principal, f"execution.{_DONE[action]}", execution_id, None)
    return JSONResponse(body)


_DONE = {"cancel": "cancelled", "pause": "paused", "resume": "resumed", "retry": "retried"}


def _audit(
    session: Session,
    request: Request,
    principal: Principal,
    action: str,
    execution_id: str,
    workflow_id: str | None,
    **data: Any,
) -> None:
    audit.record_request(
        session,
        request,
        principal,
        action=action,
        resource_type="execution",
        resource_id=execution_id,
        data={"workflow_id": workflow_id, **data} if workflow_id else data,
    )


_CONTROL_ERRORS = problems(401, 403, 404, 409)


@router.post(
    "/api/v1/executions/{execution_id}/cancel",
    response_model=ExecutionRead,
    responses=_CONTROL_ERRORS,
    summary="Cancel an execution",
)
async def cancel(
    execution_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Stop it; running steps are interrupted and nothing new starts."""
    return await _control(request, session, principal, execution_id, "cancel")


@router.post(
    "/api/v1/executions/{execution_id}/pause",
    response_model=ExecutionRead,
    responses=_CONTROL_ERRORS,
    summary="Pause an execution",
)
async def pause(
    execution_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """No new step starts until it is resumed; running ones finish."""
    return await _control(request, session, principal, execution_id, "pause")


@router.post(
    "/api/v1/executions/{execution_id}/resume",
    response_model=ExecutionRead,
    responses=_CONTROL_ERRORS,
    summary="Resume a paused execution",
)
async def resume(
    execution_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Continue where it was paused."""
    return await _control(request, session, principal, execution_id, "resume")


@router.post(
    "/api/v1/executions/{execution_id}/retry",
    response_model=ExecutionRead,
    responses={**_CONTROL_ERRORS, 429: START_LIMITS[429]},
    summary="Retry a failed execution",
)
async def retry(
    execution_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Run again from the failed steps; completed steps are reused, not re-run."""
    return await _control(request, session, principal, execution_id, "retry")


@router.post(
    "/api/v1/executions/{execution_id}/steps/{step_id}/approve",
    response_model=ExecutionRead,
    responses={**problems(401, 403, 404, 409, 422), 413: START_LIMITS[413]},
    summary="Approve or reject a step",
)
async def approve(
    execution_id: str,
    step_id: str,
    body: Approval,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
) -> Response:
    """Decide a waiting `approval` step; `data` must match the step's `schema`."""
    principal.require(Permission.EXECUTIONS_RUN)
    execution = await service.approve(
        session,
        engine=_engine(request),
        principal=principal,
        execution_id=execution_id,
        step_id=step_id,
        approved=body.approved,
        data=body.data,
        index=body.index,
    )
    _audit(
        session,
        request,
        principal,
        "execution.approved" if body.approved else "execution.rejected",
        execution_id,
        None,
        step_id=step_id,
    )
    return JSONResponse(execution)


@router.post(
    "/api/v1/executions/{execution_id}/signal",
    response_model=SignalRead,
    responses={**problems(401, 403, 404, 409, 422), 413: START_LIMITS[413]},
    summary="Send an event to an execution",
)
async def signal(
    execution_id: str,
    body: SignalBody,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
) -> Response:
    """Resume a `wait_for_event` step waiting for `event`, or keep it for one that will."""
    principal.require(Permission.EXECUTIONS_RUN)
    delivered = await service.signal(
        session,
        engine=_engine(request),
        principal=principal,
        execution_id=execution_id,
        event=body.event,
        data=body.data,
    )
    return JSONResponse({"delivered": delivered, "event": body.event})


@router.get(
    "/internal/workflows/executions/{execution_id}/events",
    response_model=RealtimeLog,
    responses=problems(400, 404),
    include_in_schema=False,
)
async def internal_events(
    execution_id: str, request: Request, session: Session, _internal: Internal
) -> Response:
    """For the realtime service: the log after `after`, with the owning tenant."""
    body = await service.log_for_realtime(
        session, execution_id=execution_id, params=request.query_params
    )
    return JSONResponse(body)
