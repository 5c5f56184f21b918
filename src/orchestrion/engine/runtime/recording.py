"""Recording: what one attempt produced becomes the step's result, a retry, or a wait.

Results are inserted under a unique key (execution, step, iteration), so a step
completes once whatever races happen; model usage is added to the ledger once per
attempt (and journal part) and to the execution's total in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from orchestrion.engine.context import backoff_seconds
from orchestrion.engine.definition import RetryPolicy, StepDefinition
from orchestrion.engine.events import IterationSucceeded, RetryScheduled, StepFailed, StepSucceeded
from orchestrion.engine.metrics import Metered
from orchestrion.engine.models import Execution, LlmUsage
from orchestrion.engine.outcomes import Failed, ModelUsage, Outcome, Succeeded, Waiting
from orchestrion.engine.runtime.core import NO_ITERATION, TransitionCore
from orchestrion.engine.runtime.limits import output_refusal
from orchestrion.engine.statuses import StepStatus, TaskKind
from orchestrion.kernel.ids import new_id, utcnow

USAGE_KEYS = ("input_tokens", "output_tokens", "cost_usd")


def add_usage(total: Mapping[str, Any] | None, more: Mapping[str, Any]) -> dict[str, Any]:
    """``{"input_tokens", "output_tokens", "cost_usd"}`` of ``total`` plus ``more`` (a new dict)."""
    total = total or {}
    return {
        **total,
        "input_tokens": int(total.get("input_tokens", 0)) + round(more.get("input_tokens", 0)),
        "output_tokens": int(total.get("output_tokens", 0)) + round(more.get("output_tokens", 0)),
        "cost_usd": round(float(total.get("cost_usd", 0.0)) + float(more.get("cost_usd", 0.0)), 9),
    }


class Recording(TransitionCore):
    """Applying outcomes: successes, failures and retries, usage."""

    async def record(
        self, step: StepDefinition, index: int | None, attempt: int, outcome: Outcome
    ) -> None:
        """Apply what one attempt produced (a result that cannot be stored fails the step)."""
        if isinstance(outcome, Succeeded | Failed) and outcome.usage:
            await self.record_usage(step.id, index, attempt, outcome.usage)
        outcome = self.storable(outcome)
        if isinstance(outcome, Succeeded):
            if index is None:
                await self.succeed_step(step, outcome.output, attempt=attempt)
            else:
                await self._iteration_succeeded(step, index, attempt, outcome.output)
        elif isinstance(outcome, Failed):
            await self.fail_step(step, index, outcome, attempt)
        else:
            await self.wait(step, index, attempt, outcome)

    def storable(self, outcome: Outcome) -> Outcome:
        """``outcome``, or the non-retryable failure its result becomes when it cannot be
        stored: not JSON, or over ``max_output_bytes`` (retrying would give it again)."""
        limits = self.parts.limits
        if isinstance(outcome, Succeeded):
            refusal = output_refusal(limits, outcome.output)
            if refusal is not None:
                return Failed(refusal, retryable=False, usage=outcome.usage)
        elif isinstance(outcome, Failed) and outcome.details is not None:
            if output_refusal(limits, outcome.details, what="the error's details") is not None:
                return Failed(
                    outcome.message[:2000],
                    outcome.retryable,
                    {"dropped": "the details could not be stored"},
                    outcome.usage,
                )
        elif isinstance(outcome, Waiting):
            refusal = output_refusal(limits, outcome.data, what="the wait's data")
            if refusal is not None:
                return Failed(refusal, retryable=False)
        if isinstance(outcome, Failed) and len(outcome.message) > 4000:
            # Messages are stored with the error and in the log; keep their head.
            return Failed(
                outcome.message[:4000] + "...", outcome.retryable, outcome.details, outcome.usage
            )
        return outcome

    async def keep_late(
        self, step: StepDefinition, index: int | None, attempt: int, outcome: Outcome
    ) -> None:
        """An attempt ended after its execution failed or stopped: count what it spent,
        and keep a success, unannounced, so that a retry reuses it instead of paying again."""
        if isinstance(outcome, Succeeded | Failed) and outcome.usage:
            await self.record_usage(step.id, index, attempt, outcome.usage)
        outcome = self.storable(outcome)
        if isinstance(outcome, Succeeded):
            await self.insert_result(
                step.id,
                index,
                status=StepStatus.SUCCEEDED,
                attempt=attempt,
                output=outcome.output,
                error=None,
            )

    async def record_usage(
        self,
        step_id: str,
        index: int | None,
        attempt: int,
        usage: tuple[ModelUsage, ...],
        *,
        part: int = -1,
    ) -> None:
        """Add an attempt's (or journal part's) model usage to the ledger and totals, once."""
        merged: dict[tuple[str, str], list[Any]] = {}
        for entry in usage:
            row = merged.setdefault((entry.provider, entry.model), [0, 0, 0.0, False])
            row[0] += entry.input_tokens
            row[1] += entry.output_tokens
            row[2] += entry.cost_usd
            row[3] = row[3] or entry.estimated
        root = self.execution
        for _ in range(16):  # sub-workflows nest at most a few levels deep
            if root.parent_execution_id is None:
                break
            parent = await self.session.get(Execution, root.parent_execution_id)
            if parent is None:
                break
            root = parent
        dialect = postgresql if self.parts.postgres else sqlite
        added = [0, 0, 0.0]
        for (provider, model), (input_tokens, output_tokens, cost, estimated) in merged.items():
            stmt = (
                dialect.insert(LlmUsage)
                .values(
                    id=new_id(),
                    tenant_id=self.execution.tenant_id,
                    workflow_id=self.execution.workflow_id,
                    execution_id=self.execution.id,
                    root_execution_id=root.id,
                    step_id=step_id,
                    iteration=NO_ITERATION if index is None else index,
                    attempt=attempt,
                    part=part,
                    provider=provider,
                    model=model,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    cost_usd=round(cost, 9),
                    estimated=estimated,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing()
            )
            result = await self.session.execute(stmt)
            if getattr(result, "rowcount", 0):
                added = [added[0] + input_tokens, added[1] + output_tokens, added[2] + cost]
                self.metered.append(Metered(provider, model, input_tokens, output_tokens, cost))
        if added != [0, 0, 0.0]:
            self.execution.usage = add_usage(
                self.execution.usage,
                {"input_tokens": added[0], "output_tokens": added[1], "cost_usd": added[2]},
            )

    async def succeed_step(self, step: StepDefinition, output: Any, *, attempt: int) -> None:
        """Mark a step succeeded (once)."""
        if not await self.insert_result(
            step.id, None, status=StepStatus.SUCCEEDED, attempt=attempt, output=output, error=None
        ):
            return
        state = self.states[step.id]
        state.status = StepStatus.SUCCEEDED
        state.output = output
        state.error = None
        state.attempts = max(state.attempts, attempt)
        state.finished_at = utcnow()
        state.completed_seq = self.emit(
            StepSucceeded(step_id=step.id, output=output, attempt=attempt)
        )

    async def _iteration_succeeded(
        self, step: StepDefinition, index: int, attempt: int, output: Any
    ) -> None:
        if not await self.insert_result(
            step.id, index, status=StepStatus.SUCCEEDED, attempt=attempt, output=output, error=None
        ):
            return
        self.emit(IterationSucceeded(step_id=step.id, index=index, output=output))
        state = self.states[step.id]
        if state.status not in (StepStatus.RUNNING, StepStatus.WAITING):
            return
        results = await self.results(step.id)
        done = {r.iteration for r in results if r.status == StepStatus.SUCCEEDED}
        items = state.items or []
        if len(done) == len(items):
            ordered = {r.iteration: r.output for r in results}
            output = [ordered[i] for i in range(len(items))]
            refusal = output_refusal(self.parts.limits, output, what="the iterations' outputs")
            if refusal is not None:
                await self.fail_step(step, None, Failed(refusal, retryable=False), 1)
                return
            await self.succeed_step(step, output, attempt=1)
            return
        state.status = StepStatus.RUNNING
        await self.launch_iterations(step, done=done)

    async def fail_step(
        self, step: StepDefinition, index: int | None, failure: Failed, attempt: int
    ) -> None:
        """Retry under the step's policy, or fail the step (and with it the execution)."""
        policy = step.retry or RetryPolicy()
        state = self.states[step.id]
        error: dict[str, Any] = {"message": failure.message}
        if failure.details is not None:
            error["details"] = failure.details
        if failure.retryable and attempt < policy.max_attempts:
            wait = backoff_seconds(
                attempt=attempt,
                backoff=policy.backoff,
                delay=policy.delay,
                max_delay=policy.max_delay,
            )
            retry_at = utcnow() + timedelta(seconds=wait)
            state.attempts = max(state.attempts, attempt)
            self.emit(
                RetryScheduled(
                    step_id=step.id, index=index, attempt=attempt, error=error, retry_in=wait
                )
            )
            await self.enqueue(
                TaskKind.RUN, step.id, index=index, attempt=attempt + 1, run_at=retry_at
            )
            return
        if not await self.insert_result(
            step.id, index, status=StepStatus.FAILED, attempt=attempt, output=None, error=error
        ):
            return
        state.status = StepStatus.FAILED
        state.error = error if index is None else {**error, "index": index}
        state.attempts = max(state.attempts, attempt)
        state.finished_at = utcnow()
        self.emit(StepFailed(step_id=step.id, index=index, attempt=attempt, error=error))
