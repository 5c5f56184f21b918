"""Subscriptions, fed by the workflows service's public event stream.

``GET /api/v1/executions/{id}/stream`` (Server-Sent Events) is what a REST client
watches: it follows the execution across worker processes and gateway instances
(the service reads its own log, whoever appended to it), and ends after the terminal
event. A subscription is that stream, as the caller, turned into GraphQL results.
"""

# Strawberry's decorators called with arguments are untyped to mypy without its plugin.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import strawberry

from orchestrion.gateway.graphql.calls import Calls
from orchestrion.gateway.graphql.context import Info
from orchestrion.gateway.graphql.types import ExecutionEvent, WorkflowStatus

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


def _status(execution: dict[str, Any]) -> WorkflowStatus:
    return WorkflowStatus(
        execution_id=execution["id"],
        status=execution["status"],
        outputs=execution.get("outputs"),
        error=execution.get("error"),
    )


async def status_changes(calls: Calls, execution_id: str) -> AsyncGenerator[WorkflowStatus, None]:
    """The current status at once, then every change; ends after a terminal one."""
    path = f"/api/v1/executions/{execution_id}"
    # The log's position first, then the status: the stream after that position
    # replays whatever happened in between, so no change falls in the gap.
    log = await calls.get(f"{path}/events", {"limit": 1})
    after = int(log["meta"]["last_seq"])
    current = await calls.get(path)
    yield _status(current)
    if current["status"] in TERMINAL:
        return
    async for event in calls.events(f"{path}/stream", {"after": after}):
        if not str(event.get("type", "")).startswith("execution."):
            continue  # a step's progress leaves the execution's status as it was
        now = await calls.get(path)
        if (now["status"], now.get("outputs"), now.get("error")) != (
            current["status"], current.get("outputs"), current.get("error"),
        ):  # fmt: skip
            current = now
            yield _status(now)
        if now["status"] in TERMINAL:
            return
    # The stream ended (terminal event seen): report the final state if not yet done.
    final = await calls.get(path)
    if final["status"] != current["status"]:
        yield _status(final)


@strawberry.type
class Subscription:
    """Live views of an execution (WebSocket, ``graphql-transport-ws``)."""

    @strawberry.subscription(
        description="The execution's status now, then each change; completes after the "
        "terminal status (at once when it had already finished)."
    )
    async def workflow_status(
        self, info: Info, id: strawberry.ID
    ) -> AsyncGenerator[WorkflowStatus, None]:
        async for status in status_changes(info.context.calls, str(id)):
            yield status

    @strawberry.subscription(
        description="The execution's log from the start, then live; completes after the "
        "terminal event."
    )
    async def execution_events(
        self, info: Info, id: strawberry.ID, after: int = 0
    ) -> AsyncGenerator[ExecutionEvent, None]:
        stream = info.context.calls.events(
            f"/api/v1/executions/{id}/stream", {"after": max(0, after)}
        )
        async for event in stream:
            if "seq" in event:
                yield ExecutionEvent.from_rest(event)
