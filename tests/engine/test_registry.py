"""The step-type registry and the built-in declarations."""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from orchestrion.engine import (
    DefinitionError,
    StepType,
    StepTypeRegistry,
    default_registry,
    definition_schemas,
    expr_or,
    validate_definition,
)
from orchestrion.engine.registry import step_types_of
from orchestrion.engine.steps import MODULES


def definition(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"name": "test", "steps": list(steps)}


def test_default_registry_has_the_builtins() -> None:
    names = default_registry.names()
    for name in ("transform", "http", "delay", "approval", "sub_workflow", "fail"):
        assert name in default_registry
        assert name in names
    assert {"switch", "loop", "wait_for_event"} <= set(names)
    assert default_registry.get("nope") is None
    http = default_registry.get("http")
    assert http is not None
    assert http.with_schema["required"] == ["url"]


def test_registering_a_step_type() -> None:
    registry = StepTypeRegistry()

    @registry.register
    class Echo(StepType):
        name = "echo"
        description = "echo"
        with_schema: ClassVar[dict[str, Any]] = {
            "type": "object",
            "properties": {"n": expr_or({"type": "integer"})},
        }

    assert registry.get("echo") is Echo
    assert registry.names() == ["echo"]
    assert "transform" not in registry
    raw = definition({"id": "e", "type": "echo", "with": {"n": "x"}})
    with pytest.raises(DefinitionError) as caught:
        validate_definition(raw, registry=registry)
    assert caught.value.errors[0]["loc"] == ["body", "steps", 0, "with", "n"]
    validate_definition(
        definition({"id": "e", "type": "echo", "with": {"n": 3}}), registry=registry
    )

    class Again(StepType):
        name = "echo"

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Again)


def test_a_step_type_needs_a_name_and_a_valid_schema() -> None:
    registry = StepTypeRegistry()

    class Nameless(StepType):
        pass

    class BadSchema(StepType):
        name = "bad"
        with_schema: ClassVar[dict[str, Any]] = {"type": "objekt"}

    with pytest.raises(ValueError, match="no name"):
        registry.register(Nameless)
    with pytest.raises(SchemaError, match="objekt"):
        registry.register(BadSchema)
    assert registry.names() == []


def test_the_platforms_step_types_have_valid_schemas() -> None:
    # The registry checks the schemas of the types it loads from orchestrion.engine.steps
    # here rather than at every start; entry points and register() are checked as loaded.
    types = [cls for name in MODULES for cls in step_types_of(importlib.import_module(name))]
    assert len(types) >= 15
    for cls in types:
        Draft202012Validator.check_schema(cls.with_schema)


def test_the_definition_schema_lists_the_registered_types_with_their_with() -> None:
    registry = StepTypeRegistry()

    @registry.register
    class SendMail(StepType):
        name = "send_mail"
        with_schema: ClassVar[dict[str, Any]] = {
            "type": "object",
            "properties": {"to": {"type": "string"}},
            "required": ["to"],
        }

    @registry.register
    class Noop(StepType):
        name = "noop"

    schemas = definition_schemas(registry, ref_template="#/x/{model}")
    step = schemas["StepDefinition"]
    assert step["discriminator"] == {
        "propertyName": "type",
        "mapping": {"noop": "#/x/NoopStep", "send_mail": "#/x/SendMailStep"},
    }
    assert step["oneOf"] == [{"$ref": "#/x/NoopStep"}, {"$ref": "#/x/SendMailStep"}]
    mail = schemas["SendMailStep"]
    assert mail["properties"]["type"] == {"type": "string", "const": "send_mail"}
    assert mail["properties"]["with"] == {**SendMail.with_schema, "additionalProperties": True}
    # A type that requires fields in ``with`` requires ``with``; one that does not, not.
    assert set(mail["required"]) == {"id", "type", "with"}
    assert set(schemas["NoopStep"]["required"]) == {"id", "type"}
    # ``compensate`` takes a step body, discriminated the same way.
    assert set(schemas["StepBody"]["discriminator"]["mapping"]) == {"noop", "send_mail"}
    assert "id" not in schemas["SendMailStepBody"]["properties"]
    assert schemas["WorkflowDefinition"]["properties"]["steps"]["items"] == {
        "$ref": "#/x/StepDefinition"
    }
