"""The starter templates every platform lists: public, owned by the platform.

Each is keyed by a stable ``slug``; raising its ``version`` here upgrades the stored one
at the next start (a new version row; ratings and installs stay). Those without an
``llm`` step run as they are; the others need an LLM provider, named by the
``provider`` and ``model`` parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Starter:
    """One starter template."""

    slug: str
    version: int
    name: str
    category: str
    description: str
    parameters: dict[str, Any]
    definition: dict[str, Any]
    tags: list[str] = field(default_factory=list)


def _llm_params(**extra: Any) -> dict[str, Any]:
    """Parameters naming the provider and model, plus ``extra`` ones."""
    return {
        "provider": {
            "type": "string",
            "minLength": 1,
            "default": "openai",
            "description": "A configured LLM provider (settings or /api/v1/llm/providers).",
        },
        "model": {"type": "string", "minLength": 1, "default": "gpt-4o-mini"},
        **extra,
    }


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


_MODEL = {"provider": "{{ params.provider }}", "model": "{{ params.model }}"}
_IDENTIFIER = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}

STARTERS: list[Starter] = [
    Starter(
        slug="document-summarizer",
        version=1,
        name="Document summarizer",
        category="content",
        tags=["llm", "content", "summary"],
        description=(
            "# Document summarizer\n\nAnalyses a text with the `content` step (language, "
            "keywords, readability), then has a model write a summary of at most "
            "`max_words` words that mentions the main keywords.\n\n**Inputs:** `text`.\n"
            "**Outputs:** `summary`, `keywords`, `language`.\n\nNeeds an LLM provider."
        ),
        parameters=_object(
            _llm_params(
                max_words={"type": "integer", "minimum": 10, "maximum": 1000, "default": 120}
            )
        ),
        definition={
            "inputs": _object({"text": {"type": "string", "minLength": 1}}, ["text"]),
            "steps": [
                {"id": "analyze", "type": "content", "with": {"text": "{{ inputs.text }}"}},
                {
                    "id": "summarize",
                    "type": "llm",
                    "needs": ["analyze"],
                    "with": {
                        **_MODEL,
                        "system": "You write faithful, concise summaries.",
                        "prompt": (
                            "Summarize in at most {{ params.max_words }} words. Keywords: "
                            "{{ steps.analyze.output.keywords | map(attribute='term') "
                            "| join(', ') }}"
                            "\n\n{{ inputs.text }}"
                        ),
                    },
                },
            ],
            "outputs": {
                "summary": "{{ steps.summarize.output.text }}",
                "keywords": "{{ steps.analyze.output.keywords }}",
                "language": "{{ steps.analyze.output.language }}",
            },
        },
    ),
    Starter(
        slug="rag-question-answering",
        version=1,
        name="RAG question answering",
        category="knowledge",
        tags=["llm", "knowledge", "rag"],
        description=(
            "# RAG question answering\n\nSearches the tenant's knowledge graph for the "
            "question (`knowledge` step), then has a model answer from what it found only."
            "\n\n**Inputs:** `question`.\n**Outputs:** `answer`, `sources`.\n\n"
            "Needs an LLM provider; `mode` is `keyword`, `semantic` or `hybrid`."
        ),
        parameters=_object(
            _llm_params(
                mode={"enum": ["keyword", "semantic", "hybrid"], "default": "keyword"},
                limit={"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
            )
        ),
        definition={
            "inputs": _object({"question": {"type": "string", "minLength": 1}}, ["question"]),
            "steps": [
                {
                    "id": "retrieve",
                    "type": "knowledge",
                    "with": {
                        "query": "{{ inputs.question }}",
                        "mode": "{{ params.mode }}",
                        "limit": "{{ params.limit }}",
                    },
                },
                {
                    "id": "answer",
                    "type": "llm",
                    "needs": ["retrieve"],
                    "with": {
                        **_MODEL,
                        "system": "Answer from the context only; say so when it does not "
                        "hold the answer.",
                        "prompt": "Context: {{ steps.retrieve.output | map(attribute='name') "
                        "| join('; ') }}\n\nQuestion: {{ inputs.question }}",
                    },
                },
            ],
            "outputs": {
                "answer": "{{ steps.answer.output.text }}",
                "sources": "{{ steps.retrieve.output }}",
            },
        },
    ),
    Starter(
        slug="support-ticket-triage",
        version=1,
        name="Support ticket triage",
        category="support",
        tags=["llm", "approval", "support"],
        description=(
            "# Support ticket triage\n\nA model classifies a ticket (`category`, "
            "`urgency`, a suggested `reply`) as JSON; a person approves or corrects the "
            "triage (`approval` step) before it is routed to a queue.\n\n**Inputs:** "
            "`subject`, `body`.\n**Outputs:** `category`, `urgency`, `queue`, `reply`.\n\n"
            "Needs an LLM provider; the execution waits for `POST /api/v1/executions/{id}"
            "/steps/review/approve`."
        ),
        parameters=_object(
            _llm_params(
                categories={
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "minItems": 1,
                    "default": ["billing", "bug", "account", "other"],
                },
                queue_prefix={"type": "string", "default": "support"},
            )
        ),
        definition={
            "inputs": _object(
                {"subject": {"type": "string"}, "body": {"type": "string", "minLength": 1}},
                ["body"],
            ),
            "steps": [
                {
                    "id": "classify",
                    "type": "llm",
                    "with": {
                        **_MODEL,
                        "system": "You triage support tickets. Answer with JSON only.",
                        "prompt": "Categories: {{ params.categories }}\nSubject: "
                        "{{ inputs.subject }}\n\n{{ inputs.body }}",
                        "response_schema": _object(
                            {
                                "category": {"enum": "{{ params.categories }}"},
                                "urgency": {"enum": ["low", "normal", "high"]},
                                "reply": {"type": "string"},
                            },
                            ["category", "urgency"],
                        ),
                    },
                },
                {
                    "id": "review",
                    "type": "approval",
                    "needs": ["classify"],
                    "with": {
                        "schema": _object(
                            {
                                "category": {"type": "string"},
                                "urgency": {"enum": ["low", "normal", "high"]},
                            }
                        ),
                        "timeout": 86400,
                    },
                },
                {
                    "id": "route",
                    "type": "transform",
                    "needs": ["review"],
                    "with": {
                        "category": "{{ (steps.review.output.data or {}).get('category') "
                        "or steps.classify.output.data.category }}",
                        "urgency": "{{ (steps.review.output.data or {}).get('urgency') "
                        "or steps.classify.output.data.urgency }}",
                    },
                },
            ],
            "outputs": {
                "category": "{{ steps.route.output.category }}",
                "urgency": "{{ steps.route.output.urgency }}",
                "queue": "{{ params.queue_prefix }}-{{ steps.route.output.category }}",
                "reply": "{{ steps.classify.output.data.get('reply', '') }}",
            },
        },
    ),
]
