"""Expression results are metered (limits.expression_max_size) and must be JSON."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from orchestrion.engine import sandbox
from orchestrion.engine.expressions import ExpressionError, evaluate

BIG = "x" * 600_000


@pytest.fixture(autouse=True)
def _default_limit() -> Iterator[None]:
    yield
    sandbox.configure(max_size=sandbox.DEFAULT_MAX_SIZE)


@pytest.mark.parametrize(
    "source",
    [
        "{{ inputs.big ~ inputs.big }}",
        "{{ inputs.big + inputs.big }}",
        "{{ [inputs.big] + [inputs.big] }}",
        "{{ [inputs.big, inputs.big] }}",
        "{{ {'a': inputs.big, 'b': inputs.big} }}",
        "{{ (inputs.big, inputs.big) }}",
        "{{ [inputs.big] | string | list | string }}",
        "{{ [['\\\\' * 300000] | string] | string }}",
        "{{ inputs.big | list }}",
        "{{ inputs.big }}{{ inputs.big }}",
        "{{ '%s%s' % (inputs.big, inputs.big) }}",
    ],
)
def test_growth_past_the_limit_fails_naming_it(source: str) -> None:
    with pytest.raises(ExpressionError, match=r"limits\.expression_max_size"):
        evaluate(source, {"inputs": {"big": BIG}})


def test_the_limit_is_configurable() -> None:
    sandbox.configure(max_size=2000)
    with pytest.raises(ExpressionError, match="2,000"):
        evaluate("{{ inputs.s ~ inputs.s }}", {"inputs": {"s": "y" * 1500}})
    sandbox.configure(max_size=10_000)
    assert len(evaluate("{{ inputs.s ~ inputs.s }}", {"inputs": {"s": "y" * 1500}})) == 3000


@pytest.mark.parametrize(
    "source",
    [
        "{{ inputs.big }}",
        "{{ {'data': inputs.big} }}",
        "{{ [inputs.big] }}",
        "{{ inputs.big | upper }}",
        "{{ inputs.big[:10] ~ 'y' }}",
    ],
)
def test_passing_a_large_value_along_is_allowed(source: str) -> None:
    assert evaluate(source, {"inputs": {"big": "x" * 2_000_000}})


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("{{ range }}", "function"),
        ("{{ dict }}", "type"),
        ("{{ 'a'.upper }}", "builtin_function_or_method"),
        ("x {{ range }}", "function"),
        ("x {{ [range] }}", "function"),
        ("{{ 'x' ~ range }}", "function"),
        ("{{ range | string }}", "function"),
        ("{{ [range] | string }}", "function"),
        ("{{ 'a' | attr('upper') | string }}", "builtin_function_or_method"),
        ("{{ '%s' % range }}", "function"),
        ("{{ '{}'.format(range) }}", "function"),
        ("{{ [dict] }}", "type"),
        ("{{ {'f': range} }}", "function"),
    ],
)
def test_non_json_results_fail_by_type_name(source: str, kind: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate(source, {})
    assert f"expression result of type {kind!r} is not JSON" in caught.value.message
    assert not re.search(r"0x[0-9a-f]{4,}", caught.value.message)


def test_nan_is_not_a_json_result() -> None:
    with pytest.raises(ExpressionError, match="not a JSON number"):
        evaluate("{{ inputs.n | float }}", {"inputs": {"n": "nan"}})
