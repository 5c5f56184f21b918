"""The ``notify`` step: send a notification through the notifications service.

``with``: the body of ``POST /api/v1/notifications`` (``channel``, ``to``, and ``subject``
and ``body`` or ``template`` with ``data``). Output: ``{"id", "status"}`` — the send is
queued; its delivery is the notifications service's (retries included), so the step does
not wait for it. The attempt's idempotency key goes with the call: a step re-run after a
crash queues the same notification, not a second one.
"""

from __future__ import annotations

from typing import Any, ClassVar

from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Succeeded
from orchestrion.engine.registry import StepType, expr_or
from orchestrion.engine.requirements import SERVICES
from orchestrion.engine.steps._services import call_service, text_field

CHANNELS = ("email", "webhook", "sms", "push", "in_app")
_FIELDS = ("channel", "to", "subject", "body", "template", "data")


def _accepted(answer: Any) -> Outcome:
    if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
        return Failed("the notifications service answered an unexpected body", retryable=False)
    return Succeeded({"id": answer["id"], "status": answer.get("status")})


class NotifyStep(StepType):
    """Queue a notification (email, webhook, SMS, push or in-app)."""

    name = "notify"
    description = (
        "Send a notification: `channel` (email|webhook|sms|push|in_app), `to`, `subject` and "
        "`body`, or `template` with `data`; output {id, status} (the send is queued)."
    )
    with_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "channel": expr_or({"enum": list(CHANNELS)}),
            "to": expr_or({"type": "string", "minLength": 1}),
            "subject": expr_or({"type": "string"}),
            "body": expr_or({"type": "string"}),
            "template": expr_or({"type": "string", "minLength": 1}),
            "data": expr_or({"type": "object"}),
        },
        "required": ["channel", "to"],
        "additionalProperties": False,
    }
    requires = (SERVICES,)

    async def run(self, call: StepCall) -> Outcome:
        """Ask the notifications service (``notifications:write`` in the execution's tenant)."""
        spec = call.evaluated()
        channel = spec.get("channel")
        if channel not in CHANNELS:
            return Failed(f"'channel' must be one of {', '.join(CHANNELS)}, got {channel!r}", False)
        if text_field(spec, "to") is None:
            return Failed("'to' must be a non-empty string", retryable=False)
        body = {key: spec[key] for key in _FIELDS if spec.get(key) is not None}
        if "body" not in body and "template" not in body:
            return Failed("give 'body' or 'template'", retryable=False)
        return await call_service(
            call,
            "notifications",
            "POST",
            "/api/v1/notifications",
            permissions=("notifications:write",),
            json=body,
            shape=_accepted,
        )
