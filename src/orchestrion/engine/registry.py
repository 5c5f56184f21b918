"""Step types and the registry that names them.

A step type is one class in one module: its ``name`` (the ``type`` of a step), a
``description``, ``with_schema`` (the JSON Schema of the step's ``with`` as written in
the definition, before expressions are evaluated), the platform ``requires`` it needs
(:mod:`orchestrion.engine.requirements`), the ``waits`` it may enter, and ``run``, which
turns one attempt into an outcome. ``instant`` types are pure and quick (``transform``,
``switch``): the runtime runs them inside the transaction that schedules them instead of
through the task queue. A composite type (a loop) names its nested bodies with
:meth:`StepType.bodies` so that definitions check them too.

The registry loads the modules listed in :data:`orchestrion.engine.steps.MODULES` and
those that installed packages declare under the ``orchestrion.step_types`` entry point
group; every :class:`StepType` subclass a module defines is registered. Nothing else in
the engine names a step type.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from jsonschema import Draft202012Validator

from orchestrion.engine.statuses import WaitKind

if TYPE_CHECKING:
    from orchestrion.engine.outcomes import Outcome, StepCall
    from orchestrion.engine.requirements import Requirement

T = TypeVar("T", bound=type["StepType"])

ENTRY_POINT_GROUP = "orchestrion.step_types"
EXPRESSION_SCHEMA: dict[str, Any] = {"type": "string", "pattern": r"\{\{"}


def expr_or(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema that also accepts a ``{{ ... }}`` string, checked once it is evaluated."""
    return {"anyOf": [schema, EXPRESSION_SCHEMA]}


class StepType:
    """Base of every step type (see the module's docstring)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    with_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    instant: ClassVar[bool] = False
    #: What this type needs from the platform; ``call.need(...)`` reads them.
    requires: ClassVar[tuple[Requirement[Any], ...]] = ()
    #: What this type may wait for (empty: it never waits, so it may run nested).
    waits: ClassVar[frozenset[WaitKind]] = frozenset()
    #: ``with`` fields holding a tenant's JSON Schema: checked when a definition is saved
    #: (RE2-compatible patterns, see :mod:`orchestrion.engine.tenant_schemas`).
    schema_fields: ClassVar[tuple[str, ...]] = ()

    async def run(self, call: StepCall) -> Outcome:
        """Run one attempt; the default says the type cannot run (a definition-only type)."""
        from orchestrion.engine.outcomes import Failed

        return Failed(f"step type {self.name!r} cannot run here", retryable=False)

    @classmethod
    def bodies(cls, with_: Mapping[str, Any]) -> Sequence[tuple[Sequence[str | int], Any]]:
        """Nested step bodies in ``with_`` (path under ``with``, raw body) to check."""
        return ()

    @classmethod
    def with_validator(cls) -> Draft202012Validator:
        """A validator for this type's ``with`` (built once per type)."""
        validator = _VALIDATORS.get(cls)
        if validator is None:
            validator = _VALIDATORS[cls] = Draft202012Validator(cls.with_schema)
        return validator

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """What the API lists for this type."""
        return {
            "name": cls.name,
            "description": cls.description,
            "with_schema": cls.with_schema,
            "instant": cls.instant,
            "waits": sorted(str(kind) for kind in cls.waits),
            "requires": [requirement.name for requirement in cls.requires],
        }


_VALIDATORS: dict[type[StepType], Draft202012Validator] = {}


def step_types_of(module: ModuleType) -> list[type[StepType]]:
    """The step types a module defines (imported ones are not its own)."""
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, StepType)
        and cls.__module__ == module.__name__
        and isinstance(cls.__dict__.get("name"), str)
    ]


class StepTypeRegistry:
    """Step types by name. ``register`` works as a class decorator.

    ``modules`` are imported the first time the registry is read (so that modules
    defining step types may import this one freely) and every step type they define is
    registered; with ``entry_points=True`` so are those of installed packages.
    """

    def __init__(self, modules: Iterable[str] = (), *, entry_points: bool = False) -> None:
        self._types: dict[str, type[StepType]] = {}
        self._modules = tuple(modules)
        self._entry_points = entry_points
        self._loaded = not self._modules and not entry_points
        # Re-entrant: loading registers types through this registry's own methods.
        self._lock = threading.RLock()

    def _ready(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            for name in self._modules:
                for cls in step_types_of(importlib.import_module(name)):
                    # The platform's own schemas are checked by its tests
                    # (tests/engine/test_registry.py), not at every start: checking
                    # against the 2020-12 meta-schema costs ~5 ms a schema.
                    self._add(cls, check=False)
            if self._entry_points:
                for point in entry_points(group=ENTRY_POINT_GROUP):
                    loaded = point.load()
                    found = step_types_of(loaded) if inspect.ismodule(loaded) else [loaded]
                    for cls in found:
                        self.register(cls)

    def register(self, cls: T) -> T:
        """Add a step type; a second type with the same name is a ValueError."""
        self._ready()
        return self._add(cls, check=True)

    def _add(self, cls: T, *, check: bool) -> T:
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise ValueError(f"step type {cls.__qualname__} has no name")
        if name in self._types:
            raise ValueError(f"step type {name!r} is already registered")
        if check:
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

    def all(self) -> list[type[StepType]]:
        """Registered types, sorted by name."""
        self._ready()
        return [self._types[name] for name in sorted(self._types)]

    def __contains__(self, name: object) -> bool:
        self._ready()
        return name in self._types


def _default() -> StepTypeRegistry:
    from orchestrion.engine.steps import MODULES

    return StepTypeRegistry(MODULES, entry_points=True)


default_registry = _default()
