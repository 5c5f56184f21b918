"""Definitions: the models, every semantic check, and the step-type registry."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from orchestrion.engine import (
    DefinitionError,
    topological_order,
    validate_definition,
)
from tests.fixtures.definitions import DOUBLE_THEN_ADD

EXAMPLE = DOUBLE_THEN_ADD


def definition(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "test", **fields, "steps": list(steps)}


def errors_of(raw: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(raw)
    assert caught.value.errors, "a DefinitionError always lists its errors"
    assert caught.value.errors[0]["msg"] in str(caught.value)
    return caught.value.errors


def test_the_api_example_validates() -> None:
    defn = validate_definition(EXAMPLE)
    assert [step.id for step in defn.steps] == ["double", "add"]
    assert defn.steps[1].needs == ["double"]
    assert defn.steps[0].with_ == {"value": "{{ inputs.x * 2 }}"}
    dumped = defn.model_dump(by_alias=True, exclude_none=True)
    assert dumped["steps"][0]["with"] == {"value": "{{ inputs.x * 2 }}"}
    assert "with_" not in dumped["steps"][0]
    assert topological_order(defn) == ["double", "add"]


def test_defaults() -> None:
    defn = validate_definition(definition({"id": "a", "type": "transform"}))
    assert defn.status == "active"
    assert defn.inputs == {"type": "object"}
    assert defn.outputs == {}
    assert defn.steps[0].with_ == {}
    assert defn.steps[0].retry is None


def test_step_fields_are_parsed() -> None:
    step = {
        "id": "each",
        "type": "http",
        "needs": ["src"],
        "with": {"url": "{{ item }}", "method": "{{ inputs.method }}", "timeout": 5},
        "when": "inputs.enabled",
        "for_each": "{{ steps.src.output.urls }}",
        "concurrency": 4,
        "retry": {"max_attempts": 3, "backoff": "fixed", "delay": 0.5},
        "timeout": 30,
        "compensate": {"type": "http", "with": {"url": "{{ steps.each.output }}"}},
    }
    defn = validate_definition(definition({"id": "src", "type": "transform"}, step))
    parsed = defn.steps[1]
    assert parsed.retry is not None
    assert (parsed.retry.max_attempts, parsed.retry.backoff, parsed.retry.max_delay) == (
        3,
        "fixed",
        60.0,
    )
    assert parsed.compensate is not None
    assert parsed.compensate.type == "http"
    assert parsed.concurrency == 4


def test_transitive_needs_may_be_referenced() -> None:
    raw = definition(
        {"id": "a", "type": "transform"},
        {"id": "b", "type": "transform", "needs": ["a"]},
        {"id": "c", "type": "transform", "needs": ["b"], "with": {"v": "{{ steps.a.output }}"}},
    )
    assert topological_order(validate_definition(raw)) == ["a", "b", "c"]


def test_topological_order_keeps_file_order_for_ties() -> None:
    raw = definition(
        {"id": "z", "type": "transform", "needs": ["m"]},
        {"id": "m", "type": "transform"},
        {"id": "a", "type": "transform"},
    )
    assert topological_order(validate_definition(raw)) == ["m", "a", "z"]


def _step(**fields: Any) -> dict[str, Any]:
    return {"type": "transform", **fields}


@pytest.mark.parametrize(
    ("raw", "loc", "msg"),
    [
        pytest.param(
            definition(_step(id="a"), _step(id="a")),
            ["body", "steps", 1, "id"],
            "step 'a': duplicate id",
            id="duplicate-id",
        ),
        pytest.param(
            definition(_step(id="a", needs=["ghost"])),
            ["body", "steps", 0, "needs", 0],
            "step 'a': needs unknown step 'ghost'",
            id="unknown-needs",
        ),
        pytest.param(
            definition(_step(id="a", needs=["b"]), _step(id="b", needs=["a"])),
            None,
            r"needs form a cycle: (a -> b -> a|b -> a -> b)",
            id="cycle",
        ),
        pytest.param(
            definition(_step(id="fetch", type="htp")),
            ["body", "steps", 0, "type"],
            "step 'fetch': unknown step type 'htp'",
            id="unknown-type",
        ),
        pytest.param(
            definition(_step(id="a"), _step(id="b"), _step(id="fetch", type="http", with_={})),
            ["body", "steps", 2, "with", "url"],
            "step 'fetch': 'url' is a required property",
            id="missing-with-field",
        ),
        pytest.param(
            definition(_step(id="fetch", type="http", with_={"url": "u", "method": "FETCH"})),
            ["body", "steps", 0, "with", "method"],
            "step 'fetch': 'FETCH' is not one of",
            id="bad-with-value",
        ),
        pytest.param(
            definition(_step(id="wait", type="delay", with_={"seconds": 1, "extra": 1})),
            ["body", "steps", 0, "with"],
            "step 'wait': Additional properties are not allowed",
            id="unknown-with-field",
        ),
        pytest.param(
            definition(_step(id="a", with_={"v": "{{ inputs.x + }}"})),
            ["body", "steps", 0, "with", "v"],
            "step 'a': invalid expression '{{ inputs.x + }}'",
            id="bad-expression",
        ),
        pytest.param(
            definition(_step(id="a", when="{{ (")),
            ["body", "steps", 0, "when"],
            "step 'a': invalid expression",
            id="bad-when",
        ),
        pytest.param(
            definition(_step(id="a", for_each="{{ a }} {{ b }}")),
            ["body", "steps", 0, "for_each"],
            "step 'a': '{{ a }} {{ b }}' must be a single expression",
            id="for-each-text",
        ),
        pytest.param(
            definition(
                _step(id="double"), _step(id="add", with_={"v": "{{ steps.double.output }}"})
            ),
            ["body", "steps", 1, "with", "v"],
            "step 'add' uses steps.double but does not need it",
            id="undeclared-reference",
        ),
        pytest.param(
            definition(_step(id="a", when="steps.nope.output")),
            ["body", "steps", 0, "when"],
            "step 'a' uses steps.nope, which is not a step",
            id="reference-to-nothing",
        ),
        pytest.param(
            definition(_step(id="a", with_={"v": "{{ steps.a.output }}"})),
            ["body", "steps", 0, "with", "v"],
            "step 'a' uses steps.a, its own output",
            id="self-reference",
        ),
        pytest.param(
            definition(
                _step(id="a"),
                _step(id="b", compensate={"type": "fail", "with": {"m": 1}}),
            ),
            ["body", "steps", 1, "compensate", "with"],
            "step 'b': Additional properties are not allowed",
            id="bad-compensate",
        ),
        pytest.param(
            definition(_step(id="a"), inputs={"type": "objet"}),
            ["body", "inputs", "type"],
            "inputs is not a valid JSON Schema: 'objet' is not one of",
            id="bad-inputs-schema",
        ),
        pytest.param(
            definition(_step(id="a"), outputs={"r": "{{ steps.zz.output }}"}),
            ["body", "outputs", "r"],
            "outputs use steps.zz, which is not a step",
            id="outputs-reference",
        ),
        pytest.param(
            definition(_step(id="a", concurrency=0)),
            ["body", "steps", 0, "concurrency"],
            "step 'a': Input should be greater than or equal to 1",
            id="model-error-names-step",
        ),
        pytest.param(
            definition(_step(id="9lives")),
            ["body", "steps", 0, "id"],
            "step '9lives': String should match pattern",
            id="bad-id",
        ),
        pytest.param(
            {"steps": [_step(id="a")], "name": "n", "surprise": 1},
            ["body", "surprise"],
            "Extra inputs are not permitted",
            id="unknown-field",
        ),
        pytest.param(
            definition(),
            ["body", "steps"],
            "at least 1 item",
            id="no-steps",
        ),
    ],
)
def test_invalid_definitions_name_the_problem(
    raw: dict[str, Any], loc: list[Any] | None, msg: str
) -> None:
    errors = errors_of(_rename_with(raw))
    matching = [e for e in errors if re.search(msg if loc is None else re.escape(msg), e["msg"])]
    assert matching, errors
    if loc is not None:
        assert matching[0]["loc"] == loc


def _rename_with(value: Any) -> Any:
    # "with" is a keyword, so the table above spells it with_.
    if isinstance(value, dict):
        return {("with" if k == "with_" else k): _rename_with(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rename_with(v) for v in value]
    return value


def test_cycle_error_points_at_a_step_in_the_cycle() -> None:
    raw = definition(
        _step(id="a", needs=["c"]), _step(id="b", needs=["a"]), _step(id="c", needs=["b"])
    )
    [error] = errors_of(raw)
    assert error["loc"][:2] == ["body", "steps"]
    assert error["loc"][-1] == "needs"
    cycle = error["msg"].split("cycle: ")[1].split(" -> ")
    assert set(cycle) == {"a", "b", "c"}
    assert cycle[0] == cycle[-1]


def test_every_error_is_reported_at_once() -> None:
    raw = _rename_with(
        definition(
            _step(id="a", type="nope"),
            _step(id="b", needs=["ghost"]),
            _step(id="c", with_={"v": "{{ (("}),
            inputs={"type": 5},
        )
    )
    messages = [e["msg"] for e in errors_of(raw)]
    assert len(messages) == 4, messages


def test_compensation_may_read_its_own_step() -> None:
    raw = _rename_with(
        definition(
            _step(
                id="charge",
                compensate={"type": "fail", "with_": {"message": "{{ steps.charge.output.id }}"}},
            )
        )
    )
    assert validate_definition(raw).steps[0].compensate is not None


def test_expressions_are_accepted_for_typed_with_fields() -> None:
    raw = definition(
        {"id": "d", "type": "delay", "with": {"seconds": "{{ inputs.wait }}"}},
        {"id": "l", "type": "loop", "with": {"max_iterations": "{{ inputs.n }}", "until": "x"}},
    )
    validate_definition(raw)


def test_pydantic_errors_of_a_non_object_body() -> None:
    with pytest.raises(DefinitionError) as caught:
        validate_definition([])  # type: ignore[arg-type]
    assert caught.value.errors[0]["loc"] == ["body"]


def test_the_example_is_not_mutated() -> None:
    before = copy.deepcopy(EXAMPLE)
    validate_definition(EXAMPLE)
    assert before == EXAMPLE
