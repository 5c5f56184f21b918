"""Prometheus metrics of workflow execution, counted from committed transitions only.

A transition's events are counted when its transaction commits (the tracker calls
:func:`observe`), never when they are emitted: a rolled-back transition, or a result
another worker recorded first, counts nothing. Labels are closed sets (statuses, step
types, configured models), never ids, so that the number of series stays bounded;
per-workflow figures are the analytics service's (``/api/v1/analytics``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

if TYPE_CHECKING:
    from orchestrion.engine.runtime.core import TransitionCore

EXECUTIONS_STARTED = Counter(
    "orchestrion_executions_started_total",
    "Executions that started running (at creation, or when a concurrency slot freed up).",
)
EXECUTIONS_FINISHED = Counter(
    "orchestrion_executions_finished_total",
    "Executions that ended, by status (succeeded, failed, cancelled).",
    ["status"],
)
STEP_DURATION = Histogram(
    "orchestrion_step_duration_seconds",
    "Time from a step's start to its outcome (its retries included), by step type and "
    "status (succeeded, failed).",
    ["type", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
LLM_TOKENS = Counter(
    "orchestrion_llm_tokens_total",
    "Model tokens recorded in the usage ledger, by provider, model and direction (input, output).",
    ["provider", "model", "direction"],
)
LLM_COST = Counter(
    "orchestrion_llm_cost_usd_total",
    "Cost in US dollars of the model calls recorded in the usage ledger, by provider and model.",
    ["provider", "model"],
)

_FINISHED = {
    "execution.succeeded": "succeeded",
    "execution.failed": "failed",
    "execution.cancelled": "cancelled",
}
_STEP_OUTCOMES = {"step.succeeded": "succeeded", "step.failed": "failed"}


@dataclass(frozen=True)
class Metered:
    """Model usage a transition added to the ledger (counted once it commits)."""

    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float


def observe(transition: TransitionCore) -> None:
    """Count a committed transition's events and the model usage it recorded."""
    for entry in transition.events:
        kind = entry["type"]
        if kind == "execution.started":
            EXECUTIONS_STARTED.inc()
        elif kind in _FINISHED:
            EXECUTIONS_FINISHED.labels(_FINISHED[kind]).inc()
        elif kind in _STEP_OUTCOMES and entry["step_id"] is not None:
            _step_duration(transition, entry["step_id"], _STEP_OUTCOMES[kind])
    count_usage(transition.metered)
    transition.metered.clear()


def count_usage(usage: Iterable[Metered]) -> None:
    """Add recorded model usage to the token and cost counters."""
    for item in usage:
        LLM_TOKENS.labels(item.provider, item.model, "input").inc(item.input_tokens)
        LLM_TOKENS.labels(item.provider, item.model, "output").inc(item.output_tokens)
        LLM_COST.labels(item.provider, item.model).inc(item.cost_usd)


def _step_duration(transition: TransitionCore, step_id: str, status: str) -> None:
    state = transition.states.get(step_id)
    if state is None or state.started_at is None or state.finished_at is None:
        return
    try:
        step_type = transition.step(step_id).type
    except KeyError:
        return
    seconds = (_aware(state.finished_at) - _aware(state.started_at)).total_seconds()
    STEP_DURATION.labels(step_type, status).observe(max(0.0, seconds))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
