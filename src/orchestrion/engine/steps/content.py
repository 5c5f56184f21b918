"""The ``content`` step: analyse a text, or read a stored document's analysis.

``with``: ``text`` (analysed on the spot, nothing stored) or ``content_id`` (a document of
the tenant in the content service). Output: the ``analysis`` object (language, word
count, keywords, entities, summary, readability, difficulty, concepts). A document still
``processing`` fails the attempt retryably, so the step's retry policy waits for it; a
document that ``failed`` fails the step.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Succeeded
from orchestrion.engine.registry import StepType, expr_or
from orchestrion.engine.requirements import SERVICES
from orchestrion.engine.steps._services import call_service, text_field

_TEXT: dict[str, Any] = {"type": "string", "minLength": 1}


def _stored(document: Any) -> Outcome:
    if not isinstance(document, dict):
        return Failed("the content service answered an unexpected body", retryable=False)
    status = document.get("status")
    if status == "processed" and isinstance(document.get("analysis"), dict):
        return Succeeded(document["analysis"])
    if status == "failed":
        reason = document.get("error") or "no reason given"
        return Failed(f"content {document.get('id')} failed: {reason}", retryable=False)
    return Failed(f"content {document.get('id')} is still {status}", retryable=True)


def _analysis(answer: Any) -> Outcome:
    return Succeeded(answer)


class ContentStep(StepType):
    """Analyse ``text``, or read the analysis of document ``content_id``."""

    name = "content"
    description = (
        "Analyse `text`, or read the analysis of document `content_id`; "
        "output {language, word_count, keywords, entities, summary, readability, "
        "difficulty, concepts}."
    )
    with_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"text": expr_or(_TEXT), "content_id": expr_or(_TEXT)},
        "oneOf": [{"required": ["text"]}, {"required": ["content_id"]}],
        "additionalProperties": False,
    }
    requires = (SERVICES,)

    async def run(self, call: StepCall) -> Outcome:
        """Ask the content service (``content:read`` in the execution's tenant)."""
        spec = call.evaluated()
        text, content_id = text_field(spec, "text"), text_field(spec, "content_id")
        if (text is None) == (content_id is None):
            return Failed("give exactly one of 'text' or 'content_id'", retryable=False)
        if text is not None:
            return await call_service(
                call,
                "content",
                "POST",
                "/api/v1/content/analyze",
                permissions=("content:read",),
                json={"text": text},
                shape=_analysis,
            )
        return await call_service(
            call,
            "content",
            "GET",
            f"/api/v1/content/{quote(str(content_id), safe='')}",
            permissions=("content:read",),
            shape=_stored,
        )
