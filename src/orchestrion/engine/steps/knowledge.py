"""The ``knowledge`` step: search the tenant's knowledge graph (the retrieval of RAG).

``with``: ``query``, ``mode`` (``keyword``, ``semantic`` or ``hybrid``; default
``hybrid``), ``limit`` (default 5). Output: the search's ``data``, best first:
``[{"node_id", "name", "score"}]``, ready for an ``llm`` step's prompt.
"""

from __future__ import annotations

from typing import Any, ClassVar

from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Succeeded
from orchestrion.engine.registry import StepType, expr_or
from orchestrion.engine.requirements import SERVICES
from orchestrion.engine.steps._services import call_service, text_field

MODES = ("keyword", "semantic", "hybrid")


def _data(answer: Any) -> Outcome:
    if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
        return Failed("the knowledge service answered an unexpected body", retryable=False)
    return Succeeded(answer["data"])


class KnowledgeStep(StepType):
    """Search the knowledge graph for ``query``."""

    name = "knowledge"
    description = (
        "Search the knowledge graph for `query` (`mode` keyword|semantic|hybrid, `limit`); "
        "output [{node_id, name, score}], best first."
    )
    with_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "query": expr_or({"type": "string", "minLength": 1}),
            "mode": expr_or({"enum": list(MODES)}),
            "limit": expr_or({"type": "integer", "minimum": 1, "maximum": 100}),
        },
        "required": ["query"],
        "additionalProperties": False,
    }
    requires = (SERVICES,)

    async def run(self, call: StepCall) -> Outcome:
        """Ask the knowledge service (``knowledge:read`` in the execution's tenant)."""
        spec = call.evaluated()
        query = text_field(spec, "query")
        mode = spec.get("mode") or "hybrid"
        limit = spec.get("limit") or 5
        if query is None:
            return Failed("'query' must be a non-empty string", retryable=False)
        if mode not in MODES:
            return Failed(f"'mode' must be one of {', '.join(MODES)}, got {mode!r}", False)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100:
            return Failed(f"'limit' must be an integer from 1 to 100, got {limit!r}", False)
        return await call_service(
            call,
            "knowledge",
            "POST",
            "/api/v1/knowledge/search",
            permissions=("knowledge:read",),
            json={"query": query, "mode": mode, "limit": limit},
            shape=_data,
        )
