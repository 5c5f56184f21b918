"""The execution log's entries: one typed record per event type, and the fold over them.

Every transition of an execution is one of these records, appended with a ``seq``
(:meth:`Transition.emit <orchestrion.engine.runtime.core.TransitionCore.emit>`). Each
record says what it does to the statuses it touches (``execution_status``,
``step_status``); :func:`fold` rebuilds an execution's state from its log with those
declarations alone, which is what ``/events?until=`` shows (time-travel debugging).

The wire shape of an entry is ``{"seq", "type", "step_id", "data", "at"}``; ``data`` is
the record's fields but ``step_id``, without the optional ones left unset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from orchestrion.engine.statuses import ExecutionStatus, StepStatus, WaitKind

#: Marks an optional field, left out of ``data`` while it is ``None``.
_OPTIONAL: dict[str, bool] = {"optional": True}


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every log entry type."""

    type: ClassVar[str]
    #: The execution's status once this entry applies (None: unchanged).
    execution_status: ClassVar[ExecutionStatus | None] = None
    #: The step's status once this entry applies (None: unchanged; iterations never
    #: change their step's status but by failing it).
    step_status: ClassVar[StepStatus | None] = None

    step_id: str | None = None

    def data(self) -> dict[str, Any]:
        """The entry's ``data``: every field but ``step_id``, unset optional ones left out."""
        out: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            if item.name == "step_id":
                continue
            value = getattr(self, item.name)
            if value is None and item.metadata.get("optional"):
                continue
            out[item.name] = value
        return out


# --- the execution ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ExecutionQueued(Event):
    """Created, but its workflow's concurrency limit holds it back."""

    type = "execution.queued"
    execution_status = ExecutionStatus.PENDING
    inputs: dict[str, Any]
    workflow_version: int
    concurrency_key: str | None


@dataclass(frozen=True, kw_only=True)
class ExecutionStarted(Event):
    """Started (at creation, or when a concurrency slot freed up)."""

    type = "execution.started"
    execution_status = ExecutionStatus.RUNNING
    inputs: dict[str, Any] | None = field(default=None, metadata=_OPTIONAL)
    workflow_version: int


@dataclass(frozen=True, kw_only=True)
class ExecutionRunning(Event):
    """Work is in progress again after every step waited."""

    type = "execution.running"
    execution_status = ExecutionStatus.RUNNING


@dataclass(frozen=True, kw_only=True)
class ExecutionWaiting(Event):
    """Nothing runs: every unfinished step waits (approval, timer, event, child)."""

    type = "execution.waiting"
    execution_status = ExecutionStatus.WAITING


@dataclass(frozen=True, kw_only=True)
class ExecutionPaused(Event):
    """Paused by someone: no new step starts."""

    type = "execution.paused"
    execution_status = ExecutionStatus.PAUSED
    by: str | None


@dataclass(frozen=True, kw_only=True)
class ExecutionResumed(Event):
    """Resumed after a pause."""

    type = "execution.resumed"
    execution_status = ExecutionStatus.RUNNING
    by: str | None


@dataclass(frozen=True, kw_only=True)
class ExecutionRetried(Event):
    """A failed or cancelled execution runs again from where it stopped."""

    type = "execution.retried"
    execution_status = ExecutionStatus.RUNNING
    by: str | None


@dataclass(frozen=True, kw_only=True)
class ExecutionCompensating(Event):
    """A step failed: the completed steps' ``compensate`` bodies run, newest first."""

    type = "execution.compensating"
    steps: list[str]


@dataclass(frozen=True, kw_only=True)
class ExecutionSucceeded(Event):
    """Every step succeeded or was skipped; ``outputs`` evaluated."""

    type = "execution.succeeded"
    execution_status = ExecutionStatus.SUCCEEDED
    outputs: Any


@dataclass(frozen=True, kw_only=True)
class ExecutionFailed(Event):
    """A step failed for good (after compensation, if any)."""

    type = "execution.failed"
    execution_status = ExecutionStatus.FAILED
    error: dict[str, Any] | None = field(default=None, metadata=_OPTIONAL)


@dataclass(frozen=True, kw_only=True)
class ExecutionCancelled(Event):
    """Cancelled by someone (or by its parent)."""

    type = "execution.cancelled"
    execution_status = ExecutionStatus.CANCELLED
    by: str | None


@dataclass(frozen=True, kw_only=True)
class SignalReceived(Event):
    """An event was delivered to the execution (``POST .../signal``)."""

    type = "signal.received"
    name: str
    data_: Any

    def data(self) -> dict[str, Any]:
        """``{"name", "data"}``."""
        return {"name": self.name, "data": self.data_}


# --- steps -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StepStarted(Event):
    """An attempt (or iteration) started; a ``for_each`` step says how many items."""

    type = "step.started"
    step_status = StepStatus.RUNNING
    attempt: int | None = field(default=None, metadata=_OPTIONAL)
    index: int | None = field(default=None, metadata=_OPTIONAL)
    items: int | None = field(default=None, metadata=_OPTIONAL)


@dataclass(frozen=True, kw_only=True)
class StepSucceeded(Event):
    """The step's output is recorded (once)."""

    type = "step.succeeded"
    step_status = StepStatus.SUCCEEDED
    output: Any
    attempt: int


@dataclass(frozen=True, kw_only=True)
class IterationSucceeded(Event):
    """One ``for_each`` iteration's output is recorded (once)."""

    type = "step.iteration_succeeded"
    index: int
    output: Any


@dataclass(frozen=True, kw_only=True)
class StepFailed(Event):
    """The step (or one of its iterations) failed for good."""

    type = "step.failed"
    step_status = StepStatus.FAILED
    index: int | None
    attempt: int
    error: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class RetryScheduled(Event):
    """An attempt failed and another is due in ``retry_in`` seconds."""

    type = "step.retry_scheduled"
    step_status = StepStatus.PENDING
    index: int | None
    attempt: int
    error: dict[str, Any]
    retry_in: float


@dataclass(frozen=True, kw_only=True)
class StepSkipped(Event):
    """``when`` was false."""

    type = "step.skipped"
    step_status = StepStatus.SKIPPED


@dataclass(frozen=True, kw_only=True)
class StepCancelled(Event):
    """The execution stopped before the step finished."""

    type = "step.cancelled"
    step_status = StepStatus.CANCELLED


@dataclass(frozen=True, kw_only=True)
class StepWaiting(Event):
    """The step waits; ``details`` are what a watcher may know (schema, event, deadlines)."""

    type = "step.waiting"
    step_status = StepStatus.WAITING
    index: int | None
    kind: WaitKind
    details: Mapping[str, Any] = field(default_factory=dict)

    def data(self) -> dict[str, Any]:
        """``{"index", "kind", ...details}``."""
        return {"index": self.index, "kind": str(self.kind), **self.details}


@dataclass(frozen=True, kw_only=True)
class StepApproved(Event):
    """Someone approved a waiting ``approval`` step."""

    type = "step.approved"
    index: int | None
    by: str
    data_: dict[str, Any]

    def data(self) -> dict[str, Any]:
        """``{"index", "by", "data"}``."""
        return {"index": self.index, "by": self.by, "data": self.data_}


@dataclass(frozen=True, kw_only=True)
class StepRejected(StepApproved):
    """Someone rejected a waiting ``approval`` step (the step then fails)."""

    type = "step.rejected"


@dataclass(frozen=True, kw_only=True)
class StepCompensated(Event):
    """A completed step's ``compensate`` body ran."""

    type = "step.compensated"
    output: Any


@dataclass(frozen=True, kw_only=True)
class CompensationFailed(Event):
    """A completed step's ``compensate`` body failed (the others still run)."""

    type = "step.compensation_failed"
    error: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class FlagEvaluated(Event):
    """A feature flag read by the execution's expressions (``flags.<key>``), answered
    for the execution the first time it was read; every later read, retry or replay of
    the execution sees this ``value`` (``step_id``: the step that read it first, None for
    the outputs).

    Not in :data:`EVENT_TYPES`: it changes no status and is no event to subscribe to.
    """

    type = "flag.evaluated"
    key: str
    value: Any
    enabled: bool | None
    variant: str | None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        ExecutionQueued,
        ExecutionStarted,
        ExecutionRunning,
        ExecutionWaiting,
        ExecutionPaused,
        ExecutionResumed,
        ExecutionRetried,
        ExecutionCompensating,
        ExecutionSucceeded,
        ExecutionFailed,
        ExecutionCancelled,
        SignalReceived,
        StepStarted,
        StepSucceeded,
        IterationSucceeded,
        StepFailed,
        RetryScheduled,
        StepSkipped,
        StepCancelled,
        StepWaiting,
        StepApproved,
        StepRejected,
        StepCompensated,
        CompensationFailed,
    )
}
#: Types that end an execution (a stream of its events closes after one of them).
TERMINAL_EVENT_TYPES = frozenset(
    name
    for name, cls in EVENT_TYPES.items()
    if cls.execution_status
    in (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)
)


# --- the fold --------------------------------------------------------------------------


def _blank_step() -> dict[str, Any]:
    return {"status": StepStatus.PENDING.value, "attempts": 0, "output": None, "error": None}


def fold(events: Iterable[Mapping[str, Any]], step_ids: Iterable[str] = ()) -> dict[str, Any]:
    """The execution state after ``events`` (wire-shaped entries, in ``seq`` order)."""
    state: dict[str, Any] = {
        "status": ExecutionStatus.PENDING.value,
        "seq": 0,
        "inputs": None,
        "outputs": None,
        "error": None,
        "steps": {step_id: _blank_step() for step_id in step_ids},
    }
    for event in events:
        record = EVENT_TYPES.get(str(event["type"]))
        data = event.get("data") or {}
        state["seq"] = event["seq"]
        if record is None:
            continue
        if record.execution_status is not None:
            state["status"] = record.execution_status.value
        if record in (ExecutionStarted, ExecutionQueued) and "inputs" in data:
            state["inputs"] = data.get("inputs")
        elif record is ExecutionSucceeded:
            state["outputs"] = data.get("outputs")
        elif record is ExecutionFailed:
            state["error"] = data.get("error")
        elif record is ExecutionRetried:
            state["error"] = None
        step_id = event.get("step_id")
        if not step_id or record.step_status is None:
            continue
        step = state["steps"].setdefault(step_id, _blank_step())
        if data.get("index") is not None and record is not StepFailed:
            continue  # iterations change the step only when they fail it
        step["status"] = record.step_status.value
        if "attempt" in data:
            step["attempts"] = max(step["attempts"], int(data["attempt"]))
        if record is StepSucceeded:
            step["output"] = data.get("output")
            step["error"] = None
        elif record in (StepFailed, RetryScheduled):
            step["error"] = data.get("error")
    return state
