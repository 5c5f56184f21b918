"""``{{ flags.<key> }}`` at run time: each flag evaluated once per execution, outside any
transaction, and recorded in the log so that it never changes for that execution.

A step that reads flags not yet recorded does not start: :func:`flags_pending` queues a
``flags`` task and leaves the step ``queued``. A worker carries it out
(:func:`resolve_flags`): it asks the flags service as the ``flag`` step does (subject
``execution:<id>``, ``flags:read`` in the execution's tenant; no transaction is open
while it waits), then, holding the execution, appends a ``flag.evaluated`` entry per key
not recorded meanwhile (the first answer wins) and starts the step again, its
expressions now seeing ``flags``. The workflow's ``outputs`` go the same way when they
read a flag no step read.

A flag the tenant lacks yields null. A flags service that cannot be reached (or answers
5xx/429) is retried under the step's ``retry`` policy, then fails the step, saying which
flag; any other refusal fails it at once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine.context import backoff_seconds
from orchestrion.engine.definition import RetryPolicy
from orchestrion.engine.events import FlagEvaluated, RetryScheduled
from orchestrion.engine.flags import flag_value
from orchestrion.engine.models import Execution, ExecutionEvent
from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Succeeded
from orchestrion.engine.requirements import SERVICES
from orchestrion.engine.statuses import TERMINAL, ExecutionStatus, StepStatus, TaskKind
from orchestrion.engine.steps.flag import ask, is_missing
from orchestrion.kernel.ids import utcnow
from orchestrion.kernel.queue import ClaimedTask

if TYPE_CHECKING:
    from orchestrion.engine.runtime.core import TransitionCore
    from orchestrion.engine.runtime.parts import EngineParts

#: The ``step_id`` of a flags task for the workflow's outputs.
OUTPUTS = ""


async def recorded_flags(session: AsyncSession, execution_id: str) -> dict[str, Any]:
    """The value of each flag the execution has read (the first record of a key wins)."""
    rows = await session.execute(
        select(ExecutionEvent.data)
        .where(
            ExecutionEvent.execution_id == execution_id,
            ExecutionEvent.type == FlagEvaluated.type,
        )
        .order_by(ExecutionEvent.seq)
    )
    values: dict[str, Any] = {}
    for data in rows.scalars():
        if isinstance(data, dict) and isinstance(data.get("key"), str):
            values.setdefault(data["key"], data.get("value"))
    return values


async def flags_pending(
    transition: TransitionCore, step_id: str | None, keys: frozenset[str]
) -> bool:
    """Whether some of ``keys`` are not recorded yet; if so, a ``flags`` task is queued
    (the step waits ``queued`` for it) and the caller goes no further."""
    missing = sorted(keys - transition.flags.keys())
    if not missing:
        return False
    if step_id is not None:
        transition.states[step_id].status = StepStatus.QUEUED
    await transition.enqueue(TaskKind.FLAGS, step_id or OUTPUTS, attempt=1, extra={"keys": missing})
    return True


def record_answers(
    transition: TransitionCore, step_id: str | None, answers: dict[str, dict[str, Any] | None]
) -> None:
    """Append ``flag.evaluated`` for each answered key not recorded yet (first wins)."""
    for key, answer in answers.items():
        if key in transition.flags:
            continue
        value = flag_value(answer)
        transition.flags[key] = value
        transition.emit(
            FlagEvaluated(
                step_id=step_id,
                key=key,
                value=value,
                enabled=None if answer is None else bool(answer.get("enabled")),
                variant=None if answer is None else answer.get("variant"),
            )
        )


async def _ask_all(
    parts: EngineParts, execution: Execution, step_id: str, keys: list[str], attempt: int
) -> tuple[dict[str, dict[str, Any] | None], Failed | None]:
    """The service's answers (None: no such flag), until the first failure."""
    call = StepCall(
        execution_id=execution.id,
        tenant_id=execution.tenant_id,
        step_id=step_id or "outputs",
        index=None,
        attempt=attempt,
        raw_with={},
        context={},
        resources=parts.resources.only((SERVICES,)),
        declared=(SERVICES,),
    )
    answers: dict[str, dict[str, Any] | None] = {}
    for key in keys:
        outcome: Outcome = await ask(call, key)
        if isinstance(outcome, Succeeded):
            answers[key] = outcome.output
        elif is_missing(outcome):
            answers[key] = None
        else:
            message = outcome.message if isinstance(outcome, Failed) else "no answer"
            retryable = isinstance(outcome, Failed) and outcome.retryable
            status = (outcome.details or {}).get("status") if isinstance(outcome, Failed) else None
            failure = Failed(
                f"flags.{key} could not be evaluated: {message}",
                retryable=retryable,
                details={"key": key, "status": status, "retryable": retryable},
            )
            return answers, failure
    return answers, None


async def resolve_flags(parts: EngineParts, task: ClaimedTask, owner: str) -> None:
    """Carry out a ``flags`` task (see the module's docstring)."""
    from orchestrion.engine.runtime.transition import Transition

    payload = task.payload
    execution_id = str(payload["execution_id"])
    step_id: str = payload.get("step_id") or OUTPUTS
    attempt = int(payload.get("attempt", 1))
    async with parts.database.session() as session:
        execution = await session.get(Execution, execution_id)
        recorded = await recorded_flags(session, execution_id) if execution else {}
    answers: dict[str, dict[str, Any] | None] = {}
    failure: Failed | None = None
    if execution is not None and execution.status not in TERMINAL:
        keys = [k for k in payload.get("keys", []) if k not in recorded]
        answers, failure = await _ask_all(parts, execution, step_id, keys, attempt)
    async with parts.database.session() as session:
        transition = await Transition.open(parts, session, execution_id)
        if not await parts.queue.complete(session, task_id=task.id, owner=owner):
            return  # another worker took it over
        if transition is None or transition.execution.status in TERMINAL:
            return
        record_answers(transition, step_id or None, answers)
        if failure is not None:
            await _failed(transition, step_id, attempt, failure, payload.get("keys", []))
            return
        if step_id != OUTPUTS:
            state = transition.states[step_id]
            if state.status == StepStatus.QUEUED:
                state.status = StepStatus.PENDING
        await transition.advance()


async def _failed(
    transition: TransitionCore, step_id: str, attempt: int, failure: Failed, keys: list[str]
) -> None:
    if step_id == OUTPUTS:
        transition.execution.error = {"message": f"outputs: {failure.message}"}
        await transition.finish(ExecutionStatus.FAILED)
        return
    step = transition.step(step_id)
    policy = step.retry or RetryPolicy()
    if failure.retryable and attempt < policy.max_attempts:
        wait = backoff_seconds(
            attempt=attempt, backoff=policy.backoff, delay=policy.delay, max_delay=policy.max_delay
        )
        error: dict[str, Any] = {"message": failure.message, "details": failure.details}
        transition.emit(
            RetryScheduled(step_id=step_id, index=None, attempt=attempt, error=error, retry_in=wait)
        )
        await transition.enqueue(
            TaskKind.FLAGS,
            step_id,
            attempt=attempt + 1,
            run_at=utcnow() + timedelta(seconds=wait),
            extra={"keys": keys},
        )
        return
    # Final: the step fails with the reason (no attempt of it ran, so none to retry).
    await transition.record(
        step, None, attempt, Failed(failure.message, retryable=False, details=failure.details)
    )
    await transition.advance()
