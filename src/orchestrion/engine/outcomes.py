"""What running a step produces, and what a step type's ``run`` receives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from orchestrion.engine.requirements import Requirement, Resources, Unavailable
from orchestrion.engine.statuses import WaitKind

T = TypeVar("T")


@dataclass(frozen=True)
class ModelUsage:
    """Tokens one attempt spent on one model, and what they cost."""

    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    estimated: bool = False


@dataclass(frozen=True)
class Succeeded:
    """The step finished; ``output`` is recorded once, ``usage`` summed once."""

    output: Any
    usage: tuple[ModelUsage, ...] = ()


@dataclass(frozen=True)
class Failed:
    """The step failed; ``retryable`` failures are retried under the step's policy."""

    message: str
    retryable: bool = True
    details: dict[str, Any] | None = None
    #: What the attempt spent before failing (a model call may succeed and its answer
    #: still be unusable): recorded once per attempt.
    usage: tuple[ModelUsage, ...] = ()


@dataclass(frozen=True)
class Waiting:
    """The step waits: for a timer, an approval, an event or a child execution.

    ``resume_at`` wakes a timer; ``timeout_at`` fails the wait when it passes. A step
    type may only wait for the kinds it declares (``StepType.waits``).
    """

    kind: WaitKind
    resume_at: datetime | None = None
    timeout_at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)


Outcome = Succeeded | Failed | Waiting


@dataclass(frozen=True)
class StepCall:
    """One attempt of one step (or iteration), with its ``with`` as written.

    ``context`` is what expressions see (``inputs``, ``steps``, ``item``...);
    :meth:`evaluated` renders ``with`` against it. ``resources`` holds what the step
    type declared it requires, as this process provides it (read with :meth:`need`).
    """

    execution_id: str
    tenant_id: str
    step_id: str
    index: int | None
    attempt: int
    raw_with: Mapping[str, Any]
    context: Mapping[str, Any]
    resources: Resources = field(default_factory=Resources)
    #: What the step type declared (so that asking for anything else says so).
    declared: tuple[Requirement[Any], ...] = ()

    @property
    def idempotency_key(self) -> str:
        """Stable for this attempt: a re-run after a crash presents the same key."""
        iteration = "" if self.index is None else f":{self.index}"
        return f"{self.execution_id}:{self.step_id}{iteration}:{self.attempt}"

    def need(self, requirement: Requirement[T]) -> T:
        """What this process provides for ``requirement`` (raises Unavailable)."""
        value = self.resources.get(requirement)
        if value is None:
            raise Unavailable(requirement, declared=requirement in self.declared)
        return value

    def evaluated(self) -> dict[str, Any]:
        """``with`` with every expression evaluated (raises ExpressionError)."""
        from orchestrion.engine.expressions import evaluate

        value = evaluate(dict(self.raw_with), self.context)
        return value if isinstance(value, dict) else {}
