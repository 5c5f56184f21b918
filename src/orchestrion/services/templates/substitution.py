"""Parameters: checking a template's schema, and putting values into its definition.

``{{ params.<name> }}`` (a dotted path reaches inside an object parameter) is replaced
when a workflow is made from the template, before the workflows service ever sees it:

- a string that is exactly one such reference (whitespace around it allowed) becomes
  the value itself, with its JSON type (``"{{ params.limit }}"`` gives ``5``);
- inside other text the value is rendered as text: a string as it is, anything else as
  its JSON (``true``, ``3``, ``["a"]``), so prompts read naturally;
- every other ``{{ ... }}`` (``inputs``, ``steps``, ``item``, ``env``...) is left for the
  engine to evaluate at run time, untouched.

Values are inserted once; a value that itself looks like ``{{ params.x }}`` is not
expanded again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema.exceptions import SchemaError

from orchestrion.engine import check_schema, schema_errors
from orchestrion.services.templates.errors import InvalidParameters, InvalidTemplate

_PATH = r"params((?:\.[A-Za-z_][A-Za-z0-9_]*)+)"
_REFERENCE = re.compile(r"\{\{\s*" + _PATH + r"\s*\}\}")
_EXACT = re.compile(r"^\s*\{\{\s*" + _PATH + r"\s*\}\}\s*$")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def referenced(definition: Any) -> set[str]:
    """The top-level parameter names the definition refers to."""
    return {
        match.group(1).split(".")[1]
        for text in _strings(definition)
        for match in _REFERENCE.finditer(text)
    }


def check_template(parameters: Mapping[str, Any], definition: Mapping[str, Any]) -> None:
    """422 unless ``parameters`` is an object JSON Schema declaring every parameter the
    definition refers to, and the definition has steps. Its regexes must be RE2's (matched
    in linear time: the schema is its author's, the parameters anybody's)."""
    try:
        check_schema(parameters)
    except SchemaError as exc:
        where = ["body", "parameters", *exc.path]
        raise InvalidTemplate(
            f"'parameters' is not a JSON Schema: {exc.message}",
            errors=[{"loc": where, "msg": exc.message}],
        ) from None
    if parameters.get("type", "object") != "object":
        raise InvalidTemplate(
            "'parameters' must describe an object",
            errors=[{"loc": ["body", "parameters", "type"], "msg": "must be 'object'"}],
        )
    steps = definition.get("steps")
    if not isinstance(steps, list) or not steps:
        raise InvalidTemplate(
            "the definition needs a non-empty 'steps' list",
            errors=[{"loc": ["body", "definition", "steps"], "msg": "a non-empty list"}],
        )
    declared = set((parameters.get("properties") or {}).keys())
    unknown = sorted(referenced(definition) - declared)
    if unknown:
        raise InvalidTemplate(
            f"the definition refers to undeclared parameters: {', '.join(unknown)}",
            errors=[
                {"loc": ["body", "definition"], "msg": f"'params.{name}' is not declared"}
                for name in unknown
            ],
        )


def resolve(schema: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters to substitute: ``given`` over the schema's defaults; 422 naming
    every field that fails the schema."""
    values = dict(given)
    for name, spec in (schema.get("properties") or {}).items():
        if name not in values and isinstance(spec, Mapping) and "default" in spec:
            values[name] = spec["default"]
    errors = schema_errors(schema, values, where="parameters")
    if errors:
        fields = ", ".join(
            dict.fromkeys(".".join(map(str, e["loc"][1:])) or "parameters" for e in errors)
        )
        raise InvalidParameters(
            f"parameters do not match the template's schema: {fields}", errors=errors
        )
    return values


def _lookup(values: Mapping[str, Any], path: str) -> Any:
    current: Any = values
    for part in path.strip(".").split("."):
        current = current.get(part) if isinstance(current, Mapping) else None
    return current


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _render(text: str, params: Mapping[str, Any]) -> str:
    return _REFERENCE.sub(lambda m: _as_text(_lookup(params, m.group(1))), text)


def substitute(value: Any, params: Mapping[str, Any]) -> Any:
    """``value`` with every ``{{ params.<name> }}`` replaced (in keys, always as text:
    a key is a string whatever the value)."""
    if isinstance(value, str):
        exact = _EXACT.match(value)
        if exact is not None:
            return _lookup(params, exact.group(1))
        return _render(value, params)
    if isinstance(value, Mapping):
        return {_render(str(k), params): substitute(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(item, params) for item in value]
    return value
