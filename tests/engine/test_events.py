"""The log's typed records: their wire shape, and the fold that rebuilds state from them."""

from __future__ import annotations

from typing import Any

from orchestrion.engine import EVENT_TYPES, TERMINAL_EVENT_TYPES, Event, WaitKind, fold
from orchestrion.engine.events import (
    ExecutionFailed,
    ExecutionRetried,
    ExecutionStarted,
    ExecutionSucceeded,
    IterationSucceeded,
    RetryScheduled,
    StepFailed,
    StepStarted,
    StepSucceeded,
    StepWaiting,
)


def wire(*records: Event) -> list[dict[str, Any]]:
    return [
        {"seq": seq, "type": r.type, "step_id": r.step_id, "data": r.data()}
        for seq, r in enumerate(records, start=1)
    ]


def test_records_have_unique_types_and_a_stable_data_shape() -> None:
    assert len({cls.type for cls in EVENT_TYPES.values()}) == len(EVENT_TYPES)
    assert {
        "execution.succeeded",
        "execution.failed",
        "execution.cancelled",
    } == TERMINAL_EVENT_TYPES
    assert StepStarted(step_id="a", attempt=2).data() == {"attempt": 2}
    assert StepStarted(step_id="a", items=3).data() == {"items": 3}
    assert ExecutionFailed().data() == {}
    waiting = StepWaiting(step_id="a", index=None, kind=WaitKind.EVENT, details={"event": "paid"})
    assert waiting.data() == {"index": None, "kind": "event", "event": "paid"}


def test_fold_rebuilds_statuses_attempts_outputs_and_errors() -> None:
    error = {"message": "boom"}
    log = wire(
        ExecutionStarted(inputs={"x": 1}, workflow_version=1),
        StepStarted(step_id="a", attempt=1),
        RetryScheduled(step_id="a", index=None, attempt=1, error=error, retry_in=0.5),
        StepStarted(step_id="a", attempt=2),
        StepSucceeded(step_id="a", output={"v": 1}, attempt=2),
        StepStarted(step_id="b", items=2),
        StepStarted(step_id="b", attempt=1, index=0),
        StepWaiting(step_id="b", index=0, kind=WaitKind.APPROVAL),
        IterationSucceeded(step_id="b", index=0, output=3),
        StepFailed(step_id="b", index=1, attempt=1, error=error),
        ExecutionFailed(error={"step_id": "b", **error}),
    )
    state = fold(log, ["a", "b", "c"])
    assert state["status"] == "failed"
    assert state["inputs"] == {"x": 1}
    assert state["error"] == {"step_id": "b", "message": "boom"}
    assert state["steps"]["a"] == {
        "status": "succeeded",
        "attempts": 2,
        "output": {"v": 1},
        "error": None,
    }
    assert state["steps"]["b"]["status"] == "failed"  # an iteration's failure fails the step
    assert state["steps"]["c"]["status"] == "pending"
    halfway = fold(log[:3], ["a"])
    assert halfway["status"] == "running"
    assert halfway["steps"]["a"]["status"] == "pending"
    assert halfway["steps"]["a"]["error"] == error
    retried = fold([*log, *wire(ExecutionRetried(by="u"), ExecutionSucceeded(outputs={}))])
    assert retried["status"] == "succeeded"
    assert retried["error"] is None
