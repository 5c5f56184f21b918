"""Rebuilding an execution's state from its event log alone (time-travel debugging).

The read models are kept in the same transactions as the log; folding the log up to
any ``seq`` gives the state as it was then, which is what ``/events?until=`` shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_STEP_STATUS = {
    "step.started": "running",
    "step.succeeded": "succeeded",
    "step.failed": "failed",
    "step.skipped": "skipped",
    "step.cancelled": "cancelled",
    "step.waiting": "waiting",
    "step.retry_scheduled": "pending",
}
_EXECUTION_STATUS = {
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


def _blank_step() -> dict[str, Any]:
    return {"status": "pending", "attempts": 0, "output": None, "error": None}


def fold(events: Iterable[Mapping[str, Any]], step_ids: Iterable[str] = ()) -> dict[str, Any]:
    """The execution state after ``events`` (in ``seq`` order)."""
    state: dict[str, Any] = {
        "status": "pending",
        "seq": 0,
        "inputs": None,
        "outputs": None,
        "error": None,
        "steps": {step_id: _blank_step() for step_id in step_ids},
    }
    for event in events:
        kind = str(event["type"])
        data = event.get("data") or {}
        state["seq"] = event["seq"]
        if kind in _EXECUTION_STATUS:
            state["status"] = _EXECUTION_STATUS[kind]
        if kind in ("execution.started", "execution.queued") and "inputs" in data:
            state["inputs"] = data.get("inputs")
        elif kind == "execution.succeeded":
            state["outputs"] = data.get("outputs")
        elif kind == "execution.failed":
            state["error"] = data.get("error")
        elif kind == "execution.retried":
            state["error"] = None
        step_id = event.get("step_id")
        if not step_id or kind not in _STEP_STATUS:
            continue
        step = state["steps"].setdefault(step_id, _blank_step())
        if data.get("index") is not None and kind != "step.failed":
            continue  # iterations change the step only when they fail it
        step["status"] = _STEP_STATUS[kind]
        if "attempt" in data:
            step["attempts"] = max(step["attempts"], int(data["attempt"]))
        if kind == "step.succeeded":
            step["output"] = data.get("output")
            step["error"] = None
        elif kind in ("step.failed", "step.retry_scheduled"):
            step["error"] = data.get("error")
    return state
