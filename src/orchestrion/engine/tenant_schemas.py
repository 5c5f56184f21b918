"""JSON Schemas written by tenants, validated in linear time.

A workflow's ``inputs`` schema and an LLM step's ``response_schema`` come from tenants. The
stock validator runs ``pattern`` and ``patternProperties`` through Python's backtracking
``re``, where ``(a+)+$`` against a few dozen characters stalls the process for minutes.
:data:`TenantValidator` runs them through RE2 (``google-re2``), which matches in time linear
in the input and refuses constructs that need backtracking (look-around, back-references):
:func:`check_schema` reports such a pattern when the definition is saved (a 422), so a
stored schema never holds one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any, Final

import re2
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.protocols import Validator

__all__ = ["TenantValidator", "check_schema", "iter_errors"]

# Keywords whose values are data, not schemas: a "pattern" key inside them is not a regex.
_DATA_KEYWORDS: Final = frozenset({"const", "default", "enum", "examples"})
_OPTIONS: Final = re2.Options()
_OPTIONS.log_errors = False
_OPTIONS.max_mem = 8 << 20  # a pattern whose program needs more fails to compile


class PatternError(ValueError):
    """A ``pattern`` RE2 cannot compile (look-around, back-references, too large)."""


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> Any:
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except Exception as exc:  # re2.error: the message names the construct
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise PatternError(f"pattern {pattern!r} is not supported: {reason}") from None


def _pattern(
    validator: Validator, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    try:
        matched = _compile(pattern).search(instance) is not None
    except PatternError as exc:
        yield ValidationError(str(exc))
        return
    if not matched:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        try:
            compiled = _compile(pattern)
        except PatternError as exc:
            yield ValidationError(str(exc))
            continue
        for key, value in instance.items():
            if compiled.search(key) is not None:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


#: Draft 2020-12 with ``pattern`` and ``patternProperties`` matched by RE2.
TenantValidator: Final[type[Validator]] = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {"pattern": _pattern, "patternProperties": _pattern_properties},
)


def _patterns(schema: Any) -> Iterator[tuple[list[str | int], str]]:
    """(path, regex) for every ``pattern`` and ``patternProperties`` key in a schema."""
    stack: list[tuple[list[str | int], Any]] = [([], schema)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in _DATA_KEYWORDS:
                    continue
                if key == "pattern" and isinstance(value, str):
                    yield [*path, key], value
                elif key == "patternProperties" and isinstance(value, Mapping):
                    yield from (([*path, key, p], p) for p in value if isinstance(p, str))
                stack.append(([*path, key], value))
        elif isinstance(node, list):
            stack.extend(([*path, i], item) for i, item in enumerate(node))


def check_schema(schema: Any) -> None:
    """Raise SchemaError unless schema is valid Draft 2020-12 whose regexes RE2 compiles."""
    Draft202012Validator.check_schema(schema)
    for path, pattern in _patterns(schema):
        try:
            _compile(pattern)
        except PatternError as exc:
            raise SchemaError(str(exc), path=path, schema_path=path) from None


def iter_errors(schema: Mapping[str, Any], instance: Any) -> Iterator[ValidationError]:
    """The violations of instance against a tenant's schema, in linear-time regex matching."""
    errors: Iterator[ValidationError] = TenantValidator(dict(schema)).iter_errors(instance)
    return errors
