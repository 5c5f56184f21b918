"""The step-type contract: one module each, declared requirements, declared waits.

A step type receives exactly what it declared; a nested body (a loop's) is checked at
definition time like a step.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrion.engine import (
    HTTP,
    LLM,
    DefinitionError,
    Engine,
    Execution,
    Failed,
    HttpAccess,
    Outcome,
    Requirement,
    StepBody,
    StepCall,
    StepType,
    StepTypeRegistry,
    Succeeded,
    Waiting,
    WaitKind,
    default_registry,
    validate_definition,
)
from orchestrion.engine.registry import step_types_of
from orchestrion.engine.steps import MODULES
from orchestrion.kernel.db.engine import Database

ENGINE = Path(__file__).resolve().parents[2] / "src" / "orchestrion" / "engine"


def test_every_builtin_type_is_one_listed_module() -> None:
    for name in MODULES:
        module = importlib.import_module(name)
        types = step_types_of(module)
        assert types, f"{name} defines no step type"
        for step_type in types:
            assert default_registry.get(step_type.name) is step_type
    listed = {t.name for name in MODULES for t in step_types_of(importlib.import_module(name))}
    assert listed == set(default_registry.names())


def test_the_runtime_names_no_step_type() -> None:
    names = set(default_registry.names())
    for path in [*ENGINE.glob("runtime/*.py"), ENGINE / "worker.py", ENGINE / "definition.py"]:
        tree = ast.parse(path.read_text())
        strings = {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
        assert not (strings & names), f"{path.name} names step types {strings & names}"


def test_types_describe_themselves() -> None:
    http = default_registry.get("http")
    assert http is not None
    described = http.describe()
    assert described["requires"] == ["http"]
    assert described["waits"] == []
    approval = default_registry.get("approval")
    assert approval is not None
    assert approval.describe()["waits"] == ["approval"]


SECRET: Requirement[str] = Requirement("secret", "a test secret")


class Greedy(StepType):
    """Asks for what it did not declare."""

    name = "greedy"
    requires = (HTTP,)

    async def run(self, call: StepCall) -> Outcome:
        call.need(HTTP)
        return Succeeded(call.need(SECRET))


class Declared(StepType):
    """Declares what it reads."""

    name = "declared"
    requires = (SECRET, LLM)

    async def run(self, call: StepCall) -> Outcome:
        if LLM in call.resources:
            return Failed("LLM was provided although this process has none")
        return Succeeded(call.need(SECRET))


class Sneaky(StepType):
    """Waits for a kind it did not declare."""

    name = "sneaky"
    waits = frozenset({WaitKind.TIMER})

    async def run(self, call: StepCall) -> Outcome:
        return Waiting(WaitKind.APPROVAL)


async def _run(engine: Engine, type_name: str) -> Outcome:
    execution = Execution(id="e1", tenant_id="t1")
    call = engine.parts.executor.bind(
        type_name,
        execution=execution,
        step_id="s",
        index=None,
        attempt=1,
        raw_with={},
        context={},
    )
    return await engine.parts.executor.run(StepBody(type=type_name), call)


async def test_a_step_gets_only_what_it_declared(tmp_path: Path) -> None:
    registry = StepTypeRegistry()
    for cls in (Greedy, Declared, Sneaky):
        registry.register(cls)
    async with httpx.AsyncClient() as client:
        engine = Engine(
            Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"),
            registry=registry,
            resources={HTTP: HttpAccess(client), SECRET: "s3cret"},
        )
        greedy = await _run(engine, "greedy")
        assert isinstance(greedy, Failed)
        assert not greedy.retryable
        assert "secret (a test secret) was not declared" in greedy.message
        assert await _run(engine, "declared") == Succeeded("s3cret")
        sneaky = await _run(engine, "sneaky")
        assert isinstance(sneaky, Failed)
        assert "may not wait for approval" in sneaky.message

        bare = Engine(Database(f"sqlite+aiosqlite:///{tmp_path / 'y.db'}"), registry=registry)
        missing = await _run(bare, "declared")
        assert isinstance(missing, Failed)
        assert "is not available in this process" in missing.message


def _errors(*steps: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(DefinitionError) as caught:
        validate_definition({"name": "t", "steps": list(steps)})
    return caught.value.errors


def test_loop_bodies_are_checked_at_definition_time() -> None:
    unknown = _errors(
        {"id": "l", "type": "loop", "with": {"max_iterations": 2, "body": {"type": "nope"}}}
    )
    assert unknown[0]["loc"] == ["body", "steps", 0, "with", "body", "type"]
    assert "unknown step type 'nope'" in unknown[0]["msg"]
    bad_with = _errors(
        {
            "id": "l",
            "type": "loop",
            "with": {"max_iterations": 2, "body": {"type": "http", "with": {"heders": {}}}},
        }
    )
    assert bad_with[0]["loc"][:6] == ["body", "steps", 0, "with", "body", "with"]
    waits = _errors(
        {"id": "l", "type": "loop", "with": {"max_iterations": 2, "body": {"type": "approval"}}}
    )
    assert "waits, so it cannot be a nested body" in waits[0]["msg"]
    nested = _errors(
        {
            "id": "l",
            "type": "loop",
            "with": {
                "max_iterations": 2,
                "body": {"type": "loop", "with": {"max_iterations": 1}},
            },
        }
    )
    assert "cannot be nested" in nested[0]["msg"]
    expression = _errors(
        {
            "id": "l",
            "type": "loop",
            "with": {
                "max_iterations": 2,
                "body": {"type": "transform", "with": {"v": "{{ steps.other.output }}"}},
            },
        }
    )
    assert expression[0]["loc"] == ["body", "steps", 0, "with", "body", "with", "v"]
    assert "steps.other, which is not a step" in expression[0]["msg"]
    ok = validate_definition(
        {
            "name": "t",
            "steps": [
                {
                    "id": "l",
                    "type": "loop",
                    "with": {
                        "max_iterations": 2,
                        "until": "{{ loop.output.v > 1 }}",
                        "body": {"id": "pasted", "type": "transform", "with": {"v": 1}},
                    },
                }
            ],
        }
    )
    assert ok.steps[0].type == "loop"


DOCS = Path(__file__).resolve().parents[2] / "docs" / "workflows.md"


async def test_the_documented_step_type_is_one_working_module(tmp_path: Path) -> None:
    text = DOCS.read_text()
    section = text[text.index("### Writing a step type") :]
    start = section.index("```python\n") + len("```python\n")
    source = section[start : section.index("\n```", start)]
    module_path = tmp_path / "word_count.py"
    module_path.write_text(source)
    spec = importlib.util.spec_from_file_location("word_count_doc", module_path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (word_count,) = step_types_of(module)
    registry = StepTypeRegistry()
    registry.register(word_count)
    validate_definition(
        {"name": "t", "steps": [{"id": "w", "type": "word_count", "with": {"text": "a b"}}]},
        registry=registry,
    )
    with pytest.raises(DefinitionError):
        validate_definition(
            {"name": "t", "steps": [{"id": "w", "type": "word_count", "with": {"txt": "a"}}]},
            registry=registry,
        )
    async with httpx.AsyncClient() as client:
        engine = Engine(
            Database(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"),
            registry=registry,
            resources={HTTP: HttpAccess(client)},
        )
        execution = Execution(id="e1", tenant_id="t1")
        call = engine.parts.executor.bind(
            "word_count",
            execution=execution,
            step_id="w",
            index=None,
            attempt=1,
            raw_with={"text": "{{ inputs.words }}"},
            context={"inputs": {"words": "one two three"}},
        )
        outcome = await engine.parts.executor.run(StepBody(type="word_count"), call)
    assert outcome == Succeeded({"words": 3})
