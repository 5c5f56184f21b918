"""Expressions: types, text, strictness, the sandbox and its bounds."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrion.engine.expressions import (
    MAX_EXPRESSION_LENGTH,
    ExpressionError,
    evaluate,
    parse,
    parse_expression,
    references,
    validate,
)

CONTEXT: dict[str, Any] = {
    "inputs": {"x": 21, "name": "Ada", "items": [1, 2, 3]},
    "steps": {"double": {"output": {"value": 42}}, "fetch-data": {"output": {"ok": True}}},
}


def render(source: str) -> Any:
    return parse(source).render(CONTEXT)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ inputs.x * 2 }}", 42),
        ("  {{ inputs.x * 2 }}\n", 42),
        ("{{ [1, 2] }}", [1, 2]),
        ("{{ {'a': inputs.x} }}", {"a": 21}),
        ("{{ inputs.x > 20 }}", True),
        ("{{ none }}", None),
        ("{{ inputs.x / 2 }}", 10.5),
        ("{{ steps.double.output }}", {"value": 42}),
        ("{{ steps['fetch-data'].output.ok }}", True),
        ("{{ inputs['items'] | map('string') }}", ["1", "2", "3"]),
        ("{{ inputs.keys() }}", ["x", "name", "items"]),
        ("{{ (1, 2) }}", [1, 2]),
        ("{{ inputs.nope | default('d') }}", "d"),
        ("{{ inputs | json }}", '{"x": 21, "name": "Ada", "items": [1, 2, 3]}'),
        ("{{ ('a' * 100000) | length }}", 100000),
        ("{{ 2 ** 1000 > 0 }}", True),
        ("{{ '%.2f' % 3.14159 }}", "3.14"),
        ("{{ '{:>4}'.format(7) }}", "   7"),
    ],
)
def test_a_single_expression_keeps_its_type(source: str, expected: Any) -> None:
    result = render(source)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("n={{ inputs.x }}", "n=21"),
        ("{{ inputs.x }}{{ inputs.x }}", "2121"),
        ("Hello {{ inputs.name | upper }}!\n", "Hello ADA!\n"),
        ("{{ inputs['items'] }} items", "[1, 2, 3] items"),
        ("{% if x %}{# c #} {{ inputs.x }}", "{% if x %}{# c #} 21"),
        ("plain text", "plain text"),
    ],
)
def test_anything_else_renders_as_text(source: str, expected: str) -> None:
    assert render(source) == expected


def test_is_expression_and_single() -> None:
    assert not parse("no braces").is_expression
    assert parse("{{ 1 }}").is_expression
    assert parse("{{ 1 }}").is_single
    assert not parse("a {{ 1 }}").is_single


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ steps.nope.output }}", "'steps' has no attribute 'nope'"),
        ("{{ steps.double.output.nope }}", "'steps.double.output' has no attribute 'nope'"),
        ("value: {{ inputs.nope }}", "'inputs' has no attribute 'nope'"),
        ("{{ inputs.nope + 1 }}", "'inputs' has no attribute 'nope'"),
        ("{{ [inputs.nope] }}", "'inputs' has no attribute 'nope'"),
        ("{{ nope }}", "'nope' is undefined"),
    ],
)
def test_undefined_names_fail_clearly(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        render(source)
    assert message in str(caught.value)
    assert source.strip() in str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        "{{ inputs.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ inputs.items.__self__ }}",
        "{{ namespace() }}",
        "{{ inputs.pop('x') }}",
        "{{ 'abc'.translate({}) }}",
        "{{ (1).to_bytes(8, 'big') }}",
        "{{ ''.__class__.__subclasses__() }}",
    ],
)
def test_python_internals_are_out_of_reach(source: str) -> None:
    with pytest.raises(ExpressionError):
        render(source)
    assert CONTEXT["inputs"]["x"] == 21


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 10000000 }}",
        "{{ 10000000 * 'a' }}",
        "{{ ['a' * 100000] * 1000 }}",
        "{{ 10 ** 100000 }}",
        "{{ (10 ** 900) ** 900 }}",
        "{{ 10.0 ** 100000 }}",
        "{{ range(10 ** 9) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '%*d' % (999999999, 1) }}",
        "{{ '%999999999d' | format(1) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '{:{w}}'.format(1, w=999999999) }}",
        "{{ 'a'.center(999999999) }}",
        "{{ ('a' * 1000000).replace('a', 'aa') }}",
        "{{ ('a' * 1000000) | replace('a', 'aa') }}",
        "{{ ('x' * 1000) | join('y' * 1000) }}",
        "{{ ('y' * 1000).join('x' * 1000) }}",
        "{{ 'x' | indent(999999999) }}",
        "{{ [1] | batch(999999999, 0) }}",
    ],
)
def test_work_is_bounded(source: str) -> None:
    with pytest.raises(ExpressionError):
        render(source)


def test_expression_source_is_capped() -> None:
    source = "{{ " + " + ".join(["1"] * MAX_EXPRESSION_LENGTH) + " }}"
    with pytest.raises(ExpressionError, match="longer than"):
        parse(source)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(ExpressionError):
        parse("{{ " + "(" * 1500 + "1" + ")" * 1500 + " }}")


@pytest.mark.parametrize("source", ["{{ x +", "{{ (}}", "{{ x | no_such_filter }}", "{{ }}"])
def test_syntax_errors_name_the_expression(source: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(source)
    assert source in str(caught.value)


def test_runtime_errors_are_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="division by zero"):
        render("{{ inputs.x / 0 }}")


def test_parse_is_cached() -> None:
    assert parse("{{ inputs.x }}") is parse("{{ inputs.x }}")


def test_validate_lists_each_bad_string_with_its_path() -> None:
    value = {"a": "{{ ok }}", "b": ["fine", "{{ bad +"], "c": {"d": "{{ (}}"}, "e": 3}
    errors = validate(value)
    assert [path for path, _ in errors] == [("b", 1), ("c", "d")]
    assert all("invalid expression" in message for _, message in errors)
    assert validate({"a": ["{{ 1 }}", "x"]}) == []


def test_evaluate_renders_deeply_and_leaves_keys_alone() -> None:
    value = {"{{ k }}": "{{ inputs.x }}", "list": ["{{ inputs.x + 1 }}", "n={{ inputs.x }}", 5]}
    assert evaluate(value, CONTEXT) == {"{{ k }}": 21, "list": [22, "n=21", 5]}


def test_evaluate_errors_carry_the_path() -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate({"a": [{"b": "{{ steps.nope.output }}"}]}, CONTEXT)
    assert caught.value.path == ("a", 0, "b")


def test_evaluated_values_are_copies() -> None:
    result = evaluate({"v": "{{ inputs }}"}, CONTEXT)
    result["v"]["x"] = 0
    assert CONTEXT["inputs"]["x"] == 21


def test_references_find_step_ids() -> None:
    source = "{{ steps.a.output + steps['b-c'].output }} and {{ steps.d }} {{ inputs.e }}"
    assert references(source) == {"a", "b-c", "d"}
    assert references("no expressions") == set()
    assert references("{{ broken +") == set()


@pytest.mark.parametrize(
    ("source", "expected"),
    [("inputs.x > 20", True), ("{{ inputs.x > 30 }}", False), ("inputs['items']", [1, 2, 3])],
)
def test_parse_expression_accepts_bare_or_wrapped(source: str, expected: Any) -> None:
    assert parse_expression(source).render(CONTEXT) == expected


def test_parse_expression_refuses_text() -> None:
    with pytest.raises(ExpressionError, match="single expression"):
        parse_expression("{{ a }} and {{ b }}")
