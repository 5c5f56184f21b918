"""The closed vocabularies of the engine: execution and step statuses, task and wait kinds.

They are ``StrEnum`` members, so they compare equal to, and serialise as, the strings the
API and the database have always used (``"running"``, ``"run"``...).
"""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    """Where an execution is (the API's ``status``)."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    """Where a step is; ``queued`` (scheduled, not yet picked up) reads as ``pending``."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def public(self) -> StepStatus:
        """The status the API shows (``queued`` is an internal detail)."""
        return StepStatus.PENDING if self is StepStatus.QUEUED else self


class TaskKind(StrEnum):
    """What an engine task on the queue asks a worker to do."""

    RUN = "run"  # one attempt of a step (or iteration)
    RESUME = "resume"  # a timer fell due
    TIMEOUT = "timeout"  # a wait ran out of time
    COMPENSATE = "compensate"  # the next compensation of a failed execution
    FLAGS = "flags"  # evaluate the feature flags a step (or the outputs) reads


class WaitKind(StrEnum):
    """What a waiting step waits for; the runtime knows how to end each."""

    TIMER = "timer"
    APPROVAL = "approval"
    EVENT = "event"
    CHILD = "child"


TERMINAL = frozenset({ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED})
#: Executions holding a concurrency slot.
HOLDING_SLOT = frozenset({ExecutionStatus.RUNNING, ExecutionStatus.WAITING, ExecutionStatus.PAUSED})
STEP_DONE = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})
STEP_TERMINAL = frozenset(
    {StepStatus.SUCCEEDED, StepStatus.SKIPPED, StepStatus.FAILED, StepStatus.CANCELLED}
)


def public_step_status(status: str) -> str:
    """Internal ``queued`` reads as ``pending``; anything else as it is."""
    return StepStatus.PENDING.value if status == StepStatus.QUEUED else status
