"""Rules of executions: starting them from a workflow, reading, watching and steering
them, their event log.

The engine (``orchestrion.engine``) does the running; this module ties it to the
workflows service's tenancy and shapes what the API returns.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine import TERMINAL, Engine, Execution, ExecutionEvent, StepState, fold
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import Conflict
from orchestrion.kernel.http.lists import ListQuery, Page, query_int
from orchestrion.kernel.ids import isoformat
from orchestrion.kernel.observability import tracing
from orchestrion.services.workflows.definitions import service as definitions
from orchestrion.services.workflows.errors import ExecutionNotFound, WorkflowNotFound
from orchestrion.services.workflows.executions import repository
from orchestrion.services.workflows.llm.backend import platform_llm

#: What ``GET /api/v1/executions`` may sort, filter and select.
EXECUTION_LIST = repository.EXECUTION_LIST
MAX_EVENTS_PAGE = 1000
MAX_SEQ = 2**31 - 1
#: The log's last event is one of these.
TERMINAL_EVENTS = frozenset({"execution.succeeded", "execution.failed", "execution.cancelled"})
_KEEPALIVE_SECONDS = 15.0
#: How long a follower sleeps without hearing of a change: changes committed by other
#: processes (workers, other instances) are only seen by reading the log again.
_POLL_SECONDS = 1.0


async def resolve_workflow(
    session: AsyncSession, tenant_id: str, workflow_id: str
) -> tuple[int, dict[str, Any]] | None:
    """The current version and runnable definition of a tenant's workflow."""
    workflow = await definitions.find_workflow(
        session, tenant_id=tenant_id, workflow_id=workflow_id
    )
    if workflow is None:
        return None
    return workflow.version, {"name": workflow.name, **workflow.definition}


def start_scope(principal: Principal, workflow_id: str) -> str:
    """The idempotency scope of starting ``workflow_id``: REST and gRPC share it, so
    one key names one execution whichever API was used."""
    return (
        f"{principal.tenant_id}:{principal.subject}:POST:/api/v1/workflows/{workflow_id}/executions"
    )


async def start_execution(
    session: AsyncSession,
    *,
    engine: Engine,
    principal: Principal,
    workflow_id: str,
    inputs: dict[str, Any],
    priority: int = 0,
) -> Execution:
    """Run the workflow's current version with ``inputs`` (422 when they do not fit)."""
    workflow = await definitions.find_workflow(
        session, tenant_id=principal.tenant_id, workflow_id=workflow_id
    )
    if workflow is None:
        raise WorkflowNotFound(f"workflow '{workflow_id}' not found")
    if workflow.status == "archived":
        raise Conflict("archived workflows cannot run; set its status to active first")
    return await engine.start(
        session,
        tenant_id=principal.tenant_id,
        workflow_id=workflow.id,
        version=workflow.version,
        definition={"name": workflow.name, **workflow.definition},
        inputs=inputs,
        created_by=principal.user_id,
        priority=priority,
    )


async def wait_for_end(
    database: Database, *, engine: Engine, tenant_id: str, execution_id: str, seconds: float
) -> dict[str, Any]:
    """The execution once it ended, or as it stands after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        async with database.session() as session:
            execution = await get_execution(session, tenant_id=tenant_id, execution_id=execution_id)
            if execution.status in TERMINAL or time.monotonic() >= deadline:
                return await execution_dict(session, execution)
        remaining = deadline - time.monotonic()
        await engine.wait_for_change(execution_id, min(0.25, max(0.0, remaining)))


async def get_execution(session: AsyncSession, *, tenant_id: str, execution_id: str) -> Execution:
    """An execution of the tenant; another tenant's is a 404."""
    found = await repository.get(session, tenant_id=tenant_id, execution_id=execution_id)
    if found is None:
        raise ExecutionNotFound(f"execution '{execution_id}' not found")
    return found


async def list_executions(
    session: AsyncSession, *, tenant_id: str, query: ListQuery, per_workflow: int | None = None
) -> Page:
    """One page of the tenant's executions; with ``per_workflow``, the first that many of
    each workflow (those ``workflow_id`` names, at most 100), in one answer that ``page``
    and ``cursor`` do not apply to."""
    if per_workflow is None:
        return await repository.page_of(session, tenant_id=tenant_id, query=query)
    return await repository.first_per_workflow(
        session, tenant_id=tenant_id, query=query, per_workflow=per_workflow
    )


async def recent_executions(
    session: AsyncSession, *, tenant_id: str, limit: int
) -> list[Execution]:
    """The tenant's latest executions, newest first."""
    return await repository.recent(session, tenant_id=tenant_id, limit=limit)


async def step_states(
    session: AsyncSession, *, execution_ids: list[str]
) -> dict[str, list[StepState]]:
    """Step states of several executions, by execution id."""
    return await repository.step_states(session, execution_ids=execution_ids)


def to_dict(execution: Execution, states: list[StepState]) -> dict[str, Any]:
    """The API shape of an execution, steps in definition order."""
    order = {step["id"]: i for i, step in enumerate(execution.definition.get("steps", []))}
    steps = sorted(states, key=lambda s: order.get(s.step_id, len(order)))
    return {
        "id": execution.id,
        "workflow_id": execution.workflow_id,
        "workflow_version": execution.workflow_version,
        "status": execution.status,
        "inputs": execution.inputs,
        "outputs": execution.outputs,
        "error": execution.error,
        "steps": [
            {
                "id": s.step_id,
                "status": "pending" if s.status == "queued" else s.status,
                "attempts": s.attempts,
                "output": s.output,
                "error": s.error,
                "started_at": isoformat(s.started_at),
                "finished_at": isoformat(s.finished_at),
            }
            for s in steps
        ],
        "usage": {
            "input_tokens": int(execution.usage.get("input_tokens", 0)),
            "output_tokens": int(execution.usage.get("output_tokens", 0)),
            "cost_usd": float(execution.usage.get("cost_usd", 0.0)),
        },
        "parent_execution_id": execution.parent_execution_id,
        "created_at": isoformat(execution.created_at),
        "started_at": isoformat(execution.started_at),
        "finished_at": isoformat(execution.finished_at),
        "trace_id": tracing.trace_id_of(execution.traceparent),
    }


async def execution_dict(session: AsyncSession, execution: Execution) -> dict[str, Any]:
    """:func:`to_dict` with the step states loaded."""
    states = await step_states(session, execution_ids=[execution.id])
    return to_dict(execution, states.get(execution.id, []))


async def control(
    session: AsyncSession,
    *,
    engine: Engine,
    principal: Principal,
    execution_id: str,
    action: str,
) -> dict[str, Any]:
    """Cancel, pause, resume or retry (``action``) an execution of the caller's tenant."""
    await get_execution(session, tenant_id=principal.tenant_id, execution_id=execution_id)
    operation = getattr(engine, action)
    await operation(session, execution_id=execution_id, by=principal.user_id)
    execution = await get_execution(
        session, tenant_id=principal.tenant_id, execution_id=execution_id
    )
    return await execution_dict(session, execution)


async def approve(
    session: AsyncSession,
    *,
    engine: Engine,
    principal: Principal,
    execution_id: str,
    step_id: str,
    approved: bool,
    data: dict[str, Any],
    index: int | None,
) -> dict[str, Any]:
    """Decide a waiting ``approval`` step; the execution afterwards."""
    await get_execution(session, tenant_id=principal.tenant_id, execution_id=execution_id)
    await engine.approve(
        session,
        execution_id=execution_id,
        step_id=step_id,
        approved=approved,
        data=data,
        by=principal.email or principal.user_id,
        index=index,
    )
    execution = await get_execution(
        session, tenant_id=principal.tenant_id, execution_id=execution_id
    )
    return await execution_dict(session, execution)


async def signal(
    session: AsyncSession,
    *,
    engine: Engine,
    principal: Principal,
    execution_id: str,
    event: str,
    data: Any,
) -> bool:
    """Deliver ``event`` to a waiting step (True), or keep it for one that will (False)."""
    await get_execution(session, tenant_id=principal.tenant_id, execution_id=execution_id)
    return await engine.signal(session, execution_id=execution_id, name=event, data=data)


def event_to_dict(event: ExecutionEvent) -> dict[str, Any]:
    """The API shape of a log entry."""
    return {
        "seq": event.seq,
        "type": event.type,
        "step_id": event.step_id,
        "data": event.data,
        "at": isoformat(event.at),
    }


def event_window(params: Any) -> tuple[int, int | None, int]:
    """``after``, ``until`` and ``limit`` from a query string (400 when malformed)."""
    after = query_int(params.get("after"), "after", default=0, minimum=0)
    raw_until = params.get("until")
    until = query_int(raw_until, "until", default=1) if raw_until is not None else None
    limit = query_int(params.get("limit"), "limit", default=100)
    # seq is a 32-bit column: a larger bound means "past every event", not an error.
    after = min(after, MAX_SEQ)
    until = None if until is None else min(until, MAX_SEQ)
    return after, until, min(limit, MAX_EVENTS_PAGE)


async def events(
    session: AsyncSession, *, execution_id: str, after: int, until: int | None, limit: int
) -> list[ExecutionEvent]:
    """Log entries with ``after < seq <= until``, oldest first."""
    return await repository.events(
        session, execution_id=execution_id, after=after, until=until, limit=limit
    )


async def state_at(session: AsyncSession, *, execution: Execution, until: int) -> dict[str, Any]:
    """The execution as it was at ``seq == until``, folded from the log."""
    rows = await repository.events_until(session, execution_id=execution.id, until=until)
    step_ids = [step["id"] for step in execution.definition.get("steps", [])]
    return fold((event_to_dict(e) for e in rows), step_ids)


async def log_for_realtime(
    session: AsyncSession, *, execution_id: str, params: Any
) -> dict[str, Any]:
    """The log after ``params["after"]`` with the owning tenant, whatever the tenant."""
    execution = await repository.get_any(session, execution_id=execution_id)
    if execution is None:
        raise ExecutionNotFound(f"execution '{execution_id}' not found")
    after, _, limit = event_window(params)
    rows = await events(session, execution_id=execution_id, after=after, until=None, limit=limit)
    return {
        "tenant_id": execution.tenant_id,
        "workflow_id": execution.workflow_id,
        "status": execution.status,
        "data": [event_to_dict(e) for e in rows],
    }


async def follow_events(
    database: Database, *, engine: Engine, execution_id: str, after: int = 0
) -> AsyncIterator[ExecutionEvent]:
    """The log after ``after`` as it grows, ending with the terminal event.

    The same source as :func:`event_stream`: the log, read again whenever this process
    commits a change to the execution and at least every second for the changes of
    other processes. It never ends on its own before the terminal event: the caller
    stops iterating (a client gone, a deadline passed).
    """
    last = after
    while True:
        async with database.session() as session:
            rows = await events(
                session, execution_id=execution_id, after=last, until=None, limit=500
            )
        for row in rows:
            last = row.seq
            yield row
            if row.type in TERMINAL_EVENTS:
                return
        if not rows:
            await engine.wait_for_change(execution_id, _POLL_SECONDS)


def event_stream(
    database: Database,
    *,
    engine: Engine,
    execution_id: str,
    after: int,
    is_disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[bytes]:
    """Server-Sent Events of the log after ``after`` (``id:`` is ``seq``) and LLM tokens.

    Tokens are watched from this call on, before the first frame is asked for. The
    stream ends after the terminal event or when the client goes away.
    """
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
                rows = await events(
                    session, execution_id=execution_id, after=last, until=None, limit=500
                )
            for row in rows:
                event = event_to_dict(row)
                last = event["seq"]
                payload = json.dumps(event, separators=(",", ":"))
                yield f"id: {last}\nevent: {event['type']}\ndata: {payload}\n\n".encode()
                if event["type"] in TERMINAL_EVENTS:
                    return
            if rows:
                quiet_since = time.monotonic()
                continue
            if time.monotonic() - quiet_since > _KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
            if await is_disconnected():
                return
            if tokens.empty():
                await _changed_or_token(engine, execution_id, tokens)

    return frames()


async def _changed_or_token(engine: Engine, execution_id: str, tokens: asyncio.Queue[Any]) -> None:
    """Sleep until the execution changes, a token arrives, or a second passes."""
    waiter = asyncio.ensure_future(tokens.get())
    changed = asyncio.ensure_future(engine.wait_for_change(execution_id, _POLL_SECONDS))
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
