"""The workflow engine as a library: the one module services import.

Definitions and their validation, expressions, step types and their registry, the
requirements step types declare, the durable runtime and its workers, the execution
tables and log records, and the LLM and MCP clients step types use. Names are loaded on
first use (PEP 562), so importing the facade costs nothing until a name is read:
the MCP SDK, for one, loads only in processes that call MCP servers.

Everything else under ``orchestrion.engine`` is internal; ``tests/test_boundaries.py``
keeps services from reaching past this module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrion.engine.definition import (
        DefinitionError,
        RetryPolicy,
        StepBody,
        StepDefinition,
        WorkflowDefinition,
        definition_schemas,
        topological_order,
        validate_definition,
    )
    from orchestrion.engine.events import EVENT_TYPES, TERMINAL_EVENT_TYPES, Event, fold
    from orchestrion.engine.expressions import (
        ExpressionError,
        Template,
        configure_expressions,
        evaluate,
        parse,
        parse_expression,
        references,
        validate,
    )
    from orchestrion.engine.llm.backend import (
        BoundTool,
        BudgetExceeded,
        LlmBackend,
        ToolError,
        ToolProvider,
    )
    from orchestrion.engine.llm.pricing import PriceTable
    from orchestrion.engine.llm.tokens import TokenCounter
    from orchestrion.engine.llm.types import ProviderConfig, ToolSpec
    from orchestrion.engine.mcp.pool import McpCallError, McpPool, McpTimeout, McpUnavailable
    from orchestrion.engine.mcp.servers import McpServers, TenantLookup, UnknownServer, check_url
    from orchestrion.engine.mcp.tools import McpTools
    from orchestrion.engine.models import (
        Execution,
        ExecutionEvent,
        LlmUsage,
        StepResult,
        StepState,
    )
    from orchestrion.engine.netguard import (
        BlockedDestination,
        NetGuard,
        check_destination,
        guarded_client,
    )
    from orchestrion.engine.outcomes import (
        Failed,
        ModelUsage,
        Outcome,
        StepCall,
        Succeeded,
        Waiting,
    )
    from orchestrion.engine.registry import StepType, StepTypeRegistry, default_registry, expr_or
    from orchestrion.engine.requirements import (
        CHILDREN,
        HTTP,
        JOURNAL,
        LLM,
        MCP,
        SERVICES,
        STEPS,
        ChildWorkflowError,
        ChildWorkflows,
        HttpAccess,
        Requirement,
        Resources,
        ServiceCallError,
        ServiceCalls,
    )
    from orchestrion.engine.runtime import Engine, EngineTaskHandler, EventListener, schema_errors
    from orchestrion.engine.runtime.limits import EngineLimits
    from orchestrion.engine.statuses import (
        TERMINAL,
        ExecutionStatus,
        StepStatus,
        TaskKind,
        WaitKind,
        public_step_status,
    )
    from orchestrion.engine.tenant_schemas import check_schema
    from orchestrion.engine.worker import Worker

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        (
            "DefinitionError",
            "RetryPolicy",
            "StepBody",
            "StepDefinition",
            "WorkflowDefinition",
            "definition_schemas",
            "topological_order",
            "validate_definition",
        ),
        "orchestrion.engine.definition",
    ),
    **dict.fromkeys(
        ("EVENT_TYPES", "TERMINAL_EVENT_TYPES", "Event", "fold"), "orchestrion.engine.events"
    ),
    **dict.fromkeys(
        (
            "ExpressionError",
            "Template",
            "configure_expressions",
            "evaluate",
            "parse",
            "parse_expression",
            "references",
            "validate",
        ),
        "orchestrion.engine.expressions",
    ),
    **dict.fromkeys(
        ("BoundTool", "BudgetExceeded", "LlmBackend", "ToolError", "ToolProvider"),
        "orchestrion.engine.llm.backend",
    ),
    "PriceTable": "orchestrion.engine.llm.pricing",
    "TokenCounter": "orchestrion.engine.llm.tokens",
    **dict.fromkeys(("ProviderConfig", "ToolSpec"), "orchestrion.engine.llm.types"),
    **dict.fromkeys(
        ("McpCallError", "McpPool", "McpTimeout", "McpUnavailable"), "orchestrion.engine.mcp.pool"
    ),
    **dict.fromkeys(
        ("McpServers", "TenantLookup", "UnknownServer", "check_url"),
        "orchestrion.engine.mcp.servers",
    ),
    "McpTools": "orchestrion.engine.mcp.tools",
    **dict.fromkeys(
        ("Execution", "ExecutionEvent", "LlmUsage", "StepResult", "StepState"),
        "orchestrion.engine.models",
    ),
    **dict.fromkeys(
        ("BlockedDestination", "NetGuard", "check_destination", "guarded_client"),
        "orchestrion.engine.netguard",
    ),
    **dict.fromkeys(
        ("Failed", "ModelUsage", "Outcome", "StepCall", "Succeeded", "Waiting"),
        "orchestrion.engine.outcomes",
    ),
    **dict.fromkeys(
        ("StepType", "StepTypeRegistry", "default_registry", "expr_or"),
        "orchestrion.engine.registry",
    ),
    **dict.fromkeys(
        (
            "CHILDREN",
            "HTTP",
            "JOURNAL",
            "LLM",
            "MCP",
            "SERVICES",
            "STEPS",
            "ChildWorkflowError",
            "ChildWorkflows",
            "HttpAccess",
            "Requirement",
            "Resources",
            "ServiceCallError",
            "ServiceCalls",
        ),
        "orchestrion.engine.requirements",
    ),
    **dict.fromkeys(
        ("Engine", "EngineTaskHandler", "EventListener", "schema_errors"),
        "orchestrion.engine.runtime",
    ),
    "EngineLimits": "orchestrion.engine.runtime.limits",
    **dict.fromkeys(
        (
            "TERMINAL",
            "ExecutionStatus",
            "StepStatus",
            "TaskKind",
            "WaitKind",
            "public_step_status",
        ),
        "orchestrion.engine.statuses",
    ),
    "Worker": "orchestrion.engine.worker",
    "check_schema": "orchestrion.engine.tenant_schemas",
}

__all__ = [
    "CHILDREN",
    "EVENT_TYPES",
    "HTTP",
    "JOURNAL",
    "LLM",
    "MCP",
    "SERVICES",
    "STEPS",
    "TERMINAL",
    "TERMINAL_EVENT_TYPES",
    "BlockedDestination",
    "BoundTool",
    "BudgetExceeded",
    "ChildWorkflowError",
    "ChildWorkflows",
    "DefinitionError",
    "Engine",
    "EngineLimits",
    "EngineTaskHandler",
    "Event",
    "EventListener",
    "Execution",
    "ExecutionEvent",
    "ExecutionStatus",
    "ExpressionError",
    "Failed",
    "HttpAccess",
    "LlmBackend",
    "LlmUsage",
    "McpCallError",
    "McpPool",
    "McpServers",
    "McpTimeout",
    "McpTools",
    "McpUnavailable",
    "ModelUsage",
    "NetGuard",
    "Outcome",
    "PriceTable",
    "ProviderConfig",
    "Requirement",
    "Resources",
    "RetryPolicy",
    "ServiceCallError",
    "ServiceCalls",
    "StepBody",
    "StepCall",
    "StepDefinition",
    "StepResult",
    "StepState",
    "StepStatus",
    "StepType",
    "StepTypeRegistry",
    "Succeeded",
    "TaskKind",
    "Template",
    "TenantLookup",
    "TokenCounter",
    "ToolError",
    "ToolProvider",
    "ToolSpec",
    "UnknownServer",
    "WaitKind",
    "Waiting",
    "Worker",
    "WorkflowDefinition",
    "check_destination",
    "check_schema",
    "check_url",
    "configure_expressions",
    "default_registry",
    "definition_schemas",
    "evaluate",
    "expr_or",
    "fold",
    "guarded_client",
    "parse",
    "parse_expression",
    "public_step_status",
    "references",
    "schema_errors",
    "topological_order",
    "validate",
    "validate_definition",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
