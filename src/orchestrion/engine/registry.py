"""Step types and the registry that names them.

A step type is one class: its ``name`` (the ``type`` of a step), a ``description``,
``with_schema`` (the JSON Schema of the step's ``with`` as written in the definition, before
expressions are evaluated) and ``run``, which turns one attempt into an outcome. ``instant``
types are pure and quick (``transform``, ``switch``): the runtime runs them inside the
transaction that schedules them instead of through the task queue.

``default_registry`` holds the built-in types of :mod:`orchestrion.engine.nodes.builtin`;
other step types (``llm``, ``mcp``...) register themselves on it with
``@default_registry.register``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from jsonschema import Draft202012Validator

if TYPE_CHECKING:
    from orchestrion.engine.outcomes import Outcome, StepCall

T = TypeVar("T", bound=type["StepType"])

EXPRESSION_SCHEMA: dict[str, Any] = {"type": "string", "pattern": r"\{\{"}


def expr_or(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema that also accepts a ``{{ ... }}`` string, checked once it is evaluated."""
    return {"anyOf": [schema, EXPRESSION_SCHEMA]}


class StepType:
    """Base of every step type: a name, a description and the JSON Schema of ``with``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    with_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    instant: ClassVar[bool] = False

    async def run(self, call: StepCall) -> Outcome:
        """Run one attempt; the default says the type cannot run (a definition-only type)."""
        from orchestrion.engine.outcomes import Failed

        return Failed(f"step type {self.name!r} cannot run here", retryable=False)

    @classmethod
    def with_validator(cls) -> Draft202012Validator:
        """A validator for this type's ``with`` (built once per type)."""
        validator = _VALIDATORS.get(cls)
        if validator is None:
            validator = _VALIDATORS[cls] = Draft202012Validator(cls.with_schema)
        return validator


_VALIDATORS: dict[type[StepType], Draft202012Validator] = {}


class StepTypeRegistry:
    """Step types by name. ``register`` works as a class decorator."""

    def __init__(self, setup: Callable[[StepTypeRegistry], None] | None = None) -> None:
        self._types: dict[str, type[StepType]] = {}
        # Deferred so that modules defining step types may import this one freely.
        self._setup = setup
        self._loaded = setup is None
        # Re-entrant: setup registers its types through this registry's own methods.
        self._lock = threading.RLock()

    def _ready(self) -> None:
        if self._loaded:
            return
        with self._lock:
            setup, self._setup = self._setup, None
            if setup is not None:
                setup(self)
                self._loaded = True

    def register(self, cls: T) -> T:
        """Add a step type; a second type with the same name is a ValueError."""
        self._ready()
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise ValueError(f"step type {cls.__qualname__} has no name")
        if name in self._types:
            raise ValueError(f"step type {name!r} is already registered")
        # A broken schema is the step type author's bug: fail at import, not per request.
        Draft202012Validator.check_schema(cls.with_schema)
        self._types[name] = cls
        return cls

    def get(self, name: str) -> type[StepType] | None:
        """The step type called name, or None."""
        self._ready()
        return self._types.get(name)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._ready()
        return sorted(self._types)

    def __contains__(self, name: object) -> bool:
        self._ready()
        return name in self._types


def _register_builtins(registry: StepTypeRegistry) -> None:
    # Imported here: the built-ins import this module for StepType.
    from orchestrion.engine.nodes.builtin import register_builtins

    register_builtins(registry)


default_registry = StepTypeRegistry(setup=_register_builtins)
