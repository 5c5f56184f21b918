"""Workflow definitions: the Pydantic models and the checks that make one runnable.

:func:`validate_definition` turns a request body into a :class:`WorkflowDefinition` or
raises :class:`DefinitionError` listing every problem at once, each as
``{"loc": ["body", "steps", 2, "with", "url"], "msg": "step 'fetch': ..."}``: the shape of
the API's 422 ``errors`` and always naming the step.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from graphlib import CycleError, TopologicalSorter
from typing import Any, Literal, TypeVar

from jsonschema.exceptions import SchemaError, ValidationError, best_match
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from orchestrion.engine import tenant_schemas
from orchestrion.engine.expressions import (
    ExpressionError,
    Path,
    flag_references,
    iter_expressions,
    parse,
    parse_expression,
)
from orchestrion.engine.registry import StepType, StepTypeRegistry, default_registry

STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
#: A feature flag's key, as the flags service accepts one (``flags.<key>``).
FLAG_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

Loc = list[str | int]


class _Model(BaseModel):
    # JSON has no NaN or infinity, and a definition is JSON.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class RetryPolicy(_Model):
    """How a failing step is retried: attempts and the wait between them, in seconds."""

    max_attempts: int = Field(default=1, ge=1, le=100)
    backoff: Literal["fixed", "exponential"] = "exponential"
    delay: float = Field(default=1.0, ge=0)
    max_delay: float = Field(default=60.0, ge=0)


class StepBody(_Model):
    """What a step does: its type and ``with``; also the shape of ``compensate``."""

    type: str = Field(min_length=1, max_length=100)
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    retry: RetryPolicy | None = None
    timeout: float | None = Field(default=None, gt=0)


class StepDefinition(StepBody):
    """One step of a workflow (see "Step fields" in the API contract)."""

    id: str = Field(pattern=STEP_ID_PATTERN)
    needs: list[str] = Field(default_factory=list)
    when: str | None = None
    for_each: str | None = None
    concurrency: int | None = Field(default=None, ge=1, le=100)
    compensate: StepBody | None = None


class ConcurrencyPolicy(_Model):
    """At most ``limit`` executions of the workflow run at once, per value of ``key``.

    ``key`` is an expression over ``inputs`` (e.g. ``inputs.customer_id``); without it the
    limit is for the whole workflow. Executions over the limit wait as ``pending`` and
    start, highest ``priority`` first, as running ones finish.
    """

    limit: int = Field(ge=1, le=10_000)
    key: str | None = Field(default=None, min_length=1, max_length=1000)


class WorkflowDefinition(_Model):
    """A workflow as written by its author; serialise with ``by_alias=True`` for ``with``."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    status: Literal["draft", "active", "archived"] = "active"
    inputs: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    steps: list[StepDefinition] = Field(min_length=1, max_length=1000)
    outputs: dict[str, Any] = Field(default_factory=dict)
    concurrency: ConcurrencyPolicy | None = None


def step_flag_reads(step: StepDefinition) -> Iterator[tuple[Path, str, frozenset[str], str | None]]:
    """(location in the step, source, keys, misuse) of each string of ``step`` reading flags."""
    for name in ("when", "for_each"):
        text = getattr(step, name)
        if text is not None:
            for _, template in flag_references(text, bare=True):
                yield (name,), template.source, template.flags, template.flag_misuse
    bodies: list[tuple[Path, dict[str, Any]]] = [(("with",), step.with_)]
    if step.compensate is not None:
        bodies.append((("compensate", "with"), step.compensate.with_))
    for where, with_ in bodies:
        for path, template in flag_references(with_):
            yield (*where, *path), template.source, template.flags, template.flag_misuse


class DefinitionError(Exception):
    """An invalid definition; ``errors`` lists every problem as ``{"loc", "msg"}``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        first = errors[0]["msg"] if errors else "no details"
        super().__init__(f"invalid workflow definition: {first}{more}")


def _error(loc: Sequence[str | int], msg: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg}


def _pydantic_errors(exc: PydanticValidationError, raw: Any) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors(include_url=False):
        loc, msg = list(err["loc"]), err["msg"]
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            try:
                step_id = raw["steps"][loc[1]]["id"]
            except (KeyError, IndexError, TypeError):
                step_id = None
            if isinstance(step_id, str) and step_id:
                msg = f"step {step_id!r}: {msg}"
        errors.append(_error(loc, msg))
    return errors


def _schema_message(error: ValidationError | SchemaError) -> tuple[Loc, str]:
    """A readable (path, message) for one jsonschema error."""
    path: Loc = list(error.absolute_path)
    if error.validator == "anyOf" and error.context:
        # expr_or() puts the real schema first and the expression fallback second: the
        # first branch's complaint is the useful one.
        first = [e for e in error.context if list(e.relative_schema_path)[:1] == [0]]
        error = best_match(first or error.context)
        path = list(error.absolute_path)
    if error.validator == "required":
        # jsonschema reports one missing property per error but only names it in the text.
        names: Any = error.validator_value
        name = next((p for p in names if error.message.startswith(repr(p))), None)
        return [*path, name] if isinstance(name, str) else path, error.message
    if error.validator == "not" and isinstance(error.validator_value, dict):
        fields = error.validator_value.get("required", [])
        return path, "only one of " + ", ".join(map(repr, fields)) + " may be given"
    return path, error.message


def _graph(steps: Sequence[StepDefinition]) -> dict[str, list[str]]:
    ids = {step.id for step in steps}
    graph: dict[str, list[str]] = {}
    for step in steps:
        graph.setdefault(step.id, [need for need in step.needs if need in ids])
    return graph


def _closure(graph: Mapping[str, list[str]], start: str) -> set[str]:
    """Every step start needs, directly or not (cycles tolerated)."""
    seen: set[str] = set()
    stack = list(graph.get(start, []))
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(graph.get(node, []))
    return seen


def topological_order(defn: WorkflowDefinition) -> list[str]:
    """Step ids in an order where each comes after what it needs; ties keep file order."""
    position = {step.id: i for i, step in reversed(list(enumerate(defn.steps)))}
    sorter = TopologicalSorter(_graph(defn.steps))
    try:
        sorter.prepare()
    except CycleError as exc:
        raise DefinitionError([_error(["steps"], _cycle_message(exc))]) from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order.extend(ready)
        sorter.done(*ready)
    return order


def _cycle_message(exc: CycleError) -> str:
    # graphlib lists each node before the one that needs it; read it the other way.
    cycle = list(reversed(exc.args[1]))
    return f"step {cycle[0]!r}: needs form a cycle: {' -> '.join(cycle)}"


class _Checker:
    """The checks after the models parse; collects every error instead of stopping."""

    def __init__(self, defn: WorkflowDefinition, registry: StepTypeRegistry) -> None:
        self.defn, self.registry = defn, registry
        self.errors: list[dict[str, Any]] = []
        self.index: dict[str, int] = {}
        self.graph = _graph(defn.steps)

    def add(self, loc: Sequence[str | int], msg: str) -> None:
        self.errors.append(_error(loc, msg))

    def run(self) -> list[dict[str, Any]]:
        self.check_graph()
        for i, step in enumerate(self.defn.steps):
            self.check_step(i, step)
        self.check_inputs()
        self.check_concurrency()
        for path, _text, refs in self.expressions(["outputs"], self.defn.outputs):
            for ref in sorted(refs - self.index.keys()):
                self.add(path, f"outputs use steps.{ref}, which is not a step")
        for where, template in flag_references(self.defn.outputs):
            self.check_flags(["outputs", *where], "outputs: ", template.flags, template.flag_misuse)
        return self.errors

    def check_flags(self, loc: Loc, prefix: str, keys: frozenset[str], misuse: str | None) -> None:
        """``flags.<key>`` names a possible flag, by a literal key."""
        if misuse is not None:
            self.add(loc, prefix + misuse)
        for key in sorted(keys):
            if FLAG_KEY.fullmatch(key) is None:
                self.add(
                    loc,
                    f"{prefix}flags.{key!r} is not a flag key (letters, digits, '_', '.', '-', "
                    "starting with a letter or digit, at most 100)",
                )

    def check_graph(self) -> None:
        for i, step in enumerate(self.defn.steps):
            if step.id in self.index:
                first = self.index[step.id]
                self.add(["steps", i, "id"], f"step {step.id!r}: duplicate id (see steps[{first}])")
            else:
                self.index[step.id] = i
        for i, step in enumerate(self.defn.steps):
            for k, need in enumerate(step.needs):
                if need not in self.index:
                    self.add(
                        ["steps", i, "needs", k], f"step {step.id!r}: needs unknown step {need!r}"
                    )
        try:
            TopologicalSorter(self.graph).prepare()
        except CycleError as exc:
            first = exc.args[1][-1]
            self.add(["steps", self.index[first], "needs"], _cycle_message(exc))

    def check_step(self, i: int, step: StepDefinition) -> None:
        allowed = _closure(self.graph, step.id)
        self.check_body(["steps", i], step, step.id, allowed)
        for field in ("when", "for_each"):
            text = getattr(step, field)
            if text is None:
                continue
            try:
                refs = parse_expression(text).references
            except ExpressionError as exc:
                self.add(["steps", i, field], f"step {step.id!r}: {exc.message}")
            else:
                self.check_references(["steps", i, field], step.id, refs, allowed)
        if step.compensate is not None:
            # Compensation runs after the step succeeded, so it may read its own output.
            loc: Loc = ["steps", i, "compensate"]
            self.check_body(loc, step.compensate, step.id, allowed | {step.id})
        for path, _source, keys, misuse in step_flag_reads(step):
            self.check_flags(["steps", i, *path], f"step {step.id!r}: ", keys, misuse)

    def check_body(self, loc: Loc, body: StepBody, step_id: str, allowed: set[str]) -> None:
        step_type = self.registry.get(body.type)
        if step_type is None:
            close = difflib.get_close_matches(body.type, self.registry.names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.add([*loc, "type"], f"step {step_id!r}: unknown step type {body.type!r}{hint}")
        errors = []
        if step_type is not None:
            validator = step_type.with_validator()
            errors = list(validator.iter_errors(body.with_))
            for error in errors:
                path, message = _schema_message(error)
                self.add([*loc, "with", *path], f"step {step_id!r}: {message}")
        for field in step_type.schema_fields if step_type is not None and not errors else ():
            schema = body.with_.get(field)
            if isinstance(schema, dict) and not any(iter_expressions(schema)):
                try:
                    tenant_schemas.check_schema(schema)
                except SchemaError as exc:
                    path, message = _schema_message(exc)
                    where = [*loc, "with", field, *path]
                    self.add(where, f"step {step_id!r}: {field} is not usable: {message}")
        nested_keys: set[Any] = set()
        if step_type is not None and not errors:
            for nested_path, raw in step_type.bodies(body.with_):
                self.check_nested([*loc, "with", *nested_path], raw, step_id, allowed)
                nested_keys.add(nested_path[0])  # its expressions are checked there
        outer = {k: v for k, v in body.with_.items() if k not in nested_keys}
        for path, _text, refs in self.expressions([*loc, "with"], outer, step_id):
            self.check_references(path, step_id, refs, allowed)

    def check_nested(self, loc: Loc, raw: Any, step_id: str, allowed: set[str]) -> None:
        """A composite step's body: a step body that neither waits nor nests further."""
        try:
            body = nested_body(raw)
        except PydanticValidationError as exc:
            for err in exc.errors(include_url=False):
                self.add([*loc, *err["loc"]], f"step {step_id!r}: {err['msg']}")
            return
        nested = self.registry.get(body.type)
        if nested is not None and nested.waits:
            self.add(
                [*loc, "type"],
                f"step {step_id!r}: a {body.type!r} step waits, so it cannot be a nested body",
            )
        elif nested is not None and _composite(nested):
            self.add(
                [*loc, "type"],
                f"step {step_id!r}: a {body.type!r} step has bodies, so it cannot be nested",
            )
        self.check_body(loc, body, step_id, allowed)

    def check_references(
        self, loc: Loc, step_id: str, refs: frozenset[str], allowed: set[str]
    ) -> None:
        """A step may only read the outputs of steps it needs, directly or not."""
        for ref in sorted(refs - allowed):
            if ref == step_id:
                msg = f"step {step_id!r} uses steps.{ref}, its own output, before it exists"
            elif ref not in self.index:
                msg = f"step {step_id!r} uses steps.{ref}, which is not a step"
            else:
                msg = f"step {step_id!r} uses steps.{ref} but does not need it"
            self.add(loc, msg)

    def expressions(
        self, loc: Loc, value: Any, step_id: str | None = None
    ) -> Iterator[tuple[Loc, str, frozenset[str]]]:
        """Parse every expression string in value, reporting those that fail."""
        for path, text in iter_expressions(value):
            try:
                refs = parse(text).references
            except ExpressionError as exc:
                prefix = f"step {step_id!r}: " if step_id else ""
                self.add([*loc, *path], prefix + exc.message)
            else:
                yield [*loc, *path], text, refs

    def check_concurrency(self) -> None:
        policy = self.defn.concurrency
        if policy is None or policy.key is None:
            return
        try:
            template = parse_expression(policy.key)
        except ExpressionError as exc:
            self.add(["concurrency", "key"], f"concurrency key: {exc.message}")
            return
        if template.flags or template.flag_misuse:
            self.add(["concurrency", "key"], "concurrency key: only inputs are in scope, not flags")

    def check_inputs(self) -> None:
        try:
            tenant_schemas.check_schema(self.defn.inputs)
        except SchemaError as exc:
            path, message = _schema_message(exc)
            self.add(["inputs", *path], f"inputs is not a valid JSON Schema: {message}")


def nested_body(raw: Any) -> StepBody:
    """A composite step's body; an ``id`` is ignored, so that a step may be pasted in."""
    if isinstance(raw, Mapping):
        raw = {key: value for key, value in raw.items() if key != "id"}
    return StepBody.model_validate(raw)


def _composite(step_type: type[StepType]) -> bool:
    return step_type.bodies.__func__ is not StepType.bodies.__func__  # type: ignore[attr-defined]


def _component(step_name: str) -> str:
    """``sub_workflow`` -> ``SubWorkflow``: a step type's name as a schema name."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", step_name))


def _variant(general: dict[str, Any], step_type: type[StepType], title: str) -> dict[str, Any]:
    variant = copy.deepcopy(general)
    variant["title"] = title
    variant["description"] = step_type.description or general.get("description", "")
    properties = variant["properties"]
    properties["type"] = {"type": "string", "const": step_type.name}
    with_ = properties["with"] = copy.deepcopy(step_type.with_schema)
    if with_.get("type") == "object" and "additionalProperties" not in with_:
        # What JSON Schema means already, said so that generated types take any key.
        with_["additionalProperties"] = True
    if step_type.with_schema.get("required"):
        # An empty ``with`` (the default) would miss what the type requires.
        variant["required"] = [*variant.get("required", []), "with"]
    return variant


def definition_schemas(
    registry: StepTypeRegistry = default_registry,
    *,
    ref_template: str = "#/components/schemas/{model}",
) -> dict[str, Any]:
    """The JSON Schemas of a definition, by name, saying which step types exist.

    A step's ``with`` depends on its ``type``, so ``StepDefinition`` (and ``StepBody``, the
    shape of ``compensate``) is a ``oneOf`` of one schema per registered type, ``type``
    its name and ``with`` its ``with_schema``, discriminated by ``type``. Built from
    ``registry`` when the app is, so that a client knows the types this installation has
    (plugins included) and nothing here names one.
    """
    schema = WorkflowDefinition.model_json_schema(by_alias=True, ref_template=ref_template)
    schemas: dict[str, Any] = {**schema.pop("$defs", {}), "WorkflowDefinition": schema}
    for base, suffix in (("StepDefinition", "Step"), ("StepBody", "StepBody")):
        general = schemas[base]
        mapping: dict[str, str] = {}
        for step_type in registry.all():
            title = f"{_component(step_type.name)}{suffix}"
            schemas[title] = _variant(general, step_type, title)
            mapping[step_type.name] = ref_template.format(model=title)
        schemas[base] = {
            "title": base,
            "description": general.get("description", ""),
            "oneOf": [{"$ref": ref} for ref in mapping.values()],
            "discriminator": {"propertyName": "type", "mapping": mapping},
        }
    # A PATCH body: any of the top-level keys, each replacing the current one whole.
    patch = copy.deepcopy(schema)
    patch.pop("required", None)
    patch["title"] = "WorkflowDefinitionPatch"
    patch["description"] = "Top-level keys of a definition, each replacing the current one."
    schemas["WorkflowDefinitionPatch"] = patch
    return schemas


def validate_definition(
    raw: Mapping[str, Any], *, registry: StepTypeRegistry = default_registry
) -> WorkflowDefinition:
    """Parse and check a definition; raises DefinitionError listing every problem."""
    try:
        defn = WorkflowDefinition.model_validate(raw)
    except PydanticValidationError as exc:
        raise DefinitionError(_pydantic_errors(exc, raw)) from None
    errors = _Checker(defn, registry).run()
    if errors:
        raise DefinitionError(errors)
    return defn


_Built = TypeVar("_Built")


def once_per_definition(
    build: Callable[[WorkflowDefinition], _Built], size: int = 1024
) -> Callable[[WorkflowDefinition], _Built]:
    """``build`` made to run once per parsed definition: its result is kept by the
    definition's identity (a parsed definition is never changed; ``model_copy`` makes a
    new object, which gets its own), the definition kept with it so that its id is not
    reused while cached; all are forgotten past ``size``."""
    built: dict[int, tuple[WorkflowDefinition, _Built]] = {}

    @functools.wraps(build)
    def once(definition: WorkflowDefinition) -> _Built:
        found = built.get(id(definition))
        if found is not None and found[0] is definition:
            return found[1]
        result = build(definition)
        if len(built) >= size:
            built.clear()
        built[id(definition)] = (definition, result)
        return result

    return once
