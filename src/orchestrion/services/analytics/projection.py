"""One execution event applied to the projections, exactly once.

The workflows service publishes every entry of an execution's log on the bus topic
``workflows.executions`` as a CloudEvent ``orchestrion.<type>`` whose data is
``{"tenant_id", "execution_id", "workflow_id", "event": {"seq", "type", "step_id",
"data", "at"}}`` (``engine/runtime/core.py``); the same entries are what
``GET /api/v1/executions/{id}/events`` answers, which is how a rebuild replays them.

An event is identified by ``(execution_id, seq)``, not by its CloudEvent id: the bus's
redeliveries, a producer's repeats and a rebuild's replay of the same entry all carry
the same pair, so each entry counts once whichever way it came. The execution's row
records which ``seq`` were applied; the row and the aggregates change in one
transaction, so a crash between the two cannot happen.

What counts (``docs/analytics.md`` says more):

- an execution counts in the hour it started; its status is the one set by the entry
  with the highest ``seq`` (so a failed execution retried to success moves from
  ``failed`` to ``succeeded``); its duration is from its first entry to the terminal one;
- ``steps.total`` counts ``step.succeeded`` and ``step.failed`` entries,
  ``steps.failed`` the latter;
- model usage comes from step outputs shaped like an ``llm`` step's
  (``{"model", "usage": {"input_tokens", "output_tokens", "cost_usd"}}``) in
  ``step.succeeded`` and ``step.iteration_succeeded`` entries: no event carries the
  usage of an attempt that failed, so that spend is not in these figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.services.analytics import repository
from orchestrion.services.analytics.digest import bin_of
from orchestrion.services.analytics.models import (
    ID_LENGTH,
    MODEL_LENGTH,
    AnalyticsBucket,
    AnalyticsDurationBin,
    AnalyticsExecution,
    AnalyticsModelUsage,
)

STATUS_OF = {
    "execution.queued": "pending",
    "execution.started": "running",
    "execution.running": "running",
    "execution.waiting": "waiting",
    "execution.paused": "paused",
    "execution.resumed": "running",
    "execution.retried": "running",
    "execution.succeeded": "succeeded",
    "execution.failed": "failed",
    "execution.cancelled": "cancelled",
}
TERMINAL = frozenset(repository.TERMINAL)
UNKNOWN_MODEL = "unknown"


class LogEntry(BaseModel):
    """One entry of an execution's log (the wire shape of API.md)."""

    model_config = ConfigDict(extra="ignore")

    seq: int = Field(ge=1)
    type: str = Field(min_length=1, max_length=100)
    step_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    at: datetime


class ExecutionEvent(BaseModel):
    """The data of an ``orchestrion.<type>`` CloudEvent of the workflows service."""

    model_config = ConfigDict(extra="ignore")

    tenant_id: str = Field(min_length=1, max_length=ID_LENGTH)
    execution_id: str = Field(min_length=1, max_length=ID_LENGTH)
    workflow_id: str = Field(min_length=1, max_length=ID_LENGTH)
    event: LogEntry


def hour_of(moment: datetime) -> datetime:
    """The start of ``moment``'s hour."""
    return moment.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Contribution:
    """What one execution adds to the aggregates."""

    tenant_id: str
    workflow_id: str
    bucket_at: datetime | None
    status: str
    duration_ms: float | None
    steps_total: int
    steps_failed: int
    models: Mapping[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, row: AnalyticsExecution) -> Contribution:
        """The contribution of ``row`` as it is now."""
        return cls(
            tenant_id=row.tenant_id,
            workflow_id=row.workflow_id,
            bucket_at=row.bucket_at,
            status=row.status,
            duration_ms=row.duration_ms if row.status in TERMINAL else None,
            steps_total=row.steps_total,
            steps_failed=row.steps_failed,
            models={k: list(v) for k, v in (row.models or {}).items()},
        )

    def sums(self, sign: int) -> dict[str, Any]:
        """Its bucket sums, times ``sign``."""
        usage = [0, 0, 0.0]
        for input_tokens, output_tokens, cost, _calls in self.models.values():
            usage = [usage[0] + input_tokens, usage[1] + output_tokens, usage[2] + cost]
        timed = self.duration_ms is not None
        return {
            "executions": sign,
            "succeeded": sign * (self.status == "succeeded"),
            "failed": sign * (self.status == "failed"),
            "cancelled": sign * (self.status == "cancelled"),
            "durations": sign * timed,
            "duration_sum_ms": sign * (self.duration_ms or 0.0),
            "steps_total": sign * self.steps_total,
            "steps_failed": sign * self.steps_failed,
            "input_tokens": sign * usage[0],
            "output_tokens": sign * usage[1],
            "cost_usd": sign * usage[2],
        }


def _usage_of(output: Any) -> tuple[str, int, int, float] | None:
    """``(model, input tokens, output tokens, cost)`` of an ``llm``-shaped step output."""
    if not isinstance(output, dict) or not isinstance(output.get("usage"), dict):
        return None
    usage = output["usage"]
    try:
        input_tokens = int(usage.get("input_tokens") or 0)
        output_tokens = int(usage.get("output_tokens") or 0)
        cost = float(usage.get("cost_usd") or 0.0)
    except (TypeError, ValueError):
        return None
    model = output.get("model")
    name = model[:MODEL_LENGTH] if isinstance(model, str) and model else UNKNOWN_MODEL
    return name, input_tokens, output_tokens, cost


def applied(row: AnalyticsExecution, seq: int) -> bool:
    """Whether the entry ``seq`` of this execution was applied already."""
    return seq <= row.seq_done or seq in (row.seq_extra or [])


def _mark(row: AnalyticsExecution, seq: int) -> None:
    extra = set(row.seq_extra or [])
    extra.add(seq)
    done = row.seq_done
    while done + 1 in extra:
        done += 1
        extra.discard(done)
    row.seq_done = done
    row.seq_extra = sorted(extra)


def apply_entry(row: AnalyticsExecution, entry: LogEntry) -> None:
    """Change ``row`` by one log entry (not yet applied)."""
    at = entry.at
    if row.started_at is None or at < row.started_at:
        row.started_at = at
        row.bucket_at = hour_of(at)
    status = STATUS_OF.get(entry.type)
    if status is not None and entry.seq > row.status_seq:
        row.status = status
        row.status_seq = entry.seq
        row.finished_at = at if status in TERMINAL else None
    if entry.type in ("step.succeeded", "step.failed"):
        row.steps_total += 1
        row.steps_failed += entry.type == "step.failed"
    if entry.type in ("step.succeeded", "step.iteration_succeeded"):
        usage = _usage_of(entry.data.get("output"))
        if usage is not None:
            name, input_tokens, output_tokens, cost = usage
            models = {k: list(v) for k, v in (row.models or {}).items()}
            totals = models.get(name, [0, 0, 0.0, 0])
            models[name] = [
                totals[0] + input_tokens,
                totals[1] + output_tokens,
                round(totals[2] + cost, 9),
                totals[3] + 1,
            ]
            row.models = models
    if row.status in TERMINAL and row.finished_at is not None and row.started_at is not None:
        row.duration_ms = round((row.finished_at - row.started_at).total_seconds() * 1000, 3)
    else:
        row.duration_ms = None
    _mark(row, entry.seq)


_KEY = ("tenant_id", "workflow_id", "bucket_at")


@dataclass
class Deltas:
    """Changes to the aggregates, summed over any number of executions before writing."""

    totals: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    bins: dict[tuple[Any, ...], int] = field(default_factory=dict)
    models: dict[tuple[Any, ...], list[Any]] = field(default_factory=dict)

    def move(self, before: Contribution, after: Contribution) -> None:
        """Take ``before`` out of the aggregates and put ``after`` in."""
        for side, sign in ((before, -1), (after, 1)):
            if side.bucket_at is None:
                continue  # not counted yet
            key = (side.tenant_id, side.workflow_id, side.bucket_at)
            into = self.totals.setdefault(key, dict.fromkeys(repository.BUCKET_SUMS, 0))
            for name, value in side.sums(sign).items():
                into[name] += value
            if side.duration_ms is not None:
                bin_key = (*key, bin_of(side.duration_ms))
                self.bins[bin_key] = self.bins.get(bin_key, 0) + sign
            for model, (input_tokens, output_tokens, cost, calls) in side.models.items():
                row = self.models.setdefault((*key, model), [0, 0, 0.0, 0])
                row[0] += sign * input_tokens
                row[1] += sign * output_tokens
                row[2] += sign * cost
                row[3] += sign * calls

    async def write(self, session: AsyncSession) -> None:
        """One upsert per aggregate row that changed, in key order (two projectors
        writing the same rows lock them in the same order: no deadlock)."""
        for where, values in sorted(self.totals.items(), key=_by_key):
            if any(values.values()):
                key = dict(zip(_KEY, where, strict=True))
                await repository.add_to(session, AnalyticsBucket, key, values)
        for where, count in sorted(self.bins.items(), key=_by_key):
            if count:
                at = dict(zip((*_KEY, "bin"), where, strict=True))
                await repository.add_to(session, AnalyticsDurationBin, at, {"count": count})
        for where, (tokens_in, tokens_out, cost, calls) in sorted(self.models.items(), key=_by_key):
            if tokens_in or tokens_out or cost or calls:
                at = dict(zip((*_KEY, "model"), where, strict=True))
                sums = {
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                    "cost_usd": cost,
                    "calls": calls,
                }
                await repository.add_to(session, AnalyticsModelUsage, at, sums)


def _by_key(item: tuple[tuple[Any, ...], Any]) -> tuple[str, ...]:
    return tuple(str(part) for part in item[0])


@dataclass(frozen=True)
class Outcome:
    """What applying an entry did."""

    applied: bool
    #: Whether a finished execution's figures changed (SLOs are worth evaluating).
    finished_changed: bool = False


async def project(session: AsyncSession, event: ExecutionEvent) -> Outcome:
    """Apply one log entry to the projections, unless it was applied before."""
    return (await project_many(session, [event]))[0]


async def project_many(session: AsyncSession, events: Sequence[ExecutionEvent]) -> list[Outcome]:
    """Apply log entries (of any executions, in any order) in ``session``'s transaction;
    the outcome of each, in the order given.

    Each execution's row is read and locked once, its new entries applied in ``seq``
    order, and the aggregates written once per row they change: a batch costs about
    one statement per execution and per aggregate row, not per entry. An entry given
    twice, or applied before, counts once.
    """
    keys = {e.execution_id: (e.tenant_id, e.workflow_id) for e in events}
    rows = await repository.executions_for_update(session, keys)
    order = sorted(range(len(events)), key=lambda i: (events[i].execution_id, events[i].event.seq))
    done = [False] * len(events)
    befores = {execution_id: Contribution.of(row) for execution_id, row in rows.items()}
    for i in order:
        row = rows[events[i].execution_id]
        if not applied(row, events[i].event.seq):
            apply_entry(row, events[i].event)
            done[i] = True
    deltas = Deltas()
    finished: set[str] = set()
    for execution_id, before in befores.items():
        after = Contribution.of(rows[execution_id])
        if after == before:
            continue
        deltas.move(before, after)
        if (before.status in TERMINAL or after.status in TERMINAL) and (
            before.status != after.status or before.duration_ms != after.duration_ms
        ):
            finished.add(execution_id)
    await deltas.write(session)
    return [
        Outcome(applied=was_applied, finished_changed=was_applied and e.execution_id in finished)
        for e, was_applied in zip(events, done, strict=True)
    ]
