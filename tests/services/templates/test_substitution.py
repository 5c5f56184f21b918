"""Substitution rules on their own: types, text, keys, paths, run-time expressions."""

from __future__ import annotations

import pytest

from orchestrion.services.templates.errors import InvalidParameters, InvalidTemplate
from orchestrion.services.templates.substitution import (
    check_template,
    referenced,
    resolve,
    substitute,
)

PARAMS = {"n": 3, "on": True, "cfg": {"depth": 2, "tags": ["a"]}, "who": "Ada", "none": None}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ params.n }}", 3),
        ("  {{params.on}}  ", True),
        ("{{ params.cfg }}", {"depth": 2, "tags": ["a"]}),
        ("{{ params.cfg.depth }}", 2),
        ("{{ params.none }}", None),
        ("{{ params.absent }}", None),
        ("n={{ params.n }}, on={{ params.on }}", "n=3, on=true"),
        ("hi {{ params.who }} {{ params.cfg.tags }}", 'hi Ada ["a"]'),
        ("{{ inputs.x }}", "{{ inputs.x }}"),
        ("{{ inputs.x + {{ params.n }} }}", "{{ inputs.x + 3 }}"),
        ("{{ paramsx.n }} {{ steps.params.n }}", "{{ paramsx.n }} {{ steps.params.n }}"),
    ],
)
def test_substitute(source: str, expected: object) -> None:
    assert substitute(source, PARAMS) == expected


def test_keys_are_text_and_values_are_not_expanded_twice() -> None:
    result = substitute(
        {"{{ params.cfg }}": ["{{ params.who }}"]}, {**PARAMS, "who": "{{ params.n }}"}
    )
    assert result == {'{"depth": 2, "tags": ["a"]}': ["{{ params.n }}"]}


def test_referenced_and_checks() -> None:
    definition = {"steps": [{"with": {"a": "{{ params.n }}", "b": "x {{ params.cfg.depth }}"}}]}
    assert referenced(definition) == {"n", "cfg"}
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "cfg": {}}}
    check_template(schema, definition)
    with pytest.raises(InvalidTemplate):
        check_template({"type": "object", "properties": {"n": {}}}, definition)
    with pytest.raises(InvalidTemplate):
        check_template({"type": "array"}, definition)


def test_resolve_fills_defaults_and_names_failing_fields() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "default": 1}, "s": {"type": "string"}},
        "required": ["s"],
        "additionalProperties": False,
    }
    assert resolve(schema, {"s": "x"}) == {"n": 1, "s": "x"}
    with pytest.raises(InvalidParameters) as caught:
        resolve(schema, {"s": 5, "extra": 1})
    locs = [e["loc"] for e in caught.value.errors]
    assert ["parameters", "s"] in locs
    assert "extra" in " ".join(e["msg"] for e in caught.value.errors)
