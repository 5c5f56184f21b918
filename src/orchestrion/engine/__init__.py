"""The workflow engine library: definitions, expressions and step types.

Nothing here touches a database or the network; services and workers build on it.
"""

from orchestrion.engine.definition import (
    DefinitionError,
    RetryPolicy,
    StepBody,
    StepDefinition,
    WorkflowDefinition,
    topological_order,
    validate_definition,
)
from orchestrion.engine.expressions import (
    ExpressionError,
    Template,
    evaluate,
    parse,
    parse_expression,
    references,
    validate,
)
from orchestrion.engine.registry import StepType, StepTypeRegistry, default_registry, expr_or

__all__ = [
    "DefinitionError",
    "ExpressionError",
    "RetryPolicy",
    "StepBody",
    "StepDefinition",
    "StepType",
    "StepTypeRegistry",
    "Template",
    "WorkflowDefinition",
    "default_registry",
    "evaluate",
    "expr_or",
    "parse",
    "parse_expression",
    "references",
    "topological_order",
    "validate",
    "validate_definition",
]
