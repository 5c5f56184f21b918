"""More starters: research, reporting, moderation, translation and data shaping."""

from __future__ import annotations

from orchestrion.services.templates.starters.catalog import (
    _IDENTIFIER,
    _MODEL,
    Starter,
    _llm_params,
    _object,
)

STARTERS: list[Starter] = [
    Starter(
        slug="research-digest",
        version=1,
        name="Research digest",
        category="research",
        tags=["llm", "http", "for_each"],
        description=(
            "# Research digest\n\nFetches every URL of `urls` (an `http` step run once per "
            "item, a few at a time) and has a model write a digest of what they say.\n\n"
            "**Inputs:** `urls` (a list).\n**Outputs:** `digest`, `statuses`.\n\nNeeds an "
            "LLM provider; private addresses need `ORCHESTRION_ENGINE__HTTP_ALLOWLIST`."
        ),
        parameters=_object(
            _llm_params(
                concurrency={"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
                max_chars={"type": "integer", "minimum": 100, "maximum": 100000, "default": 8000},
                focus={"type": "string", "default": "the main findings"},
            )
        ),
        definition={
            "inputs": _object(
                {
                    "urls": {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1},
                        "minItems": 1,
                        "maxItems": 50,
                    }
                },
                ["urls"],
            ),
            "steps": [
                {
                    "id": "fetch",
                    "type": "http",
                    "for_each": "inputs.urls",
                    "concurrency": "{{ params.concurrency }}",
                    "with": {"method": "GET", "url": "{{ item }}", "timeout": 20},
                },
                {
                    "id": "digest",
                    "type": "llm",
                    "needs": ["fetch"],
                    "with": {
                        **_MODEL,
                        "system": "You write research digests: short, sourced, neutral.",
                        "prompt": "Write a digest of {{ params.focus }}.\n\nSources:\n"
                        "{{ steps.fetch.output | map(attribute='body') | join('\\n---\\n') "
                        "| truncate({{ params.max_chars }}) }}",
                    },
                },
            ],
            "outputs": {
                "digest": "{{ steps.digest.output.text }}",
                "statuses": "{{ steps.fetch.output | map(attribute='status') | list }}",
            },
        },
    ),
    Starter(
        slug="nightly-report",
        version=1,
        name="Nightly report",
        category="reporting",
        tags=["transform", "report", "schedule"],
        description=(
            "# Nightly report\n\nTurns a list of metrics into a report: how many, their "
            "total, and which passed `threshold`. Plain `transform` steps: it runs as it "
            "is; attach a schedule to run it every night.\n\n**Inputs:** `metrics` "
            "(`[{name, value}]`).\n**Outputs:** `report`, `text`."
        ),
        parameters=_object(
            {
                "title": {"type": "string", "minLength": 1, "default": "Nightly report"},
                "threshold": {"type": "number", "default": 100},
            }
        ),
        definition={
            "inputs": _object(
                {
                    "metrics": {
                        "type": "array",
                        "items": _object(
                            {"name": {"type": "string"}, "value": {"type": "number"}},
                            ["name", "value"],
                        ),
                    }
                },
                ["metrics"],
            ),
            "steps": [
                {
                    "id": "report",
                    "type": "transform",
                    "with": {
                        "title": "{{ params.title }}",
                        "count": "{{ inputs.metrics | length }}",
                        "total": "{{ inputs.metrics | sum(attribute='value') }}",
                        "over_threshold": "{{ inputs.metrics | selectattr('value', 'gt', "
                        "{{ params.threshold }}) | map(attribute='name') | list }}",
                    },
                },
                {
                    "id": "text",
                    "type": "transform",
                    "needs": ["report"],
                    "with": {
                        "line": "{{ params.title }}: {{ steps.report.output.count }} metrics, "
                        "total {{ steps.report.output.total }}, "
                        "{{ steps.report.output.over_threshold | length }} over "
                        "{{ params.threshold }}"
                    },
                },
            ],
            "outputs": {
                "report": "{{ steps.report.output }}",
                "text": "{{ steps.text.output.line }}",
            },
        },
    ),
    Starter(
        slug="content-moderation",
        version=1,
        name="Content moderation",
        category="content",
        tags=["plugin", "switch", "moderation"],
        description=(
            "# Content moderation\n\nScores a text with a WebAssembly plugin of the tenant "
            "(`plugin` step; upload one with `POST /api/v1/plugins`) and decides "
            "`rejected` when the field `score_field` of its JSON output reaches "
            "`threshold`, else `approved` (`switch` step).\n\n**Inputs:** `text`.\n"
            "**Outputs:** `decision`, `score`."
        ),
        parameters=_object(
            {
                "plugin": {"type": "string", "minLength": 1, "default": "moderation"},
                "function": {"type": "string", "minLength": 1, "default": "score"},
                "score_field": {**_IDENTIFIER, "default": "score"},
                "threshold": {"type": "number", "default": 0.5},
            }
        ),
        definition={
            "inputs": _object({"text": {"type": "string", "minLength": 1}}, ["text"]),
            "steps": [
                {
                    "id": "check",
                    "type": "plugin",
                    "with": {
                        "plugin": "{{ params.plugin }}",
                        "function": "{{ params.function }}",
                        "input": "{{ inputs.text }}",
                    },
                },
                {
                    "id": "decide",
                    "type": "switch",
                    "needs": ["check"],
                    "with": {
                        "cases": [
                            {
                                "when": "(steps.check.output.get('{{ params.score_field }}') "
                                "or 0) >= {{ params.threshold }}",
                                "value": "rejected",
                            }
                        ],
                        "default": "approved",
                    },
                },
            ],
            "outputs": {
                "decision": "{{ steps.decide.output.value }}",
                "score": "{{ steps.check.output.get('{{ params.score_field }}') }}",
            },
        },
    ),
    Starter(
        slug="translation",
        version=1,
        name="Translation",
        category="language",
        tags=["llm", "translation"],
        description=(
            "# Translation\n\nHas a model translate a text into `target_language`, keeping "
            "its formatting, in the register `formality` asks for.\n\n**Inputs:** `text`.\n"
            "**Outputs:** `translation`.\n\nNeeds an LLM provider."
        ),
        parameters=_object(
            _llm_params(
                target_language={"type": "string", "minLength": 2, "default": "French"},
                formality={"enum": ["formal", "informal", "neutral"], "default": "neutral"},
            ),
            ["target_language"],
        ),
        definition={
            "inputs": _object({"text": {"type": "string", "minLength": 1}}, ["text"]),
            "steps": [
                {
                    "id": "translate",
                    "type": "llm",
                    "with": {
                        **_MODEL,
                        "temperature": 0,
                        "system": "Translate into {{ params.target_language }} in a "
                        "{{ params.formality }} register. Keep the formatting. Answer with "
                        "the translation only.",
                        "prompt": "{{ inputs.text }}",
                    },
                }
            ],
            "outputs": {"translation": "{{ steps.translate.output.text }}"},
        },
    ),
    Starter(
        slug="json-reshaping",
        version=1,
        name="JSON reshaping",
        category="data",
        tags=["transform", "switch", "json"],
        description=(
            "# JSON reshaping\n\nPicks `key_field` and `value_field` out of a list of "
            "records (`transform`) and sizes the batch as `empty`, `small` or `large` "
            "(`switch`, by `large_above`). Runs as it is.\n\n**Inputs:** `records` (a list "
            "of objects).\n**Outputs:** `keys`, `values`, `count`, `size`."
        ),
        parameters=_object(
            {
                "key_field": {**_IDENTIFIER, "default": "id"},
                "value_field": {**_IDENTIFIER, "default": "value"},
                "large_above": {"type": "integer", "minimum": 0, "default": 100},
            }
        ),
        definition={
            "inputs": _object(
                {"records": {"type": "array", "items": {"type": "object"}}}, ["records"]
            ),
            "steps": [
                {
                    "id": "shape",
                    "type": "transform",
                    "with": {
                        "keys": "{{ inputs.records | map(attribute='{{ params.key_field }}') "
                        "| list }}",
                        "values": "{{ inputs.records | map(attribute='{{ params.value_field }}')"
                        " | list }}",
                        "count": "{{ inputs.records | length }}",
                    },
                },
                {
                    "id": "size",
                    "type": "switch",
                    "needs": ["shape"],
                    "with": {
                        "cases": [
                            {"when": "steps.shape.output.count == 0", "value": "empty"},
                            {
                                "when": "steps.shape.output.count > {{ params.large_above }}",
                                "value": "large",
                            },
                        ],
                        "default": "small",
                    },
                },
            ],
            "outputs": {
                "keys": "{{ steps.shape.output['keys'] }}",
                "values": "{{ steps.shape.output['values'] }}",
                "count": "{{ steps.shape.output.count }}",
                "size": "{{ steps.size.output.value }}",
            },
        },
    ),
]
