"""Fuzz targets for every parser a tenant can feed: definition bodies (JSON and YAML),
definitions themselves and expressions. Whatever the input, the answer is a value or a
documented error, never another exception. Short runs here (150 examples per target);
``FUZZ_EXAMPLES`` raises that for a longer run."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrion.engine.definition import DefinitionError, validate_definition
from orchestrion.engine.expressions import ExpressionError, evaluate, parse
from orchestrion.services.workflows.definitions.parsing import (
    DocumentTooLarge,
    ParseLimits,
    load_json,
    load_yaml,
)

# Local to this module (no global profile): FUZZ_EXAMPLES=2000 for a longer run in CI.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

LIMITS = ParseLimits(max_depth=16, max_aliases=10, max_nodes=2000)
_JSON_TOKENS = list('{}[]",:0123456789.-eEtruefalsn \\/ab')
_YAML_TOKENS = [*"&*ab: -[]{},\n\"'!|>#?%@`0123456789", "  ", "<<"]
_EXPR_TOKENS = [*"{}()[]|~+*-/%.,:'\"<>=!0123456789 abxyz_", "{{", "}}", "inputs", "range"]


def _texts(tokens: list[str], size: int) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(tokens), max_size=size).map("".join)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


def _accepts(load: Any, text: str, *errors: type[BaseException]) -> None:
    try:
        load(text, LIMITS)
    except (DocumentTooLarge, *errors):
        pass


@FUZZ
@given(_texts(_JSON_TOKENS, 200))
def test_json_bodies(text: str) -> None:
    _accepts(load_json, text, ValueError)


@FUZZ
@given(json_values)
def test_json_bodies_round_trip_within_the_depth(value: Any) -> None:
    assert load_json(json.dumps(value), LIMITS) == value


@FUZZ
@given(_texts(_YAML_TOKENS, 200))
def test_yaml_bodies(text: str) -> None:
    _accepts(load_yaml, text, yaml.YAMLError)


@FUZZ
@given(st.text(max_size=100))
def test_yaml_bodies_of_any_text(text: str) -> None:
    _accepts(load_yaml, text, yaml.YAMLError)


step = st.fixed_dictionaries(
    {
        "id": st.text("abc", min_size=1, max_size=3),
        "type": st.sampled_from(["transform", "fail", "x"]),
    },
    optional={"with": json_values, "needs": st.lists(st.text("abc", max_size=3), max_size=3)},
)


@FUZZ
@given(
    st.fixed_dictionaries(
        {"name": st.text(max_size=10), "steps": st.lists(step, max_size=4)},
        optional={"inputs": json_values, "outputs": json_values},
    )
    | json_values
)
def test_definitions(raw: Any) -> None:
    if not isinstance(raw, dict):
        raw = {"name": "x", "steps": raw}
    with contextlib.suppress(DefinitionError):
        validate_definition(raw)


CONTEXT = {"inputs": {"a": 1, "s": "text", "l": [1, 2, 3], "d": {"k": "v"}}, "steps": {}}


@FUZZ
@given(_texts(_EXPR_TOKENS, 40).map(lambda t: "{{ " + t + " }}"))
def test_expressions(source: str) -> None:
    message = ""
    try:
        result = evaluate(source, CONTEXT)
    except ExpressionError as exc:
        message = exc.message
    else:
        json.dumps(result, allow_nan=False)  # always JSON
    assert " at 0x" not in message


@FUZZ
@given(st.text(max_size=80))
def test_expression_parsing_of_any_text(text: str) -> None:
    with contextlib.suppress(ExpressionError):
        parse(text)


@pytest.mark.parametrize("depth", [17, 10_000])
def test_the_fuzzed_limits_are_the_ones_enforced(depth: int) -> None:
    with pytest.raises(DocumentTooLarge):
        load_json("[" * depth + "]" * depth, LIMITS)
    with pytest.raises((DocumentTooLarge, yaml.YAMLError)):  # libyaml stops at 1000 itself
        load_yaml("[" * depth + "]" * depth, LIMITS)
