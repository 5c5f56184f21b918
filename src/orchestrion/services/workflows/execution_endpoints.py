"""HTTP routes of executions: start, read, watch and control."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from orchestrion.engine import TERMINAL, Engine
from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import BadRequest
from orchestrion.kernel.http.deps import CurrentPrincipal, Internal, Session
from orchestrion.kernel.http.etag import resource_response
from orchestrion.kernel.http.idempotency import run_idempotent
from orchestrion.kernel.http.lists import fetch_page, list_body, parse_list_query
from orchestrion.services.workflows import executions as service
from orchestrion.services.workflows.llm_backend import platform_llm

router = APIRouter(tags=["executions"])
MAX_WAIT_SECONDS = 300.0
_KEEPALIVE_SECONDS = 15.0


class ExecutionStart(BaseModel):
    """Inputs for a new execution (checked against the workflow's ``inputs`` schema)."""

    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(default=0, ge=-100, le=100)


class Approval(BaseModel):
    """A decision on an ``approval`` step; ``index`` picks a ``for_each`` iteration."""

    model_config = ConfigDict(extra="forbid")
    approved: bool
    data: dict[str, Any] = Field(default_factory=dict)
    index: int | None = Field(default=None, ge=0)


class SignalBody(BaseModel):
    """An event for ``wait_for_event`` steps."""

    model_config = ConfigDict(extra="forbid")
    event: str = Field(min_length=1, max_length=200)
    data: Any = None


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _wait_seconds(request: Request) -> float:
    raw = request.query_params.get("wait")
    if raw is None or raw == "":
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
    summary="Start an execution",
    responses={200: {"description": "Finished within `wait` seconds"}},
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
            return 202, await service.execution_dict(session, execution)

        response = await run_idempotent(
            session,
            request=request,
            scope=f"{principal.tenant_id}:{principal.subject}:POST:/api/v1/workflows/{workflow_id}/executions",
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
    deadline = time.monotonic() + wait
    while True:
        async with database.session() as session:
            execution = await service.get_execution(
                session, tenant_id=principal.tenant_id, execution_id=created["id"]
            )
            if execution.status in TERMINAL or time.monotonic() >= deadline:
                body_now = await service.execution_dict(session, execution)
                status = 200 if execution.status in TERMINAL else 202
                return JSONResponse(body_now, status_code=status, headers=headers)
        remaining = deadline - time.monotonic()
        await engine.wait_for_change(created["id"], min(0.25, max(0.0, remaining)))


@router.get("/api/v1/executions", summary="List executions")
async def list_executions(
    request: Request, session: Session, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Executions of the caller's tenant; filters `workflow_id`, `status`."""
    principal.require(Permission.EXECUTIONS_READ)
    query = parse_list_query(request, service.EXECUTION_LIST)
    page = await fetch_page(
        session, service.executions_of(principal.tenant_id), service.EXECUTION_LIST, query
    )
    states = await service.step_states(session, [e.id for e in page.rows])
    items = [service.to_dict(e, states.get(e.id, [])) for e in page.rows]
    return list_body(request, items, query, page)


@router.get("/api/v1/executions/{execution_id}", summary="Get an execution")
async def get_execution(
    execution_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Status, inputs, outputs, error, steps and usage (with an ETag)."""
    principal.require(Permission.EXECUTIONS_READ)
    execution = await service.get_execution(
        session, tenant_id=principal.tenant_id, execution_id=execution_id
    )
    return resource_response(request, await service.execution_dict(session, execution))


@router.get("/api/v1/executions/{execution_id}/events", summary="An execution's event log")
async def list_events(
    execution_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> dict[str, Any]:
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
    return body


@router.get(
    "/api/v1/executions/{execution_id}/stream",
    summary="Watch an execution (Server-Sent Events)",
    response_class=StreamingResponse,
)
async def stream_events(
    execution_id: str, request: Request, principal: CurrentPrincipal
) -> StreamingResponse:
    """`text/event-stream` of the log (`id:` is `seq`), resuming after `Last-Event-ID`."""
    principal.require(Permission.EXECUTIONS_READ)
    database: Database = request.app.state.database
    engine = _engine(request)
    async with database.session() as session:
        await service.get_execution(
            session, tenant_id=principal.tenant_id, execution_id=execution_id
        )
    raw_after = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    try:
        after = max(0, int(raw_after))
    except ValueError:
        raise BadRequest("Last-Event-ID must be an event seq (an integer)") from None

    hub = platform_llm(engine).hub
    tokens = hub.watch(execution_id)

    async def frames() -> AsyncIterator[bytes]:
        try:
            async for frame in _frames():
                yield frame
        finally:
            hub.unwatch(execution_id, tokens)

    async def _frames() -> AsyncIterator[bytes]:
        last, quiet_since = after, time.monotonic()
        while True:
            # Tokens first: those queued now were produced before any event read next.
            while not tokens.empty():
                token = json.dumps(tokens.get_nowait(), separators=(",", ":"))
                yield f"event: token\ndata: {token}\n\n".encode()
            async with database.session() as session:
                rows = await service.events(
                    session, execution_id=execution_id, after=last, until=None, limit=500
                )
            for row in rows:
                event = service.event_to_dict(row)
                last = event["seq"]
                payload = json.dumps(event, separators=(",", ":"))
                yield f"id: {last}\nevent: {event['type']}\ndata: {payload}\n\n".encode()
                if event["type"] in (
                    "execution.succeeded",
                    "execution.failed",
                    "execution.cancelled",
                ):
                    return
            if rows:
                quiet_since = time.monotonic()
                continue
            if time.monotonic() - quiet_since > _KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
            if await request.is_disconnected():
                return
            if tokens.empty():
                await _changed_or_token(engine, execution_id, tokens)

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _changed_or_token(engine: Engine, execution_id: str, tokens: asyncio.Queue[Any]) -> None:
    """Sleep until the execution changes, a token arrives, or a second passes."""
    waiter = asyncio.ensure_future(tokens.get())
    changed = asyncio.ensure_future(engine.wait_for_change(execution_id, 1.0))
    try:
        done, _ = await asyncio.wait({waiter, changed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (changed, waiter):
            pending.cancel()
    if waiter in done and not waiter.cancelled():
        # Put it back in front: the frames loop drains the queue in order.
        token = waiter.result()
        rest = [tokens.get_nowait() for _ in range(tokens.qsize())]
        for item in (token, *rest):
            tokens.put_nowait(item)


async def _control(
    request: Request, session: Session, principal: CurrentPrincipal, execution_id: str, action: str
) -> Response:
    principal.require(Permission.EXECUTIONS_RUN)
    await service.get_execution(session, tenant_id=principal.tenant_id, execution_id=execution_id)
    engine = _engine(request)
    operation = getattr(engine, action)
    await operation(session, execution_id=execution_id, by=principal.user_id)
    execution = await service.get_execution(
        session, tenant_id=principal.tenant_id, execution_id=execution_id
    )
    return JSONResponse(await service.execution_dict(session, execution))


@router.post("/api/v1/executions/{execution_id}/cancel", summary="Cancel an execution")
async def cancel(
    execution_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Stop it; running steps are interrupted and nothing new starts."""
    return await _control(request, session, principal, execution_id, "cancel")


@router.post("/api/v1/executions/{execution_id}/pause", summary="Pause an execution")
async def pause(
    execution_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """No new step starts until it is resumed; running ones finish."""
    return await _control(request, session, principal, execution_id, "pause")


@router.post("/api/v1/executions/{execution_id}/resume", summary="Resume a paused execution")
async def resume(
    execution_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Continue where it was paused."""
    return await _control(request, session, principal, execution_id, "resume")


@router.post("/api/v1/executions/{execution_id}/retry", summary="Retry a failed execution")
async def retry(
    execution_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Run again from the failed steps; completed steps are reused, not re-run."""
    return await _control(request, session, principal, execution_id, "retry")


@router.post(
    "/api/v1/executions/{execution_id}/steps/{step_id}/approve", summary="Approve or reject a step"
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
    await service.get_execution(session, tenant_id=principal.tenant_id, execution_id=execution_id)
    await _engine(request).approve(
        session,
        execution_id=execution_id,
        step_id=step_id,
        approved=body.approved,
        data=body.data,
        by=principal.email or principal.user_id,
        index=body.index,
    )
    execution = await service.get_execution(
        session, tenant_id=principal.tenant_id, execution_id=execution_id
    )
    return JSONResponse(await service.execution_dict(session, execution))


@router.post("/api/v1/executions/{execution_id}/signal", summary="Send an event to an execution")
async def signal(
    execution_id: str,
    body: SignalBody,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    """Resume a `wait_for_event` step waiting for `event`, or keep it for one that will."""
    principal.require(Permission.EXECUTIONS_RUN)
    await service.get_execution(session, tenant_id=principal.tenant_id, execution_id=execution_id)
    delivered = await _engine(request).signal(
        session, execution_id=execution_id, name=body.event, data=body.data
    )
    return {"delivered": delivered, "event": body.event}


@router.get("/internal/workflows/executions/{execution_id}/events", include_in_schema=False)
async def internal_events(
    execution_id: str, request: Request, session: Session, _internal: Internal
) -> dict[str, Any]:
    """For the realtime service: the log after `after`, with the owning tenant."""
    from orchestrion.engine import Execution

    execution = await session.get(Execution, execution_id)
    if execution is None:
        from orchestrion.services.workflows.errors import ExecutionNotFound

        raise ExecutionNotFound(f"execution '{execution_id}' not found")
    after, _, limit = service.event_window(request.query_params)
    rows = await service.events(
        session, execution_id=execution_id, after=after, until=None, limit=limit
    )
    return {
        "tenant_id": execution.tenant_id,
        "workflow_id": execution.workflow_id,
        "status": execution.status,
        "data": [service.event_to_dict(e) for e in rows],
    }
