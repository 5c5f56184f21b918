"""``{{ flags.<key> }}``: which feature flags a definition reads, and what one yields.

Expressions read flags by literal key only, so the flags a step reads are known from its
definition (``when``, ``for_each``, ``with`` and ``compensate``); the runtime evaluates
those, and only those, before the step starts (:mod:`orchestrion.engine.runtime.flags`),
the same way the ``flag`` step does (:func:`orchestrion.engine.steps.flag.ask`).

What ``flags.<key>`` yields (:func:`flag_value`): the variant's name when the flag is on
for the execution and multivariate; ``true`` when it is on and boolean; ``false`` when it
is off; ``null`` when the tenant has no such flag. Each is truthy exactly when the flag
is on, so ``when: "flags.beta"`` works for both kinds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from orchestrion.engine.definition import StepDefinition, WorkflowDefinition, step_flag_reads
from orchestrion.engine.expressions import flag_references

__all__ = ["definition_reads_flags", "flag_value", "output_flags", "step_flags"]

_CACHE_SIZE: Final = 4096
# Keyed by id() with the object kept alongside, so that an id reused after the object
# is gone never answers for another: definitions are parsed once and kept by the runtime.
_cache: dict[tuple[str, int], tuple[Any, frozenset[str]]] = {}


def flag_value(answer: Mapping[str, Any] | None) -> Any:
    """What ``flags.<key>`` yields for one answer of the flags service (None: no flag)."""
    if answer is None:
        return None
    if answer.get("enabled") is not True:
        return False
    variant = answer.get("variant")
    return variant if isinstance(variant, str) and variant else True


def _cached(kind: str, obj: Any, compute: Any) -> frozenset[str]:
    found = _cache.get((kind, id(obj)))
    if found is not None and found[0] is obj:
        return found[1]
    keys: frozenset[str] = compute()
    if len(_cache) >= _CACHE_SIZE:
        _cache.clear()
    _cache[(kind, id(obj))] = (obj, keys)
    return keys


def step_flags(step: StepDefinition) -> frozenset[str]:
    """The flag keys ``step`` reads anywhere (conditions, ``with``, ``compensate``)."""
    return _cached(
        "step", step, lambda: frozenset(k for _, _, keys, _ in step_flag_reads(step) for k in keys)
    )


def output_flags(definition: WorkflowDefinition) -> frozenset[str]:
    """The flag keys the workflow's ``outputs`` read."""
    return _cached(
        "outputs",
        definition,
        lambda: frozenset(k for _, t in flag_references(definition.outputs) for k in t.flags),
    )


def definition_reads_flags(definition: WorkflowDefinition) -> bool:
    """Whether anything in the workflow reads ``flags`` (most do not: nothing to load)."""
    return bool(
        _cached(
            "any",
            definition,
            lambda: output_flags(definition).union(*(step_flags(s) for s in definition.steps)),
        )
    )
